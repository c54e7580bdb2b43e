#include "train/model.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "formats/types.h"
#include "io/gguf_model.h"
#include "model/llama.h"
#include "train/ops.h"
#include "train/rng.h"

namespace smelt::train {
namespace {

const char* const kRopeFreqsName = "rope_freqs.weight";

std::string L(int layer, const char* suffix) { return BlockTensorName(layer, suffix); }

}  // namespace

TrainModel::TrainModel(const ModelConfig& c, const Vocab& v) : config_(c), vocab_(v) {
  ValidateConfig(c, c.name.empty() ? "training model" : c.name);
  if (c.arch != "llama" && c.arch != "qwen2") Fail("{}: training supports llama and qwen2, not {}", c.name, c.arch);
  if (!c.uniform_blocks())
    Fail("{}: training needs one feed-forward size and head count for every block; this model's differ", c.name);
  if (c.rope_dim % 2 != 0 || c.rope_dim > c.head_dim)
    Fail("{}: RoPE dimension {} must be even and at most the head size {}", c.name, c.rope_dim, c.head_dim);
  if (!v.tokens.empty() && v.size() != c.vocab)
    Fail("{}: the tokenizer has {} tokens but the model's vocabulary size is {}", c.name, v.size(), c.vocab);
  size_t offset = 0;
  for (const ModelTensorSpec& s : ModelTensorSpecs(c)) {
    if (!s.required || s.name == kRopeFreqsName) continue;  // optional tensors are not trained
    ParamSlice p;
    p.name = s.name;
    p.n_dims = (int)s.ne.size();
    size_t n = 1;
    for (size_t d = 0; d < s.ne.size(); ++d) n *= (size_t)(p.ne[d] = s.ne[d]);
    p.offset = offset;
    p.size = n;
    p.decay = p.n_dims >= 2;
    offset += n;
    slices_.push_back(std::move(p));
  }
  params_.assign(offset, 0.0f);
  grads_.assign(offset, 0.0f);
  inv_freq_ = RopeInvFrequencies(c);
}

TrainModel TrainModel::FromModel(const Model& m) {
  CheckModelTensors(m.config, m.weights, m.source);
  TrainModel t(m.config, m.vocab);
  for (const ParamSlice& p : t.slices_) {
    const std::vector<float> v = DequantizeAll(m.weights.Get(p.name));
    std::copy(v.begin(), v.end(), t.params_.begin() + (ptrdiff_t)p.offset);
  }
  if (const Tensor* f = m.weights.Find(kRopeFreqsName)) {
    t.rope_factors_ = DequantizeAll(*f);
    t.inv_freq_ = RopeInvFrequencies(m.config, t.rope_factors_.data());
  }
  return t;
}

TrainModel TrainModel::FromScratch(const ModelConfig& c, const Vocab& vocab, uint64_t seed) {
  TrainModel t(c, vocab);
  Rng rng(seed);
  const double residual_scale = 1.0 / std::sqrt(2.0 * c.n_layers);
  for (const ParamSlice& p : t.slices_) {
    float* w = t.params_.data() + p.offset;
    if (p.name.ends_with("norm.weight")) {
      std::fill_n(w, p.size, 1.0f);
    } else if (p.n_dims >= 2) {
      const bool residual = p.name.ends_with("attn_output.weight") || p.name.ends_with("ffn_down.weight");
      const double sd = 0.02 * (residual ? residual_scale : 1.0);
      for (size_t i = 0; i < p.size; ++i) w[i] = (float)(sd * rng.Normal());
    }  // biases stay 0
  }
  return t;
}

const ParamSlice& TrainModel::Slice(const std::string& name) const {
  for (const ParamSlice& p : slices_)
    if (p.name == name) return p;
  Fail("training model: no parameter {}", name);
}

bool TrainModel::Has(const std::string& name) const {
  return std::any_of(slices_.begin(), slices_.end(), [&](const ParamSlice& p) { return p.name == name; });
}

void TrainModel::AddAuxiliary(const std::string& name, std::vector<int64_t> ne, const std::vector<float>& init) {
  if (Has(name)) Fail("training model: parameter {} already exists", name);
  if (ne.empty() || ne.size() > 4) Fail("training model: auxiliary {} has {} dimensions", name, ne.size());
  ParamSlice p;
  p.name = name;
  p.n_dims = (int)ne.size();
  p.size = 1;
  for (size_t d = 0; d < ne.size(); ++d) p.size *= (size_t)(p.ne[d] = ne[d]);
  if (init.size() != p.size) Fail("training model: auxiliary {} has {} values, not {}", name, init.size(), p.size);
  p.offset = params_.size();
  p.decay = p.n_dims >= 2;
  p.auxiliary = true;
  params_.insert(params_.end(), init.begin(), init.end());
  grads_.resize(params_.size(), 0.0f);
  slices_.push_back(std::move(p));
}

void TrainModel::ZeroGrad() { std::fill(grads_.begin(), grads_.end(), 0.0f); }

Model TrainModel::ToModel() const {
  Model m;
  m.config = config_;
  m.vocab = vocab_;
  m.format = ModelFormat::kSynthetic;
  m.source = config_.name;
  for (const ParamSlice& p : slices_) {
    if (p.auxiliary) continue;
    std::vector<int64_t> ne(p.ne.begin(), p.ne.begin() + p.n_dims);
    m.weights.Add(MakeF32Tensor(p.name, std::move(ne),
                                std::vector<float>(params_.begin() + (ptrdiff_t)p.offset,
                                                   params_.begin() + (ptrdiff_t)(p.offset + p.size))));
  }
  if (!rope_factors_.empty())
    m.weights.Add(MakeF32Tensor(kRopeFreqsName, {(int64_t)rope_factors_.size()}, rope_factors_));
  return m;
}

// ---- forward / backward ---------------------------------------------------------------------

namespace {

void Resize(std::vector<float>& v, int64_t n) {
  if ((int64_t)v.size() != n) v.assign((size_t)n, 0.0f);
}

RopeShape QRope(const ModelConfig& c) { return {c.n_heads, c.head_dim, c.rope_dim, c.rope_layout == RopeLayout::kNeox}; }
RopeShape KRope(const ModelConfig& c) {
  return {c.n_kv_heads, c.head_dim, c.rope_dim, c.rope_layout == RopeLayout::kNeox};
}

const float* Bias(const TrainModel& m, int layer, const char* suffix) {
  return m.config().qkv_bias ? m.Param(L(layer, suffix)) : nullptr;
}
float* BiasGrad(TrainModel& m, int layer, const char* suffix) {
  return m.config().qkv_bias ? m.Grad(L(layer, suffix)) : nullptr;
}

void Positions(std::vector<int32_t>& pos, int64_t B, int64_t T) {
  pos.resize((size_t)(B * T));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) pos[b * T + t] = (int32_t)t;
}

void CheckBatch(const TrainModel& m, const Batch& batch) {
  const size_t n = (size_t)(batch.B * batch.T);
  if (batch.B < 1 || batch.T < 1 || batch.inputs.size() != n || batch.targets.size() != n)
    Fail("training batch: {} inputs and {} targets for {} sequences of {} tokens", batch.inputs.size(),
         batch.targets.size(), batch.B, batch.T);
  for (int32_t t : batch.inputs)
    if (t < 0 || t >= m.config().vocab) Fail("training batch: token {} is outside the vocabulary of {}", t, m.config().vocab);
}

// The tap of block `layer`, or null.
const float* Tap(const std::vector<const float*>& taps, int layer) {
  return (size_t)layer < taps.size() ? taps[(size_t)layer] : nullptr;
}

const float* HeadWeight(const TrainModel& m) {
  return m.Param(m.config().tied_embeddings ? "token_embd.weight" : "output.weight");
}

}  // namespace

void Forward(const TrainModel& m, const Batch& batch, Workspace& ws, int threads) {
  ForwardPerturbed(m, batch, nullptr, ws, threads);
}

void ForwardPerturbed(const TrainModel& m, const Batch& batch, const float* delta, Workspace& ws, int threads) {
  CheckBatch(m, batch);
  const ModelConfig& c = m.config();
  const int64_t N = batch.B * batch.T, C = c.dim;
  Positions(ws.positions, batch.B, batch.T);
  ws.blocks.resize(c.n_layers);
  Resize(ws.x_final, N * C);
  // The input of block l is kept in blocks[l].x; the output of the last one lands in x_final.
  Resize(ws.blocks[0].x, N * C);
  EmbeddingForward(m.Param("token_embd.weight"), batch.inputs, C, ws.blocks[0].x.data());
  if (delta)
    for (int64_t i = 0; i < N * C; ++i) ws.blocks[0].x[i] += delta[i];
  for (int l = 0; l < c.n_layers; ++l) {
    float* out = ws.x_final.data();
    if (l + 1 < c.n_layers) {
      Resize(ws.blocks[l + 1].x, N * C);
      out = ws.blocks[l + 1].x.data();
    }
    BlockForward(m, l, ws.blocks[l].x.data(), batch.B, batch.T, ws.blocks[l], out, ws.positions, threads);
  }
  Resize(ws.rstd_final, N);
  Resize(ws.h_final, N * C);
  RmsNormForward(ws.x_final.data(), m.Param("output_norm.weight"), N, C, c.norm_eps, ws.h_final.data(),
                 ws.rstd_final.data(), threads);
  Resize(ws.logits, N * c.vocab);
  LinearForward(ws.h_final.data(), HeadWeight(m), nullptr, N, C, c.vocab, ws.logits.data(), threads);
}

void BlockForward(const TrainModel& m, int l, const float* x, int64_t B, int64_t T, BlockActivations& a, float* out,
                  std::span<const int32_t> positions, int threads) {
  const ModelConfig& c = m.config();
  const int64_t N = B * T, C = c.dim, Q = c.q_dim(), KV = c.kv_dim(), F = c.ff;
  if (a.x.data() != x) a.x.assign(x, x + N * C);
  Resize(a.rstd1, N), Resize(a.h1, N * C), Resize(a.q, N * Q), Resize(a.k, N * KV), Resize(a.v, N * KV);
  Resize(a.probs, B * c.n_heads * T * T), Resize(a.att, N * Q), Resize(a.x_mid, N * C);
  Resize(a.rstd2, N), Resize(a.h2, N * C), Resize(a.gate, N * F), Resize(a.up, N * F), Resize(a.act, N * F);

  RmsNormForward(x, m.Param(L(l, "attn_norm.weight")), N, C, c.norm_eps, a.h1.data(), a.rstd1.data(), threads);
  LinearForward(a.h1.data(), m.Param(L(l, "attn_q.weight")), Bias(m, l, "attn_q.bias"), N, C, Q, a.q.data(), threads);
  LinearForward(a.h1.data(), m.Param(L(l, "attn_k.weight")), Bias(m, l, "attn_k.bias"), N, C, KV, a.k.data(), threads);
  LinearForward(a.h1.data(), m.Param(L(l, "attn_v.weight")), Bias(m, l, "attn_v.bias"), N, C, KV, a.v.data(), threads);
  RopeForward(a.q.data(), positions, QRope(c), m.inv_freq().data(), threads);
  RopeForward(a.k.data(), positions, KRope(c), m.inv_freq().data(), threads);
  const AttentionShape as{B, T, c.n_heads, c.n_kv_heads, c.head_dim};
  AttentionForward(a.q.data(), a.k.data(), a.v.data(), as, a.att.data(), a.probs.data(), threads);
  LinearForward(a.att.data(), m.Param(L(l, "attn_output.weight")), nullptr, N, Q, C, a.x_mid.data(), threads);
  for (int64_t i = 0; i < N * C; ++i) a.x_mid[i] += x[i];

  RmsNormForward(a.x_mid.data(), m.Param(L(l, "ffn_norm.weight")), N, C, c.norm_eps, a.h2.data(), a.rstd2.data(),
                 threads);
  LinearForward(a.h2.data(), m.Param(L(l, "ffn_gate.weight")), nullptr, N, C, F, a.gate.data(), threads);
  LinearForward(a.h2.data(), m.Param(L(l, "ffn_up.weight")), nullptr, N, C, F, a.up.data(), threads);
  SwigluForward(a.gate.data(), a.up.data(), N * F, a.act.data(), threads);
  LinearForward(a.act.data(), m.Param(L(l, "ffn_down.weight")), nullptr, N, F, C, out, threads);
  for (int64_t i = 0; i < N * C; ++i) out[i] += a.x_mid[i];
}

void BlockBackward(TrainModel& m, int l, const BlockActivations& a, int64_t B, int64_t T, float* dx,
                   std::span<const int32_t> positions, Workspace& ws, int threads) {
  const ModelConfig& c = m.config();
  const int64_t N = B * T, C = c.dim, Q = c.q_dim(), KV = c.kv_dim(), F = c.ff;
  Resize(ws.dact, N * F), Resize(ws.dgate, N * F), Resize(ws.dup, N * F), Resize(ws.dh, N * C);
  Resize(ws.dtmp, N * C), Resize(ws.datt, N * Q), Resize(ws.dq, N * Q), Resize(ws.dk, N * KV), Resize(ws.dv, N * KV);

  // Feed-forward half: out = x_mid + down(silu(gate(h2)) · up(h2)), h2 = norm(x_mid).
  LinearBackward(dx, a.act.data(), m.Param(L(l, "ffn_down.weight")), N, F, C, ws.dact.data(), false,
                 m.Grad(L(l, "ffn_down.weight")), nullptr, threads);
  SwigluBackward(ws.dact.data(), a.gate.data(), a.up.data(), N * F, ws.dgate.data(), ws.dup.data(), threads);
  LinearBackward(ws.dgate.data(), a.h2.data(), m.Param(L(l, "ffn_gate.weight")), N, C, F, ws.dh.data(), false,
                 m.Grad(L(l, "ffn_gate.weight")), nullptr, threads);
  LinearBackward(ws.dup.data(), a.h2.data(), m.Param(L(l, "ffn_up.weight")), N, C, F, ws.dh.data(), true,
                 m.Grad(L(l, "ffn_up.weight")), nullptr, threads);
  RmsNormBackward(ws.dh.data(), a.x_mid.data(), m.Param(L(l, "ffn_norm.weight")), a.rstd2.data(), N, C,
                  ws.dtmp.data(), m.Grad(L(l, "ffn_norm.weight")), threads);
  for (int64_t i = 0; i < N * C; ++i) dx[i] += ws.dtmp[i];  // dx is now ∂/∂x_mid

  // Attention half: x_mid = x + o(attention(rope(q(h1)), rope(k(h1)), v(h1))), h1 = norm(x).
  LinearBackward(dx, a.att.data(), m.Param(L(l, "attn_output.weight")), N, Q, C, ws.datt.data(), false,
                 m.Grad(L(l, "attn_output.weight")), nullptr, threads);
  const AttentionShape as{B, T, c.n_heads, c.n_kv_heads, c.head_dim};
  AttentionBackward(ws.datt.data(), a.q.data(), a.k.data(), a.v.data(), a.probs.data(), as, ws.dq.data(),
                    ws.dk.data(), ws.dv.data(), threads, Tap(ws.taps.probs, l));
  if (const float* tv = Tap(ws.taps.v, l))
    for (int64_t i = 0; i < N * KV; ++i) ws.dv[i] += tv[i];
  RopeBackward(ws.dq.data(), positions, QRope(c), m.inv_freq().data(), threads);
  RopeBackward(ws.dk.data(), positions, KRope(c), m.inv_freq().data(), threads);
  LinearBackward(ws.dq.data(), a.h1.data(), m.Param(L(l, "attn_q.weight")), N, C, Q, ws.dh.data(), false,
                 m.Grad(L(l, "attn_q.weight")), BiasGrad(m, l, "attn_q.bias"), threads);
  LinearBackward(ws.dk.data(), a.h1.data(), m.Param(L(l, "attn_k.weight")), N, C, KV, ws.dh.data(), true,
                 m.Grad(L(l, "attn_k.weight")), BiasGrad(m, l, "attn_k.bias"), threads);
  LinearBackward(ws.dv.data(), a.h1.data(), m.Param(L(l, "attn_v.weight")), N, C, KV, ws.dh.data(), true,
                 m.Grad(L(l, "attn_v.weight")), BiasGrad(m, l, "attn_v.bias"), threads);
  RmsNormBackward(ws.dh.data(), a.x.data(), m.Param(L(l, "attn_norm.weight")), a.rstd1.data(), N, C, ws.dtmp.data(),
                  m.Grad(L(l, "attn_norm.weight")), threads);
  for (int64_t i = 0; i < N * C; ++i) dx[i] += ws.dtmp[i];
}

std::vector<float> Logits(const TrainModel& m, const Batch& batch, Workspace& ws, int threads) {
  Forward(m, batch, ws, threads);
  return ws.logits;
}

double Loss(const TrainModel& m, const Batch& batch, Workspace& ws, int threads) {
  Forward(m, batch, ws, threads);
  return CrossEntropyLoss(ws.logits.data(), batch.targets, m.config().vocab, threads);
}

double ForwardBackward(TrainModel& m, const Batch& batch, float grad_scale, Workspace& ws, int threads) {
  Forward(m, batch, ws, threads);
  const double loss =
      CrossEntropyForwardBackward(ws.logits.data(), batch.targets, m.config().vocab, grad_scale, threads);
  Backward(m, batch, ws, threads);  // ws.logits now holds ∂loss/∂logits
  return loss;
}

void Backward(TrainModel& m, const Batch& batch, Workspace& ws, int threads) {
  const ModelConfig& c = m.config();
  const int64_t N = batch.B * batch.T, C = c.dim;
  Resize(ws.dh, N * C);
  Resize(ws.dx, N * C);
  LinearBackward(ws.logits.data(), ws.h_final.data(), HeadWeight(m), N, C, c.vocab, ws.dh.data(), false,
                 m.Grad(c.tied_embeddings ? "token_embd.weight" : "output.weight"), nullptr, threads);
  RmsNormBackward(ws.dh.data(), ws.x_final.data(), m.Param("output_norm.weight"), ws.rstd_final.data(), N, C,
                  ws.dx.data(), m.Grad("output_norm.weight"), threads);
  for (int l = c.n_layers - 1; l >= 0; --l) {
    if (const float* th = Tap(ws.taps.hidden, l))  // ws.dx is ∂/∂(block l's output) here
      for (int64_t i = 0; i < N * C; ++i) ws.dx[i] += th[i];
    BlockBackward(m, l, ws.blocks[l], batch.B, batch.T, ws.dx.data(), ws.positions, ws, threads);
  }
  EmbeddingBackward(ws.dx.data(), batch.inputs, C, m.Grad("token_embd.weight"));
}

int64_t ScoredTargets(const Batch& batch) {
  return std::count_if(batch.targets.begin(), batch.targets.end(), [](int32_t t) { return t != kIgnoreIndex; });
}

}  // namespace smelt::train
