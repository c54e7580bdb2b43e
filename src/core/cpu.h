#pragma once
// Run-time CPU feature detection for the few kernels that have a SIMD twin of a scalar
// reference. The answers are computed once (function-local static const) and never change.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

namespace smelt {

// True when the CPU executing this process supports AVX2 (x86-64 only).
inline bool CpuHasAvx2() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
#else
  return false;
#endif
}

// True when the CPU supports AVX2 together with FMA and F16C (every AVX2 CPU of Intel and AMD
// has all three, but they are separate CPUID bits: leaf 1, ecx bits 12 and 29; read directly
// because clang's __builtin_cpu_supports does not know "f16c").
inline bool CpuHasAvx2FmaF16c() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  static const bool has = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!CpuHasAvx2() || !__get_cpuid(1, &a, &b, &c, &d)) return false;
    return (c >> 12 & 1) != 0 && (c >> 29 & 1) != 0;
  }();
  return has;
#else
  return false;
#endif
}

}  // namespace smelt
