#pragma once
// Weight pruning: which weights of a matrix become exactly zero (the mask) and how many per
// matrix (the allocation), for unstructured sparsity and for semi-structured N:M patterns.
//
// Criteria (a score per weight; the lowest scores are pruned):
//   magnitude  |W_ij|, compared across the whole matrix (or, with the global allocation, across
//              every pruned matrix at once);
//   wanda      |W_ij| · ‖X_j‖₂ (Sun et al. 2023, "A Simple and Effective Pruning Approach for
//              LLMs"), X_j the j-th input column over the calibration tokens, compared within
//              each output row as the paper does;
//   sparsegpt  OBS reconstruction, compress/sparsegpt.h (its own mask selection).
// An N:M pattern (2:4, 4:8) keeps the N highest scores of every group of M consecutive weights
// along the input dimension (ne[0]) and prunes the other M - N.
//
// Ordering and ties: the pruning order is ascending (score, index), so equal scores are broken
// by position and every count is exact. A weight that is exactly zero counts as already pruned
// (score -inf): it goes first and stays zero, so masks of earlier rounds are never revived and
// re-pruning a pruned model keeps its zeros.
//
// Allocation (how much of each matrix is pruned, for a target sparsity S):
//   uniform  every matrix S;
//   global   the S share of smallest |W| across all pruned matrices together (global magnitude),
//            which fixes each matrix's count;
//   owl      outlier-weighted layerwise sparsity (Yin et al. 2023, "Outlier Weighed Layerwise
//            Sparsity"): per block, the share D_l of Wanda scores |W|·‖X‖ above M times the
//            block's mean score; blocks with more outliers get less sparsity: S_l = S - λ z_l,
//            z_l = (D_l - D̄) / max_l |D_l - D̄| in [-1, 1] with D̄ the parameter-weighted mean, so
//            S_l stays within ±λ of S and the parameter-weighted mean of S_l is S.
//
// PruneModel drives a whole model: the 7 projections of every block (attn_q/k/v/output,
// ffn_gate/up/down), optionally the head and the token embedding; calibration statistics from the
// staged pass (compress/activation_stats.h), each projection group pruned as soon as its inputs
// are complete and its pruned outputs fed on (sequential, as GPTQ does); gradual pruning over R
// rounds on Zhu & Gupta's cubic schedule S_r = S (1 - (1 - r/R)³), statistics re-collected each
// round, with a hook between rounds for a recovery step. The allocation is decided once, on the
// input model, and round r prunes each matrix to its final share times S_r / S, so no matrix's
// count ever falls between rounds.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "compress/activation_stats.h"
#include "compress/sparsegpt.h"
#include "model/model.h"

namespace smelt {

enum class PruneMethod { kMagnitude, kWanda, kSparseGpt };
enum class PruneAllocation { kUniform, kGlobal, kOwl };

// "magnitude", "wanda", "sparsegpt" / "uniform", "global", "owl"; nullopt for other names.
std::optional<PruneMethod> ParsePruneMethod(std::string_view name);
std::string_view PruneMethodName(PruneMethod m);
std::optional<PruneAllocation> ParsePruneAllocation(std::string_view name);
std::string_view PruneAllocationName(PruneAllocation a);
// "N:M" with 0 < N < M; nullopt otherwise.
std::optional<NmPattern> ParseNmPattern(std::string_view text);

// ---- masks ------------------------------------------------------------------------------------
// A mask is one byte per weight, 1 = pruned.

// Marks in `pruned` (n bytes, cleared first) the k lowest of scores[0..n) by (score, index).
void MarkLowest(const float* scores, int64_t n, int64_t k, uint8_t* pruned);
// Marks, in each group of p.m consecutive scores of the row of n (p.m divides n), the p.m - p.n
// lowest by (score, index).
void MarkNm(const float* scores, int64_t n, NmPattern p, uint8_t* pruned);

// Scores of the (OC, C) matrix W: |W| (input == nullptr) or Wanda's |W_ij| · sqrt(Σ x_j²);
// -inf where W is exactly zero.
std::vector<float> PruneScores(const float* W, int64_t OC, int64_t C, const InputStats* input);

// The mask of round(sparsity · OC · C) pruned weights, compared as the criteria above do:
// per_row false: across the whole matrix (magnitude); true: within each row (Wanda), row r
// pruning round(S·C·(r+1)) - round(S·C·r), i.e. S·C rounded so that the rows add up exactly.
// With an N:M pattern, sparsity is ignored.
std::vector<uint8_t> SelectMask(const std::vector<float>& scores, int64_t OC, int64_t C, double sparsity,
                                bool per_row, NmPattern pattern);

// ---- allocation -------------------------------------------------------------------------------

// Global magnitude: of all the matrices' weights together, the round(S · total) lowest by
// (|w|, matrix, index) (exact zeros first); returns how many fall in each matrix. Memory: two
// histograms, no copy of the weights.
std::vector<int64_t> GlobalMagnitudeCounts(const std::vector<std::vector<float>>& matrices, double sparsity);

struct OwlOptions {
  double m = 5.0;        // a score is an outlier above m times its block's mean score
  double lambda = 0.08;  // the largest deviation of a block's sparsity from the target
};

// The share of values above m · mean(values) (0 for an empty set).
double OutlierRatio(const std::vector<float>& values, double m);
// Per-block sparsities from outlier ratios and parameter counts, as above (λ is lowered to
// min(λ, S, 1 - S) so every S_l stays in [0, 1]); all S when the ratios are all equal.
std::vector<double> OwlSparsity(const std::vector<double>& outlier_ratio, const std::vector<double>& params,
                                double sparsity, double lambda);

// Zhu & Gupta's cubic schedule: the sparsity after round r of R, S (1 - (1 - r/R)³).
double CubicSchedule(double sparsity, int round, int rounds);

// ---- the whole model --------------------------------------------------------------------------

struct PruneOptions {
  PruneMethod method = PruneMethod::kMagnitude;
  double sparsity = 0.5;   // S in [0, 1); ignored with a pattern (whose own sparsity is 1 - N/M)
  NmPattern pattern;       // N:M, or unstructured (m == 0)
  PruneAllocation allocation = PruneAllocation::kUniform;
  OwlOptions owl;
  int rounds = 1;          // R: gradual pruning (unstructured only)
  bool prune_head = false;        // the output head (output.weight, or the tied token_embd.weight)
  bool prune_embeddings = false;  // token_embd.weight (by magnitude: no projection reads it)
  // The pruned matrices' output type: nullopt keeps f32/f16/bf16 inputs as they are (others
  // become f32). With sparsegpt and a type with code access, pruning and quantization share
  // one column sweep (joint); otherwise the pruned weights are encoded by the type's reference
  // quantizer. Either way the type must hold the zeros exactly (Error otherwise).
  std::optional<DType> type;
  SparseGptOptions sparsegpt;  // damp, block (threads from `threads`, quantize from `type`)
  // Calibration samples: needed by wanda, sparsegpt and owl.
  const std::vector<std::vector<int32_t>>* samples = nullptr;
  int threads = 1;
  // Runs after every round but the last with the model pruned so far (which it may change, e.g.
  // a short distillation; pruned weights must stay zero, and are kept zero by later rounds).
  std::function<void(int round, Model& model)> recovery;
  std::function<void(int done, int total)> progress;  // per pruned matrix over all rounds, optional
};

struct MatrixPruneInfo {
  std::string name;
  int layer = -1;            // block index; -1 for the head and the embedding
  int64_t parameters = 0;
  int64_t zeros = 0;         // exact zeros in the written tensor
  double target = 0;         // the sparsity its allocation asked for (final round)
  DType from = DType::kF32, to = DType::kF32;
  double proxy_loss = 0;     // sparsegpt: Σ (w - ŵ)² / [H^-1]_qq of the final round (0 otherwise)
  bool joint = false;        // sparsegpt quantized it in the same sweep
  double sparsity() const { return parameters ? (double)zeros / (double)parameters : 0; }
};

struct PruneSummary {
  std::vector<MatrixPruneInfo> matrices;  // the pruned matrices, in model order
  std::vector<double> round_sparsity;     // the schedule's target after each round
  std::vector<double> owl_outlier_ratio;  // per block (owl only)
  double seconds = 0;
  int64_t parameters() const;
  int64_t zeros() const;
};

// Checks opt against `model` (Error with one line naming the problem; nothing is computed) and
// returns the names of the matrices it would prune, in model order.
std::vector<std::string> PruneTargets(const Model& model, const PruneOptions& opt);

// The pruned model (new tensors for the pruned matrices; the input is not modified).
Model PruneModel(const Model& model, const PruneOptions& opt, PruneSummary* summary = nullptr);

// Exact zeros of tensor t (any readable type), counted on its decoded values.
int64_t CountZeros(const Tensor& t);

}  // namespace smelt
