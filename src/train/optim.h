#pragma once
// AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization"), the learning-rate
// schedule (linear warmup, then cosine decay to a floor) and global-norm gradient clipping.
#include <cstdint>
#include <span>
#include <vector>

#include "train/model.h"

namespace smelt::train {

struct AdamWOptions {
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.1f;  // applied to slices with decay set (matrices), not norms or biases
};

// Per parameter: m ← β1 m + (1-β1) g; v ← β2 v + (1-β2) g²; m̂ = m / (1-β1^t), v̂ = v / (1-β2^t);
// w ← w - lr (m̂ / (sqrt(v̂) + eps) + wd · w), wd only where the slice decays; t counts steps
// from 1.
class AdamW {
 public:
  AdamW(size_t n, AdamWOptions opt) : opt_(opt), m_(n, 0.0f), v_(n, 0.0f) {}
  // One update of `params` with `grads` at learning rate lr; `slices` say which decay.
  void Step(std::span<float> params, std::span<const float> grads, const std::vector<ParamSlice>& slices, float lr,
            int threads);

  const AdamWOptions& options() const { return opt_; }
  int64_t step() const { return t_; }
  std::vector<float>& m() { return m_; }
  std::vector<float>& v() { return v_; }
  const std::vector<float>& m() const { return m_; }
  const std::vector<float>& v() const { return v_; }
  // Restores the state saved in a checkpoint (moment vectors must have the model's size).
  void Restore(int64_t step, std::vector<float> m, std::vector<float> v);

 private:
  AdamWOptions opt_;
  int64_t t_ = 0;
  std::vector<float> m_, v_;
};

struct LrSchedule {
  float lr = 1e-3f;          // peak
  int64_t warmup = 0;        // steps of linear warmup
  int64_t total = 1;         // steps in the run
  float min_lr_ratio = 0.1f; // the cosine ends at lr · min_lr_ratio
  // Learning rate at 0-based step s: lr·(s+1)/warmup during warmup, then
  // lr_min + (lr - lr_min)·(1 + cos(π·p))/2 with p = (s - warmup)/(total - warmup) in [0, 1].
  float At(int64_t step) const;
};

// The L2 norm of all gradients (accumulated in double); when it exceeds max_norm > 0, scales
// every gradient by max_norm / norm. Returns the norm before clipping.
double ClipGradNorm(std::span<float> grads, float max_norm);

}  // namespace smelt::train
