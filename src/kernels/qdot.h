#pragma once
// Dot products on encoded blocks, as ggml's CPU backend computes them: a weight row of type W
// times an activation row already encoded in ActivationType(W) (formats/activation.h), without
// decoding either to f32. Per block the codes are multiplied as integers and the integer sum is
// scaled once by d_w·d_a (the k-quants: once per super-block, their sub-block scales applied as
// integers); the blocks' terms are summed in f32.
//
//   weight   activation  block term (32 values)
//   q8_0     q8_0        d_w·d_a · Σ q_w·q_a                   q_w in -128..127
//   q4_0     q8_0        d_w·d_a · Σ (q_w − 8)·q_a             q_w in 0..15
//   q5_0     q8_0        d_w·d_a · Σ (q_w − 16)·q_a            q_w in 0..31
//   iq4_nl   q8_0        d_w·d_a · Σ table[q_w]·q_a            table: kIQ4NLValues
//   nf4      q8_0        d_w·d_a · Σ L[q_w]·q_a per 32 values,  L = kNF4Fixed (the levels · 2^14,
//                        the row's sum · 2^-14 at the end   formats/nf4.h); reference only: the
//                                                            packed kernels run it (kernels/packed.h)
//   q4_1     q8_1        d_w·d_a · Σ q_w·q_a  +  m_w · s_a      s_a = fp16(d_a·Σq_a), as ggml
//   q5_1     q8_1        as q4_1 with 5-bit codes
//   q2_K…q6_K  q8_K      per super-block of 256: d_a·(d_w·Σ_j sc_j·Σ q_w·q_a − dmin_w·Σ_j m_j·Σ q_a),
//                        Σ q_a per sub-block from the Q8_K block's bsums (exact integers)
//   f16      f16         Σ w·a over values widened to f32 (ggml's vec_dot_f16; no blocks, any n)
//   bf16     bf16        the same for bfloat16 (ggml's vec_dot_bf16)
//   w8a8     i8_pc       d_w·d_a · Σ q_w·q_a over the whole row (per-channel weight scale,
//                        per-token activation scale; smelt-native, no ggml counterpart)
//   i8_pc    f32         d_w · Σ q_w·x (int8 weights, f32 activations as given)
//   s24_q8   q8_0        d_w·d_a · Σ_k q_k·q_a[p_k] over the 16 kept values (2:4 sparse,
//   s24_q4   q8_0        the same with q_k = c_k − 8          activations gathered at p_k)
//   sp50_q8  q8_0        d_w · Σ_blocks d_a · Σ_{set bits j} q·q_a[j] (bitmask rows: the
//   sp70_q8  q8_0        codes expanded to the set positions, per-row scale applied once)
//   sp50_w8a8, sp70_w8a8   d_w·d_a · Σ_{set bits j} q·q_a[j] over the whole row (the bitmask
//            i8_pc       rows against per-token int8 activations: w8a8's one integer sum)
//   s24_w4a8 i8_pc       d_a · Σ_blocks Σ_halves d_h · Σ_{slots s of h} q_s·q_a[column of s] (2:4
//                        int4 in blocks of 128, formats/sparse24.h; the SIMD twins sum
//                        (q_a + 128)·q per lane and take 128·c, the row header, off at the end)
//   sp50_f16, sp70_f16   d_w · Σ_{stored values} v·x (fp16 values against f32 activations)
//            f32
//
// Q4_1/Q5_1 use the Q8_1 block's stored s, so they differ from "decode both, then dot" by up to
// 2^-11·|m_w·d_a·Σq_a| per block (the fp16 rounding of s): that is what llama.cpp computes (and
// s overflows to infinity where |d_a·Σq_a| > 65504, in ggml as here).
// Activation codes must lie in -127..127 (what QuantizeActivationRow writes); weight blocks may
// hold any bit pattern except non-finite scales.
//
// Each kernel has a scalar reference (ReferenceQDot) and an AVX2/FMA/F16C twin (Avx2QDot,
// qdot_avx2.cc) that computes the same integer sums and differs only in the order and fusing of
// the f32 operations over blocks. Rows are read byte-wise: any alignment is accepted.
#include <cstdint>

#include "core/tensor.h"

namespace smelt {

// Σ over n values (n a multiple of the weight type's block size) of w_row · a_row, where w_row
// holds RowBytes(weight, n) bytes and a_row RowBytes(ActivationType(weight), n).
using QDotFn = float (*)(const void* w_row, const void* a_row, int64_t n);

// The scalar reference kernel for weights of type `weight`; nullptr where there is none.
QDotFn ReferenceQDot(DType weight);
// The AVX2 twin; nullptr where there is none or it is not built (only valid when
// CpuHasAvx2FmaF16c(): the twins also use FMA and F16C).
QDotFn Avx2QDot(DType weight);
// The AVX-512 twins (qdot_avx512.cc), the AVX2 twin's bits: f16, bf16 and i8_pc (16-lane registers), w8a8
// (VNNI), and the bitmask types where the CPU also has VBMI2 and VNNI (vpexpandb, vpdpbusd); nullptr for other
// types or where not built (valid only where CpuHasAvx512F()).
QDotFn Avx512QDot(DType weight);
// The kernel to run on this CPU: the AVX-512 twin where it has one and the CPU has AVX-512, else
// the AVX2 twin where the CPU has AVX2/FMA/F16C, else the reference;
// nullptr where `weight` has no quantized dot product (f32, most smelt-native types, ...).
QDotFn SelectQDot(DType weight);

// The kernel MatMul runs instead of decoding weight rows: the widest SIMD twin this CPU runs,
// else nullptr. (The scalar references are written to be read, and are slower than decoding a
// row and an f32 dot: docs/BENCHMARKS.md, "Quantized dot kernels".)
QDotFn FastQDot(DType weight);

// Four dot products of one weight row with the activation rows a_rows + k·a_stride (k < 4) into
// out[4]: bit for bit what four calls of FastQDot(weight) give, with each weight block unpacked
// once (prompts and batches reuse a row across tokens).
using QDotX4Fn = void (*)(const void* w_row, const void* a_rows, size_t a_stride, int64_t n, float* out);
// The four-row kernel MatMul uses where T >= 4; nullptr where FastQDot(weight) is null or the type
// has none (today: q8_0, q4_0, q5_0, iq4_nl, q2_K, q4_K, q5_K, q6_K and the sparse s24_q8, s24_q4, sp50_q8,
// sp70_q8, sp50_w8a8, sp70_w8a8, s24_w4a8, sp50_f16, sp70_f16; f16, bf16 and i8_pc where the CPU has AVX-512).
QDotX4Fn FastQDotX4(DType weight);
// The AVX-512 four-row twins (f16, bf16, i8_pc, and the bitmask types as Avx512QDot); nullptr for other
// types or where not built.
QDotX4Fn Avx512QDotX4(DType weight);

// Four dot products of the weight rows w_rows + r·w_stride (r < 4) with one activation row into
// out[4]: bit for bit what four calls of FastQDot(weight) give, with the activation block read
// once and four rows' sums in flight (decoding, where each weight row meets one token).
using QDotRows4Fn = void (*)(const void* w_rows, size_t w_stride, const void* a_row, int64_t n, float* out);
// The four-weight-row kernel where the fast kernel has one (today: s24_w4a8 on AVX-512 VBMI; f16,
// bf16, i8_pc, q3_K and q6_K on AVX-512; the AVX2 forms of q2_K, q4_K, q5_K and q6_K); nullptr otherwise.
QDotRows4Fn FastQDotRows4(DType weight);
// The AVX-512 four-weight-row twins: non-null only where Avx512QDot(weight) is too (the same CPU
// test), so that FastQDot runs the single-row form of the same kernel.
QDotRows4Fn Avx512QDotRows4(DType weight);

// Two weight rows (w_rows, w_rows + w_stride) against four activation rows (a_rows + t·a_stride)
// into out[t·ld + r], r < 2, t < 4: bit for bit what eight calls of FastQDot(weight) give, each
// step's weights read and widened once for four tokens and its activations once for two rows
// (several sequences decoded together).
using QDotRows2x4Fn = void (*)(const void* w_rows, size_t w_stride, const void* a_rows, size_t a_stride, int64_t n,
                               float* out, int64_t ld);
// The two-row, four-token kernel where the fast kernel has one (today: f16, bf16 and i8_pc on AVX-512);
// nullptr otherwise.
QDotRows2x4Fn FastQDotRows2x4(DType weight);
QDotRows2x4Fn Avx512QDotRows2x4(DType weight);

// A weight type's row kernels as the products run them: FastQDot and its four-token,
// four-weight-row and two-row-four-token forms (any may be nullptr).
struct QDotRowKernels {
  QDotFn dot = nullptr;
  QDotX4Fn dot4 = nullptr;
  QDotRows4Fn rows4 = nullptr;
  QDotRows2x4Fn rows2x4 = nullptr;
};
QDotRowKernels FastQDotRowKernels(DType weight);

// n weight rows (w_rows + r·w_stride) against T encoded activation rows (a_rows + t·a_stride) of n
// values each, into out[t·ld + r]: decoding (T < 4) four weight rows per call where k.rows4 exists;
// from 4 tokens on two weight rows × four tokens per call where k.rows2x4 exists, else four tokens
// per call where k.dot4 exists; the rest one k.dot each. Every output the bits of k.dot's. The row loop MatMul and the fused products share.
void QDotRows(const QDotRowKernels& k, const uint8_t* w_rows, size_t w_stride, int64_t rows, const uint8_t* a_rows,
              size_t a_stride, int64_t T, int64_t n, float* out, int64_t ld);

// SelectQDot(weight)(w_row, a_row, n); `weight` must have a kernel.
float DotQ(DType weight, const void* w_row, const void* a_row, int64_t n);

}  // namespace smelt
