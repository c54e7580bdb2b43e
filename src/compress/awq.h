#pragma once
// AWQ (Lin et al. 2023, "AWQ: Activation-aware Weight Quantization for LLM Compression and
// Acceleration"): before quantizing, the weights that read one input are multiplied by a
// per-input-channel scale s (columns of W times s) and the op that produces that input is divided
// by s, so the model computes the same function but the channels that carry large activations
// are quantized on a finer relative grid.
//
// The scale is the reference implementation's: s = a^α with a the mean |x_c| over calibration
// inputs (clamped below at 1e-4), normalised by sqrt(max(s)·min(s)); α runs over i / grid for
// i = 0 .. grid-1. Each α is scored by the output error of the group's quantized weights on the
// calibration inputs, in Hessian form (exact, no stored activations):
//   loss(α) = Σ over the group's weights Σ_rows ΔW_r H ΔW_rᵀ,  ΔW = Q(W·diag(s))·diag(s)⁻¹ − W,
// with H = Σ x xᵀ of the unscaled input and Q the encoder the weight will be written with. α = 0
// (s = 1) is plain quantization, so the chosen α never loses to it on this loss.
// Cost: O(rows · C²) per α and weight, in plain loops (no BLAS yet).
//
// Groups of a Llama block (each folded into the op before it):
//   attn_norm → attn_q, attn_k, attn_v   (norm weight / s)
//   attn_v    → attn_output              (rows of attn_v and its bias / s); only without GQA, as
//                                         the reference does: a kv channel feeds several heads
//   ffn_norm  → ffn_gate, ffn_up         (norm weight / s)
//   ffn_up    → ffn_down                 (rows of ffn_up / s: silu(gate)·up is linear in up)
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "compress/activation_stats.h"
#include "core/tensor.h"
#include "model/model.h"

namespace smelt {

// How a weight is written after scaling: its type's reference encoder (from_float), or with
// `importance` the type's importance-weighted MSE encoder (from_float_weighted, where the type
// has one), AWQ's clipping search done by the format's own scale search.
struct AwqEncoder {
  DType type = DType::kF32;
  const float* importance = nullptr;  // (C) mean x_c² of the unscaled input; nullptr: from_float
};

// Σ_rows ΔW_r H ΔW_rᵀ with ΔW = Q(W·diag(s))·diag(s)⁻¹ − W. W: (OC, C) row-major f32; H: (C, C)
// row-major Σ x xᵀ of the unscaled input; s: (C) positive. With enc.importance the weighted
// encoder gets importance[c] / s[c]², the mean square of the scaled input x_c / s_c. Rows run on
// `threads` threads; the result does not depend on their number.
double AwqScaledLoss(const float* W, int64_t OC, int64_t C, const double* H, const float* s,
                     const AwqEncoder& enc, int threads);

// Q(W·diag(s))·diag(s)⁻¹: the weights the model computes with after scaling and encoding (OC·C).
std::vector<float> AwqScaledQuantize(const float* W, int64_t OC, int64_t C, const float* s,
                                     const AwqEncoder& enc, int threads);

// The scale for exponent α from mean |x| per channel (see above).
std::vector<float> AwqScale(std::span<const float> mean_abs, double alpha);

struct AwqOptions {
  int grid = 20;      // α = i / grid, i = 0 .. grid-1
  bool clip = false;  // encode with the importance-weighted MSE encoder (see AwqEncoder)
  int threads = 1;
};

// One weight of a group: (rows, C) f32 and the type it will be written as.
struct AwqMember {
  const float* w = nullptr;
  int64_t rows = 0;
  DType type = DType::kF32;
};

struct AwqSearchResult {
  double alpha = 0;     // i / grid
  double loss = 0;      // at alpha
  double loss_rtn = 0;  // at α = 0 (s = 1)
  std::vector<float> scale;  // (C)
};

// Searches α for weights that share one input with statistics `stats` (columns C, Σ|x|, Hessian).
// Ties keep the smaller α. Throws Error if the statistics lack the Hessian or Σ|x|.
AwqSearchResult AwqSearchScale(std::span<const AwqMember> members, const InputStats& stats, const AwqOptions& opt);

// A group of weights reading one input and the op that produces it.
struct AwqGroup {
  enum class Prev { kNorm, kUp, kV };
  Prev prev = Prev::kNorm;
  std::string prev_name;             // the norm weight, ffn_up or attn_v
  std::vector<std::string> weights;  // the weights that read the scaled input
};

// The groups of every block in the order they are searched and folded.
std::vector<AwqGroup> AwqGroups(const Model& model);

// Folds scale s into `weights` (tensors become f32): columns of the group's weights times s, the
// producing op divided by s (norm weight; rows of ffn_up; rows and bias of attn_v). The model
// computes the same function up to rounding.
void FoldAwqScale(Weights& weights, const AwqGroup& group, std::span<const float> s);

// The tensor `name` of a group, which a rescaling pass reads as numbers; throws Error naming
// `source` and the pass if it is missing or of a type smelt cannot decode.
const Tensor& GroupTensor(const Weights& weights, const std::string& name, const std::string& source,
                          std::string_view pass);

// The types `target` gives the group's weights (in order) when a rescaling pass may fold into the
// group: every weight is re-encoded (target not nullopt), and so is the producing matrix where
// there is one (ffn_up, attn_v change when folded). nullopt: the group must stay as it is.
std::optional<std::vector<DType>> GroupTargets(const Weights& weights, const AwqGroup& group,
                                               const std::function<std::optional<DType>(const Tensor&)>& target,
                                               const std::string& source, std::string_view pass);

// The statistics of the group's one input: present for every weight, shared by all of them, and
// as wide as their rows; throws Error naming `source`, the pass and the tensor otherwise.
const InputStats& GroupInputStats(const ActivationStats& stats, const Weights& weights, const AwqGroup& group,
                                  const std::string& source, std::string_view pass);

struct AwqGroupChoice {
  AwqGroup group;
  bool searched = false;  // false: skipped (a member is kept or none is quantized); s = 1
  AwqSearchResult result;
};

struct AwqFolded {
  Model model;  // the input with every searched group's scale folded in (those tensors f32)
  std::vector<AwqGroupChoice> groups;
};

// Runs the search for every group of `model` and folds the chosen scales. `target(t)` is the type
// matrix t will be written as, nullopt if it is kept as it is; a group is searched only when all
// its weights and the producing matrix (ffn_up, attn_v) are re-encoded and one of them is
// quantized. Throws Error naming the model and tensor for missing or mismatched statistics.
AwqFolded AwqScaleModel(const Model& model, const ActivationStats& stats,
                        const std::function<std::optional<DType>(const Tensor&)>& target, const AwqOptions& opt);

// The same from calibration samples in bounded memory: the staged pass (CollectActivationStatsStaged)
// hands over each group's input statistics when they are complete, the group is searched and
// folded there, and its Hessian is freed; only one group's Hessian is held at a time (not every
// layer's). The choices match AwqScaleModel on statistics of the same samples, up to summation
// order. `stats_out` (optional) receives the statistics without Hessians (for the encoders).
AwqFolded AwqScaleModelStaged(const Model& model, const std::vector<std::vector<int32_t>>& samples,
                              const StatsOptions& stats_opt,
                              const std::function<std::optional<DType>(const Tensor&)>& target, const AwqOptions& opt,
                              ActivationStats* stats_out = nullptr);

}  // namespace smelt
