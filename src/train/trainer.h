#pragma once
// The training loop's step: gradient accumulation over micro-batches, global-norm clipping, the
// learning-rate schedule and AdamW, with deterministic data order (train/data.h). Everything a
// step depends on is in TrainModel, AdamW and Trainer's counters, which is what a checkpoint
// holds (train/checkpoint.h), so a resumed run repeats a straight run's losses bit for bit (on
// the same machine and thread count).
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "train/data.h"
#include "train/model.h"
#include "train/optim.h"

namespace smelt::train {

struct TrainOptions {
  int64_t steps = 100;     // optimizer steps in the run (the schedule's length)
  int64_t batch = 8;       // sequences per micro-batch
  int64_t accum = 1;       // micro-batches per optimizer step
  float lr = 1e-3f;
  int64_t warmup = 0;
  float min_lr_ratio = 0.1f;
  float clip = 1.0f;       // global gradient norm limit (0: none)
  AdamWOptions adam;
  int64_t eval_batches = 8;  // validation batches per evaluation (0: all)
  int threads = 1;           // OpenMP threads of the ops and OpenBLAS threads of the GEMMs
};

struct StepStats {
  int64_t step = 0;         // 1-based number of the step just taken
  double loss = 0.0;        // mean training loss over the step's scored targets
  double grad_norm = 0.0;   // before clipping
  float lr = 0.0f;
  int64_t tokens = 0;       // tokens processed (inputs of every micro-batch)
};

// What the step minimises on one micro-batch: returns the sum of its loss terms and adds
// grad_scale · ∂(sum)/∂params to m's gradients. The default is next-token cross-entropy
// (ForwardBackward); distillation (train/distill.h) and quantization-aware training supply
// their own. `scored` is the number of units the sum runs over (the step divides by the total).
using Objective = std::function<double(TrainModel& m, const Batch& b, float grad_scale, Workspace& ws, int threads)>;

// Sums a step's gradients, loss and scored count over data-parallel workers before the update
// (train/mpi.h); every worker then takes the same step. A single process needs none. Worker
// rank() of ranks() trains on its slice of every global micro-batch (Dataset::TrainBatch), and
// every sum must come out the same on all workers so that their parameters stay identical.
class GradientReducer {
 public:
  virtual ~GradientReducer() = default;
  virtual int rank() const { return 0; }
  virtual int ranks() const { return 1; }
  virtual int64_t SumCount(int64_t local) = 0;
  virtual double SumValue(double local) = 0;
  virtual void SumInPlace(std::span<float> values) = 0;
};

class Trainer {
 public:
  Trainer(TrainModel model, const TrainOptions& opt);

  // One optimizer step on micro-batches micro_batches() ... + accum - 1 of `data`.
  StepStats Step(const Dataset& data);
  // Mean loss over the validation batches (options().eval_batches of them; with a reducer,
  // batches of ranks · batch sequences, each worker scoring its slice).
  double ValLoss(const Dataset& data);

  const TrainModel& model() const { return model_; }
  TrainModel& model() { return model_; }
  const TrainOptions& options() const { return opt_; }
  const AdamW& optimizer() const { return adam_; }
  int64_t step() const { return step_; }
  int64_t micro_batches() const { return micro_; }  // the data position
  const std::vector<float>& losses() const { return losses_; }  // mean loss of each step so far
  LrSchedule schedule() const;
  void set_threads(int threads) { opt_.threads = threads; }
  // Replaces the cross-entropy objective (see Objective).
  void set_objective(Objective objective) { objective_ = std::move(objective); }
  // Sums every step over data-parallel workers (not owned; null: one process).
  void set_reducer(GradientReducer* reducer) { reducer_ = reducer; }
  const Objective& objective() const { return objective_; }
  GradientReducer* reducer() const { return reducer_; }

  // Restores the counters and optimizer state saved in a checkpoint.
  void Restore(int64_t step, int64_t micro_batches, std::vector<float> losses, std::vector<float> adam_m,
               std::vector<float> adam_v);

 private:
  TrainModel model_;
  TrainOptions opt_;
  AdamW adam_;
  Workspace ws_;
  int64_t step_ = 0, micro_ = 0;
  std::vector<float> losses_;
  Objective objective_;
  GradientReducer* reducer_ = nullptr;
};

}  // namespace smelt::train
