// GPTQ over the block formats (compress/gptq.h). Both entry points share the set-up (checks,
// dead inputs, act-order permutation, grids, dampening retries) and the output encoding; they
// differ in how H^-1's Cholesky factor is computed (compress/hessian.h: the dampening retries
// and both factorizations) and how error feedback is applied:
//
//   GptqQuantizeNaive: after each column, update every later column of every row (O(OC C^2)
//                      scalar work), H^-1 by hand-written Cholesky and triangular inversion.
//   GptqQuantize:      lazy batches of B columns: inside a batch each row is updated only up to
//                      the batch's end; the batch's accumulated errors update the rest of W in
//                      one dgemm. Rows are independent, so each thread runs a slice of rows
//                      through all batches. H^-1's factor by LAPACK (dpotrf, dpotri, dpotrf).
//
// Shapes: W and its working copy are (OC, C) row-major; columns are kept in processing order
// (the act-order permutation applied), so "column k" below is the k-th column GPTQ visits.
#include "compress/gptq.h"


#include <algorithm>
#include <climits>
#include <cmath>
#include <numeric>

#include "compress/hessian.h"
#include "core/error.h"
#include "formats/codes.h"
#include "formats/types.h"
#include "kernels/blas.h"

namespace smelt {
namespace {

// The scale and offset of one element's grid; qmin, qmax and table are the same for every
// element of a format, so storing them once keeps the per-element grid at 8 bytes.
struct GridPoint {
  float scale, offset;
};

// Inputs in processing order, the encoded output, and each element's grid once fixed.
struct Problem {
  int64_t oc = 0, c = 0, bs = 0;  // rows, columns, format block size
  DType type = DType::kF32;
  bool act_order = false;
  std::vector<int64_t> perm;        // perm[k]: the original column visited k-th
  std::vector<int64_t> pos;         // pos[c]: when original column c is visited (perm's inverse)
  std::vector<double> w;            // (oc, c) weights, processing order, dead columns zeroed
  std::vector<double> h;            // (c, c) H in processing order, symmetric, dead H_ii = 1
  std::vector<uint8_t> data;        // the encoded tensor: scales from from_float, codes at the end
  std::vector<GridPoint> grids;     // (oc, c) processing order
  std::vector<int16_t> codes;       // (oc, c) original order: the chosen codes (FP8's: 0..255)
  ElementGrid grid_shape{};         // qmin, qmax, table of the format
  size_t row_bytes = 0;

  ElementGrid Grid(int64_t r, int64_t k) const {
    ElementGrid g = grid_shape;
    g.scale = grids[(size_t)(r * c + k)].scale;
    g.offset = grids[(size_t)(r * c + k)].offset;
    return g;
  }
};

void CheckInputs(const float* W, int64_t OC, int64_t C, const double* H, DType type,
                 const GptqOptions& opts) {
  if (!HasCodeAccess(type)) {
    Fail("gptq: cannot quantize to {}: smelt has no code access for that format", DTypeName(type));
  }
  const int64_t bs = Traits(type).block_size;
  if (OC < 0 || C <= 0 || C > INT_MAX || OC > INT_MAX) Fail("gptq: bad weight shape ({}, {})", OC, C);
  if (C % bs != 0) {
    Fail("gptq: row length {} is not a multiple of {}'s block size {}", C, DTypeName(type), bs);
  }
  if (!(opts.damp >= 0.0f) || !std::isfinite(opts.damp)) {
    Fail("gptq: damp {} must be finite and >= 0", opts.damp);
  }
  if (opts.lazy_block < 1) Fail("gptq: lazy_block {} must be >= 1", opts.lazy_block);
  if (opts.threads < 1) Fail("gptq: threads {} must be >= 1", opts.threads);
  for (int64_t i = 0; i < OC * C; ++i) {
    if (!std::isfinite(W[i])) Fail("gptq: weight ({}, {}) is not finite", i / C, i % C);
  }
  for (int64_t i = 0; i < C; ++i) {
    for (int64_t j = i; j < C; ++j) {
      if (!std::isfinite(H[i * C + j])) Fail("gptq: H ({}, {}) is not finite", i, j);
    }
  }
}

// Encodes block b of row r from vals[bs] with the format's from_float and records the grid of
// each of its elements.
void FixBlockGrids(Problem& p, int64_t r, int64_t b, const float* vals) {
  uint8_t* block = p.data.data() + (size_t)r * p.row_bytes + (size_t)b * Traits(p.type).type_size;
  Traits(p.type).from_float(vals, block, p.bs);
  ElementGrid g[256];
  SMELT_ASSERT(p.bs <= 256);
  BlockGrids(p.type, block, g);
  for (int64_t j = 0; j < p.bs; ++j) {
    SMELT_ASSERT(g[j].qmin == p.grid_shape.qmin && g[j].qmax == p.grid_shape.qmax &&
                 g[j].table == p.grid_shape.table);
    p.grids[(size_t)(r * p.c + p.pos[(size_t)(b * p.bs + j)])] = {g[j].scale, g[j].offset};
  }
}

// Without act-order: fixes the grids of the block that starts at column k of row r from the
// row's current (error-updated) weights. Columns are in original order then, so the block's
// weights are w[r, k .. k+bs).
void FixGridsAtBlockStart(Problem& p, int64_t r, int64_t k) {
  float vals[256];
  const double* w = &p.w[(size_t)(r * p.c + k)];
  for (int64_t j = 0; j < p.bs; ++j) vals[j] = (float)w[j];
  FixBlockGrids(p, r, k / p.bs, vals);
}

// Quantizes element (r, k) at its current value w to the nearest point of its grid; returns
// the scaled error (w - q) / d that feeds the later columns and adds (w - q)^2 / d^2 to *loss.
double QuantizeElement(Problem& p, int64_t r, int64_t k, double d, double* loss) {
  const double w = p.w[(size_t)(r * p.c + k)];
  const ElementGrid g = p.Grid(r, k);
  const int q = NearestCode(g, w);
  p.codes[(size_t)(r * p.c + p.perm[(size_t)k])] = (int16_t)q;
  const double err = (w - (double)GridValue(g, q)) / d;
  *loss += err * err;
  return err;
}

Problem Prepare(const float* W, int64_t OC, int64_t C, const double* H, DType type,
                const GptqOptions& opts) {
  CheckInputs(W, OC, C, H, type, opts);
  Problem p;
  p.oc = OC, p.c = C, p.bs = Traits(type).block_size, p.type = type, p.act_order = opts.act_order;
  p.row_bytes = RowBytes(type, C);
  auto upper = [&](int64_t i, int64_t j) { return H[std::min(i, j) * C + std::max(i, j)]; };

  // Dead inputs (never active in the calibration data): any value is as good as another for
  // the output, so the column is zeroed and H_ii set to 1 to keep H invertible.
  const std::vector<char> dead = DeadInputs(H, C);

  p.perm.resize((size_t)C);
  std::iota(p.perm.begin(), p.perm.end(), 0);
  if (opts.act_order) {
    // Largest diag(H) first (dead inputs count as 1); stable, so ties keep column order.
    auto diag = [&](int64_t i) { return dead[(size_t)i] ? 1.0 : upper(i, i); };
    std::stable_sort(p.perm.begin(), p.perm.end(), [&](int64_t a, int64_t b) { return diag(a) > diag(b); });
  }
  p.pos.resize((size_t)C);
  for (int64_t k = 0; k < C; ++k) p.pos[(size_t)p.perm[(size_t)k]] = k;

  p.w.resize((size_t)(OC * C));
  for (int64_t r = 0; r < OC; ++r) {
    for (int64_t k = 0; k < C; ++k) {
      const int64_t c = p.perm[(size_t)k];
      p.w[(size_t)(r * C + k)] = dead[(size_t)c] ? 0.0 : (double)W[r * C + c];
    }
  }
  p.h.resize((size_t)(C * C));
  for (int64_t a = 0; a < C; ++a) {
    for (int64_t b = 0; b < C; ++b) {
      const int64_t i = p.perm[(size_t)a], j = p.perm[(size_t)b];
      p.h[(size_t)(a * C + b)] = i == j && dead[(size_t)i] ? 1.0 : upper(i, j);
    }
  }

  p.data.assign(p.row_bytes * (size_t)OC, 0);
  p.grids.resize((size_t)(OC * C));
  p.codes.resize((size_t)(OC * C));
  {  // the format's code range and table, from the grid of an encoded zero block
    std::vector<float> zeros((size_t)p.bs, 0.0f);
    std::vector<uint8_t> block(Traits(type).type_size);
    std::vector<ElementGrid> g((size_t)p.bs);
    Traits(type).from_float(zeros.data(), block.data(), p.bs);
    BlockGrids(type, block.data(), g.data());
    p.grid_shape = {0.0f, 0.0f, g[0].qmin, g[0].qmax, g[0].table};
  }

  if (opts.act_order) {
    // Static groups: every block's scales from the original weights (dead columns zeroed).
    std::vector<float> vals((size_t)p.bs);
    for (int64_t r = 0; r < OC; ++r) {
      for (int64_t b = 0; b < C / p.bs; ++b) {
        for (int64_t j = 0; j < p.bs; ++j) vals[(size_t)j] = (float)p.w[(size_t)(r * C + p.pos[(size_t)(b * p.bs + j)])];
        FixBlockGrids(p, r, b, vals.data());
      }
    }
  }
  return p;
}

// Writes the chosen codes into the encoded blocks (whose scales FixBlockGrids set).
GptqResult Finish(Problem& p, const std::vector<double>& row_loss, double damp) {
  std::vector<int> codes((size_t)p.bs);
  const size_t type_size = Traits(p.type).type_size;
  for (int64_t r = 0; r < p.oc; ++r) {
    for (int64_t b = 0; b < p.c / p.bs; ++b) {
      for (int64_t j = 0; j < p.bs; ++j) codes[(size_t)j] = p.codes[(size_t)(r * p.c + b * p.bs + j)];
      SetBlockCodes(p.type, p.data.data() + (size_t)r * p.row_bytes + (size_t)b * type_size, codes.data());
    }
  }
  GptqResult out;
  out.data = std::move(p.data);
  out.proxy_loss = std::accumulate(row_loss.begin(), row_loss.end(), 0.0);
  out.damp = damp;
  return out;
}

}  // namespace

GptqResult GptqQuantizeNaive(const float* W, int64_t OC, int64_t C, const double* H, DType type,
                             const GptqOptions& opts) {
  Problem p = Prepare(W, OC, C, H, type, opts);
  double damp = 0;
  const std::vector<double> u = DampedInverseFactor(std::move(p.h), C, opts.damp, FactorMethod::kNaive, &damp, "gptq");
  std::vector<double> row_loss((size_t)OC, 0.0);
  for (int64_t k = 0; k < C; ++k) {
    for (int64_t r = 0; r < OC; ++r) {
      if (!p.act_order && k % p.bs == 0) FixGridsAtBlockStart(p, r, k);
      const double err = QuantizeElement(p, r, k, u[(size_t)(k * C + k)], &row_loss[(size_t)r]);
      for (int64_t j = k + 1; j < C; ++j) p.w[(size_t)(r * C + j)] -= err * u[(size_t)(k * C + j)];
    }
  }
  return Finish(p, row_loss, damp);
}

GptqResult GptqQuantize(const float* W, int64_t OC, int64_t C, const double* H, DType type,
                        const GptqOptions& opts) {
  Problem p = Prepare(W, OC, C, H, type, opts);
  double damp = 0;
  std::vector<double> u;
  {
    BlasThreads blas_threads(opts.threads);
    u = DampedInverseFactor(std::move(p.h), C, opts.damp, FactorMethod::kLapack, &damp, "gptq");
  }

  // Without act-order a block's scales are fixed from its fully updated weights, so a batch
  // must hold whole blocks: B is rounded up to a multiple of the block size (256 for k-quants).
  // With act-order every grid is fixed up front and any B works.
  const int64_t lazy = opts.act_order ? opts.lazy_block : (opts.lazy_block + p.bs - 1) / p.bs * p.bs;
  std::vector<double> row_loss((size_t)OC, 0.0);
  // Rows are independent, so each thread takes a contiguous slice of rows through every batch,
  // its batch updates by a single-threaded dgemm on its own rows: no synchronization between
  // batches and no BLAS threads competing with the team.
  ParallelSweep(OC, C, lazy, opts.threads, [&](int64_t r0, int64_t r1, int64_t i1, int64_t i2, double* err) {
    SweepBatch(p.w.data(), C, u.data(), r0, r1, i1, i2, err, [&](int64_t r, int64_t k) {
      if (!p.act_order && k % p.bs == 0) FixGridsAtBlockStart(p, r, k);
      return QuantizeElement(p, r, k, u[(size_t)(k * C + k)], &row_loss[(size_t)r]);
    });
  });
  return Finish(p, row_loss, damp);
}

}  // namespace smelt
