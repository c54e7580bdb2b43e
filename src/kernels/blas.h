#pragma once
// OpenBLAS's thread count is process state: BlasThreads sets it for the duration of one call
// (a GEMM-heavy pass) and restores it, so passes that run OpenBLAS outside OpenMP regions choose
// their own count without oversubscribing the cores.
#include <cblas.h>

namespace smelt {

class BlasThreads {
 public:
  explicit BlasThreads(int n) : previous_(openblas_get_num_threads()) { openblas_set_num_threads(n); }
  ~BlasThreads() { openblas_set_num_threads(previous_); }
  BlasThreads(const BlasThreads&) = delete;
  BlasThreads& operator=(const BlasThreads&) = delete;

 private:
  int previous_;
};

}  // namespace smelt
