// The trait table: one row per DType, tying each format's block struct and scalar reference
// decode/encode (formats/<family>.h) to its ggml id and serialized name.
//
// | name   | block | bytes/block | bits/weight | smelt writes (from_float) |
// |--------|-------|-------------|-------------|---------------------------|
// | f32    |     1 |           4 |      32     | yes                       |
// | f16    |     1 |           2 |      16     | yes                       |
// | bf16   |     1 |           2 |      16     | yes                       |
// | f64    |     1 |           8 |      64     | yes                       |
// | i8     |     1 |           1 |       8     | no (integer, no to_float) |
// | i16    |     1 |           2 |      16     | no (integer, no to_float) |
// | i32    |     1 |           4 |      32     | no (integer, no to_float) |
// | i64    |     1 |           8 |      64     | no (integer, no to_float) |
// | q4_0   |    32 |          18 |       4.5   | yes (ggml ref, bit-exact) |
// | q4_1   |    32 |          20 |       5.0   | yes (ggml ref, bit-exact) |
// | q5_0   |    32 |          22 |       5.5   | yes (ggml ref, bit-exact) |
// | q5_1   |    32 |          24 |       6.0   | yes (ggml ref, bit-exact) |
// | q8_0   |    32 |          34 |       8.5   | yes (ggml ref, bit-exact) |
// | q8_1   |    32 |          36 |       9.0   | yes (ggml ref, bit-exact) |
// | q2_K   |   256 |          84 |       2.625 | yes (ggml ref, bit-exact) |
// | q3_K   |   256 |         110 |       3.4375| yes (ggml ref, bit-exact) |
// | q4_K   |   256 |         144 |       4.5   | yes (ggml ref, bit-exact) |
// | q5_K   |   256 |         176 |       5.5   | yes (ggml ref, bit-exact) |
// | q6_K   |   256 |         210 |       6.5625| yes (ggml ref, bit-exact) |
// | q8_K   |   256 |         292 |       9.125 | yes (ggml ref, bit-exact) |
// | iq4_nl |    32 |          18 |       4.5   | yes (ggml, bit-exact *)   |
//
// smelt-native types (ids 1024+, core/tensor.h; llama_cpp = false: llama.cpp cannot load them):
// | name          | block | bytes/block | bits/weight | file                |
// |---------------|-------|-------------|-------------|---------------------|
// | i<b>s_g<G>    |     G | 2 + b·G/8   | b + 16/G    | formats/group_int.h |
// | i<b>a_g<G>    |     G | 4 + b·G/8   | b + 32/G    | formats/group_int.h |
// |   (b = 4, 3, 2; G = 32, 64, 128: 18 types, one template)                 |
// | nf4           |    64 |          34 |       4.25  | formats/nf4.h       |
// | f8e4m3_b32    |    32 |          34 |       8.5   | formats/fp8.h       |
// | f8e5m2_b32    |    32 |          34 |       8.5   | formats/fp8.h       |
// | pow2_b32      |    32 |          18 |       4.5   | formats/pow2.h      |
// Per-output-channel types (formats/per_channel.h): a row header with the row's scale(s), then
// the codes; bits/weight for a row of n weights:
// | i8_pc, w8a8   |     1 |           1 | 8 + 32/n    | f32 d per row       |
// | i<b>s_pc      |     8 |           b | b + 16/n    | fp16 d per row      |
// | i<b>a_pc      |     8 |           b | b + 32/n    | fp16 d, m per row   |
// | km<b>_pc      |     8 |           b | b + 16·2^b/n| 2^b fp16 centroids  |
// | <base>_o8     | base's block and bytes | base + 384/n | 8 exact weights |
// Sparse types (formats/sparse24.h: 2:4 blocks; formats/sparse_mask.h: a bitmask per 32 weights,
// the non-zero codes packed per row up to a capacity, an f32 scale in the row header):
// | s24_q8        |    32 |          22 |       5.5   | 16 kept int8 + 2-bit positions |
// | s24_q4        |    32 |          14 |       3.5   | 16 kept 4-bit + 2-bit positions |
// | s24_w4a8      |   128 |          52 | 3.25 + 32/n | 64 kept 4-bit, 2 bf16 scales, f32 row header |
// | sp50_q8       |    32 |          20 | 5 + 32/n    | <= 16 non-zeros per 32 (row)    |
// | sp70_q8       |    32 |          14 | 3.5 + 32/n  | <= 10 non-zeros per 32 (row)    |
// | sp50_f16      |    32 |          36 | 9 + 32/n    | <= 16 fp16 values per 32 (row)  |
// | sp70_f16      |    32 |          24 | 6 + 32/n    | <= 10 fp16 values per 32 (row)  |
// Their from_float is smelt's own round to nearest with the format's natural scale (no ggml
// reference exists); all but fp8 also have an importance-weighted from_float_weighted.
//
// "ggml ref, bit-exact": from_float produces the same bytes as ggml's quantize_row_<type>_ref,
// which is also what llama-quantize writes for that type when given no importance matrix (f16
// and bf16: ggml's row converters). (*) IQ4_NL's from_float is the best-scale search of ggml's
// quantize_iq4_nl (what llama-quantize writes); ggml's quantize_row_iq4_nl_ref, which skips the
// search, is QuantizeRowIQ4_NLRef in formats/iq4_nl.h. Every to_float is bit-identical to
// ggml's dequantize_row_<type> (q8_1, which ggml cannot decode, is d * q).
// The k-quants' from_float runs AVX2 twins of the reference searches where the CPU has AVX2
// (formats/k_quants_avx2.cc, same bytes). q4_0…q8_0, iq4_nl and q2_K…q6_K also have an
// importance-weighted from_float_weighted (formats/weighted_quants.h).
// These claims are checked against the llama.cpp peer's own ggml library by
// formats/ggml_parity_test.cc.
#include "formats/types.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <limits>
#include <vector>

#include "core/error.h"
#include "formats/fp8.h"
#include "formats/group_int.h"
#include "formats/iq4_nl.h"
#include "formats/k_quants.h"
#include "formats/kmeans.h"
#include "formats/nf4.h"
#include "formats/outliers.h"
#include "formats/per_channel.h"
#include "formats/plain.h"
#include "formats/pow2.h"
#include "formats/q4_0.h"
#include "formats/q4_1.h"
#include "formats/q5_0.h"
#include "formats/q5_1.h"
#include "formats/q8_0.h"
#include "formats/sparse24.h"
#include "formats/sparse_mask.h"
#include "formats/weighted_quants.h"

namespace smelt {
namespace {

// Adapt typed row functions (block pointers) to the table's void* signatures.
template <class Block, void (*F)(const Block*, float*, int64_t)>
void ToFloat(const void* src, float* dst, int64_t n) {
  F(static_cast<const Block*>(src), dst, n);
}
template <class Block, void (*F)(const float*, Block*, int64_t)>
void FromFloat(const float* src, void* dst, int64_t n) {
  F(src, static_cast<Block*>(dst), n);
}
template <class Block, void (*F)(const float*, const float*, Block*, int64_t)>
void FromFloatWeighted(const float* src, const float* importance, void* dst, int64_t n) {
  F(src, importance, static_cast<Block*>(dst), n);
}

// A smelt-native row: quantized, and not loadable by llama.cpp.
template <class Block, void (*Decode)(const Block*, float*, int64_t), void (*Encode)(const float*, Block*, int64_t),
          void (*EncodeWeighted)(const float*, const float*, Block*, int64_t) = nullptr>
constexpr TypeTraits NativeRow(DType type, std::string_view name, int64_t block_size) {
  TypeTraits t{type, name, block_size, sizeof(Block), true, ToFloat<Block, Decode>, FromFloat<Block, Encode>};
  if constexpr (EncodeWeighted != nullptr) t.from_float_weighted = FromFloatWeighted<Block, EncodeWeighted>;
  t.llama_cpp = false;
  return t;
}

// A sparse type's row: at most n of every m weights (per_row: n·(row/m) anywhere in a row).
constexpr TypeTraits Sparse(TypeTraits t, int n, int m, bool per_row) {
  t.sparse_n = n, t.sparse_m = m, t.sparse_per_row = per_row;
  return t;
}

// One group-wise integer type (formats/group_int.h).
template <int Bits, bool Symmetric, int Group>
constexpr TypeTraits GroupIntRow(DType type, std::string_view name) {
  using G = GroupInt<Bits, Symmetric, Group>;
  return NativeRow<typename G::Block, G::Dequantize, G::Quantize, G::QuantizeWeighted>(type, name, Group);
}

// A per-output-channel type (formats/per_channel.h): whole-row functions after a row header.
constexpr TypeTraits PerChannelRow(DType type, std::string_view name, int64_t block_size, size_t type_size,
                                   size_t row_header, ToFloatFn to, FromFloatFn from, FromFloatWeightedFn weighted) {
  TypeTraits t{type, name, block_size, type_size, true, to, from, weighted};
  t.llama_cpp = false;
  t.row_header = row_header;
  return t;
}

template <int Bits, bool Symmetric>
constexpr TypeTraits RowIntRow(DType type, std::string_view name) {
  using R = RowInt<Bits, Symmetric>;
  return PerChannelRow(type, name, R::kCodesPerByteGroup, Bits, R::kHeader, R::Dequantize, R::Quantize,
                       R::QuantizeWeighted);
}

template <int Bits>
constexpr TypeTraits KMeansRow(DType type, std::string_view name) {
  using R = RowKMeans<Bits>;
  return PerChannelRow(type, name, R::kCodesPerByteGroup, Bits, R::kHeader, R::Dequantize, R::Quantize,
                       R::QuantizeWeighted);
}

template <int Cap>
constexpr TypeTraits SparseMaskTypeRow(DType type, std::string_view name) {
  using R = SparseMaskRow<Cap>;
  return Sparse(PerChannelRow(type, name, R::kBlock, R::kBlockBytes, R::kHeader, R::Dequantize, R::Quantize, nullptr),
                Cap, kQKSparseMask, true);
}

const char* CheckS24W4A8Row(const void* row, int64_t n) {
  return S24W4A8RowConsistent(row, n) ? nullptr : "the row header is not the sum of the row's scaled codes";
}

constexpr TypeTraits S24W4A8TypeRow() {
  TypeTraits t = PerChannelRow(DType::kS24_W4A8, "s24_w4a8", kQKS24W4, sizeof(BlockS24W4), sizeof(RowHeaderS24W4),
                               DequantizeRowS24W4A8, QuantizeRowS24W4A8, nullptr);
  t.check_row = CheckS24W4A8Row;
  return Sparse(t, 2, 4, false);
}

template <int Cap>
constexpr TypeTraits SparseMaskF16TypeRow(DType type, std::string_view name) {
  using R = SparseMaskRowF16<Cap>;
  return Sparse(PerChannelRow(type, name, R::kBlock, R::kBlockBytes, R::kHeader, R::Dequantize, R::Quantize, nullptr),
                Cap, kQKSparseMask, true);
}

constexpr TypeTraits SparseMaskW4TypeRow() {
  using R = SparseMaskRowW4<kSp70W4Cap>;
  return Sparse(PerChannelRow(DType::kSP70_W4A8, "sp70_w4a8", R::kBlock, R::kBlockBytes, R::kHeader, R::Dequantize,
                              R::Quantize, nullptr),
                kSp70W4Cap, R::kBlock, true);
}

template <DType Base, int K>
constexpr TypeTraits OutlierRow(DType type, std::string_view name, int64_t block_size, size_t type_size) {
  using R = RowWithOutliers<Base, K>;
  return PerChannelRow(type, name, block_size, type_size, R::kHeader, R::Dequantize, R::Quantize, R::QuantizeWeighted);
}

constexpr TypeTraits kTable[] = {
    {DType::kF32, "f32", 1, 4, false, ToFloat<float, ConvertRowF32ToF32>,
     FromFloat<float, ConvertRowF32ToF32>},
    {DType::kF16, "f16", 1, 2, false, ToFloat<fp16_t, ConvertRowF16ToF32>,
     FromFloat<fp16_t, ConvertRowF32ToF16>},
    {DType::kQ4_0, "q4_0", kQK4_0, sizeof(BlockQ4_0), true, ToFloat<BlockQ4_0, DequantizeRowQ4_0>,
     FromFloat<BlockQ4_0, QuantizeRowQ4_0Ref>,
     FromFloatWeighted<BlockQ4_0, QuantizeRowQ4_0Weighted>},
    {DType::kQ4_1, "q4_1", kQK4_1, sizeof(BlockQ4_1), true, ToFloat<BlockQ4_1, DequantizeRowQ4_1>,
     FromFloat<BlockQ4_1, QuantizeRowQ4_1Ref>,
     FromFloatWeighted<BlockQ4_1, QuantizeRowQ4_1Weighted>},
    {DType::kQ5_0, "q5_0", kQK5_0, sizeof(BlockQ5_0), true, ToFloat<BlockQ5_0, DequantizeRowQ5_0>,
     FromFloat<BlockQ5_0, QuantizeRowQ5_0Ref>,
     FromFloatWeighted<BlockQ5_0, QuantizeRowQ5_0Weighted>},
    {DType::kQ5_1, "q5_1", kQK5_1, sizeof(BlockQ5_1), true, ToFloat<BlockQ5_1, DequantizeRowQ5_1>,
     FromFloat<BlockQ5_1, QuantizeRowQ5_1Ref>,
     FromFloatWeighted<BlockQ5_1, QuantizeRowQ5_1Weighted>},
    {DType::kQ8_0, "q8_0", kQK8_0, sizeof(BlockQ8_0), true, ToFloat<BlockQ8_0, DequantizeRowQ8_0>,
     FromFloat<BlockQ8_0, QuantizeRowQ8_0Ref>,
     FromFloatWeighted<BlockQ8_0, QuantizeRowQ8_0Weighted>},
    {DType::kQ8_1, "q8_1", kQK8_1, sizeof(BlockQ8_1), true, ToFloat<BlockQ8_1, DequantizeRowQ8_1>,
     FromFloat<BlockQ8_1, QuantizeRowQ8_1Ref>, nullptr, false},
    {DType::kQ2_K, "q2_K", kQK_K, sizeof(BlockQ2_K), true, ToFloat<BlockQ2_K, DequantizeRowQ2_K>,
     FromFloat<BlockQ2_K, QuantizeRowQ2_K>,
     FromFloatWeighted<BlockQ2_K, QuantizeRowQ2_KWeighted>},
    {DType::kQ3_K, "q3_K", kQK_K, sizeof(BlockQ3_K), true, ToFloat<BlockQ3_K, DequantizeRowQ3_K>,
     FromFloat<BlockQ3_K, QuantizeRowQ3_K>,
     FromFloatWeighted<BlockQ3_K, QuantizeRowQ3_KWeighted>},
    {DType::kQ4_K, "q4_K", kQK_K, sizeof(BlockQ4_K), true, ToFloat<BlockQ4_K, DequantizeRowQ4_K>,
     FromFloat<BlockQ4_K, QuantizeRowQ4_K>,
     FromFloatWeighted<BlockQ4_K, QuantizeRowQ4_KWeighted>},
    {DType::kQ5_K, "q5_K", kQK_K, sizeof(BlockQ5_K), true, ToFloat<BlockQ5_K, DequantizeRowQ5_K>,
     FromFloat<BlockQ5_K, QuantizeRowQ5_K>,
     FromFloatWeighted<BlockQ5_K, QuantizeRowQ5_KWeighted>},
    {DType::kQ6_K, "q6_K", kQK_K, sizeof(BlockQ6_K), true, ToFloat<BlockQ6_K, DequantizeRowQ6_K>,
     FromFloat<BlockQ6_K, QuantizeRowQ6_K>,
     FromFloatWeighted<BlockQ6_K, QuantizeRowQ6_KWeighted>},
    {DType::kQ8_K, "q8_K", kQK_K, sizeof(BlockQ8_K), true, ToFloat<BlockQ8_K, DequantizeRowQ8_K>,
     FromFloat<BlockQ8_K, QuantizeRowQ8_KRef>, nullptr, false},
    {DType::kIQ4_NL, "iq4_nl", kQK4_NL, sizeof(BlockIQ4_NL), true,
     ToFloat<BlockIQ4_NL, DequantizeRowIQ4_NL>, FromFloat<BlockIQ4_NL, QuantizeRowIQ4_NL>,
     FromFloatWeighted<BlockIQ4_NL, QuantizeRowIQ4_NLWeighted>},
    {DType::kI8, "i8", 1, 1, false, nullptr, nullptr},
    {DType::kI16, "i16", 1, 2, false, nullptr, nullptr},
    {DType::kI32, "i32", 1, 4, false, nullptr, nullptr},
    {DType::kI64, "i64", 1, 8, false, nullptr, nullptr},
    {DType::kF64, "f64", 1, 8, false, ToFloat<double, ConvertRowF64ToF32>,
     FromFloat<double, ConvertRowF32ToF64>},
    {DType::kBF16, "bf16", 1, 2, false, ToFloat<bf16_t, ConvertRowBf16ToF32>,
     FromFloat<bf16_t, ConvertRowF32ToBf16>},
    // smelt-native types (ids 1024+): llama_cpp = false.
    GroupIntRow<4, true, 32>(DType::kI4S_G32, "i4s_g32"),
    GroupIntRow<4, true, 64>(DType::kI4S_G64, "i4s_g64"),
    GroupIntRow<4, true, 128>(DType::kI4S_G128, "i4s_g128"),
    GroupIntRow<4, false, 32>(DType::kI4A_G32, "i4a_g32"),
    GroupIntRow<4, false, 64>(DType::kI4A_G64, "i4a_g64"),
    GroupIntRow<4, false, 128>(DType::kI4A_G128, "i4a_g128"),
    GroupIntRow<3, true, 32>(DType::kI3S_G32, "i3s_g32"),
    GroupIntRow<3, true, 64>(DType::kI3S_G64, "i3s_g64"),
    GroupIntRow<3, true, 128>(DType::kI3S_G128, "i3s_g128"),
    GroupIntRow<3, false, 32>(DType::kI3A_G32, "i3a_g32"),
    GroupIntRow<3, false, 64>(DType::kI3A_G64, "i3a_g64"),
    GroupIntRow<3, false, 128>(DType::kI3A_G128, "i3a_g128"),
    GroupIntRow<2, true, 32>(DType::kI2S_G32, "i2s_g32"),
    GroupIntRow<2, true, 64>(DType::kI2S_G64, "i2s_g64"),
    GroupIntRow<2, true, 128>(DType::kI2S_G128, "i2s_g128"),
    GroupIntRow<2, false, 32>(DType::kI2A_G32, "i2a_g32"),
    GroupIntRow<2, false, 64>(DType::kI2A_G64, "i2a_g64"),
    GroupIntRow<2, false, 128>(DType::kI2A_G128, "i2a_g128"),
    NativeRow<BlockNF4, DequantizeRowNF4, QuantizeRowNF4, QuantizeRowNF4Weighted>(DType::kNF4, "nf4", kQKNF4),
    NativeRow<BlockF8, DequantizeRowF8E4M3, QuantizeRowF8E4M3>(DType::kF8E4M3_B32, "f8e4m3_b32", kQKF8),
    NativeRow<BlockF8, DequantizeRowF8E5M2, QuantizeRowF8E5M2>(DType::kF8E5M2_B32, "f8e5m2_b32", kQKF8),
    NativeRow<BlockPow2, DequantizeRowPow2, QuantizeRowPow2, QuantizeRowPow2Weighted>(DType::kPow2_B32, "pow2_b32",
                                                                                      kQKPow2),
    PerChannelRow(DType::kI8_PC, "i8_pc", 1, 1, sizeof(RowHeaderI8), DequantizeRowI8PC, QuantizeRowI8PC,
                  QuantizeRowI8PCWeighted),
    PerChannelRow(DType::kW8A8, "w8a8", 1, 1, sizeof(RowHeaderI8), DequantizeRowI8PC, QuantizeRowI8PC,
                  QuantizeRowI8PCWeighted),
    RowIntRow<4, true>(DType::kI4S_PC, "i4s_pc"),
    RowIntRow<4, false>(DType::kI4A_PC, "i4a_pc"),
    RowIntRow<3, true>(DType::kI3S_PC, "i3s_pc"),
    RowIntRow<3, false>(DType::kI3A_PC, "i3a_pc"),
    RowIntRow<2, true>(DType::kI2S_PC, "i2s_pc"),
    RowIntRow<2, false>(DType::kI2A_PC, "i2a_pc"),
    KMeansRow<4>(DType::kKM4_PC, "km4_pc"),
    KMeansRow<3>(DType::kKM3_PC, "km3_pc"),
    KMeansRow<2>(DType::kKM2_PC, "km2_pc"),
    OutlierRow<DType::kQ4_0, 8>(DType::kQ4_0_O8, "q4_0_o8", kQK4_0, sizeof(BlockQ4_0)),
    OutlierRow<DType::kI3S_G32, 8>(DType::kI3S_G32_O8, "i3s_g32_o8", 32, sizeof(BlockGroupInt<3, true, 32>)),
    Sparse(NativeRow<BlockS24Q8, DequantizeRowS24Q8, QuantizeRowS24Q8>(DType::kS24_Q8, "s24_q8", kQKS24), 2, 4, false),
    Sparse(NativeRow<BlockS24Q4, DequantizeRowS24Q4, QuantizeRowS24Q4>(DType::kS24_Q4, "s24_q4", kQKS24), 2, 4, false),
    S24W4A8TypeRow(),
    SparseMaskTypeRow<16>(DType::kSP50_Q8, "sp50_q8"),
    SparseMaskTypeRow<10>(DType::kSP70_Q8, "sp70_q8"),
    SparseMaskTypeRow<16>(DType::kSP50_W8A8, "sp50_w8a8"),
    SparseMaskTypeRow<10>(DType::kSP70_W8A8, "sp70_w8a8"),
    SparseMaskF16TypeRow<16>(DType::kSP50_F16, "sp50_f16"),
    SparseMaskF16TypeRow<10>(DType::kSP70_F16, "sp70_f16"),
    SparseMaskW4TypeRow(),
};

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower((unsigned char)a[i]) != std::tolower((unsigned char)b[i])) return false;
  }
  return true;
}

// kTable's row of each id (-1: none), so lookups in per-row loops are O(1): slots 0..kMaxGgmlId
// for ggml's ids, then kNativeSlots slots for the smelt-native ids from kFirstNativeTypeId.
constexpr uint32_t kMaxGgmlId = 31;
constexpr uint32_t kNativeSlots = 64;
static_assert(std::size(kTable) < 128, "row indices are int8_t");

// Slot of an id in kRowOfId, or -1 when it lies in neither range.
constexpr int64_t SlotOfId(uint32_t id) {
  if (id <= kMaxGgmlId) return id;
  if (id >= kFirstNativeTypeId && id - kFirstNativeTypeId < kNativeSlots) return kMaxGgmlId + 1 + (id - kFirstNativeTypeId);
  return -1;
}

constexpr std::array<int8_t, kMaxGgmlId + 1 + kNativeSlots> kRowOfId = [] {
  std::array<int8_t, kMaxGgmlId + 1 + kNativeSlots> rows{};
  rows.fill(-1);
  for (size_t i = 0; i < std::size(kTable); ++i) {
    // A new DType outside both ranges must raise kMaxGgmlId or kNativeSlots (compile error here).
    const int64_t slot = SlotOfId((uint32_t)kTable[i].type);
    if (slot < 0) throw "type id outside the lookup ranges";
    rows[slot] = (int8_t)i;
  }
  return rows;
}();

}  // namespace

const TypeTraits* FindTraits(uint32_t type_id) {
  const int64_t slot = SlotOfId(type_id);
  if (slot < 0 || kRowOfId[slot] < 0) return nullptr;
  return &kTable[kRowOfId[slot]];
}

const TypeTraits& Traits(DType t) {
  const TypeTraits* tr = FindTraits((uint32_t)t);
  SMELT_ASSERT(tr != nullptr);
  return *tr;
}

std::optional<DType> ParseDType(std::string_view name) {
  for (const TypeTraits& t : kTable) {
    if (EqualsIgnoreCase(t.name, name)) return t.type;
  }
  return std::nullopt;
}

std::string_view DTypeName(DType t) { return Traits(t).name; }

size_t RowBytes(DType t, int64_t n) {
  const TypeTraits& tr = Traits(t);
  SMELT_ASSERT(n >= 0 && n % tr.block_size == 0);
  return tr.row_header + (size_t)(n / tr.block_size) * tr.type_size;
}

std::optional<size_t> TensorBytes(DType t, const std::array<int64_t, 4>& ne) {
  const TypeTraits* tr = FindTraits((uint32_t)t);
  if (tr == nullptr) return std::nullopt;
  for (int64_t n : ne) {
    if (n < 0) return std::nullopt;
  }
  if (ne[0] % tr->block_size != 0) return std::nullopt;
  size_t bytes = 0;
  if (__builtin_mul_overflow((uint64_t)(ne[0] / tr->block_size), (uint64_t)tr->type_size, &bytes) ||
      __builtin_add_overflow(bytes, (uint64_t)tr->row_header, &bytes)) {
    return std::nullopt;
  }
  for (int i = 1; i < 4; ++i) {
    if (__builtin_mul_overflow(bytes, (uint64_t)ne[i], &bytes)) return std::nullopt;
  }
  // Byte counts must fit int64 (file offsets, off_t) and element counts too (nelements()).
  if (bytes > (uint64_t)std::numeric_limits<int64_t>::max()) return std::nullopt;
  int64_t elems = 1;
  for (int64_t n : ne) {
    if (__builtin_mul_overflow(elems, n, &elems)) return std::nullopt;
  }
  return bytes;
}

size_t BlockAlignment(DType t) {
  // Every block struct's size is a multiple of its widest field, and the fields are fp16, f32,
  // int16 or (plain types) up to 8 bytes: the lowest set bit of the size, capped at 8.
  // Per-row formats read their headers with memcpy; a base format after the header (outliers.h)
  // needs its own alignment, which rows keep when header and block sizes are multiples of it.
  const size_t size = Traits(t).type_size | Traits(t).row_header;
  return std::min<size_t>(size & (~size + 1), 8);
}

namespace {

// Decodes n values at src; bytes not aligned for the block struct are copied first (a GGUF file
// with an odd general.alignment can place a tensor anywhere).
void DecodeAnyAlignment(DType type, const uint8_t* src, float* dst, int64_t n) {
  const TypeTraits& tr = Traits(type);
  if ((uintptr_t)src % BlockAlignment(type) == 0) {
    tr.to_float(src, dst, n);
    return;
  }
  std::vector<uint8_t> aligned(src, src + RowBytes(type, n));  // operator new: max alignment
  tr.to_float(aligned.data(), dst, n);
}

}  // namespace

void DequantizeRow(const Tensor& t, int64_t row, float* dst) {
  SMELT_ASSERT(Traits(t.type).to_float != nullptr);
  SMELT_ASSERT(row >= 0 && row < t.nrows());
  const size_t row_bytes = RowBytes(t.type, t.ne[0]);
  SMELT_ASSERT((size_t)(row + 1) * row_bytes <= t.nbytes);
  DecodeAnyAlignment(t.type, static_cast<const uint8_t*>(t.data) + (size_t)row * row_bytes, dst,
                     t.ne[0]);
}

std::vector<float> DequantizeAll(const Tensor& t) {
  SMELT_ASSERT(Traits(t.type).to_float != nullptr);
  const size_t row_bytes = RowBytes(t.type, t.ne[0]);
  SMELT_ASSERT((size_t)t.nrows() * row_bytes <= t.nbytes);
  std::vector<float> out((size_t)t.nelements());
  const auto* data = static_cast<const uint8_t*>(t.data);
  if (Traits(t.type).row_header) {  // each row carries its own header
    for (int64_t r = 0; r < t.nrows(); ++r) DecodeAnyAlignment(t.type, data + (size_t)r * row_bytes, out.data() + r * t.ne[0], t.ne[0]);
  } else if (!out.empty()) {  // rows are contiguous and whole blocks: one long row
    DecodeAnyAlignment(t.type, data, out.data(), t.nelements());
  }
  return out;
}

}  // namespace smelt
