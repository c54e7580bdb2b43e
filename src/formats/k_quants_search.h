#pragma once
// Internals of the k-quant encoders shared by their implementations (not a public API).
//
// The per-super-block scale searches, split out so that one row driver
// (k_quants_ref.cc) runs either the scalar reference searches or their AVX2 twins
// (k_quants_avx2.cc). The AVX2 twins run each sub-block's exact scalar sequence of float
// operations in one SIMD lane (8 sub-blocks at once), so both produce the same bits.
#include <cstdint>

#include "formats/k_quants.h"

namespace smelt::kquant {

struct Searches {
  // Q4_K/Q5_K: 8 sub-blocks of 32 weights: f32 scales[8], mins[8] (>= 0) and codes L[256] in
  // 0..nmax (ggml's make_qkx2_quants with weights av|x| + |x|, squared error).
  void (*k4)(const float* x, int nmax, float rmin, int nstep, float* scales, float* mins, uint8_t* L);
  // Q2_K: 16 sub-blocks of 16: scales[16], mins[16], L[256] in 0..3 (make_qkx2_quants with
  // weights |x|, absolute error).
  void (*q2)(const float* x, float* scales, float* mins, uint8_t* L);
  // Q3_K: 16 sub-blocks of 16: signed scales[16] and L[256] in 0..7 (make_q3_quants).
  void (*q3)(const float* x, float* scales, int8_t* L);
  // Q6_K: 16 sub-blocks of 16: signed scales[16] and L[256] in 0..63 (make_qx_quants).
  void (*q6)(const float* x, float* scales, int8_t* L);
};

// The scalar reference searches (k_quants_ref.cc).
const Searches& ReferenceSearches();
// The AVX2 twins (k_quants_avx2.cc); only valid when CpuHasAvx2(). nullptr where not built.
const Searches* Avx2Searches();

// Packers of finished codes and scale codes into the layouts of k_quants.h.
// Q2_K/Q3_K's 2-bit planes: L[0..256) in 0..3.
void Pack2BitPlanes(const uint8_t* L, uint8_t* qs);
// Q4_K/Q5_K's 12 scale bytes from 6-bit scale codes sc[8] and min codes m[8] (all 12 bytes written).
void PackK4Scales(const uint8_t* sc, const uint8_t* m, uint8_t* packed);
// Q3_K's 12 scale bytes from signed scale codes sc[16] in -32..31.
void PackQ3Scales(const int8_t* sc, uint8_t* scales);
// Codes L[0..256) into hmask/qs (Q3_K, 0..7), qs (Q4_K, 0..15), qh/qs (Q5_K, 0..31), ql/qh
// (Q6_K, 0..63).
void PackQ3KCodes(const int8_t* L, BlockQ3_K& y);
void PackQ4KCodes(const uint8_t* L, BlockQ4_K& y);
void PackQ5KCodes(const uint8_t* L, BlockQ5_K& y);
void PackQ6KCodes(const int8_t* L, BlockQ6_K& y);

}  // namespace smelt::kquant
