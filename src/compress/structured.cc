#include "compress/structured.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <numeric>

#include "core/error.h"
#include "eval/perplexity.h"
#include "formats/types.h"
#include "kernels/blas.h"
#include "model/llama.h"
#include "runtime/session.h"

namespace smelt {
namespace {

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

// Units of `target` in one layer (all blocks for kLayers).
int UnitCount(const ModelConfig& c, StructuredTarget target) {
  switch (target) {
    case StructuredTarget::kHeads: return c.n_kv_heads;
    case StructuredTarget::kChannels: return c.ff;
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

// Rows of W (R, C) as f32, row-major.
std::vector<float> Dense(const Tensor& t) { return DequantizeAll(t); }

// Gathers the importance of heads and channels from the projections' inputs, and the block
// influence from the residual stream, over every sample the session runs.
class ScoreObserver : public ForwardObserver {
 public:
  ScoreObserver(const Model& m, StructuredTarget target) : m_(m), c_(m.config), target_(target) {
    const int L = c_.n_layers;
    scores_.assign(target == StructuredTarget::kLayers ? 1 : L,
                   std::vector<double>(target == StructuredTarget::kLayers ? L : UnitCount(c_, target), 0.0));
    tokens_per_layer_.assign(L, 0);
    if (target == StructuredTarget::kChannels) {
      // ‖W_down[:, j]‖² per channel j of every layer, once.
      col_norm_.resize(L);
      for (int l = 0; l < L; ++l) {
        const std::vector<float> w = Dense(m.weights.Get(BlockTensorName(l, "ffn_down.weight")));
        std::vector<double>& n = col_norm_[l];
        n.assign(c_.ff, 0.0);
        for (int64_t r = 0; r < c_.dim; ++r)
          for (int j = 0; j < c_.ff; ++j) n[j] += (double)w[(size_t)r * c_.ff + j] * w[(size_t)r * c_.ff + j];
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
      for (int64_t t = 0; t < T; ++t)
        for (int j = 0; j < c_.ff; ++j) s[j] += (double)x[t * c_.ff + j] * x[t * c_.ff + j] * col_norm_[layer][j];
    }
  }

  void OnBlockOutput(int layer, const float* x, int64_t T) override {
    if (target_ != StructuredTarget::kLayers) return;
    const int64_t C = c_.dim;
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

  // Block influence is a mean over tokens; the others are sums, as defined.
  std::vector<std::vector<double>> Take() {
    if (target_ == StructuredTarget::kLayers)
      for (int l = 0; l < c_.n_layers; ++l)
        if (tokens_per_layer_[l] > 0) scores_[0][l] /= (double)tokens_per_layer_[l];
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
    const int G = c_.n_heads / c_.n_kv_heads;
    const int64_t width = (int64_t)G * c_.head_dim;
    y_.resize((size_t)(T * C));
    for (int g = 0; g < c_.n_kv_heads; ++g) {
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

// log-softmax of one row of logits, in double.
// Mean KL(full ‖ without block l) over every position of every sample, for each l.
std::vector<double> LayerKld(const Model& model, const std::vector<std::vector<int32_t>>& samples, int threads) {
  const int L = model.config.n_layers;
  const int ctx = MaxLength(samples, model.source);
  const SessionOptions so{.threads = threads, .context = ctx, .activations = Activations::kExact, .repack = false};
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
        LogSoftmax(z.subspan(t * V, V), lq);
        double k = 0;
        for (int64_t i = 0; i < V; ++i) k += std::exp((double)lp[i]) * ((double)lp[i] - lq[i]);
        kld[l] += k;
      }
    }
  }
  for (double& k : kld) k /= (double)positions;
  return kld;
}

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
  const int ctx = MaxLength(samples, model.source);
  if (opt.target == StructuredTarget::kLayers && opt.layer_score == LayerScore::kKld)
    return {LayerKld(model, samples, opt.threads)};
  ScoreObserver obs(model, opt.target);
  Session session(model, {.threads = opt.threads, .context = ctx, .activations = Activations::kExact, .repack = false});
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
  } else {
    SMELT_ASSERT((int)removed.size() == c.n_layers);
    for (size_t l = 1; l < removed.size(); ++l) SMELT_ASSERT(removed[l].size() == removed[0].size());
    const int kept = UnitCount(c, target) - (int)removed[0].size();
    if (target == StructuredTarget::kHeads) {
      out.config.n_kv_heads = kept;
      out.config.n_heads = kept * G;
    } else {
      out.config.ff = kept;
    }
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
    const int units = UnitCount(c, target);
    const std::vector<int> kept = Kept(units, removed[layer]);
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

Model PruneStructured(const Model& model, const std::vector<std::vector<int32_t>>& samples,
                      const StructuredOptions& opt, StructuredReport* report) {
  const ModelConfig& c = model.config;
  const int units = UnitCount(c, opt.target);
  const int n =
      UnitsToRemove(units, opt.ratio, model.source, opt.target == StructuredTarget::kChannels ? opt.multiple_of : 1);
  std::vector<std::vector<double>> scores = StructuredScores(model, samples, opt);
  std::vector<std::vector<int>> removed(scores.size());
  for (size_t l = 0; l < scores.size(); ++l) {
    std::vector<int> order(scores[l].size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return scores[l][a] < scores[l][b]; });
    removed[l].assign(order.begin(), order.begin() + n);
    std::sort(removed[l].begin(), removed[l].end());
  }
  Model out = RemoveUnits(model, opt.target, removed);
  if (report) {
    report->target = opt.target;
    report->params_before = CountParams(model);
    report->params_after = CountParams(out);
    report->units_per_layer = units;
    report->removed_per_layer = n;
    report->scores = std::move(scores);
    report->removed = std::move(removed);
  }
  return out;
}

}  // namespace smelt
