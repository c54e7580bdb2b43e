#pragma once
// Internals of formats/activation.cc shared with its AVX-512 twin (not a public API).
#include <cstdint>

#include "formats/k_quants.h"

namespace smelt {

// x86 ggml-cpu's Q8_0 block encoder (32 values): writes the codes, returns the f32 scale d.
float ReferenceEncodeQ8Block(const float* x, int8_t* q);

// One Q8_0 activation block of 32 values: writes the codes, sets *amax to max |x|, and returns
// true; returns false (writing nothing) where a value is not finite, which the scalar encoder
// handles. The same codes and amax as the scalar encoder, bit for bit.
using EncodeQ8BlockFn = bool (*)(const float* x, int8_t* q, float* amax);

// The AVX-512 twin (activation_avx512.cc); nullptr where not built. Valid only where CpuHasAvx512F().
EncodeQ8BlockFn Avx512EncodeQ8Block();

// One Q8_K activation block of 256 values, as QuantizeRowQ8_KRef writes it (the codes, bsums and
// d bit for bit), returning true; false (writing nothing) where a value is not finite.
using EncodeQ8KBlockFn = bool (*)(const float* x, BlockQ8_K* y);
EncodeQ8KBlockFn Avx512EncodeQ8KBlock();  // nullptr where not built; valid where CpuHasAvx512F()
EncodeQ8KBlockFn Avx2EncodeQ8KBlock();    // nullptr where not built; valid where CpuHasAvx2FmaF16c()

// A whole per-token int8 row (i8_pc: the f32 d = max|x| / 127, then the n codes), as
// QuantizeRowI8PC writes it, byte for byte, returning true; false (writing nothing) where a value
// is not finite or 1 / d overflows, which the scalar encoder handles.
using EncodeI8RowFn = bool (*)(const float* x, void* row, int64_t n);
EncodeI8RowFn Avx512EncodeI8Row();  // nullptr where not built; valid where CpuHasAvx512F()

}  // namespace smelt
