#pragma once
// Quantization-aware training: the model trains through its own quantization, so the weights
// learn to sit where the stored format rounds well.
//
// FakeQuantizer replaces, around each micro-batch of the step (FakeQuantized, an Objective
// wrapper), every weight matrix that `smelt quantize`'s rules give a type (compress/rules.h:
// first matching glob, FallbackType when the block does not divide a row; 1-D tensors stay f32)
// by decode(encode(W)) with that format's own encoder and decoder (formats/types.h), so the
// trained forward pass computes what the exported file computes. The gradient with respect to
// the quantized weights goes to the f32 master weights unchanged (straight-through estimator),
// except where the encoder clipped a value: an element beyond the ends of its block's grid by
// more than half a step gets zero (formats/codes.h gives the grid; formats without code access
// pass every gradient). The master weights are restored after the micro-batch.
//
// Learned scales (LSQ, Esser et al., "Learned Step Size Quantization"), for q8_0 and q4_0
// matrices: each block's scale is s = s0·exp(θ), θ trained (AdamW, no decay) from
// ∂wq/∂s = q - w/s inside the grid and q at a clipped end, s0 the encoder's own scale; the
// block stores fp16(s) and codes round w/fp16(s) to the nearest in range, which is both the
// fake-quantized forward and the export.
//
// DistillObjective is the usual target: a frozen fp teacher's logits (train::Forward) matched
// by forward KL with temperature τ (train/soft_label.h), mixed with hard-label cross-entropy:
// loss = α·CE + (1 - α)·τ²·KL.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "compress/rules.h"
#include "model/model.h"
#include "train/optim.h"
#include "train/soft_label.h"
#include "train/trainer.h"

namespace smelt::train {

// One matrix the quantizer covers.
struct QatMatrix {
  std::string name;
  DType type = DType::kF32;    // what is stored (the rule's type or its fallback)
  DType wanted = DType::kF32;  // what the rule asked for
  size_t offset = 0;           // in the flat parameter vector
  int64_t rows = 0, cols = 0;
  bool learned = false;        // per-block learned scales
  size_t scale_offset = 0;     // its first block's θ in FakeQuantizer::log_scales()
};

class FakeQuantizer {
 public:
  // The matrices of m that `rules` quantize. learn_scales: learned scales for the q8_0 and q4_0
  // ones (others keep their encoder's scales). Throws Error when no matrix is covered.
  FakeQuantizer(const TrainModel& m, std::vector<TypeRule> rules, bool learn_scales);

  const std::vector<QatMatrix>& matrices() const { return matrices_; }
  const std::vector<TypeRule>& rules() const { return rules_; }

  // Saves the master weights and replaces every covered matrix by its quantize-dequantize
  // (also remembers the gradients so far and, per element, whether it was clipped).
  void Apply(TrainModel& m, int threads);
  // After the inner objective: restores the master weights, keeps only the unclipped part of
  // this micro-batch's gradient of each covered matrix and adds its scale gradients.
  void Restore(TrainModel& m);
  // One AdamW step of the learned scales at learning rate lr, then zeroes their gradients.
  void UpdateScales(float lr, int threads);

  // The encoded rows of covered matrix i for the weights w (rows·cols values): the bytes the
  // exported tensor holds.
  std::vector<uint8_t> Encode(size_t i, const float* w, int threads) const;
  // The quantized model of m's master weights: smelt quantize's output for the same rules
  // (round to nearest), with the learned-scale matrices encoded with their scales.
  Model Export(const TrainModel& m, int threads) const;

  std::vector<float>& log_scales() { return theta_; }
  const std::vector<float>& log_scales() const { return theta_; }
  const std::vector<float>& scale_grads() const { return theta_grad_; }
  // Elements whose gradient Restore zeroes in the last Apply, in all matrices.
  int64_t clipped() const;

 private:
  // Row r of matrix i encoded into dst; with clip/dq non-null also the per-element clip mask
  // and ∂wq/∂θ (learned scales only).
  void EncodeRow(const QatMatrix& q, int64_t r, const float* w, uint8_t* dst, uint8_t* clip, float* dq) const;

  std::vector<TypeRule> rules_;
  std::vector<QatMatrix> matrices_;
  std::vector<float> s0_, theta_, theta_grad_;  // per block of the learned matrices
  std::unique_ptr<AdamW> scale_adam_;
  // Per covered element, concatenated in matrix order: master weight, gradient before the
  // micro-batch, clip mask, ∂wq/∂θ (learned matrices only, else unused).
  std::vector<float> master_, grad_before_, dwq_dtheta_;
  std::vector<uint8_t> clip_;
  bool applied_ = false;
};

// `inner` run on the fake-quantized weights (Apply, inner, Restore). The quantizer is shared
// with the caller, which calls UpdateScales after each step when scales are learned.
Objective FakeQuantized(std::shared_ptr<FakeQuantizer> fq, Objective inner);

struct DistillTarget {
  float alpha = 0.0f;     // weight of hard-label cross-entropy; 1 - α on the soft labels
  SoftLabelOptions soft;  // divergence (forward KL) and temperature
};
// α·CE + (1 - α)·τ²·KL(teacher ‖ student) summed over a micro-batch's scored targets. The
// teacher is frozen (its gradients are never touched) and must have the student's vocabulary
// size (Error otherwise).
Objective DistillObjective(std::shared_ptr<const TrainModel> teacher, const DistillTarget& target);

// MeasureKlCe (train/distill.h) measures the model with its quantizer Applied.

}  // namespace smelt::train
