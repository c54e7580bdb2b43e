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
  bool hessian = false;  // also accumulate Σ x xᵀ (C² doubles per distinct input)
  int threads = 1;
  std::function<void(int done, int total)> progress;  // optional, per sample
};

// Runs every sample (from an empty cache, all positions) through `model` in f32 and returns the
// statistics of every projection's input (output head included).
ActivationStats CollectActivationStats(const Model& model, const std::vector<std::vector<int32_t>>& samples,
                                       const StatsOptions& opt);

}  // namespace smelt
