// SparseGPT (compress/sparsegpt.h). Both entry points share the set-up (checks, dead inputs,
// frozen zeros, grids of the joint type) and the per-weight step; they differ in how H^-1's factor
// is computed (compress/hessian.h) and how the updates are applied:
//
//   SparseGptPruneNaive: after each weight, update every later column of its row; one thread.
//   SparseGptPrune:      lazy batches of Bs columns (the mask-selection blocks): inside a batch
//                        each row is updated up to the batch's end, and the batch's errors update
//                        the rest of W in one dgemm. Each thread owns a slice of rows; the threads
//                        meet once per block, where one of them selects the block's mask over all
//                        rows (unstructured only: N:M masks are per row).
#include "compress/sparsegpt.h"


#include <algorithm>
#include <climits>
#include <cmath>
#include <limits>
#include <numeric>

#include "compress/hessian.h"
#include "compress/prune.h"
#include "core/error.h"
#include "formats/codes.h"
#include "formats/types.h"
#include "kernels/blas.h"

namespace smelt {
namespace {

constexpr float kFrozen = -std::numeric_limits<float>::infinity();

struct SweepGridPoint {
  float scale, offset;
};

struct Sweep {
  int64_t oc = 0, c = 0, block = 0;
  double sparsity = 0;
  NmPattern pattern;
  std::vector<double> w;       // (oc, c) working weights; a visited column holds its final value
  std::vector<uint8_t> frozen; // (oc, c) zero on input or in a dead column: pruned first
  std::vector<uint8_t> mask;   // (oc, c) pruned
  // Joint quantization.
  std::optional<DType> type;
  int64_t bs = 0;                // the type's block size
  size_t row_bytes = 0;
  std::vector<uint8_t> data;     // encoded tensor: scales from from_float, codes at the end
  std::vector<SweepGridPoint> grids;  // (oc, c)
  std::vector<int16_t> codes;    // (oc, c)
  ElementGrid grid_shape{};
  std::vector<uint8_t> no_exact_zero;  // (oc) a block of the row had a grid without an exact zero
};

void CheckInputs(const float* W, int64_t OC, int64_t C, const double* H, double sparsity, NmPattern pattern,
                 const SparseGptOptions& opts) {
  if (OC < 1 || C < 1 || C > INT_MAX || OC > INT_MAX) Fail("sparsegpt: bad weight shape ({}, {})", OC, C);
  if (pattern.structured()) {
    if (pattern.n < 1 || pattern.n >= pattern.m) Fail("sparsegpt: pattern {}:{} needs 0 < N < M", pattern.n, pattern.m);
    if (C % pattern.m != 0) Fail("sparsegpt: pattern {}:{}: M does not divide the row length {}", pattern.n, pattern.m, C);
  } else if (!(sparsity >= 0.0 && sparsity < 1.0)) {
    Fail("sparsegpt: sparsity {} is outside [0, 1)", sparsity);
  }
  if (!(opts.damp >= 0.0f) || !std::isfinite(opts.damp)) Fail("sparsegpt: damp {} must be finite and >= 0", opts.damp);
  if (opts.block < 1) Fail("sparsegpt: block {} must be >= 1", opts.block);
  if (opts.threads < 1) Fail("sparsegpt: threads {} must be >= 1", opts.threads);
  if (opts.quantize) {
    const DType t = *opts.quantize;
    if (!HasCodeAccess(t)) Fail("sparsegpt: cannot quantize to {} jointly: smelt has no code access for it", DTypeName(t));
    if (C % Traits(t).block_size != 0)
      Fail("sparsegpt: row length {} is not a multiple of {}'s block size {}", C, DTypeName(t), Traits(t).block_size);
  }
  for (int64_t i = 0; i < OC * C; ++i)
    if (!std::isfinite(W[i])) Fail("sparsegpt: weight ({}, {}) is not finite", i / C, i % C);
  for (int64_t i = 0; i < C; ++i)
    for (int64_t j = i; j < C; ++j)
      if (!std::isfinite(H[i * C + j])) Fail("sparsegpt: H ({}, {}) is not finite", i, j);
}

// The checked inputs as a sweep, and the symmetric H (dead inputs: H_ii = 1) in *h.
Sweep Prepare(const float* W, int64_t OC, int64_t C, const double* H, double sparsity, NmPattern pattern,
              const SparseGptOptions& opts, std::vector<double>* h) {
  CheckInputs(W, OC, C, H, sparsity, pattern, opts);
  Sweep p;
  p.oc = OC, p.c = C, p.sparsity = pattern.structured() ? 0.0 : sparsity, p.pattern = pattern;
  const std::vector<char> dead = DeadInputs(H, C);
  p.w.resize((size_t)(OC * C));
  p.frozen.resize((size_t)(OC * C));
  for (int64_t i = 0; i < OC * C; ++i) {
    const bool z = W[i] == 0.0f || dead[(size_t)(i % C)];
    p.frozen[(size_t)i] = z;
    p.w[(size_t)i] = z ? 0.0 : (double)W[i];
  }
  p.mask.assign((size_t)(OC * C), 0);
  h->resize((size_t)(C * C));
  for (int64_t i = 0; i < C; ++i)
    for (int64_t j = 0; j < C; ++j)
      (*h)[(size_t)(i * C + j)] = i == j && dead[(size_t)i] ? 1.0 : H[std::min(i, j) * C + std::max(i, j)];

  // Mask blocks hold whole N:M groups and, when joint, whole format blocks.
  int64_t unit = pattern.structured() ? pattern.m : 1;
  if (opts.quantize) {
    p.type = opts.quantize;
    p.bs = Traits(*p.type).block_size;
    unit = std::lcm(unit, p.bs);
    p.row_bytes = RowBytes(*p.type, C);
    p.data.assign(p.row_bytes * (size_t)OC, 0);
    p.grids.resize((size_t)(OC * C));
    p.codes.resize((size_t)(OC * C));
    p.no_exact_zero.assign((size_t)OC, 0);
    std::vector<float> zeros((size_t)p.bs, 0.0f);
    std::vector<uint8_t> blk(Traits(*p.type).type_size);
    std::vector<ElementGrid> g((size_t)p.bs);
    Traits(*p.type).from_float(zeros.data(), blk.data(), p.bs);
    BlockGrids(*p.type, blk.data(), g.data());
    p.grid_shape = {0.0f, 0.0f, g[0].qmin, g[0].qmax, g[0].table};
  }
  p.block = (opts.block + unit - 1) / unit * unit;
  return p;
}

// Joint: encodes the format block of row r that starts at column k from the row's current
// weights and records each element's grid.
void FixGrids(Sweep& p, int64_t r, int64_t k) {
  float vals[256];
  ElementGrid g[256];
  SMELT_ASSERT(p.bs <= 256);
  for (int64_t j = 0; j < p.bs; ++j) vals[j] = (float)p.w[(size_t)(r * p.c + k + j)];
  uint8_t* blk = p.data.data() + (size_t)r * p.row_bytes + (size_t)(k / p.bs) * Traits(*p.type).type_size;
  Traits(*p.type).from_float(vals, blk, p.bs);
  BlockGrids(*p.type, blk, g);
  for (int64_t j = 0; j < p.bs; ++j) {
    p.grids[(size_t)(r * p.c + k + j)] = {g[j].scale, g[j].offset};
    if (GridValue(g[j], NearestCode(g[j], 0.0)) != 0.0f) p.no_exact_zero[(size_t)r] = 1;
  }
}

// The unstructured mask of columns [i1, i2) over all rows: the block's share of the matrix's
// round(S · OC · C), lowest saliency w² / U_jj² first.
void SelectBlockMask(Sweep& p, const std::vector<double>& u, int64_t i1, int64_t i2) {
  const int64_t n = i2 - i1;
  const double total = p.sparsity * (double)p.oc;
  const int64_t k = std::llround(total * (double)i2) - std::llround(total * (double)i1);
  std::vector<float> scores((size_t)(p.oc * n));
  std::vector<uint8_t> marked((size_t)(p.oc * n));
  for (int64_t r = 0; r < p.oc; ++r)
    for (int64_t j = 0; j < n; ++j) {
      const size_t e = (size_t)(r * p.c + i1 + j);
      const double d = u[(size_t)((i1 + j) * p.c + i1 + j)];
      scores[(size_t)(r * n + j)] = p.frozen[e] ? kFrozen : (float)(p.w[e] * p.w[e] / (d * d));
    }
  MarkLowest(scores.data(), p.oc * n, k, marked.data());
  for (int64_t r = 0; r < p.oc; ++r)
    for (int64_t j = 0; j < n; ++j) {
      const size_t e = (size_t)(r * p.c + i1 + j);
      p.mask[e] = marked[(size_t)(r * n + j)] | p.frozen[e];  // a frozen weight beyond k stays pruned too
    }
}

// N:M: the mask of row r's group that starts at column k.
void SelectGroupMask(Sweep& p, const std::vector<double>& u, int64_t r, int64_t k) {
  float scores[256];
  const int64_t m = p.pattern.m;
  SMELT_ASSERT(m >= 1 && m <= 256);
  for (int64_t j = 0; j < m; ++j) {
    const size_t e = (size_t)(r * p.c + k + j);
    const double d = u[(size_t)((k + j) * p.c + k + j)];
    scores[j] = p.frozen[e] ? kFrozen : (float)(p.w[e] * p.w[e] / (d * d));
  }
  uint8_t* mask = &p.mask[(size_t)(r * p.c + k)];
  MarkNm(scores, m, p.pattern, mask);
  for (int64_t j = 0; j < m; ++j) mask[j] |= p.frozen[(size_t)(r * p.c + k + j)];
}

// Visits weight (r, k): its final value (0 when pruned, else itself or, joint, its grid point)
// replaces it; returns the scaled error (w - q) / U_kk that feeds the later columns and adds its
// square to *loss. Selects the masks and grids that start at this weight first.
double Visit(Sweep& p, const std::vector<double>& u, int64_t r, int64_t k, double* loss) {
  if (p.pattern.structured() && k % p.pattern.m == 0) SelectGroupMask(p, u, r, k);
  if (p.type && k % p.bs == 0) FixGrids(p, r, k);
  const size_t e = (size_t)(r * p.c + k);
  const double w = p.w[e];
  double q = w;
  if (p.type) {
    ElementGrid g = p.grid_shape;
    g.scale = p.grids[e].scale, g.offset = p.grids[e].offset;
    const int code = NearestCode(g, p.mask[e] ? 0.0 : w);
    p.codes[e] = (int16_t)code;
    q = GridValue(g, code);
  } else if (p.mask[e]) {
    q = 0.0;
  }
  p.w[e] = q;
  const double err = (w - q) / u[(size_t)(k * p.c + k)];
  *loss += err * err;
  return err;
}

SparseGptResult Finish(Sweep& p, const std::vector<double>& row_loss, double damp) {
  if (std::find(p.no_exact_zero.begin(), p.no_exact_zero.end(), 1) != p.no_exact_zero.end())
    Fail("sparsegpt: {} has blocks without an exact zero (an offset grid), so pruned weights would not stay zero",
         DTypeName(*p.type));
  SparseGptResult out;
  out.w.resize(p.w.size());
  for (size_t i = 0; i < p.w.size(); ++i) out.w[i] = (float)p.w[i];
  if (p.type) {
    // The decoded values are the grid points chosen; the codes go into the encoded blocks.
    const size_t type_size = Traits(*p.type).type_size;
    std::vector<int> codes((size_t)p.bs);
    for (int64_t r = 0; r < p.oc; ++r)
      for (int64_t b = 0; b < p.c / p.bs; ++b) {
        for (int64_t j = 0; j < p.bs; ++j) codes[(size_t)j] = p.codes[(size_t)(r * p.c + b * p.bs + j)];
        SetBlockCodes(*p.type, p.data.data() + (size_t)r * p.row_bytes + (size_t)b * type_size, codes.data());
      }
    out.data = std::move(p.data);
  }
  out.pruned = std::accumulate(p.mask.begin(), p.mask.end(), (int64_t)0);
  out.proxy_loss = std::accumulate(row_loss.begin(), row_loss.end(), 0.0);
  out.damp = damp;
  return out;
}

}  // namespace

SparseGptResult SparseGptPruneNaive(const float* W, int64_t OC, int64_t C, const double* H, double sparsity,
                                    NmPattern pattern, const SparseGptOptions& opts) {
  std::vector<double> h;
  Sweep p = Prepare(W, OC, C, H, sparsity, pattern, opts, &h);
  double damp = 0;
  const std::vector<double> u = DampedInverseFactor(std::move(h), C, opts.damp, FactorMethod::kNaive, &damp, "sparsegpt");
  std::vector<double> row_loss((size_t)OC, 0.0);
  for (int64_t i1 = 0; i1 < C; i1 += p.block) {
    const int64_t i2 = std::min(i1 + p.block, C);
    if (!pattern.structured()) SelectBlockMask(p, u, i1, i2);
    for (int64_t k = i1; k < i2; ++k)
      for (int64_t r = 0; r < OC; ++r) {
        const double err = Visit(p, u, r, k, &row_loss[(size_t)r]);
        for (int64_t j = k + 1; j < C; ++j) p.w[(size_t)(r * C + j)] -= err * u[(size_t)(k * C + j)];
      }
  }
  return Finish(p, row_loss, damp);
}

SparseGptResult SparseGptPrune(const float* W, int64_t OC, int64_t C, const double* H, double sparsity,
                               NmPattern pattern, const SparseGptOptions& opts) {
  std::vector<double> h;
  Sweep p = Prepare(W, OC, C, H, sparsity, pattern, opts, &h);
  double damp = 0;
  std::vector<double> u;
  {
    BlasThreads blas_threads(opts.threads);
    u = DampedInverseFactor(std::move(h), C, opts.damp, FactorMethod::kLapack, &damp, "sparsegpt");
  }
  std::vector<double> row_loss((size_t)OC, 0.0);
  ParallelSweep(OC, C, p.block, opts.threads, [&](int64_t r0, int64_t r1, int64_t i1, int64_t i2, double* err) {
    if (!pattern.structured()) {
      // Every row must be updated up to this block before its mask is chosen over all rows.
#pragma omp barrier
#pragma omp single
      SelectBlockMask(p, u, i1, i2);
    }
    SweepBatch(p.w.data(), C, u.data(), r0, r1, i1, i2, err,
               [&](int64_t r, int64_t k) { return Visit(p, u, r, k, &row_loss[(size_t)r]); });
  });
  return Finish(p, row_loss, damp);
}

}  // namespace smelt
