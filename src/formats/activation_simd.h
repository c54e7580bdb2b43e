#pragma once
// Internals of formats/activation.cc shared with its AVX-512 twin (not a public API).
#include <cstdint>

namespace smelt {

// x86 ggml-cpu's Q8_0 block encoder (32 values): writes the codes, returns the f32 scale d.
float ReferenceEncodeQ8Block(const float* x, int8_t* q);

// One Q8_0 activation block of 32 values: writes the codes, sets *amax to max |x|, and returns
// true; returns false (writing nothing) where a value is not finite, which the scalar encoder
// handles. The same codes and amax as the scalar encoder, bit for bit.
using EncodeQ8BlockFn = bool (*)(const float* x, int8_t* q, float* amax);

// The AVX-512 twin (activation_avx512.cc); nullptr where not built. Valid only where CpuHasAvx512F().
EncodeQ8BlockFn Avx512EncodeQ8Block();

}  // namespace smelt
