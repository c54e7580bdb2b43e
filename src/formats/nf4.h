#pragma once
// NF4: QLoRA's 4-bit NormalFloat (Dettmers et al. 2023, bitsandbytes' NF4 table). Blocks of 64
// weights in 34 bytes = 4.25 bits/weight:
//   x[j] = d · kNF4Values[q[j]],  q in 0..15,  d = the block's max |x| (fp16)
// The 16 levels are quantiles of N(0, 1) scaled to [−1, 1] with an exact zero, so a Gaussian
// block uses each level about equally often. Codes are packed two per byte, code 2i in the low
// nibble (formats/bitpack.h). from_float picks the nearest level for the absmax scale;
// from_float_weighted searches the scale (formats/scale_search.h) with the same codebook.
#include <cstdint>

#include "core/half.h"

namespace smelt {

inline constexpr int kQKNF4 = 64;

// bitsandbytes' NF4 code values (functional.py, get_4bit_type), sorted.
inline constexpr float kNF4Values[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
    -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
    0.24611230194568634f, 0.33791524171829224f, 0.44070982251167297f, 0.5626170039176941f,
    0.7229568362236023f, 1.0f};

struct BlockNF4 {
  fp16_t d;                // absmax scale
  uint8_t qs[kQKNF4 / 2];  // codebook indices, two per byte
};
static_assert(sizeof(BlockNF4) == 2 + kQKNF4 / 2, "NF4 block is 34 bytes");

void DequantizeRowNF4(const BlockNF4* x, float* y, int64_t k);
void QuantizeRowNF4(const float* x, BlockNF4* y, int64_t k);
void QuantizeRowNF4Weighted(const float* x, const float* w, BlockNF4* y, int64_t k);

}  // namespace smelt
