#include "kernels/fused.h"

#include <omp.h>

#include <algorithm>

#include "core/error.h"
#include "formats/activation.h"
#include "formats/q8_0.h"
#include "formats/types.h"
#include "kernels/prompt_gemm.h"
#include "kernels/ops.h"
#include "kernels/parallel.h"

namespace smelt {
namespace {

// Output rows per work item: two packed panels, or MatMul's block of rows reused across tokens.
constexpr int64_t kBlockRows = 2 * kPackRows;
// Below this many multiply-adds a group runs on one thread: waking a team costs more.
// Values normalized at a time before encoding, for encodings without blocks (f32, f16, bf16).
constexpr int64_t kPlainChunk = 256;

static_assert(kBlockRows == kPromptGemmRows, "a block of rows is one call of a blocked prompt kernel");

// The tokens as the blocked prompt kernel of `w` reads them (MatMul's and MatMulPacked's rule,
// RunsBlocked), written once for every product of a group; empty where it does not run.
PromptTokens PreparePrompt(const EncodedWeight& w, const EncodedRows& a) {
  if (!RunsBlocked(w.prompt, a.T)) return {};
  return PreparePromptTokens(w.prompt, a.data, a.row_bytes, a.T, a.C, a.prompt_tokens);
}

// Floats of scratch that hold kBlockRows rows of C values of any packed type in their source
// layout (Q8_0's 34 bytes per 32 values are the most).
int64_t UnpackedRowsFloats(int64_t C) {
  return (int64_t)(kBlockRows * RowBytes(DType::kQ8_0, PromptPaddedColumns(C)) + 3) / 4;
}

// Rows [o0, o0 + n) of `w` times every row of `a` into out: out[t * ld + r] is output
// row o0 + r of token t. Packed panels write all 8 lanes (padding rows included). prompt: the
// tokens as w.prompt reads them (PreparePrompt), where it runs; scratch: PromptGemmScratchFloats(C)
// + UnpackedRowsFloats(C).
void BlockProduct(const EncodedWeight& w, int64_t o0, int64_t n, const EncodedRows& a, const PromptTokens& prompt,
                  float* out, int64_t ld, float* scratch) {
  const int64_t T = a.T, C = a.C;
  if (prompt.data) {  // as MatMul: kernels/prompt_gemm.h
    const size_t w_bytes = RowBytes(w.w->type, C);
    const uint8_t* rows = static_cast<const uint8_t*>(w.w->data) + o0 * w_bytes;
    if (w.packed) {  // the packed rows back in their source layout (their mapped pages were dropped)
      auto* unpacked = reinterpret_cast<uint8_t*>(scratch + PromptGemmScratchFloats(C));
      UnpackRows(*w.packed, o0, n, unpacked);
      rows = unpacked;
    }
    w.prompt.gemm(rows, w_bytes, n, prompt.data, prompt.stride, T, C, out, ld, scratch);
    return;
  }
  if (w.packed) {
    const PackedMatrix& p = *w.packed;
    const PackedGemmFn gemm = w.packed_gemm;
    const PackedGemm2Fn gemm2 = w.packed_gemm2;
    for (int64_t r = 0; r < n; r += kPackRows) {
      const int64_t q = (o0 + r) / kPackRows;
      if (gemm2 && r + kPackRows < n) {  // both panels hold rows of this block: one call (16 lanes)
        gemm2(p.panel(q), p.panel(q + 1), p.blocks_per_row(), a.data, a.row_bytes, a.sums, {a.scales, a.pairs}, T, out + r, ld);
        r += kPackRows;
        continue;
      }
      gemm(p.panel(q), p.blocks_per_row(), a.data, a.row_bytes, a.sums, T, out + r, ld);
    }
    return;
  }
  const size_t w_bytes = RowBytes(w.w->type, C);
  const auto* rows = static_cast<const uint8_t*>(w.w->data);
  QDotRows(w.kernels, rows + o0 * w_bytes, w_bytes, n, a.data, a.row_bytes, T, C, out, ld);
}

int64_t Blocks(const EncodedWeight& w) { return (w.rows + kBlockRows - 1) / kBlockRows; }

int TeamSize(int threads, int64_t items, int64_t work) {
  if (work < kMinParallelWork) return 1;
  return (int)std::max<int64_t>(1, std::min<int64_t>(threads, items));
}

void BlockSums(const uint8_t* row, int64_t nb, int32_t* sums) {
  const auto* blocks = reinterpret_cast<const BlockQ8_0*>(row);
  for (int64_t b = 0; b < nb; ++b) {
    int32_t s = 0;
    for (int8_t q : blocks[b].qs) s += q;
    sums[b] = s;
  }
}

// Threads for a pass over T rows of C values: from about 16 rows of 1024 on (a few operations per
// value, weighed against the multiply-adds kMinParallelWork counts).
int RowTeam(int threads, int64_t T, int64_t C) { return TeamSize(threads, T, 4 * T * C); }

}  // namespace

bool FindEncodedWeight(const Tensor& w, const PackedMatrix* packed, Activations act, EncodedWeight& out) {
  out = EncodedWeight{};
  out.w = &w;
  out.rows = w.nrows();
  out.cols = w.ne[0];
  if (packed && FastPackedGemm(packed->type)) {
    out.packed = packed;
    out.packed_gemm = FastPackedGemm(packed->type);
    out.packed_gemm2 = FastPackedGemmTwoPanels(packed->type);
    out.act = ActivationType(packed->type);  // Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for Q2_K
    // Prompts run the type's blocked kernel where it has one (Q2_K: the AMX tiles on the packed
    // rows unpacked block by block) on the same encoded activations.
    if (act == Activations::kGgml) out.prompt = FastPromptGemm(w.type);
    return true;
  }
  if (act != Activations::kGgml) return false;
  out.kernels = FastQDotRowKernels(w.type);
  out.prompt = FastPromptGemm(w.type);
  out.act = ActivationType(w.type);
  return out.kernels.dot != nullptr;
}

size_t EncodedRowBytes(DType type, int64_t C) { return RowBytes(type, C); }

int64_t EncodedRowSums(DType type, int64_t C) { return type == DType::kQ8_0 ? C / 32 : 0; }

void FinishTileActivations(EncodedRows& rows) {
  const int64_t nb = TileActivationBlocks(rows.type, rows.C);
  if (nb == 0) return;
  if (rows.scales) ActivationBlockScales(rows.type, rows.data, rows.row_bytes, nb, rows.T, rows.scales);
  if (rows.pairs && rows.T >= kMinPairTokens && rows.T <= kPairTokens)
    ActivationBlockPairs(rows.type, rows.data, rows.row_bytes, nb, rows.T, rows.pairs);
}

void EncodeRows(const float* x, int64_t T, int64_t C, EncodedRows& out, int threads) {
  const int64_t nb = EncodedRowSums(out.type, C);
  out.T = T, out.C = C, out.row_bytes = EncodedRowBytes(out.type, C);
  const int team = RowTeam(threads, T, C);
#pragma omp parallel for num_threads(team) if (team > 1) schedule(static)
  for (int64_t t = 0; t < T; ++t) {
    uint8_t* row = out.data + t * out.row_bytes;
    QuantizeActivationRow(out.type, x + t * C, row, C);
    if (nb) BlockSums(row, nb, out.sums + t * nb);
  }
  FinishTileActivations(out);
}

void RmsNormEncode(const float* x, const float* w, float eps, int64_t T, int64_t C, EncodedRows& out,
                   float* row_scratch, int threads) {
  const int64_t nb = EncodedRowSums(out.type, C);
  out.T = T, out.C = C, out.row_bytes = EncodedRowBytes(out.type, C);
  const int64_t block = FindTraits((uint32_t)out.type)->block_size;
  // Encodings with one scale per row see the whole normalized row; the others a block at a time.
  const bool whole_row = out.type == DType::kI8_PC;
  const int64_t chunk = block == 1 ? kPlainChunk : block;
  SMELT_ASSERT(chunk <= 256);
  const int team = RowTeam(threads, T, C);
#pragma omp parallel num_threads(team) if (team > 1)
  {
    alignas(32) float piece[256];
    float* scratch = row_scratch + C * omp_get_thread_num();
#pragma omp for schedule(static)
    for (int64_t t = 0; t < T; ++t) {
      const float* xr = x + t * C;
      uint8_t* row = out.data + t * out.row_bytes;
      const float scale = RmsScale(xr, C, eps);
      if (whole_row) {
        for (int64_t i = 0; i < C; ++i) scratch[i] = (xr[i] * scale) * w[i];
        QuantizeActivationRow(out.type, scratch, row, C);
        continue;
      }
      size_t offset = 0;
      for (int64_t c0 = 0; c0 < C; c0 += chunk) {
        const int64_t m = std::min(chunk, C - c0);
        for (int64_t i = 0; i < m; ++i) piece[i] = (xr[c0 + i] * scale) * w[c0 + i];
        QuantizeActivationRow(out.type, piece, row + offset, m);
        offset += RowBytes(out.type, m);
      }
      if (nb) BlockSums(row, nb, out.sums + t * nb);
    }
  }
  FinishTileActivations(out);
}

int64_t ProjectScratchFloats(int64_t T, int64_t C) {
  return 2 * kBlockRows * T + PromptGemmScratchFloats(C) + UnpackedRowsFloats(C);
}

void ProjectGroup(std::span<const Projection> group, const EncodedRows& a, int threads, float* scratch) {
  // Work items: the row blocks of every projection, in group order.
  constexpr int kMaxGroup = 4;
  SMELT_ASSERT(!group.empty() && group.size() <= kMaxGroup);
  int64_t first[kMaxGroup + 1] = {0};
  int64_t work = 0;
  for (size_t i = 0; i < group.size(); ++i) {
    SMELT_ASSERT(group[i].w->act == a.type && group[i].w->cols == a.C);
    first[i + 1] = first[i] + Blocks(*group[i].w);
    work += group[i].w->rows * a.C * a.T;
  }
  const int64_t items = first[group.size()], T = a.T;
  const int team = TeamSize(threads, items, work);
  // The weights of a group that have a blocked prompt kernel share one type (their activations
  // share `a`'s), so one preparation of the tokens serves them all.
  PromptTokens prompt;
  for (const Projection& p : group)
    if (!prompt.data) prompt = PreparePrompt(*p.w, a);
#pragma omp parallel num_threads(team) if (team > 1)
  {
    float* tile = scratch + ProjectScratchFloats(T, a.C) * omp_get_thread_num();
    float* prompt_scratch = tile + 2 * kBlockRows * T;
#pragma omp for schedule(static)
    for (int64_t item = 0; item < items; ++item) {
      size_t i = 0;
      while (item >= first[i + 1]) ++i;
      const Projection& p = group[i];
      const int64_t OC = p.w->rows, o0 = (item - first[i]) * kBlockRows, n = std::min(kBlockRows, OC - o0);
      if (p.write == Write::kStore && o0 + kBlockRows <= OC) {  // a whole block: straight into place
        BlockProduct(*p.w, o0, n, a, p.w->prompt ? prompt : PromptTokens{}, p.y + o0, OC, prompt_scratch);
        continue;
      }
      BlockProduct(*p.w, o0, n, a, p.w->prompt ? prompt : PromptTokens{}, tile, kBlockRows, prompt_scratch);
      for (int64_t t = 0; t < T; ++t) {
        float* y = p.y + t * OC + o0;
        const float* src = tile + t * kBlockRows;
        if (p.write == Write::kAdd) {
          for (int64_t r = 0; r < n; ++r) y[r] += src[r];
        } else {
          for (int64_t r = 0; r < n; ++r) y[r] = src[r];
        }
      }
    }
  }
}

void ProjectSwiGlu(const EncodedWeight& gate, const EncodedWeight& up, const EncodedRows& a, float* y, int threads,
                   float* scratch) {
  SMELT_ASSERT(gate.act == a.type && up.act == a.type && gate.cols == a.C && up.cols == a.C && gate.rows == up.rows);
  const int64_t F = gate.rows, T = a.T, items = Blocks(gate);
  const int team = TeamSize(threads, items, 2 * F * a.C * T);
  const PromptTokens prompt = PreparePrompt(gate, a);  // gate and up share a type, so one layout
#pragma omp parallel num_threads(team) if (team > 1)
  {
    float* g = scratch + ProjectScratchFloats(T, a.C) * omp_get_thread_num();
    float* u = g + kBlockRows * T;
    float* prompt_scratch = u + kBlockRows * T;
#pragma omp for schedule(static)
    for (int64_t item = 0; item < items; ++item) {
      const int64_t o0 = item * kBlockRows, n = std::min(kBlockRows, F - o0);
      // A whole block's gate products go straight into place and are gated there; the last,
      // partial one (padded panels write 8 lanes) through the tile.
      const bool whole = o0 + kBlockRows <= F;
      float* gy = whole ? y + o0 : g;
      const int64_t ld = whole ? F : kBlockRows;
      BlockProduct(gate, o0, n, a, gate.prompt ? prompt : PromptTokens{}, gy, ld, prompt_scratch);
      BlockProduct(up, o0, n, a, up.prompt ? prompt : PromptTokens{}, u, kBlockRows, prompt_scratch);
      for (int64_t t = 0; t < T; ++t) SwiGlu(y + t * F + o0, gy + t * ld, u + t * kBlockRows, n);
    }
  }
}

}  // namespace smelt
