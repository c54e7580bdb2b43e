#pragma once
// Statistics of the inputs each weight matrix sees on calibration data, gathered through a
// ForwardObserver (model/llama.h) while the model runs the samples:
//   - Σ x_c² per input column: the importance matrix (llama.cpp's imatrix idea) that weights the
//     quantization error of column c by how strongly it is driven;
//   - Σ |x_c| per input column: AWQ's activation magnitude (compress/awq.h);
//   - max |x_c| per input column: SmoothQuant's activation range (compress/smoothquant.h);
//   - optionally Σ x xᵀ (C × C): the Hessian of the layer's output error, for GPTQ.
// Weights that read the same input (wq/wk/wv, ffn_gate/ffn_up) share one entry.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "model/model.h"

namespace smelt {

struct InputStats {
  int64_t columns = 0;           // C
  int64_t rows = 0;              // input rows (tokens) seen
  std::vector<double> sum_sq;    // (C) Σ x_c²
  std::vector<double> sum_abs;   // (C) Σ |x_c|
  std::vector<float> max_abs;    // (C) max |x_c|
  std::vector<double> hessian;   // (C, C) Σ x xᵀ, row-major; empty unless collected
  // Σ x_c² / rows: the importance of each column (what llama.cpp's imatrix stores).
  std::vector<float> MeanSquare() const;
  // Σ |x_c| / rows: the mean magnitude of each column (AWQ's activation scale).
  std::vector<float> MeanAbs() const;
};

struct ActivationStats {
  std::map<std::string, std::shared_ptr<InputStats>> by_weight;  // weight name -> its input's stats
  int64_t tokens = 0;                                            // calibration tokens run
  const InputStats* Find(const std::string& weight) const;
};

struct StatsOptions {
  bool hessian = false;       // also accumulate Σ x xᵀ (C² doubles per distinct input)
  bool keep_hessians = true;  // staged pass: keep each group's Hessian after its hook returns
  int threads = 1;
  std::function<void(int done, int total)> progress;  // optional, per sample (staged: per block)
};

// Runs every sample (from an empty cache, all positions) through `model` in f32 and returns the
// statistics of every projection's input (output head included). The reference: the runtime's
// forward pass (model/llama.h) one sample at a time, every block's statistics held at once.
ActivationStats CollectActivationStats(const Model& model, const std::vector<std::vector<int32_t>>& samples,
                                       const StatsOptions& opt);

// Called when the group `weights` (one shared input) of block `layer` (n_layers: the head) has
// complete statistics in `stats`. It may replace those tensors in the model being run.
using GroupHook =
    std::function<void(int layer, std::span<const std::string> weights, const ActivationStats& stats)>;

// The same statistics from the staged pass (model/llama_staged.h): all samples through one
// projection group at a time with BLAS GEMMs, so memory holds one block's activations and, with
// keep_hessians false, one group's Hessian. `on_group`, when given, runs after each group and may
// replace the group's tensors in `model` (GPTQ quantizes them there, and the pass then feeds
// the quantized projections' outputs on); without it the result matches CollectActivationStats
// up to summation order.
ActivationStats CollectActivationStatsStaged(const Model& model, const std::vector<std::vector<int32_t>>& samples,
                                             const StatsOptions& opt, const GroupHook& on_group = {});

}  // namespace smelt
