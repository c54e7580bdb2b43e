// Distillation: the training pass's taps (whole-model gradients through a block's hidden state,
// attention probabilities and values), each loss term against its definition written plainly
// here (values and finite differences), the whole objective's gradient, multi-teacher weights,
// layer maps, checkpoints carrying the learned projections, and that a distilled student beats
// the same student trained without a teacher on stories260K.
#include "train/distill.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <numeric>
#include <random>

#include "core/error.h"
#include "error_of.h"
#include "io/gguf_model.h"
#include "shared_assets.h"
#include "train/adversarial.h"
#include "train/checkpoint.h"
#include "train/ops.h"
#include "train/tiny_model_test_util.h"

namespace smelt::train {
namespace {

using testing::ExpectGradient;
using testing::kF32Eps;
using testing::LossNoise;
using testing::Project;
using testing::Random;
using testing::RandomBatch;
using testing::RoughModel;
using testing::TinyConfig;


// ---- taps -----------------------------------------------------------------------------------

enum class TapKind { kHidden, kProbs, kValues };

// The tapped quantity of block `layer` after a Forward.
const std::vector<float>& Tapped(const Workspace& ws, TapKind kind, int layer) {
  if (kind == TapKind::kProbs) return ws.blocks[layer].probs;
  if (kind == TapKind::kValues) return ws.blocks[layer].v;
  return (size_t)layer + 1 < ws.blocks.size() ? ws.blocks[layer + 1].x : ws.x_final;
}

class DistillTaps : public ::testing::TestWithParam<TapKind> {};

// f = Σ r · (tapped quantity): Backward with zero logit gradients and r at the tap gives ∂f/∂θ.
TEST_P(DistillTaps, WholeModelGradientThroughTheTapMatchesFiniteDifferences) {
  const ModelConfig c = TinyConfig(false);
  for (int layer = 0; layer < c.n_layers; ++layer) {
    TrainModel m = RoughModel(c, 21 + layer);
    const Batch b = RandomBatch(2, 5, c.vocab, 22);
    Workspace ws;
    Forward(m, b, ws, 2);
    const std::vector<float> r = Random(Tapped(ws, GetParam(), layer).size(), 23);
    std::fill(ws.logits.begin(), ws.logits.end(), 0.0f);
    std::vector<const float*> taps((size_t)c.n_layers, nullptr);
    taps[(size_t)layer] = r.data();
    (GetParam() == TapKind::kHidden ? ws.taps.hidden : GetParam() == TapKind::kProbs ? ws.taps.probs : ws.taps.v) =
        taps;
    m.ZeroGrad();
    Backward(m, b, ws, 2);
    Workspace ws2;
    auto f = [&] {
      Forward(m, b, ws2, 1);
      return Project(r, Tapped(ws2, GetParam(), layer).data());
    };
    double mag;
    f();
    Project(r, Tapped(ws2, GetParam(), layer).data(), &mag);
    for (const ParamSlice& p : m.slices())
      ExpectGradient(f, m.params().data() + p.offset, p.size, m.grads().data() + p.offset, LossNoise(mag, c),
                     p.name + " (tap at block " + std::to_string(layer) + ")");
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, DistillTaps, ::testing::Values(TapKind::kHidden, TapKind::kProbs, TapKind::kValues),
                         [](const auto& info) {
                           return std::string(info.param == TapKind::kHidden  ? "Hidden"
                                              : info.param == TapKind::kProbs ? "AttentionProbs"
                                                                              : "Values");
                         });

TEST(DistillTaps, AttentionExtraGradientMatchesTheReferenceTwin) {
  const AttentionShape s{2, 7, 4, 2, 3};
  const int64_t Qw = s.heads * s.head_dim, KVw = s.kv_heads * s.head_dim, N = s.B * s.T;
  const std::vector<float> q = Random(N * Qw, 1), k = Random(N * KVw, 2), v = Random(N * KVw, 3),
                           dout = Random(N * Qw, 4), dp = Random(s.B * s.heads * s.T * s.T, 5);
  std::vector<float> out(N * Qw), probs(s.B * s.heads * s.T * s.T);
  AttentionForwardReference(q.data(), k.data(), v.data(), s, out.data(), probs.data(), 1);
  std::vector<float> dq(N * Qw), dk(N * KVw), dv(N * KVw), dq2 = dq, dk2 = dk, dv2 = dv;
  AttentionBackward(dout.data(), q.data(), k.data(), v.data(), probs.data(), s, dq.data(), dk.data(), dv.data(), 2,
                    dp.data());
  AttentionBackwardReference(dout.data(), q.data(), k.data(), v.data(), probs.data(), s, dq2.data(), dk2.data(),
                             dv2.data(), 1, dp.data());
  double norm = 0;
  for (float x : dq2) norm = std::max(norm, (double)std::fabs(x));
  for (size_t i = 0; i < dq.size(); ++i) ASSERT_NEAR(dq[i], dq2[i], 64 * kF32Eps * (norm + 1)) << i;
  for (size_t i = 0; i < dk.size(); ++i) ASSERT_NEAR(dk[i], dk2[i], 64 * kF32Eps * (norm + 1)) << i;
  // dv does not depend on dprobs.
  std::vector<float> dq3(N * Qw), dk3(N * KVw), dv3(N * KVw);
  AttentionBackwardReference(dout.data(), q.data(), k.data(), v.data(), probs.data(), s, dq3.data(), dk3.data(),
                             dv3.data(), 1);
  EXPECT_EQ(dv2, dv3);
  EXPECT_NE(dq2, dq3);
}

// ---- the terms against their plain definitions ----------------------------------------------

std::vector<int32_t> Targets(int64_t N, std::initializer_list<int64_t> ignored) {
  std::vector<int32_t> t((size_t)N, 1);
  for (int64_t i : ignored) t[(size_t)i] = kIgnoreIndex;
  return t;
}

// Random causal attention rows (B, H, T, T).
std::vector<float> CausalRows(int64_t B, int H, int64_t T, uint32_t seed) {
  std::vector<float> p = Random((size_t)(B * H * T * T), seed, 1.5f);
  for (int64_t r = 0; r < B * H * T; ++r) {
    const int64_t i = r % T;
    float* row = p.data() + r * T;
    double z = 0;
    for (int64_t j = 0; j <= i; ++j) z += std::exp(row[j]);
    for (int64_t j = 0; j < T; ++j) row[j] = j <= i ? (float)(std::exp(row[j]) / z) : 0.0f;
  }
  return p;
}

double KlPlain(const std::vector<double>& p, const std::vector<double>& q) {
  double s = 0;
  for (size_t j = 0; j < p.size(); ++j)
    if (p[j] > 0) s += p[j] * std::log(p[j] / q[j]);
  return s;
}

std::vector<double> SoftmaxPlain(const std::vector<double>& z) {
  double mx = -INFINITY, s = 0;
  for (double x : z) mx = std::max(mx, x);
  std::vector<double> p;
  for (double x : z) s += std::exp(x - mx);
  for (double x : z) p.push_back(std::exp(x - mx) / s);
  return p;
}

void CheckTerm(const std::function<double()>& plain, const std::function<double(float*)>& term, float* x, size_t n,
               const std::string& what) {
  std::vector<float> grad(n, 0.0f);
  const double value = term(grad.data());
  const double want = plain();
  EXPECT_NEAR(value, want, 1e-5 * (std::fabs(want) + 1e-3)) << what;
  EXPECT_GT(std::fabs(want), 1e-6) << what << ": the check needs a nonzero loss";
  ExpectGradient(plain, x, n, grad.data(), 8 * kF32Eps * (std::fabs(want) + 1), what);
}

TEST(DistillTerms, FeatureMseAndCosineThroughAProjection) {
  const int64_t N = 6, Cs = 3, Ct = 5;
  const std::vector<int32_t> targets = Targets(N, {2});
  std::vector<float> hs = Random(N * Cs, 1), ht = Random(N * Ct, 2), W = Random(Ct * Cs, 3);
  for (FeatureLoss kind : {FeatureLoss::kMse, FeatureLoss::kCosine}) {
    auto plain = [&] {
      double s = 0;
      for (int64_t r = 0; r < N; ++r) {
        if (targets[r] == kIgnoreIndex) continue;
        std::vector<double> y(Ct, 0.0);
        for (int64_t o = 0; o < Ct; ++o)
          for (int64_t c = 0; c < Cs; ++c) y[o] += (double)W[o * Cs + c] * hs[r * Cs + c];
        double se = 0, yy = 0, tt = 0, yt = 0;
        for (int64_t o = 0; o < Ct; ++o) {
          const double t = ht[r * Ct + o];
          se += (y[o] - t) * (y[o] - t), yy += y[o] * y[o], tt += t * t, yt += y[o] * t;
        }
        s += kind == FeatureLoss::kMse ? se / Ct : 1.0 - yt / std::sqrt(yy * tt);
      }
      return s;
    };
    std::vector<float> dW(W.size());
    const std::string name = kind == FeatureLoss::kMse ? "mse" : "cosine";
    CheckTerm(plain, [&](float* g) {
      return FeatureTerm(hs.data(), Cs, ht.data(), Ct, W.data(), targets, kind, 1.0f, g, dW.data(), 2);
    }, hs.data(), hs.size(), name + " dh");
    CheckTerm(plain, [&](float* g) {
      return FeatureTerm(hs.data(), Cs, ht.data(), Ct, W.data(), targets, kind, 1.0f, nullptr, g, 1);
    }, W.data(), W.size(), name + " dW");
  }
  // Equal widths need no projection: then the loss compares the states directly.
  std::vector<float> a = Random(N * Ct, 4);
  std::vector<float> da(a.size(), 0.0f);
  const double direct = FeatureTerm(a.data(), Ct, ht.data(), Ct, nullptr, targets, FeatureLoss::kMse, 2.0f, da.data(),
                                    nullptr, 1);
  double want = 0;
  for (int64_t i = 0; i < N * Ct; ++i)
    if (targets[i / Ct] != kIgnoreIndex) want += ((double)a[i] - ht[i]) * ((double)a[i] - ht[i]) / Ct;
  EXPECT_NEAR(direct, want, 1e-6 * want);
  EXPECT_NEAR(da[0], 2.0 * 2.0 * (a[0] - ht[0]) / Ct, 1e-6);
}

TEST(DistillTerms, AttentionKlPerHeadAndAcrossHeadCounts) {
  const int64_t B = 2, T = 4;
  const std::vector<int32_t> targets = Targets(B * T, {1, 6});
  for (auto [Hs, Ht] : {std::pair{2, 2}, std::pair{2, 4}, std::pair{2, 3}}) {
    std::vector<float> ps = CausalRows(B, Hs, T, 10 + Ht), pt = CausalRows(B, Ht, T, 20 + Ht);
    const int G = std::gcd(Hs, Ht);
    auto plain = [&, Hs = Hs, Ht = Ht] {
      double s = 0;
      for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < T; ++i) {
          if (targets[b * T + i] == kIgnoreIndex) continue;
          for (int g = 0; g < G; ++g) {
            std::vector<double> p(i + 1, 0.0), q(i + 1, 0.0);
            for (int h = g * Hs / G; h < (g + 1) * Hs / G; ++h)
              for (int64_t j = 0; j <= i; ++j) q[j] += ps[((b * Hs + h) * T + i) * T + j] * G / (double)Hs;
            for (int h = g * Ht / G; h < (g + 1) * Ht / G; ++h)
              for (int64_t j = 0; j <= i; ++j) p[j] += pt[((b * Ht + h) * T + i) * T + j] * G / (double)Ht;
            s += KlPlain(p, q) / G;
          }
        }
      return s;
    };
    // Only entries on or below the diagonal are probabilities.
    std::vector<size_t> causal;
    for (size_t e = 0; e < ps.size(); ++e)
      if ((int64_t)(e % T) <= (int64_t)(e / T % T)) causal.push_back(e);
    std::vector<float> grad(ps.size(), 0.0f);
    const double value = AttentionTerm(ps.data(), Hs, pt.data(), Ht, B, T, targets, 1.0f, grad.data());
    EXPECT_NEAR(value, plain(), 1e-5 * plain());
    ExpectGradient(plain, ps.data(), ps.size(), grad.data(), 8 * kF32Eps * (value + 1),
                   "attention " + std::to_string(Hs) + "/" + std::to_string(Ht), causal, 1e-3);
  }
}

TEST(DistillTerms, MiniLmValueRelationKl) {
  const int64_t B = 2, T = 5, Ws = 4, Wt = 6;
  const int R = 2;
  const std::vector<int32_t> targets = Targets(B * T, {3});
  std::vector<float> vs = Random(B * T * Ws, 31), vt = Random(B * T * Wt, 32);
  auto plain = [&] {
    double s = 0;
    for (int64_t b = 0; b < B; ++b)
      for (int r = 0; r < R; ++r)
        for (int64_t i = 0; i < T; ++i) {
          if (targets[b * T + i] == kIgnoreIndex) continue;
          auto rel = [&](const std::vector<float>& v, int64_t W) {
            const int64_t d = W / R;
            std::vector<double> z;
            for (int64_t j = 0; j <= i; ++j) {
              double dot = 0;
              for (int64_t e = 0; e < d; ++e) dot += (double)v[(b * T + i) * W + r * d + e] * v[(b * T + j) * W + r * d + e];
              z.push_back(dot / std::sqrt((double)d));
            }
            return SoftmaxPlain(z);
          };
          s += KlPlain(rel(vt, Wt), rel(vs, Ws)) / R;
        }
    return s;
  };
  CheckTerm(plain, [&](float* g) {
    return ValueRelationTerm(vs.data(), Ws, vt.data(), Wt, R, B, T, targets, 1.0f, g);
  }, vs.data(), vs.size(), "value relation");
  EXPECT_THROW(ValueRelationTerm(vs.data(), Ws, vt.data(), Wt, 3, B, T, targets, 1.0f, nullptr), Error);
}

TEST(DistillTerms, TokenSimilarityGramMse) {
  const int64_t B = 2, T = 4, Cs = 3, Ct = 5;
  const std::vector<int32_t> targets = Targets(B * T, {0, 5});
  std::vector<float> hs = Random(B * T * Cs, 41), ht = Random(B * T * Ct, 42);
  auto plain = [&] {
    double s = 0;
    for (int64_t b = 0; b < B; ++b) {
      auto gram = [&](const std::vector<float>& h, int64_t C) {
        std::vector<double> g(T * T);
        for (int64_t i = 0; i < T; ++i)
          for (int64_t j = 0; j < T; ++j) {
            double ij = 0, ii = 0, jj = 0;
            for (int64_t c = 0; c < C; ++c) {
              const double a = h[(b * T + i) * C + c], e = h[(b * T + j) * C + c];
              ij += a * e, ii += a * a, jj += e * e;
            }
            g[i * T + j] = ij / std::sqrt(ii * jj);
          }
        return g;
      };
      const std::vector<double> gs = gram(hs, Cs), gt = gram(ht, Ct);
      int64_t n = 0;
      for (int64_t i = 0; i < T; ++i) n += targets[b * T + i] != kIgnoreIndex;
      for (int64_t e = 0; e < T * T; ++e) s += (gs[e] - gt[e]) * (gs[e] - gt[e]) * (double)n / (double)(T * T);
    }
    return s;
  };
  CheckTerm(plain, [&](float* g) {
    return RelationTerm(hs.data(), Cs, ht.data(), Ct, B, T, targets, 1.0f, g);
  }, hs.data(), hs.size(), "relation");
}

// ---- the objective --------------------------------------------------------------------------

ModelConfig SmallStudent() {
  ModelConfig c = TinyConfig(false);
  c.name = "student";
  c.dim = 8, c.n_heads = 2, c.n_kv_heads = 1, c.ff = 12;
  return c;
}

TEST(Distiller, WholeObjectiveGradientMatchesFiniteDifferences) {
  const ModelConfig sc = SmallStudent();
  std::vector<TrainModel> teachers;
  teachers.push_back(RoughModel(TinyConfig(false), 51));
  teachers.push_back(RoughModel(TinyConfig(false), 52));
  DistillOptions o;
  o.alpha = 0.3f;
  o.soft = {Divergence::kSkewForward, 2.0f, 0.1f};
  o.feature_weight = 0.5f, o.attention_weight = 0.3f, o.value_weight = 0.2f, o.relation_weight = 0.4f;
  o.layer_map = "0:1,1:0@1";
  o.weighting = TeacherWeighting::kLoss;
  o.value_relation_heads = 2;
  Distiller d(std::move(teachers), o);
  TrainModel m = RoughModel(sc, 53);
  d.Prepare(m);
  ASSERT_TRUE(m.Has("distill.proj.0.0.1") && m.Has("distill.proj.1.1.0"));
  // Move the projections off their identity start so that every coordinate is exercised.
  for (const char* name : {"distill.proj.0.0.1", "distill.proj.1.1.0"}) {
    const std::vector<float> w = Random(m.Slice(name).size, 54, 0.5f);
    std::copy(w.begin(), w.end(), m.Param(name));
  }
  Batch b = RandomBatch(2, 5, sc.vocab, 55);
  b.targets[3] = kIgnoreIndex;
  Workspace ws;
  m.ZeroGrad();
  const double loss = d(m, b, 1.0f, ws, 2);
  const DistillTerms& t = d.last_terms();
  for (double term : {t.ce, t.soft, t.feature, t.attention, t.value, t.relation}) EXPECT_GT(term, 0.0);
  const std::vector<float> grads = m.grads();
  Workspace ws2;
  auto f = [&] { return d(m, b, 1.0f, ws2, 1); };
  for (const ParamSlice& p : m.slices())
    ExpectGradient(f, m.params().data() + p.offset, p.size, grads.data() + p.offset, LossNoise(loss, sc), p.name);
  EXPECT_FALSE(m.ToModel().weights.Find("distill.proj.0.0.1"));  // not part of the exported model
}

// Adversarial distillation: D(x) + w·D(x + δ) with the student's embeddings perturbed along the
// distillation loss's own gradient (teachers on the clean batch); its gradient matches finite
// differences of that sum with δ held fixed, the perturbed pass costs more than the clean one,
// and the reported terms are the clean pass's.
TEST(Distiller, AdversarialObjectiveGradientMatchesFiniteDifferences) {
  const ModelConfig sc = SmallStudent();
  std::vector<TrainModel> teachers;
  teachers.push_back(RoughModel(TinyConfig(false), 71));
  DistillOptions o;
  o.alpha = 0.2f;
  o.feature_weight = 0.5f, o.attention_weight = 0.3f;
  auto d = std::make_shared<Distiller>(std::move(teachers), o);
  TrainModel m = RoughModel(sc, 72);
  d->Prepare(m);
  Batch b = RandomBatch(2, 5, sc.vocab, 73);
  b.targets[4] = kIgnoreIndex;
  const AdversarialOptions adv{0.4f, PerturbNorm::kSequence, 0.6f};

  Workspace ws;
  m.ZeroGrad();
  const double clean = d->Run(m, b, nullptr, 1.0f, ws, 1);
  const DistillTerms clean_terms = d->last_terms();
  std::vector<float> delta((size_t)(b.B * b.T * sc.dim));
  FgmPerturbation(ws.dx.data(), b.B, b.T, sc.dim, adv, delta.data());

  m.ZeroGrad();
  const double loss = AdversarialObjective(adv, DistillLoss(d))(m, b, 1.0f, ws, 2);
  const std::vector<float> grads = m.grads();
  EXPECT_NEAR(d->last_terms().soft, clean_terms.soft, 1e-9 * clean_terms.soft);
  EXPECT_NEAR(d->last_terms().feature, clean_terms.feature, 1e-9 * clean_terms.feature);
  Workspace ws2;
  const double perturbed = d->Run(m, b, delta.data(), 1.0f, ws2, 1);
  EXPECT_GT(perturbed, clean);
  EXPECT_NEAR(loss, clean + adv.weight * perturbed, 1e-6 * loss);
  auto f = [&] { return d->Run(m, b, nullptr, 1.0f, ws2, 1) + adv.weight * d->Run(m, b, delta.data(), 1.0f, ws2, 1); };
  for (const ParamSlice& p : m.slices())
    ExpectGradient(f, m.params().data() + p.offset, p.size, grads.data() + p.offset, LossNoise(loss, sc), p.name);
}

// A student that grows between calls (progressive distillation) gets the layer map of its new
// depth: the same loss as a distiller that only ever saw the grown student.
TEST(Distiller, LayerMapFollowsAGrowingStudent) {
  ModelConfig tc = TinyConfig(false);
  tc.n_layers = 4;
  ModelConfig small = tc, grown = tc;
  small.n_layers = 2;
  DistillOptions o;
  o.feature_weight = 0.5f, o.attention_weight = 0.3f, o.relation_weight = 0.2f;
  std::vector<TrainModel> t1, t2;
  t1.push_back(RoughModel(tc, 91));
  t2.push_back(RoughModel(tc, 91));
  Distiller growing(std::move(t1), o), fresh(std::move(t2), o);
  const Batch b = RandomBatch(2, 5, tc.vocab, 92);
  TrainModel s2 = RoughModel(small, 93), s4 = RoughModel(grown, 94);
  Workspace w2, w4, wf;
  growing(s2, b, 1.0f, w2, 1);
  EXPECT_EQ(growing.pairs().size(), 2u);
  const double after_growth = growing(s4, b, 1.0f, w4, 1);
  EXPECT_EQ(growing.pairs().size(), 4u);
  EXPECT_NEAR(after_growth, fresh(s4, b, 1.0f, wf, 1), 1e-9 * after_growth);
}

// MeasureKlCe against the definitions written out in long double on the two models' logits.
TEST(Distiller, MeasureKlCeIsTheMeanKlAndCrossEntropyOfTheScoredRows) {
  const ModelConfig sc = SmallStudent();
  const TrainModel teacher = RoughModel(TinyConfig(false), 101), m = RoughModel(sc, 102);
  std::vector<Batch> batches = {RandomBatch(2, 5, sc.vocab, 103), RandomBatch(1, 7, sc.vocab, 104)};
  batches[0].targets[2] = kIgnoreIndex;
  long double kl = 0, ce = 0;
  int64_t scored = 0;
  for (const Batch& b : batches) {
    Workspace w1, w2;
    const std::vector<float> zs = Logits(m, b, w1, 1), zt = Logits(teacher, b, w2, 1);
    const int64_t V = sc.vocab;
    for (int64_t r = 0; r < b.B * b.T; ++r) {
      if (b.targets[(size_t)r] == kIgnoreIndex) continue;
      auto log_softmax = [V](const float* z) {
        long double mx = *std::max_element(z, z + V), sum = 0;
        for (int64_t j = 0; j < V; ++j) sum += std::exp((long double)z[j] - mx);
        std::vector<long double> out((size_t)V);
        for (int64_t j = 0; j < V; ++j) out[(size_t)j] = (long double)z[j] - mx - std::log(sum);
        return out;
      };
      const auto ls = log_softmax(zs.data() + r * V), lt = log_softmax(zt.data() + r * V);
      for (int64_t j = 0; j < V; ++j) kl += std::exp(lt[(size_t)j]) * (lt[(size_t)j] - ls[(size_t)j]);
      ce -= ls[(size_t)b.targets[(size_t)r]];
      ++scored;
    }
  }
  const KlCe got = MeasureKlCe(m, teacher, batches, 2);
  EXPECT_EQ(got.scored, scored);
  EXPECT_NEAR(got.kl, (double)(kl / scored), 1e-5 * (double)(kl / scored));
  EXPECT_NEAR(got.ce, (double)(ce / scored), 1e-5 * (double)(ce / scored));
  ModelConfig other = sc;
  other.vocab = 21;
  EXPECT_NE(smelt::testing::ErrorOf([&] { MeasureKlCe(RoughModel(other, 105), teacher, batches, 1); }).find("vocabulary"),
            std::string::npos);
}

TEST(Distiller, SoftTermIsTheSoftLabelLossAndAlphaOneIsCrossEntropy) {
  const ModelConfig sc = SmallStudent();
  TrainModel teacher = RoughModel(TinyConfig(false), 61);
  TrainModel m = RoughModel(sc, 62);
  const Batch b = RandomBatch(2, 5, sc.vocab, 63);
  Workspace tw, sw;
  Forward(teacher, b, tw, 1);
  Forward(m, b, sw, 1);
  const SoftLabelOptions so{Divergence::kReverse, 1.5f, 0.1f};
  const double want_soft = SoftLabelLoss(sw.logits.data(), tw.logits.data(), b.targets, sc.vocab, so, 1.0f, nullptr, 1);
  const double want_ce = CrossEntropyLoss(sw.logits.data(), b.targets, sc.vocab, 1);
  for (float alpha : {0.0f, 0.25f, 1.0f}) {
    std::vector<TrainModel> ts;
    ts.push_back(teacher);
    Distiller d(std::move(ts), {.alpha = alpha, .soft = so});
    Workspace ws;
    m.ZeroGrad();
    const double loss = d(m, b, 1.0f, ws, 1);
    EXPECT_NEAR(d.last_terms().soft, alpha < 1 ? want_soft : 0.0, 1e-9 * want_soft);
    EXPECT_NEAR(d.last_terms().ce, want_ce, 1e-9 * want_ce);
    EXPECT_NEAR(loss, alpha * want_ce + (1 - alpha) * (alpha < 1 ? want_soft : 0.0), 1e-9 * want_ce);
  }
}

TEST(Distiller, TeacherWeightsFollowConfidenceAndLoss) {
  const ModelConfig sc = SmallStudent();
  TrainModel t0 = RoughModel(TinyConfig(false), 71), t1 = RoughModel(TinyConfig(false), 72);
  TrainModel m = RoughModel(sc, 73);
  Batch b = RandomBatch(2, 5, sc.vocab, 74);
  b.targets[2] = kIgnoreIndex;
  const double n = (double)ScoredTargets(b);
  // Independent per-teacher statistics: mean CE and mean max probability over scored rows.
  std::vector<double> ce, conf;
  for (const TrainModel* t : {&t0, &t1}) {
    Workspace w;
    ce.push_back(Loss(*t, b, w, 1) / n);
    double c = 0;
    for (int64_t r = 0; r < b.B * b.T; ++r) {
      if (b.targets[r] == kIgnoreIndex) continue;
      std::vector<double> z(w.logits.begin() + r * sc.vocab, w.logits.begin() + (r + 1) * sc.vocab);
      const std::vector<double> p = SoftmaxPlain(z);
      c += *std::max_element(p.begin(), p.end()) / n;
    }
    conf.push_back(c);
  }
  for (TeacherWeighting tw : {TeacherWeighting::kAverage, TeacherWeighting::kConfidence, TeacherWeighting::kLoss}) {
    std::vector<TrainModel> ts{t0, t1};
    Distiller d(std::move(ts), {.weighting = tw});
    Workspace ws;
    d(m, b, 1.0f, ws, 1);
    const std::vector<double>& w = d.last_terms().teacher_weights;
    ASSERT_EQ(w.size(), 2u);
    double want0 = 0.5;
    if (tw == TeacherWeighting::kConfidence) want0 = conf[0] / (conf[0] + conf[1]);
    if (tw == TeacherWeighting::kLoss) want0 = 1.0 / (1.0 + std::exp(ce[0] - ce[1]));
    EXPECT_NEAR(w[0], want0, 1e-9);
    EXPECT_NEAR(w[0] + w[1], 1.0, 1e-12);
  }
  // Two copies of one teacher give that teacher's soft labels, whatever the weights.
  std::vector<TrainModel> one{t0}, two{t0, t0};
  Distiller d1(std::move(one), {}), d2(std::move(two), {.weighting = TeacherWeighting::kConfidence});
  Workspace w1, w2;
  d1(m, b, 1.0f, w1, 1);
  d2(m, b, 1.0f, w2, 1);
  EXPECT_NEAR(d2.last_terms().soft, d1.last_terms().soft, 1e-5 * d1.last_terms().soft);
}

TEST(Distiller, LayerMaps) {
  auto str = [](const std::vector<LayerPair>& v) {
    std::string s;
    for (const LayerPair& p : v) s += std::to_string(p.student) + ":" + std::to_string(p.layer) + "@" + std::to_string(p.teacher) + " ";
    return s;
  };
  EXPECT_EQ(str(ParseLayerMap("uniform", 2, {5})), "0:1@0 1:4@0 ");
  EXPECT_EQ(str(ParseLayerMap("uniform", 5, {5})), "0:0@0 1:1@0 2:2@0 3:3@0 4:4@0 ");
  EXPECT_EQ(str(ParseLayerMap("last", 3, {5, 2})), "2:4@0 ");
  EXPECT_EQ(str(ParseLayerMap("0:2,1:1@1", 2, {5, 2})), "0:2@0 1:1@1 ");
  for (const char* bad : {"0:5", "2:0", "0:1@2", "0-1", "a:1", ""}) EXPECT_THROW(ParseLayerMap(bad, 2, {5, 2}), Error) << bad;
}

TEST(Distiller, RefusesAnotherVocabulary) {
  std::vector<TrainModel> ts;
  ts.push_back(RoughModel(TinyConfig(false), 81));
  Distiller d(std::move(ts), {});
  ModelConfig sc = SmallStudent();
  sc.vocab = 21;
  TrainModel m = RoughModel(sc, 82);
  EXPECT_THROW(d.Prepare(m), Error);
}

TEST(Distiller, CheckpointCarriesTheProjections) {
  std::vector<TrainModel> ts;
  ts.push_back(RoughModel(TinyConfig(false), 91));
  Distiller d(std::move(ts), {.feature_weight = 1.0f, .layer_map = "last"});
  TrainModel m = RoughModel(SmallStudent(), 92);
  d.Prepare(m);
  const std::vector<float> w = Random(m.Slice("distill.proj.1.0.1").size, 93);
  std::copy(w.begin(), w.end(), m.Param("distill.proj.1.0.1"));
  TrainOptions to;
  to.steps = 3;
  Trainer trainer(std::move(m), to);
  const std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("smelt-distill-ckpt-" + std::to_string(::getpid()) + ".gguf");
  SaveCheckpoint(trainer, 7, path.string());
  Checkpoint c = LoadCheckpoint(path.string(), 1);
  std::filesystem::remove(path);
  TrainModel& back = c.trainer.model();
  ASSERT_TRUE(back.Has("distill.proj.1.0.1"));
  EXPECT_TRUE(back.Slice("distill.proj.1.0.1").auxiliary);
  EXPECT_EQ(back.params(), trainer.model().params());
  d.Prepare(back);  // already there: nothing added
  EXPECT_EQ(back.params().size(), trainer.model().params().size());
}

// ---- evidence -------------------------------------------------------------------------------

// The same small student, data, steps and seed, trained with cross-entropy alone and with
// stories260K's soft labels: the distilled one reaches the lower validation loss.
TEST(Distiller, SoftLabelsFromStories260KBeatTrainingWithoutTeacherSlow) {
  const Model teacher = LoadGgufModel(assets::kStoriesGguf);
  ModelConfig sc = teacher.config;
  sc.name = "student";
  sc.dim = 32, sc.n_layers = 2, sc.n_heads = 4, sc.n_kv_heads = 2, sc.head_dim = sc.rope_dim = 8, sc.ff = 86;
  const Dataset data = Dataset::FromFile(teacher.vocab, assets::kTrainText, {.seq = 64, .val_frac = 0.02, .seed = 3});
  TrainOptions to;
  to.steps = 150, to.batch = 8, to.lr = 3e-3f, to.warmup = 10, to.eval_batches = 16, to.threads = 2;
  auto run = [&](bool distil) {
    Trainer t(TrainModel::FromScratch(sc, teacher.vocab, 4), to);
    if (distil) {
      std::vector<TrainModel> ts;
      ts.push_back(TrainModel::FromModel(teacher));
      t.set_objective(DistillObjective(std::make_shared<Distiller>(std::move(ts), DistillOptions{.alpha = 0.0f})));
    }
    while (t.step() < to.steps) t.Step(data);
    return t.ValLoss(data);
  };
  const double plain = run(false), distilled = run(true);
  EXPECT_LT(distilled, plain) << "validation loss: without teacher " << plain << ", distilled " << distilled;
}

}  // namespace
}  // namespace smelt::train
