// The AVX-512 twin of ReferenceSwiGlu (kernels/ops.h): 16 elements at a time, z = e^-|x| by the
// shared polynomial (kernels/exp_avx512.h), sigmoid(x) = 1 / (1 + z) for x ≥ 0 and z / (1 + z)
// below (no overflow either way), silu = x · sigmoid. Within a few ulp of the reference, not bit
// for bit; NaN and ±inf come out as the reference's. Only these functions carry the target
// attribute (dispatch: ops.cc).
#include "kernels/ops.h"

#include "core/cpu.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#include "core/gcc_avx512_warnings_off.h"
#include "kernels/exp_avx512.h"

#define SMELT_AVX512 __attribute__((target("avx2,fma,avx512f,avx512dq,avx512vl,avx512bw")))

namespace smelt {
namespace {

SMELT_AVX512 void Avx512SwiGluImpl(float* out, const float* gate, const float* up, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
    const __m512 x = _mm512_maskz_loadu_ps(m, gate + i);
    const __m512 z = ExpNonPositive(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(x)));
    const __m512 num = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ), one, z);
    const __m512 silu = _mm512_div_ps(_mm512_mul_ps(x, num), _mm512_add_ps(one, z));
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(silu, _mm512_maskz_loadu_ps(m, up + i)));
  }
}

}  // namespace

SwiGluFn Avx512SwiGlu() { return CpuHasAvx512F() ? Avx512SwiGluImpl : nullptr; }

}  // namespace smelt

#include "core/gcc_avx512_warnings_on.h"

#else

namespace smelt {
SwiGluFn Avx512SwiGlu() { return nullptr; }
}  // namespace smelt

#endif

#undef SMELT_AVX512
