#pragma once
// Data schedules of a training or distillation run: a curriculum (sequences served easy to hard
// by the teacher's loss, optionally paced) and knowledge replay (a share of original-domain
// sequences mixed into a new-domain corpus, with the forgetting it prevents measured).
//
// Both are Dataset::Order functions of the micro-batch position only, so runs stay reproducible
// and resumable exactly as with the default shuffle.
#include <cstdint>
#include <span>
#include <vector>

#include "train/data.h"
#include "train/model.h"

namespace smelt::train {

// ---- curriculum -------------------------------------------------------------------------------
// The model's mean next-token cross-entropy on each training sequence of `data` (index i is
// train_starts()[i]), run `batch` sequences at a time.
std::vector<double> SequenceLosses(const TrainModel& model, const Dataset& data, int64_t batch, int threads);

// Sequence indices ordered by loss, lowest first; equal losses keep index order.
std::vector<int64_t> EasyToHard(std::span<const double> losses);

// Competence-based pacing (Platanios et al. 2019, "Competence-based Curriculum Learning"): at
// optimizer step s the pool is the easiest c(s) of the sequences, with the square-root
// schedule c(s) = min(1, sqrt(s·(1 - c0²)/S + c0²)): c0 at the start, everything from step S.
struct Pacing {
  double c0 = 1.0;     // initial competence in (0, 1]; 1: no pacing
  int64_t steps = 0;   // S, the step at which every sequence is in the pool
};
double Competence(const Pacing& pacing, int64_t step);

// The curriculum as a Dataset::Order for batches of `sequences_per_step` sequences per
// optimizer step (batch · accumulation). Without pacing, each epoch walks `easy_to_hard` in
// order. With pacing, position p of step s = p / sequences_per_step draws uniformly (seeded by
// seed and p) from the first ceil(c(s) · n) entries. Throws Error for c0 outside (0, 1], a
// negative S or an empty order.
Dataset::Order CurriculumOrder(std::vector<int64_t> easy_to_hard, const Pacing& pacing, int64_t sequences_per_step,
                               uint64_t seed);

// ---- knowledge replay -------------------------------------------------------------------------
// Whether position p of a replay mix holds an original-domain sequence: the first P positions
// hold exactly floor(share · P) of them, spread evenly (p is one when floor(share·(p+1)) >
// floor(share·p)).
bool IsReplayPosition(int64_t p, double share);

// A dataset of `fresh`'s training sequences with a share of `original`'s mixed in: position p
// takes original-domain sequence number floor(share·p) when IsReplayPosition(p), fresh-domain
// number p - floor(share·p) otherwise, each stream in its own seeded per-epoch shuffle. It has
// no validation split: validate on `fresh` and measure forgetting on `original`. Throws Error for
// a share outside [0, 1) or different sequence lengths.
Dataset ReplayMix(const Dataset& fresh, const Dataset& original, double share, uint64_t seed);

// Mean next-token loss over a dataset's validation sequences (`batch` at a time, at most
// max_batches batches, 0: all); throws Error when it has none.
double ValidationLoss(const TrainModel& model, const Dataset& data, int64_t batch, int64_t max_batches, int threads);

// Forgetting of the original domain: its validation loss before and after training on another.
struct Forgetting {
  double before = 0.0, after = 0.0;
  double increase() const { return after - before; }
};

}  // namespace smelt::train
