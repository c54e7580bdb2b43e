#pragma once
// Soft-label distillation losses on logits: how far the student's next-token distribution is
// from the teacher's, with its gradient with respect to the student's logits.
//
// Both distributions are softened by a temperature τ: p = softmax(teacher / τ) and
// q = softmax(student / τ). The divergences, each multiplied by τ² so that gradient magnitudes
// do not shrink as τ grows (Hinton et al., "Distilling the Knowledge in a Neural Network"):
//   kForward       KL(p ‖ q)                      the classic distillation loss (mean-seeking)
//   kReverse       KL(q ‖ p)                      MiniLLM's choice (mode-seeking)
//   kSkewForward   KL(p ‖ λp + (1-λ)q)            DistiLLM's skew KL
//   kSkewReverse   KL(q ‖ λq + (1-λ)p)            DistiLLM's skew reverse KL
// λ = SoftLabelOptions::skew. Gradients are exact (checked against finite differences in
// soft_label_test.cc).
#include <cstdint>
#include <span>
#include <string>

namespace smelt::train {

enum class Divergence { kForward, kReverse, kSkewForward, kSkewReverse };

// "kl", "reverse-kl", "skew-kl", "skew-reverse-kl"; Parse throws Error for another name.
Divergence ParseDivergence(const std::string& name);
const char* DivergenceName(Divergence d);

struct SoftLabelOptions {
  Divergence divergence = Divergence::kForward;
  float temperature = 1.0f;  // τ > 0
  float skew = 0.1f;         // λ in [0, 1) of the skew divergences
};

// Sum over the rows whose target is not kIgnoreIndex (train/ops.h) of τ² · D(p_row, q_row);
// student and teacher logits are (N, V). When grad is not null, ADDS scale · ∂(sum)/∂student to
// it (N, V). Rows are independent and summed in order, so the result does not depend on
// `threads`. Throws Error for a temperature ≤ 0 or a skew outside [0, 1).
double SoftLabelLoss(const float* student, const float* teacher, std::span<const int32_t> targets, int64_t V,
                     const SoftLabelOptions& opt, float scale, float* grad, int threads);

}  // namespace smelt::train
