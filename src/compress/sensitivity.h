#pragma once
// How much each weight matrix suffers from each candidate type: the input of the mixed-precision
// bit allocator (compress/allocate.h). A candidate whose block does not divide a matrix's rows is
// replaced by its FallbackType (rules.h) for that matrix, as QuantizeModel would write it.
// Candidates are encoded by the format's reference quantizer (round to nearest).
//
// Two measures of damage:
//   proxy  the expected squared error of the matrix's output under a diagonal input Hessian:
//          Σ_c imp_c Σ_o (ŵ_oc − w_oc)², imp_c = E[x_c²] over calibration inputs
//          (InputStats::MeanSquare). A token embedding has no input; its "output" is the row of
//          the token read, so its damage is the expected squared error of the row a calibration
//          token reads: Σ_t f_t Σ_c (ê_tc − e_tc)², f_t the token's share of calibration tokens.
//          Both are a squared error per token of what enters the residual stream (or the
//          logits), so they compare across matrices. Cheap: one encode per (matrix, type).
//   kl     the mean KL-divergence of the model's next-token distribution to the unquantized
//          model's, over every position of the calibration samples, with only that one matrix
//          quantized to that type (all others as they are). One calibration forward pass per
//          (matrix, type); the unquantized model's log-probs are kept in memory
//          (samples × tokens × vocab floats).
// Each candidate also reports its SQNR = 10·log10(Σw² / Σ(ŵ−w)²) dB (unweighted).
// The allocator adds damages over matrices, which assumes their errors do not interact (a
// first-order approximation with either measure).
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "compress/activation_stats.h"
#include "model/model.h"

namespace smelt {

enum class SensitivityKind { kProxy, kKl };
std::optional<SensitivityKind> ParseSensitivityKind(std::string_view name);  // "proxy", "kl"
std::string_view SensitivityKindName(SensitivityKind k);

// q2_K, q3_K, q4_0, q4_K, q5_0, q5_K, q6_K, q8_0.
std::vector<DType> DefaultCandidates();
// "q4_0,q5_0,q8_0" (',' or ';' between names). Throws Error("--candidates: ...") for an unknown
// type, a type smelt cannot write, an activation format or an empty list.
std::vector<DType> ParseCandidates(std::string_view spec);

struct SensitivityOptions {
  std::vector<DType> candidates;
  SensitivityKind kind = SensitivityKind::kProxy;
  const ActivationStats* stats = nullptr;                    // proxy: required
  const std::vector<std::vector<int32_t>>* samples = nullptr;  // token shares (proxy), forward passes (kl)
  std::vector<std::string> only;  // when not empty, analyse just these matrices (exact names)
  int threads = 1;
  std::function<void(int done, int total)> progress;  // per (matrix, candidate), optional
};

struct CandidateDamage {
  DType wanted = DType::kF32;  // the candidate
  DType type = DType::kF32;    // what the matrix would hold (wanted, or its fallback)
  uint64_t bytes = 0;
  double damage = 0;           // proxy or kl, as asked
  double sqnr_db = 0;
};

struct MatrixSensitivity {
  std::string name;
  int64_t elements = 0;
  bool has_stats = false;  // proxy: importance from calibration (false: the embedding stand-in)
  std::vector<CandidateDamage> candidates;  // in SensitivityOptions::candidates' order
};

// Every 2-D matrix of `model` (or opt.only), in model order. Throws Error naming the model and
// tensor for an unreadable tensor, missing or mismatched statistics, or missing samples.
std::vector<MatrixSensitivity> AnalyzeSensitivity(const Model& model, const SensitivityOptions& opt);

// The proxy damage of replacing w by w_hat, both (rows, cols) row-major:
// Σ_r row_weight_r Σ_c col_weight_c (ŵ_rc − w_rc)²; a null weight vector counts as all ones.
double WeightedSquaredError(const float* w, const float* w_hat, int64_t rows, int64_t cols, const float* col_weight,
                            const float* row_weight);

}  // namespace smelt
