#include "compress/allocate.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <queue>

#include "core/error.h"
#include "formats/types.h"

namespace smelt {
namespace {

// The indices of item's options on the lower convex hull of (bytes, damage), by increasing
// bytes (and so decreasing damage); dominated options are left out.
std::vector<int> LowerHull(const std::vector<AllocOption>& opts) {
  std::vector<int> order(opts.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) {
    return opts[a].bytes != opts[b].bytes ? opts[a].bytes < opts[b].bytes : opts[a].damage < opts[b].damage;
  });
  std::vector<int> pareto;  // strictly decreasing damage as bytes grow
  for (int i : order)
    if (pareto.empty() || opts[i].damage < opts[pareto.back()].damage) pareto.push_back(i);
  std::vector<int> hull;
  for (int i : pareto) {
    // Pop the last point while it lies on or above the segment from its predecessor to i.
    while (hull.size() >= 2) {
      const AllocOption &a = opts[hull[hull.size() - 2]], &b = opts[hull.back()], &c = opts[i];
      const double cross = ((double)b.bytes - (double)a.bytes) * (c.damage - a.damage) -
                           (b.damage - a.damage) * ((double)c.bytes - (double)a.bytes);
      if (cross > 0) break;  // b strictly below the chord a-c: keep it
      hull.pop_back();
    }
    hull.push_back(i);
  }
  return hull;
}

void CheckItems(const std::vector<std::vector<AllocOption>>& items, uint64_t budget) {
  uint64_t least = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].empty()) Fail("bit allocation: item {} has no options", i);
    uint64_t m = items[i][0].bytes;
    for (const AllocOption& o : items[i]) m = std::min(m, o.bytes);
    least += m;
  }
  if (least > budget)
    Fail("bit allocation: the budget of {} bytes is below the {} bytes of the smallest candidates", budget, least);
}

Allocation Total(const std::vector<std::vector<AllocOption>>& items, std::vector<int> pick) {
  Allocation a;
  for (size_t i = 0; i < items.size(); ++i) {
    a.bytes += items[i][pick[i]].bytes;
    a.damage += items[i][pick[i]].damage;
  }
  a.pick = std::move(pick);
  return a;
}

}  // namespace

Allocation AllocateBits(const std::vector<std::vector<AllocOption>>& items, uint64_t budget) {
  CheckItems(items, budget);
  const size_t n = items.size();
  std::vector<std::vector<int>> hulls(n);
  std::vector<size_t> at(n, 0);  // position on each hull
  std::vector<int> pick(n);
  uint64_t used = 0;
  for (size_t i = 0; i < n; ++i) {
    hulls[i] = LowerHull(items[i]);
    pick[i] = hulls[i][0];
    used += items[i][pick[i]].bytes;
  }
  // 2. Hull upgrades by damage saved per byte, best first. An item's steps have decreasing
  // efficiency along its (convex) hull, so the queue visits them in order; an item whose next
  // step does not fit is blocked, since its later steps are measured from that one.
  struct Step {
    double efficiency;
    size_t item;
    bool operator<(const Step& o) const { return efficiency < o.efficiency; }
  };
  auto step_of = [&](size_t i) {
    const AllocOption &a = items[i][hulls[i][at[i]]], &b = items[i][hulls[i][at[i] + 1]];
    return Step{(a.damage - b.damage) / (double)(b.bytes - a.bytes), i};
  };
  std::priority_queue<Step> queue;
  for (size_t i = 0; i < n; ++i)
    if (hulls[i].size() > 1) queue.push(step_of(i));
  while (!queue.empty()) {
    const size_t i = queue.top().item;
    queue.pop();
    const uint64_t add = items[i][hulls[i][at[i] + 1]].bytes - items[i][pick[i]].bytes;
    if (used + add > budget) continue;  // blocked
    used += add;
    pick[i] = hulls[i][++at[i]];
    if (at[i] + 1 < hulls[i].size()) queue.push(step_of(i));
  }
  // 3. Fill: the single change that saves the most damage and fits, until none does.
  for (;;) {
    double best_gain = 0;
    size_t best_i = n;
    int best_o = -1;
    for (size_t i = 0; i < n; ++i) {
      const AllocOption& cur = items[i][pick[i]];
      for (size_t o = 0; o < items[i].size(); ++o) {
        const AllocOption& c = items[i][o];
        if (used - cur.bytes + c.bytes > budget) continue;
        const double gain = cur.damage - c.damage;
        if (gain > best_gain) best_gain = gain, best_i = i, best_o = (int)o;
      }
    }
    if (best_i == n) break;
    used = used - items[best_i][pick[best_i]].bytes + items[best_i][best_o].bytes;
    pick[best_i] = best_o;
  }
  return Total(items, std::move(pick));
}

Allocation AllocateExhaustive(const std::vector<std::vector<AllocOption>>& items, uint64_t budget) {
  CheckItems(items, budget);
  std::vector<int> pick(items.size(), 0), best;
  double best_damage = 0;
  uint64_t best_bytes = 0;
  for (;;) {
    uint64_t bytes = 0;
    double damage = 0;
    for (size_t i = 0; i < items.size(); ++i) bytes += items[i][pick[i]].bytes, damage += items[i][pick[i]].damage;
    if (bytes <= budget &&
        (best.empty() || damage < best_damage || (damage == best_damage && bytes < best_bytes)))
      best = pick, best_damage = damage, best_bytes = bytes;
    size_t i = 0;  // next combination (odometer)
    while (i < items.size() && ++pick[i] == (int)items[i].size()) pick[i++] = 0;
    if (i == items.size()) break;
  }
  return Total(items, std::move(best));
}

double AllocationHullGap(const std::vector<std::vector<AllocOption>>& items) {
  double gap = 0;
  for (const auto& opts : items) {
    const std::vector<int> h = LowerHull(opts);
    for (size_t k = 0; k + 1 < h.size(); ++k) gap = std::max(gap, opts[h[k]].damage - opts[h[k + 1]].damage);
  }
  return gap;
}

std::vector<TypeRule> MixedPlan::Rules() const {
  std::vector<TypeRule> rules;
  for (const MixedChoice& c : tensors) rules.push_back(TypeRule{c.name, c.wanted});
  return rules;
}

uint64_t BudgetForBitsPerWeight(const std::vector<MatrixSensitivity>& table, double bpw) {
  double elements = 0;
  for (const MatrixSensitivity& m : table) elements += (double)m.elements;
  return (uint64_t)std::floor(bpw * elements / 8.0);
}

MixedPlan PlanMixedPrecision(const std::vector<MatrixSensitivity>& table, uint64_t budget) {
  std::vector<std::vector<AllocOption>> items;
  uint64_t least = 0;
  int64_t elements = 0;
  for (const MatrixSensitivity& m : table) {
    std::vector<AllocOption> opts;
    uint64_t smallest = UINT64_MAX;
    for (const CandidateDamage& c : m.candidates) {
      opts.push_back({c.bytes, c.damage});
      smallest = std::min(smallest, c.bytes);
    }
    least += smallest;
    elements += m.elements;
    items.push_back(std::move(opts));
  }
  if (least > budget)
    Fail("target of {} bytes ({:.3f} bits/weight) is below the smallest candidates' {} bytes ({:.3f} bits/weight)",
         budget, elements ? 8.0 * (double)budget / (double)elements : 0.0, least,
         elements ? 8.0 * (double)least / (double)elements : 0.0);
  const Allocation a = AllocateBits(items, budget);
  MixedPlan plan;
  plan.budget = budget;
  for (size_t i = 0; i < table.size(); ++i) {
    const CandidateDamage& c = table[i].candidates[a.pick[i]];
    plan.tensors.push_back({table[i].name, c.wanted, c.type, table[i].elements, c.bytes, c.damage, c.sqnr_db});
    plan.elements += table[i].elements;
    plan.bytes += c.bytes;
    plan.damage += c.damage;
  }
  return plan;
}

}  // namespace smelt
