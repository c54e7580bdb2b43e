#pragma once
// Weights repacked at load into a layout that serves eight output rows per SIMD step.
//
// A Q4_0, IQ4_NL, NF4, Q4_1, Q5_0, Q5_1 or Q8_0 matrix (and one of a group type i{4,3,2}{s,a}_g*, converted
// weight for weight to Q4_0/Q4_1 blocks: PackedLayoutType) becomes panels of 8 rows (the last one padded with zero rows); a panel
// is its blocks in column order, each holding the 8 rows' fp16 scales side by side, then their
// codes in chunks of 32 bytes that hold 4 consecutive codes of row 0, then of row 1, ..., row 7.
// With one broadcast of the 4 matching activation bytes, _mm256_maddubs_epi16 multiplies all 8
// rows at once and the 8 row sums land in the 8 lanes of one register: no horizontal sums, one
// scale multiply per 8 rows.
//   BlockQ4_0x8: chunk c holds bytes qs[4c .. 4c+4) of each row. A Q4_0 byte qs[j] holds weight j
//     (low nibble) and weight j + 16 (high nibble), so the low nibbles of chunk c are weights
//     4c .. 4c+3 and the high nibbles weights 16+4c .. 16+4c+3. IQ4_NL blocks have the same
//     layout (their nibbles index the codebook kIQ4NLValues) and pack the same way. An NF4 block of
//     64 packs as two such blocks of 32, both with its scale (byte j of half h: codes 32h + j and
//     32h + 16 + j); their nibbles index its levels in fixed point, kNF4Fixed (formats/nf4.h).
//   BlockQ8_0x8: chunk c holds codes 4c .. 4c+3 of each row.
//   BlockQ4_1x8, BlockQ5_1x8: as Q4_0 and Q5_0, with the 8 rows' fp16 minimums after the scales.
//   BlockQ5_0x8: Q4_0's chunks of low nibbles, plus a 32-byte plane of the fifth bits laid out
//     for the same bytes: bit j of plane byte 4r + i is the fifth bit of row r's code 4j + i, the
//     code that byte 4r + i of the j-th unpacked register holds (j < 4: chunk j's low nibbles,
//     j >= 4: chunk j − 4's high nibbles). Shifting the plane left by 4 − j (or right by j − 4)
//     in 16-bit lanes puts that bit at bit 4 of every byte: no bit crosses a byte.
//
// Per row and block the integer sum is ggml's exactly (Q4_0: Σ (q_w − 8)·q_a, computed as
// Σ q_w·q_a − 8·Σ q_a; Q5_0 the same with 5-bit codes and 16; IQ4_NL: Σ table[q_w]·q_a; NF4:
// Σ kNF4Fixed[q_w]·q_a; Q8_0: Σ q_w·q_a). The f32 result of a row accumulates the blocks in
// column order:
//   acc = fma(d_w·d_a, (float) sum, acc)
// (NF4's result is acc·2^-14 at the end: PackedResultScale)
// and for the types with a minimum (Q4_1, Q5_1: unsigned codes, no offset), against Q8_1
// activation blocks, ggml's m_w·s_a term after it:
//   acc = fma(m_w, s_a, acc)
// which the scalar reference (PackedGemmReference) does with std::fma, so the AVX2 kernels and
// the reference agree bit for bit, and a token's outputs never depend on the other tokens of a
// batch. Against the unpacked kernels (kernels/qdot.h) only the order of the f32 sums differs.
//
// Q2_K, Q3_K, Q4_K, Q5_K and Q6_K pack the same way by super-block (256 weights, against Q8_K activation blocks):
//   BlockQ2_Kx8: the 8 rows' fp16 d, then their fp16 dmin, then the scale bytes (low nibble the
//     scale, high nibble the minimum, as stored) of sub-blocks 2p and 2p + 1 side by side for
//     each row (pair p: 16 bytes), then the code bytes in Q4_0x8's chunks: chunk c holds bytes
//     qs[4c .. 4c+4) of each row. ggml's byte qs[32h + l] holds weight 128h + 32k + l at bits 2k,
//     so chunk 8h + c shifted right by 2k and masked holds weights 128h + 32k + 4c .. +3 of every
//     row (sub-block 8h + 2k + c / 4): 4 consecutive codes, the operand of one vpdpbusd.
//   BlockQ4_Kx8: the rows' fp16 d and dmin, then their 12 scale bytes (ggml's 6-bit scales and
//     minimums, GetScaleMinK4) in 3 chunks of 4 bytes per row, then the code bytes in chunks as
//     Q4_0x8: chunk 8g + c holds qs[32g + 4c .. +3] of each row, whose low nibbles are weights
//     64g + 4c .. +3 (sub-block 2g) and high nibbles weights 64g + 32 + 4c .. +3 (sub-block 2g + 1).
//   BlockQ3_Kx8: the rows' fp16 d, then ggml's high-bit bytes hmask in 8 chunks of 4 bytes per row
//     (byte hmask[l] holds the third bit of weight 128h + 32k + l at bit 4h + k: chunk c serves code
//     chunks c and 8 + c), the 12 scale bytes in 3 chunks (Q3KScale), then the codes' low two bits
//     as Q2_K's. A code is its low bits − 4 where its third bit is clear.
//   BlockQ5_Kx8: as Q4_K, with ggml's fifth-bit bytes qh in 8 chunks of 4 bytes per row before the
//     codes: byte qh[l] holds the fifth bit of weight 64g + l at bit 2g and of 64g + 32 + l at
//     bit 2g + 1, so chunk c of qh serves code chunks c, 8 + c, 16 + c and 24 + c.
//   BlockQ6_Kx8: the rows' fp16 d, then their 16 signed scale bytes (one per 16 weights) in 4 chunks
//     of 4 bytes per row, ggml's qh bytes in 16 chunks and its ql bytes in 32 chunks, each chunk c
//     holding bytes 4c .. 4c+3 of every row. ggml's byte ql[64h + 32m + l] holds the low four bits of
//     weight 128h + 32m + l (low nibble) and of 128h + 64 + 32m + l (high nibble), and qh[32h + l]
//     the top two bits of weight 128h + 32k + l at bits 2k, so ql chunks 16h + c and 16h + 8 + c
//     with qh chunk 8h + c give codes 4c .. 4c+3 of each of the half's four runs of 32 weights.
//     A weight is d·sc·(code − 32), the code 0..63.
//   Per row and super-block the integer sums are exact, isum = Σ_j sc_j·Σ q·a and
//   msum = Σ_j m_j·bsums_j (Q4_K, Q5_K: the two bsums of each 32 weights; Q3_K, Q6_K: none, their
//   scales signed and their codes − 4 or − 32 in isum), and the f32 steps are
//     acc = fma(d_w·d_a, (float) isum, acc);  acc = fma(−(dmin_w·d_a), (float) msum, acc)
//   super-block by super-block (d_a the Q8_K block's f32 scale).
#include <cstdint>
#include <memory>
#include <span>
#include <type_traits>
#include <vector>

#include "core/half.h"
#include "core/huge_pages.h"
#include "core/tensor.h"
#include "formats/nf4.h"
#include "formats/q8_0.h"
#include "kernels/prefetch.h"

namespace smelt {

inline constexpr int kPackRows = 8;

struct BlockQ4_0x8 {
  fp16_t d[kPackRows];           // scale of each row's block
  uint8_t qs[4][kPackRows * 4];  // chunk c: qs[4c .. 4c+4) of rows 0..7
};
static_assert(sizeof(BlockQ4_0x8) == 2 * kPackRows + 16 * kPackRows, "a packed Q4_0 block of 8 rows is 144 bytes");

struct BlockQ5_0x8 {
  fp16_t d[kPackRows];           // scale of each row's block
  uint8_t qh[kPackRows * 4];     // the fifth bits, laid out as above
  uint8_t qs[4][kPackRows * 4];  // as BlockQ4_0x8
};
static_assert(sizeof(BlockQ5_0x8) == 2 * kPackRows + 20 * kPackRows, "a packed Q5_0 block of 8 rows is 176 bytes");

struct BlockQ4_1x8 {
  fp16_t d[kPackRows];           // scale of each row's block
  fp16_t m[kPackRows];           // minimum of each row's block
  uint8_t qs[4][kPackRows * 4];  // as BlockQ4_0x8
};
static_assert(sizeof(BlockQ4_1x8) == 4 * kPackRows + 16 * kPackRows, "a packed Q4_1 block of 8 rows is 160 bytes");

struct BlockQ5_1x8 {
  fp16_t d[kPackRows];
  fp16_t m[kPackRows];
  uint8_t qh[kPackRows * 4];     // as BlockQ5_0x8
  uint8_t qs[4][kPackRows * 4];
};
static_assert(sizeof(BlockQ5_1x8) == 4 * kPackRows + 20 * kPackRows, "a packed Q5_1 block of 8 rows is 192 bytes");

struct BlockQ2_Kx8 {
  fp16_t d[kPackRows];                // each row's super-block scale of the scales
  fp16_t dmin[kPackRows];             // and of the minimums
  uint8_t scales[8][kPackRows * 2];   // pair p: row r's scale bytes of sub-blocks 2p, 2p+1 at 2r, 2r+1
  uint8_t qs[16][kPackRows * 4];      // chunk c: qs[4c .. 4c+4) of rows 0..7
};
static_assert(sizeof(BlockQ2_Kx8) == 84 * kPackRows, "a packed Q2_K super-block of 8 rows is 672 bytes");

struct BlockQ3_Kx8 {
  fp16_t d[kPackRows];
  uint8_t hmask[8][kPackRows * 4];   // chunk c: hmask[4c .. 4c+4) of rows 0..7
  uint8_t scales[3][kPackRows * 4];  // chunk s: scale bytes 4s .. 4s+4 of rows 0..7
  uint8_t qs[16][kPackRows * 4];     // as BlockQ2_Kx8
};
static_assert(sizeof(BlockQ3_Kx8) == 110 * kPackRows, "a packed Q3_K super-block of 8 rows is 880 bytes");

struct BlockQ4_Kx8 {
  fp16_t d[kPackRows];
  fp16_t dmin[kPackRows];
  uint8_t scales[3][kPackRows * 4];  // chunk s: scale bytes 4s .. 4s+4 of rows 0..7
  uint8_t qs[32][kPackRows * 4];     // chunk c: qs[4c .. 4c+4) of rows 0..7
};
static_assert(sizeof(BlockQ4_Kx8) == 144 * kPackRows, "a packed Q4_K super-block of 8 rows is 1152 bytes");

struct BlockQ5_Kx8 {
  fp16_t d[kPackRows];
  fp16_t dmin[kPackRows];
  uint8_t scales[3][kPackRows * 4];  // as BlockQ4_Kx8
  uint8_t qh[8][kPackRows * 4];      // chunk c: qh[4c .. 4c+4) of rows 0..7
  uint8_t qs[32][kPackRows * 4];
};
static_assert(sizeof(BlockQ5_Kx8) == 176 * kPackRows, "a packed Q5_K super-block of 8 rows is 1408 bytes");

struct BlockQ6_Kx8 {
  fp16_t d[kPackRows];
  uint8_t scales[4][kPackRows * 4];  // chunk s: the signed scale bytes 4s .. 4s+3 of rows 0..7
  uint8_t qh[16][kPackRows * 4];     // chunk c: qh[4c .. 4c+4) of rows 0..7
  uint8_t ql[32][kPackRows * 4];     // chunk c: ql[4c .. 4c+4) of rows 0..7
};
static_assert(sizeof(BlockQ6_Kx8) == 210 * kPackRows, "a packed Q6_K super-block of 8 rows is 1680 bytes");

// The packed types whose blocks are ggml's super-blocks of 256 weights (against Q8_K activations).
inline constexpr bool PackedBySuperBlock(DType type) {
  return type == DType::kQ2_K || type == DType::kQ3_K || type == DType::kQ4_K || type == DType::kQ5_K ||
         type == DType::kQ6_K;
}

// Whether a packed block carries minimums (Q4_1, Q5_1), and the activation block its products
// read: Q8_1 (whose stored s the minimum term uses, as ggml) for those, Q8_0 for the others.
template <class Packed>
inline constexpr bool kPackedHasMin = requires(const Packed& p) { p.m; };
template <class Packed>
using PackedActivation = std::conditional_t<kPackedHasMin<Packed>, BlockQ8_1, BlockQ8_0>;

struct BlockQ8_0x8 {
  fp16_t d[kPackRows];          // scale of each row's block
  int8_t qs[8][kPackRows * 4];  // chunk c: codes 4c .. 4c+4 of rows 0..7
};
static_assert(sizeof(BlockQ8_0x8) == 2 * kPackRows + 32 * kPackRows, "a packed Q8_0 block of 8 rows is 272 bytes");

// How far ahead a decoding step asks for a panel's lines: kPrefetchDistance (prefetch.h), except
// for Q8_0's panels, which read best at most 1536 B ahead on both CPUs measured (the Xeon's Q8_0
// decode at 1 thread: 74-79 t/s at 1536 B, 71-82 at 3072, 70-73 at 4096 and 6144, where Q4_0
// gains from 157-173 to 206-233 t/s).
template <class Packed>
inline size_t PanelPrefetchDistance() {
  if constexpr (sizeof(Packed) == sizeof(BlockQ8_0x8)) return kPrefetchDistance < 1536 ? kPrefetchDistance : 1536;
  return kPrefetchDistance;
}

// The factor a packed product's result takes last: 2^-14 for NF4, whose integer sums are of its
// levels in fixed point (kNF4Fixed, formats/nf4.h), 1 for the other types.
constexpr float PackedResultScale(DType type) { return type == DType::kNF4 ? kNF4FixedScale : 1.0f; }

// The type whose packed layout and kernels serve weights of type `source`: Q4_0 for the symmetric
// group types i{4,3,2}s_g* and Q4_1 for the asymmetric ones (converted weight for weight,
// formats/group_int.h), else `source`.
DType PackedLayoutType(DType source);

// A repacked weight matrix: (rows, cols) as in the source tensor (ne = {cols, rows}).
struct PackedMatrix {
  // PackedLayoutType of the source: Q4_0, IQ4_NL, NF4 (BlockQ4_0x8), Q4_1 (BlockQ4_1x8), Q5_0 (BlockQ5_0x8), Q5_1
  // (BlockQ5_1x8), Q8_0 (BlockQ8_0x8), or by super-block Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (BlockQ2_Kx8 .. BlockQ6_Kx8).
  DType type = DType::kQ4_0;
  int64_t rows = 0, cols = 0;
  size_t block_bytes = 0;  // sizeof the packed block
  // [panel][block]: (rows + 7) / 8 panels of blocks_per_row() blocks from `base`, inside `storage`
  // (its own buffer, or one that several matrices share: PackWeightsInto).
  std::shared_ptr<HugePageBuffer> storage;
  const uint8_t* base = nullptr;

  int64_t panels() const { return (rows + kPackRows - 1) / kPackRows; }
  int64_t blocks_per_row() const { return cols / (PackedBySuperBlock(type) ? 256 : 32); }
  size_t size_bytes() const { return (size_t)(panels() * blocks_per_row()) * block_bytes; }
  std::span<const uint8_t> bytes() const { return {base, size_bytes()}; }
  const uint8_t* panel(int64_t p) const { return base + (size_t)(p * blocks_per_row()) * block_bytes; }
};

// Whether `w` can be packed (a 2-D Q4_0, IQ4_NL, NF4, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K … Q6_K or group-type
// tensor with data).
bool CanPack(const Tensor& w);
// The packed copy of `w` (CanPack(w) must hold), in the layout of PackedLayoutType(w.type), in a
// buffer of its own (HugePageBuffer: huge pages from 2 MiB on).
PackedMatrix PackWeights(const Tensor& w);
// Bytes of that copy's panels.
size_t PackedBytes(const Tensor& w);
// The same panels written at dst + offset (PackedBytes(w) bytes there), a part of `storage` that
// the result keeps alive: a model's matrices packed into one buffer, so that small matrices too
// sit on huge pages.
PackedMatrix PackWeightsInto(const Tensor& w, std::shared_ptr<HugePageBuffer> storage, size_t offset);
// Row `row` of `p` decoded back to blocks of p.type (the inverse of packing; for a group-type
// source, its rows converted to Q4_0 or Q4_1).
void UnpackRow(const PackedMatrix& p, int64_t row, void* blocks);
// Rows row0 .. row0 + n − 1 of `p` at dst, RowBytes(p.type, p.cols) apart: UnpackRow of each,
// whole panels of the super-block types on the AVX-512 twin where the CPU has it (the same bytes).
void UnpackRows(const PackedMatrix& p, int64_t row0, int64_t n, uint8_t* dst);
// The 8 rows of a panel (nb blocks) at dst, row_bytes apart, in their source layout.
using UnpackPanelFn = void (*)(const void* panel, int64_t nb, uint8_t* dst, size_t row_bytes);
// The AVX-512 twin for the super-block types (packed_kquant_avx512.cc); nullptr where not built or
// for another type. Valid only where CpuHasAvx512Vnni().
UnpackPanelFn Avx512UnpackSuperBlockPanel(DType type);

// y[t * y_stride + r] for r < 8, t < T: the 8 rows of one panel (nb packed blocks) times T
// activation rows encoded in ActivationType(type) (Q8_0; Q8_1 for Q4_1/Q5_1; Q8_K for the super-block types) (row t at a + t *
// a_stride bytes), and for the Q8_0 rows the sums of the activation blocks' codes, a_sums[t * nb
// + b] (read by the Q4_0 kernels and every VNNI twin; Q4_1/Q5_1 read none, a_sums may be null).
using PackedGemmFn = void (*)(const void* panel, int64_t nb, const uint8_t* a, size_t a_stride,
                              const int32_t* a_sums, int64_t T, float* y, int64_t y_stride);
// The scalar reference for packed blocks of `type` (Q4_0, IQ4_NL, NF4, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K … Q6_K); nullptr for
// another type.
PackedGemmFn PackedGemmReference(DType type);
// The AVX2 twin (only valid where CpuHasAvx2FmaF16c()); nullptr where it is not built or `type`
// has none.
PackedGemmFn Avx2PackedGemm(DType type);
// The VNNI twins (kernels/packed_vnni.cc): one vpdpbusd per chunk instead of the AVX2 twin's
// maddubs/add/madd, every type's codes offset to unsigned bytes, so they read a_sums for every
// type with an offset (all but Q4_1 and Q5_1). Valid only where CpuHasAvx512Vnni() (resp. CpuHasAvxVnni()); nullptr where not built.
PackedGemmFn Avx512VnniPackedGemm(DType type);
PackedGemmFn AvxVnniPackedGemm(DType type);
// The AMX twin (kernels/packed_amx.cc): 16 tokens at a time on the tile unit, fewer on the
// AVX-512 VNNI twin. Valid only where CpuHasAmxInt8(); nullptr where not built.
PackedGemmFn AmxPackedGemm(DType type);
// What the AMX two-panel tiles may read of T Q8_0 or Q8_1 activation rows besides the rows
// themselves, laid out once per product for every panel pair (either may be null):
struct TileActivations {
  const float* scales = nullptr;  // ActivationBlockScales (TileScaleFloats): broadcast, not gathered
  const int8_t* pairs = nullptr;  // where kMinPairTokens ≤ T ≤ kPairTokens, ActivationBlockPairs of the rows
};
// Two adjacent panels at once, y[t * y_stride + r] for r < 16 (panel0's rows, then panel1's): on
// AMX one tile product serves 16 rows. The same bits as two PackedGemmFn calls.
using PackedGemm2Fn = void (*)(const void* panel0, const void* panel1, int64_t nb, const uint8_t* a, size_t a_stride,
                               const int32_t* a_sums, const TileActivations& tiles, int64_t T, float* y,
                               int64_t y_stride);
// The AVX-512 twins of the super-block types (Q2_K … Q6_K; kernels/packed_kquant_avx512.cc): two panels'
// 16 rows per 512-bit register, one vpdpbusd per 4 codes of every row; `gfni`: the form that takes
// the codes out of their bytes by GF(2) affine maps. Valid only where CpuHasAvx512Vnni() (and
// CpuHasAvx512VnniGfni() for the gfni form); nullptr where not built or for another type.
PackedGemmFn Avx512KQuantPackedGemm(DType type, bool gfni);
PackedGemm2Fn Avx512KQuantPackedGemmTwoPanels(DType type, bool gfni);
// The activation blocks of 32 codes the tiles read per row of C values encoded in `act` (Q8_0, or
// Q8_1 for the types with a minimum): C / 32, or 0 for any other encoding.
int64_t TileActivationBlocks(DType act, int64_t C);
// Floats of ActivationBlockScales per row: one per block (Q8_0's d), two for Q8_1 (d and s).
int64_t TileScaleFloats(DType act, int64_t C);
// Each activation block's fp16 scale as f32, scales[b * T + t] for T rows of nb blocks (row t at
// a + t·a_stride): for each block, the tokens' scales side by side; for Q8_1 rows then each
// block's s (d·Σq) the same way, scales[nb·T + b·T + t].
void ActivationBlockScales(DType act, const uint8_t* a, size_t a_stride, int64_t nb, int64_t T, float* scales);
// Several sequences decoded together (T ≤ kPairTokens rows of nb Q8_0 or Q8_1 blocks; the tiles
// read them from kMinPairTokens on): blocks 2j and 2j + 1
// of every row as one tile operand of 2T rows × 64 bytes, so that one tile product, the two
// blocks' weight codes stacked 64 deep, gives both blocks' sums for the T tokens: half the tile
// instructions of a product per block, and the tile rows filled. Row h·T + t of pair j holds token
// t's 32 codes of block 2j + h in bytes 32h .. 32h + 31 and zeros in the other half (all zeros
// for a block past nb): pairs[(j·2T + h·T + t)·64 + 32h + i].
inline constexpr int kMinPairTokens = 2, kPairTokens = 8;  // the token counts that take pairs
constexpr size_t ActivationPairBytes(int64_t nb, int64_t T) { return (size_t)((nb + 1) / 2 * 2 * T * 64); }
void ActivationBlockPairs(DType act, const uint8_t* a, size_t a_stride, int64_t nb, int64_t T, int8_t* pairs);
// Whether the two-panel kernels this CPU runs read ActivationBlockPairs (the AMX twin's do):
// elsewhere no caller lays the pairs out.
bool PackedGemmReadsPairs();
// The AMX two-panel twin (packed_amx.cc); nullptr where not built. Valid only where CpuHasAmxInt8().
PackedGemm2Fn AmxPackedGemmTwoPanels(DType type);
// What this CPU runs for two panels: the AMX twin, else nullptr (callers then call FastPackedGemm
// per panel).
PackedGemm2Fn FastPackedGemmTwoPanels(DType type);
// What this CPU runs: the AMX twin, else the AVX-512 VNNI twin, else the AVX-VNNI twin, else the AVX2 twin, else
// nullptr (packing pays only with a SIMD kernel).
PackedGemmFn FastPackedGemm(DType type);

// Every SIMD twin this CPU can run for `type`, with its name ("avx2", "avxvnni", "avx512vnni", "amx"),
// the one FastPackedGemm picks first:
// for tests and micro-benchmarks that compare them.
struct NamedPackedGemm {
  const char* name;
  PackedGemmFn fn;
};
std::vector<NamedPackedGemm> PackedGemmTwins(DType type);

// y: (T, rows) = x: (T, cols) · pᵀ, each input row rounded to Q8_0 (Q8_1, Q8_K) first as llama.cpp rounds a
// Q4_0, IQ4_NL, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K … Q6_K product's input; OpenMP over panels. Needs
// FastPackedGemm(p.type). From kMinBlockedBatch tokens (kernels/matmul.h) a type with a blocked prompt kernel (the
// super-block types) runs that kernel on its rows unpacked 16 at a time (PromptProduct, kernels/prompt_gemm.h), as
// MatMul and the fused products do.
void MatMulPacked(const PackedMatrix& p, const float* x, int64_t T, float* y, int threads);

}  // namespace smelt
