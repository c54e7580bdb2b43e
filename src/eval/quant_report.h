#pragma once
// What a quantized model lost relative to its base: one report at three depths.
//  1. Weights: every tensor both models hold (matched by name) dequantized row by row and
//     compared with the base's: RMSE, SQNR = 10·log10(Σw² / Σ(w−ŵ)²) dB (+inf when identical),
//     max |w−ŵ|, and the quant tensor's bits/weight.
//  2. Depth: both models run on the same token windows; after every block the residual streams
//     h (base) and ĥ (quant), each (T, dim), are compared: the mean and least cosine similarity
//     over positions, and the relative L2 error ‖h−ĥ‖/‖h‖ over all positions of all windows.
//  3. Output: perplexity of both, KL-divergence to the base, same-top-token share and Δp, exactly
//     as eval/kld.h's KlDivergence computes them (llama-perplexity's method and windows).
// The two models may come from any files smelt loads, but must have the same architecture,
// shape and vocabulary.
#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "eval/kld.h"
#include "eval/perplexity.h"
#include "model/model.h"

namespace smelt {

struct QuantReportOptions {
  PplOptions ppl;             // ctx, max_chunks, threads, progress (of the KL-divergence pass)
  int layer_windows = 1;      // the first this many windows of the text feed the per-block comparison
  bool tensors = true;        // compare the weights tensor by tensor
  std::function<void(int done, int total)> tensor_progress;  // optional, per tensor compared
  std::string text_name = "text";  // names the text in errors ("valid.txt: text has 12 tokens ...")
};

// One tensor both models hold.
struct TensorError {
  std::string name;
  std::array<int64_t, 4> ne{1, 1, 1, 1};
  int n_dims = 0;
  DType base_type = DType::kF32, quant_type = DType::kF32;
  int64_t n = 0;              // values
  double rmse = 0;            // sqrt(Σ(w−ŵ)² / n)
  double sqnr_db = 0;         // +inf when the dequantized values are identical
  double max_abs = 0;         // max |w−ŵ|
  double bits_per_weight = 0; // of the quant tensor: 8 · bytes / n
};

// The residual stream after block `layer`.
struct LayerError {
  int layer = 0;
  double cosine_mean = 0;     // mean over positions of cos(h_t, ĥ_t)
  double cosine_min = 0;      // least cos(h_t, ĥ_t)
  double rel_l2 = 0;          // sqrt(Σ_t ‖h_t−ĥ_t‖²) / sqrt(Σ_t ‖h_t‖²)
};

// Parameters and bytes of a model's tensors, all of them and the 2-D weights alone.
struct WeightSize {
  int64_t parameters = 0, matrix_parameters = 0;
  uint64_t bytes = 0, matrix_bytes = 0;
  double bits_per_weight() const { return parameters ? 8.0 * (double)bytes / (double)parameters : 0; }
  double matrix_bits_per_weight() const {
    return matrix_parameters ? 8.0 * (double)matrix_bytes / (double)matrix_parameters : 0;
  }
};

struct QuantReport {
  std::vector<TensorError> tensors;  // in the base's tensor order; empty without opt.tensors
  std::vector<std::string> only_in_base, only_in_quant;  // tensors the other model lacks
  std::vector<LayerError> layers;    // one per block
  int layer_windows = 0;             // windows the per-block comparison ran on
  int64_t layer_positions = 0;       // positions it compared
  KldResult kld;                     // ppl_base / ppl_model, KLD, same-top, Δp
  WeightSize base_size, quant_size;
};

// The whole report. Throws Error (one line naming the model file or opt.text_name) when the
// models cannot be compared or the text is too short for one window.
QuantReport MakeQuantReport(const Model& base, const Model& quant, const std::string& text,
                            const QuantReportOptions& opt);

// --- the pieces -----------------------------------------------------------------------------

// Throws Error naming quant.source unless both models have the same architecture, shape and
// vocabulary, and every tensor they share has the same shape.
void CheckComparable(const Model& base, const Model& quant);

// Compares two tensors of the same shape row by row (memory: a few rows); OpenMP over rows.
TensorError CompareTensor(const Tensor& base, const Tensor& quant, int threads);

// Runs both models on `windows` (every position of each) and compares the residual streams
// after each block. Feeds the tokens in small batches to both sessions in turn, so only one
// batch of the base's block outputs is held at a time.
std::vector<LayerError> CompareLayers(const Model& base, const Model& quant, const std::vector<ScoringWindow>& windows,
                                      int threads, int64_t* positions_out = nullptr);

WeightSize MeasureWeights(const Model& m);

}  // namespace smelt
