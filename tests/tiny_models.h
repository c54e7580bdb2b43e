#pragma once
// Test helpers: random vectors, tiny random Llama-family models built in memory, and re-encoding
// an f32 tensor in another weight type through the format table's reference encoder.
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "formats/types.h"
#include "model/model.h"

namespace smelt::tiny {

// n values drawn from N(0, sd²) with a fixed seed.
inline std::vector<float> RandomVector(size_t n, uint32_t seed, float sd = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// `t` (f32) re-encoded as `type` (row by row with the type's reference encoder).
inline Tensor EncodeTensor(const Tensor& t, DType type) {
  const TypeTraits& tr = Traits(type);
  const size_t row_bytes = RowBytes(type, t.ne[0]);
  auto buf = std::make_shared<std::vector<uint8_t>>(row_bytes * (size_t)t.nrows());
  for (int64_t r = 0; r < t.nrows(); ++r)
    tr.from_float(t.as<float>() + r * t.ne[0], buf->data() + r * row_bytes, t.ne[0]);
  Tensor out = t;
  out.type = type;
  out.data = buf->data();
  out.nbytes = buf->size();
  out.owner = std::shared_ptr<const void>(buf, buf->data());
  return out;
}

struct TinyOptions {
  int dim = 32, layers = 2, heads = 4, kv_heads = 2, ff = 64, vocab = 50;
  bool qwen2 = false;  // Q/K/V biases and the NeoX RoPE layout
  bool tied = false;   // no output.weight
  uint32_t seed = 1;
};

// A random Llama (or Qwen2-style) model with F32 weights whose logits are far from uniform.
inline Model TinyLlama(const TinyOptions& o) {
  Model m;
  ModelConfig& c = m.config;
  c.arch = o.qwen2 ? "qwen2" : "llama";
  c.name = "tiny";
  c.dim = o.dim, c.n_layers = o.layers, c.n_heads = o.heads, c.n_kv_heads = o.kv_heads;
  c.head_dim = c.rope_dim = o.dim / o.heads;
  c.ff = o.ff, c.vocab = o.vocab, c.context = 64;
  c.norm_eps = 1e-5f;
  c.rope_layout = o.qwen2 ? RopeLayout::kNeox : RopeLayout::kNormal;
  c.qkv_bias = o.qwen2;
  c.tied_embeddings = o.tied;
  m.source = "tiny";
  m.format = ModelFormat::kSynthetic;

  std::mt19937 rng(o.seed);
  auto add = [&](const std::string& name, std::vector<int64_t> ne, float mean, float sd) {
    std::normal_distribution<float> d(mean, sd);
    int64_t n = 1;
    for (int64_t e : ne) n *= e;
    std::vector<float> v((size_t)n);
    for (float& x : v) x = d(rng);
    m.weights.Add(MakeF32Tensor(name, std::move(ne), std::move(v)));
  };
  const int64_t C = c.dim, Q = c.q_dim(), KV = c.kv_dim(), F = c.ff;
  add("token_embd.weight", {C, c.vocab}, 0.0f, 1.0f);
  for (int l = 0; l < c.n_layers; ++l) {
    auto name = [&](const char* s) { return "blk." + std::to_string(l) + "." + s; };
    add(name("attn_norm.weight"), {C}, 1.0f, 0.2f);
    add(name("attn_q.weight"), {C, Q}, 0.0f, 2.0f / std::sqrt((float)C));
    add(name("attn_k.weight"), {C, KV}, 0.0f, 2.0f / std::sqrt((float)C));
    add(name("attn_v.weight"), {C, KV}, 0.0f, 1.0f / std::sqrt((float)C));
    if (o.qwen2) {
      add(name("attn_q.bias"), {Q}, 0.0f, 0.5f);
      add(name("attn_k.bias"), {KV}, 0.0f, 0.5f);
      add(name("attn_v.bias"), {KV}, 0.0f, 0.5f);
    }
    add(name("attn_output.weight"), {Q, C}, 0.0f, 1.0f / std::sqrt((float)Q));
    add(name("ffn_norm.weight"), {C}, 1.0f, 0.2f);
    add(name("ffn_gate.weight"), {C, F}, 0.0f, 1.0f / std::sqrt((float)C));
    add(name("ffn_up.weight"), {C, F}, 0.0f, 1.0f / std::sqrt((float)C));
    add(name("ffn_down.weight"), {F, C}, 0.0f, 1.0f / std::sqrt((float)F));
  }
  add("output_norm.weight", {C}, 1.0f, 0.2f);
  if (!o.tied) add("output.weight", {C, c.vocab}, 0.0f, 3.0f / std::sqrt((float)C));
  return m;
}

}  // namespace smelt::tiny
