#include "model/llama.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <numbers>

#include "core/error.h"
#include "core/mapped_file.h"
#include "kernels/attention.h"
#include "kernels/fused.h"
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

LlamaForward::LlamaForward(const Model& model, Activations act, bool repack, ForwardOptions opt)
    : model_(model), act_(act), opt_(opt) {
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

  const int64_t C = c.dim, V = c.vocab;
  token_embd_ = &need("token_embd.weight", {C, V});
  output_ = has("output.weight") ? &need("output.weight", {C, V}) : token_embd_;
  output_norm_ = vector("output_norm.weight", C);
  for (int l = 0; l < c.n_layers; ++l) {
    auto name = [&](const char* suffix) { return BlockTensorName(l, suffix); };
    const BlockShape b = c.block(l);
    const int64_t Q = b.q_dim, KV = b.kv_dim;
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
    const int64_t F = b.ff;
    L.gate = &need(name("ffn_gate.weight"), {C, F});
    L.up = &need(name("ffn_up.weight"), {C, F});
    L.down = &need(name("ffn_down.weight"), {F, C});
    layers_.push_back(std::move(L));
  }
  if (repack && act == Activations::kGgml) {
    std::vector<const Tensor*> mats = {output_};
    for (const Layer& L : layers_) mats.insert(mats.end(), {L.wq, L.wk, L.wv, L.wo, L.gate, L.up, L.down});
    std::vector<const Tensor*> to_pack;
    for (const Tensor* w : mats)
      if (CanPack(*w) && FastPackedGemm(PackedLayoutType(w->type)) &&
          std::find(to_pack.begin(), to_pack.end(), w) == to_pack.end())
        to_pack.push_back(w);
    // All packed copies share one buffer, each at a cache line, so that the small matrices too
    // sit on huge pages (core/huge_pages.h).
    constexpr size_t kLine = 64;
    std::vector<size_t> offsets(to_pack.size() + 1, 0);
    for (size_t i = 0; i < to_pack.size(); ++i)
      offsets[i + 1] = offsets[i] + (PackedBytes(*to_pack[i]) + kLine - 1) / kLine * kLine;
    auto storage = std::make_shared<HugePageBuffer>(offsets.back());
    for (size_t i = 0; i < to_pack.size(); ++i) {
      const Tensor* w = to_pack[i];
      packed_.emplace(w, PackWeightsInto(*w, storage, offsets[i]));
      // Only the packed copy is read from now on: the mapped pages leave the resident set
      // (the embedding rows a tied head shares stay, being read on every token).
      if (w->InFileMapping() && w != token_embd_) DropPages(w->data, w->nbytes);
    }
  }
  // The products that can run on encoded activations (kernels/fused.h), and the longest input
  // row they encode.
  auto encoded = [&](const Tensor* w, EncodedWeight& e) {
    const auto it = packed_.find(w);
    if (!FindEncodedWeight(*w, it == packed_.end() ? nullptr : &it->second, act_, e)) {
      e = EncodedWeight{};  // e.w == nullptr: the plain MatMul
      return false;
    }
    encoded_row_bytes_ = std::max(encoded_row_bytes_, EncodedRowBytes(e.act, e.cols));
    encoded_row_sums_ = std::max(encoded_row_sums_, EncodedRowSums(e.act, e.cols));
    tile_blocks_ = std::max(tile_blocks_, TileActivationBlocks(e.act, e.cols));
    tile_scale_floats_ = std::max(tile_scale_floats_, TileScaleFloats(e.act, e.cols));
    if (e.prompt.tokens) prompt_tokens_cols_ = std::max(prompt_tokens_cols_, e.cols);
    return true;
  };
  for (Layer& L : layers_) {
    const bool q = encoded(L.wq, L.eq), k = encoded(L.wk, L.ek), v = encoded(L.wv, L.ev);
    L.qkv_fused = q && k && v && L.eq.act == L.ek.act && L.eq.act == L.ev.act;
    const bool gate = encoded(L.gate, L.egate), up = encoded(L.up, L.eup);
    L.ffn_fused = gate && up && L.egate.act == L.eup.act;
    encoded(L.wo, L.eo);
    encoded(L.down, L.edown);
  }
  encoded(output_, eout_);
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
                           float* logits, ResumeAt from) {
  const int64_t T = (int64_t)tokens.size();
  batch_.resize(T);
  for (int64_t t = 0; t < T; ++t) batch_[t] = {tokens[t], 0, pos + t};
  outputs_.clear();
  for (int64_t t = all_logits ? 0 : T - 1; t < T; ++t) outputs_.push_back((int32_t)t);
  KvCache* caches[] = {&cache};
  ForwardBatch(batch_, caches, outputs_, threads, logits, from);
}

void LlamaForward::Fit(int64_t T, int threads) {
  if (T <= arena_.tokens && threads <= arena_.threads) return;
  const ModelConfig& c = model_.config;
  const int64_t C = c.dim, Q = c.q_dim(), KV = c.kv_dim(), F = c.ff, n_pairs = c.rope_dim / 2;
  Arena& a = arena_;
  a.tokens = T = std::max(T, a.tokens);
  a.threads = threads = std::max(threads, a.threads);
  const std::pair<std::vector<float>*, int64_t> rows[] = {
      {&a.x, C}, {&a.h, C}, {&a.q, Q}, {&a.att, Q}, {&a.k, KV}, {&a.v, KV},
      {&a.g, F}, {&a.u, F}, {&a.rope_cos, n_pairs}, {&a.rope_sin, n_pairs}};
  for (const auto& [buf, n] : rows) buf->resize(T * n);
  a.encoded.resize(encoded_row_bytes_ * T);
  a.sums.resize(encoded_row_sums_ * T);
  a.scales.resize(tile_scale_floats_ * T);
  if (!a.pairs.size() && tile_blocks_ && PackedGemmReadsPairs())
    a.pairs = HugePageBuffer(ActivationPairBytes(tile_blocks_, kPairTokens));
  a.prompt_tokens.resize(prompt_tokens_cols_ ? PromptTokensBytes(T, prompt_tokens_cols_) : 0);  // RunsBlocked decides
  a.thread_floats = std::max(ProjectScratchFloats(T, std::max({C, Q, F})), 2 * kAttnTile * c.head_dim);
  a.scratch.resize(a.thread_floats * threads);
  a.online.resize(T * c.n_heads);
  a.seqs.reserve(T);
}

void LlamaForward::FindSequences(std::span<const BatchToken> batch) {
  std::vector<std::pair<int32_t, int64_t>>& seqs = arena_.seqs;
  seqs.clear();
  for (const BatchToken& b : batch) {
    auto it = std::find_if(seqs.begin(), seqs.end(), [&](const auto& s) { return s.first == b.seq; });
    if (it == seqs.end()) {
      seqs.emplace_back(b.seq, b.pos + 1);
    } else {
      it->second = std::max(it->second, b.pos + 1);
    }
  }
}

void LlamaForward::Attend(int layer, std::span<const BatchToken> batch, std::span<KvCache* const> caches,
                          const float* q, float* att, int threads) {
  const ModelConfig& c = model_.config;
  const BlockShape b = c.block(layer);
  const int64_t T = (int64_t)batch.size(), Q = b.q_dim;
  const int hd = c.head_dim, H = b.n_heads, group = c.n_heads / c.n_kv_heads;
  const float scale = 1.0f / std::sqrt((float)hd);
  const bool online = opt_.online_attention;
  // Multiply-adds of this attention step: every query head × the keys it reads × head_dim × 2.
  int64_t keys = 0, max_keys = 0;
  for (const BatchToken& b : batch) keys += b.pos + 1, max_keys = std::max(max_keys, b.pos + 1);
  const int64_t work = keys * H * hd * 2;
  if (caches[0]->type() == KvType::kF32 && !online) {
    // The two-pass softmax over rows read in place: one task per (entry, head).
    const int attn_threads = work < (1 << 16) ? 1 : (int)std::min<int64_t>(threads, T * H);
#pragma omp parallel num_threads(attn_threads) if (attn_threads > 1)
    {
      std::vector<float> scores(max_keys);  // the two-pass softmax's score row
#pragma omp for schedule(dynamic, 4)
      for (int64_t i = 0; i < T * H; ++i) {
        const int64_t t = i / H, head = i % H, kv_head = head / group;
        const KvCache& cache = *caches[batch[t].seq];
        AttendHead(q + t * Q + head * hd, cache.head_keys_f32(layer, kv_head), cache.head_values_f32(layer, kv_head),
                   batch[t].pos + 1, hd, hd, scale, att + t * Q + head * hd, scores.data());
      }
    }
    return;
  }
  // Per sequence and kv head, the keys and values are read once (the online softmax: one tile at
  // a time, in place for f32, else decoded into the arena), then every query head of its group at
  // every entry of the sequence attends to them (online: the same tiles in the same order as
  // AttendHeadOnline, so the same bits). A prompt of one sequence splits its entries into parts,
  // so that a model with few kv heads still gives every thread work.
  FindSequences(batch);
  const std::vector<std::pair<int32_t, int64_t>>& seqs = arena_.seqs;
  const int n_kv = b.n_kv_heads;
  const int64_t heads_of_seqs = (int64_t)seqs.size() * n_kv;
  const int64_t parts =
      online && threads > 1 ? std::clamp<int64_t>((2 * threads + heads_of_seqs - 1) / heads_of_seqs, 1, T) : 1;
  const int64_t tasks = heads_of_seqs * parts;
  const int attn_threads = work < (1 << 16) ? 1 : (int)std::min<int64_t>(threads, tasks);
#pragma omp parallel num_threads(attn_threads) if (attn_threads > 1)
  {
    std::vector<float> kh(online ? 0 : max_keys * hd), vh(kh.size()), scores(online ? 0 : max_keys);
    float* tile_k = arena_.scratch.data() + arena_.thread_floats * omp_get_thread_num();
    float* tile_v = tile_k + kAttnTile * hd;
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t part = task / heads_of_seqs, sh = task % heads_of_seqs;
      const int32_t seq = seqs[sh / n_kv].first;
      const int64_t n = seqs[sh / n_kv].second;
      const int kv_head = (int)(sh % n_kv);
      if (online) {
        AttendTiles(layer, batch, T * part / parts, T * (part + 1) / parts, *caches[seq], seq, kv_head, q, att, tile_k,
                    tile_v);
        continue;
      }
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

void LlamaForward::AttendTiles(int layer, std::span<const BatchToken> batch, int64_t first, int64_t end,
                               const KvCache& cache, int32_t seq, int kv_head, const float* q, float* att,
                               float* tile_k, float* tile_v) {
  const ModelConfig& c = model_.config;
  const BlockShape b = c.block(layer);
  const int64_t Q = b.q_dim;
  const int hd = c.head_dim, H = b.n_heads, group = c.n_heads / c.n_kv_heads;
  const float scale = 1.0f / std::sqrt((float)hd);
  const int h0 = kv_head * group, h1 = h0 + group;
  const bool in_place = cache.type() == KvType::kF32;  // a head's f32 positions are adjacent: a tile is a pointer
  OnlineSoftmax* state = arena_.online.data();
  int64_t n = 0;  // the keys these entries read: their latest position + 1
  for (int64_t t = first; t < end; ++t)
    if (batch[t].seq == seq) {
      n = std::max<int64_t>(n, batch[t].pos + 1);
      for (int head = h0; head < h1; ++head) state[t * H + head] = OnlineSoftmax::Start(att + t * Q + head * hd, hd);
    }
  for (int64_t j0 = 0; j0 < n; j0 += kAttnTile) {
    const int64_t m = std::min(kAttnTile, n - j0);
    const float *k = tile_k, *v = tile_v;
    if (in_place) {
      k = cache.head_keys_f32(layer, kv_head) + j0 * hd, v = cache.head_values_f32(layer, kv_head) + j0 * hd;
    } else {
      cache.LoadHeadRange(layer, false, kv_head, j0, m, tile_k);
      cache.LoadHeadRange(layer, true, kv_head, j0, m, tile_v);
    }
    for (int64_t t = first; t < end; ++t) {
      if (batch[t].seq != seq || batch[t].pos < j0) continue;
      const int64_t seen = std::min(m, batch[t].pos + 1 - j0);  // this entry's keys in the tile
      for (int head = h0; head < h1; ++head)
        AttendTile(q + t * Q + head * hd, k, v, seen, hd, hd, scale, state[t * H + head], att + t * Q + head * hd);
    }
  }
  for (int64_t t = first; t < end; ++t)
    if (batch[t].seq == seq)
      for (int head = h0; head < h1; ++head) FinishAttend(state[t * H + head], att + t * Q + head * hd, hd);
}

void LlamaForward::ForwardBatch(std::span<const BatchToken> batch, std::span<KvCache* const> caches,
                                std::span<const int32_t> outputs, int threads, float* logits, ResumeAt from) {
  const ModelConfig& c = model_.config;
  SMELT_ASSERT(from.block >= 0 && from.block <= c.n_layers && (from.block == 0 || from.x));
  const int64_t T = (int64_t)batch.size(), C = c.dim;
  const int hd = c.head_dim, n_pairs = c.rope_dim / 2;
  const bool neox = c.rope_layout == RopeLayout::kNeox;
  const float eps = c.norm_eps;
  SMELT_ASSERT(T > 0 && !caches.empty());
  for (const BatchToken& b : batch)
    SMELT_ASSERT(b.seq >= 0 && b.seq < (int64_t)caches.size() && b.pos >= 0 && b.pos < caches[b.seq]->reserved() &&
                 caches[b.seq]->type() == caches[0]->type());
  for (int32_t o : outputs) SMELT_ASSERT(o >= 0 && o < T);

  Fit(T, std::max(threads, 1));
  Arena& a = arena_;
  float *x = a.x.data(), *h = a.h.data(), *q = a.q.data(), *att = a.att.data(), *k = a.k.data(), *v = a.v.data();
  float *g = a.g.data(), *u = a.u.data(), *scratch = a.scratch.data();
  // The fused products see encoded rows only: an observer, which wants the f32 inputs, gets the
  // plain steps.
  const bool fuse = opt_.fuse && !observer_;
  // Threads for the per-entry steps between the products (RoPE, the cache rows): from 16 entries on.
  const int row_team = T >= 16 ? (int)std::min<int64_t>(threads, T) : 1;
  EncodedRows enc;
  enc.data = a.encoded.data();
  enc.sums = a.sums.data();
  enc.scales = a.scales.data();
  enc.pairs = a.pairs.size() ? reinterpret_cast<int8_t*>(a.pairs.data()) : nullptr;
  enc.prompt_tokens = a.prompt_tokens.data();

  for (int64_t t = 0; t < T; ++t) {
    if (from.x) {
      std::copy(from.x + t * C, from.x + (t + 1) * C, x + t * C);
    } else {
      ReadRowF32(*token_embd_, batch[t].token, x + t * C);
    }
    RopeAngles(batch[t].pos, inv_freq_.data(), n_pairs, &a.rope_cos[t * n_pairs], &a.rope_sin[t * n_pairs]);
  }

  // out (=, or += for a residual add) = in (T, w.ne[0]) · wᵀ: on the arena's encoded rows where
  // w has an encoded kernel (e.w set), else the plain Project (and AddInPlace through h).
  auto product = [&](int l, const Tensor& w, const EncodedWeight& e, const float* in, float* out, Write write) {
    if (fuse && e.w) {
      enc.type = e.act;
      EncodeRows(in, T, e.cols, enc, threads);
      const Projection one[] = {{&e, out, write}};
      ProjectGroup(one, enc, threads, scratch);
    } else if (write == Write::kAdd) {
      Project(l, w, in, T, h, threads);
      AddInPlace(out, h, T * w.nrows());
    } else {
      Project(l, w, in, T, out, threads);
    }
  };

  for (int l = from.block; l < c.n_layers; ++l) {
    const Layer& L = layers_[l];
    const BlockShape shape = c.block(l);
    const int64_t Q = shape.q_dim, KV = shape.kv_dim;
    // --- attention ---
    if (fuse && L.qkv_fused) {
      enc.type = L.eq.act;
      RmsNormEncode(x, L.attn_norm.data(), eps, T, C, enc, h, threads);
      const Projection qkv[] = {{&L.eq, q, Write::kStore}, {&L.ek, k, Write::kStore}, {&L.ev, v, Write::kStore}};
      ProjectGroup(qkv, enc, threads, scratch);
    } else {
      for (int64_t t = 0; t < T; ++t) RmsNorm(h + t * C, x + t * C, L.attn_norm.data(), C, eps);
      product(l, *L.wq, L.eq, h, q, Write::kStore);
      product(l, *L.wk, L.ek, h, k, Write::kStore);
      product(l, *L.wv, L.ev, h, v, Write::kStore);
    }
    // Each entry's own rows and cache row (a batch's entries are distinct positions).
#pragma omp parallel for num_threads(row_team) if (row_team > 1) schedule(static)
    for (int64_t t = 0; t < T; ++t) {
      if (!L.bq.empty()) AddInPlace(q + t * Q, L.bq.data(), Q);
      if (!L.bk.empty()) AddInPlace(k + t * KV, L.bk.data(), KV);
      if (!L.bv.empty()) AddInPlace(v + t * KV, L.bv.data(), KV);
      const float *cos = &a.rope_cos[t * n_pairs], *sin = &a.rope_sin[t * n_pairs];
      ApplyRope(q + t * Q, shape.n_heads, hd, c.rope_dim, cos, sin, neox);
      KvCache& cache = *caches[batch[t].seq];
      if (opt_.fuse) {  // keys rotated on their way into the cache
        cache.StoreRoped(l, batch[t].pos, k + t * KV, v + t * KV, RopeRotation{cos, sin, c.rope_dim, neox});
      } else {
        ApplyRope(k + t * KV, shape.n_kv_heads, hd, c.rope_dim, cos, sin, neox);
        cache.Store(l, batch[t].pos, k + t * KV, v + t * KV);
      }
    }
    Attend(l, batch, caches, q, att, threads);
    product(l, *L.wo, L.eo, att, x, Write::kAdd);  // x += att · Woᵀ, fused: as the rows are written

    // --- feed-forward ---
    const int64_t F = shape.ff;
    if (fuse && L.ffn_fused) {  // g = silu(h · Wgateᵀ) ⊙ (h · Wupᵀ) in one pass
      enc.type = L.egate.act;
      RmsNormEncode(x, L.ffn_norm.data(), eps, T, C, enc, h, threads);
      ProjectSwiGlu(L.egate, L.eup, enc, g, threads, scratch);
    } else {
      for (int64_t t = 0; t < T; ++t) RmsNorm(h + t * C, x + t * C, L.ffn_norm.data(), C, eps);
      product(l, *L.gate, L.egate, h, g, Write::kStore);
      product(l, *L.up, L.eup, h, u, Write::kStore);
      SwiGlu(g, g, u, T * F);
    }
    product(l, *L.down, L.edown, g, x, Write::kAdd);  // x += g · Wdownᵀ
    if (observer_) observer_->OnBlockOutput(l, x, T);
  }

  const int64_t n_out = (int64_t)outputs.size();
  if (n_out == 0) return;
  if (fuse && eout_.w) {
    enc.type = eout_.act;
    const size_t row_bytes = EncodedRowBytes(enc.type, C);
    const int64_t row_sums = EncodedRowSums(enc.type, C);  // per row (Q8_0)
    for (int64_t i = 0; i < n_out; ++i) {
      EncodedRows row = enc;
      row.data += i * row_bytes;
      row.sums += i * row_sums;
      row.scales = nullptr, row.pairs = nullptr;  // laid out across the rows: below, once they are all encoded
      RmsNormEncode(x + outputs[i] * C, output_norm_.data(), eps, 1, C, row, h);
    }
    enc.T = n_out, enc.C = C, enc.row_bytes = row_bytes;
    FinishTileActivations(enc);
    const Projection head[] = {{&eout_, logits, Write::kStore}};
    ProjectGroup(head, enc, threads, scratch);
    return;
  }
  for (int64_t i = 0; i < n_out; ++i) RmsNorm(h + i * C, x + outputs[i] * C, output_norm_.data(), C, eps);
  Project(c.n_layers, *output_, h, n_out, logits, threads);
}

}  // namespace smelt
