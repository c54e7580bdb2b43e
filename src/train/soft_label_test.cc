#include "train/soft_label.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/error.h"
#include "train/grad_check_test_util.h"
#include "train/ops.h"

namespace smelt::train {
namespace {

constexpr Divergence kAll[] = {Divergence::kForward, Divergence::kReverse, Divergence::kSkewForward,
                               Divergence::kSkewReverse};

std::vector<float> RandomLogits(int64_t n, float spread, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, spread);
  std::vector<float> v((size_t)n);
  for (float& x : v) x = d(rng);
  return v;
}

// The divergences written from their definitions, one row at a time, in long double.
long double Naive(const float* s, const float* t, int64_t V, const SoftLabelOptions& o) {
  auto softmax = [&](const float* z) {
    std::vector<long double> p((size_t)V);
    long double sum = 0;
    for (int64_t j = 0; j < V; ++j) sum += p[j] = std::exp((long double)z[j] / o.temperature);
    for (auto& x : p) x /= sum;
    return p;
  };
  const auto p = softmax(t), q = softmax(s);
  auto kl = [&](const std::vector<long double>& a, const std::vector<long double>& b) {
    long double d = 0;
    for (int64_t j = 0; j < V; ++j) d += a[j] * std::log(a[j] / b[j]);
    return d;
  };
  std::vector<long double> m((size_t)V);
  const long double lam = o.skew;
  switch (o.divergence) {
    case Divergence::kForward: return kl(p, q) * o.temperature * o.temperature;
    case Divergence::kReverse: return kl(q, p) * o.temperature * o.temperature;
    case Divergence::kSkewForward:
      for (int64_t j = 0; j < V; ++j) m[j] = lam * p[j] + (1 - lam) * q[j];
      return kl(p, m) * o.temperature * o.temperature;
    case Divergence::kSkewReverse:
      for (int64_t j = 0; j < V; ++j) m[j] = lam * q[j] + (1 - lam) * p[j];
      return kl(q, m) * o.temperature * o.temperature;
  }
  return 0;
}

TEST(SoftLabel, LossEqualsTheDefinitionsAndSkipsIgnoredRows) {
  const int64_t N = 5, V = 11;
  const auto s = RandomLogits(N * V, 2.0f, 1), t = RandomLogits(N * V, 2.0f, 2);
  const std::vector<int32_t> targets = {3, kIgnoreIndex, 0, 10, 4};
  for (Divergence d : kAll)
    for (float tau : {0.5f, 1.0f, 2.0f}) {
      const SoftLabelOptions o{d, tau, 0.3f};
      long double want = 0;
      for (int64_t r = 0; r < N; ++r)
        if (targets[r] != kIgnoreIndex) want += Naive(s.data() + r * V, t.data() + r * V, V, o);
      const double got = SoftLabelLoss(s.data(), t.data(), targets, V, o, 1.0f, nullptr, 1);
      EXPECT_NEAR(got, (double)want, 1e-9 * std::max(1.0, (double)want)) << DivergenceName(d) << " tau " << tau;
      EXPECT_GT(got, 0.0);
    }
}

TEST(SoftLabel, ZeroWhenTheStudentIsTheTeacherAndSkewZeroIsPlainKl) {
  const int64_t N = 3, V = 9;
  const auto t = RandomLogits(N * V, 3.0f, 3), s = RandomLogits(N * V, 3.0f, 4);
  const std::vector<int32_t> targets(N, 0);
  for (Divergence d : kAll) {
    std::vector<float> g(N * V, 0.0f);
    const double same = SoftLabelLoss(t.data(), t.data(), targets, V, {d, 1.5f, 0.2f}, 1.0f, g.data(), 1);
    EXPECT_NEAR(same, 0.0, 1e-12) << DivergenceName(d);
    for (float x : g) EXPECT_NEAR(x, 0.0f, 1e-7f) << DivergenceName(d);
  }
  const double fwd = SoftLabelLoss(s.data(), t.data(), targets, V, {Divergence::kForward, 1.0f, 0.0f}, 1, nullptr, 1);
  const double skf = SoftLabelLoss(s.data(), t.data(), targets, V, {Divergence::kSkewForward, 1.0f, 0.0f}, 1, nullptr, 1);
  const double rev = SoftLabelLoss(s.data(), t.data(), targets, V, {Divergence::kReverse, 1.0f, 0.0f}, 1, nullptr, 1);
  const double skr = SoftLabelLoss(s.data(), t.data(), targets, V, {Divergence::kSkewReverse, 1.0f, 0.0f}, 1, nullptr, 1);
  EXPECT_NEAR(skf, fwd, 1e-9 * fwd);
  EXPECT_NEAR(skr, rev, 1e-9 * rev);
  // Skewing towards the student's own distribution bounds the divergence (log 1/λ at most).
  const double sk5 = SoftLabelLoss(s.data(), t.data(), targets, V, {Divergence::kSkewForward, 1.0f, 0.5f}, 1, nullptr, 1);
  EXPECT_LT(sk5, fwd);
  EXPECT_LE(sk5, N * std::log(2.0) + 1e-9);
}

TEST(SoftLabel, GradientMatchesFiniteDifferences) {
  const int64_t N = 3, V = 8;
  auto s = RandomLogits(N * V, 1.5f, 5);
  const auto t = RandomLogits(N * V, 1.5f, 6);
  const std::vector<int32_t> targets = {1, 2, kIgnoreIndex};
  for (Divergence d : kAll)
    for (float tau : {0.7f, 2.0f}) {
      const SoftLabelOptions o{d, tau, 0.25f};
      const float scale = 0.5f;
      std::vector<float> g(N * V, 0.0f), ones(N * V, 1.0f);
      SoftLabelLoss(s.data(), t.data(), targets, V, o, scale, g.data(), 1);
      SoftLabelLoss(s.data(), t.data(), targets, V, o, scale, ones.data(), 1);  // the gradient is added
      for (size_t j = 0; j < g.size(); ++j) EXPECT_EQ(ones[j], 1.0f + g[j]);
      for (int64_t j = 2 * V; j < 3 * V; ++j) EXPECT_EQ(g[j], 0.0f) << "ignored row";
      auto f = [&] { return scale * SoftLabelLoss(s.data(), t.data(), targets, V, o, 1.0f, nullptr, 1); };
      testing::ExpectGradient(f, s.data(), s.size(), g.data(), 1e-13,
                              std::string(DivergenceName(d)) + " tau " + std::to_string(tau));
    }
}

TEST(SoftLabel, ThreadCountDoesNotChangeTheResult) {
  const int64_t N = 64, V = 700;
  const auto s = RandomLogits(N * V, 2.0f, 7), t = RandomLogits(N * V, 2.0f, 8);
  const std::vector<int32_t> targets(N, 1);
  std::vector<float> g1(N * V, 0.0f), g2(N * V, 0.0f);
  const SoftLabelOptions o{Divergence::kReverse, 2.0f, 0.1f};
  const double a = SoftLabelLoss(s.data(), t.data(), targets, V, o, 1.0f, g1.data(), 1);
  const double b = SoftLabelLoss(s.data(), t.data(), targets, V, o, 1.0f, g2.data(), 2);
  EXPECT_EQ(a, b);
  EXPECT_EQ(g1, g2);
}

TEST(SoftLabel, RejectsBadOptions) {
  const std::vector<float> z(4, 0.0f);
  const std::vector<int32_t> targets = {0};
  EXPECT_THROW(SoftLabelLoss(z.data(), z.data(), targets, 4, {Divergence::kForward, 0.0f, 0.1f}, 1, nullptr, 1), Error);
  EXPECT_THROW(SoftLabelLoss(z.data(), z.data(), targets, 4, {Divergence::kSkewForward, 1.0f, 1.0f}, 1, nullptr, 1),
               Error);
  EXPECT_THROW(ParseDivergence("js"), Error);
  for (Divergence d : kAll) EXPECT_EQ(ParseDivergence(DivergenceName(d)), d);
}

}  // namespace
}  // namespace smelt::train
