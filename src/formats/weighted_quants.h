#pragma once
// Importance-weighted MSE quantizers of the 32-value block formats (formats/scale_search.h) and
// of the k-quants (weighted_kquants.cc):
// per block, the scale (and minimum) minimising Σ w (x − x̂)², stored in the format's own bytes,
// so the result decodes with the format's ordinary decoder and loads in llama.cpp. `w` holds one
// non-negative importance per value (an imatrix row, or all ones for plain MSE); a block whose
// importances are all zero is treated as all ones. The table (formats/types.h) exposes these as
// from_float_weighted.
#include <cstdint>

#include "formats/iq4_nl.h"
#include "formats/k_quants.h"
#include "formats/q4_0.h"
#include "formats/q4_1.h"
#include "formats/q5_0.h"
#include "formats/q5_1.h"
#include "formats/q8_0.h"

namespace smelt {

void QuantizeRowQ4_0Weighted(const float* x, const float* w, BlockQ4_0* y, int64_t k);
void QuantizeRowQ5_0Weighted(const float* x, const float* w, BlockQ5_0* y, int64_t k);
void QuantizeRowQ8_0Weighted(const float* x, const float* w, BlockQ8_0* y, int64_t k);
void QuantizeRowQ4_1Weighted(const float* x, const float* w, BlockQ4_1* y, int64_t k);
void QuantizeRowQ5_1Weighted(const float* x, const float* w, BlockQ5_1* y, int64_t k);
void QuantizeRowIQ4_NLWeighted(const float* x, const float* w, BlockIQ4_NL* y, int64_t k);
// The k-quants: super-block parameters searched for Σ w (x − x̂)², never worse under that
// measure than the reference encoding (ggml's bytes), which they fall back to per super-block.
void QuantizeRowQ2_KWeighted(const float* x, const float* w, BlockQ2_K* y, int64_t k);
void QuantizeRowQ3_KWeighted(const float* x, const float* w, BlockQ3_K* y, int64_t k);
void QuantizeRowQ4_KWeighted(const float* x, const float* w, BlockQ4_K* y, int64_t k);
void QuantizeRowQ5_KWeighted(const float* x, const float* w, BlockQ5_K* y, int64_t k);
void QuantizeRowQ6_KWeighted(const float* x, const float* w, BlockQ6_K* y, int64_t k);

}  // namespace smelt
