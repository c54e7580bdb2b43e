#include "train/recover.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "compress/prune.h"
#include "core/mapped_file.h"
#include "formats/types.h"
#include "io/load.h"
#include "shared_assets.h"

namespace smelt::train {
namespace {

Dataset TrainPrefix(const Model& m) {
  DataOptions d;
  d.seq = 64;
  d.val_frac = 0.1;
  return Dataset::FromText(m.vocab, ReadFileToString(assets::kTrainText).substr(0, 200000), "prefix", d);
}

TrainOptions Short(int64_t steps) {
  TrainOptions o;
  o.steps = steps;
  o.batch = 8;
  o.lr = 2e-3f;
  o.eval_batches = 4;
  return o;
}

// Recovery after pruning half of stories260K's block weights and its (tied) head: every pruned
// weight stays zero, the kept ones change, and the held-out loss falls back towards the dense
// model's.
TEST(TrainRecover, KeepsTheMaskAndLowersTheValidationLoss) {
  const Model dense = LoadModel(assets::kStoriesGguf);
  PruneOptions po;
  po.sparsity = 0.5;
  po.prune_head = true;
  const std::vector<std::string> targets = PruneTargets(dense, po);
  PruneSummary sum;
  const Model pruned = PruneModel(dense, po, &sum);
  ASSERT_EQ(sum.matrices.size(), targets.size());
  EXPECT_TRUE(std::any_of(targets.begin(), targets.end(), [](const std::string& n) { return !n.starts_with("blk."); }));
  const Dataset data = TrainPrefix(dense);
  const RecoveryResult r = RecoverPruned(pruned, data, Short(12), {}, targets);
  int64_t zeros = 0;
  for (const MatrixPruneInfo& mi : sum.matrices) {
    const int64_t after = CountZeros(r.model.weights.Get(mi.name));
    EXPECT_EQ(after, mi.zeros) << mi.name;  // no weight revived, none newly zero
    zeros += mi.zeros;
    const std::vector<float> before = DequantizeAll(pruned.weights.Get(mi.name));
    EXPECT_NE(before, DequantizeAll(r.model.weights.Get(mi.name))) << mi.name;
  }
  EXPECT_EQ(r.masked, zeros);
  EXPECT_LT(r.val_after, r.val_before);
  std::printf("pruned 50 %%: validation loss %.4f -> %.4f after 12 recovery steps\n", r.val_before, r.val_after);
}

// As PruneOptions::recovery between gradual rounds: the final model has the target sparsity exactly
// and the hook saw every round but the last.
TEST(TrainRecover, RunsBetweenGradualPruningRounds) {
  const Model dense = LoadModel(assets::kStoriesGguf);
  const Dataset data = TrainPrefix(dense);
  PruneOptions po;
  po.sparsity = 0.6;
  po.rounds = 3;
  std::vector<int> rounds;
  po.recovery = [&](int round, Model& m) {
    rounds.push_back(round);
    m = RecoverPruned(m, data, Short(3), {}, PruneTargets(dense, po)).model;
  };
  PruneSummary sum;
  const Model out = PruneModel(dense, po, &sum);
  EXPECT_EQ(rounds, (std::vector<int>{1, 2}));  // rounds count from 1
  for (const MatrixPruneInfo& mi : sum.matrices) {
    EXPECT_EQ(mi.zeros, std::llround(0.6 * (double)mi.parameters)) << mi.name;
    EXPECT_EQ(CountZeros(out.weights.Get(mi.name)), mi.zeros) << mi.name;
  }
}

}  // namespace
}  // namespace smelt::train
