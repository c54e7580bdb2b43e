// The mixed-precision allocator against exhaustive search on small random instances.
#include "compress/allocate.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/error.h"

namespace smelt {
namespace {

using Items = std::vector<std::vector<AllocOption>>;

Items RandomItems(std::mt19937& rng, bool monotone) {
  std::uniform_int_distribution<int> n_items(1, 6), n_opts(1, 5), bytes(1, 60);
  std::uniform_real_distribution<double> damage(0.0, 10.0);
  Items items(n_items(rng));
  for (auto& opts : items) {
    opts.resize(n_opts(rng));
    for (AllocOption& o : opts) o = {(uint64_t)bytes(rng), damage(rng)};
    if (monotone) {  // like real candidates: more bytes, less damage
      std::sort(opts.begin(), opts.end(), [](auto& a, auto& b) { return a.bytes < b.bytes; });
      std::vector<double> d;
      for (auto& o : opts) d.push_back(o.damage);
      std::sort(d.rbegin(), d.rend());
      for (size_t k = 0; k < opts.size(); ++k) opts[k].damage = d[k];
    }
  }
  return items;
}

uint64_t Sum(const Items& items, bool largest) {
  uint64_t s = 0;
  for (const auto& opts : items) {
    uint64_t m = opts[0].bytes;
    for (const AllocOption& o : opts) m = largest ? std::max(m, o.bytes) : std::min(m, o.bytes);
    s += m;
  }
  return s;
}

TEST(Allocate, WithinTheHullGapOfTheOptimumAndAlwaysWithinBudget) {
  std::mt19937 rng(7);
  int exact = 0, total = 0;
  for (int trial = 0; trial < 600; ++trial) {
    const Items items = RandomItems(rng, trial % 2 == 0);
    const uint64_t lo = Sum(items, false), hi = Sum(items, true);
    const uint64_t budget = std::uniform_int_distribution<uint64_t>(lo, hi + 5)(rng);
    const Allocation g = AllocateBits(items, budget), best = AllocateExhaustive(items, budget);
    // The reported totals are those of the picks.
    uint64_t bytes = 0;
    double damage = 0;
    for (size_t i = 0; i < items.size(); ++i) bytes += items[i][g.pick[i]].bytes, damage += items[i][g.pick[i]].damage;
    ASSERT_EQ(bytes, g.bytes);
    ASSERT_NEAR(damage, g.damage, 1e-9 * (1 + std::abs(damage)));
    ASSERT_LE(g.bytes, budget) << "trial " << trial;
    ASSERT_LE(best.bytes, budget);
    const double tol = 1e-9 * (1 + best.damage);
    EXPECT_GE(g.damage, best.damage - tol) << "trial " << trial << ": better than the exhaustive optimum";
    EXPECT_LE(g.damage, best.damage + AllocationHullGap(items) + tol) << "trial " << trial;
    exact += g.damage <= best.damage + tol;
    ++total;
  }
  std::printf("greedy + fill optimal on %d of %d random instances\n", exact, total);
  EXPECT_GT(exact, total / 2);  // the bound is loose; the fill step usually closes the gap
}

TEST(Allocate, AmpleBudgetTakesTheLeastDamageAndTightBudgetTheSmallest) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 50; ++trial) {
    const Items items = RandomItems(rng, true);
    const Allocation all = AllocateBits(items, Sum(items, true));
    const Allocation none = AllocateBits(items, Sum(items, false));
    EXPECT_NEAR(all.damage, AllocateExhaustive(items, Sum(items, true)).damage, 1e-9);
    EXPECT_EQ(none.bytes, Sum(items, false));
    EXPECT_NEAR(none.damage, AllocateExhaustive(items, Sum(items, false)).damage, 1e-9);
  }
}

TEST(Allocate, InfeasibleBudgetThrows) {
  const Items items = {{{10, 1.0}, {20, 0.5}}, {{5, 2.0}}};
  EXPECT_THROW(AllocateBits(items, 14), Error);
  EXPECT_THROW(AllocateExhaustive(items, 14), Error);
  EXPECT_EQ(AllocateBits(items, 15).bytes, 15u);
}

TEST(Allocate, PlanCountsBitsPerWeightOverTheAllocatedMatrices) {
  std::vector<MatrixSensitivity> table(2);
  table[0] = {"a", 64, true, {{DType::kQ4_0, DType::kQ4_0, 36, 3.0, 0}, {DType::kQ8_0, DType::kQ8_0, 68, 1.0, 0}}};
  table[1] = {"b", 64, true, {{DType::kQ4_0, DType::kQ4_0, 36, 1.5, 0}, {DType::kQ8_0, DType::kQ8_0, 68, 1.0, 0}}};
  // 6.5 bits over 128 weights = 104 bytes: one matrix can be q8_0, and "a" gains more from it.
  EXPECT_EQ(BudgetForBitsPerWeight(table, 6.5), 104u);
  const MixedPlan p = PlanMixedPrecision(table, BudgetForBitsPerWeight(table, 6.5));
  EXPECT_EQ(p.tensors[0].type, DType::kQ8_0);
  EXPECT_EQ(p.tensors[1].type, DType::kQ4_0);
  EXPECT_DOUBLE_EQ(p.bits_per_weight(), 8.0 * 104 / 128);
  const std::vector<TypeRule> rules = p.Rules();
  ASSERT_EQ(rules.size(), 2u);
  EXPECT_EQ(rules[0].glob, "a");
  EXPECT_EQ(*rules[0].type, DType::kQ8_0);
  EXPECT_THROW(PlanMixedPrecision(table, 71), Error);
}

}  // namespace
}  // namespace smelt
