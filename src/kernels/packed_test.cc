// Packed Q4_0, IQ4_NL, NF4, Q4_1, Q5_0, Q5_1, Q8_0, the super-block types Q2_K..Q5_K and the group
// types as Q4_0/Q4_1 (kernels/packed.h): packing is
// lossless, the SIMD kernels are their scalar references bit for bit, the reference is the decoded dot product up to f32 rounding (bound from
// the terms' magnitudes), and MatMulPacked agrees with MatMul on the unpacked tensor, for any
// batch size, thread count and a row count that leaves a padded panel.
#include "kernels/packed.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <string>
#include <random>
#include <vector>

#include "formats/activation.h"
#include "formats/group_int.h"
#include "formats/k_quants.h"
#include "formats/q8_0.h"
#include "formats/types.h"
#include "kernels/matmul.h"
#include "kernels/prompt_gemm.h"
#include "qdot_test_util.h"

namespace smelt {
namespace {

struct QMatrix {
  std::vector<uint8_t> bytes;
  Tensor tensor;
  size_t row_bytes;
  const uint8_t* row(int64_t r) const { return bytes.data() + r * row_bytes; }
};

// rows × cols weights of a packed type with every byte random (codes over their whole ranges, Q8_0's
// including -128; the k-quants' scales, minimums and high bits too), then the fp16 scales from
// `scales` (cycling, random signs) and the minimums: Q4_1/Q5_1's m = −scale·u (u in [0, 1)), the
// k-quants' dmin = ±scale.
QMatrix RandomQ(DType type, int64_t rows, int64_t cols, uint32_t seed, const std::vector<float>& scales) {
  std::mt19937 rng(seed);
  QMatrix m;
  m.row_bytes = RowBytes(type, cols);
  m.bytes.resize(m.row_bytes * rows);
  for (uint8_t& b : m.bytes) b = (uint8_t)(rng() & 0xFF);
  const size_t block = Traits(type).type_size;
  const testing::ScaleFields f = testing::ScaleFieldsOf(type);
  for (size_t i = 0; i < m.bytes.size() / block; ++i) {
    const fp16_t d = FloatToFp16(scales[i % scales.size()] * (rng() % 2 ? 1.0f : -1.0f));
    std::memcpy(&m.bytes[i * block + f.d], &d, sizeof d);
    if (f.min_codes == 0) continue;
    const float next = scales[(i + 1) % scales.size()];
    const fp16_t min = FloatToFp16(f.min_codes == 1 ? -next * (float)(rng() % 100) / 100.0f : next * (rng() % 2 ? 1.0f : -1.0f));
    std::memcpy(&m.bytes[i * block + f.min], &min, sizeof min);
  }
  m.tensor.name = std::string("packed.weight");
  m.tensor.type = type;
  m.tensor.n_dims = 2;
  m.tensor.ne = {cols, rows, 1, 1};
  m.tensor.data = m.bytes.data();
  m.tensor.nbytes = m.bytes.size();
  return m;
}

std::vector<float> RandomActivations(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(n);
  for (float& v : x) v = d(rng);
  for (int64_t i = 0; i < n; i += 97) x[i] *= 50.0f;  // outliers: codes at ±127 in their blocks
  return x;
}

// The rows of x (T, C) encoded for weights of `type` (Q8_0, or Q8_1 for Q4_1/Q5_1) and for Q8_0
// their blocks' code sums, as MatMulPacked makes them.
struct Encoded {
  DType act;
  std::vector<uint8_t> bytes;
  std::vector<int32_t> sums;
  size_t stride;
  const uint8_t* row(int64_t t) const { return bytes.data() + t * stride; }
};
Encoded Encode(DType type, const std::vector<float>& x, int64_t T, int64_t C) {
  Encoded e;
  e.act = ActivationType(type);
  e.stride = RowBytes(e.act, C);
  e.bytes.resize(e.stride * T);
  for (int64_t t = 0; t < T; ++t) {
    QuantizeActivationRow(e.act, x.data() + t * C, e.bytes.data() + t * e.stride, C);
    if (e.act != DType::kQ8_0) continue;
    const auto* b = reinterpret_cast<const BlockQ8_0*>(e.row(t));
    for (int64_t k = 0; k < C / 32; ++k) {
      int32_t s = 0;
      for (int8_t q : b[k].qs) s += q;
      e.sums.push_back(s);
    }
  }
  return e;
}

const std::vector<std::vector<float>> kScaleSets = {
    {0.01f, 0.02f, 0.005f},       // ordinary
    {0.0f, 1.0f, 0.0f},           // zero blocks
    {60000.0f, 3e-7f, 1.0f},      // huge and subnormal fp16 scales side by side
};

// An encoded activation row as floats (Q8_K, an activation-only type, has no to_float).
void DecodeActivationRow(DType act, const uint8_t* row, float* out, int64_t C) {
  if (act != DType::kQ8_K) return Traits(act).to_float(row, out, C);
  const auto* blocks = reinterpret_cast<const BlockQ8_K*>(row);
  for (int64_t i = 0; i < C; ++i) out[i] = blocks[i / kQK_K].d * (float)blocks[i / kQK_K].qs[i % kQK_K];
}

class Packed : public ::testing::TestWithParam<DType> {};

TEST_P(Packed, PackingIsLosslessAndPadsTheLastPanel) {
  const DType type = GetParam();
  const int64_t block = Traits(type).block_size;  // 32, or 256 for the super-block types
  const QMatrix m = RandomQ(type, 13, 3 * block, 1, kScaleSets[0]);
  ASSERT_TRUE(CanPack(m.tensor));
  const PackedMatrix p = PackWeights(m.tensor);
  EXPECT_EQ(p.panels(), 2);
  // NF4's blocks of 64 pack as two blocks of 32 with Q4_0's layout, each with the block's scale.
  const int64_t per_block = type == DType::kNF4 ? 2 : 1;
  EXPECT_EQ(p.blocks_per_row(), 3 * per_block);
  EXPECT_EQ(p.block_bytes, type == DType::kNF4 ? sizeof(BlockQ4_0x8) : (size_t)kPackRows * Traits(type).type_size);
  std::vector<uint8_t> row(m.row_bytes);
  for (int64_t r = 0; r < 13; ++r) {
    UnpackRow(p, r, row.data());
    EXPECT_EQ(std::memcmp(row.data(), m.row(r), m.row_bytes), 0) << "row " << r;
  }
  // Several rows at once (whole panels on the SIMD twin where there is one), from any row.
  for (const auto [row0, n] : {std::array<int64_t, 2>{0, 13}, std::array<int64_t, 2>{0, 8}, std::array<int64_t, 2>{3, 10}}) {
    std::vector<uint8_t> rows(m.row_bytes * n, 0xAA);
    UnpackRows(p, row0, n, rows.data());
    EXPECT_EQ(std::memcmp(rows.data(), m.row(row0), rows.size()), 0) << "rows " << row0 << " + " << n;
  }
  // Padding rows: zero scales, and zero minimums where the type has them (every packed block opens
  // with the 8 rows' fp16 scales, then their minimums).
  const int64_t fields = testing::ScaleFieldsOf(type).min_codes != 0 ? 2 : 1;
  for (int64_t lane = 13 % kPackRows; lane < kPackRows; ++lane)
    for (int64_t b = 0; b < 3 * per_block; ++b)
      for (int64_t field = 0; field < fields; ++field) {
        fp16_t h;
        std::memcpy(&h, p.panel(1) + b * p.block_bytes + (field * kPackRows + lane) * sizeof(fp16_t), sizeof h);
        EXPECT_EQ(h, 0) << "lane " << lane;
      }
  Tensor odd = m.tensor;  // a row length that is no whole number of blocks
  odd.ne = {block + block / 2, 13, 1, 1};
  EXPECT_FALSE(CanPack(odd));
  Tensor f16 = m.tensor;
  f16.type = DType::kF16;
  EXPECT_FALSE(CanPack(f16));
  EXPECT_EQ(FastPackedGemm(DType::kF16), nullptr);
  EXPECT_EQ(PackedGemmReference(DType::kF16), nullptr);
}

// Matrices packed into one shared buffer (a model's weights, PackWeightsInto) hold the bytes each
// has packed alone, at their offsets, with the padding rows zeroed over whatever the buffer held;
// the buffer lives as long as any of them.
TEST_P(Packed, PackingIntoASharedBufferGivesTheSameBytes) {
  const DType type = GetParam();
  const int64_t block = Traits(type).block_size;
  const QMatrix a = RandomQ(type, 13, 3 * block, 5, kScaleSets[0]), b = RandomQ(type, 16, 2 * block, 6, kScaleSets[1]);
  const PackedMatrix alone_a = PackWeights(a.tensor), alone_b = PackWeights(b.tensor);
  EXPECT_EQ(PackedBytes(a.tensor), alone_a.size_bytes());
  EXPECT_EQ(alone_a.size_bytes(), (size_t)(alone_a.panels() * alone_a.blocks_per_row()) * alone_a.block_bytes);
  const size_t offset_b = (PackedBytes(a.tensor) + 63) / 64 * 64;
  auto storage = std::make_shared<HugePageBuffer>(offset_b + PackedBytes(b.tensor));
  std::memset(storage->data(), 0xA5, storage->size());
  PackedMatrix in_a = PackWeightsInto(a.tensor, storage, 0);
  const PackedMatrix in_b = PackWeightsInto(b.tensor, storage, offset_b);
  const uint8_t* const expected_base = storage->data() + offset_b;
  storage.reset();  // the matrices keep it
  EXPECT_EQ(in_b.base, expected_base);
  EXPECT_EQ(in_a.storage, in_b.storage);
  EXPECT_TRUE(std::ranges::equal(in_a.bytes(), alone_a.bytes()));
  in_a = PackedMatrix{};
  EXPECT_TRUE(std::ranges::equal(in_b.bytes(), alone_b.bytes()));
  std::vector<uint8_t> row(b.row_bytes);
  UnpackRow(in_b, 15, row.data());
  EXPECT_EQ(std::memcmp(row.data(), b.row(15), b.row_bytes), 0);
}

// From 2 MiB on a buffer sits at a huge-page boundary (where the kernel can back it with huge
// pages); smaller ones at a cache line. Every byte is writable.
TEST(HugePageBuffer, AlignsLargeBuffersToHugePages) {
  for (size_t bytes : {size_t{1}, size_t{100}, kHugePageBytes - 1, kHugePageBytes, 3 * kHugePageBytes + 5}) {
    HugePageBuffer buffer(bytes);
    EXPECT_EQ(buffer.size(), bytes);
    const auto at = reinterpret_cast<uintptr_t>(buffer.data());
    EXPECT_EQ(at % (bytes >= kHugePageBytes ? kHugePageBytes : 64), 0u) << bytes;
    std::memset(buffer.data(), 1, bytes);
    HugePageBuffer moved = std::move(buffer);
    EXPECT_EQ(moved.data()[bytes - 1], 1);
    EXPECT_EQ(buffer.data(), nullptr);
  }
}

TEST_P(Packed, ReferenceIsTheDecodedDotAndEverySimdTwinIsTheReferenceBitForBit) {
  const DType type = GetParam();
  const PackedGemmFn reference = PackedGemmReference(type);
  ASSERT_NE(reference, nullptr);
  const std::vector<NamedPackedGemm> twins = PackedGemmTwins(type);
  for (size_t set = 0; set < kScaleSets.size(); ++set) {
    const int64_t C = 768, T = 37, nb = C / (PackedBySuperBlock(type) ? kQK_K : 32);  // past two tiles of 16 tokens
    const QMatrix m = RandomQ(type, 8, C, 10 + set, kScaleSets[set]);
    const PackedMatrix p = PackWeights(m.tensor);
    const std::vector<float> x = RandomActivations(T * C, 20 + set);
    const Encoded e = Encode(type, x, T, C);
    std::vector<float> ref(T * 8), fast(T * 8);
    reference(p.panel(0), nb, e.bytes.data(), e.stride, e.sums.data(), T, ref.data(), 8);
    // Against the decoded values (NF4's levels in the kernels' fixed point): the exact sum in
    // double (plus ggml's stored-s term for the types with a minimum against Q8_1), within the
    // rounding of its terms.
    std::vector<float> w(C), a(C);
    for (int64_t t = 0; t < T; ++t) {
      DecodeActivationRow(e.act, e.row(t), a.data(), C);
      for (int r = 0; r < 8; ++r) {
        testing::DecodeAsKernels(type, m.row(r), w.data(), C);
        const double exact = testing::DotDouble(w.data(), a.data(), C) +
                             testing::MinTermCorrection(type, m.row(r), e.row(t), a.data(), C);
        const double mass = testing::DotMass(type, m.row(r), e.row(t), w.data(), a.data(), C);
        EXPECT_NEAR(ref[t * 8 + r], exact, testing::KernelTolerance(C, mass)) << "set " << set << " t " << t;
      }
    }
    // Every twin at every batch size, so each token-tile and token-group path runs.
    for (const NamedPackedGemm& twin : twins)
      for (int64_t n : {1, 2, 3, 4, 5, 7, 8, 9, 11, 16, 21, 32, 37}) {
        std::fill(fast.begin(), fast.end(), 0.0f);
        twin.fn(p.panel(0), nb, e.bytes.data(), e.stride, e.sums.data(), n, fast.data(), 8);
        for (int64_t i = 0; i < n * 8; ++i)
          ASSERT_EQ(fast[i], ref[i]) << twin.name << " set " << set << " T " << n << " i " << i;
      }
  }
  if (twins.empty()) GTEST_SKIP() << "no SIMD twin on this CPU: only the reference was checked";
  if (twins.front().fn != FastPackedGemm(type)) ADD_FAILURE() << "the dispatch does not pick the widest twin";
}

// MatMulPacked on w's packed copy (T rows of x) against MatMul on w: the same block terms summed in
// another order, MatMul's bits where a prompt-sized batch runs the type's blocked kernel; the same
// bits on 1 and 2 threads; and up to 16 tokens (kernels/matmul.h) a token's outputs the same bits
// alone as in the batch.
void ExpectMatMulPackedIsMatMul(const Tensor& w, int64_t T) {
  const DType type = w.type;
  const int64_t C = w.ne[0], OC = w.nrows();
  const size_t row_bytes = RowBytes(type, C);
  const auto* rows = static_cast<const uint8_t*>(w.data);
  const PackedMatrix p = PackWeights(w);
  const std::vector<float> x = RandomActivations(T * C, 4);
  std::vector<float> want(T * OC), got(T * OC), two(T * OC), one(OC);
  MatMul(w, x.data(), T, want.data(), 1, Activations::kGgml);
  MatMulPacked(p, x.data(), T, got.data(), 1);
  MatMulPacked(p, x.data(), T, two.data(), 2);
  EXPECT_EQ(got, two);
  const bool blocked = T >= kMinBlockedBatch && FastPromptGemm(type);
  if (blocked) {
    EXPECT_EQ(got, want) << "a prompt-sized batch runs MatMul's kernel on the unpacked rows";
  }
  const DType act = ActivationType(type);
  std::vector<uint8_t> a(RowBytes(act, C));
  std::vector<float> wf(C), xa(C);
  for (int64_t t = 0; t < T; ++t) {
    QuantizeActivationRow(act, x.data() + t * C, a.data(), C);
    DecodeActivationRow(act, a.data(), xa.data(), C);
    for (int64_t o = 0; o < OC; ++o) {
      Traits(type).to_float(rows + o * row_bytes, wf.data(), C);
      const double mass = testing::DotMass(type, rows + o * row_bytes, a.data(), wf.data(), xa.data(), C);
      // MatMul decodes NF4's levels as they are, the packed kernels in fixed point.
      const double levels = testing::LevelRounding(type, rows + o * row_bytes, xa.data(), C);
      EXPECT_NEAR(got[t * OC + o], want[t * OC + o], 2 * testing::KernelTolerance(C, mass) + levels) << "t " << t << " o " << o;
    }
  }
  if (T >= kMinBlockedBatch) return;  // one token runs the packed kernel, a prompt may run MatMul's
  for (int64_t t = 0; t < T; ++t) {
    MatMulPacked(p, x.data() + t * C, 1, one.data(), 1);
    EXPECT_EQ(one, std::vector<float>(got.begin() + t * OC, got.begin() + (t + 1) * OC)) << "token " << t;
  }
}

TEST_P(Packed, MatMulPackedAgreesWithMatMulAtAnyBatchAndThreadCount) {
  const DType type = GetParam();
  if (!FastPackedGemm(type)) GTEST_SKIP() << "no packed kernel on this CPU";
  // 45 rows: the sixth panel is padded; a tile of 16 tokens and 7 more (a prompt for the
  // super-block types), and 9 tokens (token groups and a remainder). 512 rows of 2 blocks: a head's shape.
  const int64_t block = Traits(type).block_size;
  for (const auto [OC, C, T] : {std::array<int64_t, 3>{45, 512, 23}, std::array<int64_t, 3>{45, 512, 9},
                                std::array<int64_t, 3>{45, 512, 16}, std::array<int64_t, 3>{512, 2 * block, 3}})
    ExpectMatMulPackedIsMatMul(RandomQ(type, OC, C, 3, kScaleSets[0]).tensor, T);
}

// The two-panel kernel gives two single-panel calls' bits, at every batch size (tiles, partial
// tiles, block pairs and the VNNI remainder), the second panel padded or not, with the block scales
// (and pairs) given or gathered, over an even and an odd number of blocks.
TEST_P(Packed, TwoPanelKernelIsTwoSinglePanelCalls) {
  const DType type = GetParam();
  const PackedGemm2Fn two = FastPackedGemmTwoPanels(type);
  if (!two) GTEST_SKIP() << "no two-panel kernel on this CPU";
  const PackedGemmFn one = PackedGemmReference(type);
  for (int64_t rows : {16, 13}) {
    const int64_t C = rows == 16 ? 512 : 7 * Traits(type).block_size, nb = C / (PackedBySuperBlock(type) ? kQK_K : 32);
    const QMatrix m = RandomQ(type, rows, C, 30 + rows, kScaleSets[0]);
    const PackedMatrix p = PackWeights(m.tensor);
    for (int64_t T : {1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 19, 21, 37}) {
      const std::vector<float> x = RandomActivations(T * C, 40 + T);
      const Encoded e = Encode(type, x, T, C);
      std::vector<float> want(T * 16), got(T * 16, -1.0f);
      one(p.panel(0), nb, e.bytes.data(), e.stride, e.sums.data(), T, want.data(), 16);
      one(p.panel(1), nb, e.bytes.data(), e.stride, e.sums.data(), T, want.data() + 8, 16);
      two(p.panel(0), p.panel(1), nb, e.bytes.data(), e.stride, e.sums.data(), {}, T, got.data(), 16);
      EXPECT_EQ(got, want) << DTypeName(type) << " rows " << rows << " T " << T;
      const DType act = ActivationType(type);
      if (TileActivationBlocks(act, C) == nb) {  // Q8_0, Q8_1: with the rows' block scales given
        std::vector<float> scales(TileScaleFloats(act, C) * T), given(T * 16, -1.0f);
        ActivationBlockScales(act, e.bytes.data(), e.stride, nb, T, scales.data());
        two(p.panel(0), p.panel(1), nb, e.bytes.data(), e.stride, e.sums.data(), {scales.data()}, T, given.data(), 16);
        EXPECT_EQ(given, want) << DTypeName(type) << " rows " << rows << " T " << T << " with scales";
        if (T < kMinPairTokens || T > kPairTokens) continue;
        std::vector<int8_t> pairs(ActivationPairBytes(nb, T), 99);  // every byte written
        ActivationBlockPairs(act, e.bytes.data(), e.stride, nb, T, pairs.data());
        std::vector<float> paired(T * 16, -1.0f);
        two(p.panel(0), p.panel(1), nb, e.bytes.data(), e.stride, e.sums.data(), {scales.data(), pairs.data()}, T,
            paired.data(), 16);
        EXPECT_EQ(paired, want) << DTypeName(type) << " rows " << rows << " T " << T << " with block pairs";
      }
    }
  }
}

// The group types (i{4,3,2}{s,a}_g*) pack as the Q4_0/Q4_1 blocks their rows convert to, and
// both paths of a product see the same weights against the same int8 activations: MatMulPacked and
// MatMul on the unpacked tensor (decoded rows times the rounded activations) against the decoded
// dot in double, within the rounding of their terms (ggml's stored-s term added for the packed
// Q4_1 kernels).
TEST(PackedGroupInt, PacksAsItsGgmlBlocksAndBothPathsGiveTheDecodedDot) {
  for (DType type : kGroupIntTypes) {
    const DType ggml = GroupIntGgmlType(type);
    const int64_t OC = 13, C = 3 * 128, T = 5;
    const QMatrix m = RandomQ(type, OC, C, 7, kScaleSets[0]);
    ASSERT_TRUE(CanPack(m.tensor)) << DTypeName(type);
    const PackedMatrix p = PackWeights(m.tensor);
    ASSERT_EQ(p.type, ggml);
    // The converted rows keep every weight, and pack to the same bytes as a tensor of them.
    const size_t ggml_bytes = RowBytes(ggml, C);
    std::vector<uint8_t> converted(ggml_bytes * OC);
    std::vector<float> wf(OC * C), wg(C);
    for (int64_t r = 0; r < OC; ++r) {
      GroupIntRowAsGgml(type, m.row(r), C, converted.data() + r * ggml_bytes);
      float* decoded = wf.data() + r * C;
      Traits(type).to_float(m.row(r), decoded, C);
      Traits(ggml).to_float(converted.data() + r * ggml_bytes, wg.data(), C);
      for (int64_t i = 0; i < C; ++i)
        ASSERT_NEAR(wg[i], decoded[i], std::ldexp(std::fabs(decoded[i]) + 1.0, -20)) << DTypeName(type);
    }
    Tensor as_ggml = m.tensor;
    as_ggml.type = ggml, as_ggml.data = converted.data(), as_ggml.nbytes = converted.size();
    const PackedMatrix again = PackWeights(as_ggml);
    EXPECT_TRUE(std::ranges::equal(again.bytes(), p.bytes())) << DTypeName(type);
    ASSERT_EQ(ActivationType(type), ActivationType(ggml));
    if (!FastPackedGemm(p.type)) continue;
    const std::vector<float> x = RandomActivations(T * C, 9);
    std::vector<float> packed(T * OC), unpacked(T * OC), xa(C);
    MatMulPacked(p, x.data(), T, packed.data(), 1);
    MatMul(m.tensor, x.data(), T, unpacked.data(), 1, Activations::kGgml);
    const DType act = ActivationType(type);
    std::vector<uint8_t> a(RowBytes(act, C));
    for (int64_t t = 0; t < T; ++t) {
      QuantizeActivationRow(act, x.data() + t * C, a.data(), C);
      DecodeActivationRow(act, a.data(), xa.data(), C);
      for (int64_t o = 0; o < OC; ++o) {
        const uint8_t* row = converted.data() + o * ggml_bytes;
        const float* decoded = wf.data() + o * C;
        const double exact = testing::DotDouble(decoded, xa.data(), C);
        const double mass = testing::DotMass(ggml, row, a.data(), decoded, xa.data(), C);
        const double tol = 2 * testing::KernelTolerance(C, mass);
        EXPECT_NEAR(packed[t * OC + o], exact + testing::MinTermCorrection(ggml, row, a.data(), xa.data(), C), tol)
            << DTypeName(type) << " t " << t << " o " << o;
        // MatMul sums the C products of the decoded rows in f32: C·2^-24 of their magnitudes more.
        EXPECT_NEAR(unpacked[t * OC + o], exact, tol + C * std::ldexp(mass, -24)) << DTypeName(type) << " t " << t << " o " << o;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, Packed,
                         ::testing::Values(DType::kQ4_0, DType::kIQ4_NL, DType::kNF4, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1,
                                           DType::kQ8_0, DType::kQ2_K, DType::kQ3_K, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K),
                         [](const auto& info) { return std::string(DTypeName(info.param)); });

}  // namespace
}  // namespace smelt
