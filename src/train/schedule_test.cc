// Data schedules: the curriculum's order against a brute-force sort of per-sequence losses
// computed one sequence at a time, its pacing and determinism, and the replay mix's exact share.
#include "train/schedule.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>

#include "error_of.h"
#include "train/ops.h"
#include "train/trainer.h"

namespace smelt::train {
namespace {

using smelt::testing::ErrorOf;

std::vector<int32_t> RandomTokens(size_t n, int vocab, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> tok(0, vocab - 1);
  std::vector<int32_t> v(n);
  for (int32_t& t : v) t = tok(gen);
  return v;
}

// A stream whose sequences differ in difficulty: some repeat one token (easy after a little
// training, and for any model nearly as easy as its own top prediction), others are random.
Dataset MakeData(int64_t T, int64_t n, int vocab, uint32_t seed, double val_frac = 0.1) {
  std::vector<int32_t> tokens = RandomTokens((size_t)(n * (T + 1)), vocab, seed);
  DataOptions o;
  o.seq = T, o.val_frac = val_frac, o.seed = seed;
  return Dataset::FromTokens(std::move(tokens), "random", o);
}

ModelConfig TinyConfig() {
  ModelConfig c;
  c.name = "tiny";
  c.dim = 16, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.head_dim = 4, c.rope_dim = 4, c.ff = 24;
  c.vocab = 20, c.context = 64;
  return c;
}

// Which training sequence of `d` a batch row holds, found by its tokens.
int64_t SequenceOf(const Dataset& d, const Batch& b, int64_t row) {
  for (int64_t i = 0; i < d.train_sequences(); ++i) {
    const int64_t s = d.train_starts()[i];
    if (std::equal(b.inputs.begin() + row * b.T, b.inputs.begin() + (row + 1) * b.T, d.stream().begin() + s))
      return i;
  }
  return -1;
}

TEST(Curriculum, OrderIsABruteForceSortOfPerSequenceLosses) {
  const TrainModel m = TrainModel::FromScratch(TinyConfig(), Vocab{}, 4);
  const Dataset d = MakeData(12, 30, 20, 2);
  const std::vector<double> losses = SequenceLosses(m, d, 4, 2);
  ASSERT_EQ((int64_t)losses.size(), d.train_sequences());
  // Each loss as the mean loss of a batch of that sequence alone.
  Workspace ws;
  for (int64_t i = 0; i < d.train_sequences(); ++i) {
    const int64_t s = d.train_starts()[i];
    Batch b{1, d.seq(), {}, {}};
    b.inputs.assign(d.stream().begin() + s, d.stream().begin() + s + d.seq());
    b.targets.assign(d.stream().begin() + s + 1, d.stream().begin() + s + d.seq() + 1);
    const double want = Loss(m, b, ws, 1) / (double)d.seq();
    EXPECT_NEAR(losses[i], want, 1e-5 * want) << i;
  }
  // Brute force: (loss, index) pairs sorted; ties (made on purpose) keep index order.
  std::vector<double> tied = losses;
  tied[5] = tied[2], tied[9] = tied[2];
  for (const std::vector<double>& l : {losses, tied}) {
    std::vector<std::pair<double, int64_t>> pairs;
    for (size_t i = 0; i < l.size(); ++i) pairs.emplace_back(l[i], (int64_t)i);
    std::sort(pairs.begin(), pairs.end());
    const std::vector<int64_t> order = EasyToHard(l);
    ASSERT_EQ(order.size(), pairs.size());
    for (size_t i = 0; i < order.size(); ++i) EXPECT_EQ(order[i], pairs[i].second) << i;
  }
}

TEST(Curriculum, UnpacedBatchesWalkEasyToHard) {
  Dataset d = MakeData(8, 25, 20, 3);
  const TrainModel m = TrainModel::FromScratch(TinyConfig(), Vocab{}, 4);
  const std::vector<int64_t> order = EasyToHard(SequenceLosses(m, d, 8, 1));
  d.set_order(CurriculumOrder(order, Pacing{}, 4, 1));
  const int64_t n = d.train_sequences();
  for (int64_t k = 0; k < 12; ++k) {  // past one epoch
    const Batch b = d.TrainBatch(k, 4);
    for (int64_t j = 0; j < 4; ++j) EXPECT_EQ(SequenceOf(d, b, j), order[(k * 4 + j) % n]) << k << " " << j;
  }
}

TEST(Curriculum, PacingGrowsThePoolFromTheEasiestShare) {
  const Pacing p{0.2, 50};
  EXPECT_DOUBLE_EQ(Competence(p, 0), 0.2);
  EXPECT_DOUBLE_EQ(Competence(p, 50), 1.0);
  EXPECT_DOUBLE_EQ(Competence(p, 80), 1.0);
  EXPECT_NEAR(Competence(p, 25), std::sqrt(0.5 * (1 - 0.04) + 0.04), 1e-15);
  for (int64_t s = 1; s <= 50; ++s) EXPECT_GE(Competence(p, s), Competence(p, s - 1));

  std::vector<int64_t> order(40);
  for (int64_t i = 0; i < 40; ++i) order[i] = (i * 17) % 40;  // some permutation
  const int64_t per_step = 6;
  const Dataset::Order a = CurriculumOrder(order, p, per_step, 7), same = CurriculumOrder(order, p, per_step, 7),
                       other = CurriculumOrder(order, p, per_step, 8);
  std::map<int64_t, int64_t> rank;
  for (int64_t i = 0; i < 40; ++i) rank[order[i]] = i;
  int differ = 0;
  std::set<int64_t> late;
  for (int64_t pos = 0; pos < 60 * per_step; ++pos) {
    const int64_t s = pos / per_step, pool = (int64_t)std::ceil(Competence(p, s) * 40);
    const int64_t i = a(pos);
    EXPECT_LT(rank[i], pool) << "position " << pos;
    EXPECT_EQ(i, same(pos));
    differ += i != other(pos);
    if (s >= 50) late.insert(i);
  }
  EXPECT_GT(differ, 0);
  // The first step only sees the easiest 8 of 40.
  for (int64_t pos = 0; pos < per_step; ++pos) EXPECT_LT(rank[a(pos)], 8);
  // Once competence is 1 every sequence can be drawn: 60 draws cover most of 40.
  EXPECT_GT(late.size(), 20u);
  EXPECT_NE(ErrorOf([&] { CurriculumOrder(order, Pacing{0.0, 10}, 4, 1); }).find("competence"), std::string::npos);
  EXPECT_NE(ErrorOf([&] { CurriculumOrder({}, Pacing{}, 4, 1); }).find("no training"), std::string::npos);
}

TEST(Replay, ShareIsExactInEveryPrefixAndEachStreamIsShuffledByEpoch) {
  const Dataset fresh = MakeData(8, 30, 20, 11), original = MakeData(8, 50, 20, 12);
  for (double share : {0.0, 0.25, 0.3, 0.5}) {
    const Dataset mix = ReplayMix(fresh, original, share, 5);
    EXPECT_EQ(mix.train_sequences(), fresh.train_sequences() + original.train_sequences());
    EXPECT_EQ(mix.val_sequences(), 0);
    const int64_t B = 4, batches = 40;
    int64_t replayed = 0;
    std::vector<int64_t> fresh_seen;
    for (int64_t k = 0; k < batches; ++k) {
      const Batch b = mix.TrainBatch(k, B);
      for (int64_t j = 0; j < B; ++j) {
        const int64_t p = k * B + j, f = SequenceOf(fresh, b, j), o = SequenceOf(original, b, j);
        ASSERT_TRUE(f >= 0 || o >= 0) << "position " << p << " holds a sequence of neither domain";
        if (o >= 0 && f < 0) ++replayed;
        if (f >= 0) fresh_seen.push_back(f);
        EXPECT_EQ(o >= 0 && f < 0, IsReplayPosition(p, share)) << p;
        EXPECT_EQ(replayed, (int64_t)std::floor(share * (double)(p + 1))) << "share " << share << " after " << p + 1;
      }
    }
    // The first epoch of fresh positions is a permutation of the fresh sequences.
    const int64_t nf = fresh.train_sequences();
    ASSERT_GE((int64_t)fresh_seen.size(), nf);
    std::set<int64_t> epoch(fresh_seen.begin(), fresh_seen.begin() + nf);
    EXPECT_EQ((int64_t)epoch.size(), nf) << share;
    // Deterministic: the same seed gives the same batches.
    EXPECT_EQ(ReplayMix(fresh, original, share, 5).TrainBatch(7, B).inputs, mix.TrainBatch(7, B).inputs);
  }
  EXPECT_NE(ErrorOf([&] { ReplayMix(fresh, original, 1.0, 5); }).find("[0, 1)"), std::string::npos);
  EXPECT_NE(ErrorOf([&] { ReplayMix(fresh, MakeData(9, 20, 20, 1), 0.5, 5); }).find("cannot be mixed"),
            std::string::npos);
}

TEST(Replay, ValidationLossIsTheTrainersMeasure) {
  const Dataset d = MakeData(8, 30, 20, 11, 0.3);
  TrainOptions o;
  o.batch = 3, o.eval_batches = 2;
  Trainer t(TrainModel::FromScratch(TinyConfig(), Vocab{}, 2), o);
  EXPECT_DOUBLE_EQ(ValidationLoss(t.model(), d, 3, 2, 1), t.ValLoss(d));
  DataOptions none;
  none.seq = 8, none.val_frac = 0.0;
  const Dataset no_val = Dataset::FromTokens(RandomTokens(9 * 4, 20, 1), "x", none);
  EXPECT_NE(ErrorOf([&] { ValidationLoss(t.model(), no_val, 3, 0, 1); }).find("no validation"), std::string::npos);
}

}  // namespace
}  // namespace smelt::train
