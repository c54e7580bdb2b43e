// Matrix products on packed Q4_0/Q8_0/NF4/Q2_K/Q3_K/Q4_K/Q5_K weights (kernels/packed.h) against the unpacked
// kernels (kernels/qdot.h through MatMul), one thread, a 4096 × 4096 matrix (9.4 MB in Q4_0, 17.8 MB
// in Q8_0: beyond the last-level cache of small machines) times T tokens (64: a prompt, which the
// k-quants run on their blocked prompt kernel, the packed rows unpacked 16 at a time). Counters: GB/s of weight
// bytes (each product reads the matrix once) and GFLOP/s (2 · rows · cols · T per product).
// Packed/q4_0/packed-l2 is the same product on a 256 × 4096 matrix (590 KB, held in a 2 MB L2):
// where its GB/s matches the 4096-row case the kernel is bound by its own work, not by memory.
//   build/smelt_bench --benchmark_filter=Packed
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "formats/types.h"
#include "kernels/packed.h"
#include "product_bench.h"

namespace smelt {
namespace {

constexpr int64_t kCols = 4096;

void BM_Product(benchmark::State& state, DType type, bool packed, int64_t rows) {
  const int64_t T = state.range(0);
  if (!FastPackedGemm(type)) {
    state.SkipWithError("no packed kernel on this CPU");
    return;
  }
  std::mt19937 rng(1);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> w(kCols);
  const size_t row_bytes = RowBytes(type, kCols);
  std::vector<uint8_t> bytes(row_bytes * rows);
  for (int64_t r = 0; r < rows; ++r) {
    for (float& v : w) v = g(rng);
    Traits(type).from_float(w.data(), bytes.data() + r * row_bytes, kCols);
  }
  TimeProducts(state, MatrixView(type, kCols, rows, bytes), packed, T);
}

void Register() {
  for (DType type : {DType::kQ4_0, DType::kQ8_0, DType::kNF4, DType::kQ2_K, DType::kQ3_K, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K})
    for (bool packed : {true, false}) {
      const std::string name = "Packed/" + std::string(DTypeName(type)) + (packed ? "/packed" : "/unpacked");
      benchmark::RegisterBenchmark(name.c_str(), BM_Product, type, packed, int64_t{4096})
          ->Arg(1)->Arg(4)->Arg(8)->Arg(16)->Arg(64)->Unit(benchmark::kMillisecond);
    }
  benchmark::RegisterBenchmark("Packed/q4_0/packed-l2", BM_Product, DType::kQ4_0, true, int64_t{256})
      ->Arg(1)->Arg(8)->Arg(16)->Unit(benchmark::kMillisecond);
}
[[maybe_unused]] const int kRegistered = (Register(), 0);

}  // namespace
}  // namespace smelt
