#include "formats/sparse24.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "formats/quant_util.h"

namespace smelt {
namespace {

// The positions (in order) of the two values of largest magnitude of a group of 4 (ties: the
// lower position).
void SelectPair(const float* v, int p[2]) {
  int a = 0;  // the largest
  for (int i = 1; i < 4; ++i)
    if (std::fabs(v[i]) > std::fabs(v[a])) a = i;
  int b = a == 0 ? 1 : 0;  // the largest of the others
  for (int i = 0; i < 4; ++i)
    if (i != a && std::fabs(v[i]) > std::fabs(v[b])) b = i;
  p[0] = std::min(a, b);
  p[1] = std::max(a, b);
}

// The 16 kept values of a block of 32 and their positions in their groups, in position order.
void Select(const float* x, float* kept, uint8_t* idx) {
  std::fill(idx, idx + 4, 0);
  for (int g = 0; g < 8; ++g) {
    int p[2];
    SelectPair(x + 4 * g, p);
    for (int j = 0; j < 2; ++j) {
      const int k = 2 * g + j;
      kept[k] = x[4 * g + p[j]];
      idx[k % 4] |= (uint8_t)(p[j] << (2 * (k / 4)));
    }
  }
}

BlockS24W4 LoadS24W4(const uint8_t* row, int64_t i) {
  BlockS24W4 b;
  std::memcpy(&b, row + sizeof(RowHeaderS24W4) + i * sizeof(BlockS24W4), sizeof b);
  return b;
}

// The sum of a code byte's two nibbles as two's-complement codes: slots j and j + 32 of byte j
// share a half ((j + 32) / 4 and j / 4 differ by 8), so the halves' sums take whole bytes.
constexpr std::array<int8_t, 256> kNibblePairSum = [] {
  std::array<int8_t, 256> t{};
  for (int b = 0; b < 256; ++b) t[b] = (int8_t)(((b & 15) >= 8 ? (b & 15) - 16 : (b & 15)) + ((b >> 4) >= 8 ? (b >> 4) - 16 : (b >> 4)));
  return t;
}();

// The header's terms of one block, added to c in the format's order.
float AddCodeSums(const BlockS24W4& b, float c) {
  int sums[2] = {0, 0};
  for (int j = 0; j < 32; ++j) sums[S24W4Half(j)] += kNibblePairSum[b.qs[j]];
  for (int h = 0; h < 2; ++h) c += Bf16ToFloat(b.d[h]) * (float)sums[h];
  return c;
}

// y[32] = Σ over kept values of d · code at its position (two values naming one position add).
template <class Block>
void DecodeBlock(const Block& b, float* y) {
  const float d = Fp16ToFloat(b.d);
  std::fill(y, y + kQKS24, 0.0f);
  for (int k = 0; k < 16; ++k) y[S24Position(b.idx, k)] += d * (float)S24Code(b, k);
}

}  // namespace

void DequantizeRowS24Q8(const BlockS24Q8* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / kQKS24; ++i) DecodeBlock(x[i], y + i * kQKS24);
}

void DequantizeRowS24Q4(const BlockS24Q4* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / kQKS24; ++i) DecodeBlock(x[i], y + i * kQKS24);
}

void QuantizeRowS24Q8(const float* x, BlockS24Q8* y, int64_t n) {
  for (int64_t i = 0; i < n / kQKS24; ++i) {
    float kept[16];
    Select(x + i * kQKS24, kept, y[i].idx);
    float amax;
    SignedAbsMax(kept, 16, &amax);
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = FloatToFp16(d);
    for (int k = 0; k < 16; ++k) y[i].qs[k] = (int8_t)std::clamp(RoundToInt(kept[k] * id), -127, 127);
  }
}

void QuantizeRowS24Q4(const float* x, BlockS24Q4* y, int64_t n) {
  for (int64_t i = 0; i < n / kQKS24; ++i) {
    float kept[16], amax;
    Select(x + i * kQKS24, kept, y[i].idx);
    const float max = SignedAbsMax(kept, 16, &amax);
    const float d = max / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = FloatToFp16(d);
    uint8_t c[16];
    for (int k = 0; k < 16; ++k) c[k] = (uint8_t)std::clamp(RoundToInt(kept[k] * id) + 8, 0, 15);
    for (int k = 0; k < 8; ++k) y[i].qs[k] = (uint8_t)(c[k] | c[k + 8] << 4);
  }
}

void DequantizeRowS24W4A8(const void* row, float* y, int64_t n) {
  const auto* p = static_cast<const uint8_t*>(row);
  std::fill(y, y + n, 0.0f);
  for (int64_t i = 0; i < n / kQKS24W4; ++i) {
    const BlockS24W4 b = LoadS24W4(p, i);
    float* out = y + i * kQKS24W4;
    for (int s = 0; s < 64; ++s) out[S24W4Position(b, s)] += Bf16ToFloat(b.d[S24W4Half(s)]) * (float)S24W4Code(b, s);
  }
}

void QuantizeRowS24W4A8(const float* x, void* row, int64_t n) {
  auto* p = static_cast<uint8_t*>(row);
  float c = 0.0f;
  for (int64_t i = 0; i < n / kQKS24W4; ++i) {
    const float* v = x + i * kQKS24W4;
    BlockS24W4 b{};
    float kept[64];
    for (int g = 0; g < 32; ++g) {
      int pos[2];
      SelectPair(v + 4 * g, pos);
      for (int j = 0; j < 2; ++j) {
        const int s = S24W4PairSlot(g, j);
        kept[s] = v[4 * g + pos[j]];
        b.idx[S24W4IndexByte(s)] |= (uint8_t)(pos[j] << (2 * (s & 3)));
      }
    }
    for (int h = 0; h < 2; ++h) {
      float half[32], amax;
      int m = 0;
      for (int s = 0; s < 64; ++s)
        if (S24W4Half(s) == h) half[m++] = kept[s];
      b.d[h] = FloatToBf16(SignedAbsMax(half, 32, &amax) / -8.0f);
      const float d = Bf16ToFloat(b.d[h]), id = d != 0.0f ? 1.0f / d : 0.0f;
      for (int s = 0; s < 64; ++s) {
        if (S24W4Half(s) != h) continue;
        const auto nibble = (uint8_t)(std::clamp(RoundToInt(kept[s] * id), -8, 7) & 0x0F);
        if (s < 32) b.qs[s] |= nibble;
        else b.qs[s - 32] |= (uint8_t)(nibble << 4);
      }
    }
    c = AddCodeSums(b, c);
    std::memcpy(p + sizeof(RowHeaderS24W4) + i * sizeof b, &b, sizeof b);
  }
  std::memcpy(p, &c, sizeof c);
}

float S24W4A8CodeSum(const void* row, int64_t n) {
  float c = 0.0f;
  for (int64_t i = 0; i < n / kQKS24W4; ++i) c = AddCodeSums(LoadS24W4(static_cast<const uint8_t*>(row), i), c);
  return c;
}

bool S24W4A8RowConsistent(const void* row, int64_t n) {
  float c;
  std::memcpy(&c, row, sizeof c);
  const float want = S24W4A8CodeSum(row, n);
  return std::memcmp(&c, &want, sizeof c) == 0;
}

}  // namespace smelt
