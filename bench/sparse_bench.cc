// Matrix products on sparse weights (formats/sparse24.h, formats/sparse_mask.h: the sparse
// kernels of kernels/qdot.h through MatMul) against the dense types of the same precision on the
// same pruned matrix (Q8_0 and Q4_0 packed as the runtime packs them, kernels/packed.h), one
// thread, a 4096 × 4096 matrix times T tokens. The matrix is Gaussian, pruned to 2:4 (the s24
// types and their dense twins) or to 50 % / 70 % zeros per row (the bitmask types and theirs).
// Counters (product_bench.h): GB/s of weight bytes and dense-equivalent GFLOP/s (zeros
// included, so rates compare across types).
// Sparse/70%/mask-compress-bound times what any kernel that multiplies only the stored weights of
// bitmask rows must do before its products: every row's activation bytes packed by the row's mask
// (one vpcompressb per 64 positions and a store) — the floor of an unstructured int4 row kernel,
// to set against Sparse/70%/q4_0 on the same matrix.
//   build/smelt_bench --benchmark_filter=Sparse
#include <benchmark/benchmark.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "formats/types.h"
#include "kernels/packed.h"
#include "kernels/qdot.h"
#include "product_bench.h"

namespace smelt {
namespace {

constexpr int64_t kRows = 4096, kCols = 4096;

// One Gaussian row pruned: sparsity 0 keeps the 2 largest magnitudes of every 4, else the
// `sparsity` fraction of smallest magnitudes is zeroed.
void PrunedRow(std::mt19937& rng, double sparsity, std::vector<float>& w) {
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (float& v : w) v = g(rng);
  std::vector<int64_t> order(w.size());
  std::iota(order.begin(), order.end(), 0);
  if (sparsity == 0.0) {
    for (size_t i = 0; i < w.size(); i += 4) {
      std::sort(order.begin() + i, order.begin() + i + 4, [&w](int64_t a, int64_t b) { return std::fabs(w[a]) < std::fabs(w[b]); });
      w[order[i]] = w[order[i + 1]] = 0.0f;
    }
    return;
  }
  std::sort(order.begin(), order.end(), [&w](int64_t a, int64_t b) { return std::fabs(w[a]) < std::fabs(w[b]); });
  for (int64_t i = 0; i < (int64_t)std::llround(sparsity * (double)w.size()); ++i) w[order[i]] = 0.0f;
}

void BM_SparseProduct(benchmark::State& state, DType type, double sparsity) {
  const int64_t T = state.range(0);
  const bool packed = FastPackedGemm(type) != nullptr;
  if (!packed && !FastQDot(type)) {
    state.SkipWithError("no kernel on this CPU");
    return;
  }
  std::mt19937 rng(1);
  std::vector<float> w(kCols);
  const size_t row_bytes = RowBytes(type, kCols);
  std::vector<uint8_t> bytes(row_bytes * kRows);
  for (int64_t r = 0; r < kRows; ++r) {
    PrunedRow(rng, sparsity, w);
    Traits(type).from_float(w.data(), bytes.data() + r * row_bytes, kCols);
  }
  TimeProducts(state, MatrixView(type, kCols, kRows, bytes), packed, T);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// Each row's int8 activations packed by its mask (64 positions per step) into `packed`; returns
// the stored count summed over the rows, so that the work is not optimized away.
__attribute__((target("avx512f,avx512bw,avx512vbmi2,popcnt"))) int64_t CompressByMasks(
    const std::vector<uint64_t>& masks, const int8_t* a, int64_t rows, int64_t cols, int8_t* packed) {
  int64_t total = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const uint64_t* m = masks.data() + r * (cols / 64);
    int64_t p = 0;
    for (int64_t w = 0; w < cols / 64; ++w) {
      const __m512i v = _mm512_loadu_si512(a + 64 * w);
      _mm512_storeu_si512(packed + p, _mm512_maskz_compress_epi8(m[w], v));
      p += __builtin_popcountll(m[w]);
    }
    total += p;
  }
  return total;
}

void BM_MaskCompressBound(benchmark::State& state) {
  if (!CpuHasAvx512Vbmi2()) {
    state.SkipWithError("needs AVX-512 VBMI2");
    return;
  }
  std::mt19937 rng(1);
  std::vector<float> w(kCols);
  std::vector<uint64_t> masks(kRows * (kCols / 64), 0);
  for (int64_t r = 0; r < kRows; ++r) {
    PrunedRow(rng, 0.7, w);
    for (int64_t c = 0; c < kCols; ++c)
      if (w[c] != 0.0f) masks[r * (kCols / 64) + c / 64] |= 1ULL << (c % 64);
  }
  std::vector<int8_t> a(kCols), packed(kCols + 64);
  for (int8_t& v : a) v = (int8_t)(rng() & 0x7F);
  for (auto _ : state) benchmark::DoNotOptimize(CompressByMasks(masks, a.data(), kRows, kCols, packed.data()));
  state.counters["GB/s"] =
      benchmark::Counter((double)state.iterations() * (double)(masks.size() * 8) / 1e9, benchmark::Counter::kIsRate);
}
#endif

void Register() {
  const struct {
    DType type;
    double sparsity;
    const char* pattern;
  } cases[] = {{DType::kS24_Q8, 0.0, "2:4"},  {DType::kQ8_0, 0.0, "2:4"},  {DType::kS24_Q4, 0.0, "2:4"},
               {DType::kQ4_0, 0.0, "2:4"},    {DType::kS24_W4A8, 0.0, "2:4"}, {DType::kSP70_Q8, 0.7, "70%"}, {DType::kQ8_0, 0.7, "70%"},
               {DType::kSP50_Q8, 0.5, "50%"}, {DType::kQ8_0, 0.5, "50%"},
               {DType::kSP50_W8A8, 0.0, "2:4"}, {DType::kW8A8, 0.0, "2:4"},
               {DType::kSP70_W8A8, 0.7, "70%"}, {DType::kW8A8, 0.7, "70%"},
               {DType::kSP50_F16, 0.0, "2:4"}, {DType::kF16, 0.0, "2:4"},
               {DType::kSP70_F16, 0.7, "70%"}, {DType::kF16, 0.7, "70%"}, {DType::kQ4_0, 0.7, "70%"},
               {DType::kSP70_W4A8, 0.7, "70%"}};
  for (const auto& c : cases) {
    const std::string name = "Sparse/" + std::string(c.pattern) + "/" + std::string(DTypeName(c.type));
    benchmark::RegisterBenchmark(name.c_str(), BM_SparseProduct, c.type, c.sparsity)->Arg(1)->Arg(4)->Arg(16)->Unit(
        benchmark::kMillisecond);
  }
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  benchmark::RegisterBenchmark("Sparse/70%/mask-compress-bound", BM_MaskCompressBound)->Unit(benchmark::kMillisecond);
#endif
}
[[maybe_unused]] const int kRegistered = (Register(), 0);

}  // namespace
}  // namespace smelt
