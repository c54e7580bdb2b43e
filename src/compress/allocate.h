#pragma once
// Mixed-precision bit allocation: each matrix offers a few candidate encodings, each with a size
// in bytes and a predicted damage (compress/sensitivity.h); pick one per matrix so that the total
// damage is least while the total size stays within a budget. That is a multiple-choice knapsack
// (NP-hard in general); AllocateBits solves its Lagrangian relaxation greedily and then fills:
//   1. per matrix, drop dominated candidates (no smaller and no less damaging) and keep the lower
//      convex hull of (bytes, damage): the points a Lagrange multiplier λ can select by
//      minimising damage + λ·bytes;
//   2. start every matrix at its smallest candidate; repeatedly take the hull upgrade with the
//      best damage saved per byte added that still fits (lowering λ step by step);
//   3. fill: while some single change of one matrix (any candidate, hull or not) fits the
//      remaining budget and lowers the damage, take the one that lowers it most.
// The result never exceeds the budget. Its damage is at most the optimum plus the largest single
// hull step (the damage saved by one upgrade of one matrix): the greedy walk stops within one
// step of the relaxation's optimum, which bounds the true optimum from below. AllocateExhaustive
// is the brute-force twin for small instances.
#include <cstdint>
#include <string>
#include <vector>

#include "compress/rules.h"
#include "compress/sensitivity.h"

namespace smelt {

struct AllocOption {
  uint64_t bytes = 0;
  double damage = 0;
};

struct Allocation {
  std::vector<int> pick;  // per item, the index of the chosen option
  uint64_t bytes = 0;
  double damage = 0;
};

// items[i] lists item i's options (at least one each). Throws Error when even the smallest
// option of every item together exceed `budget`.
Allocation AllocateBits(const std::vector<std::vector<AllocOption>>& items, uint64_t budget);

// The exact optimum by enumerating every combination (Π options; for tests). Ties go to the
// smaller total size. Throws Error when infeasible.
Allocation AllocateExhaustive(const std::vector<std::vector<AllocOption>>& items, uint64_t budget);

// The largest damage saved by one step along any item's lower convex hull: the bound on
// AllocateBits' distance from the optimum.
double AllocationHullGap(const std::vector<std::vector<AllocOption>>& items);

// --- matrices ------------------------------------------------------------------------------

struct MixedChoice {
  std::string name;
  DType wanted = DType::kF32, type = DType::kF32;  // the candidate chosen; what is written
  int64_t elements = 0;
  uint64_t bytes = 0;
  double damage = 0;
  double sqnr_db = 0;
};

struct MixedPlan {
  std::vector<MixedChoice> tensors;  // in the sensitivity table's order
  int64_t elements = 0;
  uint64_t bytes = 0, budget = 0;
  double damage = 0;  // predicted: Σ of the chosen candidates' damage
  // 8 · bytes / elements over the allocated matrices.
  double bits_per_weight() const { return elements ? 8.0 * (double)bytes / (double)elements : 0; }
  // One exact-name rule per matrix ("blk.0.attn_q.weight=q5_0"), for QuantizeOptions::rules.
  std::vector<TypeRule> Rules() const;
};

// The bytes `bpw` bits per weight allow over the table's matrices: floor(bpw · Σ elements / 8).
uint64_t BudgetForBitsPerWeight(const std::vector<MatrixSensitivity>& table, double bpw);

// AllocateBits over the table (each matrix's candidates as its options). Throws Error naming
// the budget and the least it could be when even the smallest candidates do not fit.
MixedPlan PlanMixedPrecision(const std::vector<MatrixSensitivity>& table, uint64_t budget);

}  // namespace smelt
