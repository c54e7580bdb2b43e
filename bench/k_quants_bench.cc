// k-quant encoders on one thread: the scalar reference (QuantizeRow*_KRef) against the format
// table's from_float (AVX2 scale searches where the CPU has them; same bytes).
//   build/smelt_bench --benchmark_filter=KQuant
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "formats/k_quants.h"

namespace smelt {
namespace {

constexpr int64_t kWeights = 1 << 18;  // 1024 super-blocks

const std::vector<float>& Weights() {
  static const std::vector<float> x = [] {
    std::mt19937 rng(1);
    std::normal_distribution<float> g(0.0f, 0.02f);
    std::vector<float> v(kWeights);
    for (float& f : v) f = g(rng);
    return v;
  }();
  return x;
}

template <class Block, void (*Encode)(const float*, Block*, int64_t)>
void BM_KQuant(benchmark::State& state) {
  const std::vector<float>& x = Weights();
  std::vector<Block> y(kWeights / kQK_K);
  for (auto _ : state) {
    Encode(x.data(), y.data(), kWeights);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetItemsProcessed(state.iterations() * kWeights);
}

BENCHMARK(BM_KQuant<BlockQ2_K, QuantizeRowQ2_KRef>)->Name("KQuant/q2_K/ref")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_KQuant<BlockQ2_K, QuantizeRowQ2_K>)->Name("KQuant/q2_K/fast")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_KQuant<BlockQ3_K, QuantizeRowQ3_KRef>)->Name("KQuant/q3_K/ref")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_KQuant<BlockQ3_K, QuantizeRowQ3_K>)->Name("KQuant/q3_K/fast")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_KQuant<BlockQ4_K, QuantizeRowQ4_KRef>)->Name("KQuant/q4_K/ref")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_KQuant<BlockQ4_K, QuantizeRowQ4_K>)->Name("KQuant/q4_K/fast")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_KQuant<BlockQ5_K, QuantizeRowQ5_KRef>)->Name("KQuant/q5_K/ref")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_KQuant<BlockQ5_K, QuantizeRowQ5_K>)->Name("KQuant/q5_K/fast")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_KQuant<BlockQ6_K, QuantizeRowQ6_KRef>)->Name("KQuant/q6_K/ref")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_KQuant<BlockQ6_K, QuantizeRowQ6_K>)->Name("KQuant/q6_K/fast")->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace smelt
