// The bench's statistics against a naive two-pass formula, the bytes one decoded token reads
// against a count from the tensors, its token ids, and a whole run on a tiny model.
#include "runtime/bench.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "core/error.h"
#include "model/synth.h"

namespace smelt {
namespace {

// Mean, then Σ(x - mean)² / (n - 1): the textbook two-pass sample standard deviation.
MeanSd TwoPass(const std::vector<double>& xs) {
  const double n = (double)xs.size();
  double mean = 0;
  for (double x : xs) mean += x;
  mean /= n;
  double ss = 0;
  for (double x : xs) ss += (x - mean) * (x - mean);
  return {mean, xs.size() > 1 ? std::sqrt(ss / (n - 1)) : 0.0};
}

TEST(Bench, MeanAndSdMatchTwoPassFormula) {
  std::mt19937 rng(3);
  for (double offset : {0.0, 1e3, 1e8}) {
    for (int n : {1, 2, 5, 100}) {
      std::normal_distribution<double> d(offset, 2.5);
      std::vector<double> xs(n);
      for (double& x : xs) x = d(rng);
      const MeanSd got = MeanAndSd(xs), want = TwoPass(xs);
      // Rounding of either pass: a few ulps of the values' magnitude per element.
      double norm = 0;
      for (double x : xs) norm = std::max(norm, std::abs(x));
      const double tol = 8.0 * n * norm * std::numeric_limits<double>::epsilon();
      EXPECT_NEAR(got.mean, want.mean, tol) << offset << " " << n;
      EXPECT_NEAR(got.sd, want.sd, tol) << offset << " " << n;
      if (n == 1) {
        EXPECT_EQ(got.sd, 0.0);
      }
    }
  }
  EXPECT_EQ(MeanAndSd({}).mean, 0.0);
  const std::vector<double> same(4, 7.5);
  EXPECT_EQ(MeanAndSd(same).mean, 7.5);
  EXPECT_EQ(MeanAndSd(same).sd, 0.0);
}

TEST(Bench, BytesReadPerTokenCountsOneEmbeddingRow) {
  for (bool tied : {false, true}) {
    SynthOptions so;
    so.dim = 64, so.layers = 2, so.heads = 4, so.vocab = 300, so.tied = tied;
    const Model m = SynthesizeModel(so);
    uint64_t all = 0, embd = 0;
    int64_t embd_rows = 0;
    for (const Tensor& t : m.weights.all()) {
      all += t.nbytes;
      if (t.name == "token_embd.weight") embd = t.nbytes, embd_rows = t.nrows();
    }
    ASSERT_GT(embd_rows, 0);
    // Untied: everything but the embedding, plus one of its rows. Tied: the head reads it all.
    const uint64_t want = tied ? all : all - embd + embd / (uint64_t)embd_rows;
    EXPECT_EQ(BytesReadPerToken(m), want) << "tied " << tied;
  }
}

TEST(Bench, TokensAreDeterministicAndInRange) {
  const std::vector<int32_t> a = BenchTokens(300, 1000, 5), b = BenchTokens(300, 1000, 5);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, BenchTokens(300, 1000, 6));
  for (int32_t id : a) {
    EXPECT_GE(id, 0);
    EXPECT_LT(id, 300);
  }
}

TEST(Bench, RunsEveryTestAtEveryThreadCount) {
  SynthOptions so;
  so.dim = 64, so.layers = 2, so.heads = 4, so.vocab = 300;
  const Model m = SynthesizeModel(so);
  BenchOptions opt;
  opt.threads = {1, 2};
  opt.prompt = 8, opt.gen = 4, opt.repetitions = 3, opt.bandwidth_mib = 4, opt.bandwidth_repetitions = 1;
  const BenchReport r = RunBench(m, opt);
  ASSERT_EQ(r.results.size(), 4u);
  const char* tests[] = {"pp8", "tg4"};
  for (size_t i = 0; i < r.results.size(); ++i) {
    const BenchResult& b = r.results[i];
    EXPECT_EQ(b.test, tests[i % 2]);
    EXPECT_EQ(b.threads, opt.threads[i / 2]);
    ASSERT_EQ(b.tokens_per_s.size(), 3u);
    for (double x : b.tokens_per_s) EXPECT_GT(x, 0);
    const MeanSd want = MeanAndSd(b.tokens_per_s);
    EXPECT_EQ(b.stats.mean, want.mean);
    EXPECT_EQ(b.stats.sd, want.sd);
  }
  ASSERT_EQ(r.ceilings.size(), 2u);
  for (const TgCeiling& c : r.ceilings) {
    EXPECT_GT(c.gb_per_s, 0);
    EXPECT_NEAR(c.tokens_per_s, c.gb_per_s * 1e9 / (double)r.bytes_per_token, 1e-9 * c.tokens_per_s);
  }
  int64_t params = 0;
  for (const Tensor& t : m.weights.all()) params += t.nelements();
  EXPECT_EQ(r.parameters, params);
  EXPECT_EQ(r.model.rfind("llama ", 0), 0u) << r.model;
  EXPECT_EQ(r.model.substr(r.model.size() - 4), " F32") << r.model;
  EXPECT_GT(r.bytes, r.bytes_per_token);

  opt.threads = {0};
  EXPECT_THROW(RunBench(m, opt), Error);
  opt.threads = {1}, opt.prompt = 0, opt.gen = 0;
  EXPECT_THROW(RunBench(m, opt), Error);
  opt.gen = 1, opt.repetitions = 0;
  EXPECT_THROW(RunBench(m, opt), Error);
}

}  // namespace
}  // namespace smelt
