#pragma once
// The inverse-Hessian machinery shared by the OBS-style passes (GPTQ, compress/gptq.h; SparseGPT,
// compress/sparsegpt.h): both walk a layer's input columns in order and push each column's
// change onto the later columns through the upper Cholesky factor U of the dampened H^-1
// (H^-1 = Uᵀ U), as the reference implementations do. Here: dead inputs, the dampening with
// its retries, and U computed either by LAPACK or by plain loops (the reference twin).
#include <algorithm>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "kernels/blas.h"

namespace smelt {

// dead[i] != 0 when input column i was never active in the calibration data (H_ii == 0). Any
// value of such a column's weights is as good as another for the output, so the passes zero it
// and set H_ii = 1 to keep H invertible. H: (C, C) row-major; only the diagonal is read.
std::vector<char> DeadInputs(const double* H, int64_t C);

enum class FactorMethod {
  kLapack,  // dpotrf, dpotri, dpotrf
  kNaive,   // Cholesky and triangular inversion by triple loops in double (the reference twin)
};

// h: (C, C) symmetric, row-major, dead inputs already given H_ii = 1. Returns U, the upper
// Cholesky factor of (h + λI)^-1 with λ = damp · mean(diag(h)), in the upper triangle of a
// (C, C) row-major matrix (zeros below). While h + λI is not positive definite λ is raised
// (damp x 10, at least 1e-4, up to three times); *damp_used gets the damp that worked. Throws
// Error("WHO: H (CxC ...) is not positive definite ...") when none does. h is consumed (a
// (C, C) matrix is 1.6 GB for C = 14336).
std::vector<double> DampedInverseFactor(std::vector<double> h, int64_t C, double damp, FactorMethod method,
                                        double* damp_used, std::string_view who);

// The sweeps' fast paths split the (OC, C) rows into one contiguous slice per thread, each run
// through every lazy batch with single-threaded dgemms (rows are independent): this many threads
// for `threads` wanted, at least 16 rows each.
int SweepThreads(int threads, int64_t OC);
// The calling OpenMP thread's slice [first, second) of OC rows (all of them outside a team).
std::pair<int64_t, int64_t> ThreadRowSlice(int64_t OC);

// Runs the (OC, C) sweep's lazy batches of `lazy` columns on SweepThreads(threads, OC) threads,
// each owning a slice of rows: batch(r0, r1, i1, i2, err) for every batch [i1, i2) in order, err
// a thread's scratch of (r1 - r0) x lazy doubles. batch may hold OpenMP barriers (every thread
// runs every batch).
template <class Batch>
void ParallelSweep(int64_t OC, int64_t C, int64_t lazy, int threads, Batch batch);

// One thread's rows [r0, r1) through lazy batch [i1, i2): visit(r, k) settles weight (r, k) and
// returns its scaled error e = (w - q) / U_kk, which updates the row's later columns inside the
// batch at once (w_j -= e U_kj) and, through err (r1 - r0, i2 - i1), the columns past it by one
// dgemm (LazyBatchUpdate).
template <class Visit>
void SweepBatch(double* w, int64_t C, const double* u, int64_t r0, int64_t r1, int64_t i1, int64_t i2, double* err,
                Visit visit);

// The lazy batch update of columns past batch [i1, i2) for rows [r0, r0 + rows) of the (., C)
// row-major w: W[r0:, i2:] -= Err (rows, i2 - i1) · U[i1:i2, i2:], U (C, C) row-major.
void LazyBatchUpdate(double* w, int64_t C, int64_t r0, int64_t rows, const double* err, const double* u, int64_t i1,
                     int64_t i2);

template <class Batch>
void ParallelSweep(int64_t OC, int64_t C, int64_t lazy, int threads, Batch batch) {
  const int team = SweepThreads(threads, OC);
  BlasThreads blas_threads(1);  // single-threaded dgemms inside the team
#pragma omp parallel num_threads(team) if (team > 1)
  {
    const std::pair<int64_t, int64_t> slice = ThreadRowSlice(OC);
    std::vector<double> err((size_t)((slice.second - slice.first) * std::min(lazy, C)));
    for (int64_t i1 = 0; i1 < C; i1 += lazy) batch(slice.first, slice.second, i1, std::min(i1 + lazy, C), err.data());
  }
}

template <class Visit>
void SweepBatch(double* w, int64_t C, const double* u, int64_t r0, int64_t r1, int64_t i1, int64_t i2, double* err,
                Visit visit) {
  const int64_t n = i2 - i1;
  for (int64_t r = r0; r < r1; ++r) {
    double* wr = w + r * C;
    for (int64_t k = i1; k < i2; ++k) {
      const double e = visit(r, k);
      err[(r - r0) * n + (k - i1)] = e;
      const double* uk = u + k * C;
      for (int64_t j = k + 1; j < i2; ++j) wr[j] -= e * uk[j];
    }
  }
  LazyBatchUpdate(w, C, r0, r1 - r0, err, u, i1, i2);
}

}  // namespace smelt
