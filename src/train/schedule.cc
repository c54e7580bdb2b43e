#include "train/schedule.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>

#include "core/error.h"
#include "kernels/blas.h"
#include "train/ops.h"
#include "train/rng.h"

namespace smelt::train {
namespace {

// Element k of the endless list formed by shuffles of 0..n-1, epoch e shuffled with a seed
// mixed with e (as Dataset's own order).
int64_t Shuffled(int64_t n, int64_t k, uint64_t seed) {
  std::vector<int64_t> perm((size_t)n);
  std::iota(perm.begin(), perm.end(), 0);
  Shuffle(perm, Rng(seed ^ (0x5851f42d4c957f2dull * (uint64_t)(k / n + 1))).Next());
  return perm[(size_t)(k % n)];
}

// The batch of sequences starting at `starts` in `stream` (T inputs, T next-token targets).
Batch SequencesAt(const std::vector<int32_t>& stream, std::span<const int64_t> starts, int64_t T) {
  Batch b{(int64_t)starts.size(), T, {}, {}};
  for (int64_t s : starts) {
    b.inputs.insert(b.inputs.end(), stream.begin() + s, stream.begin() + s + T);
    b.targets.insert(b.targets.end(), stream.begin() + s + 1, stream.begin() + s + T + 1);
  }
  return b;
}

}  // namespace

std::vector<double> SequenceLosses(const TrainModel& model, const Dataset& data, int64_t batch, int threads) {
  if (batch < 1) Fail("sequence losses: batch {} must be positive", batch);
  const std::vector<int64_t>& starts = data.train_starts();
  const int64_t T = data.seq(), V = model.config().vocab;
  std::vector<double> out;
  Workspace ws;
  const BlasThreads blas(1);  // the ops split their products over `threads` themselves
  for (size_t i = 0; i < starts.size(); i += (size_t)batch) {
    const size_t n = std::min(starts.size() - i, (size_t)batch);
    const Batch b = SequencesAt(data.stream(), std::span(starts).subspan(i, n), T);
    Forward(model, b, ws, threads);
    for (size_t s = 0; s < n; ++s) {
      const std::span<const int32_t> targets(b.targets.data() + s * T, (size_t)T);
      out.push_back(CrossEntropyLoss(ws.logits.data() + s * T * V, targets, V, threads) / (double)T);
    }
  }
  return out;
}

std::vector<int64_t> EasyToHard(std::span<const double> losses) {
  std::vector<int64_t> order(losses.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return losses[a] < losses[b]; });
  return order;
}

double Competence(const Pacing& p, int64_t step) {
  if (p.c0 >= 1.0 || step >= p.steps) return 1.0;
  const double c0sq = p.c0 * p.c0;
  return std::min(1.0, std::sqrt((double)step * (1.0 - c0sq) / (double)p.steps + c0sq));
}

Dataset::Order CurriculumOrder(std::vector<int64_t> easy_to_hard, const Pacing& pacing, int64_t sequences_per_step,
                               uint64_t seed) {
  if (easy_to_hard.empty()) Fail("curriculum: no training sequences to order");
  if (!(pacing.c0 > 0.0 && pacing.c0 <= 1.0) || pacing.steps < 0)
    Fail("curriculum pacing: initial competence {} must be in (0, 1] and the pacing steps {} not negative", pacing.c0,
         pacing.steps);
  if (sequences_per_step < 1) Fail("curriculum: {} sequences per step", sequences_per_step);
  auto order = std::make_shared<const std::vector<int64_t>>(std::move(easy_to_hard));
  const int64_t n = (int64_t)order->size();
  if (pacing.c0 >= 1.0) return [order, n](int64_t p) { return (*order)[(size_t)(p % n)]; };
  return [order, n, pacing, sequences_per_step, seed](int64_t p) {
    const double c = Competence(pacing, p / sequences_per_step);
    const int64_t pool = std::clamp<int64_t>((int64_t)std::ceil(c * (double)n), 1, n);
    Rng rng(seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(p + 1)));
    return (*order)[(size_t)rng.Below((uint64_t)pool)];
  };
}

bool IsReplayPosition(int64_t p, double share) {
  return std::floor(share * (double)(p + 1)) > std::floor(share * (double)p);
}

Dataset ReplayMix(const Dataset& fresh, const Dataset& original, double share, uint64_t seed) {
  if (!(share >= 0.0 && share < 1.0)) Fail("replay: the share of original-domain text must be in [0, 1), not {}", share);
  if (fresh.seq() != original.seq())
    Fail("replay: sequences of {} and {} tokens cannot be mixed", fresh.seq(), original.seq());
  const int64_t L = fresh.seq() + 1, nf = fresh.train_sequences(), no = original.train_sequences();
  std::vector<int32_t> stream;
  stream.reserve((size_t)((nf + no) * L));
  for (const Dataset* d : {&fresh, &original})
    for (int64_t s : d->train_starts()) stream.insert(stream.end(), d->stream().begin() + s, d->stream().begin() + s + L);
  DataOptions opt;
  opt.seq = fresh.seq();
  opt.val_frac = 0.0;
  opt.seed = seed;
  Dataset mix = Dataset::FromTokens(std::move(stream), "replay mix", opt);
  // Two seeds from one: the streams shuffle independently.
  const uint64_t seed_f = Rng(seed).Next(), seed_o = Rng(seed ^ 0xa0761d6478bd642full).Next();
  mix.set_order([nf, no, share, seed_f, seed_o](int64_t p) {
    const int64_t r = (int64_t)std::floor(share * (double)p);
    return IsReplayPosition(p, share) ? nf + Shuffled(no, r, seed_o) : Shuffled(nf, p - r, seed_f);
  });
  return mix;
}

double ValidationLoss(const TrainModel& model, const Dataset& data, int64_t batch, int64_t max_batches, int threads) {
  double loss = 0.0;
  int64_t scored = 0;
  Workspace ws;
  const BlasThreads blas(1);
  for (const Batch& b : data.ValBatches(batch, max_batches)) {
    loss += Loss(model, b, ws, threads);
    scored += ScoredTargets(b);
  }
  if (scored == 0) Fail("validation loss: the data has no validation sequence");
  return loss / (double)scored;
}

}  // namespace smelt::train
