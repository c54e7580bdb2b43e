#pragma once
// Importance-weighted, MSE-optimal choice of a block's scale (and minimum) for the linear and
// codebook formats: the search behind smelt's "mse" quantization and importance-matrix (imatrix)
// quantization. For a block x[0..n) with non-negative importances w[0..n) (all 1 for plain MSE;
// an imatrix gives E[a_j²], the mean square of the activation each weight multiplies, so that
// Σ w (x − x̂)² estimates the block's contribution to the output error) it finds
//   symmetric:   x̂ = d · v[q],        v a sorted codebook (integers lo..hi, or IQ4_NL's table)
//   asymmetric:  x̂ = d · q + m,       q in 0..qmax
// minimising Σ w (x − x̂)². The search tries the scales that put the block's extreme value at
// each end of the codebook, perturbed in 1.25 % steps (a tenth of a 4-bit level, the search of
// ggml's make_qx_quants and make_qkx2_quants), refits each by weighted least squares for the codes it produced, and
// returns the best; callers then round the scale to fp16 and re-choose the codes for that exact
// scale (ChooseCodes*).
#include <cstdint>

namespace smelt {

// Blocks may be any length (a whole row for the per-channel formats).
// Symmetric: returns d (0 for an all-zero or zero-weight block); `values` holds n_values sorted
// levels, at most 256.
float SearchSymmetricScale(const float* x, const float* w, int n, const float* values, int n_values);
// Index of the level nearest to x/d for each element (d == 0: the level nearest to 0).
void ChooseCodesSymmetric(const float* x, int n, float d, const float* values, int n_values, uint8_t* codes);

// Asymmetric: returns d and writes the minimum m.
float SearchAsymmetricScale(const float* x, const float* w, int n, int qmax, float* m);
// q = clamp(round((x − m) / d), 0, qmax).
void ChooseCodesAsymmetric(const float* x, int n, float d, float m, int qmax, uint8_t* codes);

// w itself, or ones[0..n) (filled here) where every importance in w[0..n) is zero: such a block
// has nothing to prefer, and plain MSE is the sensible choice.
const float* WeightsOrOnes(const float* w, int n, float* ones);

// The integer codebook lo, lo+1, ..., hi in `out` (hi − lo + 1 <= 256 entries).
void IntegerLevels(int lo, int hi, float* out);

}  // namespace smelt
