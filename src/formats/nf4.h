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

// The levels in fixed point, for integer products against int8 activations (kernels/packed.h):
// kNF4Fixed[c] = round(kNF4Values[c] / kNF4FixedScale), kNF4FixedScale = 2^-14, each within 2.6e-5
// of its level (under a sixteenth of an fp16 ulp at 1), and the same split in two signed bytes,
// kNF4Fixed = 256 · kNF4High + kNF4Low, for byte-wide dot products (kNF4High in −64..64, kNF4Low
// in −128..127).
inline constexpr float kNF4FixedScale = 0x1p-14f;
inline constexpr int16_t kNF4Fixed[16] = {-16384, -11406, -8603, -6470, -4660, -3027, -1492, 0,
                                          1304,   2637,   4032,  5536,  7221,  9218,  11845, 16384};
inline constexpr int8_t kNF4High[16] = {-64, -45, -34, -25, -18, -12, -6, 0, 5, 10, 16, 22, 28, 36, 46, 64};
inline constexpr int8_t kNF4Low[16] = {0, 114, 101, -70, -52, 45, 44, 0, 24, 77, -64, -96, 53, 2, 69, 0};
static_assert([] {
  for (int c = 0; c < 16; ++c) {
    const double err = kNF4Fixed[c] * (double)kNF4FixedScale - kNF4Values[c];
    if (err > 0.5 * kNF4FixedScale || err < -0.5 * kNF4FixedScale || kNF4Fixed[c] != 256 * kNF4High[c] + kNF4Low[c]) return false;
  }
  return true;
}(), "kNF4Fixed rounds kNF4Values to 2^-14, and kNF4High/kNF4Low split it");

struct BlockNF4 {
  fp16_t d;                // absmax scale
  uint8_t qs[kQKNF4 / 2];  // codebook indices, two per byte
};
static_assert(sizeof(BlockNF4) == 2 + kQKNF4 / 2, "NF4 block is 34 bytes");

void DequantizeRowNF4(const BlockNF4* x, float* y, int64_t k);
void QuantizeRowNF4(const float* x, BlockNF4* y, int64_t k);
void QuantizeRowNF4Weighted(const float* x, const float* w, BlockNF4* y, int64_t k);

}  // namespace smelt
