// Code access against the formats' own decoders: for every covered type and every test row
// kind, the grid value of each element's code is to_float's value bit for bit; writing codes
// back is lossless; arbitrary in-range codes decode to the grid formula; and code ranges and
// sub-block sizes match an independent table of the formats (ggml's and smelt's own: group-int,
// NF4, pow2, FP8); NearestCode is a brute-force argmin over every storable code.
#include "formats/codes.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "formats/format_test_util.h"
#include "formats/types.h"

namespace smelt {
namespace {

using testing::kAllRowKinds;
using testing::MakeRow;
using testing::RowKind;
using testing::RowKindName;

// Independently written from the format headers: code range, elements sharing one grid,
// whether the value comes from a codebook.
struct Expected {
  DType type;
  int qmin, qmax, sub_block;
  bool table;
};
const Expected kExpected[] = {
    {DType::kQ4_0, -8, 7, 32, false},      {DType::kQ4_1, 0, 15, 32, false},
    {DType::kQ5_0, -16, 15, 32, false},    {DType::kQ5_1, 0, 31, 32, false},
    {DType::kQ8_0, -127, 127, 32, false},  {DType::kQ2_K, 0, 3, 16, false},
    {DType::kQ3_K, -4, 3, 16, false},      {DType::kQ4_K, 0, 15, 32, false},
    {DType::kQ5_K, 0, 31, 32, false},      {DType::kQ6_K, -32, 31, 16, false},
    {DType::kIQ4_NL, 0, 15, 32, true},
    {DType::kI4S_G32, -8, 7, 32, false},   {DType::kI4S_G64, -8, 7, 64, false},
    {DType::kI4S_G128, -8, 7, 128, false}, {DType::kI4A_G32, 0, 15, 32, false},
    {DType::kI4A_G64, 0, 15, 64, false},   {DType::kI4A_G128, 0, 15, 128, false},
    {DType::kI3S_G32, -4, 3, 32, false},   {DType::kI3S_G64, -4, 3, 64, false},
    {DType::kI3S_G128, -4, 3, 128, false}, {DType::kI3A_G32, 0, 7, 32, false},
    {DType::kI3A_G64, 0, 7, 64, false},    {DType::kI3A_G128, 0, 7, 128, false},
    {DType::kI2S_G32, -2, 1, 32, false},   {DType::kI2S_G64, -2, 1, 64, false},
    {DType::kI2S_G128, -2, 1, 128, false}, {DType::kI2A_G32, 0, 3, 32, false},
    {DType::kI2A_G64, 0, 3, 64, false},    {DType::kI2A_G128, 0, 3, 128, false},
    {DType::kNF4, 0, 15, 64, true},        {DType::kPow2_B32, 0, 15, 32, true},
    {DType::kF8E4M3_B32, 0, 255, 32, true}, {DType::kF8E5M2_B32, 0, 255, 32, true},
};

constexpr int64_t kRowLength = 512;  // two super-blocks, sixteen 32-blocks

// A row of `kind` encoded with the type's from_float.
std::vector<uint8_t> EncodeRow(DType t, RowKind kind, uint32_t seed) {
  const std::vector<float> x = MakeRow(kind, kRowLength, seed);
  std::vector<uint8_t> packed(RowBytes(t, kRowLength));
  Traits(t).from_float(x.data(), packed.data(), kRowLength);
  return packed;
}

// Decodes one block (the packed vector's blocks sit at multiples of the block size, which keeps
// them aligned for their fp16 fields).
std::vector<float> DecodeBlock(DType t, const uint8_t* block) {
  std::vector<float> y((size_t)Traits(t).block_size);
  Traits(t).to_float(block, y.data(), Traits(t).block_size);
  return y;
}

struct BlockView {
  std::vector<ElementGrid> grids;
  std::vector<int> codes;
};
BlockView View(DType t, const uint8_t* block) {
  BlockView v{std::vector<ElementGrid>((size_t)Traits(t).block_size),
              std::vector<int>((size_t)Traits(t).block_size)};
  BlockGrids(t, block, v.grids.data());
  GetBlockCodes(t, block, v.codes.data());
  return v;
}

bool SameBits(float a, float b) { return std::memcmp(&a, &b, sizeof(float)) == 0; }
// Bit for bit, except that any NaN matches any NaN (FP8's NaN codes decode to a NaN whose
// payload the standard leaves to the hardware).
bool SameValue(float a, float b) { return SameBits(a, b) || (std::isnan(a) && std::isnan(b)); }

// Every id of the format table: HasCodeAccess holds exactly for the rows of kExpected, so the
// tests below, which iterate kExpected, cover every type with code access.
TEST(FormatsCodes, CoveredTypes) {
  int covered = 0;
  for (uint32_t id = 0; id < kFirstNativeTypeId + 64; ++id) {
    const TypeTraits* tr = FindTraits(id);
    if (tr == nullptr) continue;
    const bool expected = std::any_of(std::begin(kExpected), std::end(kExpected),
                                      [&](const Expected& e) { return e.type == tr->type; });
    EXPECT_EQ(HasCodeAccess(tr->type), expected) << tr->name;
    covered += expected;
  }
  EXPECT_EQ(covered, (int)std::size(kExpected));
}

// Calls f(e, block, x) for every block of a row of every kind encoded with every covered type;
// x: the block's original values. The block is the row's own copy: f may change it.
template <class F>
void ForEveryEncodedBlock(uint32_t seed, F f) {
  for (const Expected& e : kExpected) {
    const TypeTraits& tr = Traits(e.type);
    for (RowKind kind : kAllRowKinds) {
      SCOPED_TRACE(std::string(tr.name) + " " + RowKindName(kind));
      const std::vector<float> x = MakeRow(kind, kRowLength, seed);
      std::vector<uint8_t> packed = EncodeRow(e.type, kind, seed);
      for (int64_t b = 0; b < kRowLength / tr.block_size; ++b) {
        SCOPED_TRACE("block " + std::to_string(b));
        f(e, &packed[(size_t)b * tr.type_size], &x[(size_t)(b * tr.block_size)]);
      }
    }
  }
}

TEST(FormatsCodes, GridValuesOfCodesAreTheDecodedValuesBitForBit) {
  ForEveryEncodedBlock(11, [](const Expected& e, uint8_t* block, const float*) {
    const std::vector<float> y = DecodeBlock(e.type, block);
    const BlockView v = View(e.type, block);
    for (int j = 0; j < (int)y.size(); ++j) {
      const ElementGrid& g = v.grids[j];
      ASSERT_EQ(g.qmin, e.qmin);
      ASSERT_EQ(g.qmax, e.qmax);
      ASSERT_EQ(g.table != nullptr, e.table);
      // from_float only writes codes an algorithm may choose.
      ASSERT_GE(v.codes[j], g.qmin) << j;
      ASSERT_LE(v.codes[j], g.qmax) << j;
      ASSERT_TRUE(SameBits(GridValue(g, v.codes[j]), y[j]))
          << "element " << j << ": " << GridValue(g, v.codes[j]) << " vs " << y[j];
      // Elements of one sub-block share a grid.
      const ElementGrid& first = v.grids[j / e.sub_block * e.sub_block];
      ASSERT_TRUE(SameBits(g.scale, first.scale) && SameBits(g.offset, first.offset)) << j;
    }
  });
}

TEST(FormatsCodes, SettingTheCodesReadLeavesTheBytesUnchanged) {
  ForEveryEncodedBlock(12, [](const Expected& e, uint8_t* block, const float*) {
    const std::vector<uint8_t> before(block, block + Traits(e.type).type_size);
    SetBlockCodes(e.type, block, View(e.type, block).codes.data());
    EXPECT_EQ(std::vector<uint8_t>(block, block + before.size()), before);
  });
}

TEST(FormatsCodes, RandomCodesDecodeToTheGridFormula) {
  std::mt19937 rng(5);
  ForEveryEncodedBlock(13, [&](const Expected& e, uint8_t* block, const float*) {
    std::uniform_int_distribution<int> code(e.qmin, e.qmax);
    const BlockView before = View(e.type, block);
    std::vector<int> codes(before.codes.size());
    for (int& c : codes) c = code(rng);
    // Every block also gets both ends of the range.
    codes[0] = e.qmin;
    codes.back() = e.qmax;
    SetBlockCodes(e.type, block, codes.data());
    const std::vector<float> y = DecodeBlock(e.type, block);
    const BlockView after = View(e.type, block);
    EXPECT_EQ(after.codes, codes);
    for (int j = 0; j < (int)y.size(); ++j) {
      // The scales are untouched...
      ASSERT_TRUE(SameBits(after.grids[j].scale, before.grids[j].scale)) << j;
      ASSERT_TRUE(SameBits(after.grids[j].offset, before.grids[j].offset)) << j;
      // ...and the decoder agrees with the grid formula for the new code.
      ASSERT_TRUE(SameValue(GridValue(before.grids[j], codes[j]), y[j])) << j;
    }
  });
}

TEST(FormatsCodes, Q8_0StoresMinus128ThoughItIsNotOnTheGrid) {
  std::vector<uint8_t> packed = EncodeRow(DType::kQ8_0, RowKind::kGaussian, 14);
  std::vector<int> codes(32, -128);
  SetBlockCodes(DType::kQ8_0, packed.data(), codes.data());
  const BlockView v = View(DType::kQ8_0, packed.data());
  EXPECT_EQ(v.codes, codes);
  EXPECT_EQ(DecodeBlock(DType::kQ8_0, packed.data())[0], -128.0f * v.grids[0].scale);
}

// NearestCode against a brute-force search over every code's grid value (codes whose value is
// not finite, FP8's NaN and infinity codes, are not candidates).
TEST(FormatsCodes, NearestCodeIsTheNearestGridValue) {
  std::mt19937 rng(6);
  ForEveryEncodedBlock(15, [&](const Expected& e, uint8_t* block, const float* x) {
    const BlockView v = View(e.type, block);
    for (int j = 0; j < (int)v.grids.size(); ++j) {
      const ElementGrid& g = v.grids[j];
      // Probe the original value, points around and beyond the grid, and the grid values
      // themselves (which must map to a code of that very value).
      float lo = std::numeric_limits<float>::infinity(), hi = -lo;
      for (int c = g.qmin; c <= g.qmax; ++c) {
        const float value = GridValue(g, c);
        if (std::isfinite(value)) lo = std::min(lo, value), hi = std::max(hi, value);
      }
      const double margin = 0.3 * std::fabs(hi - lo) + 1e-3;
      std::uniform_real_distribution<double> around(lo - margin, hi + margin);
      for (double w : {(double)x[j], around(rng), around(rng), (double)GridValue(g, v.codes[j])}) {
        const int q = NearestCode(g, w);
        ASSERT_GE(q, g.qmin);
        ASSERT_LE(q, g.qmax);
        ASSERT_TRUE(std::isfinite(GridValue(g, q))) << "w " << w << " code " << q;
        const double err = std::fabs(w - GridValue(g, q));
        for (int c = g.qmin; c <= g.qmax; ++c) {
          if (!std::isfinite(GridValue(g, c))) continue;
          ASSERT_LE(err, std::fabs(w - GridValue(g, c))) << "w " << w << " code " << q << " vs " << c;
          // Exact ties go to the lower code (with a zero scale every code ties, and the code
          // nearest 0 is chosen instead).
          if (g.scale != 0.0f && err == std::fabs(w - GridValue(g, c))) {
            ASSERT_LE(q, c) << "w " << w;
          }
        }
      }
    }
  });
}

// Far beyond the largest finite FP8 value the nearest code is the saturated one, not an
// infinity (E5M2) or a NaN; with a zero scale pow2 and FP8 give their zero codes.
TEST(FormatsCodes, NearestCodeSkipsTheFp8Specials) {
  std::vector<uint8_t> packed = EncodeRow(DType::kF8E5M2_B32, RowKind::kGaussian, 17);
  ElementGrid g = View(DType::kF8E5M2_B32, packed.data()).grids[0];
  ASSERT_GT(g.scale, 0.0f);
  const double far5 = 4.0 * 57344.0 * g.scale;  // beyond the largest finite value
  EXPECT_EQ(NearestCode(g, far5), 0x7b);   // +57344, not +inf (0x7c)
  EXPECT_EQ(NearestCode(g, -far5), 0xfb);  // -57344, not -inf (0xfc)
  g.scale = 0.0f;
  EXPECT_EQ(NearestCode(g, 1.0), 0x00);
  packed = EncodeRow(DType::kF8E4M3_B32, RowKind::kGaussian, 17);
  g = View(DType::kF8E4M3_B32, packed.data()).grids[0];
  ASSERT_GT(g.scale, 0.0f);
  const double far4 = 4.0 * 448.0 * g.scale;
  EXPECT_EQ(NearestCode(g, far4), 0x7e);   // +448, not the NaN 0x7f
  EXPECT_EQ(NearestCode(g, -far4), 0xfe);  // -448, not the NaN 0xff
  packed = EncodeRow(DType::kPow2_B32, RowKind::kAllZero, 18);
  const BlockView zero = View(DType::kPow2_B32, packed.data());
  EXPECT_EQ(zero.codes[0], 7);  // from_float's zero code...
  EXPECT_EQ(NearestCode(zero.grids[0], 0.25), 7);  // ...and NearestCode's, not "-0" (15)
}

TEST(FormatsCodes, NearestCodeWithAZeroScaleIsTheCodeNearestZero) {
  const ElementGrid linear = {0.0f, 1.5f, -8, 7, nullptr};
  EXPECT_EQ(NearestCode(linear, 3.0), 0);
  const ElementGrid unsigned_grid = {0.0f, -0.0f, 0, 15, nullptr};
  EXPECT_EQ(NearestCode(unsigned_grid, -2.0), 0);
  // IQ4_NL's codebook entry nearest 0 is 1 (code 8), as its from_float writes for a zero block.
  std::vector<uint8_t> packed = EncodeRow(DType::kIQ4_NL, RowKind::kAllZero, 16);
  const BlockView v = View(DType::kIQ4_NL, packed.data());
  EXPECT_EQ(NearestCode(v.grids[0], 0.25), v.codes[0]);
}

}  // namespace
}  // namespace smelt
