#pragma once
// Run-time CPU feature detection for the few kernels that have a SIMD twin of a scalar
// reference. The answer is computed once (function-local static const) and never changes.
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

}  // namespace smelt
