#pragma once
// Data-parallel training over MPI: every rank holds the whole model, trains on its slice of each
// global micro-batch (Dataset::TrainBatch with rank and ranks), and the gradients, losses and
// scored counts are summed over MPI_COMM_WORLD before each update, so every rank takes the same
// AdamW step and R ranks with batch B follow one process with batch R·B (up to the order of the
// float sums).
//
// Every sum is a reduction to rank 0 followed by a broadcast of rank 0's result, so all ranks
// hold bit-identical sums (an all-reduce may round differently on different ranks) and the
// result is the same from run to run for a given number of ranks. The caller (the CLI) starts
// and ends MPI; this file only talks over a world that is already running.
#include <cstdint>
#include <span>

#include "train/trainer.h"

namespace smelt::train {

class MpiReducer final : public GradientReducer {
 public:
  // Over MPI_COMM_WORLD; throws Error when MPI has not been initialised.
  MpiReducer();

  int rank() const override { return rank_; }
  int ranks() const override { return ranks_; }
  int64_t SumCount(int64_t local) override;
  double SumValue(double local) override;
  void SumInPlace(std::span<float> values) override;

  // Rank 0's value on every rank.
  bool Broadcast(bool value) const;
  // Makes every rank's trainer a copy of rank 0's: parameters, AdamW moments and step, data
  // position and recorded losses (rank 0 may have resumed from a checkpoint that only its
  // machine has, or loaded its starting model from its own files). Throws Error("rank R: ...")
  // on a rank whose model size or training data (fingerprint) differs from rank 0's.
  void SyncFromRoot(Trainer& t, uint64_t data_fingerprint) const;

 private:
  int rank_ = 0, ranks_ = 1;
};

}  // namespace smelt::train
