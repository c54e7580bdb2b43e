#pragma once
// Internals of qdot.cc shared with its AVX2 twins (not a public API).
#include "kernels/qdot.h"

namespace smelt::qdot {

struct Avx2Kernels {
  QDotFn q8_0, q4_0, q5_0, iq4_nl, q4_1, q5_1;
  QDotFn q2_k, q3_k, q4_k, q5_k, q6_k;
  QDotFn f16, bf16, w8a8, i8_pc;
  QDotFn s24_q8, s24_q4, sp50_q8, sp70_q8, sp50_w8a8, sp70_w8a8, s24_w4a8, sp50_f16, sp70_f16;
  QDotX4Fn x4_q8_0, x4_q4_0, x4_q5_0, x4_iq4_nl;  // four activation rows per call
  QDotX4Fn x4_s24_q8, x4_s24_q4, x4_sp50_q8, x4_sp70_q8, x4_sp50_w8a8, x4_sp70_w8a8, x4_s24_w4a8, x4_sp50_f16,
      x4_sp70_f16;
  QDotX4Fn x4_q4_k, x4_q5_k, x4_q6_k, x4_q2_k;
  QDotFn sp70_w4a8;
  QDotX4Fn x4_sp70_w4a8;
  QDotRows4Fn rows4_q4_k, rows4_q5_k, rows4_q6_k, rows4_q2_k;  // four weight rows per call (decoding)
};

// The AVX2/FMA/F16C twins (qdot_avx2.cc); nullptr where not built. Only valid when
// CpuHasAvx2FmaF16c().
const Avx2Kernels* Avx2();

}  // namespace smelt::qdot
