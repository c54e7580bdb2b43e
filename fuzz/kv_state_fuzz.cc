// libFuzzer target: saved KV state parsing from memory (model/kv_state.h) against a small
// synthetic model, into an f32, an f16 and an i8 cache. Any input must either restore (and then
// every restored row reads back) or throw smelt::Error leaving the cache as it was.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "core/error.h"
#include "model/kv_state.h"
#include "model/synth.h"

namespace {

// The model the seeds in fuzz/corpus/kv_state_fuzz/ were saved from (kv_state_test.cc checks
// that they still load).
const smelt::Model& FuzzModel() {
  static const smelt::Model m = smelt::SynthesizeModel(
      {.dim = 32, .layers = 2, .heads = 4, .kv_heads = 2, .ff = 64, .vocab = 300, .context = 64, .seed = 7, .tied = false});
  return m;
}

// Every stored byte of positions [0, reserved()).
std::vector<uint8_t> CacheBytes(const smelt::KvCache& cache) {
  std::vector<uint8_t> out;
  for (int l = 0; l < cache.n_layers(); ++l)
    for (bool values : {false, true})
      for (int64_t pos = 0; pos < cache.reserved(); ++pos) {
        const size_t at = out.size();
        out.resize(at + cache.RowBytes(l));
        cache.ReadRow(l, values, pos, out.data() + at);
      }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const smelt::Model& m = FuzzModel();
  static const uint64_t fingerprint = smelt::ModelFingerprint(m);
  const smelt::ModelConfig& c = m.config;
  for (smelt::KvType type : {smelt::KvType::kF32, smelt::KvType::kF16, smelt::KvType::kI8}) {
    // A cache already holding 4 positions.
    smelt::KvCache cache(c.n_layers, c.n_kv_heads, c.head_dim, 32, type);
    cache.Reserve(4);
    const std::vector<float> row(cache.kv_dim(0), 0.5f);
    for (int l = 0; l < c.n_layers; ++l)
      for (int p = 0; p < 4; ++p) cache.Store(l, p, row.data(), row.data());
    const int64_t reserved = cache.reserved();
    const std::vector<uint8_t> before = CacheBytes(cache);
    try {
      const std::vector<int32_t> tokens =
          smelt::RestoreKvState(std::span<const uint8_t>(data, size), "fuzz.smkv", fingerprint, c.vocab, cache);
      SMELT_ASSERT((int64_t)tokens.size() <= cache.reserved());
      for (int32_t t : tokens) SMELT_ASSERT(t >= 0 && t < c.vocab);
      std::vector<float> head((size_t)cache.reserved() * c.head_dim);
      for (int l = 0; l < c.n_layers; ++l)
        for (int h = 0; h < c.n_kv_heads; ++h)
          for (bool values : {false, true}) cache.LoadHead(l, values, h, (int64_t)tokens.size(), head.data());
    } catch (const smelt::Error&) {
      SMELT_ASSERT(cache.reserved() == reserved && CacheBytes(cache) == before);
    }
  }
  return 0;
}
