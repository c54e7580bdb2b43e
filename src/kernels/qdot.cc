// Scalar reference kernels of qdot.h and the dispatch between them and their AVX2 twins.
#include "kernels/qdot.h"

#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/cpu.h"
#include "core/dtype_list.h"
#include "core/error.h"
#include "core/half.h"
#include "formats/bitpack.h"
#include "formats/group_int.h"
#include "formats/iq4_nl.h"
#include "formats/k_quants.h"
#include "formats/nf4.h"
#include "formats/per_channel.h"
#include "formats/q4_0.h"
#include "formats/q4_1.h"
#include "formats/q5_0.h"
#include "formats/q5_1.h"
#include "formats/q8_0.h"
#include "formats/sparse24.h"
#include "formats/sparse_mask.h"
#include "formats/types.h"
#include "kernels/qdot_kernels.h"
#include "kernels/qdot_table4.h"

namespace smelt {
namespace {

// One block of type B read from possibly misaligned bytes.
template <class B>
B LoadBlock(const void* row, int64_t i) {
  B b;
  std::memcpy(&b, static_cast<const uint8_t*>(row) + i * sizeof(B), sizeof(B));
  return b;
}

// The 4-bit code of value j of a nibble-packed block (qs[j] low nibble j, high nibble j + 16).
inline int Nibble(const uint8_t* qs, int j) { return j < 16 ? qs[j] & 0x0F : qs[j - 16] >> 4; }
// Code of value j of a Q5 block: nibble plus the fifth bit j of qh.
inline int Code5(const uint8_t* qs, const uint8_t* qh, int j) { return Nibble(qs, j) | (int)((LoadQh(qh) >> j) & 1) << 4; }

// The signed integer each block holds for value j (offset taken off: value = d·code).
int CodeQ8_0(const BlockQ8_0& x, int j) { return x.qs[j]; }
int CodeQ4_0(const BlockQ4_0& x, int j) { return Nibble(x.qs, j) - 8; }
int CodeQ5_0(const BlockQ5_0& x, int j) { return Code5(x.qs, x.qh, j) - 16; }
int CodeIQ4_NL(const BlockIQ4_NL& x, int j) { return kIQ4NLValues[Nibble(x.qs, j)]; }
// The unsigned code of the types with a minimum (value = d·code + m).
int CodeQ4_1(const BlockQ4_1& x, int j) { return Nibble(x.qs, j); }
int CodeQ5_1(const BlockQ5_1& x, int j) { return Code5(x.qs, x.qh, j); }

// Blocks of 32 against Q8_0 (A = BlockQ8_0) or Q8_1 (A = BlockQ8_1, adding m·s per block).
template <class B, int (*Code)(const B&, int), class A>
float DotBlocksRef(const void* w, const void* a, int64_t n) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n / 32; ++i) {
    const auto x = LoadBlock<B>(w, i);
    const auto y = LoadBlock<A>(a, i);
    int s = 0;
    for (int j = 0; j < 32; ++j) s += Code(x, j) * y.qs[j];
    sum += Fp16ToFloat(x.d) * Fp16ToFloat(y.d) * (float)s;
    if constexpr (std::is_same_v<A, BlockQ8_1>) sum += Fp16ToFloat(x.m) * Fp16ToFloat(y.s);
  }
  return sum;
}

// NF4 against Q8_0, as the packed products compute it (kernels/packed.h): per half block of 32
// (one Q8_0 block) the exact Σ kNF4Fixed[q_w]·q_a, acc = fma(d_w·d_a, (float) sum, acc), and the
// row's acc · 2^-14 at the end.
float DotNF4Ref(const void* w, const void* a, int64_t n) {
  float acc = 0.0f;
  for (int64_t i = 0; i < n / 32; ++i) {
    const auto x = LoadBlock<BlockNF4>(w, i / 2);
    const auto y = LoadBlock<BlockQ8_0>(a, i);
    int32_t s = 0;
    for (int j = 0; j < 32; ++j) s += kNF4Fixed[UnpackCode(x.qs, 32 * (i % 2) + j, 4)] * y.qs[j];
    acc = std::fma(Fp16ToFloat(x.d) * Fp16ToFloat(y.d), (float)s, acc);
  }
  return acc * kNF4FixedScale;
}

// The group types (formats/group_int.h) as the ggml blocks they run as, against Q8_0 (symmetric)
// or Q8_1 (asymmetric): the row converted, then DotBlocksRef of those blocks.
template <DType W>
float DotGroupIntRef(const void* w, const void* a, int64_t n) {
  if constexpr (GroupIntGgmlType(W) == DType::kQ4_0) {
    std::vector<BlockQ4_0> blocks((size_t)(n / 32));
    GroupIntRowAsGgml(W, w, n, blocks.data());
    return DotBlocksRef<BlockQ4_0, CodeQ4_0, BlockQ8_0>(blocks.data(), a, n);
  } else {
    std::vector<BlockQ4_1> blocks((size_t)(n / 32));
    GroupIntRowAsGgml(W, w, n, blocks.data());
    return DotBlocksRef<BlockQ4_1, CodeQ4_1, BlockQ8_1>(blocks.data(), a, n);
  }
}
template <DType W>
struct GroupIntRef {
  static constexpr QDotFn kFn = DotGroupIntRef<W>;
};

// A k-quant super-block in integer form: value e = d·scale[e / len]·code[e] − dmin·min[e / len]
// with `len` values per sub-block (codes already offset: signed for Q3_K/Q6_K).
struct KBlock {
  float d = 0, dmin = 0;
  int len = 16;
  int scale[16] = {}, min[16] = {};
  int8_t code[kQK_K] = {};
};

void UnpackQ2_K(const BlockQ2_K& x, KBlock& k) {
  k.d = Fp16ToFloat(x.d), k.dmin = Fp16ToFloat(x.dmin), k.len = 16;
  for (int j = 0; j < 16; ++j) k.scale[j] = x.scales[j] & 0x0F, k.min[j] = x.scales[j] >> 4;
  for (int e = 0; e < kQK_K; ++e) k.code[e] = (int8_t)((x.qs[32 * (e / 128) + e % 32] >> (2 * (e % 128 / 32))) & 3);
}

void UnpackQ3_K(const BlockQ3_K& x, KBlock& k) {
  k.d = Fp16ToFloat(x.d), k.len = 16;
  for (int j = 0; j < 16; ++j) k.scale[j] = Q3KScale(x.scales, j);
  for (int e = 0; e < kQK_K; ++e) {
    const int low = (x.qs[32 * (e / 128) + e % 32] >> (2 * (e % 128 / 32))) & 3;
    k.code[e] = (int8_t)(low - ((x.hmask[e % 32] >> (e / 32)) & 1 ? 0 : 4));
  }
}

// Q4_K/Q5_K's scales and minimums of their 8 sub-blocks of 32.
void UnpackK4Scales(const uint8_t* packed, KBlock& k) {
  k.len = 32;
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    GetScaleMinK4(j, packed, &sc, &m);
    k.scale[j] = sc, k.min[j] = m;
  }
}

void UnpackQ4_K(const BlockQ4_K& x, KBlock& k) {
  k.d = Fp16ToFloat(x.d), k.dmin = Fp16ToFloat(x.dmin);
  UnpackK4Scales(x.scales, k);
  for (int e = 0; e < kQK_K; ++e) k.code[e] = (int8_t)((x.qs[32 * (e / 64) + e % 32] >> (e % 64 < 32 ? 0 : 4)) & 0x0F);
}

void UnpackQ5_K(const BlockQ5_K& x, KBlock& k) {
  k.d = Fp16ToFloat(x.d), k.dmin = Fp16ToFloat(x.dmin);
  UnpackK4Scales(x.scales, k);
  for (int e = 0; e < kQK_K; ++e) {
    const int low = (x.qs[32 * (e / 64) + e % 32] >> (e % 64 < 32 ? 0 : 4)) & 0x0F;
    k.code[e] = (int8_t)(low | ((x.qh[e % 32] >> (e / 32)) & 1) << 4);
  }
}

void UnpackQ6_K(const BlockQ6_K& x, KBlock& k) {
  k.d = Fp16ToFloat(x.d), k.len = 16;
  for (int j = 0; j < 16; ++j) k.scale[j] = x.scales[j];
  // Value e = 128·h + 32·p + l (l < 32): low nibble of ql[64h + l + 32·(p % 2)] (p < 2) or its
  // high nibble (p >= 2), high two bits at bits 2p of qh[32h + l].
  for (int e = 0; e < kQK_K; ++e) {
    const int h = e / 128, p = e % 128 / 32, l = e % 32;
    const int low = (x.ql[64 * h + l + 32 * (p % 2)] >> (p < 2 ? 0 : 4)) & 0x0F;
    k.code[e] = (int8_t)((low | ((x.qh[32 * h + l] >> (2 * p)) & 3) << 4) - 32);
  }
}

// Σ over super-blocks of d_a·(d·Σ_j scale_j·Σ code·q_a − dmin·Σ_j min_j·Σ q_a), the integer
// sums exact, the Q8_K block's bsums supplying Σ q_a per 16.
template <class B, void (*Unpack)(const B&, KBlock&)>
float DotKRef(const void* w, const void* a, int64_t n) {
  float sum = 0.0f;
  KBlock k;
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    Unpack(LoadBlock<B>(w, i), k);
    const auto y = LoadBlock<BlockQ8_K>(a, i);
    int sum_codes = 0, sum_mins = 0;
    for (int j = 0; j < kQK_K / k.len; ++j) {
      int s = 0;
      for (int e = j * k.len; e < (j + 1) * k.len; ++e) s += k.code[e] * y.qs[e];
      int bsum = 0;
      for (int b = j * k.len / 16; b < (j + 1) * k.len / 16; ++b) bsum += y.bsums[b];
      sum_codes += k.scale[j] * s;
      sum_mins += k.min[j] * bsum;
    }
    sum += y.d * k.d * (float)sum_codes - y.d * k.dmin * (float)sum_mins;
  }
  return sum;
}

// w8a8 · i8_pc (per-token int8 activations): one integer sum over the row, scaled once by
// d_w·d_a (f32 scales at the start of each row). Exact up to that one conversion and product.
float DotW8A8Ref(const void* w_row, const void* a_row, int64_t n) {
  const I8RowView w = ViewI8Row(w_row), a = ViewI8Row(a_row);
  int32_t sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += (int8_t)w.codes[i] * (int8_t)a.codes[i];
  return (float)sum * (w.d * a.d);
}

// i8_pc · f32 activations: d_w · Σ q_w·x in f32, summed in order.
float DotI8PCRef(const void* w_row, const void* a_row, int64_t n) {
  const auto* x = static_cast<const uint8_t*>(w_row);
  float dw;
  std::memcpy(&dw, x, sizeof dw);
  const auto* qw = reinterpret_cast<const int8_t*>(x + sizeof(RowHeaderI8));
  float a[1];
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    std::memcpy(a, static_cast<const uint8_t*>(a_row) + 4 * i, sizeof a);
    sum += (float)qw[i] * a[0];
  }
  return dw * sum;
}

// 2:4 blocks against Q8_0: per block d_w·d_a · Σ_k code_k · q_a[position of kept value k], the
// 16 kept values only (the activations at the pruned positions are never read).
template <class B>
float DotS24Ref(const void* w, const void* a, int64_t n) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n / kQKS24; ++i) {
    const auto x = LoadBlock<B>(w, i);
    const auto y = LoadBlock<BlockQ8_0>(a, i);
    int s = 0;
    for (int k = 0; k < 16; ++k) s += S24Code(x, k) * y.qs[S24Position(x.idx, k)];
    sum += Fp16ToFloat(x.d) * Fp16ToFloat(y.d) * (float)s;
  }
  return sum;
}

// Bitmask rows against Q8_0: per block of 32 d_a · Σ over its set bits of code · q_a (codes
// taken in order; set bits past the row's capacity count as 0), then d_w times the sum.
template <int Cap>
float DotSparseMaskRef(const void* w_row, const void* a_row, int64_t n) {
  std::vector<int> sums((size_t)(n / kQKSparseMask), 0);  // Σ code·q_a per block
  ForEachStoredWeight<Cap>(w_row, n, [&](int64_t i, int8_t q) {
    sums[(size_t)(i / kQKSparseMask)] += q * LoadBlock<BlockQ8_0>(a_row, i / kQKSparseMask).qs[i % kQKSparseMask];
  });
  float dw, sum = 0.0f;
  std::memcpy(&dw, w_row, sizeof dw);
  for (int64_t b = 0; b < n / kQKSparseMask; ++b) sum += Fp16ToFloat(LoadBlock<BlockQ8_0>(a_row, b).d) * (float)sums[(size_t)b];
  return dw * sum;
}

// Bitmask rows against per-token int8 activations (i8_pc): one integer sum over the row's stored
// codes times the activation codes at their positions, scaled once by d_w·d_a as w8a8's is.
template <int Cap>
float DotSparseMaskW8A8Ref(const void* w_row, const void* a_row, int64_t n) {
  const I8RowView a = ViewI8Row(a_row);
  int32_t sum = 0;
  ForEachStoredWeight<Cap>(w_row, n, [&](int64_t i, int8_t q) { sum += q * (int8_t)a.codes[i]; });
  float dw;
  std::memcpy(&dw, w_row, sizeof dw);
  return (float)sum * (dw * a.d);
}

// sp70_w4a8 against per-token int8 activations: Σ s_g·q·q_a over the stored weights, exact in
// int64, scaled once by d_w·d_a.
float DotSparseMaskW4A8Ref(const void* w_row, const void* a_row, int64_t n) {
  const I8RowView a = ViewI8Row(a_row);
  int64_t sum = 0;
  ForEachStoredW4<kSp70W4Cap>(w_row, n, [&](int64_t i, int q, int s) { sum += (int64_t)(s * q * (int8_t)a.codes[i]); });
  return (float)sum * (ViewSparseMaskW4Row(w_row, n, kSp70W4Cap).d * a.d);
}

// 2:4 int4 rows against per-token int8 activations (s24_w4a8): per half of each block of 128 the
// exact integer Σ q_s·q_a[position of slot s], scaled by the half's d and summed in f32 in order,
// then times d_a. The row header is not read: the kernels' offset term is checked against this.
float DotS24W4A8Ref(const void* w_row, const void* a_row, int64_t n) {
  const I8RowView a = ViewI8Row(a_row);
  const auto* blocks = static_cast<const uint8_t*>(w_row) + sizeof(RowHeaderS24W4);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / kQKS24W4; ++i) {
    const auto b = LoadBlock<BlockS24W4>(blocks, i);
    int halves[2] = {0, 0};
    for (int s = 0; s < 64; ++s)
      halves[S24W4Half(s)] += S24W4Code(b, s) * (int8_t)a.codes[i * kQKS24W4 + S24W4Position(b, s)];
    for (int h = 0; h < 2; ++h) sum += Bf16ToFloat(b.d[h]) * (float)halves[h];
  }
  return sum * a.d;
}

// Bitmask rows of fp16 values against f32 activations (sp50_f16, sp70_f16): each stored value
// times its activation in f32, summed in position order in f32, then times the row's d.
template <int Cap>
float DotSparseMaskF16Ref(const void* w_row, const void* a_row, int64_t n) {
  const auto* x = static_cast<const uint8_t*>(a_row);
  float sum = 0.0f;
  ForEachStoredValue<Cap, uint16_t>(w_row, n, [&](int64_t i, uint16_t v) {
    float a;
    std::memcpy(&a, x + 4 * i, sizeof a);
    sum += Fp16ToFloat(v) * a;
  });
  float d;
  std::memcpy(&d, w_row, sizeof d);
  return d * sum;
}

// The table-4 types (kernels/qdot_table4.h: i4s_pc/i4a_pc, km4_pc) against f32 activations: the row
// decoded by the format's own to_float, then Σ w·x summed in order in f32.
template <DType W>
float DotDecodedRef(const void* w_row, const void* a_row, int64_t n) {
  std::vector<float> w((size_t)n);
  Traits(W).to_float(w_row, w.data(), n);
  const auto* x = static_cast<const uint8_t*>(a_row);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    float a;
    std::memcpy(&a, x + 4 * i, sizeof a);
    sum += w[(size_t)i] * a;
  }
  return sum;
}
template <DType W>
struct DecodedRef {
  static constexpr QDotFn kFn = DotDecodedRef<W>;
};

// f16 · f16 (bf16 · bf16): each product in f32, summed in order in f32.
template <float (*Widen)(uint16_t)>
float DotHalvesRef(const void* w_row, const void* a_row, int64_t n) {
  const auto* x = static_cast<const uint8_t*>(w_row);
  const auto* y = static_cast<const uint8_t*>(a_row);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    uint16_t a, b;
    std::memcpy(&a, x + 2 * i, sizeof a);
    std::memcpy(&b, y + 2 * i, sizeof b);
    sum += Widen(a) * Widen(b);
  }
  return sum;
}

}  // namespace

QDotFn ReferenceQDot(DType weight) {
  switch (weight) {
    case DType::kQ8_0: return DotBlocksRef<BlockQ8_0, CodeQ8_0, BlockQ8_0>;
    case DType::kQ4_0: return DotBlocksRef<BlockQ4_0, CodeQ4_0, BlockQ8_0>;
    case DType::kQ5_0: return DotBlocksRef<BlockQ5_0, CodeQ5_0, BlockQ8_0>;
    case DType::kIQ4_NL: return DotBlocksRef<BlockIQ4_NL, CodeIQ4_NL, BlockQ8_0>;
    case DType::kNF4: return DotNF4Ref;
    case DType::kQ4_1: return DotBlocksRef<BlockQ4_1, CodeQ4_1, BlockQ8_1>;
    case DType::kQ5_1: return DotBlocksRef<BlockQ5_1, CodeQ5_1, BlockQ8_1>;
    case DType::kQ2_K: return DotKRef<BlockQ2_K, UnpackQ2_K>;
    case DType::kQ3_K: return DotKRef<BlockQ3_K, UnpackQ3_K>;
    case DType::kQ4_K: return DotKRef<BlockQ4_K, UnpackQ4_K>;
    case DType::kQ5_K: return DotKRef<BlockQ5_K, UnpackQ5_K>;
    case DType::kQ6_K: return DotKRef<BlockQ6_K, UnpackQ6_K>;
    case DType::kF16: return DotHalvesRef<Fp16ToFloat>;
    case DType::kBF16: return DotHalvesRef<Bf16ToFloat>;
    case DType::kW8A8: return DotW8A8Ref;
    case DType::kI8_PC: return DotI8PCRef;
    case DType::kS24_Q8: return DotS24Ref<BlockS24Q8>;
    case DType::kS24_Q4: return DotS24Ref<BlockS24Q4>;
    case DType::kSP50_Q8: return DotSparseMaskRef<16>;
    case DType::kSP70_Q8: return DotSparseMaskRef<10>;
    case DType::kSP50_W8A8: return DotSparseMaskW8A8Ref<16>;
    case DType::kSP70_W8A8: return DotSparseMaskW8A8Ref<10>;
    case DType::kS24_W4A8: return DotS24W4A8Ref;
    case DType::kSP50_F16: return DotSparseMaskF16Ref<16>;
    case DType::kSP70_F16: return DotSparseMaskF16Ref<10>;
    case DType::kSP70_W4A8: return DotSparseMaskW4A8Ref;
    default:
      if (GroupIntGgmlType(weight) != DType::kF32)
        return FindInTypeList<kGroupIntTypes, GroupIntRef, QDotFn>(weight);
      return table4::Find<DecodedRef, QDotFn>(weight);
  }
}

QDotFn Avx2QDot(DType weight) {
  const qdot::Avx2Kernels* k = qdot::Avx2();
  if (!k) return nullptr;
  switch (weight) {
    case DType::kQ8_0: return k->q8_0;
    case DType::kQ4_0: return k->q4_0;
    case DType::kQ5_0: return k->q5_0;
    case DType::kIQ4_NL: return k->iq4_nl;
    case DType::kQ4_1: return k->q4_1;
    case DType::kQ5_1: return k->q5_1;
    case DType::kQ2_K: return k->q2_k;
    case DType::kQ3_K: return k->q3_k;
    case DType::kQ4_K: return k->q4_k;
    case DType::kQ5_K: return k->q5_k;
    case DType::kQ6_K: return k->q6_k;
    case DType::kF16: return k->f16;
    case DType::kBF16: return k->bf16;
    case DType::kW8A8: return k->w8a8;
    case DType::kI8_PC: return k->i8_pc;
    case DType::kS24_Q8: return k->s24_q8;
    case DType::kS24_Q4: return k->s24_q4;
    case DType::kSP50_Q8: return k->sp50_q8;
    case DType::kSP70_Q8: return k->sp70_q8;
    case DType::kSP50_W8A8: return k->sp50_w8a8;
    case DType::kSP70_W8A8: return k->sp70_w8a8;
    case DType::kS24_W4A8: return k->s24_w4a8;
    case DType::kSP50_F16: return k->sp50_f16;
    case DType::kSP70_F16: return k->sp70_f16;
    case DType::kSP70_W4A8: return k->sp70_w4a8;
    default: return table4::Avx2Dot(weight);
  }
}

QDotFn SelectQDot(DType weight) {
  if (QDotFn f = FastQDot(weight)) return f;
  return ReferenceQDot(weight);
}

QDotFn FastQDot(DType weight) {
  if (CpuHasAvx512F())
    if (QDotFn f = Avx512QDot(weight)) return f;
  return CpuHasAvx2FmaF16c() ? Avx2QDot(weight) : nullptr;
}

QDotX4Fn FastQDotX4(DType weight) {
  if (CpuHasAvx512F())
    if (QDotX4Fn f = Avx512QDotX4(weight)) return f;
  const qdot::Avx2Kernels* k = CpuHasAvx2FmaF16c() ? qdot::Avx2() : nullptr;
  if (!k) return nullptr;
  switch (weight) {
    case DType::kQ8_0: return k->x4_q8_0;
    case DType::kQ4_0: return k->x4_q4_0;
    case DType::kQ5_0: return k->x4_q5_0;
    case DType::kIQ4_NL: return k->x4_iq4_nl;
    case DType::kS24_Q8: return k->x4_s24_q8;
    case DType::kS24_Q4: return k->x4_s24_q4;
    case DType::kSP50_Q8: return k->x4_sp50_q8;
    case DType::kSP70_Q8: return k->x4_sp70_q8;
    case DType::kSP50_W8A8: return k->x4_sp50_w8a8;
    case DType::kSP70_W8A8: return k->x4_sp70_w8a8;
    case DType::kS24_W4A8: return k->x4_s24_w4a8;
    case DType::kSP50_F16: return k->x4_sp50_f16;
    case DType::kSP70_F16: return k->x4_sp70_f16;
    case DType::kSP70_W4A8: return k->x4_sp70_w4a8;
    case DType::kQ2_K: return k->x4_q2_k;
    case DType::kQ4_K: return k->x4_q4_k;
    case DType::kQ5_K: return k->x4_q5_k;
    case DType::kQ6_K: return k->x4_q6_k;
    default: return nullptr;
  }
}

QDotRows4Fn FastQDotRows4(DType weight) {
  if (CpuHasAvx512F())
    if (QDotRows4Fn f = Avx512QDotRows4(weight)) return f;
  // The AVX2 forms where FastQDot runs the AVX2 kernel (its bits).
  const qdot::Avx2Kernels* k = CpuHasAvx2FmaF16c() ? qdot::Avx2() : nullptr;
  if (!k || FastQDot(weight) != Avx2QDot(weight)) return nullptr;
  switch (weight) {
    case DType::kQ2_K: return k->rows4_q2_k;
    case DType::kQ4_K: return k->rows4_q4_k;
    case DType::kQ5_K: return k->rows4_q5_k;
    case DType::kQ6_K: return k->rows4_q6_k;
    default: return nullptr;
  }
}

QDotRows2x4Fn FastQDotRows2x4(DType weight) { return CpuHasAvx512F() ? Avx512QDotRows2x4(weight) : nullptr; }

QDotRowKernels FastQDotRowKernels(DType weight) {
  return {FastQDot(weight), FastQDotX4(weight), FastQDotRows4(weight), FastQDotRows2x4(weight)};
}

void QDotRows(const QDotRowKernels& k, const uint8_t* w_rows, size_t w_stride, int64_t rows, const uint8_t* a_rows,
              size_t a_stride, int64_t T, int64_t n, float* out, int64_t ld) {
  int64_t r = 0;
  if (k.rows4 && T < 4) {  // decoding: four weight rows per call, each token in turn
    for (; r + 4 <= rows; r += 4)
      for (int64_t t = 0; t < T; ++t) k.rows4(w_rows + r * w_stride, w_stride, a_rows + t * a_stride, n, out + t * ld + r);
  }
  if (k.rows2x4 && T >= 4) {  // several tokens: two weight rows × four tokens per call
    for (; r + 2 <= rows; r += 2) {
      const uint8_t* pair = w_rows + r * w_stride;
      int64_t t = 0;
      for (; t + 4 <= T; t += 4) k.rows2x4(pair, w_stride, a_rows + t * a_stride, a_stride, n, out + t * ld + r, ld);
      for (; t < T; ++t)
        for (int64_t j = 0; j < 2; ++j) out[t * ld + r + j] = k.dot(pair + j * w_stride, a_rows + t * a_stride, n);
    }
  }
  for (; r < rows; ++r) {
    const uint8_t* row = w_rows + r * w_stride;
    int64_t t = 0;
    if (k.dot4) {
      float four[4];
      for (; t + 4 <= T; t += 4) {
        k.dot4(row, a_rows + t * a_stride, a_stride, n, four);
        for (int j = 0; j < 4; ++j) out[(t + j) * ld + r] = four[j];
      }
    }
    for (; t < T; ++t) out[t * ld + r] = k.dot(row, a_rows + t * a_stride, n);
  }
}

float DotQ(DType weight, const void* w_row, const void* a_row, int64_t n) {
  const QDotFn f = SelectQDot(weight);
  SMELT_ASSERT(f != nullptr);
  return f(w_row, a_row, n);
}

}  // namespace smelt
