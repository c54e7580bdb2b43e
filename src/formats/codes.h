#pragma once
// The integer codes of an encoded block, per format, for algorithms that choose codes themselves
// (GPTQ, AWQ-style searches, code-level fine tuning) while keeping the scales the block's own
// encoder picked. Every quantized format smelt writes is "a grid per element, a code per
// element": the block's scales fix each element's grid and the code picks a point on it.
//
// The code convention is the integer the decoder multiplies (after removing the storage bias),
// so that the grid formula below is the decoder's own arithmetic and reproduces to_float
// bit for bit:
//
// | type       | grid per | code range          | value (decoder's order)    |
// |------------|----------|---------------------|----------------------------|
// | q4_0       | 32       | -8..7               | d * q                      |
// | q4_1       | 32       | 0..15               | m + d * q                  |
// | q5_0       | 32       | -16..15             | d * q                      |
// | q5_1       | 32       | 0..31               | m + d * q                  |
// | q8_0       | 32       | -127..127 *         | d * q                      |
// | q2_K       | 16       | 0..3                | -(dmin * m) + (d * sc) * q |
// | q3_K       | 16       | -4..3               | (d * (sc - 32)) * q        |
// | q4_K       | 32       | 0..15               | -(dmin * m) + (d * sc) * q |
// | q5_K       | 32       | 0..31               | -(dmin * m) + (d * sc) * q |
// | q6_K       | 16       | -32..31             | (d * sc) * q               |
// | iq4_nl     | 32       | 0..15               | d * kIQ4NLValues[q]        |
// | i<b>s_g<G> | G        | -2^(b-1)..2^(b-1)-1 | d * q + 0.0f               |
// | i<b>a_g<G> | G        | 0..2^b-1            | d * q + m                  |
// | nf4        | 64       | 0..15               | d * kNF4Values[q]          |
// | pow2_b32   | 32       | 0..15 **            | d * Pow2Level(q)           |
// | f8e4m3_b32 | 32       | 0..255 ***          | d * Fp8ToFloat(E4M3, q)    |
// | f8e5m2_b32 | 32       | 0..255 ***          | d * Fp8ToFloat(E5M2, q)    |
//
// (*) Q8_0 stores int8 codes, so -128 can be stored (SetBlockCodes accepts it and
// GetBlockCodes returns it from a foreign file), but qmin is -127: ggml's from_float never
// writes -128 and int8 dot-product kernels that take |q| by negation cannot represent it, so
// an algorithm should not choose it.
// (**) pow2's table is in code order, which is not monotone (0..6: +2^-q, 7: 0, 8..14:
// -2^-(q-8), 15: 0 again); codes 7 and 15 both decode to 0 and NearestCode picks 7, the one
// from_float writes.
// (***) the code is the raw FP8 byte (sign in bit 7), so the 256-entry table is not monotone,
// and it holds NaNs (E4M3: 0x7f, 0xff; E5M2: exponent all ones with a mantissa) and, in E5M2,
// ±inf (0x7c, 0xfc). Such codes can be stored and read back, but NearestCode never returns one.
// Group-int codes are densely packed, so a 3-bit code can straddle two bytes (formats/bitpack.h).
#include <cstdint>

#include "core/tensor.h"

namespace smelt {

// The values an element can take: offset + scale * (table ? table[q] : q) for code q in
// qmin..qmax. table is the codebook of a table format (IQ4_NL, NF4, pow2, FP8: table[q] for
// every q in qmin..qmax, static storage, in code order and not necessarily monotone), else
// nullptr. Formats without an offset get -0.0f, the one value that adds to any x without
// changing its bits (see GridValue); the symmetric group-int types get their decoder's +0.0f.
struct ElementGrid {
  float scale, offset;
  int qmin, qmax;
  const float* table;
};

// Whether the functions below cover type t (the formats in the table above).
bool HasCodeAccess(DType t);

// The grid of every element of one encoded block: out[Traits(t).block_size]; elements of one
// sub-block get equal entries. GridValue(out[e], code e) equals to_float's value of element e
// bit for bit (see GridValue). The block is read as bytes, so it needs no alignment.
void BlockGrids(DType t, const void* block, ElementGrid* out);
// codes[Traits(t).block_size] <- the block's codes, in the convention above.
void GetBlockCodes(DType t, const void* block, int* codes);
// Writes codes[Traits(t).block_size] into the block, leaving its scales unchanged. Each code
// must fit the format's bit field (asserted): qmin..qmax, and -128 for Q8_0.
void SetBlockCodes(DType t, void* block, const int* codes);

// offset + scale * (table ? table[q] : q), evaluated as two separately rounded f32 operations
// (never a fused multiply-add). Since a + (-b) == a - b and f32 + and * commute exactly, this
// is the decoder's own arithmetic for every format above (e.g. Q2_K decodes
// (d*sc)*q - dmin*m), so it is bit-identical to to_float, not merely within an ulp.
float GridValue(const ElementGrid& g, int q);
// The code in qmin..qmax whose GridValue is nearest to w (values past either end clamp to it;
// exact ties go to the lower code), among the codes whose value is finite. A zero or
// non-finite scale, or a non-finite w, gives the code whose unscaled value is nearest to 0
// (with a zero scale every code has the same value). Codebooks are searched entry by entry
// (cost: the table's size per call, 256 for FP8), so they need not be sorted.
int NearestCode(const ElementGrid& g, double w);

}  // namespace smelt
