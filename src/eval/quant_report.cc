#include "eval/quant_report.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "formats/types.h"
#include "model/llama.h"
#include "runtime/session.h"

namespace smelt {
namespace {

// Tokens fed to both sessions in turn by CompareLayers: bounds the base's block outputs held
// to (layers, kLayerBatch, dim) floats.
constexpr int64_t kLayerBatch = 64;

// Keeps the residual stream after every block of the last batch.
class BlockCapture : public ForwardObserver {
 public:
  BlockCapture(int layers, int dim) : dim_(dim), out_((size_t)layers) {}
  void OnBlockOutput(int layer, const float* x, int64_t T) override { out_[(size_t)layer].assign(x, x + T * dim_); }
  const std::vector<float>& block(int layer) const { return out_[(size_t)layer]; }

 private:
  int64_t dim_;
  std::vector<std::vector<float>> out_;  // per layer: (T, dim)
};

// Compares the residual stream after every block with the one a BlockCapture kept for the same
// batch.
class BlockComparer : public ForwardObserver {
 public:
  BlockComparer(const BlockCapture& ref, int layers, int dim) : ref_(ref), dim_(dim), acc_((size_t)layers) {}

  void OnBlockOutput(int layer, const float* x, int64_t T) override {
    const std::vector<float>& h = ref_.block(layer);
    SMELT_ASSERT((int64_t)h.size() == T * dim_);
    Acc& a = acc_[(size_t)layer];
    for (int64_t t = 0; t < T; ++t) {
      const float* hb = h.data() + t * dim_;
      const float* hq = x + t * dim_;
      double dot = 0, bb = 0, qq = 0, dd = 0;
      for (int64_t i = 0; i < dim_; ++i) {
        const double b = hb[i], q = hq[i];
        dot += b * q, bb += b * b, qq += q * q, dd += (b - q) * (b - q);
      }
      double cos = bb > 0 && qq > 0 ? dot / std::sqrt(bb * qq) : (bb == qq ? 1.0 : 0.0);
      cos = std::clamp(cos, -1.0, 1.0);
      a.cos_sum += cos;
      a.cos_min = std::min(a.cos_min, cos);
      a.diff2 += dd;
      a.norm2 += bb;
      ++a.n;
    }
  }

  std::vector<LayerError> Finish() const {
    std::vector<LayerError> out;
    for (size_t l = 0; l < acc_.size(); ++l) {
      const Acc& a = acc_[l];
      LayerError e;
      e.layer = (int)l;
      e.cosine_mean = a.n ? a.cos_sum / (double)a.n : 0;
      e.cosine_min = a.n ? a.cos_min : 0;
      e.rel_l2 = a.norm2 > 0 ? std::sqrt(a.diff2 / a.norm2) : (a.diff2 > 0 ? INFINITY : 0.0);
      out.push_back(e);
    }
    return out;
  }

 private:
  struct Acc {
    double cos_sum = 0, cos_min = 1, diff2 = 0, norm2 = 0;
    int64_t n = 0;
  };
  const BlockCapture& ref_;
  int64_t dim_;
  std::vector<Acc> acc_;
};

bool SameTokens(const std::vector<ScoringWindow>& a, const std::vector<ScoringWindow>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].tokens != b[i].tokens || a[i].first_scored != b[i].first_scored) return false;
  return true;
}

}  // namespace

void CheckComparable(const Model& base, const Model& quant) {
  const ModelConfig &b = base.config, &q = quant.config;
  const std::string& src = quant.source;
  if (b.arch != q.arch)
    Fail("{}: architecture {} differs from the base's {} ({})", src, q.arch, b.arch, base.source);
  const struct {
    const char* what;
    int base, quant;
  } dims[] = {{"dim", b.dim, q.dim},         {"layers", b.n_layers, q.n_layers},
              {"heads", b.n_heads, q.n_heads}, {"kv heads", b.n_kv_heads, q.n_kv_heads},
              {"head dim", b.head_dim, q.head_dim}, {"ff", b.ff, q.ff},
              {"vocabulary size", b.vocab, q.vocab}};
  for (const auto& d : dims)
    if (d.base != d.quant) Fail("{}: {} {} differs from the base's {} ({})", src, d.what, d.quant, d.base, base.source);
  for (const Tensor& tb : base.weights.all()) {
    const Tensor* tq = quant.weights.Find(tb.name);
    if (!tq) continue;
    if (tq->ne != tb.ne)
      Fail("{}: tensor {} has shape {}, the base's ({}) has {}", src, tb.name, ShapeString(*tq), base.source,
           ShapeString(tb));
    for (const auto& [t, where] : {std::pair{&tb, &base.source}, std::pair{tq, &src}})
      if (!Traits(t->type).to_float)
        Fail("{}: tensor {} is {}, which holds no weights to compare", *where, t->name, DTypeName(t->type));
  }
}

TensorError CompareTensor(const Tensor& base, const Tensor& quant, int threads) {
  SMELT_ASSERT(base.ne == quant.ne);
  TensorError e;
  e.name = base.name;
  e.ne = base.ne;
  e.n_dims = base.n_dims;
  e.base_type = base.type;
  e.quant_type = quant.type;
  e.n = base.nelements();
  e.bits_per_weight = e.n ? 8.0 * (double)quant.nbytes / (double)e.n : 0;
  const int64_t rows = base.nrows(), cols = base.ne[0];
  // Per-row sums, added up in row order afterwards so the result does not depend on threads.
  std::vector<double> signal((size_t)rows), noise((size_t)rows), peak((size_t)rows);
#pragma omp parallel num_threads(threads) if (threads > 1 && rows > 1)
  {
    std::vector<float> w((size_t)cols), wq((size_t)cols);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      DequantizeRow(base, r, w.data());
      DequantizeRow(quant, r, wq.data());
      double s = 0, n = 0, m = 0;
      for (int64_t i = 0; i < cols; ++i) {
        const double d = (double)w[i] - (double)wq[i];
        s += (double)w[i] * w[i];
        n += d * d;
        m = std::max(m, std::fabs(d));
      }
      signal[(size_t)r] = s, noise[(size_t)r] = n, peak[(size_t)r] = m;
    }
  }
  double s = 0, n = 0;
  for (int64_t r = 0; r < rows; ++r) {
    s += signal[(size_t)r], n += noise[(size_t)r];
    e.max_abs = std::max(e.max_abs, peak[(size_t)r]);
  }
  e.rmse = e.n ? std::sqrt(n / (double)e.n) : 0;
  e.sqnr_db = n > 0 ? 10.0 * std::log10(s / n) : std::numeric_limits<double>::infinity();
  return e;
}

std::vector<LayerError> CompareLayers(const Model& base, const Model& quant, const std::vector<ScoringWindow>& windows,
                                      int threads, int64_t* positions_out) {
  const int layers = base.config.n_layers, dim = base.config.dim;
  int ctx = 1;
  for (const auto& w : windows) ctx = std::max(ctx, (int)w.tokens.size());
  SessionOptions so;
  so.threads = threads;
  so.context = ctx;
  Session sb(base, so), sq(quant, so);
  BlockCapture capture(layers, dim);
  BlockComparer compare(capture, layers, dim);
  sb.set_observer(&capture);
  sq.set_observer(&compare);
  int64_t positions = 0;
  for (const auto& w : windows) {
    sb.Reset();
    sq.Reset();
    const std::span<const int32_t> tokens(w.tokens);
    for (size_t done = 0; done < tokens.size(); done += kLayerBatch) {
      const auto batch = tokens.subspan(done, std::min<size_t>(kLayerBatch, tokens.size() - done));
      sb.Eval(batch);
      sq.Eval(batch);
    }
    positions += (int64_t)tokens.size();
  }
  if (positions_out) *positions_out = positions;
  return compare.Finish();
}

WeightSize MeasureWeights(const Model& m) {
  WeightSize s;
  for (const Tensor& t : m.weights.all()) {
    s.parameters += t.nelements();
    s.bytes += t.nbytes;
    if (t.n_dims == 2) s.matrix_parameters += t.nelements(), s.matrix_bytes += t.nbytes;
  }
  return s;
}

QuantReport MakeQuantReport(const Model& base, const Model& quant, const std::string& text,
                            const QuantReportOptions& opt) {
  CheckComparable(base, quant);
  std::vector<ScoringWindow> windows;
  try {
    windows = PlanScoring(base, text, opt.ppl, nullptr);
    if (windows.empty()) Fail("text has no line long enough to score");
  } catch (const Error& e) {
    Rethrow(opt.text_name, e);
  }
  if (!SameTokens(windows, PlanScoring(quant, text, opt.ppl, nullptr)))
    Fail("{}: its tokenizer splits {} differently from the base's ({})", quant.source, opt.text_name, base.source);

  QuantReport r;
  const auto& all = base.weights.all();
  for (size_t i = 0; i < all.size(); ++i) {
    const Tensor* tq = quant.weights.Find(all[i].name);
    if (!tq) {
      r.only_in_base.push_back(all[i].name);
    } else if (opt.tensors) {
      r.tensors.push_back(CompareTensor(all[i], *tq, opt.ppl.threads));
    }
    if (opt.tensors && opt.tensor_progress) opt.tensor_progress((int)i + 1, (int)all.size());
  }
  for (const Tensor& t : quant.weights.all())
    if (!base.weights.Contains(t.name)) r.only_in_quant.push_back(t.name);

  windows.resize((size_t)std::clamp(opt.layer_windows, 1, (int)windows.size()));
  r.layer_windows = (int)windows.size();
  r.layers = CompareLayers(base, quant, windows, opt.ppl.threads, &r.layer_positions);

  KldOptions ko;
  ko.ppl = opt.ppl;
  r.kld = KlDivergence(quant, &base, text, ko);
  r.base_size = MeasureWeights(base);
  r.quant_size = MeasureWeights(quant);
  return r;
}

}  // namespace smelt
