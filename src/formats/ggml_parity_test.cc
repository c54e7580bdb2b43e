// Bit-exact parity with ggml itself: the llama.cpp peer ships ggml's CPU library
// (libggml-base.so), which exports the reference quantizers and dequantizers. This test loads it
// and checks that smelt's from_float writes the same bytes as ggml's quantize_row_*_ref (and as
// ggml_quantize_chunk, llama-quantize's path, with no importance matrix) and that to_float
// decodes any bytes to the same floats as ggml's dequantize_row_*. Needs the peer ("Peer").
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "formats/activation.h"
#include "formats/format_test_util.h"
#include "formats/iq4_nl.h"
#include "formats/types.h"
#include "peer.h"

namespace smelt {
namespace {

using QuantizeFn = void (*)(const float*, void*, int64_t);
using DequantizeFn = void (*)(const void*, float*, int64_t);
// size_t ggml_quantize_chunk(enum ggml_type, const float* src, void* dst, int64_t start,
//                            int64_t nrows, int64_t n_per_row, const float* imatrix)
using QuantizeChunkFn = size_t (*)(int, const float*, void*, int64_t, int64_t, int64_t, const float*);

// The directory holding the peer's ggml libraries, or empty.
std::filesystem::path PeerGgmlDir() {
  if (!peer::Available()) return {};
  // "llama.cpp peer installed in DIR"
  std::string out = peer::RunCommand(peer::Script() + " setup 2>/dev/null");
  const std::string marker = "installed in ";
  const size_t at = out.find(marker);
  if (at == std::string::npos) return {};
  std::string dir = out.substr(at + marker.size());
  while (!dir.empty() && std::isspace((unsigned char)dir.back())) dir.pop_back();
  std::error_code ec;
  const std::filesystem::path root = std::filesystem::path(dir) / "node_modules" / "@node-llama-cpp";
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->path().filename() == "libggml-base.so") return it->path().parent_path();
  }
  return {};
}

// The peer's ggml library, or nullptr (the test then skips).
void* OpenPeerGgml() {
  const auto dir = PeerGgmlDir();
  return dir.empty() ? nullptr : dlopen((dir / "libggml-base.so").c_str(), RTLD_NOW | RTLD_LOCAL);
}

// The CPU backend variant ggml itself would choose on this machine: of the libggml-cpu-*.so
// files, the one whose ggml_backend_score() is highest (0: cannot run here). nullptr if none.
void* OpenPeerGgmlCpu() {
  const auto dir = PeerGgmlDir();
  if (dir.empty() || !OpenPeerGgml()) return nullptr;  // the variants need libggml-base loaded
  void* best = nullptr;
  int best_score = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("libggml-cpu", 0) != 0 || e.path().extension() != ".so") continue;
    void* h = dlopen(e.path().c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) continue;
    auto score = reinterpret_cast<int (*)()>(dlsym(h, "ggml_backend_score"));
    const int s = score ? score() : 0;
    if (s > best_score) {
      best = h;
      best_score = s;
    }
  }
  // Fills the library's fp16 lookup table, which its quantized dot products read.
  if (auto init = best ? reinterpret_cast<void (*)()>(dlsym(best, "ggml_cpu_init")) : nullptr) init();
  return best;
}

struct GgmlFns {
  DType type;
  const char* quantize;    // quantize_row_*_ref (or the f16/bf16 row converter)
  const char* dequantize;  // dequantize_row_*, nullptr where ggml has none
  bool chunk;              // ggml_quantize_chunk supports it
};
const GgmlFns kFns[] = {
    {DType::kF16, "ggml_fp32_to_fp16_row", nullptr, true},
    {DType::kBF16, "ggml_fp32_to_bf16_row_ref", nullptr, true},
    {DType::kQ4_0, "quantize_row_q4_0_ref", "dequantize_row_q4_0", true},
    {DType::kQ4_1, "quantize_row_q4_1_ref", "dequantize_row_q4_1", true},
    {DType::kQ5_0, "quantize_row_q5_0_ref", "dequantize_row_q5_0", true},
    {DType::kQ5_1, "quantize_row_q5_1_ref", "dequantize_row_q5_1", true},
    {DType::kQ8_0, "quantize_row_q8_0_ref", "dequantize_row_q8_0", true},
    {DType::kQ8_1, "quantize_row_q8_1_ref", nullptr, false},
    {DType::kQ2_K, "quantize_row_q2_K_ref", "dequantize_row_q2_K", true},
    {DType::kQ3_K, "quantize_row_q3_K_ref", "dequantize_row_q3_K", true},
    {DType::kQ4_K, "quantize_row_q4_K_ref", "dequantize_row_q4_K", true},
    {DType::kQ5_K, "quantize_row_q5_K_ref", "dequantize_row_q5_K", true},
    {DType::kQ6_K, "quantize_row_q6_K_ref", "dequantize_row_q6_K", true},
    {DType::kQ8_K, "quantize_row_q8_K_ref", "dequantize_row_q8_K", false},
    {DType::kIQ4_NL, nullptr, "dequantize_row_iq4_nl", true},  // _ref checked separately
};

// Test rows: every kind from format_test_util at several magnitudes, plus rows of values on a
// lattice (many exact rounding ties) and rows with whole zero blocks.
std::vector<std::vector<float>> ParityRows(int n) {
  std::vector<std::vector<float>> rows;
  uint32_t seed = 1;
  for (testing::RowKind kind : testing::kAllRowKinds) {
    for (float scale : {1.0f, 3e-3f, 20.0f}) {
      auto x = testing::MakeRow(kind, n, seed++);
      for (float& v : x) v *= scale;
      rows.push_back(x);
    }
  }
  auto lattice = testing::MakeRow(testing::RowKind::kGaussian, n, 77);
  for (float& v : lattice) v = std::round(v * 8) / 4;
  rows.push_back(lattice);
  auto holes = testing::MakeRow(testing::RowKind::kOutliers, n, 78);
  for (int i = 0; i < n; ++i) {
    if ((i / 32) % 3 == 1) holes[i] = 0;
  }
  rows.push_back(holes);
  return rows;
}

class FormatsGgmlPeer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { lib_ = OpenPeerGgml(); }
  void SetUp() override {
    if (lib_ == nullptr) GTEST_SKIP() << "llama.cpp peer's libggml-base.so not available";
  }
  template <class F>
  static F Sym(const char* name) {
    return reinterpret_cast<F>(dlsym(lib_, name));
  }
  static inline void* lib_ = nullptr;
};

// Q8_K: ggml leaves bsums unwritten for an all-zero block; compare them only where d != 0.
bool SameBytes(DType t, const uint8_t* a, const uint8_t* b, size_t n) {
  if (t != DType::kQ8_K) return std::memcmp(a, b, n) == 0;
  for (size_t off = 0; off < n; off += 292) {
    float d;
    std::memcpy(&d, a + off, 4);
    if (std::memcmp(a + off, b + off, d != 0 ? 292 : 260) != 0) return false;
  }
  return true;
}

TEST_F(FormatsGgmlPeer, QuantizersWriteGgmlsBytes) {
  const int n = 1024;
  const auto rows = ParityRows(n);
  auto chunk = Sym<QuantizeChunkFn>("ggml_quantize_chunk");
  ASSERT_NE(chunk, nullptr);
  for (const GgmlFns& f : kFns) {
    const TypeTraits& tr = Traits(f.type);
    const size_t nbytes = RowBytes(f.type, n);
    QuantizeFn ref = f.quantize ? Sym<QuantizeFn>(f.quantize) : nullptr;
    if (f.quantize) {
      ASSERT_NE(ref, nullptr) << f.quantize;
    }
    for (size_t r = 0; r < rows.size(); ++r) {
      std::vector<uint8_t> mine(nbytes), theirs(nbytes, 0xa5);
      tr.from_float(rows[r].data(), mine.data(), n);
      if (ref) {
        ref(rows[r].data(), theirs.data(), n);
        EXPECT_TRUE(SameBytes(f.type, mine.data(), theirs.data(), nbytes))
            << DTypeName(f.type) << " row " << r << " vs " << f.quantize;
      }
      if (f.chunk) {
        std::fill(theirs.begin(), theirs.end(), 0xa5);
        chunk((int)f.type, rows[r].data(), theirs.data(), 0, 1, n, nullptr);
        EXPECT_EQ(mine, theirs) << DTypeName(f.type) << " row " << r << " vs ggml_quantize_chunk";
      }
    }
  }
}

TEST_F(FormatsGgmlPeer, IQ4NLRefMatchesGgmlRef) {
  // ggml's quantize_row_iq4_nl_ref (no scale search). Its codes in all-zero blocks are stale
  // memory, so compare decoded values (zeros, as d = 0) rather than bytes there.
  auto ref = Sym<QuantizeFn>("quantize_row_iq4_nl_ref");
  ASSERT_NE(ref, nullptr);
  const int n = 1024;
  for (const auto& x : ParityRows(n)) {
    std::vector<BlockIQ4_NL> mine(n / 32), theirs(n / 32);
    QuantizeRowIQ4_NLRef(x.data(), mine.data(), n);
    ref(x.data(), theirs.data(), n);
    for (int b = 0; b < n / 32; ++b) {
      if (Fp16ToFloat(theirs[b].d) == 0.0f) {
        EXPECT_EQ(mine[b].d, theirs[b].d);
      } else {
        EXPECT_EQ(std::memcmp(&mine[b], &theirs[b], sizeof(BlockIQ4_NL)), 0) << "block " << b;
      }
    }
  }
}

TEST_F(FormatsGgmlPeer, DecodersMatchGgmlOnAnyBytes) {
  std::mt19937 rng(99);
  const int n = 4096;
  for (const GgmlFns& f : kFns) {
    if (!f.dequantize) continue;
    auto deq = Sym<DequantizeFn>(f.dequantize);
    ASSERT_NE(deq, nullptr) << f.dequantize;
    const TypeTraits& tr = Traits(f.type);
    for (int rep = 0; rep < 8; ++rep) {
      // Random bytes (any fp16 scale, NaN and infinity included), and real quantized rows.
      std::vector<uint8_t> bytes(RowBytes(f.type, n));
      if (rep < 4) {
        for (auto& b : bytes) b = (uint8_t)rng();
      } else {
        const auto x = testing::MakeRow(testing::kAllRowKinds[rep % 7], n, rep);
        tr.from_float(x.data(), bytes.data(), n);
      }
      std::vector<float> mine(n), theirs(n);
      tr.to_float(bytes.data(), mine.data(), n);
      deq(bytes.data(), theirs.data(), n);
      for (int i = 0; i < n; ++i) {
        if (std::isnan(theirs[i])) {
          ASSERT_TRUE(std::isnan(mine[i])) << DTypeName(f.type) << " " << i;
        } else {
          ASSERT_EQ(FloatBits(mine[i]), FloatBits(theirs[i])) << DTypeName(f.type) << " " << i;
        }
      }
    }
  }
}

// ggml-cpu's per-type traits (ggml-cpu.h): the activation encoder and type of dot products.
struct GgmlTypeTraitsCpu {
  QuantizeFn from_float;
  void (*vec_dot)(int n, float* s, size_t bs, const void* x, size_t bx, const void* y, size_t by, int nrc);
  int vec_dot_type;
  int64_t nrows;
};

class FormatsGgmlCpuPeer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { lib_ = OpenPeerGgmlCpu(); }
  void SetUp() override {
    if (lib_ == nullptr) GTEST_SKIP() << "llama.cpp peer's CPU library not available";
  }
  static const GgmlTypeTraitsCpu* TraitsOf(DType t) {
    auto get = reinterpret_cast<const GgmlTypeTraitsCpu* (*)(int)>(dlsym(lib_, "ggml_get_type_traits_cpu"));
    return get ? get((int)t) : nullptr;
  }
  static inline void* lib_ = nullptr;
};

const DType kWeightTypes[] = {DType::kF16,  DType::kBF16, DType::kQ4_0, DType::kQ4_1, DType::kQ5_0,
                              DType::kQ5_1, DType::kQ8_0, DType::kQ2_K, DType::kQ3_K, DType::kQ4_K,
                              DType::kQ5_K, DType::kQ6_K, DType::kIQ4_NL};

TEST_F(FormatsGgmlCpuPeer, ActivationTypesAreGgmlsVecDotTypes) {
  for (DType w : kWeightTypes) {
    const GgmlTypeTraitsCpu* t = TraitsOf(w);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->vec_dot_type, (int)ActivationType(w)) << DTypeName(w);
  }
}

TEST_F(FormatsGgmlCpuPeer, ActivationEncodersWriteGgmlCpusBytes) {
  const int n = 1024;
  for (DType act : {DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ8_1, DType::kQ8_K}) {
    const GgmlTypeTraitsCpu* t = TraitsOf(act);
    ASSERT_NE(t, nullptr);
    ASSERT_NE(t->from_float, nullptr) << DTypeName(act);
    const size_t nbytes = RowBytes(act, n);
    const auto rows = ParityRows(n);
    for (size_t r = 0; r < rows.size(); ++r) {
      std::vector<uint8_t> mine(nbytes), theirs(nbytes, 0xa5);
      QuantizeActivationRow(act, rows[r].data(), mine.data(), n);
      t->from_float(rows[r].data(), theirs.data(), n);
      EXPECT_TRUE(SameBytes(act, mine.data(), theirs.data(), nbytes)) << DTypeName(act) << " row " << r;
    }
  }
}

// A dot product of a weight row with rounded activations is what ggml's vec_dot computes, up to
// the order of summation: |Δ| ≤ 1e-5 · Σ|w·x̃| (f32 sums of n ≤ 1024 terms); Q4_1/Q5_1 also
// carry the rounding of Q8_1's block sums.
TEST_F(FormatsGgmlCpuPeer, DotWithRoundedActivationsMatchesGgmlsVecDot) {
  const int n = 1024;
  for (DType w : kWeightTypes) {
    const GgmlTypeTraitsCpu* t = TraitsOf(w);
    const GgmlTypeTraitsCpu* a = TraitsOf(ActivationType(w));
    ASSERT_TRUE(t && a && t->vec_dot && a->from_float) << DTypeName(w);
    const TypeTraits& tr = Traits(w);
    for (uint32_t seed = 1; seed <= 4; ++seed) {
      const auto wx = testing::MakeRow(testing::RowKind::kGaussian, n, seed);
      const auto xx = testing::MakeRow(testing::kAllRowKinds[seed % 2], n, seed + 100);
      std::vector<uint8_t> wq(RowBytes(w, n)), xq(RowBytes(ActivationType(w), n));
      tr.from_float(wx.data(), wq.data(), n);
      a->from_float(xx.data(), xq.data(), n);
      float theirs = 0.0f;
      t->vec_dot(n, &theirs, 0, wq.data(), 0, xq.data(), 0, 1);
      std::vector<float> wd(n), xr(n);
      tr.to_float(wq.data(), wd.data(), n);
      RoundActivationRow(w, xx.data(), xr.data(), n);
      double mine = 0.0, mag = 0.0, s_rounding = 0.0;
      for (int i = 0; i < n; ++i) {
        mine += (double)wd[i] * xr[i];
        mag += std::fabs((double)wd[i] * xr[i]);
      }
      if (ActivationType(w) == DType::kQ8_1) {
        // ggml multiplies the weight block's minimum m by the activation block's s = fp16(d·Σq),
        // not by Σx̃: off by at most |m|·|Σx̃|·2^-11 per block, and |m| ≤ the block's max |w̃|.
        for (int b = 0; b < n; b += 32) {
          double wmax = 0, xsum = 0;
          for (int i = b; i < b + 32; ++i) wmax = std::max(wmax, (double)std::fabs(wd[i])), xsum += xr[i];
          s_rounding += wmax * std::fabs(xsum) * 0x1p-11;
        }
      }
      EXPECT_NEAR(mine, theirs, 1e-5 * mag + s_rounding + 1e-6) << DTypeName(w) << " seed " << seed;
    }
  }
}

}  // namespace
}  // namespace smelt
