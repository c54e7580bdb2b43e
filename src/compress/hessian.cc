#include "compress/hessian.h"

#include <cblas.h>
#include <lapacke.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace smelt {
namespace {

// A dampening that leaves H indefinite is multiplied by 10 up to this many times before giving
// up (the reference code has no retry; with damp 0.01 this tries 0.1, 1 and 10 x mean(diag)).
constexpr int kDampRetries = 3;

// Overwrites a (n, n) symmetric positive definite matrix with the upper Cholesky factor U of
// its inverse (A^-1 = Uᵀ U) in the upper triangle; false if A is not positive definite.
bool NaiveInverseFactor(std::vector<double>& a, int64_t n) {
  auto at = [n](std::vector<double>& m, int64_t i, int64_t j) -> double& { return m[(size_t)(i * n + j)]; };
  // Lower Cholesky factor L of a symmetric matrix (A = L Lᵀ); false unless positive definite.
  auto cholesky = [&](std::vector<double>& m) {
    std::vector<double> l((size_t)(n * n), 0.0);
    for (int64_t j = 0; j < n; ++j) {
      double s = at(m, j, j);
      for (int64_t k = 0; k < j; ++k) s -= at(l, j, k) * at(l, j, k);
      if (!(s > 0.0)) return false;
      at(l, j, j) = std::sqrt(s);
      for (int64_t i = j + 1; i < n; ++i) {
        double t = at(m, i, j);
        for (int64_t k = 0; k < j; ++k) t -= at(l, i, k) * at(l, j, k);
        at(l, i, j) = t / at(l, j, j);
      }
    }
    m = std::move(l);
    return true;
  };
  if (!cholesky(a)) return false;
  // L^-1 by forward substitution, column by column of the identity.
  std::vector<double> li((size_t)(n * n), 0.0);
  for (int64_t c = 0; c < n; ++c) {
    for (int64_t i = c; i < n; ++i) {
      double s = i == c ? 1.0 : 0.0;
      for (int64_t k = c; k < i; ++k) s -= at(a, i, k) * at(li, k, c);
      at(li, i, c) = s / at(a, i, i);
    }
  }
  // A^-1 = L^-ᵀ L^-1.
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t k = std::max(i, j); k < n; ++k) s += at(li, k, i) * at(li, k, j);
      at(a, i, j) = s;
    }
  }
  if (!cholesky(a)) return false;
  // U = Lᵀ of A^-1's factor, in the upper triangle.
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < i; ++j) {
      at(a, j, i) = at(a, i, j);
      at(a, i, j) = 0.0;
    }
  }
  return true;
}

bool LapackInverseFactor(std::vector<double>& a, int64_t n) {
  // A row-major symmetric matrix is its own column-major transpose, and column-major 'L' is
  // row-major 'U': factor A = L Lᵀ, form A^-1 from L, factor A^-1 = L2 L2ᵀ; the row-major upper
  // triangle then holds L2ᵀ = U with A^-1 = Uᵀ U.
  const lapack_int ln = (lapack_int)n;
  if (LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', ln, a.data(), ln) != 0) return false;
  if (LAPACKE_dpotri(LAPACK_COL_MAJOR, 'L', ln, a.data(), ln) != 0) return false;
  if (LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', ln, a.data(), ln) != 0) return false;
  for (int64_t i = 1; i < n; ++i) {  // the row-major lower triangle still holds A: clear it
    std::fill_n(a.data() + i * n, i, 0.0);
  }
  return true;
}

}  // namespace

std::vector<char> DeadInputs(const double* H, int64_t C) {
  std::vector<char> dead((size_t)C);
  for (int64_t i = 0; i < C; ++i) dead[(size_t)i] = H[i * C + i] == 0.0;
  return dead;
}

std::vector<double> DampedInverseFactor(std::vector<double> h, int64_t C, double damp, FactorMethod method,
                                        double* damp_used, std::string_view who) {
  double mean = 0;
  for (int64_t i = 0; i < C; ++i) mean += h[(size_t)(i * C + i)];
  mean /= (double)C;
  const auto factor = method == FactorMethod::kLapack ? LapackInverseFactor : NaiveInverseFactor;
  double d = damp;
  for (int attempt = 0;; ++attempt) {
    std::vector<double> a = attempt == kDampRetries ? std::move(h) : h;
    for (int64_t i = 0; i < C; ++i) a[(size_t)(i * C + i)] += d * mean;
    if (factor(a, C)) {
      *damp_used = d;
      return a;
    }
    if (attempt == kDampRetries) {
      Fail("{}: H ({}x{}, mean diagonal {:.4g}) is not positive definite even with dampening "
           "{:.4g} x its mean diagonal",
           who, C, C, mean, d);
    }
    d = std::max(d * 10.0, 1e-4);
  }
}

int SweepThreads(int threads, int64_t OC) { return (int)std::max<int64_t>(1, std::min<int64_t>(threads, OC / 16)); }

std::pair<int64_t, int64_t> ThreadRowSlice(int64_t OC) {
  int team = 1, me = 0;
#ifdef _OPENMP
  team = omp_get_num_threads(), me = omp_get_thread_num();
#endif
  return {OC * me / team, OC * (me + 1) / team};
}

void LazyBatchUpdate(double* w, int64_t C, int64_t r0, int64_t rows, const double* err, const double* u, int64_t i1,
                     int64_t i2) {
  const int64_t n = i2 - i1;
  if (i2 >= C || rows <= 0) return;
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)(C - i2), (int)n, -1.0, err, (int)n,
              u + i1 * C + i2, (int)C, 1.0, w + r0 * C + i2, (int)C);
}

}  // namespace smelt
