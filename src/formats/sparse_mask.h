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

}  // namespace smelt
