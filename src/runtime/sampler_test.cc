// Sampler: greedy is argmax; the empirical distribution of many draws matches softmax(l / T)
// restricted by top-k / top-p / min-p as defined (computed here independently, in double, from
// a sorted copy); repetition penalty follows llama.cpp's formula; a seed fixes the stream.
#include "runtime/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "tiny_models.h"

namespace smelt {
namespace {

// The distribution the options define, by id (0 for excluded tokens).
std::vector<double> Expected(const std::vector<float>& logits, const SamplerOptions& o) {
  const int n = (int)logits.size();
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
  int keep = (o.top_k > 0 && o.top_k < n) ? o.top_k : n;
  if (o.top_p < 1) {
    double z = 0;
    for (int i = 0; i < keep; ++i) z += std::exp((double)logits[order[i]]);
    double cum = 0;
    for (int i = 0; i < keep; ++i) {
      cum += std::exp((double)logits[order[i]]) / z;
      if (cum >= o.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  std::vector<double> p(n, 0.0);
  const double pmax = std::exp((double)logits[order[0]]);
  double z = 0;
  for (int i = 0; i < keep; ++i) {
    const int id = order[i];
    if (std::exp((double)logits[id]) < o.min_p * pmax) continue;
    z += p[id] = std::exp((double)logits[id] / o.temperature);
  }
  for (double& v : p) v /= z;
  return p;
}

// Draws `draws` tokens and checks them against `want` with a chi-square statistic.
void ExpectDistribution(const std::vector<float>& logits, const SamplerOptions& o, const std::vector<double>& want,
                        const char* what) {
  const int draws = 40000;
  Sampler s(o);
  std::vector<int> count(logits.size(), 0);
  for (int i = 0; i < draws; ++i) ++count[s.Sample(logits, {})];
  double chi2 = 0;
  int cells = 0;
  for (size_t id = 0; id < want.size(); ++id) {
    if (want[id] == 0) {
      EXPECT_EQ(count[id], 0) << what << ": excluded token " << id << " was drawn";
      continue;
    }
    const double e = want[id] * draws;
    chi2 += (count[id] - e) * (count[id] - e) / e;
    ++cells;
  }
  const int df = std::max(1, cells - 1);
  // Far in the tail of chi-square(df): a correct sampler essentially never exceeds this, while a
  // wrong distribution over 40000 draws exceeds it by orders of magnitude.
  EXPECT_LT(chi2, df + 8 * std::sqrt(2.0 * df) + 10) << what << " (" << cells << " cells)";
}

TEST(Sampler, GreedyIsArgmaxLowestIdOnTies) {
  for (uint32_t seed = 0; seed < 20; ++seed) {
    const auto l = tiny::RandomVector(100, seed);
    Sampler s({});
    EXPECT_EQ(s.Sample(l, {}), std::max_element(l.begin(), l.end()) - l.begin());
  }
  const std::vector<float> tie = {0.5f, 3.0f, -1.0f, 3.0f, 3.0f};
  Sampler s({});
  EXPECT_EQ(s.Sample(tie, {}), 1);
}

TEST(Sampler, DistributionMatchesTemperatureSoftmax) {
  const auto l = tiny::RandomVector(12, 1, 1.0f);
  for (float t : {0.5f, 1.0f, 1.7f}) {
    SamplerOptions o{.temperature = t, .seed = 3};
    ExpectDistribution(l, o, Expected(l, o), "temperature");
  }
}

TEST(Sampler, DistributionMatchesTopK) {
  const auto l = tiny::RandomVector(20, 2);
  SamplerOptions o{.temperature = 0.8f, .top_k = 5, .seed = 4};
  const auto want = Expected(l, o);
  EXPECT_EQ(std::count_if(want.begin(), want.end(), [](double p) { return p > 0; }), 5);
  ExpectDistribution(l, o, want, "top-k");
}

// A filter that must keep some tokens but not all of them.
void ExpectFilteredDistribution(const std::vector<float>& l, const SamplerOptions& o, const char* what) {
  const auto want = Expected(l, o);
  const auto kept = std::count_if(want.begin(), want.end(), [](double p) { return p > 0; });
  EXPECT_GT(kept, 1) << what;
  EXPECT_LT(kept, (long)l.size()) << what;
  ExpectDistribution(l, o, want, what);
}

TEST(Sampler, DistributionMatchesTopP) {
  ExpectFilteredDistribution(tiny::RandomVector(20, 3, 1.0f), {.temperature = 1.2f, .top_p = 0.8f, .seed = 5}, "top-p");
}

TEST(Sampler, DistributionMatchesMinP) {
  ExpectFilteredDistribution(tiny::RandomVector(20, 4, 2.0f), {.temperature = 1.0f, .min_p = 0.1f, .seed = 6}, "min-p");
}

TEST(Sampler, DistributionMatchesAllFiltersTogether) {
  const auto l = tiny::RandomVector(30, 5, 1.5f);
  SamplerOptions o{.temperature = 0.7f, .top_k = 12, .top_p = 0.95f, .min_p = 0.02f, .seed = 7};
  ExpectDistribution(l, o, Expected(l, o), "top-k + top-p + min-p");
}

TEST(Sampler, RepetitionPenaltyFormula) {
  // Token 0 (logit 2) is penalized to 2 / 4 = 0.5 and token 3 (logit -1) to -1 · 4 = -4; token 5
  // is outside the last-3 window and token 1 was never seen.
  const std::vector<float> l = {2.0f, 1.0f, 0.0f, -1.0f, 0.5f, 1.5f};
  const std::vector<int32_t> history = {5, 0, 3, 0};
  SamplerOptions o{.temperature = 1.0f, .repeat_penalty = 4.0f, .repeat_last_n = 3, .seed = 8};
  const std::vector<float> penalized = {0.5f, 1.0f, 0.0f, -4.0f, 0.5f, 1.5f};
  const int draws = 40000;
  Sampler s(o);
  std::vector<int> count(l.size(), 0);
  for (int i = 0; i < draws; ++i) ++count[s.Sample(l, history)];
  double z = 0;
  for (float v : penalized) z += std::exp((double)v);
  double chi2 = 0;
  for (size_t id = 0; id < l.size(); ++id) {
    const double e = std::exp((double)penalized[id]) / z * draws;
    chi2 += (count[id] - e) * (count[id] - e) / e;
  }
  EXPECT_LT(chi2, 5 + 8 * std::sqrt(10.0) + 10);

  // Greedy sees the penalty too: 2 / 4 < 1.5.
  Sampler greedy({.repeat_penalty = 4.0f, .repeat_last_n = 3});
  EXPECT_EQ(greedy.Sample(l, history), 5);
  Sampler whole({.repeat_penalty = 4.0f, .repeat_last_n = -1});  // now token 5 is seen too: 1.5 / 4
  EXPECT_EQ(whole.Sample(l, history), 1);
}

TEST(Sampler, SameSeedSameStreamDifferentSeedDifferentStream) {
  const auto l = tiny::RandomVector(50, 9, 0.5f);
  auto stream = [&](uint64_t seed, bool compat) {
    Sampler s({.temperature = 1.0f, .top_p = 0.9f, .seed = seed, .llama2c_compat = compat});
    std::vector<int32_t> out;
    for (int i = 0; i < 64; ++i) out.push_back(s.Sample(l, out));
    return out;
  };
  for (bool compat : {false, true}) {
    EXPECT_EQ(stream(42, compat), stream(42, compat));
    EXPECT_NE(stream(42, compat), stream(43, compat));
    const auto a = stream(0, compat);
    EXPECT_GT(std::set<int32_t>(a.begin(), a.end()).size(), 5u) << "seed 0 must still be random";
  }
}

TEST(Sampler, Llama2cCompatTopPKeepsTheNucleus) {
  // Probabilities 0.5, 0.3, 0.15, 0.05: run.c's nucleus for top_p 0.7 is the first two tokens
  // (its cut is after the cumulative probability exceeds top_p), drawn in proportion 5 : 3.
  const std::vector<float> l = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  Sampler s({.temperature = 1.0f, .top_p = 0.7f, .seed = 11, .llama2c_compat = true});
  std::vector<int> count(4, 0);
  const int draws = 20000;
  for (int i = 0; i < draws; ++i) ++count[s.Sample(l, {})];
  EXPECT_EQ(count[2] + count[3], 0);
  EXPECT_NEAR(count[0] / (double)draws, 0.625, 0.02);
}

}  // namespace
}  // namespace smelt
