#pragma once
// Reference fp32 element-wise and per-row ops of a transformer forward pass. Each one is a plain
// loop: these are the scalar twins that faster (SIMD) kernels are tested against.
#include <cstdint>

namespace smelt {

// Dot product of two f32 vectors of length n. kLanes independent partial sums let the compiler
// keep several vector registers busy; the order of additions is fixed by the code, so the same
// inputs always give the same bits. Short vectors (attention heads) take a plain loop.
inline float DotF32(const float* a, const float* b, int64_t n) {
  constexpr int kLanes = 16;
  if (n < kLanes) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
    return sum;
  }
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += a[i + l] * b[i + l];
  for (int w = kLanes / 2; w > 0; w /= 2)
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  float sum = acc[0];
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// out[i] = (x[i] · RmsScale(x, n, eps)) · w[i], i < n. out may alias x.
void RmsNorm(float* out, const float* x, const float* w, int64_t n, float eps);

// 1 / sqrt(mean(x²) + eps) over x[0..n), the mean accumulated in double (as ggml does).
float RmsScale(const float* x, int64_t n, float eps);

// In-place softmax of x[0..n): exp(x - max) / sum (sum in double).
void Softmax(float* x, int64_t n);

// SiLU (swish): x * sigmoid(x).
inline float Silu(float x) { return x / (1.0f + __builtin_expf(-x)); }

// out[i] = silu(gate[i]) * up[i]  (the SwiGLU gating of a Llama FFN). out may alias gate. The twin
// this CPU runs: AVX-512 (the sigmoid from e^-|x| by kernels/exp_avx512.h's polynomial, within a
// few ulp of the reference), else ReferenceSwiGlu (Silu per element). Each element depends only on
// its own inputs, so any split of a row gives the same bits.
void SwiGlu(float* out, const float* gate, const float* up, int64_t n);
void ReferenceSwiGlu(float* out, const float* gate, const float* up, int64_t n);
using SwiGluFn = void (*)(float* out, const float* gate, const float* up, int64_t n);
SwiGluFn Avx512SwiGlu();  // nullptr where the CPU lacks AVX-512 (CpuHasAvx512F())

// a[i] += b[i].
void AddInPlace(float* a, const float* b, int64_t n);

}  // namespace smelt
