// One weight row times one encoded activation row, 4096 values, one thread: the scalar reference
// kernels (ReferenceQDot) against their AVX2 twins (Avx2QDot) and the kernel this CPU runs
// (FastQDot: the AVX-512 twin where there is one), and the decode-then-f32-dot of the row that
// MatMul ran before the kernels (DequantizeRow into a buffer, then DotF32 with the rounded
// activations). The weight-only 4-bit per-row types (i4s_pc/i4a_pc, km4_pc: kernels/qdot_table4.h) take
// f32 activations; the 4-bit group types run as Q4_0/Q4_1 and nf4 in its own packed kernels (packed at
// load, bench/packed_bench.cc). Counters: GB/s of weight bytes and GFLOP/s (2 per value).
//   build/smelt_bench --benchmark_filter=QDot
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "formats/activation.h"
#include "formats/types.h"
#include "kernels/ops.h"
#include "kernels/qdot.h"

namespace smelt {
namespace {

constexpr int64_t kValues = 4096;

struct Rows {
  std::vector<uint8_t> w, a;
  std::vector<float> rounded;
};

Rows MakeRows(DType type) {
  std::mt19937 rng(1);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> w(kValues), x(kValues);
  for (float& v : w) v = g(rng);
  for (float& v : x) v = g(rng);
  Rows r;
  r.w.resize(RowBytes(type, kValues));
  r.a.resize(RowBytes(ActivationType(type), kValues));
  r.rounded.resize(kValues);
  Traits(type).from_float(w.data(), r.w.data(), kValues);
  QuantizeActivationRow(ActivationType(type), x.data(), r.a.data(), kValues);
  RoundActivationRow(type, x.data(), r.rounded.data(), kValues);
  return r;
}

// kind 0: reference kernel, 1: AVX2 twin, 2: decode the row, then DotF32, 3: FastQDot.
void BM_QDot(benchmark::State& state, DType type, int kind) {
  const Rows r = MakeRows(type);
  const QDotFn f = kind == 0                            ? ReferenceQDot(type)
                   : kind == 1 && CpuHasAvx2FmaF16c() ? Avx2QDot(type)
                   : kind == 3                          ? FastQDot(type)
                                                        : nullptr;
  if (kind != 2 && !f) {
    state.SkipWithError("no kernel on this CPU");
    return;
  }
  std::vector<float> decoded(kValues);
  for (auto _ : state) {
    float s;
    if (kind == 2) {
      Traits(type).to_float(r.w.data(), decoded.data(), kValues);
      s = DotF32(decoded.data(), r.rounded.data(), (int64_t)decoded.size());
    } else {
      s = f(r.w.data(), r.a.data(), kValues);
    }
    benchmark::DoNotOptimize(s);
  }
  state.SetItemsProcessed(state.iterations() * kValues);
  // The weight row's bytes read and 2 flops per value (the row sits in L1: a compute rate).
  const double n = (double)state.iterations();
  state.counters["GB/s"] = benchmark::Counter(n * (double)r.w.size() / 1e9, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] = benchmark::Counter(n * 2.0 * kValues / 1e9, benchmark::Counter::kIsRate);
}

void Register() {
  for (DType t : {DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1, DType::kIQ4_NL, DType::kQ2_K,
                  DType::kQ3_K, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K, DType::kS24_Q8, DType::kS24_Q4,
                  DType::kSP50_Q8, DType::kSP70_Q8, DType::kI4S_PC, DType::kI4A_PC,
                  DType::kKM4_PC}) {
    const std::string name = "QDot/" + std::string(DTypeName(t));
    benchmark::RegisterBenchmark((name + "/ref").c_str(), BM_QDot, t, 0);
    benchmark::RegisterBenchmark((name + "/avx2").c_str(), BM_QDot, t, 1);
    benchmark::RegisterBenchmark((name + "/fast").c_str(), BM_QDot, t, 3);
    benchmark::RegisterBenchmark((name + "/decode+f32").c_str(), BM_QDot, t, 2);
  }
}
[[maybe_unused]] const int kRegistered = (Register(), 0);

}  // namespace
}  // namespace smelt
