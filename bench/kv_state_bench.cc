// What a saved prompt prefix saves: evaluating a 512-token prefix with the forward pass against
// saving and loading its KV state (model/kv_state.h), per cache type, and the model fingerprint
// that every save and load computes. A synthetic f32 model (dim 512, 8 layers, 8 heads, ff 1376,
// vocab 4096: 29.5M parameters), one thread; the state file goes to the temp folder (page cache).
//   build/smelt_bench --benchmark_filter=KvState
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "model/kv_state.h"
#include "model/llama.h"
#include "model/synth.h"

namespace smelt {
namespace {

constexpr int64_t kPrefix = 512;

const Model& BenchModel() {
  static const Model m = SynthesizeModel(
      {.dim = 512, .layers = 8, .heads = 8, .kv_heads = 0, .ff = 0, .vocab = 4096, .context = 1024, .seed = 1, .tied = false});
  return m;
}

std::vector<int32_t> PrefixTokens() {
  std::vector<int32_t> t(kPrefix);
  for (int64_t i = 0; i < kPrefix; ++i) t[i] = (int32_t)((i * 7919 + 1) % BenchModel().config.vocab);
  return t;
}

KvCache NewCache(KvType type) {
  const ModelConfig& c = BenchModel().config;
  return KvCache(c.n_layers, c.n_kv_heads, c.head_dim, kPrefix, type);
}

// The prefix evaluated into a cache of `type`.
KvCache Prefilled(KvType type) {
  KvCache cache = NewCache(type);
  cache.Reserve(kPrefix);
  LlamaForward fwd(BenchModel());
  std::vector<float> logits(BenchModel().config.vocab);
  const std::vector<int32_t> tokens = PrefixTokens();
  fwd.Forward(tokens, 0, cache, false, 1, logits.data());
  return cache;
}

std::string StatePath() {
  return (std::filesystem::temp_directory_path() / ("smelt_kv_state_bench_" + std::to_string(::getpid()) + ".smkv"))
      .string();
}

KvType TypeArg(const benchmark::State& state) { return static_cast<KvType>(state.range(0)); }

void BM_KvStateEvalPrefix(benchmark::State& state) {
  const KvType type = TypeArg(state);
  LlamaForward fwd(BenchModel());
  const std::vector<int32_t> tokens = PrefixTokens();
  std::vector<float> logits(BenchModel().config.vocab);
  KvCache cache = NewCache(type);
  cache.Reserve(kPrefix);
  for (auto _ : state) fwd.Forward(tokens, 0, cache, false, 1, logits.data());
  state.SetLabel(std::string(KvTypeName(type)));
}

void BM_KvStateSave(benchmark::State& state) {
  const KvType type = TypeArg(state);
  const KvCache cache = Prefilled(type);
  const std::vector<int32_t> tokens = PrefixTokens();
  const std::string path = StatePath();
  for (auto _ : state) SaveKvState(path, BenchModel(), cache, tokens);
  state.SetBytesProcessed(state.iterations() * (int64_t)std::filesystem::file_size(path));
  std::filesystem::remove(path);
  state.SetLabel(std::string(KvTypeName(type)));
}

void BM_KvStateLoad(benchmark::State& state) {
  const KvType type = TypeArg(state);
  const std::string path = StatePath();
  SaveKvState(path, BenchModel(), Prefilled(type), PrefixTokens());
  KvCache cache = NewCache(type);
  for (auto _ : state) benchmark::DoNotOptimize(LoadKvState(path, BenchModel(), cache));
  state.SetBytesProcessed(state.iterations() * (int64_t)std::filesystem::file_size(path));
  std::filesystem::remove(path);
  state.SetLabel(std::string(KvTypeName(type)));
}

void BM_KvStateFingerprint(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(ModelFingerprint(BenchModel()));
}

#define KV_TYPES Arg((int)KvType::kF32)->Arg((int)KvType::kF16)->Arg((int)KvType::kI8)
BENCHMARK(BM_KvStateEvalPrefix)->KV_TYPES->Unit(benchmark::kMillisecond);
BENCHMARK(BM_KvStateSave)->KV_TYPES->Unit(benchmark::kMillisecond);
BENCHMARK(BM_KvStateLoad)->KV_TYPES->Unit(benchmark::kMillisecond);
BENCHMARK(BM_KvStateFingerprint)->Unit(benchmark::kMicrosecond);
#undef KV_TYPES

}  // namespace
}  // namespace smelt
