#pragma once
// The activation side of a quantized dot product, as ggml's CPU backend computes it on x86.
// ggml never multiplies a quantized weight row by f32 activations: it first encodes the
// activation row in the weight type's "vec_dot_type" (Q4_0 · Q8_0, Q4_1 · Q8_1, k-quants · Q8_K,
// F16 · F16, ...) and takes the dot product of the two encodings. Reproducing that rounding is
// what makes smelt's log-probabilities on a quantized file agree with llama.cpp's to the last
// near-tie, and it is also what smelt's int8 kernels compute.
//
//   weight type            activation type  activation encoder (x86 ggml-cpu's from_float)
//   f32 (and f64, ints)    f32              none
//   f16 / bf16             f16 / bf16       round to nearest even
//   q4_0 q5_0 q8_0 iq4_nl  q8_0             d = amax/127 (fp16), q = round-half-even(x · 127/amax)
//   q4_1 q5_1              q8_1             as q8_0, plus s = d · Σq
//   q2_K … q6_K            q8_K             quantize_row_q8_K_ref (f32 d)
//   s24_q{8,4} sp{50,70}_q8 q8_0             as for q8_0 (smelt-native sparse types)
//   w8a8 (smelt-native)    i8_pc            per token: d = amax/127 (f32), q = round(x/d)
//   sp{50,70}_w8a8 s24_w4a8 i8_pc           as for w8a8 (smelt-native sparse types)
//   sp{50,70}_f16          f32              none (smelt-native: fp16 values, f32 activations)
//   other smelt types      f32              none (weight-only formats)
//
// The q8_0/q8_1 encoders here differ from the reference quantizers of formats/q8_0.h (which
// llama-quantize uses for weights) in two details that change some codes: the reciprocal scale
// is 127/amax rather than 1/d, and halves round to even (the AVX2 code's _mm256_round_ps)
// instead of away from zero. One detail is not carried by rounded values: for Q4_1/Q5_1 weights
// ggml multiplies each block's minimum by the Q8_1 block's s = fp16(d·Σq), where a product with
// the rounded values sees d·Σq itself (a relative 2^-11 on that term; kernels that work on the
// encoded blocks use s as ggml does). formats/ggml_parity_test.cc checks both the table and the bytes
// against the CPU library the llama.cpp peer selects on this machine.
#include <cstdint>

#include "core/tensor.h"

namespace smelt {

// The type ggml rounds activations to before a dot product with weights of type `weight`
// (kF32: no rounding). smelt's own types follow the ggml type their kernels run as: the group types
// i{4,3,2}s_g* and i{4,3,2}a_g* as Q4_0 and Q4_1 (Q8_0, Q8_1); nf4, whose kernels multiply its
// levels in fixed point (formats/nf4.h), as IQ4_NL (Q8_0); the w8a8 and sparse int8 types per token
// (i8_pc); the other weight-only types (the per-row types, km4_pc) see f32.
DType ActivationType(DType weight);

// Encodes x[n] in `act` (one of the activation types above; n a multiple of its block size) as
// ggml-cpu's from_float does: writes RowBytes(act, n) bytes to y.
void QuantizeActivationRow(DType act, const float* x, void* y, int64_t n);

// y[n] = the values a dot product with a `weight`-typed row actually sees: x encoded in
// ActivationType(weight) and decoded again. x and y may alias. n: a multiple of the activation
// block size (which divides the weight's).
void RoundActivationRow(DType weight, const float* x, float* y, int64_t n);

}  // namespace smelt
