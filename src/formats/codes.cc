// Code access for the formats of formats/codes.h. Every code is one or two bit fields of the
// block's bytes (low bits, then an optional high plane, or for the densely packed smelt-native
// formats the part of a code that straddles into the next byte) minus a storage bias, so one
// generic reader/writer serves all formats; each format only says where element e's fields are.
// Grids are read from the block's scale fields in the decoder's arithmetic order.
#include "formats/codes.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/half.h"
#include "formats/fp8.h"
#include "formats/group_int.h"
#include "formats/iq4_nl.h"
#include "formats/k_quants.h"
#include "formats/nf4.h"
#include "formats/pow2.h"
#include "formats/q4_0.h"
#include "formats/q4_1.h"
#include "formats/q5_0.h"
#include "formats/q5_1.h"
#include "formats/q8_0.h"
#include "formats/quant_util.h"  // for its "no fused multiply-add" pragma (GridValue)
#include "formats/types.h"

namespace smelt {
namespace {

// IQ4_NL's codebook as floats, the operand to_float multiplies by d.
constexpr float kIQ4NLTable[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                   1,    13,   25,  38,  53,  69,  89,  113};

// pow2's level of each 4-bit code for d = 1, in code order (not monotone: 0..6 positive
// powers, 7 zero, 8..14 negative powers, 15 zero again), from the decoder's own Pow2Level.
const float* Pow2Table() {
  static const std::array<float, 16> table = [] {
    std::array<float, 16> t{};
    for (int c = 0; c < 16; ++c) t[(size_t)c] = Pow2Level((uint8_t)c);
    return t;
  }();
  return table.data();
}

// The 256 values of an FP8 element format in code order (the raw byte), from the decoder's own
// Fp8ToFloat: not monotone (codes >= 0x80 are the negatives), and holding NaNs (E4M3 and
// E5M2) and infinities (E5M2), which NearestCode never chooses.
template <const Fp8Format& F>
const float* Fp8Table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int c = 0; c < 256; ++c) t[(size_t)c] = Fp8ToFloat(F, (uint8_t)c);
    return t;
  }();
  return table.data();
}

// One group-int type's parameters and the byte offsets of its fields (formats/group_int.h).
struct GroupIntLayout {
  DType type;
  int bits, lo, hi;  // code width and range (codes lo..hi are stored as code - lo)
  bool symmetric;
  int dm, qs;  // offsets of the fp16 scale (then the offset m, asymmetric) and of the codes
};
template <int Bits, bool Symmetric, int Group>
constexpr GroupIntLayout GroupIntRow(DType t) {
  using G = GroupInt<Bits, Symmetric, Group>;
  using B = typename G::Block;
  return {t, Bits, G::kLo, G::kHi, Symmetric, (int)offsetof(B, dm), (int)offsetof(B, qs)};
}
constexpr GroupIntLayout kGroupInt[] = {
    GroupIntRow<4, true, 32>(DType::kI4S_G32),   GroupIntRow<4, true, 64>(DType::kI4S_G64),
    GroupIntRow<4, true, 128>(DType::kI4S_G128), GroupIntRow<4, false, 32>(DType::kI4A_G32),
    GroupIntRow<4, false, 64>(DType::kI4A_G64),  GroupIntRow<4, false, 128>(DType::kI4A_G128),
    GroupIntRow<3, true, 32>(DType::kI3S_G32),   GroupIntRow<3, true, 64>(DType::kI3S_G64),
    GroupIntRow<3, true, 128>(DType::kI3S_G128), GroupIntRow<3, false, 32>(DType::kI3A_G32),
    GroupIntRow<3, false, 64>(DType::kI3A_G64),  GroupIntRow<3, false, 128>(DType::kI3A_G128),
    GroupIntRow<2, true, 32>(DType::kI2S_G32),   GroupIntRow<2, true, 64>(DType::kI2S_G64),
    GroupIntRow<2, true, 128>(DType::kI2S_G128), GroupIntRow<2, false, 32>(DType::kI2A_G32),
    GroupIntRow<2, false, 64>(DType::kI2A_G64),  GroupIntRow<2, false, 128>(DType::kI2A_G128),
};

const GroupIntLayout* FindGroupInt(DType t) {
  for (const GroupIntLayout& g : kGroupInt)
    if (g.type == t) return &g;
  return nullptr;
}

// One bit field of a block: `width` bits at bit `shift` of byte `byte`.
struct BitField {
  int byte, shift, width;
};

// Where element e's code lives: code = (lo | hi << lo.width) - bias, with hi absent when its
// width is 0; or, for Q8_0, the byte read as int8.
struct CodeLocation {
  BitField lo, hi;
  int bias;
  bool int8;
};

// Q4_0/Q4_1/IQ4_NL and the low nibbles of Q5_0/Q5_1: byte j%16 of qs, low nibble for j < 16.
BitField Nibble32(size_t qs, int j) { return {(int)qs + j % 16, 4 * (j / 16), 4}; }
// Q5_0/Q5_1's fifth bits: bit j of a little-endian u32.
BitField Bit32(size_t qh, int j) { return {(int)qh + j / 8, j % 8, 1}; }
// Q2_K/Q3_K's 2-bit planes (k_quants.h): byte 32*(e/128) + e%32, bits 2*((e%128)/32).
BitField TwoBitPlane(size_t qs, int e) { return {(int)qs + 32 * (e / 128) + e % 32, 2 * (e % 128 / 32), 2}; }
// Q4_K/Q5_K's nibbles: byte 32*(e/64) + e%32, high nibble for e%64 >= 32.
BitField KNibble(size_t qs, int e) { return {(int)qs + 32 * (e / 64) + e % 32, 4 * (e % 64 / 32), 4}; }
// Q3_K's hmask and Q5_K's qh: bit e/32 of byte e%32.
BitField KHighBit(size_t qh, int e) { return {(int)qh + e % 32, e / 32, 1}; }

constexpr BitField kNoField = {0, 0, 0};

// Code e of a dense array of `bits`-bit codes at byte qs (formats/bitpack.h): the bits in its
// first byte, then the rest (if it straddles a byte boundary) from the low bits of the next.
CodeLocation DenseCode(size_t qs, int e, int bits, int bias) {
  const int p = e * bits, first = std::min(bits, 8 - p % 8);
  const BitField lo = {(int)qs + p / 8, p % 8, first};
  const BitField hi = first < bits ? BitField{(int)qs + p / 8 + 1, 0, bits - first} : kNoField;
  return {lo, hi, bias, false};
}

CodeLocation Locate(DType t, int e) {
  if (const GroupIntLayout* g = FindGroupInt(t)) return DenseCode((size_t)g->qs, e, g->bits, -g->lo);
  switch (t) {
    case DType::kQ4_0: return {Nibble32(offsetof(BlockQ4_0, qs), e), kNoField, 8, false};
    case DType::kQ4_1: return {Nibble32(offsetof(BlockQ4_1, qs), e), kNoField, 0, false};
    case DType::kIQ4_NL: return {Nibble32(offsetof(BlockIQ4_NL, qs), e), kNoField, 0, false};
    case DType::kQ5_0:
      return {Nibble32(offsetof(BlockQ5_0, qs), e), Bit32(offsetof(BlockQ5_0, qh), e), 16, false};
    case DType::kQ5_1:
      return {Nibble32(offsetof(BlockQ5_1, qs), e), Bit32(offsetof(BlockQ5_1, qh), e), 0, false};
    case DType::kQ8_0: return {{(int)offsetof(BlockQ8_0, qs) + e, 0, 8}, kNoField, 0, true};
    case DType::kQ2_K: return {TwoBitPlane(offsetof(BlockQ2_K, qs), e), kNoField, 0, false};
    // Q3_K decodes low2 - (h ? 0 : 4), which is the 3-bit code (low2 | h << 2) minus 4.
    case DType::kQ3_K:
      return {TwoBitPlane(offsetof(BlockQ3_K, qs), e), KHighBit(offsetof(BlockQ3_K, hmask), e), 4,
              false};
    case DType::kQ4_K: return {KNibble(offsetof(BlockQ4_K, qs), e), kNoField, 0, false};
    case DType::kQ5_K:
      return {KNibble(offsetof(BlockQ5_K, qs), e), KHighBit(offsetof(BlockQ5_K, qh), e), 0, false};
    case DType::kQ6_K: {
      // Per 128-weight half h: low nibbles in ql[64h + r%64] (high nibble for r >= 64), top two
      // bits in qh[32h + r%32] at bits 2*(r/32); r = e % 128 (DequantizeRowQ6_K's loop).
      const int h = e / 128, r = e % 128;
      const BitField lo = {(int)offsetof(BlockQ6_K, ql) + 64 * h + r % 64, 4 * (r / 64), 4};
      const BitField hi = {(int)offsetof(BlockQ6_K, qh) + 32 * h + r % 32, 2 * (r / 32), 2};
      return {lo, hi, 32, false};
    }
    case DType::kNF4: return DenseCode(offsetof(BlockNF4, qs), e, 4, 0);
    case DType::kPow2_B32: return DenseCode(offsetof(BlockPow2, qs), e, 4, 0);
    case DType::kF8E4M3_B32:
    case DType::kF8E5M2_B32: return DenseCode(offsetof(BlockF8, qs), e, 8, 0);
    default: break;
  }
  SMELT_ASSERT(false && "type without code access");
  return {};
}

int ReadField(const uint8_t* p, BitField f) { return (p[f.byte] >> f.shift) & ((1 << f.width) - 1); }

void WriteField(uint8_t* p, BitField f, int v) {
  const int mask = ((1 << f.width) - 1) << f.shift;
  p[f.byte] = (uint8_t)((p[f.byte] & ~mask) | ((v << f.shift) & mask));
}

// Block fields are read from bytes with memcpy: blocks passed as void* need no alignment.
float Fp16At(const uint8_t* block, size_t offset) {
  fp16_t h;
  std::memcpy(&h, block + offset, sizeof(h));
  return Fp16ToFloat(h);
}

float Unscaled(const ElementGrid& g, int q) { return g.table != nullptr ? g.table[q] : (float)q; }

// The offset of the formats without one: -0.0f, because -0.0f + x == x bit for bit for every x
// (+0.0f + -0.0f would give +0.0f where the decoder's d * q gives -0.0f).
constexpr float kNoOffset = -0.0f;

void Fill(ElementGrid* out, int n, const ElementGrid& g) {
  for (int i = 0; i < n; ++i) out[i] = g;
}

}  // namespace

bool HasCodeAccess(DType t) {
  switch (t) {
    case DType::kQ4_0: case DType::kQ4_1: case DType::kQ5_0: case DType::kQ5_1:
    case DType::kQ8_0: case DType::kQ2_K: case DType::kQ3_K: case DType::kQ4_K:
    case DType::kQ5_K: case DType::kQ6_K: case DType::kIQ4_NL:
    case DType::kNF4: case DType::kPow2_B32: case DType::kF8E4M3_B32: case DType::kF8E5M2_B32:
      return true;
    default:
      return FindGroupInt(t) != nullptr;
  }
}

void BlockGrids(DType t, const void* block, ElementGrid* out) {
  SMELT_ASSERT(HasCodeAccess(t));
  const uint8_t* p = static_cast<const uint8_t*>(block);
  const int n = (int)Traits(t).block_size;
  if (const GroupIntLayout* g = FindGroupInt(t)) {
    // GroupInt::Dequantize: d * q + m, with m = +0.0f for the symmetric kind (so the offset is
    // the decoder's +0.0f, not kNoOffset: d * 0 + 0.0f is +0.0f even where d * 0 is -0.0f).
    const float d = Fp16At(p, (size_t)g->dm);
    const float m = g->symmetric ? 0.0f : Fp16At(p, (size_t)g->dm + sizeof(fp16_t));
    return Fill(out, n, {d, m, g->lo, g->hi, nullptr});
  }
  switch (t) {
    case DType::kNF4: return Fill(out, n, {Fp16At(p, offsetof(BlockNF4, d)), kNoOffset, 0, 15, kNF4Values});
    case DType::kPow2_B32: return Fill(out, n, {Fp16At(p, offsetof(BlockPow2, d)), kNoOffset, 0, 15, Pow2Table()});
    case DType::kF8E4M3_B32:
      return Fill(out, n, {Fp16At(p, offsetof(BlockF8, d)), kNoOffset, 0, 255, Fp8Table<kE4M3>()});
    case DType::kF8E5M2_B32:
      return Fill(out, n, {Fp16At(p, offsetof(BlockF8, d)), kNoOffset, 0, 255, Fp8Table<kE5M2>()});
    case DType::kQ4_0:
      return Fill(out, kQK4_0, {Fp16At(p, offsetof(BlockQ4_0, d)), kNoOffset, -8, 7, nullptr});
    case DType::kQ5_0:
      return Fill(out, kQK5_0, {Fp16At(p, offsetof(BlockQ5_0, d)), kNoOffset, -16, 15, nullptr});
    case DType::kQ8_0:
      return Fill(out, kQK8_0, {Fp16At(p, offsetof(BlockQ8_0, d)), kNoOffset, -127, 127, nullptr});
    case DType::kQ4_1:
      return Fill(out, kQK4_1,
                  {Fp16At(p, offsetof(BlockQ4_1, d)), Fp16At(p, offsetof(BlockQ4_1, m)), 0, 15, nullptr});
    case DType::kQ5_1:
      return Fill(out, kQK5_1,
                  {Fp16At(p, offsetof(BlockQ5_1, d)), Fp16At(p, offsetof(BlockQ5_1, m)), 0, 31, nullptr});
    case DType::kIQ4_NL:
      return Fill(out, kQK4_NL, {Fp16At(p, offsetof(BlockIQ4_NL, d)), kNoOffset, 0, 15, kIQ4NLTable});
    case DType::kQ2_K: {
      // DequantizeRowQ2_K: dl = d * (sc & 15), ml = dmin * (sc >> 4), value dl * q - ml.
      const float d = Fp16At(p, offsetof(BlockQ2_K, d)), dmin = Fp16At(p, offsetof(BlockQ2_K, dmin));
      for (int s = 0; s < kQK_K / 16; ++s) {
        const uint8_t sc = p[offsetof(BlockQ2_K, scales) + s];
        Fill(out + 16 * s, 16, {d * (float)(sc & 0x0f), -(dmin * (float)(sc >> 4)), 0, 3, nullptr});
      }
      return;
    }
    case DType::kQ3_K: {
      const float d = Fp16At(p, offsetof(BlockQ3_K, d));
      for (int s = 0; s < kQK_K / 16; ++s) {
        const float dl = d * (float)Q3KScale(p + offsetof(BlockQ3_K, scales), s);
        Fill(out + 16 * s, 16, {dl, kNoOffset, -4, 3, nullptr});
      }
      return;
    }
    case DType::kQ4_K:
    case DType::kQ5_K: {
      // The two share d, dmin and scales at the same offsets (static_asserts below).
      const float d = Fp16At(p, offsetof(BlockQ4_K, d)), dmin = Fp16At(p, offsetof(BlockQ4_K, dmin));
      const int qmax = t == DType::kQ4_K ? 15 : 31;
      for (int s = 0; s < kQK_K / 32; ++s) {
        uint8_t sc, m;
        GetScaleMinK4(s, p + offsetof(BlockQ4_K, scales), &sc, &m);
        Fill(out + 32 * s, 32, {d * (float)sc, -(dmin * (float)m), 0, qmax, nullptr});
      }
      return;
    }
    case DType::kQ6_K: {
      // DequantizeRowQ6_K evaluates d * sc * q left to right: (d * sc) * q.
      const float d = Fp16At(p, offsetof(BlockQ6_K, d));
      for (int s = 0; s < kQK_K / 16; ++s) {
        const int8_t sc = (int8_t)p[offsetof(BlockQ6_K, scales) + s];
        Fill(out + 16 * s, 16, {d * (float)sc, kNoOffset, -32, 31, nullptr});
      }
      return;
    }
    default: break;
  }
}
static_assert(offsetof(BlockQ4_K, d) == offsetof(BlockQ5_K, d) &&
              offsetof(BlockQ4_K, dmin) == offsetof(BlockQ5_K, dmin) &&
              offsetof(BlockQ4_K, scales) == offsetof(BlockQ5_K, scales));

void GetBlockCodes(DType t, const void* block, int* codes) {
  SMELT_ASSERT(HasCodeAccess(t));
  const uint8_t* p = static_cast<const uint8_t*>(block);
  const int n = (int)Traits(t).block_size;
  for (int e = 0; e < n; ++e) {
    const CodeLocation c = Locate(t, e);
    if (c.int8) {
      codes[e] = (int8_t)p[c.lo.byte];
      continue;
    }
    int v = ReadField(p, c.lo);
    if (c.hi.width > 0) v |= ReadField(p, c.hi) << c.lo.width;
    codes[e] = v - c.bias;
  }
}

void SetBlockCodes(DType t, void* block, const int* codes) {
  SMELT_ASSERT(HasCodeAccess(t));
  uint8_t* p = static_cast<uint8_t*>(block);
  const int n = (int)Traits(t).block_size;
  for (int e = 0; e < n; ++e) {
    const CodeLocation c = Locate(t, e);
    if (c.int8) {
      SMELT_ASSERT(codes[e] >= -128 && codes[e] <= 127);
      p[c.lo.byte] = (uint8_t)(int8_t)codes[e];
      continue;
    }
    const int v = codes[e] + c.bias;
    SMELT_ASSERT(v >= 0 && v < (1 << (c.lo.width + c.hi.width)));
    WriteField(p, c.lo, v);
    if (c.hi.width > 0) WriteField(p, c.hi, v >> c.lo.width);
  }
}

float GridValue(const ElementGrid& g, int q) {
  const float scaled = g.scale * Unscaled(g, q);  // its own statement: rounded before the add
  return g.offset + scaled;
}

int NearestCode(const ElementGrid& g, double w) {
  // Table entries that are not finite (FP8's NaNs and infinities) are never chosen; every
  // other format's values are all finite, so for them this is a plain search of qmin..qmax.
  if (g.scale == 0.0f || !std::isfinite(g.scale) || !std::isfinite(g.offset) || !std::isfinite(w)) {
    // (Codes can be negative, so "none yet" is a flag, not a sentinel code.)
    int best = g.qmin;
    bool found = false;
    for (int q = g.qmin; q <= g.qmax; ++q) {
      if (!std::isfinite(Unscaled(g, q))) continue;
      if (!found || std::fabs(Unscaled(g, q)) < std::fabs(Unscaled(g, best))) best = q, found = true;
    }
    return best;
  }
  int lo, hi;  // candidate codes
  if (g.table != nullptr) {
    // A codebook: try every entry, since tables need not be monotone in code order (pow2, FP8).
    lo = g.qmin, hi = g.qmax;
  } else {
    // The rounded real-valued position, clamped; rounding of the division can put the true
    // nearest one step away, so its neighbours are tried too.
    const double pos = std::clamp(((double)w - g.offset) / g.scale, (double)g.qmin, (double)g.qmax);
    const int q0 = (int)std::lround(pos);
    lo = std::max(g.qmin, q0 - 1), hi = std::min(g.qmax, q0 + 1);
  }
  int best = lo;
  double best_err = std::numeric_limits<double>::infinity();
  for (int q = lo; q <= hi; ++q) {
    const float v = GridValue(g, q);
    if (!std::isfinite(v)) continue;
    const double err = std::fabs(w - (double)v);
    if (err < best_err) best = q, best_err = err;
  }
  return best;
}

}  // namespace smelt
