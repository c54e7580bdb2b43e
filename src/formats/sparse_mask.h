#pragma once
// Unstructured sparsity with a bitmask: a row keeps any subset of its weights. It is stored as
//
//   f32 d                     the row's scale (header, TypeTraits::row_header)
//   n/32 uint32 masks         bit j of mask b: weight 32·b + j is non-zero
//   Cap·n/32 int8 codes       the non-zero weights' codes in position order, then zeros
//
// weight = d · q, q in −127..127 (−128 never written), d = max|x| / 127 (i8_pc's grid). A row
// holds at most Cap·n/32 non-zeros (its capacity; the whole row's, not each block's, so the
// non-zeros may cluster anywhere in it), which makes every row the same size, RowBytes =
// 4 + (n/32)·(4 + Cap): rows stay addressable by index (threads take rows) and the GGUF machinery
// sizes tensors as for any other type. Bits per weight: 8·(4 + Cap)/32 + 32/n, falling with the
// capacity: sp50_q8 (Cap 16, a row at least 50 % zeros) 5.0, sp70_q8 (Cap 10, at least 68.75 %
// zeros) 3.5, against 8.5 for q8_0.
//
// sp50_w8a8 and sp70_w8a8 are the same bytes (same capacities) for per-token int8 activations,
// as w8a8 is i8_pc's layout: kernels/qdot.h sums the whole row's products as one integer. With a
// capacity of 16 per 32, sp50 also holds any 2:4 row exactly (2 bits of mask per kept weight, as
// many as 2-bit positions take).
//
// from_float marks every non-zero input weight (a pruned row keeps its mask exactly; a value
// that rounds to code 0 keeps its bit). Where a row has more non-zeros than its capacity it keeps
// the Cap·n/32 of largest magnitude (ties: the lower position) and zeroes the rest: magnitude
// pruning to fit. Decoding accepts any bytes: set bits beyond the capacity decode as 0.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace smelt {

inline constexpr int kQKSparseMask = 32;

struct RowHeaderSparseMask {
  float d;
};
static_assert(sizeof(RowHeaderSparseMask) == 4, "sparse mask row header is one f32");

template <int Cap>
struct SparseMaskRow {
  static_assert(Cap > 0 && Cap <= kQKSparseMask);
  static constexpr int64_t kBlock = kQKSparseMask;
  static constexpr size_t kHeader = sizeof(RowHeaderSparseMask);
  static constexpr size_t kBlockBytes = 4 + Cap;  // one mask word and Cap codes per 32 weights
  // Rows start anywhere (RowBytes need not be a multiple of 4), so fields are read with memcpy.
  static void Dequantize(const void* row, float* y, int64_t n);
  static void Quantize(const float* x, void* row, int64_t n);
};

// Where the parts of a row of n weights lie, in bytes from the row's start.
inline constexpr size_t kSparseMaskOffset = sizeof(RowHeaderSparseMask);
inline size_t SparseCodesOffset(int64_t n) { return sizeof(RowHeaderSparseMask) + 4 * (size_t)(n / kQKSparseMask); }

// A row of n weights with capacity `cap` values of `value_bytes` bytes each (1: int8 codes, 2:
// fp16 values), as its parts: what the kernels and decoders walk.
struct SparseMaskRowView {
  const uint8_t* masks;  // n/32 mask words
  const uint8_t* codes;  // the stored values, in position order
  const uint8_t* end;    // codes + the row's capacity (cap · n/32 values)
  int64_t blocks;        // n/32
};
inline SparseMaskRowView ViewSparseMaskRow(const void* row, int64_t n, int cap, int value_bytes = 1) {
  const auto* p = static_cast<const uint8_t*>(row);
  const uint8_t* codes = p + SparseCodesOffset(n);
  return {p + kSparseMaskOffset, codes, codes + (int64_t)value_bytes * cap * (n / kQKSparseMask), n / kQKSparseMask};
}

// sp50_f16 and sp70_f16: the same rows unquantized. The stored values are fp16 (2·Cap bytes per
// 32 weights: 9 and 6 bits/weight against f16's 16) and the header's d multiplies them: 1, or
// max|x| / 65504 where a row would overflow fp16. weight = d · value. from_float keeps positions
// as the int8 rows do and rounds each kept value / d to fp16 (nearest even).
template <int Cap>
struct SparseMaskRowF16 {
  static_assert(Cap > 0 && Cap <= kQKSparseMask);
  static constexpr int64_t kBlock = kQKSparseMask;
  static constexpr size_t kHeader = sizeof(RowHeaderSparseMask);
  static constexpr size_t kBlockBytes = 4 + 2 * Cap;
  static void Dequantize(const void* row, float* y, int64_t n);
  static void Quantize(const float* x, void* row, int64_t n);
};
// sp70_w4a8: the same masks with int4 codes, against per-token int8 activations (i8_pc). A row of
// n weights (n a multiple of 256):
//
//   f32 d                     the row's scale
//   n/32 uint32 masks         as above
//   Cap·n/256/16 uint8        the multiplier s of each run of 16 stored weights (in position order)
//   Cap·n/256 nibbles         the stored weights' codes q + 8 (q in −8..7: a nibble 0 reads as
//                             −8) in position order, in chunks of 64 (the last one of a row
//                             shorter: L = 16, 32 or 48): byte i of a chunk of L holds code i in
//                             its low nibble and code L/2 + i in its high one (one shift per half)
//
// weight k (the k-th stored one) = (d · s_{k/16}) · q_k. The scale groups are runs of stored
// weights, not of positions, so a kernel that packs a row's activations by its mask multiplies
// them with 64 codes at a time whose four multipliers fall on fixed lanes. Every product is an
// integer, s·q·q_a, so the row's dot is one exact integer sum scaled once by d·d_a, as
// sp70_w8a8's. Cap = 80 stored weights per 256 (at least 68.75 % zeros, sp70's capacity): 2.406
// bits per weight + 32/n, against q4_0's 4.5. from_float keeps positions as the int8 rows do
// (magnitude pruning to the capacity); d = the largest kept magnitude / (7·255); s (1..255; 0 for
// a run of zeros or past the stored weights) the one of least squared error for the run among
// those that map its largest magnitude to ±7 (rounded up) or its most negative value to −8, and
// their neighbours; q = x / (d·s) rounded and clamped to −8..7.
template <int Cap>
struct SparseMaskRowW4 {
  static_assert(Cap > 0 && Cap <= 256 && Cap % 16 == 0, "whole runs of 16 codes per 256 weights");
  static constexpr int64_t kBlock = 256;
  static constexpr size_t kHeader = sizeof(RowHeaderSparseMask);
  static constexpr size_t kBlockBytes = 32 + Cap / 16 + Cap / 2;  // masks, multipliers, Cap nibbles
  static void Dequantize(const void* row, float* y, int64_t n);
  static void Quantize(const float* x, void* row, int64_t n);
};
inline constexpr int kSp70W4Cap = 80;
inline constexpr int kSparseW4Run = 16;  // stored weights per multiplier

// The stored weights a sp70_w4a8-style row of n weights holds: `cap` per 256.
inline constexpr int64_t SparseW4Capacity(int64_t n, int cap) { return (int64_t)cap * (n / 256); }

// A sp70_w4a8-style row of n weights with capacity `cap` per 256, as its parts.
struct SparseMaskW4RowView {
  float d;
  const uint8_t* masks;        // n/32 mask words
  const uint8_t* multipliers;  // capacity/16 bytes
  const uint8_t* codes;        // capacity/2 bytes of nibbles
  int64_t capacity;            // cap·n/256 codes
  int64_t groups;              // n/64: 64-bit mask groups
};
// Where code k of a row with `capacity` codes lies: its byte, and 0 (low nibble) or 4.
struct NibbleAt {
  int64_t byte;
  int shift;
};
inline NibbleAt SparseW4Nibble(int64_t k, int64_t capacity) {
  const int64_t chunk = k / 64, half = std::min<int64_t>(64, capacity - 64 * chunk) / 2, i = k % 64;
  return {32 * chunk + i % half, i < half ? 0 : 4};
}

inline SparseMaskW4RowView ViewSparseMaskW4Row(const void* row, int64_t n, int cap) {
  const auto* p = static_cast<const uint8_t*>(row);
  SparseMaskW4RowView v;
  std::memcpy(&v.d, p, sizeof v.d);
  v.masks = p + kSparseMaskOffset;
  v.capacity = SparseW4Capacity(n, cap);
  v.multipliers = v.masks + 4 * (n / kQKSparseMask);
  v.codes = v.multipliers + v.capacity / kSparseW4Run;
  v.groups = n / 64;
  return v;
}

// Block b's mask word (bit j: weight 32·b + j is stored).
inline uint32_t SparseMaskWord(const uint8_t* masks, int64_t b) {
  uint32_t word;
  std::memcpy(&word, masks + 4 * b, sizeof word);
  return word;
}

// Calls f(position, code) for every stored weight of a row of n weights with capacity Cap, in
// position order: the set mask bits, each taking the next code, up to the capacity (set bits past
// it hold no code and are skipped: they decode as 0).
// (For the fp16 rows, ForEachStoredValue<Cap, uint16_t>: f(position, the value's bits).)
template <int Cap, class V = int8_t, class F>
void ForEachStoredValue(const void* row, int64_t n, F f) {
  const SparseMaskRowView r = ViewSparseMaskRow(row, n, Cap, (int)sizeof(V));
  const int64_t capacity = (r.end - r.codes) / (int64_t)sizeof(V);
  int64_t k = 0;
  for (int64_t b = 0; b < r.blocks && k < capacity; ++b) {
    const uint32_t mask = SparseMaskWord(r.masks, b);
    for (int j = 0; j < kQKSparseMask && k < capacity; ++j)
      if ((mask >> j) & 1) {
        V v;
        std::memcpy(&v, r.codes + sizeof(V) * k++, sizeof v);
        f(b * kQKSparseMask + j, v);
      }
  }
}
template <int Cap, class F>
void ForEachStoredWeight(const void* row, int64_t n, F f) {
  ForEachStoredValue<Cap, int8_t>(row, n, f);
}

// For a sp70_w4a8-style row: f(position, q, s) for every stored weight in position order, q its
// code (nibble − 8) and s its run's multiplier, up to the capacity (set bits past it are skipped:
// they decode as 0).
template <int Cap, class F>
void ForEachStoredW4(const void* row, int64_t n, F f) {
  const SparseMaskW4RowView r = ViewSparseMaskW4Row(row, n, Cap);
  int64_t k = 0;
  for (int64_t b = 0; b < n / kQKSparseMask && k < r.capacity; ++b) {
    const uint32_t mask = SparseMaskWord(r.masks, b);
    for (int j = 0; j < kQKSparseMask && k < r.capacity; ++j)
      if ((mask >> j) & 1) {
        const NibbleAt at = SparseW4Nibble(k, r.capacity);
        const int nibble = (r.codes[at.byte] >> at.shift) & 0x0F;
        f(b * kQKSparseMask + j, nibble - 8, (int)r.multipliers[k / kSparseW4Run]);
        ++k;
      }
  }
}

}  // namespace smelt
