#pragma once
// Post-training quantization of a whole model: every 2-D weight matrix gets the type its rules
// give (compress/rules.h), encoded by the chosen method; 1-D tensors (norms, biases) stay f32.
//
// Methods:
//   rtn   each format's reference round-to-nearest quantizer: the same bytes llama-quantize
//         writes without an importance matrix;
//   mse   per-block MSE-optimal scale (and minimum) search (formats/weighted_quants.h), weighted
//         by the importance matrix when one is given (llama.cpp's imatrix idea: column c's error
//         counts by E[x_c²] over calibration inputs); every GGUF type smelt writes and most
//         smelt types have one (formats/types.cc); those without (fp8) fall back to their
//         reference quantizer, and the summary says so per tensor.
//   gptq  GPTQ (compress/gptq.h) with each matrix's input Hessian Σ x xᵀ from calibration data;
//         every GGUF block type smelt writes has the code access GPTQ needs. With `samples`
//         (the usual way) the staged pass (activation_stats.h) runs them once through the model
//         and each projection group is quantized as soon as its Hessian is complete, so it is
//         fitted to inputs that went through every quantized projection before it (the
//         sequential GPTQ of the paper's implementation, per projection group) and only one
//         group's Hessian is held at a time. With `stats` instead, the Hessians given there
//         (from the unquantized model) are used. Matrices no projection reads (an untied token
//         embedding) and f16/f32 targets are encoded by rtn.
//   awq   AWQ (compress/awq.h): per-input-channel scales searched on the calibration Hessians and
//         folded into the preceding norm / ffn_up / attn_v, then every matrix is encoded by rtn,
//         or with awq.clip by the mse search weighted by the scaled inputs' importance (the
//         format's analog of AWQ's clipping search). Needs statistics with Hessians.
// A matrix whose rows the wanted type's block does not divide gets FallbackType (rules.h).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "compress/activation_stats.h"
#include "compress/awq.h"
#include "compress/smoothquant.h"
#include "compress/gptq.h"
#include "compress/rules.h"
#include "model/model.h"

namespace smelt {

enum class QuantMethod { kRtn, kMse, kGptq, kAwq };

// "rtn", "mse", "gptq", "awq"; nullopt for an unknown name.
std::optional<QuantMethod> ParseQuantMethod(std::string_view name);
std::string_view QuantMethodName(QuantMethod m);

struct QuantizeOptions {
  std::vector<TypeRule> rules;             // first match decides; unmatched matrices are kept
  QuantMethod method = QuantMethod::kRtn;
  const ActivationStats* stats = nullptr;  // importance (mean x² per input column), optional;
                                           // with Hessians for gptq without samples
  // Calibration samples for gptq's and awq's staged passes, which hold one group's Hessian at a
  // time (preferred to stats' Hessians when both are given; stats then only serve smoothing).
  const std::vector<std::vector<int32_t>>* samples = nullptr;
  GptqOptions gptq;                        // damp, act_order (threads: from `threads`)
  AwqOptions awq;                          // grid, clip (threads: from `threads`)
  // SmoothQuant (compress/smoothquant.h) with this α before the method: activation outliers
  // migrated into the weights, folded into the preceding ops; needs stats (max |x|). Not with awq.
  std::optional<float> smooth_alpha;
  int threads = 1;
  std::function<void(int done, int total)> progress;  // per tensor, optional
  std::function<void(int done, int total)> calib_progress;  // per block of gptq's staged pass, optional
};

struct TensorChoice {
  std::string name;
  DType from = DType::kF32;
  DType wanted = DType::kF32;  // what the rules asked for
  DType to = DType::kF32;      // what was written (wanted, or its fallback)
  bool weighted = false;       // encoded by the MSE search (method mse, format with a weighted encoder)
  bool importance = false;     // ... weighted by calibration importance (the tensor had statistics)
  bool gptq = false;           // encoded by GPTQ
  double gptq_loss = 0;        // its proxy loss (compress/gptq.h)
  bool awq = false;            // in a group whose AWQ scale was searched
  double awq_alpha = 0;        // the group's chosen exponent (0: unscaled)
  double awq_loss = 0, awq_loss_rtn = 0;  // the group's output error at awq_alpha and at α = 0
  bool smoothed = false;       // reads an input SmoothQuant rescaled
  // Sparse types (TypeTraits::sparse_m): the shares of the matrix's weights that are non-zero in
  // the input and that the type stores (the non-zeros its pattern or capacity has room for);
  // stored < before where the type pruned the matrix by magnitude to fit.
  double nonzero_before = 1, nonzero_stored = 1;
  bool Pruned() const { return nonzero_stored < nonzero_before; }
};

struct QuantizeSummary {
  std::vector<TensorChoice> tensors;  // every 2-D matrix, in model order
  double seconds = 0;
  // "name=type, ..." of the matrices that fell back to another type; empty if none.
  std::string Fallbacks() const;
};

// Returns the quantized model (tensors in new heap buffers; the input is not modified). Throws
// Error naming the model and tensor when a tensor cannot be read or its statistics do not fit.
Model QuantizeModel(const Model& model, const QuantizeOptions& opt, QuantizeSummary* summary = nullptr);

// Tensor t (any readable type) encoded as `type`, row by row over `threads` threads, in a new
// buffer the result owns. With `importance` (ne[0] values, shared by every row) the format's
// weighted encoder is used (it must have one), otherwise its reference quantizer.
Tensor EncodeTensor(const Tensor& t, DType type, const float* importance, int threads);

}  // namespace smelt
