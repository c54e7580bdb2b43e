// Included by a source with AVX-512 intrinsics in functions that enable AVX-512 by target
// attribute, after <immintrin.h>; gcc_avx512_warnings_on.h at its end undoes it. GCC 12's AVX-512
// intrinsics start from _mm512_undefined_*() values, which its uninitialized-use warnings flag
// there (a false positive). No include guard: each source includes it once, and unity builds put
// several such sources in one unit, each with its own push and pop.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
