// The trait table: a row for every DType with ggml's id, name and block geometry (checked
// against the published bits/weight of each format), name parsing, and the size arithmetic used
// to validate untrusted files.
#include "formats/types.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <string>

#include "core/half.h"
#include "formats/iq4_nl.h"
#include "formats/k_quants.h"
#include "formats/q4_0.h"
#include "formats/q8_0.h"

namespace smelt {
namespace {

// Independently written: ggml's type ids, names and the bits/weight its headers state.
struct TypeExpected {
  DType type;
  uint32_t id;
  const char* name;
  int64_t block;
  double bits_per_weight;
  bool quantized;
  bool has_to_float;
  bool llama_cpp = true;
  bool has_weighted = false;  // checked for the smelt-native rows only
};
const TypeExpected kTypeExpected[] = {
    {DType::kF32, 0, "f32", 1, 32, false, true},         {DType::kF16, 1, "f16", 1, 16, false, true},
    {DType::kQ4_0, 2, "q4_0", 32, 4.5, true, true},      {DType::kQ4_1, 3, "q4_1", 32, 5.0, true, true},
    {DType::kQ5_0, 6, "q5_0", 32, 5.5, true, true},      {DType::kQ5_1, 7, "q5_1", 32, 6.0, true, true},
    {DType::kQ8_0, 8, "q8_0", 32, 8.5, true, true},      {DType::kQ8_1, 9, "q8_1", 32, 9.0, true, true, false},
    {DType::kQ2_K, 10, "q2_K", 256, 2.625, true, true},  {DType::kQ3_K, 11, "q3_K", 256, 3.4375, true, true},
    {DType::kQ4_K, 12, "q4_K", 256, 4.5, true, true},    {DType::kQ5_K, 13, "q5_K", 256, 5.5, true, true},
    {DType::kQ6_K, 14, "q6_K", 256, 6.5625, true, true}, {DType::kQ8_K, 15, "q8_K", 256, 9.125, true, true, false},
    {DType::kIQ4_NL, 20, "iq4_nl", 32, 4.5, true, true}, {DType::kI8, 24, "i8", 1, 8, false, false},
    {DType::kI16, 25, "i16", 1, 16, false, false},       {DType::kI32, 26, "i32", 1, 32, false, false},
    {DType::kI64, 27, "i64", 1, 64, false, false},       {DType::kF64, 28, "f64", 1, 64, false, true},
    {DType::kBF16, 30, "bf16", 1, 16, false, true},
    // smelt-native (ids 1024+): group integers' bits/weight = bits + 16 (or 32, with the offset)
    // / group; nf4 4 + 16/64; fp8 8 + 16/32; pow2 4 + 16/32. None loads in llama.cpp.
    {DType::kI4S_G32, 1024, "i4s_g32", 32, 4.5, true, true, false, true},
    {DType::kI4S_G64, 1025, "i4s_g64", 64, 4.25, true, true, false, true},
    {DType::kI4S_G128, 1026, "i4s_g128", 128, 4.125, true, true, false, true},
    {DType::kI4A_G32, 1027, "i4a_g32", 32, 5.0, true, true, false, true},
    {DType::kI4A_G64, 1028, "i4a_g64", 64, 4.5, true, true, false, true},
    {DType::kI4A_G128, 1029, "i4a_g128", 128, 4.25, true, true, false, true},
    {DType::kI3S_G32, 1030, "i3s_g32", 32, 3.5, true, true, false, true},
    {DType::kI3S_G64, 1031, "i3s_g64", 64, 3.25, true, true, false, true},
    {DType::kI3S_G128, 1032, "i3s_g128", 128, 3.125, true, true, false, true},
    {DType::kI3A_G32, 1033, "i3a_g32", 32, 4.0, true, true, false, true},
    {DType::kI3A_G64, 1034, "i3a_g64", 64, 3.5, true, true, false, true},
    {DType::kI3A_G128, 1035, "i3a_g128", 128, 3.25, true, true, false, true},
    {DType::kI2S_G32, 1036, "i2s_g32", 32, 2.5, true, true, false, true},
    {DType::kI2S_G64, 1037, "i2s_g64", 64, 2.25, true, true, false, true},
    {DType::kI2S_G128, 1038, "i2s_g128", 128, 2.125, true, true, false, true},
    {DType::kI2A_G32, 1039, "i2a_g32", 32, 3.0, true, true, false, true},
    {DType::kI2A_G64, 1040, "i2a_g64", 64, 2.5, true, true, false, true},
    {DType::kI2A_G128, 1041, "i2a_g128", 128, 2.25, true, true, false, true},
    {DType::kNF4, 1042, "nf4", 64, 4.25, true, true, false, true},
    {DType::kF8E4M3_B32, 1043, "f8e4m3_b32", 32, 8.5, true, true, false, false},
    {DType::kF8E5M2_B32, 1044, "f8e5m2_b32", 32, 8.5, true, true, false, false},
    {DType::kPow2_B32, 1045, "pow2_b32", 32, 4.5, true, true, false, true},
    {DType::kI8_PC, 1046, "i8_pc", 1, 8.0, true, true, false, true},
    {DType::kW8A8, 1047, "w8a8", 1, 8.0, true, true, false, true},
    {DType::kI4S_PC, 1048, "i4s_pc", 8, 4.0, true, true, false, true},
    {DType::kI4A_PC, 1049, "i4a_pc", 8, 4.0, true, true, false, true},
    {DType::kI3S_PC, 1050, "i3s_pc", 8, 3.0, true, true, false, true},
    {DType::kI3A_PC, 1051, "i3a_pc", 8, 3.0, true, true, false, true},
    {DType::kI2S_PC, 1052, "i2s_pc", 8, 2.0, true, true, false, true},
    {DType::kI2A_PC, 1053, "i2a_pc", 8, 2.0, true, true, false, true},
    {DType::kKM4_PC, 1054, "km4_pc", 8, 4.0, true, true, false, true},
    {DType::kKM3_PC, 1055, "km3_pc", 8, 3.0, true, true, false, true},
    {DType::kKM2_PC, 1056, "km2_pc", 8, 2.0, true, true, false, true},
    {DType::kQ4_0_O8, 1057, "q4_0_o8", 32, 4.5, true, true, false, true},
    {DType::kI3S_G32_O8, 1058, "i3s_g32_o8", 32, 3.5, true, true, false, true},
    // Sparse: 2:4 blocks (16 kept codes + 32 bits of positions + fp16 d per 32 weights) and
    // bitmask rows (a 32-bit mask and the capacity's codes per 32 weights, f32 d per row).
    {DType::kS24_Q8, 1059, "s24_q8", 32, 5.5, true, true, false, false},
    {DType::kS24_Q4, 1060, "s24_q4", 32, 3.5, true, true, false, false},
    {DType::kSP50_Q8, 1061, "sp50_q8", 32, 5.0, true, true, false, false},
    {DType::kSP70_Q8, 1062, "sp70_q8", 32, 3.5, true, true, false, false},
    {DType::kSP50_W8A8, 1063, "sp50_w8a8", 32, 5.0, true, true, false, false},
    {DType::kSP70_W8A8, 1064, "sp70_w8a8", 32, 3.5, true, true, false, false},
    // 2:4 int4 in blocks of 128 (64 kept nibbles, 128 bits of positions, two bf16 scales).
    {DType::kS24_W4A8, 1065, "s24_w4a8", 128, 3.25, true, true, false, false},
    // The bitmask rows unquantized: a 32-bit mask and the capacity's fp16 values per 32 weights.
    {DType::kSP50_F16, 1066, "sp50_f16", 32, 9.0, true, true, false, false},
    {DType::kSP70_F16, 1067, "sp70_f16", 32, 6.0, true, true, false, false},
    // int4 codes in the bitmask rows: 8 mask words, 80 nibbles and their 5 8-bit multipliers per 256.
    {DType::kSP70_W4A8, 1068, "sp70_w4a8", 256, 2.40625, true, true, false, false},
};

TEST(FormatsTypes, EveryTypeHasItsGgmlRow) {
  std::set<std::string> names;
  for (const TypeExpected& e : kTypeExpected) {
    SCOPED_TRACE(e.name);
    const TypeTraits* t = FindTraits(e.id);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ((uint32_t)t->type, e.id);
    EXPECT_EQ(t->type, e.type);
    EXPECT_EQ(t->name, e.name);
    EXPECT_EQ(t->block_size, e.block);
    EXPECT_DOUBLE_EQ(8.0 * (double)t->type_size / (double)t->block_size, e.bits_per_weight);
    EXPECT_EQ(t->quantized, e.quantized);
    EXPECT_EQ(t->to_float != nullptr, e.has_to_float);
    // Everything that decodes can also be written, except integer types.
    EXPECT_EQ(t->from_float != nullptr, e.has_to_float);
    EXPECT_EQ(t->llama_cpp, e.llama_cpp);
    if ((uint32_t)e.type >= kFirstNativeTypeId) {
      EXPECT_EQ(t->from_float_weighted != nullptr, e.has_weighted);
    }
    EXPECT_EQ(&Traits(e.type), t);
    EXPECT_TRUE(names.insert(e.name).second);
  }
}

TEST(FormatsTypes, UnknownIdsHaveNoRow) {
  for (uint32_t id : {4u, 5u, 16u, 19u, 21u, 29u, 31u, 39u, 1000u, 1023u, 1069u, 1087u, 1088u, 2047u, 0xffffffffu}) {
    EXPECT_EQ(FindTraits(id), nullptr) << id;
  }
}

TEST(FormatsTypes, NamesRoundTripCaseInsensitively) {
  for (const TypeExpected& e : kTypeExpected) {
    EXPECT_EQ(DTypeName(e.type), e.name);
    EXPECT_EQ(ParseDType(e.name), e.type);
    std::string upper = e.name;
    for (char& c : upper) c = (char)std::toupper((unsigned char)c);
    EXPECT_EQ(ParseDType(upper), e.type) << upper;
  }
  EXPECT_EQ(ParseDType("Q4_k"), DType::kQ4_K);
  for (const char* bad : {"", "q4", "q4_2", "q4_K_M", "f32 ", "float", "i4s", "i4s_g16", "nf4_b32", "f8e4m3"}) {
    EXPECT_EQ(ParseDType(bad), std::nullopt) << bad;
  }
}

TEST(FormatsTypes, RowAndTensorBytes) {
  EXPECT_EQ(RowBytes(DType::kQ4_0, 64), 36u);
  EXPECT_EQ(RowBytes(DType::kQ6_K, 512), 420u);
  EXPECT_EQ(RowBytes(DType::kBF16, 3), 6u);
  EXPECT_EQ(TensorBytes(DType::kQ8_0, {64, 3, 2, 1}), 34u * 2 * 3 * 2);
  EXPECT_EQ(TensorBytes(DType::kF32, {5, 7, 1, 1}), 140u);
  EXPECT_EQ(TensorBytes(DType::kQ4_K, {256, 0, 1, 1}), 0u);
  // Per-channel types: a header per row (f32 d; fp16 d and m), then the codes.
  EXPECT_EQ(RowBytes(DType::kI8_PC, 100), 104u);
  EXPECT_EQ(TensorBytes(DType::kI3A_PC, {64, 5, 1, 1}), (4u + 24u) * 5);
  EXPECT_EQ(TensorBytes(DType::kI4S_PC, {16, 2, 3, 1}), (2u + 8u) * 6);
  EXPECT_EQ(TensorBytes(DType::kI4S_PC, {12, 2, 1, 1}), std::nullopt);  // rows whole bytes of codes
}

TEST(FormatsTypes, TensorBytesRejectsBadShapes) {
  // ne[0] not a multiple of the block size.
  EXPECT_EQ(TensorBytes(DType::kQ4_0, {33, 1, 1, 1}), std::nullopt);
  EXPECT_EQ(TensorBytes(DType::kQ2_K, {128, 4, 1, 1}), std::nullopt);
  // Negative extents.
  EXPECT_EQ(TensorBytes(DType::kF32, {-1, 1, 1, 1}), std::nullopt);
  EXPECT_EQ(TensorBytes(DType::kF32, {4, 1, -2, 1}), std::nullopt);
  // Byte count overflows 64 bits in the row, or across dimensions.
  const int64_t big = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(TensorBytes(DType::kF64, {big / 4, 1, 1, 1}), std::nullopt);
  EXPECT_EQ(TensorBytes(DType::kF32, {1 << 20, 1 << 20, 1 << 20, 1 << 20}), std::nullopt);
  EXPECT_EQ(TensorBytes(DType::kQ8_0, {int64_t{1} << 40, int64_t{1} << 20, 1 << 10, 1}), std::nullopt);
  // Element count overflowing int64 even where bytes would not (nelements() must stay valid).
  EXPECT_EQ(TensorBytes(DType::kQ2_K, {int64_t{1} << 40, int64_t{1} << 24, 1, 1}), std::nullopt);
  // Largest that fits is accepted.
  EXPECT_EQ(TensorBytes(DType::kI8, {int64_t{1} << 31, int64_t{1} << 31, 1, 1}), uint64_t{1} << 62);
  EXPECT_EQ(TensorBytes((DType)4, {32, 1, 1, 1}), std::nullopt);  // not a known type
}

TEST(FormatsTypes, DequantizeRowAndAll) {
  // A 2-D Q8_0 tensor of 3 rows x 64: DequantizeRow gives each row, DequantizeAll them all,
  // each equal to decoding that row's bytes alone.
  std::vector<float> x(3 * 64);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * (float)i) * (1 + (float)(i / 64));
  const TypeTraits& tr = Traits(DType::kQ8_0);
  auto bytes = std::make_shared<std::vector<uint8_t>>(*TensorBytes(DType::kQ8_0, {64, 3, 1, 1}));
  tr.from_float(x.data(), bytes->data(), 192);
  Tensor t;
  t.name = "w";
  t.type = DType::kQ8_0;
  t.n_dims = 2;
  t.ne = {64, 3, 1, 1};
  t.data = bytes->data();
  t.nbytes = bytes->size();
  t.owner = bytes;
  const std::vector<float> all = DequantizeAll(t);
  ASSERT_EQ(all.size(), 192u);
  for (int r = 0; r < 3; ++r) {
    float row[64], alone[64];
    DequantizeRow(t, r, row);
    tr.to_float(bytes->data() + r * RowBytes(DType::kQ8_0, 64), alone, 64);
    for (int j = 0; j < 64; ++j) {
      EXPECT_EQ(row[j], alone[j]);
      EXPECT_EQ(all[64 * r + j], alone[j]);
      EXPECT_NEAR(row[j], x[64 * r + j], 0.02f * (1 + r));  // amax/127/2 plus fp16 scale rounding
    }
  }
  // F16 and BF16 rows decode through core/half.h.
  const std::vector<uint16_t> h = {0x3c00, 0xc000, 0x7bff};
  Tensor th = t;
  th.type = DType::kF16;
  th.ne = {3, 1, 1, 1};
  th.data = h.data();
  th.nbytes = 6;
  th.owner = nullptr;
  EXPECT_EQ(DequantizeAll(th), (std::vector<float>{1.0f, -2.0f, 65504.0f}));
  th.type = DType::kBF16;
  EXPECT_EQ(DequantizeAll(th), (std::vector<float>{Bf16ToFloat(0x3c00), -2.0f, Bf16ToFloat(0x7bff)}));
}

TEST(FormatsTypes, BlockAlignmentCoversTheStructs) {
  EXPECT_EQ(BlockAlignment(DType::kQ4_0) % alignof(BlockQ4_0), 0u);
  EXPECT_EQ(BlockAlignment(DType::kQ8_0) % alignof(BlockQ8_0), 0u);
  EXPECT_EQ(BlockAlignment(DType::kQ4_K) % alignof(BlockQ4_K), 0u);
  EXPECT_EQ(BlockAlignment(DType::kQ8_K) % alignof(BlockQ8_K), 0u);
  EXPECT_EQ(BlockAlignment(DType::kIQ4_NL) % alignof(BlockIQ4_NL), 0u);
  EXPECT_EQ(BlockAlignment(DType::kF32), alignof(float));
  EXPECT_EQ(BlockAlignment(DType::kF64), alignof(double));
  EXPECT_EQ(BlockAlignment(DType::kI8), 1u);
}

TEST(FormatsTypes, DequantizeMisalignedTensor) {
  // A tensor placed at an odd address (as a GGUF file with an odd alignment can do) decodes to
  // the same values as an aligned copy.
  for (DType type : {DType::kQ8_K, DType::kQ4_K, DType::kF32, DType::kF16}) {
    const int64_t n = 512;
    std::vector<float> x(n);
    for (int64_t i = 0; i < n; ++i) x[i] = std::cos(0.1f * (float)i);
    const size_t row = RowBytes(type, n);
    std::vector<uint8_t> aligned(2 * row), shifted(2 * row + 1);
    Traits(type).from_float(x.data(), aligned.data(), n);
    Traits(type).from_float(x.data(), aligned.data() + row, n);
    std::memcpy(shifted.data() + 1, aligned.data(), 2 * row);
    Tensor t;
    t.type = type;
    t.n_dims = 2;
    t.ne = {n, 2, 1, 1};
    t.data = shifted.data() + 1;
    t.nbytes = 2 * row;
    std::vector<float> want(n), got(n);
    Traits(type).to_float(aligned.data(), want.data(), n);
    DequantizeRow(t, 1, got.data());
    EXPECT_EQ(got, want) << DTypeName(type);
    const std::vector<float> all = DequantizeAll(t);
    EXPECT_EQ(std::vector<float>(all.begin(), all.begin() + n), want) << DTypeName(type);
  }
}

}  // namespace
}  // namespace smelt
