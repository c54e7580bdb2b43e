#include "compress/structured.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <queue>

#include "core/error.h"
#include "eval/perplexity.h"
#include "formats/types.h"
#include "kernels/blas.h"
#include "model/llama.h"
#include "runtime/session.h"

namespace smelt {
namespace {

constexpr int kMeasureSteps = 7;  // measured allocation: removals of 1/8 .. 7/8 of a block's units

// "blk.12.attn_q.weight" -> (12, "attn_q.weight"); (-1, name) for tensors outside the blocks.
std::pair<int, std::string> SplitBlockName(const std::string& name) {
  if (name.rfind("blk.", 0) != 0) return {-1, name};
  const size_t dot = name.find('.', 4);
  if (dot == std::string::npos) return {-1, name};
  int layer = 0;
  for (size_t i = 4; i < dot; ++i) {
    if (name[i] < '0' || name[i] > '9') return {-1, name};
    layer = layer * 10 + (name[i] - '0');
  }
  return {layer, name.substr(dot + 1)};
}

int64_t CountParams(const Model& m) {
  int64_t n = 0;
  for (const Tensor& t : m.weights.all()) n += t.nelements();
  return n;
}

// Units of `target` in block `layer` (all blocks for kLayers).
int UnitCount(const ModelConfig& c, StructuredTarget target, int layer) {
  switch (target) {
    case StructuredTarget::kHeads: return c.block(layer).n_kv_heads;
    case StructuredTarget::kChannels: return c.ff_of(layer);
    case StructuredTarget::kLayers: return c.n_layers;
  }
  return 0;
}

// The units of [0, n) not listed in `removed` (ascending).
std::vector<int> Kept(int n, const std::vector<int>& removed) {
  std::vector<char> gone(n, 0);
  for (int u : removed) {
    SMELT_ASSERT(u >= 0 && u < n);
    gone[u] = 1;
  }
  std::vector<int> kept;
  for (int u = 0; u < n; ++u)
    if (!gone[u]) kept.push_back(u);
  return kept;
}

// Rows [u * per, (u + 1) * per) of `t` for every kept unit u, in its own type (each row of any
// format encodes independently). A 1-D tensor (a bias) counts its elements as rows.
Tensor KeepRows(const Tensor& t, int per, const std::vector<int>& kept) {
  if (t.n_dims == 1) {
    std::vector<float> all = DequantizeAll(t), out;
    for (int u : kept) out.insert(out.end(), all.begin() + (int64_t)u * per, all.begin() + (int64_t)(u + 1) * per);
    const int64_t n = (int64_t)out.size();  // before `out` is moved from
    return MakeF32Tensor(t.name, {n}, std::move(out));
  }
  const size_t row_bytes = RowBytes(t.type, t.ne[0]);
  std::vector<uint8_t> bytes;
  bytes.reserve(kept.size() * per * row_bytes);
  const auto* src = static_cast<const uint8_t*>(t.data);
  for (int u : kept) bytes.insert(bytes.end(), src + (size_t)u * per * row_bytes, src + (size_t)(u + 1) * per * row_bytes);
  Tensor out = TensorFromBytes(t, t.type, std::move(bytes));
  out.ne[1] = (int64_t)kept.size() * per;
  return out;
}

// Columns [u * per, (u + 1) * per) of the 2-D `t` for every kept unit u, as f32.
Tensor KeepColumns(const Tensor& t, int per, const std::vector<int>& kept) {
  const int64_t C = t.ne[0], R = t.nrows(), nc = (int64_t)kept.size() * per;
  std::vector<float> row(C), out((size_t)(nc * R));
  for (int64_t r = 0; r < R; ++r) {
    DequantizeRow(t, r, row.data());
    float* dst = &out[(size_t)(r * nc)];
    for (size_t i = 0; i < kept.size(); ++i) std::memcpy(dst + i * per, &row[(size_t)kept[i] * per], per * sizeof(float));
  }
  return MakeF32Tensor(t.name, {nc, R}, std::move(out));
}

// Whether the all-zero bytes of one encoded row of n values decode to n zeros.
bool ZeroBytesAreZeros(DType type, int64_t n) {
  const TypeTraits& tr = Traits(type);
  if (!tr.to_float) return false;
  const std::vector<uint8_t> zero(RowBytes(type, n), 0);
  std::vector<float> v((size_t)n);
  tr.to_float(zero.data(), v.data(), n);
  return std::all_of(v.begin(), v.end(), [](float x) { return x == 0.0f; });
}

// `t` (C, R) with zero rows appended up to `rows`: in its own type where that encodes zeros,
// else as f32.
Tensor PadRows(const Tensor& t, int64_t rows) {
  if (t.n_dims == 1) {  // a bias: its elements are the rows
    std::vector<float> v = DequantizeAll(t);
    v.resize((size_t)rows, 0.0f);
    return MakeF32Tensor(t.name, {rows}, std::move(v));
  }
  const int64_t C = t.ne[0];
  if (ZeroBytesAreZeros(t.type, C)) {
    const auto* src = static_cast<const uint8_t*>(t.data);
    std::vector<uint8_t> bytes(src, src + t.nbytes);
    bytes.resize(RowBytes(t.type, C) * rows, 0);
    Tensor out = TensorFromBytes(t, t.type, std::move(bytes));
    out.ne[1] = rows;
    return out;
  }
  std::vector<float> w = DequantizeAll(t);
  w.resize((size_t)(C * rows), 0.0f);
  return MakeF32Tensor(t.name, {C, rows}, std::move(w));
}

// `t` (C, R) with zero columns appended up to `cols`: whole zero blocks in its own type where the
// block size divides both widths, else as f32.
Tensor PadColumns(const Tensor& t, int64_t cols) {
  const int64_t C = t.ne[0], R = t.nrows();
  const TypeTraits& tr = Traits(t.type);
  if (tr.row_header == 0 && C % tr.block_size == 0 && cols % tr.block_size == 0 && ZeroBytesAreZeros(t.type, cols - C)) {
    const size_t in_row = RowBytes(t.type, C), out_row = RowBytes(t.type, cols);
    std::vector<uint8_t> bytes(out_row * R, 0);
    const auto* src = static_cast<const uint8_t*>(t.data);
    for (int64_t r = 0; r < R; ++r) std::memcpy(&bytes[r * out_row], src + r * in_row, in_row);
    Tensor out = TensorFromBytes(t, t.type, std::move(bytes));
    out.ne[0] = cols;
    return out;
  }
  std::vector<float> row((size_t)C), out((size_t)(cols * R), 0.0f);
  for (int64_t r = 0; r < R; ++r) {
    DequantizeRow(t, r, row.data());
    std::copy(row.begin(), row.end(), out.begin() + r * cols);
  }
  return MakeF32Tensor(t.name, {cols, R}, std::move(out));
}

// Rows of W (R, C) as f32, row-major.
std::vector<float> Dense(const Tensor& t) { return DequantizeAll(t); }

// Gathers the importance of heads and channels from the projections' inputs, and the block
// influence from the residual stream, over every sample the session runs.
class ScoreObserver : public ForwardObserver {
 public:
  ScoreObserver(const Model& m, StructuredTarget target) : m_(m), c_(m.config), target_(target) {
    const int L = c_.n_layers;
    if (target == StructuredTarget::kLayers) {
      scores_.assign(1, std::vector<double>(L, 0.0));
    } else {
      for (int l = 0; l < L; ++l) scores_.emplace_back(UnitCount(c_, target, l), 0.0);
    }
    tokens_per_layer_.assign(L, 0);
    stream_energy_.assign(L, 0.0);
    if (target == StructuredTarget::kChannels) {
      // ‖W_down[:, j]‖² per channel j of every layer, once.
      col_norm_.resize(L);
      for (int l = 0; l < L; ++l) {
        const std::vector<float> w = Dense(m.weights.Get(BlockTensorName(l, "ffn_down.weight")));
        const int F = c_.ff_of(l);
        std::vector<double>& n = col_norm_[l];
        n.assign(F, 0.0);
        for (int64_t r = 0; r < c_.dim; ++r)
          for (int j = 0; j < F; ++j) n[j] += (double)w[(size_t)r * F + j] * w[(size_t)r * F + j];
      }
    }
  }

  // The tokens of the next sample (the block input of layer 0 is their embedding).
  void SetTokens(std::span<const int32_t> tokens) { tokens_.assign(tokens.begin(), tokens.end()); }

  void OnLinearInput(int layer, const Tensor& w, const float* x, int64_t T) override {
    if (layer >= c_.n_layers) return;
    const std::string suffix = SplitBlockName(w.name).second;
    if (target_ == StructuredTarget::kHeads && suffix == "attn_output.weight") HeadScores(layer, w, x, T);
    if (target_ == StructuredTarget::kChannels && suffix == "ffn_down.weight") {
      std::vector<double>& s = scores_[layer];
      const int F = c_.ff_of(layer);
      for (int64_t t = 0; t < T; ++t)
        for (int j = 0; j < F; ++j) s[j] += (double)x[t * F + j] * x[t * F + j] * col_norm_[layer][j];
    }
  }

  void OnBlockOutput(int layer, const float* x, int64_t T) override {
    const int64_t C = c_.dim;
    if (target_ != StructuredTarget::kLayers) {
      double e = 0;
      for (int64_t i = 0; i < T * C; ++i) e += (double)x[i] * x[i];
      stream_energy_[layer] += e;
      return;
    }
    if (layer == 0) {  // the block's input: the embeddings of the sample's tokens
      SMELT_ASSERT((int64_t)tokens_.size() == T);
      prev_.resize((size_t)(T * C));
      const Tensor& embd = m_.weights.Get("token_embd.weight");
      for (int64_t t = 0; t < T; ++t) DequantizeRow(embd, tokens_[t], &prev_[(size_t)(t * C)]);
    }
    double sum = 0;
    for (int64_t t = 0; t < T; ++t) {
      const float* a = &prev_[(size_t)(t * C)];
      const float* b = x + t * C;
      double ab = 0, aa = 0, bb = 0;
      for (int64_t i = 0; i < C; ++i) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
      const double denom = std::sqrt(aa * bb);
      sum += 1.0 - (denom > 0 ? ab / denom : 1.0);
    }
    scores_[0][layer] += sum;
    tokens_per_layer_[layer] += T;
    prev_.assign(x, x + T * C);
  }

  // Block influence is a mean over tokens; a head's or channel's sum is divided by the energy
  // of the residual stream it is added to (see structured.h).
  std::vector<std::vector<double>> Take() {
    for (int l = 0; l < c_.n_layers; ++l) {
      if (target_ == StructuredTarget::kLayers) {
        if (tokens_per_layer_[l] > 0) scores_[0][l] /= (double)tokens_per_layer_[l];
      } else if (stream_energy_[l] > 0) {
        for (double& s : scores_[l]) s /= stream_energy_[l];
      }
    }
    return std::move(scores_);
  }

 private:
  // Σ_t ‖W_o[:, g] o_g,t‖² for every KV group g of block `layer`.
  void HeadScores(int layer, const Tensor& w, const float* x, int64_t T) {
    const int64_t Q = w.ne[0], C = w.ne[1];
    if (wo_layer_ != layer) {
      wo_ = Dense(w);
      wo_layer_ = layer;
    }
    const int G = c_.n_heads / c_.n_kv_heads, n_kv = c_.block(layer).n_kv_heads;
    const int64_t width = (int64_t)G * c_.head_dim;
    y_.resize((size_t)(T * C));
    for (int g = 0; g < n_kv; ++g) {
      // y (T, C) = x[:, g cols] · W_o[:, g cols]ᵀ
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)C, (int)width, 1.0f, x + g * width, (int)Q,
                  wo_.data() + g * width, (int)Q, 0.0f, y_.data(), (int)C);
      double s = 0;
      for (float v : y_) s += (double)v * v;
      scores_[layer][g] += s;
    }
  }

  const Model& m_;
  const ModelConfig& c_;
  StructuredTarget target_;
  std::vector<std::vector<double>> scores_;
  std::vector<int64_t> tokens_per_layer_;
  std::vector<double> stream_energy_;  // Σ over tokens of ‖block output‖², per block
  std::vector<std::vector<double>> col_norm_;
  std::vector<int32_t> tokens_;
  std::vector<float> prev_, wo_, y_;
  int wo_layer_ = -1;
};

int MaxLength(const std::vector<std::vector<int32_t>>& samples, const std::string& source) {
  size_t n = 0;
  for (const auto& s : samples) n = std::max(n, s.size());
  if (samples.empty() || n == 0) Fail("{}: no calibration samples to run", source);
  return (int)n;
}

// KL(p ‖ q) of one position, p given as log-probs, q as logits (lq: scratch of the vocabulary's size).
double PositionKl(std::span<const float> lp, std::span<const float> logits_q, std::vector<float>& lq) {
  LogSoftmax(logits_q, lq);
  double k = 0;
  for (size_t i = 0; i < lp.size(); ++i) k += std::exp((double)lp[i]) * ((double)lp[i] - lq[i]);
  return k;
}

SessionOptions ExactSession(const Model& model, const std::vector<std::vector<int32_t>>& samples, int threads) {
  return {.threads = threads, .context = MaxLength(samples, model.source), .activations = Activations::kExact,
          .repack = false};
}

// Mean KL(full ‖ without block l) over every position of every sample, for each l. The ablated
// models share the full one's tensors, so they all run side by side, one sample at a time.
std::vector<double> LayerKld(const Model& model, const std::vector<std::vector<int32_t>>& samples, int threads) {
  const int L = model.config.n_layers;
  const SessionOptions so = ExactSession(model, samples, threads);
  std::vector<Model> ablated;
  ablated.reserve(L);
  for (int l = 0; l < L; ++l) ablated.push_back(RemoveUnits(model, StructuredTarget::kLayers, {{l}}));
  Session base(model, so);
  std::vector<std::unique_ptr<Session>> sessions;
  for (const Model& a : ablated) sessions.push_back(std::make_unique<Session>(a, so));
  const int64_t V = model.config.vocab;
  std::vector<double> kld(L, 0.0);
  std::vector<float> lp(V), lq(V);
  int64_t positions = 0;
  for (const auto& s : samples) {
    base.Reset();
    const std::span<const float> zb = base.Eval(s, true);
    const std::vector<float> full(zb.begin(), zb.end());
    positions += (int64_t)s.size();
    for (int l = 0; l < L; ++l) {
      sessions[l]->Reset();
      std::span<const float> z = sessions[l]->Eval(s, true);
      for (size_t t = 0; t < s.size(); ++t) {
        LogSoftmax(std::span<const float>(&full[t * V], V), lp);
        kld[l] += PositionKl(lp, z.subspan(t * V, V), lq);
      }
    }
  }
  for (double& k : kld) k /= (double)positions;
  return kld;
}

// Mean KL(base ‖ variant) over every position of the samples, for one variant after another: the
// base model's log-probs are computed once and kept (positions × vocabulary floats), and so are
// its blocks' outputs where they fit in kKeepBlockInputsBytes, so that a variant that differs from
// block l on resumes there (ResumeAt) instead of recomputing the blocks before it.
class CalibKld : ForwardObserver {
 public:
  static constexpr double kKeepBlockInputsBytes = 1024.0 * 1024 * 1024;

  CalibKld(const Model& base, const std::vector<std::vector<int32_t>>& samples, int threads)
      : samples_(samples), so_(ExactSession(base, samples, threads)), V_(base.config.vocab), dim_(base.config.dim) {
    int64_t positions = 0;
    for (const auto& s : samples) positions += (int64_t)s.size();
    const double gib = (double)positions * V_ * sizeof(float) / (1 << 30);
    if (gib > 2.0)
      Fail("{}: measuring the allocation keeps the base log-probs of {} calibration positions ({:.1f} GiB); give "
           "fewer samples or tokens",
           base.source, positions, gib);
    const int L = base.config.n_layers;
    keep_inputs_ = (double)positions * base.config.dim * (L - 1) * sizeof(float) <= kKeepBlockInputsBytes;
    if (keep_inputs_) inputs_.assign(samples.size(), std::vector<std::vector<float>>(std::max(L - 1, 0)));
    lp_.resize((size_t)(positions * V_));
    Session session(base, so_);
    if (keep_inputs_) session.set_observer(this);
    size_t at = 0;
    for (sample_ = 0; sample_ < samples.size(); ++sample_) {
      const auto& s = samples[sample_];
      session.Reset();
      const std::span<const float> z = session.Eval(s, true);
      for (size_t t = 0; t < s.size(); ++t, at += (size_t)V_)
        LogSoftmax(z.subspan(t * V_, V_), std::span<float>(&lp_[at], (size_t)V_));
    }
    positions_ = positions;
  }

  // `variant` must compute what the base computes in the blocks before `first_changed`.
  double Of(const Model& variant, int first_changed = 0) const {
    Session session(variant, so_);
    std::vector<float> lq(V_);
    double kld = 0;
    size_t at = 0;
    for (size_t i = 0; i < samples_.size(); ++i) {
      const auto& s = samples_[i];
      session.Reset();
      const ResumeAt from = keep_inputs_ && first_changed > 0
                                ? ResumeAt{first_changed, inputs_[i][(size_t)first_changed - 1].data()}
                                : ResumeAt{};
      const std::span<const float> z = session.Eval(s, true, from);
      for (size_t t = 0; t < s.size(); ++t, at += (size_t)V_)
        kld += PositionKl(std::span<const float>(&lp_[at], (size_t)V_), z.subspan(t * V_, V_), lq);
    }
    return kld / (double)positions_;
  }

 private:
  // The base pass's block outputs: block l's is block l + 1's input (chunks arrive in order).
  void OnBlockOutput(int layer, const float* x, int64_t T) override {
    std::vector<std::vector<float>>& blocks = inputs_[sample_];
    if (layer < (int)blocks.size()) blocks[(size_t)layer].insert(blocks[(size_t)layer].end(), x, x + T * dim_);
  }

  const std::vector<std::vector<int32_t>>& samples_;
  SessionOptions so_;
  int64_t V_, dim_, positions_ = 0;
  std::vector<float> lp_;
  bool keep_inputs_ = false;
  size_t sample_ = 0;
  std::vector<std::vector<std::vector<float>>> inputs_;  // [sample][block] -> (tokens, dim)
};

}  // namespace

StructuredTarget ParseStructuredTarget(const std::string& s, const std::string& what) {
  if (s == "heads") return StructuredTarget::kHeads;
  if (s == "channels") return StructuredTarget::kChannels;
  if (s == "layers") return StructuredTarget::kLayers;
  Fail("{}: unknown structure '{}' (heads, channels or layers)", what, s);
}

const char* StructuredTargetName(StructuredTarget t) {
  switch (t) {
    case StructuredTarget::kHeads: return "heads";
    case StructuredTarget::kChannels: return "channels";
    case StructuredTarget::kLayers: return "layers";
  }
  return "?";
}

int UnitsToRemove(int units, double ratio, const std::string& source, int multiple_of) {
  if (!(ratio >= 0.0 && ratio < 1.0)) Fail("{}: structured ratio {} is outside [0, 1)", source, ratio);
  if (multiple_of < 1) Fail("{}: multiple {} must be at least 1", source, multiple_of);
  if (multiple_of > 1) {
    if (units < multiple_of) Fail("{}: {} units cannot keep a multiple of {}", source, units, multiple_of);
    const long kept = std::max(1L, std::lround((1.0 - ratio) * units / multiple_of)) * multiple_of;
    return units - (int)std::min<long>(kept, units - units % multiple_of);
  }
  const int n = (int)std::lround(ratio * units);
  if (n >= units) Fail("{}: ratio {} would remove all {} units; at least one must remain", source, ratio, units);
  return n;
}

std::vector<std::vector<double>> StructuredScores(const Model& model, const std::vector<std::vector<int32_t>>& samples,
                                                  const StructuredOptions& opt) {
  if (opt.target == StructuredTarget::kLayers && opt.layer_score == LayerScore::kKld)
    return {LayerKld(model, samples, opt.threads)};
  const SessionOptions so = ExactSession(model, samples, opt.threads);  // throws for empty samples
  ScoreObserver obs(model, opt.target);
  Session session(model, so);
  session.set_observer(&obs);
  for (const auto& s : samples) {
    session.Reset();
    obs.SetTokens(s);
    session.Eval(s, /*all_logits=*/false);
  }
  return obs.Take();
}

Model RemoveUnits(const Model& model, StructuredTarget target, const std::vector<std::vector<int>>& removed) {
  const ModelConfig& c = model.config;
  Model out;
  out.config = c;
  out.vocab = model.vocab;
  out.source = model.source;
  out.format = model.format;
  out.info = model.info;
  const int G = c.n_heads / c.n_kv_heads, hd = c.head_dim;
  std::vector<int> new_index(c.n_layers, -1);  // kLayers: old block -> new block
  if (target == StructuredTarget::kLayers) {
    SMELT_ASSERT(removed.size() == 1);
    const std::vector<int> kept = Kept(c.n_layers, removed[0]);
    for (size_t i = 0; i < kept.size(); ++i) new_index[kept[i]] = (int)i;
    out.config.n_layers = (int)kept.size();
    std::vector<int> ff, kv;  // the kept blocks' own sizes
    for (int l : kept) ff.push_back(c.block(l).ff), kv.push_back(c.block(l).n_kv_heads);
    SetFeedForwardSizes(out.config, std::move(ff), model.source);
    SetKvHeadCounts(out.config, std::move(kv), model.source);
  } else if (target == StructuredTarget::kHeads) {  // each block its own count of kv groups
    SMELT_ASSERT((int)removed.size() == c.n_layers);
    std::vector<int> kv(c.n_layers);
    for (int l = 0; l < c.n_layers; ++l) kv[l] = c.block(l).n_kv_heads - (int)removed[l].size();
    SetKvHeadCounts(out.config, std::move(kv), model.source);
  } else {  // channels: each block its own count
    SMELT_ASSERT((int)removed.size() == c.n_layers);
    std::vector<int> sizes(c.n_layers);
    for (int l = 0; l < c.n_layers; ++l) sizes[l] = c.ff_of(l) - (int)removed[l].size();
    SetFeedForwardSizes(out.config, std::move(sizes), model.source);
  }
  for (const Tensor& t : model.weights.all()) {
    const auto [layer, suffix] = SplitBlockName(t.name);
    if (layer < 0 || layer >= c.n_layers) {
      out.weights.Add(t);
      continue;
    }
    if (target == StructuredTarget::kLayers) {
      if (new_index[layer] < 0) continue;
      Tensor r = t;
      r.name = BlockTensorName(new_index[layer], suffix.c_str());
      out.weights.Add(std::move(r));
      continue;
    }
    const std::vector<int> kept = Kept(UnitCount(c, target, layer), removed[layer]);
    const std::string stem = suffix.substr(0, suffix.find('.'));
    if (target == StructuredTarget::kHeads) {
      std::vector<int> kept_q;  // query heads of the kept groups
      for (int g : kept)
        for (int h = 0; h < G; ++h) kept_q.push_back(g * G + h);
      if (stem == "attn_q") {
        out.weights.Add(KeepRows(t, hd, kept_q));
      } else if (stem == "attn_k" || stem == "attn_v") {
        out.weights.Add(KeepRows(t, hd, kept));
      } else if (suffix == "attn_output.weight") {
        out.weights.Add(KeepColumns(t, hd, kept_q));
      } else {
        out.weights.Add(t);
      }
    } else {
      if (suffix == "ffn_gate.weight" || suffix == "ffn_up.weight") {
        out.weights.Add(KeepRows(t, 1, kept));
      } else if (suffix == "ffn_down.weight") {
        out.weights.Add(KeepColumns(t, 1, kept));
      } else {
        out.weights.Add(t);
      }
    }
  }
  ValidateConfig(out.config, model.source);
  return out;
}

namespace {

// How PadBlocks widens block tensor `suffix` of layer `layer`: its rows (columns where !rows; a
// 1-D bias's values count as columns) from `from` to `to`. Empty where the tensor keeps its shape.
struct BlockPadding {
  bool rows = true;
  int64_t from = 0, to = 0;
};
std::optional<BlockPadding> PaddingOf(const ModelConfig& c, int layer, const std::string& suffix) {
  const BlockShape b = c.block(layer);
  const std::string stem = suffix.substr(0, suffix.find('.'));
  if (b.ff < c.ff && (suffix == "ffn_gate.weight" || suffix == "ffn_up.weight")) return BlockPadding{true, b.ff, c.ff};
  if (b.ff < c.ff && suffix == "ffn_down.weight") return BlockPadding{false, b.ff, c.ff};
  if (b.n_kv_heads < c.n_kv_heads) {
    if (stem == "attn_q") return BlockPadding{true, b.q_dim, c.q_dim()};  // the padded groups' query heads at the end
    if (stem == "attn_k" || stem == "attn_v") return BlockPadding{true, b.kv_dim, c.kv_dim()};
    if (suffix == "attn_output.weight") return BlockPadding{false, b.q_dim, c.q_dim()};
  }
  return std::nullopt;
}

}  // namespace

Model PadBlocks(const Model& model) {
  const ModelConfig& c = model.config;
  if (c.uniform_blocks()) return model;
  Model out = model;
  out.weights = Weights{};
  out.config.layer_ff.clear();
  out.config.layer_kv_heads.clear();
  for (const Tensor& t : model.weights.all()) {
    const auto [layer, suffix] = SplitBlockName(t.name);
    const std::optional<BlockPadding> pad =
        layer >= 0 && layer < c.n_layers ? PaddingOf(c, layer, suffix) : std::nullopt;
    if (!pad) {
      out.weights.Add(t);
    } else {
      out.weights.Add(pad->rows ? PadRows(t, pad->to) : PadColumns(t, pad->to));
    }
  }
  ValidateConfig(out.config, model.source);
  return out;
}

std::vector<PaddedRegion> PaddedRegions(const Model& model) {
  const ModelConfig& c = model.config;
  std::vector<PaddedRegion> out;
  if (c.uniform_blocks()) return out;
  const int64_t D = c.dim;  // the padded tensors' other side: the model width
  for (const Tensor& t : model.weights.all()) {
    const auto [layer, suffix] = SplitBlockName(t.name);
    if (layer < 0 || layer >= c.n_layers) continue;
    const std::optional<BlockPadding> pad = PaddingOf(c, layer, suffix);
    if (!pad) continue;
    if (t.n_dims == 1) {
      out.push_back({t.name, 0, 1, pad->from, pad->to});
    } else if (pad->rows) {
      out.push_back({t.name, pad->from, pad->to, 0, D});
    } else {
      out.push_back({t.name, 0, D, pad->from, pad->to});
    }
  }
  return out;
}

Model TrimBlocks(const Model& padded, const ModelConfig& sizes) {
  const ModelConfig& c = padded.config;
  SMELT_ASSERT(c.uniform_blocks() && sizes.n_layers == c.n_layers && sizes.ff == c.ff &&
               sizes.n_kv_heads == c.n_kv_heads);
  auto tail = [](int from, int to) {
    std::vector<int> units;
    for (int u = from; u < to; ++u) units.push_back(u);
    return units;
  };
  std::vector<std::vector<int>> channels(c.n_layers), groups(c.n_layers);
  bool any_channels = false, any_groups = false;
  for (int l = 0; l < c.n_layers; ++l) {
    channels[l] = tail(sizes.ff_of(l), c.ff);
    groups[l] = tail(sizes.block(l).n_kv_heads, c.n_kv_heads);
    any_channels |= !channels[l].empty();
    any_groups |= !groups[l].empty();
  }
  Model out = any_channels ? RemoveUnits(padded, StructuredTarget::kChannels, channels) : padded;
  return any_groups ? RemoveUnits(out, StructuredTarget::kHeads, groups) : out;
}

std::vector<double> HullMarginalCosts(const std::vector<std::pair<int, double>>& measured, int units) {
  SMELT_ASSERT(units >= 1 && !measured.empty() && measured[0].first == 0);
  // Andrew's monotone chain, lower half: points in increasing k.
  std::vector<std::pair<int, double>> hull;
  for (const auto& p : measured) {
    auto cross = [&](const std::pair<int, double>& a, const std::pair<int, double>& b) {
      return (double)(b.first - a.first) * (p.second - a.second) - (b.second - a.second) * (double)(p.first - a.first);
    };
    while (hull.size() >= 2 && cross(hull[hull.size() - 2], hull.back()) <= 0) hull.pop_back();
    hull.push_back(p);
  }
  std::vector<double> cost((size_t)units, 0.0);
  if (hull.size() < 2) return cost;
  size_t seg = 0;
  for (int u = 0; u < units; ++u) {  // the unit that takes the count from u to u + 1
    while (seg + 2 < hull.size() && u >= hull[seg + 1].first) ++seg;
    const auto &a = hull[seg], &b = hull[seg + 1];
    cost[(size_t)u] = (b.second - a.second) / (double)(b.first - a.first);
  }
  return cost;
}

std::vector<int> GlobalRemovalCounts(const std::vector<std::vector<double>>& scores, double ratio, int multiple_of,
                                     const std::string& source) {
  if (!(ratio >= 0.0 && ratio < 1.0)) Fail("{}: structured ratio {} is outside [0, 1)", source, ratio);
  if (multiple_of < 1) Fail("{}: multiple {} must be at least 1", source, multiple_of);
  const int L = (int)scores.size(), m = multiple_of;
  SMELT_ASSERT(L > 0);
  std::vector<std::vector<double>> sorted(L);
  std::vector<int> counts(L), groups(L), taken(L, 0);
  int64_t units = 0, total_groups = 0;
  for (int l = 0; l < L; ++l) {
    const int n = (int)scores[l].size();
    if (n < m) Fail("{}: block {} has {} units and cannot keep a multiple of {}", source, l, n, m);
    sorted[l] = scores[l];
    std::sort(sorted[l].begin(), sorted[l].end());
    counts[l] = n % m;  // the remainder goes first
    groups[l] = n / m;
    units += n;
    total_groups += groups[l];
  }
  int64_t keep;  // groups kept in all
  if (m == 1) {
    keep = units - std::llround(ratio * (double)units);
    if (keep < L) Fail("{}: ratio {} would leave {} of {} units for {} blocks; each must keep one", source, ratio, keep, units, L);
  } else {
    keep = std::max<int64_t>(L, std::llround((1.0 - ratio) * (double)units / m));
    keep = std::min(keep, total_groups);
  }
  // The cheapest next group over all blocks, until `keep` remain; a block keeps its last group.
  auto cost = [&](int l) {
    const auto first = sorted[l].begin() + counts[l] + (int64_t)taken[l] * m;
    return std::accumulate(first, first + m, 0.0);
  };
  using Entry = std::pair<double, int>;  // (cost, block): the lowest cost, then the lowest block
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> next;
  for (int l = 0; l < L; ++l)
    if (groups[l] > 1) next.emplace(cost(l), l);
  for (int64_t left = total_groups; left > keep && !next.empty(); --left) {
    const int l = next.top().second;
    next.pop();
    if (++taken[l] < groups[l] - 1) next.emplace(cost(l), l);
  }
  for (int l = 0; l < L; ++l) counts[l] += taken[l] * m;
  return counts;
}

Model PruneStructured(const Model& model, const std::vector<std::vector<int32_t>>& samples,
                      const StructuredOptions& opt, StructuredReport* report) {
  const ModelConfig& c = model.config;
  if (opt.allocation != UnitAllocation::kUniform && opt.target == StructuredTarget::kLayers)
    Fail("{}: {} allocation is for heads and channels; whole blocks are chosen over the model already", model.source,
         opt.allocation == UnitAllocation::kGlobal ? "global" : "measured");
  const int multiple = opt.target == StructuredTarget::kChannels ? opt.multiple_of : 1;
  // The uniform counts, checked before the scores are measured (also for global allocation, which
  // fails wherever they do).
  const int rows = opt.target == StructuredTarget::kLayers ? 1 : c.n_layers;
  std::vector<int> counts(rows);
  for (int l = 0; l < rows; ++l) counts[l] = UnitsToRemove(UnitCount(c, opt.target, l), opt.ratio, model.source, multiple);
  std::vector<std::vector<double>> scores = StructuredScores(model, samples, opt);
  // Units of each block in the order they go: lowest score first, ties to the lower index.
  std::vector<std::vector<int>> order(scores.size());
  for (size_t l = 0; l < scores.size(); ++l) {
    order[l].resize(scores[l].size());
    std::iota(order[l].begin(), order[l].end(), 0);
    std::stable_sort(order[l].begin(), order[l].end(), [&](int a, int b) { return scores[l][a] < scores[l][b]; });
  }
  if (opt.allocation == UnitAllocation::kGlobal) {
    counts = GlobalRemovalCounts(scores, opt.ratio, multiple, model.source);
  } else if (opt.allocation == UnitAllocation::kMeasured) {
    // Each block alone loses its first k units for k on a grid of eighths; the measured KLD's
    // convex hull prices every further unit, and the cheapest split of the total follows.
    const CalibKld kld(model, samples, opt.threads);
    std::vector<std::vector<std::pair<int, double>>> curves(c.n_layers);
    int done = 0;
    const int total = c.n_layers * kMeasureSteps;
    std::vector<std::vector<double>> costs(c.n_layers);
    for (int l = 0; l < c.n_layers; ++l) {
      const int n = (int)order[l].size();
      curves[l].push_back({0, 0.0});
      for (int i = 1; i <= kMeasureSteps; ++i) {
        const int k = std::min(n - 1, (int)std::lround((double)i * n / (kMeasureSteps + 1)));
        if (k > curves[l].back().first) {
          std::vector<std::vector<int>> one(c.n_layers);
          one[l].assign(order[l].begin(), order[l].begin() + k);
          std::sort(one[l].begin(), one[l].end());
          curves[l].push_back({k, kld.Of(RemoveUnits(model, opt.target, one), l)});
        }
        if (opt.progress) opt.progress(++done, total);
      }
      costs[l] = HullMarginalCosts(curves[l], n);
    }
    counts = GlobalRemovalCounts(costs, opt.ratio, multiple, model.source);
    if (report) report->measured = std::move(curves);
  }
  std::vector<std::vector<int>> removed(scores.size());
  for (size_t l = 0; l < scores.size(); ++l) {
    removed[l].assign(order[l].begin(), order[l].begin() + counts[l]);
    std::sort(removed[l].begin(), removed[l].end());
  }
  Model out = RemoveUnits(model, opt.target, removed);
  if (report) {
    report->target = opt.target;
    report->params_before = CountParams(model);
    report->params_after = CountParams(out);
    report->units_per_layer = opt.target == StructuredTarget::kChannels ? c.ff
                              : opt.target == StructuredTarget::kHeads  ? c.n_kv_heads
                                                                        : c.n_layers;
    const bool same = std::all_of(counts.begin(), counts.end(), [&](int n) { return n == counts[0]; });
    report->removed_per_layer = same ? counts[0] : 0;
    report->scores = std::move(scores);
    report->removed = std::move(removed);
  }
  return out;
}

}  // namespace smelt
