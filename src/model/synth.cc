#include "model/synth.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "smelt/version.h"

namespace smelt {
namespace {

// splitmix64: a tiny, portable, well-mixed generator (same stream on every platform).
struct SplitMix64 {
  uint64_t s;
  uint64_t Next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [-1, 1).
  float Uniform() { return (float)((double)(Next() >> 11) * (2.0 / 9007199254740992.0) - 1.0); }
};

// Zeroes the round(sparsity · cols) values of smallest magnitude (ties: the lower column) in
// each row of cols values.
void ZeroSmallestPerRow(std::vector<float>& v, int64_t cols, double sparsity) {
  const auto zeros = (int64_t)std::llround(sparsity * (double)cols);
  if (zeros <= 0) return;
  std::vector<int64_t> order((size_t)cols);
  for (size_t r = 0; r < v.size() / (size_t)cols; ++r) {
    float* row = v.data() + r * (size_t)cols;
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [row](int64_t a, int64_t b) { return std::fabs(row[a]) < std::fabs(row[b]); });
    for (int64_t i = 0; i < zeros; ++i) row[order[(size_t)i]] = 0.0f;
  }
}

// A tensor of uniform values with standard deviation `stddev` (uniform: sd = a / sqrt(3)), the
// `sparsity` fraction of each row's smallest magnitudes then set to zero.
Tensor RandomTensor(SplitMix64& rng, std::string name, std::vector<int64_t> ne, float stddev, double sparsity = 0.0) {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  std::vector<float> v((size_t)n);
  const float a = stddev * std::sqrt(3.0f);
  for (auto& x : v) x = a * rng.Uniform();
  ZeroSmallestPerRow(v, ne[0], sparsity);
  return MakeF32Tensor(std::move(name), std::move(ne), std::move(v));
}

Tensor NormTensor(SplitMix64& rng, std::string name, int64_t n) {
  std::vector<float> v((size_t)n);
  for (auto& x : v) x = 1.0f + 0.1f * rng.Uniform();
  return MakeF32Tensor(std::move(name), {n}, std::move(v));
}

}  // namespace

Vocab SyntheticVocab(int size) {
  if (size < 259 + 1) Fail("synth: vocabulary of {} is too small (needs at least 260: specials and 256 bytes)", size);
  Vocab v;
  v.model = "llama";
  v.pre = "default";
  v.tokens.reserve(size);
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.types = {TokenType::kUnknown, TokenType::kControl, TokenType::kControl};
  for (int b = 0; b < 256; ++b) {
    v.tokens.push_back(fmt::format("<0x{:02X}>", b));
    v.types.push_back(TokenType::kByte);
  }
  // Generated pieces: lower-case "words" with and without the SPM space marker, all distinct.
  for (int i = (int)v.tokens.size(); i < size; ++i) {
    int k = i - 259;
    std::string w;
    do {
      w.push_back((char)('a' + k % 26));
      k /= 26;
    } while (k > 0);
    v.tokens.push_back((i % 2 ? "\xe2\x96\x81" : "") + w + (i % 2 ? "" : fmt::format("{}", i)));
    v.types.push_back(TokenType::kNormal);
  }
  v.scores.resize(size);
  for (int i = 0; i < size; ++i) v.scores[i] = i < 259 ? 0.0f : -(float)(i - 259);
  v.unk = 0;
  v.bos = 1;
  v.eos = 2;
  v.add_bos = true;
  v.add_space_prefix = true;
  return v;
}

Model SynthesizeModel(const SynthOptions& o) {
  Model m;
  ModelConfig& c = m.config;
  c.arch = "llama";
  c.dim = o.dim;
  c.n_layers = o.layers;
  c.n_heads = o.heads;
  c.n_kv_heads = o.kv_heads > 0 ? o.kv_heads : o.heads;
  c.head_dim = o.heads > 0 ? o.dim / o.heads : 0;
  c.rope_dim = c.head_dim;
  c.ff = o.ff > 0 ? o.ff : ((8 * o.dim / 3 + 31) / 32) * 32;
  c.vocab = o.vocab;
  c.context = o.context;
  c.tied_embeddings = o.tied;
  c.name = fmt::format("smelt-synth-d{}-l{}-h{}-kv{}-ff{}-v{}-s{}", c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.ff,
                       c.vocab, o.seed);
  if (o.heads <= 0 || o.dim % o.heads != 0) Fail("synth: dim {} is not a multiple of heads {}", o.dim, o.heads);
  if (!(o.sparsity >= 0.0 && o.sparsity < 1.0)) Fail("synth: sparsity {} is not in [0, 1)", o.sparsity);
  ValidateConfig(c, "synth");
  m.vocab = SyntheticVocab(o.vocab);
  m.format = ModelFormat::kSynthetic;
  m.source = "synth";
  m.info["synth.seed"] = std::to_string(o.seed);

  SplitMix64 rng{o.seed};
  const int64_t d = c.dim, q = c.q_dim(), kv = c.kv_dim(), ff = c.ff;
  const float sd_in = 1.0f / std::sqrt((float)d), sd_ff = 1.0f / std::sqrt((float)ff);
  m.weights.Add(RandomTensor(rng, "token_embd.weight", {d, c.vocab}, 1.0f));
  for (int l = 0; l < c.n_layers; ++l) {
    auto name = [&](const char* s) { return BlockTensorName(l, s); };
    m.weights.Add(NormTensor(rng, name("attn_norm.weight"), d));
    m.weights.Add(RandomTensor(rng, name("attn_q.weight"), {d, q}, sd_in, o.sparsity));
    m.weights.Add(RandomTensor(rng, name("attn_k.weight"), {d, kv}, sd_in, o.sparsity));
    m.weights.Add(RandomTensor(rng, name("attn_v.weight"), {d, kv}, sd_in, o.sparsity));
    m.weights.Add(RandomTensor(rng, name("attn_output.weight"), {q, d}, 1.0f / std::sqrt((float)q), o.sparsity));
    m.weights.Add(NormTensor(rng, name("ffn_norm.weight"), d));
    m.weights.Add(RandomTensor(rng, name("ffn_gate.weight"), {d, ff}, sd_in, o.sparsity));
    m.weights.Add(RandomTensor(rng, name("ffn_up.weight"), {d, ff}, sd_in, o.sparsity));
    m.weights.Add(RandomTensor(rng, name("ffn_down.weight"), {ff, d}, sd_ff, o.sparsity));
  }
  m.weights.Add(NormTensor(rng, "output_norm.weight", d));
  if (!o.tied) m.weights.Add(RandomTensor(rng, "output.weight", {d, c.vocab}, sd_in));
  return m;
}

}  // namespace smelt
