// Reference ops against independent formulas: RMSNorm and softmax in double, RoPE as a complex
// multiplication per pair, attention over a cache against an explicit masked (T, T) softmax.
#include "kernels/ops.h"

#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <limits>
#include <random>
#include <vector>

#include "kernels/attention.h"
#include "kernels/rope.h"
#include "tiny_models.h"

namespace smelt {
namespace {

TEST(KernelOps, RmsNormMatchesDouble) {
  for (int n : {1, 7, 64, 1000}) {
    const auto x = tiny::RandomVector(n, n, 3.0f), w = tiny::RandomVector(n, n + 1);
    const float eps = 1e-5f;
    std::vector<float> out(n);
    RmsNorm(out.data(), x.data(), w.data(), n, eps);
    double ss = 0;
    for (float v : x) ss += (double)v * v;
    const double r = 1.0 / std::sqrt(ss / n + eps);
    for (int i = 0; i < n; ++i) EXPECT_NEAR(out[i], x[i] * r * w[i], 1e-6 * (1 + std::abs(x[i] * r * w[i]))) << n;
  }
}

TEST(KernelOps, RmsNormInPlace) {
  auto x = tiny::RandomVector(33, 1);
  const auto w = tiny::RandomVector(33, 2);
  std::vector<float> out(33);
  RmsNorm(out.data(), x.data(), w.data(), 33, 1e-6f);
  RmsNorm(x.data(), x.data(), w.data(), 33, 1e-6f);
  EXPECT_EQ(out, x);
}

TEST(KernelOps, SoftmaxMatchesDoubleAndSurvivesLargeLogits) {
  auto x = tiny::RandomVector(100, 5, 10.0f);
  x[3] = 1000.0f;  // exp(1000) overflows unless the max is subtracted
  x[4] = 999.0f;
  std::vector<double> want(x.begin(), x.end());
  double mx = 1000.0, sum = 0;
  for (double& v : want) sum += (v = std::exp(v - mx));
  for (double& v : want) v /= sum;
  Softmax(x.data(), (int64_t)x.size());
  double total = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_NEAR(x[i], want[i], 1e-6);
    total += x[i];
  }
  EXPECT_NEAR(total, 1.0, 1e-5);
  EXPECT_NEAR(x[3] / x[4], std::exp(1.0), 1e-4);
}

TEST(KernelOps, SiluAndSwiGlu) {
  for (float v : {-20.0f, -1.5f, 0.0f, 0.3f, 4.0f, 30.0f})
    EXPECT_NEAR(Silu(v), v / (1.0 + std::exp(-(double)v)), 1e-6 * (1 + std::abs(v)));
  EXPECT_EQ(Silu(-200.0f), 0.0f);  // exp overflow gives -0, not NaN
  const auto g = tiny::RandomVector(20, 7), u = tiny::RandomVector(20, 8);
  std::vector<float> out(20);
  SwiGlu(out.data(), g.data(), u.data(), 20);
  for (int i = 0; i < 20; ++i) EXPECT_NEAR(out[i], g[i] / (1.0 + std::exp(-(double)g[i])) * u[i], 1e-6);
}

// The AVX-512 twin against the reference over the whole range: within 8 ulp of the result (the
// polynomial's 2 ulp, the division and the products), the same NaN/inf behaviour, any tail. Below
// x ≈ -87 the reference's e^-x overflows and it gives -0 where the twin still gives the true value
// (under 1e-35): the absolute slack.
TEST(KernelOps, SwiGluTwinMatchesTheReference) {
  const SwiGluFn fast = Avx512SwiGlu();
  if (!fast) GTEST_SKIP() << "no AVX-512 on this CPU";
  std::vector<float> g, u;
  for (float x = -120.0f; x <= 120.0f; x += 0.0173f) g.push_back(x), u.push_back(1.0f + 0.001f * (float)g.size());
  for (float x : {0.0f, -0.0f, 1e-30f, -1e-30f, 88.0f, -88.0f, 89.0f, -104.5f, -200.0f, 1e30f, -1e30f}) g.push_back(x), u.push_back(2.0f);
  g.push_back(INFINITY), u.push_back(1.0f);
  g.push_back(NAN), u.push_back(1.0f);
  for (size_t n : {g.size(), g.size() - 5, (size_t)13}) {
    std::vector<float> want(n), got(n);
    ReferenceSwiGlu(want.data(), g.data(), u.data(), (int64_t)n);
    fast(got.data(), g.data(), u.data(), (int64_t)n);
    for (size_t i = 0; i < n; ++i) {
      if (std::isnan(want[i]) || std::isinf(want[i])) {
        EXPECT_EQ(std::isnan(got[i]), std::isnan(want[i])) << g[i];
        if (std::isinf(want[i])) {
          EXPECT_EQ(got[i], want[i]) << g[i];
        }
        continue;
      }
      EXPECT_NEAR(got[i], want[i], 8 * std::numeric_limits<float>::epsilon() * std::fabs(want[i]) + 1e-35f) << g[i];
    }
  }
}

TEST(KernelOps, DotMatchesDouble) {
  for (int n : {0, 1, 5, 64, 1001}) {
    const auto a = tiny::RandomVector(n, 11), b = tiny::RandomVector(n, 12);
    double want = 0;
    for (int i = 0; i < n; ++i) want += (double)a[i] * b[i];
    EXPECT_NEAR(DotF32(a.data(), b.data(), n), want, 1e-5 * std::sqrt((double)n + 1)) << n;
  }
}

TEST(KernelOps, RopeBaseFrequencies) {
  const auto f = RopeBaseFrequencies(128, 500000.0f);
  ASSERT_EQ(f.size(), 64u);
  for (int i = 0; i < 64; ++i)
    EXPECT_NEAR(f[i], std::pow(500000.0, -2.0 * i / 128), 1e-6 * std::pow(500000.0, -2.0 * i / 128));
}

// Each rotated pair, read as a complex number a + ib, is multiplied by e^{i·pos·freq}.
void CheckRope(bool neox, int head_dim, int rope_dim) {
  const int heads = 3, half = rope_dim / 2;
  const int64_t pos = 37;
  const auto freq = RopeBaseFrequencies(rope_dim, 10000.0f);
  std::vector<float> c(half), s(half);
  RopeAngles(pos, freq.data(), half, c.data(), s.data());
  const auto x0 = tiny::RandomVector(heads * head_dim, head_dim + rope_dim);
  auto x = x0;
  ApplyRope(x.data(), heads, head_dim, rope_dim, c.data(), s.data(), neox);
  for (int h = 0; h < heads; ++h) {
    const float* in = &x0[h * head_dim];
    const float* out = &x[h * head_dim];
    std::vector<bool> touched(head_dim);
    for (int i = 0; i < half; ++i) {
      const int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
      touched[a] = touched[b] = true;
      const std::complex<double> z =
          std::complex<double>(in[a], in[b]) * std::exp(std::complex<double>(0, pos * (double)freq[i]));
      EXPECT_NEAR(out[a], z.real(), 2e-5) << "head " << h << " pair " << i;
      EXPECT_NEAR(out[b], z.imag(), 2e-5) << "head " << h << " pair " << i;
    }
    for (int d = 0; d < head_dim; ++d) {
      if (!touched[d]) {
        EXPECT_EQ(out[d], in[d]) << "dim " << d << " is past rope_dim";
      }
    }
  }
}

TEST(KernelOps, RopeAdjacentPairsIsComplexRotation) { CheckRope(false, 16, 16); }
TEST(KernelOps, RopeNeoxHalvesIsComplexRotation) { CheckRope(true, 16, 16); }
TEST(KernelOps, RopePartialDims) {
  CheckRope(false, 16, 8);
  CheckRope(true, 16, 8);
}

TEST(KernelOps, RopeAtPositionZeroIsIdentity) {
  const auto freq = RopeBaseFrequencies(8, 10000.0f);
  std::vector<float> c(4), s(4);
  RopeAngles(0, freq.data(), 4, c.data(), s.data());
  const auto x0 = tiny::RandomVector(16, 3);
  auto x = x0;
  ApplyRope(x.data(), 2, 8, 8, c.data(), s.data(), false);
  EXPECT_EQ(x, x0);
}

// Causal attention for all T queries of one head at once, as an explicit masked (T, T) matrix,
// in double, against AttendHead over the growing prefix of a strided cache.
TEST(KernelOps, AttentionOverCacheMatchesExplicitMaskedSoftmax) {
  const int T = 9, hd = 8, stride = 3 * hd, kv_head = 1;
  const auto q = tiny::RandomVector(T * hd, 21), cache_k = tiny::RandomVector(T * stride, 22),
             cache_v = tiny::RandomVector(T * stride, 23);
  const double scale = 1.0 / std::sqrt((double)hd);
  std::vector<double> s(T * T, 0.0);
  for (int i = 0; i < T; ++i)
    for (int j = 0; j < T; ++j) {
      if (j > i) {
        s[i * T + j] = -INFINITY;
        continue;
      }
      for (int e = 0; e < hd; ++e) s[i * T + j] += (double)q[i * hd + e] * cache_k[j * stride + kv_head * hd + e];
      s[i * T + j] *= scale;
    }
  std::vector<float> out(hd), scores(T);
  for (int i = 0; i < T; ++i) {
    double mx = -INFINITY, sum = 0;
    for (int j = 0; j < T; ++j) mx = std::max(mx, s[i * T + j]);
    std::vector<double> p(T);
    for (int j = 0; j < T; ++j) sum += (p[j] = std::exp(s[i * T + j] - mx));
    AttendHead(&q[i * hd], &cache_k[kv_head * hd], &cache_v[kv_head * hd], i + 1, stride, hd, (float)scale, out.data(),
               scores.data());
    for (int e = 0; e < hd; ++e) {
      double want = 0;
      for (int j = 0; j < T; ++j) want += p[j] / sum * cache_v[j * stride + kv_head * hd + e];
      EXPECT_NEAR(out[e], want, 1e-5) << "query " << i << " dim " << e;
    }
  }
}

}  // namespace
}  // namespace smelt
