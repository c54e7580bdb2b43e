#include "model/llama.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <numbers>

#include "core/error.h"
#include "core/mapped_file.h"
#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "kernels/rope.h"

namespace smelt {

std::vector<float> RopeInvFrequencies(const ModelConfig& c, const float* freq_factors) {
  std::vector<float> inv = RopeBaseFrequencies(c.rope_dim, c.rope_theta);
  if (freq_factors) {
    for (size_t i = 0; i < inv.size(); ++i) inv[i] /= freq_factors[i];
    return inv;
  }
  const RopeScaling& s = c.rope_scaling;
  if (s.type.empty() || s.type == "none") return inv;
  if (!(s.factor > 0.0f)) Fail("{}: rope scaling factor {} must be positive", c.name, s.factor);
  if (s.type == "linear") {
    for (float& f : inv) f /= s.factor;
    return inv;
  }
  if (s.type == "llama3") {
    if (!(s.high_freq_factor > s.low_freq_factor) || !(s.low_freq_factor > 0.0f) || s.original_context <= 0)
      Fail("{}: llama3 rope scaling needs 0 < low_freq_factor < high_freq_factor and a positive original context",
           c.name);
    const double low_wavelen = s.original_context / (double)s.low_freq_factor;
    const double high_wavelen = s.original_context / (double)s.high_freq_factor;
    for (float& f : inv) {
      const double wavelen = 2.0 * std::numbers::pi / f;
      if (wavelen < high_wavelen) continue;  // high frequency: unchanged
      if (wavelen > low_wavelen) {           // low frequency: interpolated by factor
        f = (float)(f / (double)s.factor);
        continue;
      }
      const double smooth =
          (s.original_context / wavelen - s.low_freq_factor) / ((double)s.high_freq_factor - s.low_freq_factor);
      f = (float)((1.0 - smooth) * f / s.factor + smooth * f);
    }
    return inv;
  }
  Fail("{}: rope scaling type '{}' is not supported", c.name, s.type);
}

LlamaForward::LlamaForward(const Model& model, Activations act, bool repack) : model_(model), act_(act) {
  const ModelConfig& c = model.config;
  const std::string src = model.source.empty() ? (c.name.empty() ? "model" : c.name) : model.source;
  ValidateConfig(c, src);
  if (c.arch != "llama" && c.arch != "qwen2" && c.arch != "mistral")
    Fail("{}: architecture '{}' is not supported (llama, qwen2, mistral are)", src, c.arch);

  auto need = [&](const std::string& name, std::vector<int64_t> shape) -> const Tensor& {
    const Tensor* t = model.weights.Find(name);
    if (!t) Fail("{}: missing tensor {}", src, name);
    std::array<int64_t, 4> want{1, 1, 1, 1};
    for (size_t i = 0; i < shape.size(); ++i) want[i] = shape[i];
    if (t->ne != want)
      Fail("{}: tensor {}: shape {}, expected [{}]", src, name, ShapeString(*t), fmt::join(shape, ", "));
    CheckReadable(*t, src);
    return *t;
  };
  auto vector = [&](const std::string& name, int64_t n) {
    std::vector<float> v(n);
    ReadRowF32(need(name, {n}), 0, v.data());
    return v;
  };
  auto has = [&](const std::string& name) { return model.weights.Contains(name); };

  const int64_t C = c.dim, Q = c.q_dim(), KV = c.kv_dim(), F = c.ff, V = c.vocab;
  token_embd_ = &need("token_embd.weight", {C, V});
  output_ = has("output.weight") ? &need("output.weight", {C, V}) : token_embd_;
  output_norm_ = vector("output_norm.weight", C);
  for (int l = 0; l < c.n_layers; ++l) {
    auto name = [&](const char* suffix) { return BlockTensorName(l, suffix); };
    Layer L;
    L.attn_norm = vector(name("attn_norm.weight"), C);
    L.wq = &need(name("attn_q.weight"), {C, Q});
    L.wk = &need(name("attn_k.weight"), {C, KV});
    L.wv = &need(name("attn_v.weight"), {C, KV});
    L.wo = &need(name("attn_output.weight"), {Q, C});
    if (c.qkv_bias || has(name("attn_q.bias"))) L.bq = vector(name("attn_q.bias"), Q);
    if (c.qkv_bias || has(name("attn_k.bias"))) L.bk = vector(name("attn_k.bias"), KV);
    if (c.qkv_bias || has(name("attn_v.bias"))) L.bv = vector(name("attn_v.bias"), KV);
    L.ffn_norm = vector(name("ffn_norm.weight"), C);
    L.gate = &need(name("ffn_gate.weight"), {C, F});
    L.up = &need(name("ffn_up.weight"), {C, F});
    L.down = &need(name("ffn_down.weight"), {F, C});
    layers_.push_back(std::move(L));
  }
  if (repack && act == Activations::kGgml) {
    std::vector<const Tensor*> mats = {output_};
    for (const Layer& L : layers_) mats.insert(mats.end(), {L.wq, L.wk, L.wv, L.wo, L.gate, L.up, L.down});
    for (const Tensor* w : mats)
      if (CanPack(*w) && FastPackedGemm(w->type) && !packed_.contains(w)) {
        packed_.emplace(w, PackWeights(*w));
        // Only the packed copy is read from now on: the mapped pages leave the resident set
        // (the embedding rows a tied head shares stay, being read on every token).
        if (w->InFileMapping() && w != token_embd_) DropPages(w->data, w->nbytes);
      }
  }
  if (has("rope_freqs.weight")) {
    const std::vector<float> factors = vector("rope_freqs.weight", c.rope_dim / 2);
    inv_freq_ = RopeInvFrequencies(c, factors.data());
  } else {
    inv_freq_ = RopeInvFrequencies(c);
  }
}

LlamaForward::~LlamaForward() = default;

void LlamaForward::Project(int layer, const Tensor& w, const float* x, int64_t T, float* y, int threads) {
  if (observer_) observer_->OnLinearInput(layer, w, x, T);
  if (auto it = packed_.find(&w); it != packed_.end()) {
    MatMulPacked(it->second, x, T, y, threads);
    return;
  }
  MatMul(w, x, T, y, threads, act_);
}

void LlamaForward::Forward(std::span<const int32_t> tokens, int64_t pos, KvCache& cache, bool all_logits, int threads,
                           float* logits) {
  const int64_t T = (int64_t)tokens.size();
  batch_.resize(T);
  for (int64_t t = 0; t < T; ++t) batch_[t] = {tokens[t], 0, pos + t};
  outputs_.clear();
  for (int64_t t = all_logits ? 0 : T - 1; t < T; ++t) outputs_.push_back((int32_t)t);
  KvCache* caches[] = {&cache};
  ForwardBatch(batch_, caches, outputs_, threads, logits);
}

void LlamaForward::Attend(int layer, std::span<const BatchToken> batch, std::span<KvCache* const> caches,
                          const float* q, float* att, int threads) const {
  const ModelConfig& c = model_.config;
  const int64_t T = (int64_t)batch.size(), Q = c.q_dim(), KV = c.kv_dim();
  const int hd = c.head_dim, H = c.n_heads, group = c.n_heads / c.n_kv_heads;
  const float scale = 1.0f / std::sqrt((float)hd);
  // Multiply-adds of this attention step: every query head × the keys it reads × head_dim × 2.
  int64_t keys = 0, max_keys = 0;
  for (const BatchToken& b : batch) keys += b.pos + 1, max_keys = std::max(max_keys, b.pos + 1);
  const int64_t work = keys * H * hd * 2;
  if (caches[0]->type() == KvType::kF32) {
    // Rows read in place: one task per (entry, head).
    const int attn_threads = work < (1 << 16) ? 1 : (int)std::min<int64_t>(threads, T * H);
#pragma omp parallel num_threads(attn_threads) if (attn_threads > 1)
    {
      std::vector<float> scores(max_keys);
#pragma omp for schedule(dynamic, 4)
      for (int64_t i = 0; i < T * H; ++i) {
        const int64_t t = i / H, head = i % H, kv_head = head / group;
        const KvCache& cache = *caches[batch[t].seq];
        AttendHead(q + t * Q + head * hd, cache.keys_f32(layer) + kv_head * hd, cache.values_f32(layer) + kv_head * hd,
                   batch[t].pos + 1, KV, hd, scale, att + t * Q + head * hd, scores.data());
      }
    }
    return;
  }
  // Rounded rows: per sequence and kv head, the keys and values are decoded once, then every
  // query head of its group at every entry of the sequence attends to them.
  // The distinct sequences in order of first appearance, each with the keys its latest entry reads.
  std::vector<std::pair<int32_t, int64_t>> seqs;
  for (const BatchToken& b : batch) {
    auto it = std::find_if(seqs.begin(), seqs.end(), [&](const auto& s) { return s.first == b.seq; });
    if (it == seqs.end()) {
      seqs.emplace_back(b.seq, b.pos + 1);
    } else {
      it->second = std::max(it->second, b.pos + 1);
    }
  }
  const int n_kv = c.n_kv_heads;
  const int64_t tasks = (int64_t)seqs.size() * n_kv;
  const int attn_threads = work < (1 << 16) ? 1 : (int)std::min<int64_t>(threads, tasks);
#pragma omp parallel num_threads(attn_threads) if (attn_threads > 1)
  {
    std::vector<float> kh(max_keys * hd), vh(max_keys * hd), scores(max_keys);
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      const int32_t seq = seqs[task / n_kv].first;
      const int64_t n = seqs[task / n_kv].second;
      const int kv_head = (int)(task % n_kv);
      caches[seq]->LoadHead(layer, false, kv_head, n, kh.data());
      caches[seq]->LoadHead(layer, true, kv_head, n, vh.data());
      for (int64_t t = 0; t < T; ++t) {
        if (batch[t].seq != seq) continue;
        for (int head = kv_head * group; head < (kv_head + 1) * group; ++head)
          AttendHead(q + t * Q + head * hd, kh.data(), vh.data(), batch[t].pos + 1, hd, hd, scale,
                     att + t * Q + head * hd, scores.data());
      }
    }
  }
}

void LlamaForward::ForwardBatch(std::span<const BatchToken> batch, std::span<KvCache* const> caches,
                                std::span<const int32_t> outputs, int threads, float* logits) {
  const ModelConfig& c = model_.config;
  const int64_t T = (int64_t)batch.size(), C = c.dim, Q = c.q_dim(), KV = c.kv_dim(), F = c.ff;
  const int hd = c.head_dim, n_pairs = c.rope_dim / 2;
  const bool neox = c.rope_layout == RopeLayout::kNeox;
  const float eps = c.norm_eps;
  SMELT_ASSERT(T > 0 && !caches.empty());
  for (const BatchToken& b : batch)
    SMELT_ASSERT(b.seq >= 0 && b.seq < (int64_t)caches.size() && b.pos >= 0 && b.pos < caches[b.seq]->reserved() &&
                 caches[b.seq]->type() == caches[0]->type());
  for (int32_t o : outputs) SMELT_ASSERT(o >= 0 && o < T);

  x_.resize(T * C), h_.resize(T * C), q_.resize(T * Q), att_.resize(T * Q);
  k_.resize(T * KV), v_.resize(T * KV), g_.resize(T * F), u_.resize(T * F);
  rope_cos_.resize(T * n_pairs), rope_sin_.resize(T * n_pairs);
  float *x = x_.data(), *h = h_.data(), *q = q_.data(), *att = att_.data(), *k = k_.data(), *v = v_.data();
  float *g = g_.data(), *u = u_.data();

  for (int64_t t = 0; t < T; ++t) {
    ReadRowF32(*token_embd_, batch[t].token, x + t * C);
    RopeAngles(batch[t].pos, inv_freq_.data(), n_pairs, &rope_cos_[t * n_pairs], &rope_sin_[t * n_pairs]);
  }

  for (int l = 0; l < c.n_layers; ++l) {
    const Layer& L = layers_[l];
    // --- attention ---
    for (int64_t t = 0; t < T; ++t) RmsNorm(h + t * C, x + t * C, L.attn_norm.data(), C, eps);
    Project(l, *L.wq, h, T, q, threads);
    Project(l, *L.wk, h, T, k, threads);
    Project(l, *L.wv, h, T, v, threads);
    for (int64_t t = 0; t < T; ++t) {
      if (!L.bq.empty()) AddInPlace(q + t * Q, L.bq.data(), Q);
      if (!L.bk.empty()) AddInPlace(k + t * KV, L.bk.data(), KV);
      if (!L.bv.empty()) AddInPlace(v + t * KV, L.bv.data(), KV);
      ApplyRope(q + t * Q, c.n_heads, hd, c.rope_dim, &rope_cos_[t * n_pairs], &rope_sin_[t * n_pairs], neox);
      ApplyRope(k + t * KV, c.n_kv_heads, hd, c.rope_dim, &rope_cos_[t * n_pairs], &rope_sin_[t * n_pairs], neox);
    }
    for (int64_t t = 0; t < T; ++t) caches[batch[t].seq]->Store(l, batch[t].pos, k + t * KV, v + t * KV);
    Attend(l, batch, caches, q, att, threads);
    Project(l, *L.wo, att, T, h, threads);
    AddInPlace(x, h, T * C);

    // --- feed-forward ---
    for (int64_t t = 0; t < T; ++t) RmsNorm(h + t * C, x + t * C, L.ffn_norm.data(), C, eps);
    Project(l, *L.gate, h, T, g, threads);
    Project(l, *L.up, h, T, u, threads);
    SwiGlu(g, g, u, T * F);
    Project(l, *L.down, g, T, h, threads);
    AddInPlace(x, h, T * C);
    if (observer_) observer_->OnBlockOutput(l, x, T);
  }

  const int64_t n_out = (int64_t)outputs.size();
  if (n_out == 0) return;
  for (int64_t i = 0; i < n_out; ++i) RmsNorm(h + i * C, x + outputs[i] * C, output_norm_.data(), C, eps);
  Project(c.n_layers, *output_, h, n_out, logits, threads);
}

}  // namespace smelt
