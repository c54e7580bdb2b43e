// Each training op's backward pass against central finite differences of its forward pass, and
// the forwards against plain double-precision formulas.
#include "train/ops.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "core/error.h"
#include "model/config.h"
#include "model/llama.h"
#include "train/grad_check_test_util.h"

namespace smelt::train {
namespace {

using testing::ExpectGradient;
using testing::kF32Eps;
using testing::Project;
using testing::Random;

double AbsSum(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += std::fabs(x);
  return s;
}

TEST(TrainOps, EmbeddingBackwardMatchesFiniteDifferences) {
  const int64_t V = 7, C = 5;
  std::vector<float> table = Random(V * C, 1);
  const std::vector<int32_t> tokens = {3, 0, 3, 6, 2, 3};
  const std::vector<float> r = Random(tokens.size() * C, 2);
  std::vector<float> out(tokens.size() * C), grad(V * C, 0.0f);
  auto f = [&] {
    EmbeddingForward(table.data(), tokens, C, out.data());
    return Project(r, out.data());
  };
  EmbeddingBackward(r.data(), tokens, C, grad.data());
  ExpectGradient(f, table.data(), table.size(), grad.data(), kF32Eps * AbsSum(r) * 8, "dtable");
  // Row 3 is used three times: its gradient is the sum of the three rows of r.
  for (int64_t c = 0; c < C; ++c) EXPECT_FLOAT_EQ(grad[3 * C + c], r[0 * C + c] + r[2 * C + c] + r[5 * C + c]);
}

TEST(TrainOps, RmsNormForwardAndBackward) {
  const int64_t N = 4, C = 12;
  const float eps = 1e-5f;
  std::vector<float> x = Random(N * C, 3), w = Random(C, 4, 0.5f), y(N * C), rstd(N);
  for (float& v : w) v += 1.0f;
  const std::vector<float> r = Random(N * C, 5);
  RmsNormForward(x.data(), w.data(), N, C, eps, y.data(), rstd.data(), 2);
  for (int64_t n = 0; n < N; ++n) {
    double ss = 0;
    for (int64_t c = 0; c < C; ++c) ss += (double)x[n * C + c] * x[n * C + c];
    for (int64_t c = 0; c < C; ++c) {
      const double want = x[n * C + c] / std::sqrt(ss / C + eps) * w[c];
      EXPECT_NEAR(y[n * C + c], want, 4 * kF32Eps * (std::fabs(want) + 1e-3));
    }
  }
  std::vector<float> dx(N * C), dw(C, 0.0f);
  RmsNormBackward(r.data(), x.data(), w.data(), rstd.data(), N, C, dx.data(), dw.data(), 2);
  auto f = [&] {
    RmsNormForward(x.data(), w.data(), N, C, eps, y.data(), rstd.data(), 1);
    return Project(r, y.data());
  };
  double mag;
  f();
  Project(r, y.data(), &mag);
  const double noise = 2 * C * kF32Eps * mag;
  ExpectGradient(f, x.data(), x.size(), dx.data(), noise, "dx");
  ExpectGradient(f, w.data(), w.size(), dw.data(), noise, "dw");
}

TEST(TrainOps, LinearForwardAndBackward) {
  const int64_t N = 5, C = 9, OC = 7;
  std::vector<float> x = Random(N * C, 6), W = Random(OC * C, 7, 0.3f), b = Random(OC, 8), y(N * OC);
  const std::vector<float> r = Random(N * OC, 9);
  LinearForward(x.data(), W.data(), b.data(), N, C, OC, y.data(), 2);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < OC; ++o) {
      double s = b[o], a = std::fabs(b[o]);
      for (int64_t c = 0; c < C; ++c) s += (double)x[n * C + c] * W[o * C + c], a += std::fabs(x[n * C + c] * W[o * C + c]);
      EXPECT_NEAR(y[n * OC + o], s, (C + 1) * kF32Eps * a);
    }
  // dx is written (then accumulated on a second call), dW and db accumulate.
  std::vector<float> dx(N * C, 123.0f), dW(OC * C, 0.0f), db(OC, 0.0f);
  LinearBackward(r.data(), x.data(), W.data(), N, C, OC, dx.data(), false, dW.data(), db.data(), 2);
  auto f = [&] {
    LinearForward(x.data(), W.data(), b.data(), N, C, OC, y.data(), 2);
    return Project(r, y.data());
  };
  std::vector<float> absx(x.size()), absW(W.size()), absb(b.size()), ya(y.size()), absr(r.size());
  for (size_t i = 0; i < x.size(); ++i) absx[i] = std::fabs(x[i]);
  for (size_t i = 0; i < W.size(); ++i) absW[i] = std::fabs(W[i]);
  for (size_t i = 0; i < b.size(); ++i) absb[i] = std::fabs(b[i]);
  for (size_t i = 0; i < r.size(); ++i) absr[i] = std::fabs(r[i]);
  LinearForward(absx.data(), absW.data(), absb.data(), N, C, OC, ya.data(), 2);
  const double noise = (C + 2) * kF32Eps * Project(absr, ya.data());
  ExpectGradient(f, x.data(), x.size(), dx.data(), noise, "dx");
  ExpectGradient(f, W.data(), W.size(), dW.data(), noise, "dW");
  ExpectGradient(f, b.data(), b.size(), db.data(), noise, "db");
  std::vector<float> dx2 = dx, dW2 = dW;
  LinearBackward(r.data(), x.data(), W.data(), N, C, OC, dx2.data(), true, dW2.data(), nullptr, 2);
  for (size_t i = 0; i < dx.size(); ++i) EXPECT_NEAR(dx2[i], 2 * dx[i], 4 * kF32Eps * std::fabs(dx[i]));
  for (size_t i = 0; i < dW.size(); ++i) EXPECT_NEAR(dW2[i], 2 * dW[i], 4 * kF32Eps * std::fabs(dW[i]));
}

class TrainRope : public ::testing::TestWithParam<bool> {};

TEST_P(TrainRope, BackwardIsTheInverseRotationAndMatchesFiniteDifferences) {
  ModelConfig c;
  c.n_heads = 3, c.head_dim = 8, c.rope_dim = 8, c.rope_theta = 10000.0f;
  const std::vector<float> inv_freq = RopeInvFrequencies(c);
  const RopeShape s{c.n_heads, c.head_dim, c.rope_dim, GetParam()};
  const std::vector<int32_t> pos = {0, 1, 5, 17};
  const int64_t n = (int64_t)pos.size() * c.n_heads * c.head_dim;
  std::vector<float> x = Random(n, 10), y = x;
  const std::vector<float> r = Random(n, 11);
  // A rotation keeps each row's norm; position 0 is the identity.
  RopeForward(y.data(), pos, s, inv_freq.data(), 2);
  for (int64_t i = 0; i < c.n_heads * c.head_dim; ++i) EXPECT_EQ(y[i], x[i]);
  const int64_t w = c.n_heads * c.head_dim;
  for (size_t t = 0; t < pos.size(); ++t) {
    double a = 0, b = 0;
    for (int64_t i = 0; i < w; ++i) a += (double)x[t * w + i] * x[t * w + i], b += (double)y[t * w + i] * y[t * w + i];
    EXPECT_NEAR(std::sqrt(b), std::sqrt(a), 8 * kF32Eps * std::sqrt(a));
  }
  std::vector<float> g = r;
  RopeBackward(g.data(), pos, s, inv_freq.data(), 2);
  auto f = [&] {
    y = x;
    RopeForward(y.data(), pos, s, inv_freq.data(), 1);
    return Project(r, y.data());
  };
  ExpectGradient(f, x.data(), x.size(), g.data(), 8 * kF32Eps * AbsSum(r) * 4, "dx");
}

INSTANTIATE_TEST_SUITE_P(Layouts, TrainRope, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? std::string("Neox") : std::string("Normal"); });

// The attention of one query head in double, as written in the definition.
std::vector<double> NaiveAttention(const std::vector<float>& q, const std::vector<float>& k,
                                   const std::vector<float>& v, const AttentionShape& s) {
  const int64_t hd = s.head_dim, Qw = s.heads * hd, KVw = s.kv_heads * hd;
  std::vector<double> out(s.B * s.T * Qw, 0.0);
  for (int64_t b = 0; b < s.B; ++b)
    for (int h = 0; h < s.heads; ++h) {
      const int kvh = h * s.kv_heads / s.heads;
      for (int64_t i = 0; i < s.T; ++i) {
        std::vector<double> p(i + 1);
        double mx = -std::numeric_limits<double>::infinity(), sum = 0;
        for (int64_t j = 0; j <= i; ++j) {
          double d = 0;
          for (int64_t e = 0; e < hd; ++e) d += (double)q[(b * s.T + i) * Qw + h * hd + e] * k[(b * s.T + j) * KVw + kvh * hd + e];
          mx = std::max(mx, p[j] = d / std::sqrt((double)hd));
        }
        for (double& x : p) sum += (x = std::exp(x - mx));
        for (int64_t j = 0; j <= i; ++j)
          for (int64_t e = 0; e < hd; ++e)
            out[(b * s.T + i) * Qw + h * hd + e] += p[j] / sum * v[(b * s.T + j) * KVw + kvh * hd + e];
      }
    }
  return out;
}

TEST(TrainOps, GroupedCausalAttentionForwardAndBackward) {
  const AttentionShape s{2, 5, 4, 2, 4};  // two query heads per kv head
  const int64_t N = s.B * s.T, Qw = s.heads * s.head_dim, KVw = s.kv_heads * s.head_dim;
  std::vector<float> q = Random(N * Qw, 12), k = Random(N * KVw, 13), v = Random(N * KVw, 14);
  std::vector<float> out(N * Qw), probs(s.B * s.heads * s.T * s.T);
  const std::vector<float> r = Random(N * Qw, 15);
  AttentionForward(q.data(), k.data(), v.data(), s, out.data(), probs.data(), 2);
  const std::vector<double> want = NaiveAttention(q, k, v, s);
  double vmax = 0;
  for (float x : v) vmax = std::max(vmax, (double)std::fabs(x));
  for (size_t i = 0; i < out.size(); ++i) EXPECT_NEAR(out[i], want[i], 8 * s.T * s.head_dim * kF32Eps * vmax) << i;
  // The future is invisible: changing the last key and value leaves earlier rows alone.
  std::vector<float> k2 = k, v2 = v, out2(out.size());
  for (int64_t e = 0; e < KVw; ++e) k2[(s.T - 1) * KVw + e] += 1.0f, v2[(s.T - 1) * KVw + e] -= 1.0f;
  AttentionForward(q.data(), k2.data(), v2.data(), s, out2.data(), probs.data(), 2);
  for (int64_t i = 0; i < (s.T - 1) * Qw; ++i) EXPECT_EQ(out2[i], out[i]);

  AttentionForward(q.data(), k.data(), v.data(), s, out.data(), probs.data(), 2);
  std::vector<float> dq(q.size()), dk(k.size()), dv(v.size());
  AttentionBackward(r.data(), q.data(), k.data(), v.data(), probs.data(), s, dq.data(), dk.data(), dv.data(), 2);
  auto f = [&] {
    AttentionForward(q.data(), k.data(), v.data(), s, out.data(), probs.data(), 1);
    return Project(r, out.data());
  };
  const double noise = 8 * s.T * s.head_dim * kF32Eps * AbsSum(r) * vmax;
  ExpectGradient(f, q.data(), q.size(), dq.data(), noise, "dq");
  ExpectGradient(f, k.data(), k.size(), dk.data(), noise, "dk");
  ExpectGradient(f, v.data(), v.size(), dv.data(), noise, "dv");
}

// The sgemm attention against its loop twin, and the same bits on one or two threads.
TEST(TrainOps, AttentionMatchesItsReferenceTwin) {
  const AttentionShape s{2, 64, 4, 2, 16};  // large enough to run on a team of threads
  const int64_t N = s.B * s.T, Qw = s.heads * s.head_dim, KVw = s.kv_heads * s.head_dim;
  const std::vector<float> q = Random(N * Qw, 20), k = Random(N * KVw, 21), v = Random(N * KVw, 22);
  const std::vector<float> r = Random(N * Qw, 23);
  auto run = [&](bool reference, int threads) {
    std::vector<float> out(N * Qw), probs(s.B * s.heads * s.T * s.T), dq(q.size()), dk(k.size()), dv(v.size());
    (reference ? AttentionForwardReference : AttentionForward)(q.data(), k.data(), v.data(), s, out.data(),
                                                               probs.data(), threads);
    (reference ? AttentionBackwardReference : AttentionBackward)(r.data(), q.data(), k.data(), v.data(),
                                                                 probs.data(), s, dq.data(), dk.data(), dv.data(),
                                                                 threads, nullptr);
    return std::vector<std::vector<float>>{out, dq, dk, dv, probs};
  };
  const auto fast = run(false, 2), ref = run(true, 1);
  EXPECT_EQ(run(false, 1), fast);
  EXPECT_EQ(run(true, 2), ref);
  const char* names[] = {"out", "dq", "dk", "dv", "probs"};
  for (size_t t = 0; t < fast.size(); ++t) {
    double norm = 0, diff = 0;
    for (size_t i = 0; i < fast[t].size(); ++i) {
      norm += (double)ref[t][i] * ref[t][i];
      diff += ((double)fast[t][i] - ref[t][i]) * ((double)fast[t][i] - ref[t][i]);
    }
    // Sums of T·hd products in another order: fp32 rounding of that length, relative to the norm.
    EXPECT_LE(std::sqrt(diff), 4 * (s.T + s.head_dim) * kF32Eps * std::sqrt(norm)) << names[t];
  }
}

TEST(TrainOps, SwigluForwardAndBackward) {
  const int64_t n = 40;
  std::vector<float> g = Random(n, 16, 2.0f), u = Random(n, 17), out(n), dg(n), du(n);
  const std::vector<float> r = Random(n, 18);
  SwigluForward(g.data(), u.data(), n, out.data(), 2);
  for (int64_t i = 0; i < n; ++i) {
    const double want = g[i] / (1.0 + std::exp(-(double)g[i])) * u[i];
    EXPECT_NEAR(out[i], want, 8 * kF32Eps * (std::fabs(want) + 1e-6));
  }
  SwigluBackward(r.data(), g.data(), u.data(), n, dg.data(), du.data(), 2);
  auto f = [&] {
    SwigluForward(g.data(), u.data(), n, out.data(), 1);
    return Project(r, out.data());
  };
  double mag;
  f();
  Project(r, out.data(), &mag);
  ExpectGradient(f, g.data(), n, dg.data(), 8 * kF32Eps * mag, "dgate");
  ExpectGradient(f, u.data(), n, du.data(), 8 * kF32Eps * mag, "dup");
}

TEST(TrainOps, CrossEntropyIsMeanNegativeLogSoftmaxAndItsGradient) {
  const int64_t N = 6, V = 11;
  std::vector<float> z = Random(N * V, 19, 3.0f);
  const std::vector<int32_t> t = {4, kIgnoreIndex, 0, 10, 4, kIgnoreIndex};
  const int counted = 4;
  double want = 0;
  for (int64_t n = 0; n < N; ++n) {
    if (t[n] == kIgnoreIndex) continue;
    double s = 0;
    for (int64_t c = 0; c < V; ++c) s += std::exp((double)z[n * V + c]);
    want -= std::log(std::exp((double)z[n * V + t[n]]) / s);
  }
  EXPECT_NEAR(CrossEntropyLoss(z.data(), t, V, 2), want, 16 * V * kF32Eps * want);
  std::vector<float> grad = z;
  const double loss = CrossEntropyForwardBackward(grad.data(), t, V, 1.0f / counted, 2);
  EXPECT_NEAR(loss, want, 16 * V * kF32Eps * want);
  auto f = [&] { return CrossEntropyLoss(z.data(), t, V, 1) / counted; };
  ExpectGradient(f, z.data(), z.size(), grad.data(), 16 * V * kF32Eps * want, "dlogits");
  for (int64_t c = 0; c < V; ++c) EXPECT_EQ(grad[1 * V + c], 0.0f);  // ignored rows carry no gradient

  std::vector<int32_t> bad = t;
  bad[2] = (int32_t)V;
  EXPECT_THROW(CrossEntropyLoss(z.data(), bad, V, 1), Error);
}

}  // namespace
}  // namespace smelt::train
