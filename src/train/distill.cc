#include "train/distill.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "kernels/blas.h"
#include "train/ops.h"

namespace smelt::train {
namespace {

bool Scored(std::span<const int32_t> targets, int64_t row) { return targets[(size_t)row] != kIgnoreIndex; }

// The output of block `layer` after a Forward: the next block's input, or x_final for the last.
const float* Hidden(const Workspace& ws, int layer) {
  return (size_t)layer + 1 < ws.blocks.size() ? ws.blocks[(size_t)layer + 1].x.data() : ws.x_final.data();
}

std::string ProjectionName(const LayerPair& p) { return fmt::format("distill.proj.{}.{}.{}", p.student, p.teacher, p.layer); }

int ParseIndex(const std::string& s, const std::string& spec) {
  size_t used = 0;
  int v = -1;
  try {
    v = std::stoi(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (s.empty() || used != s.size() || v < 0) Fail("layer map '{}': '{}' is not a block number", spec, s);
  return v;
}

// Row-wise log-softmax of z (n values) at temperature 1 into out, in double.
void LogSoftmax(const float* z, int64_t n, double inv_temp, std::vector<double>& out) {
  out.resize((size_t)n);
  double mx = -INFINITY;
  for (int64_t j = 0; j < n; ++j) mx = std::max(mx, z[j] * inv_temp);
  double sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += std::exp(z[j] * inv_temp - mx);
  const double lse = mx + std::log(sum);
  for (int64_t j = 0; j < n; ++j) out[(size_t)j] = z[j] * inv_temp - lse;
}

}  // namespace

FeatureLoss ParseFeatureLoss(const std::string& name) {
  if (name == "mse") return FeatureLoss::kMse;
  if (name == "cosine") return FeatureLoss::kCosine;
  Fail("feature loss '{}': expected mse or cosine", name);
}

TeacherWeighting ParseTeacherWeighting(const std::string& name) {
  if (name == "avg") return TeacherWeighting::kAverage;
  if (name == "confidence") return TeacherWeighting::kConfidence;
  if (name == "loss") return TeacherWeighting::kLoss;
  Fail("teacher weighting '{}': expected avg, confidence or loss", name);
}

std::vector<LayerPair> ParseLayerMap(const std::string& spec, int student_layers,
                                     const std::vector<int>& teacher_layers) {
  if (teacher_layers.empty() || student_layers < 1) Fail("layer map '{}': no teacher or no student block", spec);
  std::vector<LayerPair> pairs;
  const int lt = teacher_layers[0];
  if (spec == "uniform") {
    for (int s = 0; s < student_layers; ++s)
      pairs.push_back({s, 0, std::max(0, (int)((int64_t)(s + 1) * lt / student_layers) - 1)});
    return pairs;
  }
  if (spec == "last") return {{student_layers - 1, 0, lt - 1}};
  size_t start = 0;
  while (start <= spec.size()) {
    const size_t end = std::min(spec.find(',', start), spec.size());
    const std::string item = spec.substr(start, end - start);
    const size_t colon = item.find(':'), at = item.find('@');
    if (colon == std::string::npos || (at != std::string::npos && at < colon))
      Fail("layer map '{}': '{}' is not S:T or S:T@K (or uniform, last)", spec, item);
    LayerPair p;
    p.student = ParseIndex(item.substr(0, colon), spec);
    p.layer = ParseIndex(item.substr(colon + 1, at == std::string::npos ? std::string::npos : at - colon - 1), spec);
    if (at != std::string::npos) p.teacher = ParseIndex(item.substr(at + 1), spec);
    if (p.teacher >= (int)teacher_layers.size())
      Fail("layer map '{}': teacher {} does not exist ({} teachers)", spec, p.teacher, teacher_layers.size());
    if (p.student >= student_layers || p.layer >= teacher_layers[(size_t)p.teacher])
      Fail("layer map '{}': pair {} is out of range (student has {} blocks, teacher {} has {})", spec, item,
           student_layers, p.teacher, teacher_layers[(size_t)p.teacher]);
    pairs.push_back(p);
    start = end + 1;
  }
  return pairs;
}

// ---- the terms ------------------------------------------------------------------------------

double FeatureTerm(const float* hs, int64_t Cs, const float* ht, int64_t Ct, const float* W,
                   std::span<const int32_t> targets, FeatureLoss kind, float scale, float* dhs, float* dW,
                   int threads) {
  if (!W && Cs != Ct) Fail("feature distillation: widths {} and {} differ and there is no projection", Cs, Ct);
  const int64_t N = (int64_t)targets.size();
  std::vector<float> y;
  const float* ys = hs;
  if (W) {
    y.resize((size_t)(N * Ct));
    LinearForward(hs, W, nullptr, N, Cs, Ct, y.data(), threads);
    ys = y.data();
  }
  std::vector<float> dy((size_t)(N * Ct), 0.0f);  // scale · ∂sum/∂y
  double sum = 0;
  for (int64_t r = 0; r < N; ++r) {
    if (!Scored(targets, r)) continue;
    const float* a = ys + r * Ct;
    const float* t = ht + r * Ct;
    float* d = dy.data() + r * Ct;
    if (kind == FeatureLoss::kMse) {
      double e2 = 0;
      for (int64_t c = 0; c < Ct; ++c) {
        const double e = (double)a[c] - t[c];
        e2 += e * e;
        d[c] = (float)(scale * 2.0 * e / (double)Ct);
      }
      sum += e2 / (double)Ct;
    } else {
      double aa = 0, tt = 0, at = 0;
      for (int64_t c = 0; c < Ct; ++c) aa += (double)a[c] * a[c], tt += (double)t[c] * t[c], at += (double)a[c] * t[c];
      const double na = std::sqrt(std::max(aa, 1e-30)), nt = std::sqrt(std::max(tt, 1e-30));
      const double cos = at / (na * nt);
      sum += 1.0 - cos;
      // ∂(1 − cos)/∂a = −(t / (|a||t|) − cos · a / |a|²)
      for (int64_t c = 0; c < Ct; ++c) d[c] = (float)(-scale * (t[c] / (na * nt) - cos * a[c] / aa));
    }
  }
  if (dhs) {
    if (W) {
      std::vector<float> dx((size_t)(N * Cs));
      LinearBackward(dy.data(), hs, W, N, Cs, Ct, dx.data(), false, dW, nullptr, threads);
      for (int64_t i = 0; i < N * Cs; ++i) dhs[i] += dx[(size_t)i];
    } else {
      for (int64_t i = 0; i < N * Cs; ++i) dhs[i] += dy[(size_t)i];
    }
  } else if (W && dW) {
    LinearBackward(dy.data(), hs, W, N, Cs, Ct, nullptr, false, dW, nullptr, threads);
  }
  return sum;
}

double AttentionTerm(const float* ps, int Hs, const float* pt, int Ht, int64_t B, int64_t T,
                     std::span<const int32_t> targets, float scale, float* dps) {
  const int G = std::gcd(Hs, Ht), gs = Hs / G, gt = Ht / G;
  std::vector<double> q((size_t)T), p((size_t)T);
  double sum = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < T; ++i) {
      if (!Scored(targets, b * T + i)) continue;
      for (int g = 0; g < G; ++g) {
        // The group's mean distributions over keys 0..i.
        std::fill(q.begin(), q.end(), 0.0), std::fill(p.begin(), p.end(), 0.0);
        for (int h = g * gs; h < (g + 1) * gs; ++h)
          for (int64_t j = 0; j <= i; ++j) q[(size_t)j] += ps[((b * Hs + h) * T + i) * T + j] / (double)gs;
        for (int h = g * gt; h < (g + 1) * gt; ++h)
          for (int64_t j = 0; j <= i; ++j) p[(size_t)j] += pt[((b * Ht + h) * T + i) * T + j] / (double)gt;
        for (int64_t j = 0; j <= i; ++j) {
          const double pj = p[(size_t)j], qj = std::max(q[(size_t)j], 1e-30);
          if (pj <= 0) continue;
          sum += pj * (std::log(pj) - std::log(qj)) / G;
          if (dps) {
            const float d = (float)(-scale * pj / qj / (double)(G * gs));
            for (int h = g * gs; h < (g + 1) * gs; ++h) dps[((b * Hs + h) * T + i) * T + j] += d;
          }
        }
      }
    }
  return sum;
}

double ValueRelationTerm(const float* vs, int64_t Ws, const float* vt, int64_t Wt, int R, int64_t B, int64_t T,
                         std::span<const int32_t> targets, float scale, float* dvs) {
  if (R < 1 || Ws % R != 0 || Wt % R != 0)
    Fail("value relation: {} relation heads do not divide the value widths {} and {}", R, Ws, Wt);
  const int64_t ds = Ws / R, dt = Wt / R;
  const double is = 1.0 / std::sqrt((double)ds), it = 1.0 / std::sqrt((double)dt);
  std::vector<float> zs((size_t)T), zt((size_t)T);
  std::vector<double> ls, lt;
  double sum = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int r = 0; r < R; ++r)
      for (int64_t i = 0; i < T; ++i) {
        if (!Scored(targets, b * T + i)) continue;
        const float* si = vs + (b * T + i) * Ws + r * ds;
        const float* ti = vt + (b * T + i) * Wt + r * dt;
        for (int64_t j = 0; j <= i; ++j) {
          const float* sj = vs + (b * T + j) * Ws + r * ds;
          const float* tj = vt + (b * T + j) * Wt + r * dt;
          double a = 0, c = 0;
          for (int64_t e = 0; e < ds; ++e) a += (double)si[e] * sj[e];
          for (int64_t e = 0; e < dt; ++e) c += (double)ti[e] * tj[e];
          zs[(size_t)j] = (float)(a * is), zt[(size_t)j] = (float)(c * it);
        }
        LogSoftmax(zs.data(), i + 1, 1.0, ls);
        LogSoftmax(zt.data(), i + 1, 1.0, lt);
        for (int64_t j = 0; j <= i; ++j) sum += std::exp(lt[(size_t)j]) * (lt[(size_t)j] - ls[(size_t)j]) / R;
        if (!dvs) continue;
        // ∂KL/∂z_j = q_j − p_j; z_ij = v_i·v_j / sqrt(d).
        float* di = dvs + (b * T + i) * Ws + r * ds;
        for (int64_t j = 0; j <= i; ++j) {
          const double g = scale * (std::exp(ls[(size_t)j]) - std::exp(lt[(size_t)j])) / R * is;
          const float* sj = vs + (b * T + j) * Ws + r * ds;
          float* dj = dvs + (b * T + j) * Ws + r * ds;
          for (int64_t e = 0; e < ds; ++e) {
            di[e] += (float)(g * sj[e]);
            dj[e] += (float)(g * si[e]);
          }
        }
      }
  return sum;
}

double RelationTerm(const float* hs, int64_t Cs, const float* ht, int64_t Ct, int64_t B, int64_t T,
                    std::span<const int32_t> targets, float scale, float* dhs) {
  // Unit rows of both models, then G = Ĥ Ĥᵀ.
  auto unit = [T](const float* h, int64_t C, std::vector<double>& u, std::vector<double>& norm) {
    u.resize((size_t)(T * C)), norm.resize((size_t)T);
    for (int64_t i = 0; i < T; ++i) {
      double s = 0;
      for (int64_t c = 0; c < C; ++c) s += (double)h[i * C + c] * h[i * C + c];
      norm[(size_t)i] = std::sqrt(std::max(s, 1e-30));
      for (int64_t c = 0; c < C; ++c) u[(size_t)(i * C + c)] = h[i * C + c] / norm[(size_t)i];
    }
  };
  auto gram = [T](const std::vector<double>& u, int64_t C, std::vector<double>& g) {
    g.assign((size_t)(T * T), 0.0);
    for (int64_t i = 0; i < T; ++i)
      for (int64_t j = 0; j < T; ++j) {
        double s = 0;
        for (int64_t c = 0; c < C; ++c) s += u[(size_t)(i * C + c)] * u[(size_t)(j * C + c)];
        g[(size_t)(i * T + j)] = s;
      }
  };
  std::vector<double> us, ut, ns, nt, gs, gt, du((size_t)(T * Cs));
  double sum = 0;
  for (int64_t b = 0; b < B; ++b) {
    int64_t scored = 0;
    for (int64_t i = 0; i < T; ++i) scored += Scored(targets, b * T + i);
    if (scored == 0) continue;
    const double w = (double)scored / (double)(T * T);
    unit(hs + b * T * Cs, Cs, us, ns), unit(ht + b * T * Ct, Ct, ut, nt);
    gram(us, Cs, gs), gram(ut, Ct, gt);
    for (size_t e = 0; e < gs.size(); ++e) sum += w * (gs[e] - gt[e]) * (gs[e] - gt[e]);
    if (!dhs) continue;
    // ∂/∂G_ij = 2w(G_s − G_t)_ij (symmetric), so ∂/∂û_i = 4w Σ_j (G_s − G_t)_ij û_j; then through
    // the normalisation: ∂/∂h_i = (∂û_i − û_i (û_i·∂û_i)) / |h_i|.
    std::fill(du.begin(), du.end(), 0.0);
    for (int64_t i = 0; i < T; ++i)
      for (int64_t j = 0; j < T; ++j) {
        const double g = 4.0 * w * (gs[(size_t)(i * T + j)] - gt[(size_t)(i * T + j)]);
        for (int64_t c = 0; c < Cs; ++c) du[(size_t)(i * Cs + c)] += g * us[(size_t)(j * Cs + c)];
      }
    for (int64_t i = 0; i < T; ++i) {
      double dot = 0;
      for (int64_t c = 0; c < Cs; ++c) dot += us[(size_t)(i * Cs + c)] * du[(size_t)(i * Cs + c)];
      float* d = dhs + (b * T + i) * Cs;
      for (int64_t c = 0; c < Cs; ++c)
        d[c] += (float)(scale * (du[(size_t)(i * Cs + c)] - us[(size_t)(i * Cs + c)] * dot) / ns[(size_t)i]);
    }
  }
  return sum;
}

// ---- the objective --------------------------------------------------------------------------

Distiller::Distiller(std::vector<TrainModel> teachers, const DistillOptions& opt)
    : teachers_(std::move(teachers)), opt_(opt), tws_(teachers_.size()) {
  if (teachers_.empty()) Fail("distillation needs at least one teacher");
  if (!(opt.alpha >= 0.0f && opt.alpha <= 1.0f)) Fail("distillation: alpha {} is outside [0, 1]", opt.alpha);
  for (float w : {opt.feature_weight, opt.attention_weight, opt.value_weight, opt.relation_weight})
    if (!(w >= 0.0f)) Fail("distillation: loss weight {} is negative", w);
  if (opt.value_relation_heads < 0) Fail("distillation: {} value relation heads", opt.value_relation_heads);
  const int V = teachers_[0].config().vocab;
  for (size_t k = 1; k < teachers_.size(); ++k)
    if (teachers_[k].config().vocab != V || teachers_[k].vocab().tokens != teachers_[0].vocab().tokens)
      Fail("distillation: teacher {} ({}) has another vocabulary than teacher 0 ({})", k, teachers_[k].config().name,
           teachers_[0].config().name);
}

void Distiller::Prepare(TrainModel& student) const {
  const ModelConfig& s = student.config();
  for (size_t k = 0; k < teachers_.size(); ++k) {
    const TrainModel& t = teachers_[k];
    if (s.vocab != t.config().vocab ||
        (!student.vocab().tokens.empty() && student.vocab().tokens != t.vocab().tokens))
      Fail("distillation: the student's vocabulary ({} tokens) differs from teacher {}'s ({} tokens)", s.vocab, k,
           t.config().vocab);
  }
  std::vector<int> layers;
  for (const TrainModel& t : teachers_) layers.push_back(t.config().n_layers);
  const std::vector<LayerPair> pairs = ParseLayerMap(opt_.layer_map, s.n_layers, layers);
  const int R = opt_.value_relation_heads ? opt_.value_relation_heads : s.n_kv_heads;
  for (const LayerPair& p : pairs) {
    const ModelConfig& t = teachers_[(size_t)p.teacher].config();
    if (opt_.value_weight > 0 && (s.kv_dim() % R != 0 || t.kv_dim() % R != 0))
      Fail("distillation: {} value relation heads do not divide the value widths {} (student) and {} (teacher {})", R,
           s.kv_dim(), t.kv_dim(), p.teacher);
    if (opt_.feature_weight > 0 && s.dim != t.dim && !student.Has(ProjectionName(p))) {
      // W (C_t, C_s) starts as the identity on the shared coordinates.
      std::vector<float> w((size_t)t.dim * (size_t)s.dim, 0.0f);
      for (int i = 0; i < std::min(s.dim, t.dim); ++i) w[(size_t)i * (size_t)s.dim + (size_t)i] = 1.0f;
      student.AddAuxiliary(ProjectionName(p), {s.dim, t.dim}, w);
    }
  }
}

double Distiller::Run(TrainModel& student, const Batch& b, const float* delta, float grad_scale, Workspace& ws,
                      int threads) {
  const ModelConfig& sc = student.config();
  const int64_t N = b.B * b.T, V = sc.vocab;
  const size_t K = teachers_.size();
  for (size_t k = 0; k < K; ++k)
    if (teachers_[k].config().vocab != V)
      Fail("distillation: teacher {} has {} tokens in its vocabulary, the student {}", k, teachers_[k].config().vocab, V);
  if (pairs_for_layers_ != sc.n_layers) {  // first use, or a student grown since
    std::vector<int> layers;
    for (const TrainModel& t : teachers_) layers.push_back(t.config().n_layers);
    pairs_ = ParseLayerMap(opt_.layer_map, sc.n_layers, layers);
    pairs_for_layers_ = sc.n_layers;
  }
  if (b.B != teacher_B_ || b.T != teacher_T_ || b.inputs != teacher_inputs_) {
    for (size_t k = 0; k < K; ++k) Forward(teachers_[k], b, tws_[k], threads);
    teacher_inputs_ = b.inputs;
    teacher_B_ = b.B, teacher_T_ = b.T;
  }
  if (delta) {
    ForwardPerturbed(student, b, delta, ws, threads);
  } else {
    Forward(student, b, ws, threads);
  }
  const int64_t scored = ScoredTargets(b);

  // Teacher weights of this micro-batch.
  std::vector<double> w(K, 1.0 / (double)K);
  if (K > 1 && opt_.weighting != TeacherWeighting::kAverage && scored > 0) {
    std::vector<double> score(K, 0.0);
    for (size_t k = 0; k < K; ++k) {
      if (opt_.weighting == TeacherWeighting::kLoss) {
        score[k] = -CrossEntropyLoss(tws_[k].logits.data(), b.targets, V, threads) / (double)scored;
        continue;
      }
      std::vector<double> ls;
      for (int64_t r = 0; r < N; ++r) {
        if (!Scored(b.targets, r)) continue;
        LogSoftmax(tws_[k].logits.data() + r * V, V, 1.0, ls);
        score[k] += std::exp(*std::max_element(ls.begin(), ls.end())) / (double)scored;
      }
    }
    if (opt_.weighting == TeacherWeighting::kLoss) {  // softmax(−loss)
      const double mx = *std::max_element(score.begin(), score.end());
      double z = 0;
      for (double& s : score) z += (s = std::exp(s - mx));
      for (size_t k = 0; k < K; ++k) w[k] = score[k] / z;
    } else {
      const double z = std::accumulate(score.begin(), score.end(), 0.0);
      for (size_t k = 0; k < K; ++k) w[k] = score[k] / z;
    }
  }
  DistillTerms terms;
  terms.teacher_weights = w;

  // Soft target: one teacher's logits, or logits whose softened distribution is the weighted
  // mixture: τ · log Σ_k w_k softmax(z_k / τ).
  const float tau = opt_.soft.temperature;
  const float* target = tws_[0].logits.data();
  if (K > 1) {
    soft_target_.resize((size_t)(N * V));
    std::vector<double> mix((size_t)V), ls;
    for (int64_t r = 0; r < N; ++r) {
      std::fill(mix.begin(), mix.end(), 0.0);
      for (size_t k = 0; k < K; ++k) {
        LogSoftmax(tws_[k].logits.data() + r * V, V, 1.0 / tau, ls);
        for (int64_t j = 0; j < V; ++j) mix[(size_t)j] += w[k] * std::exp(ls[(size_t)j]);
      }
      for (int64_t j = 0; j < V; ++j) soft_target_[(size_t)(r * V + j)] = (float)(tau * std::log(std::max(mix[(size_t)j], 1e-300)));
    }
    target = soft_target_.data();
  }
  const float alpha = opt_.alpha;
  dlogits_.assign((size_t)(N * V), 0.0f);
  if (alpha < 1.0f)
    terms.soft = SoftLabelLoss(ws.logits.data(), target, b.targets, V, opt_.soft, (1.0f - alpha) * grad_scale,
                                dlogits_.data(), threads);
  terms.ce = CrossEntropyForwardBackward(ws.logits.data(), b.targets, V, alpha * grad_scale, threads);
  for (int64_t i = 0; i < N * V; ++i) ws.logits[(size_t)i] += dlogits_[(size_t)i];

  // Layer-wise terms into per-block tap buffers.
  const bool hidden = opt_.feature_weight > 0 || opt_.relation_weight > 0;
  const bool attn = opt_.attention_weight > 0, value = opt_.value_weight > 0;
  const size_t L = (size_t)sc.n_layers;
  ws.taps = Taps{};
  if (hidden || attn || value) {
    d_hidden_.resize(L), d_probs_.resize(L), d_v_.resize(L);
    ws.taps.hidden.assign(L, nullptr), ws.taps.probs.assign(L, nullptr), ws.taps.v.assign(L, nullptr);
    for (const LayerPair& p : pairs_) {
      const size_t s = (size_t)p.student;
      if (hidden && !ws.taps.hidden[s]) d_hidden_[s].assign((size_t)(N * sc.dim), 0.0f), ws.taps.hidden[s] = d_hidden_[s].data();
      if (attn && !ws.taps.probs[s])
        d_probs_[s].assign((size_t)(b.B * sc.n_heads * b.T * b.T), 0.0f), ws.taps.probs[s] = d_probs_[s].data();
      if (value && !ws.taps.v[s]) d_v_[s].assign((size_t)(N * sc.kv_dim()), 0.0f), ws.taps.v[s] = d_v_[s].data();
    }
    const int R = opt_.value_relation_heads ? opt_.value_relation_heads : sc.n_kv_heads;
    for (const LayerPair& p : pairs_) {
      const size_t s = (size_t)p.student;
      const Workspace& tw = tws_[(size_t)p.teacher];
      const ModelConfig& tc = teachers_[(size_t)p.teacher].config();
      const float* hs = Hidden(ws, p.student);
      const float* ht = Hidden(tw, p.layer);
      if (opt_.feature_weight > 0) {
        const std::string name = ProjectionName(p);
        const bool proj = student.Has(name);
        terms.feature += FeatureTerm(hs, sc.dim, ht, tc.dim, proj ? student.Param(name) : nullptr, b.targets,
                                      opt_.feature_loss, opt_.feature_weight * grad_scale, d_hidden_[s].data(),
                                      proj ? student.Grad(name) : nullptr, threads);
      }
      if (opt_.relation_weight > 0)
        terms.relation += RelationTerm(hs, sc.dim, ht, tc.dim, b.B, b.T, b.targets,
                                        opt_.relation_weight * grad_scale, d_hidden_[s].data());
      if (attn)
        terms.attention += AttentionTerm(ws.blocks[s].probs.data(), sc.n_heads, tw.blocks[(size_t)p.layer].probs.data(),
                                          tc.n_heads, b.B, b.T, b.targets, opt_.attention_weight * grad_scale,
                                          d_probs_[s].data());
      if (value)
        terms.value += ValueRelationTerm(ws.blocks[s].v.data(), sc.kv_dim(), tw.blocks[(size_t)p.layer].v.data(),
                                          tc.kv_dim(), R, b.B, b.T, b.targets, opt_.value_weight * grad_scale,
                                          d_v_[s].data());
    }
  }
  Backward(student, b, ws, threads);
  ws.taps = Taps{};
  const double sum = alpha * terms.ce + (1.0 - alpha) * terms.soft + opt_.feature_weight * terms.feature +
                     opt_.attention_weight * terms.attention + opt_.value_weight * terms.value +
                     opt_.relation_weight * terms.relation;
  if (!delta) terms_ = std::move(terms);
  return sum;
}

Objective DistillObjective(std::shared_ptr<Distiller> d) {
  return [d](TrainModel& m, const Batch& b, float grad_scale, Workspace& ws, int threads) {
    return (*d)(m, b, grad_scale, ws, threads);
  };
}

PerturbableLoss DistillLoss(std::shared_ptr<Distiller> d) {
  return [d](TrainModel& m, const Batch& b, const float* delta, float grad_scale, Workspace& ws, int threads) {
    return d->Run(m, b, delta, grad_scale, ws, threads);
  };
}

KlCe MeasureKlCe(const TrainModel& m, const TrainModel& teacher, const std::vector<Batch>& batches, int threads) {
  const int64_t V = m.config().vocab;
  if (teacher.config().vocab != V)
    Fail("KL to the teacher: the teacher has {} tokens in its vocabulary, the model {}", teacher.config().vocab, V);
  KlCe r;
  Workspace ws, tws;
  for (const Batch& b : batches) {
    Forward(teacher, b, tws, threads);
    Forward(m, b, ws, threads);
    r.kl += SoftLabelLoss(ws.logits.data(), tws.logits.data(), b.targets, V, SoftLabelOptions{}, 0.0f, nullptr, threads);
    r.ce += CrossEntropyLoss(ws.logits.data(), b.targets, V, threads);
    r.scored += ScoredTargets(b);
  }
  if (r.scored) r.kl /= (double)r.scored, r.ce /= (double)r.scored;
  return r;
}

double ValidationKld(const TrainModel& student, const TrainModel& teacher, const Dataset& data, int64_t batch,
                     int64_t max_batches, int threads) {
  const BlasThreads blas(1);
  return MeasureKlCe(student, teacher, data.ValBatches(batch, max_batches), threads).kl;
}

}  // namespace smelt::train
