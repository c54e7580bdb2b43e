// Pruning masks and allocations against brute force: a full sort of the scores by (score, index)
// for magnitude, Wanda and N:M masks; a sort of every weight of every matrix for global
// magnitude; OWL's definition; and the whole-model driver on stories260K (exact counts, masks
// never revived across rounds or by quantizing, OWL's mean, the pruned model runs).
#include "compress/prune.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <random>
#include <tuple>

#include <unistd.h>

#include "compress/calibration.h"
#include "compress/quantize.h"
#include "compress/rules.h"
#include "core/mapped_file.h"
#include "error_of.h"
#include "eval/perplexity.h"
#include "formats/types.h"
#include "io/gguf_model.h"
#include "io/load.h"
#include "shared_assets.h"

namespace smelt {
namespace {

using testing::ErrorOf;

// Scores drawn from only `levels` values, so ties are everywhere.
std::vector<float> TiedScores(int64_t n, int levels, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(0, levels - 1);
  std::vector<float> s((size_t)n);
  for (float& v : s) v = (float)d(rng) * 0.25f;
  return s;
}

// The first k of [0, n) sorted by (score, index): the brute-force pruning order.
std::vector<uint8_t> BruteLowest(const float* s, int64_t n, int64_t k) {
  std::vector<int64_t> idx((size_t)n);
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [s](int64_t a, int64_t b) { return std::tie(s[a], a) < std::tie(s[b], b); });
  std::vector<uint8_t> m((size_t)n, 0);
  for (int64_t i = 0; i < k; ++i) m[(size_t)idx[(size_t)i]] = 1;
  return m;
}

TEST(Prune, ParsesNamesAndPatterns) {
  EXPECT_EQ(ParsePruneMethod("wanda"), PruneMethod::kWanda);
  EXPECT_FALSE(ParsePruneMethod("obs"));
  EXPECT_EQ(ParsePruneAllocation("owl"), PruneAllocation::kOwl);
  const auto p = ParseNmPattern("2:4");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->n, 2);
  EXPECT_EQ(p->m, 4);
  EXPECT_DOUBLE_EQ(p->sparsity(), 0.5);
  for (const char* bad : {"4:4", "0:4", "5:4", "2-4", "2:", ":4", "a:b", "2:4:8"}) EXPECT_FALSE(ParseNmPattern(bad)) << bad;
}

// Matrix-wide and per-row masks prune exactly round(S n) weights (per row: S C rounded so the rows
// add up), the same ones a full sort by (score, index) picks, even when most scores tie.
TEST(Prune, MaskCountsAreExactAndMatchAFullSortUnderTies) {
  const int64_t OC = 7, C = 36;
  for (double s : {0.0, 0.1, 0.5, 0.77, 0.999}) {
    const std::vector<float> scores = TiedScores(OC * C, 3, 11);
    const std::vector<uint8_t> whole = SelectMask(scores, OC, C, s, false, {});
    const int64_t k = std::llround(s * OC * C);
    EXPECT_EQ(std::accumulate(whole.begin(), whole.end(), 0), k) << s;
    EXPECT_EQ(whole, BruteLowest(scores.data(), OC * C, k)) << s;
    const std::vector<uint8_t> rows = SelectMask(scores, OC, C, s, true, {});
    EXPECT_EQ(std::accumulate(rows.begin(), rows.end(), 0), k) << s;
    for (int64_t r = 0; r < OC; ++r) {
      const int64_t kr = std::llround(s * C * (double)(r + 1)) - std::llround(s * C * (double)r);
      EXPECT_LE(std::abs((double)kr - s * C), 1.0);
      const std::vector<uint8_t> want = BruteLowest(&scores[(size_t)(r * C)], C, kr);
      EXPECT_TRUE(std::equal(want.begin(), want.end(), rows.begin() + r * C)) << "row " << r << " s " << s;
    }
  }
}

// N:M: every group of M prunes exactly M - N, the lowest by (score, index).
TEST(Prune, NmMaskHasTheExactPatternInEveryGroup) {
  for (NmPattern p : {NmPattern{2, 4}, NmPattern{4, 8}, NmPattern{1, 4}}) {
    const int64_t OC = 5, C = 64;
    const std::vector<float> scores = TiedScores(OC * C, 2, 3);
    const std::vector<uint8_t> mask = SelectMask(scores, OC, C, 0.9 /* ignored */, true, p);
    for (int64_t g = 0; g < OC * C; g += p.m) {
      EXPECT_EQ(std::accumulate(mask.begin() + g, mask.begin() + g + p.m, 0), p.m - p.n) << g;
      const std::vector<uint8_t> want = BruteLowest(&scores[(size_t)g], p.m, p.m - p.n);
      EXPECT_TRUE(std::equal(want.begin(), want.end(), mask.begin() + g)) << g;
    }
  }
}

// Wanda's scores from calibration inputs: |W_ij| · ‖X_j‖₂, computed here from the raw inputs;
// its mask per row equals a full sort of them. Exact zeros (earlier rounds) go first.
TEST(Prune, WandaMaskEqualsABruteForceSortOfItsScores) {
  const int64_t OC = 9, C = 24, N = 40;
  std::mt19937 rng(5);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> W((size_t)(OC * C)), X((size_t)(N * C));
  for (float& v : W) v = g(rng);
  for (int64_t i = 0; i < N * C; ++i) X[(size_t)i] = g(rng) * (1.0f + (float)(i % C));
  W[3] = W[40] = 0.0f;
  InputStats st;
  st.columns = C;
  st.rows = N;
  st.sum_sq.assign((size_t)C, 0.0);
  for (int64_t t = 0; t < N; ++t)
    for (int64_t j = 0; j < C; ++j) st.sum_sq[(size_t)j] += (double)X[(size_t)(t * C + j)] * X[(size_t)(t * C + j)];
  std::vector<float> brute((size_t)(OC * C));
  for (int64_t r = 0; r < OC; ++r)
    for (int64_t j = 0; j < C; ++j) {
      double norm = 0;
      for (int64_t t = 0; t < N; ++t) norm += (double)X[(size_t)(t * C + j)] * X[(size_t)(t * C + j)];
      const float w = W[(size_t)(r * C + j)];
      brute[(size_t)(r * C + j)] = w == 0 ? -INFINITY : std::abs(w) * (float)std::sqrt(norm);
    }
  const std::vector<float> scores = PruneScores(W.data(), OC, C, &st);
  for (size_t i = 0; i < scores.size(); ++i) {
    if (std::isinf(brute[i])) {
      EXPECT_EQ(scores[i], brute[i]) << i;
    } else {
      EXPECT_NEAR(scores[i], brute[i], 1e-5f * std::abs(brute[i])) << i;
    }
  }
  const std::vector<uint8_t> mask = SelectMask(scores, OC, C, 0.5, true, {});
  for (int64_t r = 0; r < OC; ++r) {
    const std::vector<uint8_t> want = BruteLowest(&brute[(size_t)(r * C)], C, C / 2);
    EXPECT_TRUE(std::equal(want.begin(), want.end(), mask.begin() + r * C)) << r;
  }
  EXPECT_TRUE(mask[3] && mask[40]);
}

// Global magnitude: the per-matrix counts of the round(S N) smallest |w| of all matrices
// together, ties (and exact zeros) in (matrix, index) order, as a sort of every weight finds.
TEST(Prune, GlobalMagnitudeCountsEqualASortOfAllWeights) {
  std::mt19937 rng(9);
  std::uniform_int_distribution<int> level(-20, 20);
  std::vector<std::vector<float>> mats = {std::vector<float>(300), std::vector<float>(77), std::vector<float>(1024)};
  for (auto& m : mats)
    for (float& v : m) v = (float)level(rng) * 0.01f;  // many ties, zeros, both signs
  mats[1][5] = 1e-30f;                                 // a denormal-free tiny value
  for (double s : {0.0, 0.3, 0.5, 0.9}) {
    std::vector<std::tuple<float, size_t, size_t>> all;
    for (size_t i = 0; i < mats.size(); ++i)
      for (size_t j = 0; j < mats[i].size(); ++j) all.emplace_back(std::abs(mats[i][j]), i, j);
    std::sort(all.begin(), all.end());
    const int64_t k = std::llround(s * (double)all.size());
    std::vector<int64_t> want(mats.size(), 0);
    for (int64_t i = 0; i < k; ++i) ++want[std::get<1>(all[(size_t)i])];
    EXPECT_EQ(GlobalMagnitudeCounts(mats, s), want) << s;
  }
}

// OWL: the parameter-weighted mean of the block sparsities is the target, each is within ±λ of
// it, and a block with more outliers never gets more sparsity than one with fewer.
TEST(Prune, OwlSparsityKeepsTheMeanAndOrdersByOutliers) {
  const std::vector<double> ratio = {0.01, 0.05, 0.02, 0.002, 0.03};
  const std::vector<double> params = {100, 100, 300, 100, 50};
  const double S = 0.6, lambda = 0.08;
  const std::vector<double> s = OwlSparsity(ratio, params, S, lambda);
  double mean = 0, total = 0;
  for (size_t l = 0; l < s.size(); ++l) {
    mean += params[l] * s[l], total += params[l];
    EXPECT_LE(std::abs(s[l] - S), lambda + 1e-12) << l;
    for (size_t m = 0; m < s.size(); ++m)
      if (ratio[l] > ratio[m]) {
        EXPECT_LT(s[l], s[m]) << l << " " << m;
      }
  }
  EXPECT_NEAR(mean / total, S, 1e-12);
  // λ is narrowed so that no block leaves [0, 1].
  for (double v : OwlSparsity(ratio, params, 0.03, 0.08)) EXPECT_GE(v, 0.0);
  EXPECT_EQ(OwlSparsity({0.1, 0.1}, {1, 1}, 0.5, 0.08), (std::vector<double>{0.5, 0.5}));
  // The outlier ratio by its definition: values above M times the mean.
  EXPECT_DOUBLE_EQ(OutlierRatio({1, 1, 1, 1, 1, 1, 1, 1, 1, 100}, 5.0), 0.1);
}

TEST(Prune, CubicScheduleRisesFastThenFlattensToTheTarget) {
  const double S = 0.5;
  double prev = 0, step = 1;
  for (int r = 1; r <= 4; ++r) {
    const double s = CubicSchedule(S, r, 4);
    EXPECT_GT(s, prev);
    EXPECT_LT(s - prev, step);  // each round prunes less than the one before
    step = s - prev, prev = s;
  }
  EXPECT_DOUBLE_EQ(prev, S);
  EXPECT_DOUBLE_EQ(CubicSchedule(S, 1, 1), S);
}

// ---- the whole model on stories260K -----------------------------------------------------------

const std::vector<std::vector<int32_t>>& Samples(const Model& m) {
  static const auto samples = CalibrationSamples(m, assets::kTrainText, {.samples = 8, .tokens = 96});
  return samples;
}

std::vector<float> Values(const Model& m, const std::string& name) { return DequantizeAll(m.weights.Get(name)); }

// Exact per-matrix counts for each method, projections only (head and embedding dense), the
// pruned model saved, loaded and run.
TEST(Prune, EveryMethodPrunesExactCountsAndTheModelRuns) {
  const Model m = LoadModel(assets::kStoriesGguf);
  for (PruneMethod method : {PruneMethod::kMagnitude, PruneMethod::kWanda, PruneMethod::kSparseGpt}) {
    PruneOptions o;
    o.method = method;
    o.sparsity = 0.5;
    o.samples = &Samples(m);
    PruneSummary sum;
    const Model p = PruneModel(m, o, &sum);
    ASSERT_EQ(sum.matrices.size(), 7u * 5u);
    for (const MatrixPruneInfo& mi : sum.matrices) {
      const Tensor& t = m.weights.Get(mi.name);
      EXPECT_EQ(mi.zeros, std::llround(0.5 * (double)t.nelements())) << mi.name;  // no exact zeros before
      EXPECT_EQ(CountZeros(p.weights.Get(mi.name)), mi.zeros);
    }
    for (const char* dense : {"token_embd.weight", "output.weight"})
      if (m.weights.Contains(dense)) {
        EXPECT_EQ(CountZeros(p.weights.Get(dense)), CountZeros(m.weights.Get(dense)));
      }
    const std::filesystem::path path = std::filesystem::temp_directory_path() /
                                       ("smelt-prune-" + std::to_string(::getpid()) + ".gguf");
    SaveGgufModel(p, path.string(), GgufSaveOptions{});
    const Model back = LoadModel(path.string());
    PplOptions po;
    po.ctx = 64;
    po.max_chunks = 4;
    const PplResult r = Perplexity(back, ReadFileToString(assets::kDevText), po);
    EXPECT_TRUE(std::isfinite(r.ppl()) && r.ppl() > 1.0) << PruneMethodName(method);
    std::filesystem::remove(path);
  }
}

// Gradual pruning: every round's zeros include the previous round's (never revived, also after a
// recovery step that perturbs the surviving weights), the schedule is cubic, the last round
// reaches the target exactly.
TEST(Prune, RoundsNeverReviveAPrunedWeight) {
  const Model m = LoadModel(assets::kStoriesGguf);
  for (PruneMethod method : {PruneMethod::kMagnitude, PruneMethod::kWanda, PruneMethod::kSparseGpt}) {
    PruneOptions o;
    o.method = method;
    o.sparsity = 0.6;
    o.rounds = 3;
    o.samples = &Samples(m);
    std::vector<std::vector<uint8_t>> before;  // zeros of blk.2.ffn_up after each round
    int calls = 0;
    o.recovery = [&](int round, Model& model) {
      EXPECT_EQ(round, ++calls);
      // A stand-in for recovery: scale every surviving weight, so later rounds see changed weights.
      const Tensor& t = model.weights.Get("blk.2.ffn_up.weight");
      std::vector<float> w = DequantizeAll(t);
      std::vector<uint8_t> z(w.size());
      for (size_t i = 0; i < w.size(); ++i) z[i] = w[i] == 0.0f, w[i] *= 1.0f + 0.01f * (float)(i % 7);
      before.push_back(z);
      model.weights.Set(MakeF32Tensor(t.name, {t.ne[0], t.ne[1]}, w));
    };
    PruneSummary sum;
    const Model p = PruneModel(m, o, &sum);
    EXPECT_EQ(calls, 2);
    ASSERT_EQ(sum.round_sparsity.size(), 3u);
    EXPECT_DOUBLE_EQ(sum.round_sparsity[2], 0.6);
    const std::vector<float> final_w = Values(p, "blk.2.ffn_up.weight");
    for (const auto& z : before)
      for (size_t i = 0; i < z.size(); ++i)
        if (z[i]) {
          EXPECT_EQ(final_w[i], 0.0f) << PruneMethodName(method) << " weight " << i;
        }
    ASSERT_EQ(before.size(), 2u);
    const int64_t z1 = std::accumulate(before[0].begin(), before[0].end(), (int64_t)0);
    const int64_t z2 = std::accumulate(before[1].begin(), before[1].end(), (int64_t)0);
    EXPECT_LT(z1, z2);
    // Per-row (wanda) or per-block (sparsegpt) rounding, and earlier zeros beyond a block's count.
    for (const MatrixPruneInfo& mi : sum.matrices) EXPECT_NEAR(mi.sparsity(), 0.6, 1.0 / 64) << mi.name;
  }
}

// A pruned model quantized to a format with an exact zero keeps every zero: q8_0 and q4_0 (and
// the fallback of rows no 32-block divides) by rtn and by the mse scale search, and as prune's
// own output type; a format whose grid has no exact zero is refused.
TEST(Prune, QuantizingAPrunedModelKeepsItsZeros) {
  const Model m = LoadModel(assets::kStoriesGguf);
  PruneOptions o;
  o.method = PruneMethod::kWanda;
  o.sparsity = 0.5;
  o.samples = &Samples(m);
  const Model p = PruneModel(m, o);
  for (const char* type : {"q8_0", "q4_0"}) {
    for (QuantMethod qm : {QuantMethod::kRtn, QuantMethod::kMse}) {
      QuantizeOptions q;
      q.rules = ParseTypeRules(std::string("*=") + type);
      q.method = qm;
      const Model qmodel = QuantizeModel(p, q);
      for (const Tensor& t : p.weights.all()) {
        if (!t.name.starts_with("blk.") || t.n_dims != 2) continue;
        const std::vector<float> a = DequantizeAll(t), b = Values(qmodel, t.name);
        int64_t revived = 0;
        for (size_t i = 0; i < a.size(); ++i) revived += a[i] == 0.0f && b[i] != 0.0f;
        EXPECT_EQ(revived, 0) << type << " " << QuantMethodName(qm) << " " << t.name;
      }
    }
  }
  o.type = DType::kQ4_0;
  PruneSummary sum;
  PruneModel(m, o, &sum);
  for (const MatrixPruneInfo& mi : sum.matrices) {
    EXPECT_GE(mi.zeros, mi.parameters / 2) << mi.name;  // rounding may zero a few more
    EXPECT_EQ(mi.to, FallbackType(DType::kQ4_0, m.weights.Get(mi.name).ne[0])) << mi.name;
  }
  o.type = DType::kQ4_1;  // offset grids: zero is not exact
  EXPECT_NE(ErrorOf([&] { PruneModel(m, o); }).find("exactly zero"), std::string::npos);
}

// OWL on stories260K: per-block targets within ±λ whose parameter-weighted mean is the target;
// the counts reached match the targets to rounding.
TEST(Prune, OwlMeanSparsityEqualsTheTarget) {
  const Model m = LoadModel(assets::kStoriesGguf);
  PruneOptions o;
  o.method = PruneMethod::kWanda;
  o.allocation = PruneAllocation::kOwl;
  o.sparsity = 0.5;
  o.owl.lambda = 0.1;
  o.samples = &Samples(m);
  PruneSummary sum;
  PruneModel(m, o, &sum);
  ASSERT_EQ(sum.owl_outlier_ratio.size(), 5u);
  double weighted = 0, params = 0, lo = 1, hi = 0;
  for (const MatrixPruneInfo& mi : sum.matrices) {
    weighted += mi.target * (double)mi.parameters, params += (double)mi.parameters;
    lo = std::min(lo, mi.target), hi = std::max(hi, mi.target);
    EXPECT_LE(std::abs(mi.target - 0.5), 0.1 + 1e-12) << mi.name;
    EXPECT_NEAR(mi.sparsity(), mi.target, 0.5 / (double)mi.parameters + 1e-12) << mi.name;
  }
  EXPECT_NEAR(weighted / params, 0.5, 1e-12);
  // Reached: each matrix to within half a weight of its target.
  EXPECT_NEAR((double)sum.zeros() / params, 0.5, 0.5 * (double)sum.matrices.size() / params);
  EXPECT_GT(hi - lo, 0.05);  // the blocks differ
}

// Global allocation with magnitude is global magnitude pruning: one threshold over all matrices.
TEST(Prune, GlobalMagnitudeUsesOneThreshold) {
  const Model m = LoadModel(assets::kStoriesGguf);
  PruneOptions o;
  o.allocation = PruneAllocation::kGlobal;
  o.sparsity = 0.4;
  PruneSummary sum;
  const Model p = PruneModel(m, o, &sum);
  float largest_pruned = 0, smallest_kept = INFINITY;
  for (const MatrixPruneInfo& mi : sum.matrices) {
    const std::vector<float> a = Values(m, mi.name), b = Values(p, mi.name);
    for (size_t i = 0; i < a.size(); ++i) {
      if (b[i] == 0.0f) {
        largest_pruned = std::max(largest_pruned, std::abs(a[i]));
      } else {
        smallest_kept = std::min(smallest_kept, std::abs(a[i]));
      }
    }
  }
  EXPECT_LE(largest_pruned, smallest_kept);
  EXPECT_EQ(sum.zeros(), std::llround(0.4 * (double)sum.parameters()));
}

// The head and the embedding stay dense unless asked: the head then by the method (Wanda, on
// the head's inputs), the embedding by magnitude (no projection reads it).
TEST(Prune, HeadAndEmbeddingOnlyWhenAsked) {
  const Model m = LoadModel(assets::kStoriesGguf);
  ASSERT_TRUE(m.weights.Contains("output.weight"));  // untied
  PruneOptions o;
  o.method = PruneMethod::kWanda;
  o.sparsity = 0.5;
  o.samples = &Samples(m);
  o.prune_head = true;
  o.prune_embeddings = true;
  PruneSummary sum;
  const Model p = PruneModel(m, o, &sum);
  ASSERT_EQ(sum.matrices.size(), 7u * 5u + 2u);
  for (const char* name : {"output.weight", "token_embd.weight"}) {
    const Tensor& t = p.weights.Get(name);
    EXPECT_EQ(CountZeros(t), t.nelements() / 2) << name;
  }
  // The embedding by magnitude: its mask is the matrix-wide magnitude mask.
  const std::vector<float> e = Values(m, "token_embd.weight");
  const Tensor& te = m.weights.Get("token_embd.weight");
  const std::vector<uint8_t> mask = SelectMask(PruneScores(e.data(), te.nrows(), te.ne[0], nullptr), te.nrows(),
                                               te.ne[0], 0.5, false, {});
  const std::vector<float> pe = Values(p, "token_embd.weight");
  for (size_t i = 0; i < pe.size(); ++i) EXPECT_EQ(pe[i] == 0.0f, mask[i] == 1) << i;
}

TEST(Prune, BadOptionsNameTheProblem) {
  const Model m = LoadModel(assets::kStoriesGguf);
  auto error = [&](PruneOptions o) { return ErrorOf([&] { PruneTargets(m, o); }); };
  PruneOptions o;
  o.sparsity = 1.0;
  EXPECT_NE(error(o).find("outside [0, 1)"), std::string::npos);
  o.sparsity = -0.1;
  EXPECT_NE(error(o).find("outside [0, 1)"), std::string::npos);
  o = {};
  o.pattern = {4, 8};  // ffn_down's rows hold 172 values
  EXPECT_NE(error(o).find("ffn_down"), std::string::npos);
  o.pattern = {4, 4};
  EXPECT_NE(error(o).find("0 < N < M"), std::string::npos);
  o = {};
  o.method = PruneMethod::kWanda;
  EXPECT_NE(error(o).find("calibration"), std::string::npos);
  o = {};
  o.allocation = PruneAllocation::kOwl;
  EXPECT_NE(error(o).find("calibration"), std::string::npos);
  o = {};
  o.pattern = {2, 4};
  o.rounds = 2;
  EXPECT_NE(error(o).find("rounds"), std::string::npos);
}

}  // namespace
}  // namespace smelt
