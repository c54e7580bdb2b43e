#pragma once
// SmoothQuant (Xiao et al. 2023, "SmoothQuant: Accurate and Efficient Post-Training Quantization
// for Large Language Models"): int8 activations fail on LLMs because a few input channels carry
// activations 10-100× larger than the rest, and one per-token scale must cover them. SmoothQuant
// divides each input channel c by
//   s_c = max|X_c|^α / max|W_c|^(1−α)      (max|W_c| over every weight reading that input)
// and multiplies the weights' column c by s_c, folding 1/s into the op that produces the input
// (the same groups and folding as AWQ, compress/awq.h). The model computes the same function;
// with α = 0.5 both sides of every channel end up with the same range sqrt(max|X_c|·max|W_c|),
// which moves the activation outliers' difficulty into the weights, where per-channel scales
// absorb it. Pair it with the w8a8 type (per-channel int8 weights, dynamic per-token int8
// activations; formats/per_channel.h) for the paper's W8A8 scheme.
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "compress/activation_stats.h"
#include "compress/awq.h"
#include "model/model.h"

namespace smelt {

// s_c as above; channels where either maximum is zero (never driven, or all-zero weights) keep
// s_c = 1, and s is clamped to [1e-5, 1e5].
std::vector<float> SmoothQuantScale(std::span<const float> act_max, std::span<const float> weight_max, float alpha);

struct SmoothGroupChoice {
  AwqGroup group;
  bool smoothed = false;  // false: skipped (a member or the producing matrix is not re-encoded)
  // max over channels of max|X_c| / min over channels of max|X_c| (driven channels only), before
  // and after: how much the outlier channels stand out from the rest.
  double act_spread_before = 0, act_spread_after = 0;
};

struct SmoothQuantResult {
  Model model;            // the input with the scales folded in (those tensors f32)
  ActivationStats stats;  // the statistics of the smoothed model's inputs (x_c / s_c)
  std::vector<SmoothGroupChoice> groups;
};

// Smooths every group of `model` (AwqGroups) whose weights and producing matrix `target` re-encodes
// (nullopt: kept as is). `stats` need max |x| per column (collected by CollectActivationStats);
// the returned statistics are those of the smoothed inputs: Σx², Σ|x|, max|x| divided by s (s²),
// the Hessian by s_i·s_j. Throws Error naming the model and tensor for missing statistics.
SmoothQuantResult SmoothQuantModel(const Model& model, const ActivationStats& stats, float alpha,
                                   const std::function<std::optional<DType>(const Tensor&)>& target);

}  // namespace smelt
