#pragma once
// What the machine offers a forward pass: CPU, SIMD features, BLAS and OpenMP threads, and the
// memory read bandwidth that bounds batch-1 decoding (every weight is read once per token).
#include <cstddef>
#include <string>
#include <vector>

#include "core/cpu.h"

namespace smelt {

struct SystemInfo {
  std::string cpu;          // brand string
  int logical_cores = 0;    // hardware threads the process may run on
  CpuFeatures features;
  std::string kernel_path;  // KernelPath(): which twin smelt's dispatch picks
  size_t prefetch_distance = 0;  // kPrefetchDistance: bytes the streaming kernels ask for ahead
  std::string blas_core;    // OpenBLAS's core name (the kernels it picked for this CPU)
  int blas_threads = 0;     // OpenBLAS's thread count
  int omp_max_threads = 0;  // omp_get_max_threads()
  uint64_t llc_bytes = 0;   // the largest CPU cache the OS reports (0: unknown)
  // The kernel's transparent huge page mode ("always", "madvise", "never"; empty: unknown). smelt
  // asks for huge pages for its packed weights, KV cache and bandwidth buffer (core/huge_pages.h),
  // which they get unless the mode is "never".
  std::string huge_pages;
};
SystemInfo GetSystemInfo();

// A cache size as sysfs writes it ("491520K", "32M", "1024"): bytes, or 0 when unreadable.
uint64_t ParseCacheSize(const std::string& s);
// The selected mode of sysfs's transparent_hugepage/enabled ("always [madvise] never" → "madvise"):
// the bracketed word, empty where there is none.
std::string ParseThpMode(const std::string& line);

struct BandwidthOptions {
  size_t mib = 512;  // buffer size: make it much larger than the last-level cache
  int repetitions = 5;
  int threads = 1;
};

struct Bandwidth {
  int threads = 0;                // that ran (OpenMP may grant fewer than asked)
  size_t bytes = 0;               // bytes read per repetition
  std::vector<double> gb_per_s;   // one per repetition, 1 GB = 1e9 bytes
  double best = 0, mean = 0;      // GB/s
  uint64_t checksum = 0;          // sum of the buffer's words (each repetition must agree)
};

// Fills a buffer of opt.mib MiB with the words 0, 1, 2, ... (each thread touches the part it
// later reads) and sums it opt.repetitions times with opt.threads threads, timing each pass.
// Throws Error for a size or count < 1.
Bandwidth MeasureReadBandwidth(const BandwidthOptions& opt);

// The sum the buffer of MeasureReadBandwidth holds: 0 + 1 + ... + (words - 1), mod 2^64.
uint64_t ReadBandwidthChecksum(size_t words);

}  // namespace smelt
