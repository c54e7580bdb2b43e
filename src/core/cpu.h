#pragma once
// Run-time CPU feature detection for the few kernels that have a SIMD twin of a scalar
// reference. The answers are computed once (function-local static const) and never change.
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
// has all three, but they are separate CPUID bits).
inline bool CpuHasAvx2FmaF16c() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  static const bool has = CpuHasAvx2() && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  return has;
#else
  return false;
#endif
}

}  // namespace smelt
