#include "train/trainer.h"

#include "core/error.h"
#include "kernels/blas.h"

namespace smelt::train {

Trainer::Trainer(TrainModel model, const TrainOptions& opt)
    : model_(std::move(model)), opt_(opt), adam_(model_.params().size(), opt.adam) {
  if (opt.steps < 1 || opt.batch < 1 || opt.accum < 1 || opt.warmup < 0 || opt.threads < 1)
    Fail("training: steps {}, batch {}, accumulation {}, warmup {} and threads {} must be positive", opt.steps,
         opt.batch, opt.accum, opt.warmup, opt.threads);
  if (!(opt.lr > 0.0f) || !(opt.clip >= 0.0f) || !(opt.adam.weight_decay >= 0.0f))
    Fail("training: learning rate {} must be positive, clip {} and weight decay {} not negative", opt.lr, opt.clip,
         opt.adam.weight_decay);
}

LrSchedule Trainer::schedule() const { return {opt_.lr, opt_.warmup, opt_.steps, opt_.min_lr_ratio}; }

StepStats Trainer::Step(const Dataset& data) {
  const BlasThreads blas(1);  // the ops split their products over opt_.threads themselves
  const int rank = reducer_ ? reducer_->rank() : 0, ranks = reducer_ ? reducer_->ranks() : 1;
  std::vector<Batch> batches;
  int64_t scored = 0;
  for (int64_t k = 0; k < opt_.accum; ++k) {
    batches.push_back(data.TrainBatch(micro_ + k, opt_.batch, rank, ranks));
    scored += ScoredTargets(batches.back());
  }
  if (reducer_) scored = reducer_->SumCount(scored);
  if (scored == 0) Fail("training: step {} has no scored targets", step_ + 1);
  model_.ZeroGrad();
  StepStats s;
  double loss = 0.0;
  // Every micro-batch's gradient is scaled by 1 / (targets of the whole step): the sum is the
  // gradient of the step's mean loss, as if the micro-batches were one batch.
  for (const Batch& b : batches) {
    const float scale = (float)(1.0 / (double)scored);
    loss += objective_ ? objective_(model_, b, scale, ws_, opt_.threads)
                       : ForwardBackward(model_, b, scale, ws_, opt_.threads);
    s.tokens += b.B * b.T * ranks;  // every worker's batch has the same shape
  }
  if (reducer_) {
    reducer_->SumInPlace(model_.grads());
    loss = reducer_->SumValue(loss);
  }
  s.grad_norm = ClipGradNorm(model_.grads(), opt_.clip);
  s.lr = schedule().At(step_);
  adam_.Step(model_.params(), model_.grads(), model_.slices(), s.lr, opt_.threads);
  ++step_;
  micro_ += opt_.accum;
  s.step = step_;
  s.loss = loss / (double)scored;
  losses_.push_back((float)s.loss);
  return s;
}

double Trainer::ValLoss(const Dataset& data) {
  const BlasThreads blas(1);  // the ops split their products over opt_.threads themselves
  double loss = 0.0;
  int64_t scored = 0;
  const int rank = reducer_ ? reducer_->rank() : 0, ranks = reducer_ ? reducer_->ranks() : 1;
  for (const Batch& b : data.ValBatches(opt_.batch, opt_.eval_batches, rank, ranks)) {
    loss += Loss(model_, b, ws_, opt_.threads);
    scored += ScoredTargets(b);
  }
  if (reducer_) {
    loss = reducer_->SumValue(loss);
    scored = reducer_->SumCount(scored);
  }
  return scored ? loss / (double)scored : 0.0;
}

void Trainer::Restore(int64_t step, int64_t micro_batches, std::vector<float> losses, std::vector<float> adam_m,
                      std::vector<float> adam_v) {
  if (step < 0 || micro_batches < 0 || (int64_t)losses.size() != step)
    Fail("training state: step {}, data position {} and {} recorded losses disagree", step, micro_batches,
         losses.size());
  adam_.Restore(step, std::move(adam_m), std::move(adam_v));
  step_ = step;
  micro_ = micro_batches;
  losses_ = std::move(losses);
}

}  // namespace smelt::train
