// The quantized dot products against "decode both rows, dot in double" (plus ggml's stored-s
// term, qdot_test_util.h), the AVX2 twins against the scalar references, and MatMul's quantized
// path against its decode-then-dot path.
#include "kernels/qdot.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "core/half.h"
#include "formats/activation.h"
#include "formats/group_int.h"
#include "formats/nf4.h"
#include "formats/per_channel.h"
#include "formats/sparse24.h"
#include "formats/sparse_mask.h"
#include "formats/types.h"
#include "kernels/matmul.h"
#include "kernels/qdot_kernels.h"
#include "kernels/qdot_table4.h"
#include "kernels/qdot_test_util.h"
#include "tiny_models.h"

namespace smelt {
namespace {

using testing::DotDouble;
using testing::DotMass;
using testing::KernelTolerance;
using testing::MinTermCorrection;
using testing::ScaleOfKind;

const DType kKernelTypes[] = {DType::kQ8_0, DType::kQ4_0, DType::kQ5_0, DType::kIQ4_NL, DType::kQ4_1, DType::kQ5_1,
                              DType::kQ2_K, DType::kQ3_K, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K,
                              DType::kS24_Q8, DType::kS24_Q4};

// A weight row of n values with random codes (every bit pattern) and scales (and minimums) of
// every kind of ScaleOfKind, the cycle starting at `seed` (so one-block rows see every kind too).
std::vector<uint8_t> RandomWeightRow(DType type, int64_t n, uint32_t seed) {
  const TypeTraits& tr = Traits(type);
  std::mt19937 rng(seed);
  std::vector<uint8_t> row(RowBytes(type, n));
  for (uint8_t& byte : row) byte = (uint8_t)rng();
  const testing::ScaleFields f = testing::ScaleFieldsOf(type);
  for (int64_t b = 0; b < n / tr.block_size; ++b) {
    uint8_t* block = row.data() + b * tr.type_size;
    const fp16_t d = ScaleOfKind(b + seed, rng), m = ScaleOfKind(b + 2 * seed + 1, rng);
    std::memcpy(block + f.d, &d, sizeof(d));
    if (f.min_codes != 0) std::memcpy(block + f.min, &m, sizeof(m));
  }
  return row;
}

// n activations, each run of 32 scaled by 1, 0, 100 or 1e-6 in turn (starting at `seed`),
// encoded for `weight`. (Much
// larger runs would overflow the Q8_1 block's fp16 s = d·Σq, in ggml as here.)
std::vector<uint8_t> RandomActivationRow(DType weight, int64_t n, uint32_t seed) {
  std::vector<float> x = tiny::RandomVector(n, seed);
  const float factors[] = {1.0f, 0.0f, 100.0f, 1e-6f};
  for (int64_t i = 0; i < n; ++i) x[i] *= factors[(i / 32 + seed) % 4];
  const DType act = ActivationType(weight);
  std::vector<uint8_t> row(RowBytes(act, n));
  QuantizeActivationRow(act, x.data(), row.data(), n);
  return row;
}

std::vector<float> DecodeRow(DType type, const std::vector<uint8_t>& row, int64_t n) {
  std::vector<float> out(n);
  Traits(type).to_float(row.data(), out.data(), n);
  return out;
}

struct QDotCase {
  DType type;
  int64_t n;
};

void PrintTo(const QDotCase& c, std::ostream* os) { *os << DTypeName(c.type) << " n " << c.n; }

class QDotKernels : public ::testing::TestWithParam<QDotCase> {};

TEST_P(QDotKernels, ReferenceMatchesDecodedDotAndAvx2MatchesReference) {
  const auto [type, n] = GetParam();
  const QDotFn ref = ReferenceQDot(type);
  const QDotFn avx2 = CpuHasAvx2FmaF16c() ? Avx2QDot(type) : nullptr;
  ASSERT_NE(ref, nullptr);
  if (CpuHasAvx2FmaF16c()) {
    ASSERT_NE(avx2, nullptr);
  }
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    const std::vector<uint8_t> w = RandomWeightRow(type, n, seed);
    const std::vector<uint8_t> a = RandomActivationRow(type, n, 100 + seed);
    const std::vector<float> wf = DecodeRow(type, w, n), af = DecodeRow(ActivationType(type), a, n);
    const double want = DotDouble(wf.data(), af.data(), n) + MinTermCorrection(type, w.data(), a.data(), af.data(), n);
    const double tol = KernelTolerance(n, DotMass(type, w.data(), a.data(), wf.data(), af.data(), n));
    const float got = ref(w.data(), a.data(), n);
    EXPECT_NEAR(got, want, tol) << DTypeName(type) << " n " << n << " seed " << seed;
    EXPECT_EQ(DotQ(type, w.data(), a.data(), n), (avx2 ? avx2 : ref)(w.data(), a.data(), n));
    if (avx2) {
      EXPECT_NEAR(avx2(w.data(), a.data(), n), want, tol) << DTypeName(type) << " n " << n << " seed " << seed;
      EXPECT_NEAR(avx2(w.data(), a.data(), n), got, 2 * tol) << DTypeName(type) << " n " << n << " seed " << seed;
    }
  }
}

std::vector<QDotCase> AllCases() {
  std::vector<QDotCase> cases;
  for (DType t : kKernelTypes)
    for (int64_t blocks : {1, 37}) cases.push_back({t, blocks * Traits(t).block_size});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(QDot, QDotKernels, ::testing::ValuesIn(AllCases()), [](const auto& info) {
  return std::string(DTypeName(info.param.type)) + "_n" + std::to_string(info.param.n);
});

TEST(QDot, RowsAtAnyAlignmentGiveTheSameBits) {
  for (DType type : kKernelTypes) {
    const int64_t n = 5 * Traits(type).block_size;
    const std::vector<uint8_t> w = RandomWeightRow(type, n, 7), a = RandomActivationRow(type, n, 8);
    const float want = DotQ(type, w.data(), a.data(), n);
    for (size_t shift = 1; shift < 4; ++shift) {
      std::vector<uint8_t> ws(w.size() + shift), as(a.size() + shift);
      std::memcpy(ws.data() + shift, w.data(), w.size());
      std::memcpy(as.data() + shift, a.data(), a.size());
      EXPECT_EQ(DotQ(type, ws.data() + shift, as.data() + shift, n), want) << DTypeName(type) << " shift " << shift;
      EXPECT_EQ(ReferenceQDot(type)(ws.data() + shift, as.data() + shift, n), ReferenceQDot(type)(w.data(), a.data(), n));
    }
  }
}

TEST(QDot, OnlyBlockTypesWithAnActivationEncodingHaveKernels) {
  for (DType t : {DType::kF32, DType::kQ8_1, DType::kQ8_K, DType::kI3S_G32_O8, DType::kF8E4M3_B32}) {
    EXPECT_EQ(SelectQDot(t), nullptr) << DTypeName(t);
    EXPECT_EQ(FastQDot(t), nullptr) << DTypeName(t);
  }
  for (DType t : kKernelTypes) {
    EXPECT_NE(SelectQDot(t), nullptr) << DTypeName(t);
    EXPECT_EQ(FastQDot(t) != nullptr, CpuHasAvx2FmaF16c()) << DTypeName(t);
  }
}

// The group types' reference product (they run packed as Q4_0/Q4_1, kernels/packed.h, and
// have no row kernel of their own): against the dot of the rows decoded by their own decoder and the
// decoded int8 activations, in double, within the bound of their Q4_0/Q4_1 conversion's terms
// (plus ggml's stored-s term for the asymmetric kind).
TEST(QDot, GroupIntReferenceIsTheDecodedDotAgainstInt8Activations) {
  for (DType type : kGroupIntTypes) {
    const DType ggml = GroupIntGgmlType(type);
    ASSERT_NE(ggml, DType::kF32);
    EXPECT_EQ(ActivationType(type), ActivationType(ggml)) << DTypeName(type);
    EXPECT_EQ(FastQDot(type), nullptr) << DTypeName(type);
    const QDotFn ref = ReferenceQDot(type);
    ASSERT_NE(ref, nullptr);
    const int64_t group = Traits(type).block_size;
    for (int64_t n : {group, 7 * group})
      for (uint32_t seed = 1; seed <= 12; ++seed) {
        const std::vector<uint8_t> w = RandomWeightRow(type, n, seed);
        std::vector<uint8_t> blocks(RowBytes(ggml, n));
        GroupIntRowAsGgml(type, w.data(), n, blocks.data());
        const std::vector<uint8_t> a = RandomActivationRow(type, n, 100 + seed);
        const std::vector<float> wf = DecodeRow(type, w, n), af = DecodeRow(ActivationType(type), a, n);
        const double want = DotDouble(wf.data(), af.data(), n) + MinTermCorrection(ggml, blocks.data(), a.data(), af.data(), n);
        const double tol = KernelTolerance(n, DotMass(ggml, blocks.data(), a.data(), wf.data(), af.data(), n));
        EXPECT_NEAR(ref(w.data(), a.data(), n), want, tol) << DTypeName(type) << " n " << n << " seed " << seed;
      }
  }
}

// NF4 runs against Q8_0 activations with its levels in fixed point (formats/nf4.h; the packed
// kernels compute it, kernels/packed.h, and it has no row kernel of its own): the reference
// against the double dot of the row decoded with those levels, within the f32 rounding of its
// terms, and against the row decoded by its own decoder within the levels' rounding more.
TEST(QDot, NF4ReferenceIsTheFixedPointDotAgainstInt8Activations) {
  const DType type = DType::kNF4;
  EXPECT_EQ(ActivationType(type), DType::kQ8_0);
  EXPECT_EQ(FastQDot(type), nullptr);
  const QDotFn ref = ReferenceQDot(type);
  ASSERT_NE(ref, nullptr);
  for (int64_t n : {int64_t{kQKNF4}, 7 * int64_t{kQKNF4}, int64_t{4096}})
    for (uint32_t seed = 1; seed <= 12; ++seed) {
      const std::vector<uint8_t> w = RandomWeightRow(type, n, seed), a = RandomActivationRow(type, n, 100 + seed);
      std::vector<float> fixed(n);
      testing::DecodeAsKernels(type, w.data(), fixed.data(), n);
      const std::vector<float> wf = DecodeRow(type, w, n), af = DecodeRow(DType::kQ8_0, a, n);
      const double tol = KernelTolerance(n, DotMass(type, w.data(), a.data(), fixed.data(), af.data(), n));
      const float got = ref(w.data(), a.data(), n);
      EXPECT_NEAR(got, DotDouble(fixed.data(), af.data(), n), tol) << "n " << n << " seed " << seed;
      EXPECT_NEAR(got, DotDouble(wf.data(), af.data(), n), tol + testing::LevelRounding(type, w.data(), af.data(), n))
          << "n " << n << " seed " << seed;
    }
}

// MatMul's quantized path (kGgml on a type with a kernel) against the decode-then-dot path it
// replaces: f32 weights decoded from the same tensor times the rounded activations (kExact), plus
// ggml's stored-s term; within the f32 rounding of both paths.
TEST(QDot, MatMulMatchesDecodedWeightsTimesRoundedActivations) {
  const int64_t C = 512, OC = 37;
  if (!FastQDot(DType::kQ4_0)) GTEST_SKIP() << "MatMul decodes weight rows on this CPU";
  for (DType type : kKernelTypes) {
    const Tensor f32 = MakeF32Tensor("w", {C, OC}, tiny::RandomVector(C * OC, 11));
    const Tensor w = tiny::EncodeTensor(f32, type);
    const std::vector<float> dense = DequantizeAll(w);
    const Tensor decoded = MakeF32Tensor("w", {C, OC}, dense);
    const size_t w_bytes = RowBytes(type, C), a_bytes = RowBytes(ActivationType(type), C);
    for (int64_t T : {1, 5}) {
      const std::vector<float> x = tiny::RandomVector(T * C, 12 + (uint32_t)T);
      std::vector<float> rounded(T * C);
      std::vector<uint8_t> encoded(T * a_bytes);
      for (int64_t t = 0; t < T; ++t) {
        RoundActivationRow(type, x.data() + t * C, rounded.data() + t * C, C);
        QuantizeActivationRow(ActivationType(type), x.data() + t * C, encoded.data() + t * a_bytes, C);
      }
      std::vector<float> got(T * OC), got2(T * OC), old(T * OC);
      MatMul(w, x.data(), T, got.data(), 1, Activations::kGgml);
      MatMul(w, x.data(), T, got2.data(), 2, Activations::kGgml);
      EXPECT_EQ(got, got2) << DTypeName(type) << ": threads changed bits";
      MatMul(decoded, rounded.data(), T, old.data(), 1, Activations::kExact);
      for (int64_t t = 0; t < T; ++t)
        for (int64_t o = 0; o < OC; ++o) {
          const auto* wrow = static_cast<const uint8_t*>(w.data) + o * w_bytes;
          const uint8_t* arow = encoded.data() + t * a_bytes;
          const float* wf = dense.data() + o * C;
          const float* af = rounded.data() + t * C;
          double abs_dot = 0;
          for (int64_t c = 0; c < C; ++c) abs_dot += std::fabs((double)wf[c] * af[c]);
          // The f32 path sums C products: C·2^-24·Σ|w·a|.
          const double tol = KernelTolerance(C, DotMass(type, wrow, arow, wf, af, C)) + C * std::ldexp(abs_dot, -24);
          const double want = old[t * OC + o] + MinTermCorrection(type, wrow, arow, af, C);
          EXPECT_NEAR(got[t * OC + o], want, tol) << DTypeName(type) << " t " << t << " o " << o;
        }
    }
  }
}

// f16 · f16 (ggml's vec_dot_f16): the reference against products summed in double, and the AVX2
// twin against both, on finite halves spanning many binades, lengths with and without a tail.
TEST(QDot, F16AndBf16KernelsAgreeWithADoubleSum) {
  std::mt19937 rng(17);
  std::uniform_real_distribution<float> mant(-1.0f, 1.0f);
  std::uniform_int_distribution<int> expo(-12, 12);
  for (DType type : {DType::kF16, DType::kBF16}) {
    const bool half = type == DType::kF16;
    auto encode = [&](float f) { return half ? FloatToFp16(f) : FloatToBf16(f); };
    auto decode = [&](uint16_t h) { return half ? Fp16ToFloat(h) : Bf16ToFloat(h); };
    for (int64_t n : {1, 7, 32, 37, 1000, 4096}) {
      std::vector<uint16_t> w(n), a(n);
      double exact = 0, mag = 0;
      for (int64_t i = 0; i < n; ++i) {
        w[i] = encode(std::ldexp(mant(rng), expo(rng)));
        a[i] = encode(std::ldexp(mant(rng), expo(rng) / 2));
        const double p = (double)decode(w[i]) * decode(a[i]);
        exact += p, mag += std::abs(p);
      }
      // f32 summation of n terms: at most n·2^-24 of Σ|terms| (each product of two halves or
      // two bfloat16 values is exact in f32).
      const double tol = (double)(n + 2) * std::ldexp(1.0, -24) * mag;
      const float ref = ReferenceQDot(type)(w.data(), a.data(), n);
      EXPECT_NEAR(ref, exact, tol) << DTypeName(type) << " " << n;
      if (const QDotFn fast = FastQDot(type)) {
        EXPECT_NEAR(fast(w.data(), a.data(), n), exact, tol) << DTypeName(type) << " " << n;
      }
    }
  }
}

// w8a8 rows times per-token int8 activation rows: the integer sum is exact, so the kernels are
// (float) Σ q_w·q_a · (d_w·d_a), and the AVX2 twin the reference bit for bit; odd lengths run
// the tail, codes at ±127 the largest pair sums.
TEST(QDot, W8A8KernelsScaleTheExactIntegerSumOnce) {
  std::mt19937 rng(23);
  for (int64_t n : {1, 31, 32, 33, 1000, 4096}) {
    std::vector<uint8_t> w(4 + n), a(4 + n);
    const float dw = 0.013f, da = 0.0071f;
    std::memcpy(w.data(), &dw, 4);
    std::memcpy(a.data(), &da, 4);
    int64_t exact = 0;
    for (int64_t i = 0; i < n; ++i) {
      const int8_t qw = i % 7 == 0 ? 127 : (int8_t)((int)(rng() % 255) - 127);
      const int8_t qa = i % 5 == 0 ? -127 : (int8_t)((int)(rng() % 255) - 127);
      w[4 + i] = (uint8_t)qw, a[4 + i] = (uint8_t)qa;
      exact += qw * qa;
    }
    const float want = (float)exact * (dw * da);
    EXPECT_EQ(ReferenceQDot(DType::kW8A8)(w.data(), a.data(), n), want) << n;
    if (const QDotFn fast = FastQDot(DType::kW8A8)) {
      EXPECT_EQ(fast(w.data(), a.data(), n), want) << n;
    }
  }
}

// i8_pc rows times f32 activations: d_w·Σ q_w·x within the f32 rounding of n terms.
TEST(QDot, I8PCKernelsAgreeWithADoubleSum) {
  std::mt19937 rng(29);
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (int64_t n : {1, 7, 32, 37, 1000, 4096}) {
    std::vector<uint8_t> w(4 + n);
    std::vector<float> a(n);
    const float dw = 0.0123f;
    std::memcpy(w.data(), &dw, 4);
    double exact = 0, mag = 0;
    for (int64_t i = 0; i < n; ++i) {
      const int8_t q = (int8_t)((int)(rng() % 255) - 127);
      w[4 + i] = (uint8_t)q;
      a[i] = g(rng) * (i % 97 == 0 ? 100.0f : 1.0f);
      exact += (double)dw * q * a[i], mag += std::abs((double)dw * q * a[i]);
    }
    const double tol = (double)(n + 2) * std::ldexp(1.0, -23) * mag;
    EXPECT_NEAR(ReferenceQDot(DType::kI8_PC)(w.data(), a.data(), n), exact, tol) << n;
    if (const QDotFn fast = FastQDot(DType::kI8_PC)) {
      EXPECT_NEAR(fast(w.data(), a.data(), n), exact, tol) << n;
    }
  }
}

// A bitmask row (formats/sparse_mask.h) of n weights: a finite f32 scale of kind `seed` % 5 (zero,
// ordinary, huge, tiny, ordinary), masks of the given density (1.0: every bit, more than the
// capacity holds), random codes of every bit pattern.
std::vector<uint8_t> RandomMaskRow(DType type, int64_t n, double density, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> row(RowBytes(type, n));
  for (uint8_t& byte : row) byte = (uint8_t)rng();
  const float scales[] = {0.0f, 0.013f, 3.0e4f, 1.0e-30f, -0.7f};
  std::memcpy(row.data(), &scales[seed % 5], 4);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int64_t b = 0; b < n / 32; ++b) {
    uint32_t m = 0;
    for (int j = 0; j < 32; ++j) m |= (uint32_t)(u(rng) < density) << j;
    std::memcpy(row.data() + 4 + 4 * b, &m, 4);
  }
  return row;
}

// Bitmask rows: the reference against the decoded rows' dot in double, the AVX2 twin against
// both, at densities from empty to over the capacity, rows from one block to 4096 weights (the
// twin's scalar tail and its vector loop), every scale kind of the activations.
TEST(QDot, SparseMaskKernelsAgreeWithTheDecodedDot) {
  for (DType type : {DType::kSP50_Q8, DType::kSP70_Q8, DType::kSP50_W8A8, DType::kSP70_W8A8}) {
    const QDotFn ref = ReferenceQDot(type), fast = FastQDot(type);
    ASSERT_NE(ref, nullptr);
    EXPECT_EQ(fast != nullptr, CpuHasAvx2FmaF16c());
    uint32_t seed = 1;
    for (int64_t n : {32, 64, 96, 128, 37 * 32, 4096})
      for (double density : {0.0, 0.1, 0.3, 0.5, 1.0})
        for (int rep = 0; rep < 5; ++rep, ++seed) {
          const std::vector<uint8_t> w = RandomMaskRow(type, n, density, seed);
          const std::vector<uint8_t> a = RandomActivationRow(type, n, 200 + seed);
          const std::vector<float> wf = DecodeRow(type, w, n), af = DecodeRow(ActivationType(type), a, n);
          const double want = DotDouble(wf.data(), af.data(), n);
          const double tol = KernelTolerance(n, DotMass(type, w.data(), a.data(), wf.data(), af.data(), n));
          const float got = ref(w.data(), a.data(), n);
          EXPECT_NEAR(got, want, tol) << DTypeName(type) << " n " << n << " density " << density << " seed " << seed;
          if (fast) {
            EXPECT_NEAR(fast(w.data(), a.data(), n), want, tol) << DTypeName(type) << " n " << n << " seed " << seed;
            EXPECT_NEAR(fast(w.data(), a.data(), n), got, 2 * tol) << DTypeName(type) << " n " << n << " seed " << seed;
          }
        }
  }
}

// The w8a8 bitmask rows sum exact integers, so every kernel of theirs gives, bit for bit, the
// w8a8 reference's dot of the same row written densely (the decoded weights divided by the row
// scale: the codes in place, zeros elsewhere): rows with odd block counts, the pair loop and its
// zero-padded tail, densities from empty to past the capacity.
TEST(QDot, SparseMaskW8A8IsTheW8A8DotOfItsDenseRow) {
  for (DType type : {DType::kSP50_W8A8, DType::kSP70_W8A8}) {
    std::vector<std::pair<const char*, QDotFn>> kernels = {{"reference", ReferenceQDot(type)},
                                                           {"avx2", Avx2QDot(type)},
                                                           {"avx512", Avx512QDot(type)}};
    uint32_t seed = 7;
    for (int64_t n : {32, 64, 96, 128, 160, 37 * 32, 4096})
      for (double density : {0.0, 0.2, 0.4, 0.6, 1.0}) {
        const std::vector<uint8_t> w = RandomMaskRow(type, n, density, seed++);
        const std::vector<uint8_t> a = RandomActivationRow(type, n, 500 + seed);
        float d;
        std::memcpy(&d, w.data(), sizeof d);
        const std::vector<float> wf = DecodeRow(type, w, n);
        std::vector<uint8_t> dense(RowBytes(DType::kW8A8, n));
        std::memcpy(dense.data(), &d, sizeof d);
        for (int64_t i = 0; i < n; ++i) dense[4 + i] = (uint8_t)(int8_t)(d == 0.0f ? 0 : std::lround(wf[i] / d));
        const float want = ReferenceQDot(DType::kW8A8)(dense.data(), a.data(), n);
        for (const auto& [name, f] : kernels) {
          if (f) {
            EXPECT_EQ(f(w.data(), a.data(), n), want) << DTypeName(type) << " " << name << " n " << n << " density " << density;
          }
        }
        if (const QDotX4Fn four = FastQDotX4(type)) {
          std::vector<uint8_t> a4(4 * a.size());
          for (int k = 0; k < 4; ++k) std::memcpy(a4.data() + k * a.size(), a.data(), a.size());
          float out[4];
          four(w.data(), a4.data(), a.size(), n, out);
          for (float o : out) EXPECT_EQ(o, want) << DTypeName(type) << " four rows n " << n;
        }
      }
    EXPECT_EQ(Avx512QDot(type) != nullptr, CpuHasAvx512Vbmi2());
  }
}

// A bitmask row of fp16 values: masks of the given density (1.0: more set bits than the capacity
// holds), Gaussian values of every magnitude from 2^-10 to 2^10, d of kind seed % 3 (1, tiny, huge).
std::vector<uint8_t> RandomMaskRowF16(DType type, int64_t n, double density, uint32_t seed) {
  std::vector<uint8_t> row = RandomMaskRow(type, n, density, seed);
  const float scales[] = {1.0f, 1.0e-20f, 3.0e4f};
  std::memcpy(row.data(), &scales[seed % 3], 4);
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (size_t k = SparseCodesOffset(n); k + 1 < row.size(); k += 2) {
    const fp16_t v = FloatToFp16(g(rng) * std::ldexp(1.0f, (int)(rng() % 21) - 10));
    std::memcpy(row.data() + k, &v, 2);
  }
  return row;
}

// The fp16 bitmask rows: the reference against the decoded rows' dot in double, the AVX2 and
// AVX-512 twins against it (their sums over 8 or 16 lanes differ in order only), at densities
// from empty to over the capacity (set bits past it read as zeros), rows of 1 to 128 blocks.
TEST(QDot, SparseMaskF16KernelsAgreeWithTheDecodedDot) {
  for (DType type : {DType::kSP50_F16, DType::kSP70_F16}) {
    const QDotFn ref = ReferenceQDot(type);
    ASSERT_NE(ref, nullptr);
    EXPECT_EQ(Avx512QDot(type) != nullptr, CpuHasAvx512Vbmi2());
    EXPECT_EQ(FastQDot(type) != nullptr, CpuHasAvx2FmaF16c());
    const std::vector<std::pair<const char*, QDotFn>> twins = {{"avx2", Avx2QDot(type)}, {"avx512", Avx512QDot(type)}};
    uint32_t seed = 1;
    for (int64_t n : {32, 64, 96, 37 * 32, 4096})
      for (double density : {0.0, 0.1, 0.3, 0.5, 1.0})
        for (int rep = 0; rep < 3; ++rep, ++seed) {
          const std::vector<uint8_t> w = RandomMaskRowF16(type, n, density, seed);
          const std::vector<uint8_t> a = RandomActivationRow(type, n, 700 + seed);
          const std::vector<float> wf = DecodeRow(type, w, n), af = DecodeRow(ActivationType(type), a, n);
          const double want = DotDouble(wf.data(), af.data(), n);
          double mass = 0;
          for (int64_t i = 0; i < n; ++i) mass += std::fabs((double)wf[i] * af[i]);
          const double tol = (double)(n + 4) * std::ldexp(mass, -23);
          const float got = ref(w.data(), a.data(), n);
          EXPECT_NEAR(got, want, tol) << DTypeName(type) << " n " << n << " density " << density << " seed " << seed;
          for (const auto& [name, f] : twins) {
            if (f) {
              EXPECT_NEAR(f(w.data(), a.data(), n), want, tol) << DTypeName(type) << " " << name << " n " << n << " seed " << seed;
            }
          }
        }
  }
}

// A random s24_w4a8 row: every index and code bit pattern (positions collide), bf16 scales of
// every kind (zero, ordinary, huge, tiny) and the header its blocks define.
std::vector<uint8_t> RandomS24W4A8Row(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::vector<uint8_t> row(RowBytes(DType::kS24_W4A8, n));
  for (uint8_t& byte : row) byte = (uint8_t)rng();
  const float kinds[] = {0.0f, 0.02f, 3000.0f, 1.0e-30f};
  for (int64_t i = 0; i < n / kQKS24W4; ++i)
    for (int h = 0; h < 2; ++h) {
      const bf16_t d = FloatToBf16(kinds[(2 * i + h + seed) % 4] * gauss(rng));
      std::memcpy(row.data() + sizeof(RowHeaderS24W4) + i * sizeof(BlockS24W4) + 2 * h, &d, sizeof d);
    }
  const float c = S24W4A8CodeSum(row.data(), n);
  std::memcpy(row.data(), &c, sizeof c);
  return row;
}

// s24_w4a8: the reference against the decoded rows' dot in double; the AVX2 and AVX-512 twins,
// which add 128 to every activation code and take 128·c off at the end, against it within the
// f32 rounding of those larger terms, Σ |d·q|·(|q_a| + 128)·d_a; rows of 1 to 37 blocks.
TEST(QDot, S24W4A8KernelsAgreeWithTheDecodedDot) {
  const DType type = DType::kS24_W4A8;
  const QDotFn ref = ReferenceQDot(type);
  ASSERT_NE(ref, nullptr);
  EXPECT_EQ(FastQDot(type) != nullptr, CpuHasAvx2FmaF16c());
  EXPECT_EQ(Avx512QDot(type) != nullptr, CpuHasAvx512Vbmi());
  const std::vector<std::pair<const char*, QDotFn>> fast = {{"avx2", Avx2QDot(type)}, {"avx512", Avx512QDot(type)}};
  for (int64_t n : {128, 256, 384, 37 * 128, 4096})
    for (uint32_t seed = 1; seed <= 10; ++seed) {
      const std::vector<uint8_t> w = RandomS24W4A8Row(n, seed + (uint32_t)n);
      const std::vector<uint8_t> a = RandomActivationRow(type, n, 300 + seed);
      const std::vector<float> wf = DecodeRow(type, w, n), af = DecodeRow(ActivationType(type), a, n);
      const double want = DotDouble(wf.data(), af.data(), n);
      EXPECT_NEAR(ref(w.data(), a.data(), n), want, KernelTolerance(n, DotMass(type, w.data(), a.data(), wf.data(), af.data(), n)))
          << "n " << n << " seed " << seed;
      const I8RowView act = ViewI8Row(a.data());
      double mass = 0;
      for (int64_t i = 0; i < n / kQKS24W4; ++i) {
        BlockS24W4 b;
        std::memcpy(&b, w.data() + sizeof(RowHeaderS24W4) + i * sizeof b, sizeof b);
        for (int s = 0; s < 64; ++s)
          mass += std::fabs(Bf16ToFloat(b.d[S24W4Half(s)]) * S24W4Code(b, s)) *
                  (std::abs((int8_t)act.codes[i * kQKS24W4 + S24W4Position(b, s)]) + 128) * act.d;
      }
      const double tol = (double)(n / kQKS24W4 + 20) * std::ldexp(mass, -23);
      for (const auto& [name, f] : fast) {
        if (f) {
          EXPECT_NEAR(f(w.data(), a.data(), n), want, tol) << name << " n " << n << " seed " << seed;
        }
      }
    }
}

// The four-weight-row form gives four single calls' bits: s24_w4a8 rows 1 to 37 blocks long; f16,
// bf16 and i8_pc rows of every tail (under 8, under 32 and whole steps of 32 values); the k-quants over
// one to five super-blocks; the table-4 types over one and several sets of 16 groups, the per-row
// ones with tails; activations of mixed magnitudes; weight rows stored with padding between them.
TEST(QDot, FourWeightRowKernelsEqualFourSingleCalls) {
  EXPECT_EQ(FastQDotRows4(DType::kS24_W4A8) != nullptr, CpuHasAvx512Vbmi());
  EXPECT_EQ(FastQDotRows4(DType::kF16) != nullptr, CpuHasAvx512F());
  EXPECT_EQ(FastQDotRows4(DType::kQ4_0), nullptr);
  struct Case {
    DType type;
    std::vector<int64_t> lengths;
  };
  std::vector<Case> cases = {{DType::kS24_W4A8, {128, 256, 384, 37 * 128}},
                             {DType::kF16, {1, 7, 8, 31, 32, 45, 1024, 1024 + 40 + 3}},
                             {DType::kBF16, {1, 7, 8, 31, 32, 45, 1024, 1024 + 40 + 3}},
                             {DType::kI8_PC, {1, 7, 8, 31, 32, 45, 1024, 1024 + 40 + 3}}};
  for (DType type : {DType::kQ2_K, DType::kQ3_K, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K})  // one to five super-blocks
    cases.push_back({type, {256, 768, 1280}});
  for (DType type : table4::kTypes) {  // whole groups; the per-row types also tails of 8 to 56
    Case c{type, {128, 384, 1024 + 128, 16 * 128 + 128}};
    if (table4::LayoutOf(type).group == 0) c.lengths.insert(c.lengths.end(), {8, 56, 64 + 8, 1024 + 56});
    cases.push_back(c);
  }
  int checked = 0;
  for (const Case& c : cases) {
    const QDotRows4Fn rows4 = FastQDotRows4(c.type);
    if (!rows4) continue;
    for (int64_t n : c.lengths) {
      const size_t w_bytes = RowBytes(c.type, n), stride = w_bytes + 7;
      std::vector<uint8_t> w(4 * stride);
      for (int r = 0; r < 4; ++r) {
        const uint32_t seed = 60 + (uint32_t)r + (uint32_t)n;
        std::vector<uint8_t> row;
        if (c.type == DType::kS24_W4A8) {
          row = RandomS24W4A8Row(n, seed);
        } else {
          const std::vector<float> values = tiny::RandomVector(n, seed);
          row.resize(w_bytes);
          Traits(c.type).from_float(values.data(), row.data(), n);
        }
        std::memcpy(w.data() + r * stride, row.data(), w_bytes);
      }
      const std::vector<uint8_t> a = RandomActivationRow(c.type, n, 77);
      float out[4];
      rows4(w.data(), stride, a.data(), n, out);
      for (int r = 0; r < 4; ++r)
        EXPECT_EQ(out[r], FastQDot(c.type)(w.data() + r * stride, a.data(), n))
            << DTypeName(c.type) << " n " << n << " row " << r;
      ++checked;
    }
  }
  if (checked == 0) GTEST_SKIP() << "no four-weight-row kernel on this CPU";
}

// The two-row, four-token form gives eight single calls' bits: f16, bf16 and i8_pc rows of every tail,
// weight and activation rows stored with padding between them, the outputs in a wider matrix.
TEST(QDot, TwoRowFourTokenKernelsEqualSingleCalls) {
  EXPECT_EQ(FastQDotRows2x4(DType::kF16) != nullptr, CpuHasAvx512F());
  EXPECT_EQ(FastQDotRows2x4(DType::kQ4_0), nullptr);
  int checked = 0;
  for (DType type : {DType::kF16, DType::kBF16, DType::kI8_PC}) {
    const QDotRows2x4Fn rows2x4 = FastQDotRows2x4(type);
    if (!rows2x4) continue;
    for (int64_t n : {1, 7, 8, 31, 32, 45, 1024, 1024 + 40 + 3}) {
      const size_t w_bytes = RowBytes(type, n), w_stride = w_bytes + 5;
      const size_t a_bytes = RowBytes(ActivationType(type), n), a_stride = a_bytes + 3;
      std::vector<uint8_t> w(2 * w_stride), a(4 * a_stride);
      for (int r = 0; r < 2; ++r) {
        const std::vector<float> values = tiny::RandomVector(n, 30 + (uint32_t)r + (uint32_t)n);
        std::vector<uint8_t> row(w_bytes);  // encoded aligned, then placed at the odd stride
        Traits(type).from_float(values.data(), row.data(), n);
        std::memcpy(w.data() + r * w_stride, row.data(), w_bytes);
      }
      for (int t = 0; t < 4; ++t) {
        const std::vector<uint8_t> row = RandomActivationRow(type, n, 40 + (uint32_t)t);
        std::memcpy(a.data() + t * a_stride, row.data(), a_bytes);
      }
      const int64_t ld = 5;
      std::vector<float> out(4 * ld, -1.0f);
      rows2x4(w.data(), w_stride, a.data(), a_stride, n, out.data(), ld);
      for (int t = 0; t < 4; ++t)
        for (int r = 0; r < 2; ++r)
          EXPECT_EQ(out[t * ld + r], FastQDot(type)(w.data() + r * w_stride, a.data() + t * a_stride, n))
              << DTypeName(type) << " n " << n << " row " << r << " token " << t;
      for (int t = 0; t < 4; ++t)
        for (int64_t r = 2; r < ld; ++r) EXPECT_EQ(out[t * ld + r], -1.0f) << "wrote past its two rows";
      ++checked;
    }
  }
  if (checked == 0) GTEST_SKIP() << "no two-row, four-token kernel on this CPU";
}

// QDotRows, the row loop of MatMul and the fused products: every output the single-row kernel's
// bits, for row counts around the four-row step and token counts on both sides of the
// four-token form, in a wider output (ld > rows), for a type with a four-weight-row kernel and
// one with a four-token kernel.
TEST(QDot, RowLoopGivesTheSingleRowKernelsBits) {
  const int64_t n = 256;
  for (DType type : {DType::kS24_W4A8, DType::kQ4_0, DType::kF16}) {
    const QDotRowKernels k = FastQDotRowKernels(type);
    if (!k.dot) continue;
    const size_t w_bytes = RowBytes(type, n), a_bytes = RowBytes(ActivationType(type), n);
    for (int64_t rows : {1, 4, 7}) {
      std::vector<uint8_t> w(rows * w_bytes);
      const std::vector<float> values = tiny::RandomVector(rows * n, 90 + (uint32_t)rows);
      for (int64_t r = 0; r < rows; ++r) Traits(type).from_float(values.data() + r * n, w.data() + r * w_bytes, n);
      for (int64_t T : {1, 3, 4, 6, 8}) {
        std::vector<uint8_t> a(T * a_bytes);
        for (int64_t t = 0; t < T; ++t) {
          const std::vector<uint8_t> row = RandomActivationRow(type, n, 100 + (uint32_t)(t + 7 * T));
          std::memcpy(a.data() + t * a_bytes, row.data(), a_bytes);
        }
        const int64_t ld = rows + 3;
        std::vector<float> out(T * ld, -1.0f);
        QDotRows(k, w.data(), w_bytes, rows, a.data(), a_bytes, T, n, out.data(), ld);
        for (int64_t t = 0; t < T; ++t) {
          for (int64_t r = 0; r < rows; ++r)
            EXPECT_EQ(out[t * ld + r], k.dot(w.data() + r * w_bytes, a.data() + t * a_bytes, n))
                << DTypeName(type) << " rows " << rows << " T " << T << " t " << t << " r " << r;
          for (int64_t r = rows; r < ld; ++r) EXPECT_EQ(out[t * ld + r], -1.0f) << "written past the rows";
        }
      }
    }
  }
}

// MatMul on bitmask weights (encoded from a 70 %-sparse f32 matrix) against the decoded weights
// times the rounded activations, and the same bits for 1 and 2 threads.
TEST(QDot, MatMulOnSparseMaskWeights) {
  const int64_t C = 512, OC = 37;
  for (DType type : {DType::kSP50_Q8, DType::kSP70_Q8, DType::kSP50_W8A8, DType::kSP70_W8A8, DType::kSP70_W4A8}) {
    std::vector<float> values = tiny::RandomVector(C * OC, 31);
    for (size_t i = 0; i < values.size(); ++i)
      if (i % 10 < 7) values[i] = 0.0f;
    const Tensor w = tiny::EncodeTensor(MakeF32Tensor("w", {C, OC}, values), type);
    const Tensor decoded = MakeF32Tensor("w", {C, OC}, DequantizeAll(w));
    for (int64_t T : {1, 5}) {
      const std::vector<float> x = tiny::RandomVector(T * C, 32 + (uint32_t)T);
      std::vector<float> rounded(T * C), got(T * OC), got2(T * OC), want(T * OC);
      for (int64_t t = 0; t < T; ++t) RoundActivationRow(type, x.data() + t * C, rounded.data() + t * C, C);
      MatMul(w, x.data(), T, got.data(), 1, Activations::kGgml);
      MatMul(w, x.data(), T, got2.data(), 2, Activations::kGgml);
      EXPECT_EQ(got, got2) << DTypeName(type);
      MatMul(decoded, rounded.data(), T, want.data(), 1, Activations::kExact);
      for (int64_t t = 0; t < T; ++t)
        for (int64_t o = 0; o < OC; ++o) {
          double mass = 0;
          const float* wf = decoded.as<float>() + o * C;
          for (int64_t c = 0; c < C; ++c) mass += std::fabs((double)wf[c] * rounded[t * C + c]);
          EXPECT_NEAR(got[t * OC + o], want[t * OC + o], (C / 32 + 2 + C) * std::ldexp(mass, -23)) << DTypeName(type);
        }
    }
  }
}

// The four-row kernels give, bit for bit, what four single-row calls give: on random blocks,
// rows of one, two and 37 blocks, activation rows strided with padding between them.
TEST(QDot, FourRowKernelsEqualFourSingleCalls) {
  for (DType type : {DType::kQ8_0, DType::kQ4_0, DType::kQ5_0, DType::kIQ4_NL, DType::kQ2_K, DType::kQ4_K, DType::kQ5_K,
                     DType::kQ6_K, DType::kS24_Q8, DType::kS24_Q4, DType::kSP50_Q8, DType::kSP70_Q8,
                     DType::kSP50_W8A8, DType::kSP70_W8A8, DType::kS24_W4A8, DType::kSP50_F16, DType::kSP70_F16,
                     DType::kSP70_W4A8}) {
    const QDotX4Fn four = FastQDotX4(type);
    if (!four) GTEST_SKIP() << "no four-row kernel on this CPU";
    const int64_t block = Traits(type).block_size;
    for (int64_t n : {block, 2 * block, (int64_t)37 * 256, (int64_t)4096}) {
      const bool f16 = type == DType::kSP50_F16 || type == DType::kSP70_F16;
      const std::vector<uint8_t> w = type == DType::kS24_W4A8 ? RandomS24W4A8Row(n, 4 + (uint32_t)n)
                                     : f16                    ? RandomMaskRowF16(type, n, 0.3, 4 + (uint32_t)n)
                                     : Traits(type).row_header ? RandomMaskRow(type, n, 0.3, 4 + (uint32_t)n)
                                                               : RandomWeightRow(type, n, 3);
      const size_t a_bytes = RowBytes(ActivationType(type), n), stride = a_bytes + 5;
      std::vector<uint8_t> a(4 * stride);
      for (int k = 0; k < 4; ++k) {
        const std::vector<uint8_t> row = RandomActivationRow(type, n, 40 + k);
        std::memcpy(a.data() + k * stride, row.data(), a_bytes);
      }
      float out[4];
      four(w.data(), a.data(), stride, n, out);
      for (int k = 0; k < 4; ++k)
        EXPECT_EQ(out[k], FastQDot(type)(w.data(), a.data() + k * stride, n)) << DTypeName(type) << " n " << n;
    }
  }
  EXPECT_EQ(FastQDotX4(DType::kQ3_K), nullptr);
}

// The AVX-512 twins `wide` and `four` of a row dot give the AVX2 twin's bits on weight row w
// against four random activation rows (seeds seed .. seed + 3), stored `pad` bytes apart.
void ExpectAvx2Bits(DType type, QDotFn wide, QDotX4Fn four, QDotFn avx2, const std::vector<uint8_t>& w, int64_t n,
                    size_t pad, uint32_t seed, const std::string& what) {
  const size_t a_bytes = RowBytes(ActivationType(type), n), stride = a_bytes + pad;
  std::vector<uint8_t> a(4 * stride);
  for (int k = 0; k < 4; ++k) {
    const std::vector<uint8_t> row = RandomActivationRow(type, n, seed + (uint32_t)k);
    std::memcpy(a.data() + k * stride, row.data(), a_bytes);
  }
  float out[4];
  four(w.data(), a.data(), stride, n, out);
  for (int k = 0; k < 4; ++k) {
    const float want = avx2(w.data(), a.data() + k * stride, n);
    EXPECT_EQ(wide(w.data(), a.data() + k * stride, n), want) << what;
    EXPECT_EQ(out[k], want) << what << " row " << k;
  }
}

// The AVX-512 half-precision twins give the AVX2 twin's bits (so the logits do not depend on which
// of the two a CPU runs), and their four-row form four single calls' bits: rows with and without
// 8-value and single-value tails, activation rows strided with padding.
TEST(QDot, Avx512HalfDotsAreTheAvx2BitsAndFourRowsAreFourCalls) {
  if (!CpuHasAvx512F()) GTEST_SKIP() << "no AVX-512 on this CPU";
  for (DType type : {DType::kF16, DType::kBF16}) {
    const QDotFn wide = Avx512QDot(type), avx2 = Avx2QDot(type);
    const QDotX4Fn four = Avx512QDotX4(type);
    ASSERT_TRUE(wide && avx2 && four) << DTypeName(type);
    EXPECT_EQ(FastQDot(type), wide);
    EXPECT_EQ(FastQDotX4(type), four);
    for (int64_t n : {1, 7, 8, 40, 64, 96, 1000, 1027})
      ExpectAvx2Bits(type, wide, four, avx2, RandomWeightRow(type, n, 11 + (uint32_t)n), n, 6, 60 + (uint32_t)n,
                     std::string(DTypeName(type)) + " n " + std::to_string(n));
  }
  EXPECT_EQ(Avx512QDot(DType::kQ8_0), nullptr);
}

// The same for i8_pc · f32 (int8 codes widened to f32): encoded rows of every tail, the f32 row
// scale of each row its own.
TEST(QDot, Avx512I8PCIsTheAvx2BitsAndFourRowsAreFourCalls) {
  if (!CpuHasAvx512F()) GTEST_SKIP() << "no AVX-512 on this CPU";
  const DType type = DType::kI8_PC;
  const QDotFn wide = Avx512QDot(type), avx2 = Avx2QDot(type);
  const QDotX4Fn four = Avx512QDotX4(type);
  ASSERT_TRUE(wide && avx2 && four);
  EXPECT_EQ(FastQDot(type), wide);
  EXPECT_EQ(FastQDotX4(type), four);
  for (int64_t n : {1, 7, 8, 40, 64, 96, 1000, 1027}) {
    std::vector<float> values = tiny::RandomVector(n, 90 + (uint32_t)n);
    for (int64_t i = 0; i < n; i += 13) values[i] *= 40.0f;  // outliers set the row scale
    std::vector<uint8_t> w(RowBytes(type, n));
    Traits(type).from_float(values.data(), w.data(), n);
    ExpectAvx2Bits(type, wide, four, avx2, w, n, 6, 70 + (uint32_t)n, "i8_pc n " + std::to_string(n));
  }
}

// sp70_w4a8 (int4 codes in bitmask rows, an 8-bit multiplier per run of 16 stored weights): the
// reference against the decoded rows' dot in double, and every twin (AVX2, AVX-512 VBMI2, their
// four-row forms) the reference's bits, since every kernel sums the same exact integers and takes
// one f32 step. Random rows of every byte pattern (every multiplier, nibble 0 reading as −8) with
// masks from empty to every bit set (past the capacity: those bits read as 0), the f32 scale of
// every kind; rows of one block, of odd block counts, of a window of 64 groups and more (the
// twins' packed activations carried across windows); encoded rows of 70 % sparse Gaussian
// weights too.
TEST(QDot, SparseMaskW4A8TwinsAreTheReferenceBits) {
  const DType type = DType::kSP70_W4A8;
  const QDotFn ref = ReferenceQDot(type);
  ASSERT_NE(ref, nullptr);
  // Each twin where this CPU (and SMELT_MAX_ISA) runs it.
  if (CpuHasAvx2FmaF16c()) {
    EXPECT_NE(Avx2QDot(type), nullptr);
  }
  EXPECT_EQ(Avx512QDot(type) != nullptr, CpuHasAvx512Vbmi2());
  const std::vector<std::pair<const char*, QDotFn>> twins = {{"avx2", CpuHasAvx2FmaF16c() ? Avx2QDot(type) : nullptr},
                                                             {"avx512", Avx512QDot(type)}};
  const qdot::Avx2Kernels* avx2 = CpuHasAvx2FmaF16c() ? qdot::Avx2() : nullptr;
  const QDotX4Fn fours[] = {avx2 ? avx2->x4_sp70_w4a8 : nullptr, Avx512QDotX4(type)};
  uint32_t seed = 1;
  for (int64_t n : {256, 512, 768, 17 * 256, 4096, 53 * 256})
    for (double density : {-1.0, 0.0, 0.1, 0.3, 0.5, 1.0})
      for (int rep = 0; rep < 3; ++rep, ++seed) {
        std::vector<uint8_t> w;
        if (density < 0) {  // encoded: 70 % of a Gaussian row zeroed, the rest rounded to the grid
          std::vector<float> x = tiny::RandomVector(n, seed);
          for (int64_t i = 0; i < n; ++i)
            if ((i * 7 + seed) % 10 < 7) x[i] = 0.0f;
          w.resize(RowBytes(type, n));
          Traits(type).from_float(x.data(), w.data(), n);
        } else {
          w = RandomMaskRow(type, n, density, seed);
        }
        const std::vector<uint8_t> a = RandomActivationRow(type, n, 300 + seed);
        const std::vector<float> wf = DecodeRow(type, w, n), af = DecodeRow(ActivationType(type), a, n);
        const std::string what = "n " + std::to_string(n) + " density " + std::to_string(density) + " seed " + std::to_string(seed);
        const float got = ref(w.data(), a.data(), n);
        EXPECT_NEAR(got, DotDouble(wf.data(), af.data(), n), KernelTolerance(n, DotMass(type, w.data(), a.data(), wf.data(), af.data(), n))) << what;
        for (const auto& [name, twin] : twins) {
          if (twin) {
            EXPECT_EQ(twin(w.data(), a.data(), n), got) << name << " " << what;
          }
        }
        const size_t a_bytes = a.size(), stride = a_bytes + 3;
        std::vector<uint8_t> four_rows(4 * stride);
        for (int k = 0; k < 4; ++k) {
          const std::vector<uint8_t> row = RandomActivationRow(type, n, 900 + seed + k);
          std::memcpy(four_rows.data() + k * stride, row.data(), a_bytes);
        }
        for (const QDotX4Fn four : fours) {
          if (!four) continue;
          float out[4];
          four(w.data(), four_rows.data(), stride, n, out);
          for (int k = 0; k < 4; ++k) EXPECT_EQ(out[k], ref(w.data(), four_rows.data() + k * stride, n)) << "x4 " << what;
        }
      }
}

// The VBMI2 twins of the bitmask rows give the AVX2 twin's bits, alone and four rows at a time, at
// densities from empty to past the capacity (set bits beyond it read as zeros) and rows ending in
// the zero-padded tail.
TEST(QDot, Avx512SparseMaskRowsAreTheAvx2Bits) {
  if (!CpuHasAvx512Vbmi2()) GTEST_SKIP() << "no AVX-512 VBMI2 on this CPU";
  for (DType type : {DType::kSP50_Q8, DType::kSP70_Q8, DType::kSP50_W8A8, DType::kSP70_W8A8}) {
    const QDotFn wide = Avx512QDot(type), avx2 = Avx2QDot(type);
    const QDotX4Fn four = Avx512QDotX4(type);
    ASSERT_TRUE(wide && avx2 && four) << DTypeName(type);
    EXPECT_EQ(FastQDot(type), wide);
    uint32_t seed = 1;
    for (int64_t n : {32, 64, 96, 128, 37 * 32, 4096})
      for (double density : {0.0, 0.1, 0.3, 0.5, 1.0}) {
        const std::vector<uint8_t> w = RandomMaskRow(type, n, density, seed++);
        ExpectAvx2Bits(type, wide, four, avx2, w, n, 3, 300 + seed,
                       std::string(DTypeName(type)) + " n " + std::to_string(n) + " density " + std::to_string(density));
      }
  }
}

// The AVX-512 VNNI twin of the w8a8 row dot gives the AVX2 twin's bits (an exact int32 sum and one
// f32 step in both), with and without a tail past the last 64 codes.
TEST(QDot, Avx512W8A8IsTheAvx2Bits) {
  if (!CpuHasAvx512F() || !CpuHasAvx512Vnni()) GTEST_SKIP() << "no AVX-512 VNNI on this CPU";
  const QDotFn wide = Avx512QDot(DType::kW8A8), avx2 = Avx2QDot(DType::kW8A8);
  ASSERT_TRUE(wide && avx2);
  EXPECT_EQ(FastQDot(DType::kW8A8), wide);
  for (int64_t n : {1, 63, 64, 100, 128, 1000, 4096}) {
    const std::vector<uint8_t> w = RandomWeightRow(DType::kW8A8, n, 31 + (uint32_t)n);
    const std::vector<uint8_t> a = RandomActivationRow(DType::kW8A8, n, 41 + (uint32_t)n);
    EXPECT_EQ(wide(w.data(), a.data(), n), avx2(w.data(), a.data(), n)) << "n " << n;
  }
}

// The AVX-512 Q3_K twin gives the AVX2 twin's bits (the same integer lane sums and f32 steps), on
// rows with scales of every kind and activation runs of every size.
TEST(QDot, Avx512Q3KIsTheAvx2Bits) {
  if (!CpuHasAvx512F()) GTEST_SKIP() << "no AVX-512 on this CPU";
  for (DType type : {DType::kQ3_K, DType::kQ6_K}) {
    const QDotFn wide = Avx512QDot(type), avx2 = Avx2QDot(type);
    ASSERT_TRUE(wide && avx2) << DTypeName(type);
    EXPECT_EQ(FastQDot(type), wide);
    for (int64_t n : {256, 512, 37 * 256, 4096})
      for (uint32_t seed : {1u, 2u, 3u}) {
        const std::vector<uint8_t> w = RandomWeightRow(type, n, seed + (uint32_t)n);
        const std::vector<uint8_t> a = RandomActivationRow(type, n, 7 * seed + (uint32_t)n);
        EXPECT_EQ(wide(w.data(), a.data(), n), avx2(w.data(), a.data(), n)) << DTypeName(type) << " n " << n;
      }
  }
}

}  // namespace
}  // namespace smelt
