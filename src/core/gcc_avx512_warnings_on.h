// The end of what gcc_avx512_warnings_off.h began (no include guard: once per source).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
