#pragma once
// IQ4_NL: blocks of 32 weights in 18 bytes = 4.5 bits/weight. Non-linear 4-bit: each code
// indexes a fixed 16-entry codebook (denser near zero, matching bell-shaped weights):
//   x[j] = d * kIQ4NLValues[q[j]],  q in 0..15
// Nibble layout as Q4_0: qs[j] = code of weight j (low) | code of weight j+16 (high).
#include <cstdint>

#include "core/half.h"

namespace smelt {

inline constexpr int kQK4_NL = 32;

// ggml's kvalues_iq4nl.
inline constexpr int8_t kIQ4NLValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};

struct BlockIQ4_NL {
  fp16_t d;                 // scale
  uint8_t qs[kQK4_NL / 2];  // codebook indices, two per byte
};
static_assert(sizeof(BlockIQ4_NL) == 2 + kQK4_NL / 2, "IQ4_NL block is 18 bytes");

void DequantizeRowIQ4_NL(const BlockIQ4_NL* x, float* y, int64_t k);

// With the best-scale search: per block, weights x^2, the scale that maps the extreme value to
// -127 and 15 scales around it ((itry - 127) / max, itry = -7..7), each refitted by weighted
// least squares, keeping the best; codes are then re-chosen with the final scale. Bit-exact with
// ggml's quantize_iq4_nl without an importance matrix, i.e. what llama-quantize writes; this is
// the table's from_float.
void QuantizeRowIQ4_NL(const float* x, BlockIQ4_NL* y, int64_t k);
// Bit-exact with ggml's quantize_row_iq4_nl_ref (ggml's from_float_ref): the same least-squares
// refit of the scale from the extreme value, but no search and no re-choice of codes. One
// difference: for an all-zero block (|x| < 1e-15) ggml leaves the codes unset (stale memory)
// while smelt writes code 8 (value 1, the nearest to 0); both decode to zeros since d = 0.
void QuantizeRowIQ4_NLRef(const float* x, BlockIQ4_NL* y, int64_t k);

// Index of the entry of the sorted codebook `values` (n entries) nearest to v; ties go to the
// upper entry, as ggml's best_index_int8.
int NearestCodebookIndex(int n, const int8_t* values, float v);

}  // namespace smelt
