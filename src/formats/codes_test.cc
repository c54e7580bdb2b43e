// Code access against the formats' own decoders: for every covered type and every test row
// kind, the grid value of each element's code is to_float's value bit for bit; writing codes
// back is lossless; arbitrary in-range codes decode to the grid formula; and code ranges and
// sub-block sizes match an independent table of the formats.
#include "formats/codes.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
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

// Independently written from the format headers: code range, elements sharing one grid.
struct Expected {
  DType type;
  int qmin, qmax, sub_block;
};
const Expected kExpected[] = {
    {DType::kQ4_0, -8, 7, 32},    {DType::kQ4_1, 0, 15, 32},  {DType::kQ5_0, -16, 15, 32},
    {DType::kQ5_1, 0, 31, 32},    {DType::kQ8_0, -127, 127, 32}, {DType::kQ2_K, 0, 3, 16},
    {DType::kQ3_K, -4, 3, 16},    {DType::kQ4_K, 0, 15, 32},  {DType::kQ5_K, 0, 31, 32},
    {DType::kQ6_K, -32, 31, 16},  {DType::kIQ4_NL, 0, 15, 32},
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

TEST(FormatsCodes, CoveredTypes) {
  for (const Expected& e : kExpected) EXPECT_TRUE(HasCodeAccess(e.type)) << DTypeName(e.type);
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_1, DType::kQ8_K, DType::kI8}) {
    EXPECT_FALSE(HasCodeAccess(t)) << DTypeName(t);
  }
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
      ASSERT_EQ(g.table != nullptr, e.type == DType::kIQ4_NL);
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
      ASSERT_TRUE(SameBits(GridValue(before.grids[j], codes[j]), y[j])) << j;
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

// NearestCode against a brute-force search over every code's grid value.
TEST(FormatsCodes, NearestCodeIsTheNearestGridValue) {
  std::mt19937 rng(6);
  ForEveryEncodedBlock(15, [&](const Expected& e, uint8_t* block, const float* x) {
    const BlockView v = View(e.type, block);
    for (int j = 0; j < (int)v.grids.size(); ++j) {
      const ElementGrid& g = v.grids[j];
      // Probe the original value, points around and beyond the grid, and the grid values
      // themselves (which must map to a code of that very value).
      const float lo = GridValue(g, g.qmin), hi = GridValue(g, g.qmax);
      const double margin = 0.3 * std::fabs(hi - lo) + 1e-3;
      std::uniform_real_distribution<double> around(std::min(lo, hi) - margin, std::max(lo, hi) + margin);
      for (double w : {(double)x[j], around(rng), around(rng), (double)GridValue(g, v.codes[j])}) {
        const int q = NearestCode(g, w);
        ASSERT_GE(q, g.qmin);
        ASSERT_LE(q, g.qmax);
        const double err = std::fabs(w - GridValue(g, q));
        for (int c = g.qmin; c <= g.qmax; ++c) {
          ASSERT_LE(err, std::fabs(w - GridValue(g, c))) << "w " << w << " code " << q << " vs " << c;
        }
      }
    }
  });
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
