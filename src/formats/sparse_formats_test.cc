// The sparse formats: 2:4 blocks (formats/sparse24.h) keep the two largest magnitudes of every
// group of four, a 2:4-sparse input keeps its positions exactly, and the kept values are within
// half a step; bitmask rows (formats/sparse_mask.h) keep a pruned row's mask exactly, prune a row
// over its capacity to its largest magnitudes, and cost fewer bytes than q8_0.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/half.h"
#include "formats/format_test_util.h"
#include "formats/sparse24.h"
#include "formats/sparse_mask.h"
#include "formats/types.h"

namespace smelt {
namespace {

const DType kS24Types[] = {DType::kS24_Q8, DType::kS24_Q4, DType::kS24_W4A8};
const DType kMaskTypes[] = {DType::kSP50_Q8, DType::kSP70_Q8, DType::kSP50_W8A8, DType::kSP70_W8A8,
                            DType::kSP50_F16, DType::kSP70_F16};

bool IsF16Mask(DType t) { return t == DType::kSP50_F16 || t == DType::kSP70_F16; }
bool IsSp70(DType t) { return t == DType::kSP70_Q8 || t == DType::kSP70_W8A8 || t == DType::kSP70_F16; }
// Values a bitmask row of n weights holds: its capacity.
int64_t MaskCapacity(DType t, int64_t n) {
  return (int64_t)(Traits(t).type_size - 4) / (IsF16Mask(t) ? 2 : 1) * (n / 32);
}

std::vector<float> Gaussian(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> x(n);
  for (float& v : x) v = g(rng);
  return x;
}

using testing::RoundTrip;

// The largest rounding error for a block (2:4) or row (bitmask) whose largest kept magnitude is
// amax: half a step d = amax/127 for q8; for q4 (d = amax/8, codes −8..7) a whole step, where
// +8 steps clamp to 7 at the end opposite the largest value; plus the fp16 (s24_w4a8: bf16)
// rounding of d.
double HalfStep(DType t, double amax) {
  if (t == DType::kS24_W4A8) return amax / 8 + amax * std::ldexp(1.0, -8);
  const double err = t == DType::kS24_Q4 ? amax / 8 : amax / 254;
  return err + amax * std::ldexp(1.0, -10);
}

// The weights that share one scale: 32 (s24_q8, s24_q4) or 64 (s24_w4a8's halves).
int64_t ScaleGroup(DType t) { return t == DType::kS24_W4A8 ? 64 : 32; }

// Brute force on every group of 4 of a Gaussian row: the decoded non-zeros sit where the two
// largest magnitudes do, and each is within half a step of the input.
TEST(SparseFormats, S24KeepsTheTwoLargestOfEveryFour) {
  const int64_t n = 32 * 40;
  const std::vector<float> x = Gaussian(n, 3);
  for (DType t : kS24Types) {
    const std::vector<float> y = RoundTrip(t, x);
    const int64_t group = ScaleGroup(t);
    for (int64_t b = 0; b < n / group; ++b) {
      double amax = 0;
      std::vector<bool> keep(group, false);
      for (int g = 0; g < group / 4; ++g) {
        int order[4] = {0, 1, 2, 3};
        const float* v = &x[b * group + 4 * g];
        std::stable_sort(order, order + 4, [v](int i, int j) { return std::fabs(v[i]) > std::fabs(v[j]); });
        keep[4 * g + order[0]] = keep[4 * g + order[1]] = true;
        amax = std::max({amax, (double)std::fabs(v[order[0]])});
      }
      for (int j = 0; j < group; ++j) {
        const int64_t i = b * group + j;
        if (!keep[j]) {
          EXPECT_EQ(y[i], 0.0f) << DTypeName(t) << " " << i;
        } else {
          EXPECT_NEAR(y[i], x[i], HalfStep(t, amax)) << DTypeName(t) << " " << i;
        }
      }
    }
  }
}

// An input that is already 2:4 sparse (including groups with fewer than two non-zeros) keeps
// its non-zero positions exactly; magnitudes in [0.5, 1] so no kept value rounds to zero.
TEST(SparseFormats, S24KeepsAPrunedInputsMaskExactly) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> mag(0.5f, 1.0f);
  const int64_t n = 32 * 16;
  std::vector<float> x(n, 0.0f);
  for (int64_t g = 0; g < n / 4; ++g) {
    const int nonzeros = (int)(rng() % 3);  // 0, 1 or 2
    int first = (int)(rng() % 4), second = (first + 1 + (int)(rng() % 3)) % 4;
    if (nonzeros >= 1) x[4 * g + first] = (rng() & 1 ? 1.0f : -1.0f) * mag(rng);
    if (nonzeros == 2) x[4 * g + second] = (rng() & 1 ? 1.0f : -1.0f) * mag(rng);
  }
  for (DType t : kS24Types) {
    const std::vector<float> y = RoundTrip(t, x);
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_EQ(y[i] != 0.0f, x[i] != 0.0f) << DTypeName(t) << " " << i;
      EXPECT_NEAR(y[i], x[i], HalfStep(t, 1.0)) << DTypeName(t) << " " << i;
    }
    EXPECT_EQ(RoundTrip(t, std::vector<float>(128, 0.0f)), std::vector<float>(128, 0.0f));
  }
}

// The layout of formats/sparse24.h read by hand: kept value k at position 4·(k/2) + bits
// 2·(k/4) of index byte k % 4, s24_q4's code k in nibble k / 8 of byte k % 8; two values naming
// one position add.
TEST(SparseFormats, S24DecodeMatchesTheDocumentedLayout) {
  BlockS24Q8 b8{};
  BlockS24Q4 b4{};
  b8.d = b4.d = FloatToFp16(0.5f);
  const uint8_t pos[16] = {0, 3, 1, 2, 2, 2, 0, 1, 3, 0, 1, 3, 0, 2, 1, 1};  // p_k; k = 4, 5 collide
  for (int k = 0; k < 16; ++k) {
    b8.idx[k % 4] |= (uint8_t)(pos[k] << (2 * (k / 4)));
    b8.qs[k] = (int8_t)(k - 7);
    b4.qs[k % 8] |= (uint8_t)((k + 0) << (4 * (k / 8)));
  }
  std::memcpy(b4.idx, b8.idx, 4);
  float want8[32] = {}, want4[32] = {}, y8[32], y4[32];
  for (int k = 0; k < 16; ++k) {
    want8[4 * (k / 2) + pos[k]] += 0.5f * (float)(k - 7);
    want4[4 * (k / 2) + pos[k]] += 0.5f * (float)(k - 8);
  }
  DequantizeRowS24Q8(&b8, y8, 32);
  DequantizeRowS24Q4(&b4, y4, 32);
  for (int j = 0; j < 32; ++j) {
    EXPECT_EQ(y8[j], want8[j]) << j;
    EXPECT_EQ(y4[j], want4[j]) << j;
  }
}

// s24_w4a8's layout read by hand from the format's statement, group by group: group G's pair
// sits in slots 8m + 4h + 2t + {0, 1} (h = G / 16, m = (G % 16) / 2, t = G % 2), a slot's
// position in bits 2·(s % 4) of idx[8·((s / 8) % 2) + 2·(s / 16) + (s / 4) % 2], its
// two's-complement code in the low nibble of qs[s]
// (s < 32) or the high nibble of qs[s − 32], its scale d[h]; two slots naming one position add.
TEST(SparseFormats, S24W4A8DecodeMatchesTheDocumentedLayout) {
  std::mt19937 rng(11);
  for (int rep = 0; rep < 20; ++rep) {
    BlockS24W4 b{};
    b.d[0] = FloatToBf16(0.5f);
    b.d[1] = FloatToBf16(-0.125f);
    int pos[64], code[64];
    for (int s = 0; s < 64; ++s) {
      pos[s] = (int)(rng() % 4);  // any pattern, collisions included
      code[s] = (int)(rng() % 16) - 8;
      b.idx[8 * ((s / 8) % 2) + 2 * (s / 16) + (s / 4) % 2] |= (uint8_t)(pos[s] << (2 * (s % 4)));
      b.qs[s % 32] |= (uint8_t)((code[s] & 0x0F) << (4 * (s / 32)));
    }
    float want[128] = {};
    for (int G = 0; G < 32; ++G) {
      const int h = G / 16, m = (G % 16) / 2, t = G % 2;
      for (int j = 0; j < 2; ++j) {
        const int s = 8 * m + 4 * h + 2 * t + j;
        want[4 * G + pos[s]] += (h == 0 ? 0.5f : -0.125f) * (float)code[s];
      }
    }
    std::vector<uint8_t> row(RowBytes(DType::kS24_W4A8, 128));
    std::memcpy(row.data() + sizeof(RowHeaderS24W4), &b, sizeof b);
    float y[128];
    DequantizeRowS24W4A8(row.data(), y, 128);
    for (int j = 0; j < 128; ++j) EXPECT_EQ(y[j], want[j]) << j;
  }
}

// The row header is Σ over blocks and halves of d·Σ q (in f32, in order), what a reader checks:
// from_float writes it, and a change to it or to one code is seen.
TEST(SparseFormats, S24W4A8HeaderIsTheScaledCodeSum) {
  const int64_t n = 128 * 7;
  const std::vector<float> x = Gaussian(n, 13);
  std::vector<uint8_t> row(RowBytes(DType::kS24_W4A8, n));
  QuantizeRowS24W4A8(x.data(), row.data(), n);
  float c = 0.0f;
  for (int64_t i = 0; i < n / 128; ++i) {
    BlockS24W4 b;
    std::memcpy(&b, row.data() + 4 + i * sizeof b, sizeof b);
    for (int h = 0; h < 2; ++h) {
      int sum = 0;
      for (int s = 0; s < 64; ++s)
        if ((s / 4) % 2 == h) sum += S24W4Code(b, s);
      c += Bf16ToFloat(b.d[h]) * (float)sum;
    }
  }
  float header;
  std::memcpy(&header, row.data(), 4);
  EXPECT_EQ(header, c);
  EXPECT_TRUE(S24W4A8RowConsistent(row.data(), n));
  EXPECT_EQ(Traits(DType::kS24_W4A8).check_row(row.data(), n), nullptr);
  std::vector<uint8_t> bad = row;
  bad[0] ^= 1;
  EXPECT_FALSE(S24W4A8RowConsistent(bad.data(), n));
  EXPECT_NE(Traits(DType::kS24_W4A8).check_row(bad.data(), n), nullptr);
  bad = row;
  bad[4 + 3 * sizeof(BlockS24W4) + offsetof(BlockS24W4, qs) + 5] ^= 0x01;  // one code of block 3 moves by one
  EXPECT_FALSE(S24W4A8RowConsistent(bad.data(), n));
}

// A row with `sparsity` of its entries zero (random positions), magnitudes in [0.5, 1].
std::vector<float> PrunedRow(int64_t n, double sparsity, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> mag(0.5f, 1.0f);
  std::vector<float> x(n);
  for (float& v : x) v = (rng() & 1 ? 1.0f : -1.0f) * mag(rng);
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  for (int64_t i = 0; i < (int64_t)std::llround(sparsity * (double)n); ++i) x[order[i]] = 0.0f;
  return x;
}

TEST(SparseFormats, MaskRowsKeepAPrunedRowsMaskExactly) {
  for (DType t : kMaskTypes) {
    const double sparsity = IsSp70(t) ? 0.70 : 0.50;
    for (int64_t n : {32, 96, 4096}) {
      const std::vector<float> x = PrunedRow(n, sparsity, (uint32_t)n);
      const std::vector<float> y = RoundTrip(t, x);
      for (int64_t i = 0; i < n; ++i) {
        EXPECT_EQ(y[i] != 0.0f, x[i] != 0.0f) << DTypeName(t) << " n " << n << " " << i;
        EXPECT_NEAR(y[i], x[i], HalfStep(t, 1.0)) << DTypeName(t) << " n " << n << " " << i;
      }
    }
  }
}

// A dense row over the capacity keeps exactly its capacity's largest magnitudes.
TEST(SparseFormats, MaskRowsOverCapacityKeepTheLargestMagnitudes) {
  const int64_t n = 1024;
  const std::vector<float> x = Gaussian(n, 9);
  for (DType t : kMaskTypes) {
    const int64_t capacity = MaskCapacity(t, n);
    const std::vector<float> y = RoundTrip(t, x);
    std::vector<float> mags(n);
    for (int64_t i = 0; i < n; ++i) mags[i] = std::fabs(x[i]);
    std::nth_element(mags.begin(), mags.begin() + (capacity - 1), mags.end(), std::greater<float>());
    const float threshold = mags[capacity - 1];  // the capacity-th largest magnitude
    double amax = 0;
    for (float v : x) amax = std::max(amax, (double)std::fabs(v));
    int64_t kept = 0;
    for (int64_t i = 0; i < n; ++i) {
      const bool large = std::fabs(x[i]) >= threshold;
      if (large) {
        ++kept;
        EXPECT_NEAR(y[i], x[i], HalfStep(t, amax)) << DTypeName(t) << " " << i;
      } else {
        EXPECT_EQ(y[i], 0.0f) << DTypeName(t) << " " << i;
      }
    }
    EXPECT_EQ(kept, capacity) << DTypeName(t);
  }
}

// Every bit set (more set bits than codes): the codes are used in order and the bits past the
// capacity decode as zero, never reading past the row.
TEST(SparseFormats, MaskRowsWithTooManyBitsDecodeTheCapacity) {
  const int64_t n = 64;
  for (DType t : kMaskTypes) {
    const int64_t capacity = MaskCapacity(t, n);
    std::vector<uint8_t> row(RowBytes(t, n), 0xFF);
    const float d = 0.25f;
    std::memcpy(row.data(), &d, 4);
    for (int64_t k = 0; k < capacity; ++k) {
      if (IsF16Mask(t)) {
        const fp16_t v = FloatToFp16((float)(k + 1));
        std::memcpy(row.data() + SparseCodesOffset(n) + 2 * k, &v, 2);
      } else {
        row[SparseCodesOffset(n) + k] = (uint8_t)(k + 1);
      }
    }
    std::vector<float> y(n);
    Traits(t).to_float(row.data(), y.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(y[i], i < capacity ? 0.25f * (float)(i + 1) : 0.0f) << DTypeName(t) << " " << i;
  }
}

// The fp16 rows keep every kept value to fp16's rounding (d = 1), and a row beyond fp16's range
// takes d = max|x| / 65504 instead of overflowing.
TEST(SparseFormats, F16MaskRowsKeepValuesToHalfPrecision) {
  const int64_t n = 1024;
  std::vector<float> x = PrunedRow(n, 0.7, 21);
  for (float& v : x) v *= 3.0f;
  for (DType t : {DType::kSP50_F16, DType::kSP70_F16}) {
    const std::vector<float> y = RoundTrip(t, x);
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(y[i], Fp16ToFloat(FloatToFp16(x[i]))) << DTypeName(t) << " " << i;
    std::vector<float> big = x;
    big[5] = 1.0e6f;
    const std::vector<float> yb = RoundTrip(t, big);
    EXPECT_NEAR(yb[5], 1.0e6f, 1.0e6f * std::ldexp(1.0, -10));
    for (int64_t i = 0; i < n; ++i) EXPECT_TRUE(std::isfinite(yb[i])) << i;
  }
}

// sp70_w4a8 (int4 codes, a multiplier per run of 16 stored weights): a 70 %-pruned row keeps its
// mask exactly and its zeros zero; each run of 16 stored values has no more squared error than
// plain rounding would give it (the multiplier that puts the run's largest magnitude at 7,
// rounded up, codes rounded within ±7: at most half a step each), and the multipliers tried
// beyond that one make the whole row's error smaller. Stretches of the row are scaled from 1 down
// to 1/300 of its largest (small multipliers).
TEST(SparseFormats, W4MaskRowsKeepTheMaskAndBeatRoundingPerRun) {
  const DType t = DType::kSP70_W4A8;
  double total_got = 0, total_rounded = 0;
  for (int64_t n : {256, 768, 4096}) {
    std::vector<float> x = PrunedRow(n, 0.70, 7 + (uint32_t)n);
    for (int64_t i = 0; i < n; ++i) x[i] *= std::pow(300.0f, -(float)(i / 64 % 5) / 4.0f);
    std::vector<uint8_t> row(RowBytes(t, n));
    Traits(t).from_float(x.data(), row.data(), n);
    std::vector<float> y(n);
    Traits(t).to_float(row.data(), y.data(), n);
    const SparseMaskW4RowView v = ViewSparseMaskW4Row(row.data(), n, kSp70W4Cap);
    std::vector<int64_t> stored;
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_EQ((SparseMaskWord(v.masks, i / 32) >> (i % 32)) & 1, x[i] != 0.0f ? 1u : 0u) << "n " << n << " " << i;
      if (x[i] == 0.0f) {
        EXPECT_EQ(y[i], 0.0f) << "n " << n << " " << i;
      } else {
        stored.push_back(i);
      }
    }
    for (size_t k0 = 0; k0 < stored.size(); k0 += kSparseW4Run) {
      const size_t k1 = std::min(stored.size(), k0 + kSparseW4Run);
      double run_max = 0;
      for (size_t k = k0; k < k1; ++k) run_max = std::max(run_max, (double)std::fabs(x[stored[k]]));
      const double step = v.d * std::ceil(run_max / (7.0 * v.d) - 1e-9);  // plain rounding's step
      double got = 0, rounded = 0;
      for (size_t k = k0; k < k1; ++k) {
        const double xi = x[stored[k]], q = std::clamp(std::round(xi / step), -7.0, 7.0);
        got += (y[stored[k]] - xi) * (y[stored[k]] - xi);
        rounded += (q * step - xi) * (q * step - xi);
        EXPECT_LE(std::fabs(q * step - xi), 0.5 * step * (1 + 1e-6)) << "n " << n << " " << stored[k];
      }
      EXPECT_LE(got, rounded * (1 + 1e-5) + 1e-30) << "n " << n << " run " << k0 / kSparseW4Run;
      total_got += got, total_rounded += rounded;
    }
  }
  EXPECT_LT(total_got, 0.95 * total_rounded);
}

// Over the capacity (a dense Gaussian row) it keeps exactly the 80·n/256 largest magnitudes; with
// every mask bit set, the codes fill the first positions in order, each run of 16 scaled by its
// multiplier, and the rest decode as 0.
TEST(SparseFormats, W4MaskRowsKeepTheirCapacity) {
  const DType t = DType::kSP70_W4A8;
  const int64_t n = 1024, capacity = kSp70W4Cap * n / 256;
  const std::vector<float> x = Gaussian(n, 12);
  const std::vector<float> y = RoundTrip(t, x);
  std::vector<float> mags(n);
  for (int64_t i = 0; i < n; ++i) mags[i] = std::fabs(x[i]);
  std::nth_element(mags.begin(), mags.begin() + (capacity - 1), mags.end(), std::greater<float>());
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (std::fabs(x[i]) >= mags[capacity - 1]) {
      ++kept;
    } else {
      EXPECT_EQ(y[i], 0.0f) << i;
    }
  }
  EXPECT_EQ(kept, capacity);

  std::vector<uint8_t> row(RowBytes(t, 256), 0xFF);
  const float d = 0.5f;
  std::memcpy(row.data(), &d, 4);
  const SparseMaskW4RowView v = ViewSparseMaskW4Row(row.data(), 256, kSp70W4Cap);
  auto* multipliers = const_cast<uint8_t*>(v.multipliers);
  auto* codes = const_cast<uint8_t*>(v.codes);
  for (int64_t j = 0; j < v.capacity / kSparseW4Run; ++j) multipliers[j] = (uint8_t)(3 + 2 * j);
  // 80 codes: a chunk of 64 (byte i: codes i and 32 + i), then one of 16 (byte i: codes 64 + i, 72 + i).
  for (int64_t k = 0; k < v.capacity; ++k) {
    const int64_t byte = k < 64 ? k % 32 : 32 + (k - 64) % 8;
    const int shift = (k < 64 ? k >= 32 : k >= 72) ? 4 : 0;
    codes[byte] = (uint8_t)((codes[byte] & (0xF0 >> shift)) | (k % 16) << shift);
  }
  std::vector<float> z(256);
  Traits(t).to_float(row.data(), z.data(), 256);
  for (int64_t i = 0; i < 256; ++i)
    EXPECT_EQ(z[i], i < v.capacity ? 0.5f * (float)(3 + 2 * (i / 16)) * (float)(i % 16 - 8) : 0.0f) << i;
}

// Non-finite inputs (inf, NaN, the largest floats) encode without undefined behaviour (the
// sanitizer build runs this) and keep the mask of the non-zeros; every multiplier stays in 1..255.
TEST(SparseFormats, W4MaskRowsTakeNonFiniteInputs) {
  const DType t = DType::kSP70_W4A8;
  const int64_t n = 256;
  std::vector<float> x = PrunedRow(n, 0.7, 5);
  const float specials[] = {INFINITY, -INFINITY, NAN, 3.4e38f, -3.4e38f, 1e-45f};
  int64_t placed = 0;
  for (int64_t i = 0; i < n && placed < 6; ++i)
    if (x[i] != 0.0f) x[i] = specials[placed++];
  std::vector<uint8_t> row(RowBytes(t, n));
  Traits(t).from_float(x.data(), row.data(), n);
  const SparseMaskW4RowView v = ViewSparseMaskW4Row(row.data(), n, kSp70W4Cap);
  for (int64_t i = 0; i < n; ++i)
    EXPECT_EQ((SparseMaskWord(v.masks, i / 32) >> (i % 32)) & 1, x[i] != 0.0f ? 1u : 0u) << i;
  int64_t stored = 0;
  for (float value : x) stored += value != 0.0f;
  for (int64_t j = 0; j < (stored + kSparseW4Run - 1) / kSparseW4Run; ++j) {
    EXPECT_GE(v.multipliers[j], 1) << j;
  }
}

// Bytes per weight fall with the capacity: a 4096-wide row of sp70_q8 is well under half of
// q8_0's, sp50_q8 under two thirds; the 2:4 types cost 22/34 and 14/18 of q8_0 and q4_0.
TEST(SparseFormats, BytesPerWeight) {
  const int64_t n = 4096;
  EXPECT_EQ(RowBytes(DType::kSP70_Q8, n), 4 + (n / 32) * 14);
  EXPECT_EQ(RowBytes(DType::kSP50_Q8, n), 4 + (n / 32) * 20);
  EXPECT_LT(RowBytes(DType::kSP70_Q8, n) * 2, RowBytes(DType::kQ8_0, n));
  EXPECT_LT(RowBytes(DType::kSP50_Q8, n) * 3, RowBytes(DType::kQ8_0, n) * 2);
  EXPECT_EQ(RowBytes(DType::kS24_Q8, n) * 34, RowBytes(DType::kQ8_0, n) * 22);
  EXPECT_EQ(RowBytes(DType::kS24_Q4, n) * 18, RowBytes(DType::kQ4_0, n) * 14);
  EXPECT_EQ(RowBytes(DType::kS24_W4A8, n), 4 + (n / 128) * 52);  // 52/72 of q4_0's blocks
  EXPECT_EQ(RowBytes(DType::kSP70_F16, n), 4 + (n / 32) * 24);      // 6 bits/weight against f16's 16
  EXPECT_EQ(RowBytes(DType::kSP50_F16, n), 4 + (n / 32) * 36);
  EXPECT_LT(RowBytes(DType::kS24_W4A8, n) * 72, RowBytes(DType::kQ4_0, n) * 53);
  EXPECT_EQ(RowBytes(DType::kSP70_W4A8, n), 4 + (n / 256) * 77);  // 2.41 bits/weight against q4_0's 4.5
  EXPECT_LT(RowBytes(DType::kSP70_W4A8, n) * 9, RowBytes(DType::kQ4_0, n) * 5);
}

}  // namespace
}  // namespace smelt
