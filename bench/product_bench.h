#pragma once
// The timing loop shared by the matrix-product benchmarks: one thread, T random input rows times
// the matrix `t` through MatMulPacked (packed: the runtime's packed copy, kernels/packed.h) or
// MatMul, per iteration. Counters: GB/s of the weight bytes (each product reads the matrix once)
// and GFLOP/s (2 · rows · cols · T per product, zero weights included).
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "core/tensor.h"
#include "kernels/matmul.h"
#include "kernels/packed.h"

namespace smelt {

inline void TimeProducts(benchmark::State& state, const Tensor& t, bool packed, int64_t T) {
  const int64_t cols = t.ne[0], rows = t.ne[1];
  std::mt19937 rng(2);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> x(T * cols), y(T * rows);
  for (float& v : x) v = g(rng);
  const PackedMatrix p = packed ? PackWeights(t) : PackedMatrix{};
  for (auto _ : state) {
    if (packed) {
      MatMulPacked(p, x.data(), T, y.data(), 1);
    } else {
      MatMul(t, x.data(), T, y.data(), 1);
    }
    benchmark::DoNotOptimize(y.data());
  }
  const double n = (double)state.iterations();
  state.counters["GB/s"] = benchmark::Counter(n * (double)t.nbytes / 1e9, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] =
      benchmark::Counter(n * 2.0 * (double)rows * cols * (double)T / 1e9, benchmark::Counter::kIsRate);
}

// A view of `bytes` as a (rows, cols) matrix of `type`.
inline Tensor MatrixView(DType type, int64_t cols, int64_t rows, const std::vector<uint8_t>& bytes) {
  Tensor t;
  t.name = "bench.weight";
  t.type = type;
  t.n_dims = 2;
  t.ne = {cols, rows, 1, 1};
  t.data = bytes.data();
  t.nbytes = bytes.size();
  return t;
}

}  // namespace smelt
