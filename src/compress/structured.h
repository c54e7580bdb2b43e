#pragma once
// Structured pruning: whole attention heads, MLP channels (neurons) or blocks are removed, so the
// result is a physically smaller model with a valid config (fewer heads, a smaller feed-forward
// size, fewer layers) that every reader, the runtime and llama.cpp load as an ordinary model.
//
// Units and their importance, measured on calibration samples run through the f32 forward pass:
// - heads: GQA-aware, the unit is one KV group (a kv head and the query heads that read it; a
//   single head when there is no GQA). Importance = Σ over tokens of ‖W_o[:, g] · o_g‖², the
//   squared norm of the group's contribution to the attention output (o_g: the group's heads'
//   attention outputs, W_o[:, g] the columns of attn_output that read them).
// - channels: the unit is one SwiGLU neuron j. Importance = Σ_t x_tj² · ‖W_down[:, j]‖², the
//   squared norm of its contribution to the down projection (x = silu(gate) · up).
//   Head and channel sums are divided by Σ_t ‖h_t‖², the energy of the residual stream h the
//   block writes them into, so that scores of different blocks compare: the share of the stream
//   a unit adds (the next block sees the stream through RMSNorm, so a share is what it feels).
//   Within a block this changes no ranking.
// - layers: the unit is one block. kCosine scores block influence (Men et al. 2024, "ShortGPT"):
//   mean over tokens of 1 − cos(block input, block output) of the residual stream; kKld scores
//   the mean KL-divergence of the next-token distributions when only that block is skipped.
//
// Allocation: by default every layer loses the same number of units (the least important of that
// layer; for layers, the least important blocks), so the config stays uniform and the GGUF export
// loads in llama.cpp. Heads and channels can instead be allocated across blocks (by score, or by
// measured KL-divergence), so each block keeps its own feed-forward size or kv head count
// (ModelConfig::layer_ff, layer_kv_heads; GGUF stores them as per-block arrays), and PadBlocks
// makes such a model uniform again without changing what it computes.
// Rows of a projection are dropped in its own type; a matrix that loses input columns (attn_output
// for heads, ffn_down for channels) is rewritten as f32 (block formats cannot drop columns), to be
// quantized afterwards like any f32 model.
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "model/model.h"

namespace smelt {

enum class StructuredTarget { kHeads, kChannels, kLayers };
enum class LayerScore { kCosine, kKld };
// kUniform: the same count removed from every block. kGlobal (heads, channels): the counts chosen
// across blocks by score (GlobalRemovalCounts). kMeasured (heads, channels): each block's cost
// measured — the calibration KL-divergence when that block alone loses its k lowest-scored units
// (channels or KV groups), k = n/8, 2n/8, ..., 7n/8 — and the counts chosen to minimize the summed
// costs, taken as additive, on the lower convex hull of each block's measurements
// (HullMarginalCosts, then GlobalRemovalCounts).
enum class UnitAllocation { kUniform, kGlobal, kMeasured };

struct StructuredOptions {
  StructuredTarget target = StructuredTarget::kChannels;
  // Fraction of the target's units removed, in [0, 1): of the KV groups (heads), of the
  // feed-forward channels or of the blocks. Rounded to the nearest whole unit per layer; at least
  // one unit always remains.
  double ratio = 0.0;
  // Channels only: the kept channel count rounded to the nearest multiple of this (at least one
  // multiple kept), so that ffn_down's rows stay whole blocks of the quantized types (32 for
  // q4_0/q8_0, 256 for the k-quants). 1: the ratio as given.
  int multiple_of = 1;
  LayerScore layer_score = LayerScore::kCosine;
  UnitAllocation allocation = UnitAllocation::kUniform;
  int threads = 1;
  std::function<void(int done, int total)> progress;  // kMeasured: after each measurement
};

struct StructuredReport {
  StructuredTarget target = StructuredTarget::kChannels;
  int64_t params_before = 0;  // elements of every tensor
  int64_t params_after = 0;
  int units_per_layer = 0;    // heads: KV groups per layer, channels: ff (each the widest block's); layers: n_layers
  // Units removed in each layer (layers: blocks removed in total) where that count is the same
  // for all; 0 where it differs (removed[l].size() is layer l's count).
  int removed_per_layer = 0;
  // scores[l][u]: importance of unit u of layer l (layers: one row, one score per block);
  // removed[l]: the units removed there, ascending.
  std::vector<std::vector<double>> scores;
  std::vector<std::vector<int>> removed;
  // kMeasured: per block, (units removed from that block alone, calibration KLD), from (0, 0).
  std::vector<std::vector<std::pair<int, double>>> measured;
};

// Parses "heads" | "channels" | "layers"; throws Error naming `what` otherwise.
StructuredTarget ParseStructuredTarget(const std::string& s, const std::string& what);
const char* StructuredTargetName(StructuredTarget t);

// Importance of every unit of `model` (see above) on the calibration samples; scores[l][u] as in
// StructuredReport. Throws Error for empty samples.
std::vector<std::vector<double>> StructuredScores(const Model& model, const std::vector<std::vector<int32_t>>& samples,
                                                  const StructuredOptions& opt);

// Removes the least important units: per layer the count UnitsToRemove gives (layers: that many
// blocks in all), or with global or measured allocation the counts chosen across blocks (see
// UnitAllocation); ties broken by the lower index. Throws Error (naming model.source) for a ratio outside [0, 1), one that would
// remove every unit, or an allocation across blocks of whole blocks (layers).
Model PruneStructured(const Model& model, const std::vector<std::vector<int32_t>>& samples,
                      const StructuredOptions& opt, StructuredReport* report = nullptr);

// Global allocation: how many units each block loses so that `ratio` of all units (Σ over blocks
// of scores[l].size()) go with the least total score removed. With multiple_of > 1 every block
// keeps a multiple of it (its remainder, the lowest-scored units, goes first; then whole groups of
// multiple_of consecutive units in score order) and the kept total is the nearest multiple to
// what the ratio keeps; every block keeps at least one group. Greedy over the groups of all
// blocks in order of their score sum, which is optimal because a block's group sums only grow.
// Throws Error naming `source` for a ratio outside [0, 1), or one that would empty a block.
std::vector<int> GlobalRemovalCounts(const std::vector<std::vector<double>>& scores, double ratio, int multiple_of,
                                     const std::string& source);

// Per-unit costs from measured points (units removed, cost), the first (0, 0), k increasing: cost[u]
// is the slope of the points' lower convex hull between u and u + 1 removed units (the last
// segment's slope past the last point), so the costs never decrease and their prefix sums follow
// the hull. `units` costs.
std::vector<double> HullMarginalCosts(const std::vector<std::pair<int, double>>& measured, int units);

// The model with the given units removed (removed[l]: units of layer l; for layers, removed[0]
// lists the blocks). Each block may lose a different number of heads or channels. The building
// block of PruneStructured, exposed for tests and ablations.
Model RemoveUnits(const Model& model, StructuredTarget target, const std::vector<std::vector<int>>& removed);

// The model with every block padded to the widest block's sizes (config.ff, n_kv_heads): zero
// channels (zero rows of ffn_gate and ffn_up, silu(0) · 0 = 0, and zero columns of ffn_down) and
// zero KV groups at the end (zero rows of attn_q, attn_k, attn_v and their biases: every score is
// 0 and every value 0, so the group's output is 0, and zero columns of attn_output). It computes the
// same function with one size for all blocks, which llama.cpp and Hugging Face configs need. Rows
// and columns stay in their type where the all-zero encoding decodes to zeros (and, for columns,
// whole blocks are appended); otherwise the tensor is written as f32. A model whose blocks agree
// is returned as it is.
Model PadBlocks(const Model& model);

// Where PadBlocks puts its zeros: in tensor `name` (rows of ne[0] values), the rows [row0, row1)
// of columns [col0, col1). Training the padded model with these held at zero and trimming the
// padding off again (TrimBlocks) trains a per-block model with a trainer that needs one size.
struct PaddedRegion {
  std::string name;
  int64_t row0 = 0, row1 = 0, col0 = 0, col1 = 0;
};
// The regions PadBlocks(model) fills with zeros (none for a model whose blocks agree).
std::vector<PaddedRegion> PaddedRegions(const Model& model);
// The inverse of PadBlocks: `padded` (one size for all blocks) with the channels and KV groups past
// each block's own size in `sizes` (the config PadBlocks was given) removed.
Model TrimBlocks(const Model& padded, const ModelConfig& sizes);

// How many of `units` a ratio removes (round to nearest, at most units - 1); throws for a ratio
// outside [0, 1). With multiple_of > 1, units - (the result) is a multiple of it (the nearest to
// what the ratio keeps, at least multiple_of); throws where units < multiple_of.
int UnitsToRemove(int units, double ratio, const std::string& source, int multiple_of = 1);

}  // namespace smelt
