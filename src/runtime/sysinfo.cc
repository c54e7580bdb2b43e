#include "runtime/sysinfo.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <fstream>
#include <cstdint>
#include <numeric>
#include <thread>

#include "core/error.h"
#include "core/huge_pages.h"
#include "kernels/prefetch.h"

namespace smelt {
namespace {

// Sums words[begin, end) with independent accumulators, so the loop streams at the memory's
// speed instead of waiting on one dependency chain (the compiler vectorizes it).
uint64_t SumWords(const uint64_t* words, size_t begin, size_t end) {
  constexpr size_t kLanes = 8;
  uint64_t acc[kLanes] = {};
  size_t i = begin;
  for (; i + kLanes <= end; i += kLanes) {
    // One 64-byte line per step, asked for as far ahead as the kernels ask for weights
    // (kernels/prefetch.h): a probe without it reads slower than the kernels stream.
    PrefetchAhead<64>(words + i);
    for (size_t l = 0; l < kLanes; ++l) acc[l] += words[i + l];
  }
  for (; i < end; ++i) acc[0] += words[i];
  return std::accumulate(acc, acc + kLanes, uint64_t{0});
}

// Words per work item of the fill and of each pass (512 KiB). Both loops split the same items
// with the same static schedule, so each thread reads the pages it first touched, and every
// word is covered whatever team size OpenMP grants.
constexpr size_t kChunkWords = size_t{1} << 16;

}  // namespace

std::string ParseThpMode(const std::string& line) {
  const size_t open = line.find('['), close = line.find(']', open == std::string::npos ? 0 : open);
  if (open == std::string::npos || close == std::string::npos) return "";
  return line.substr(open + 1, close - open - 1);
}

SystemInfo GetSystemInfo() {
  SystemInfo s;
  s.cpu = CpuModelName();
  s.logical_cores = (int)std::max(1u, std::thread::hardware_concurrency());
  s.features = GetCpuFeatures();
  s.kernel_path = KernelPath();
  s.prefetch_distance = kPrefetchDistance;
  const char* core = openblas_get_corename();
  s.blas_core = core ? core : "unknown";
  s.blas_threads = openblas_get_num_threads();
  s.omp_max_threads = omp_get_max_threads();
  for (int index = 0; index < 8; ++index) {  // cpu0's caches; the last level is the largest
    std::ifstream f("/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/size");
    std::string size;
    if (f >> size) s.llc_bytes = std::max(s.llc_bytes, ParseCacheSize(size));
  }
  std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  if (std::getline(thp, line)) s.huge_pages = ParseThpMode(line);
  return s;
}

uint64_t ParseCacheSize(const std::string& s) {
  size_t used = 0;
  uint64_t v = 0;
  for (; used < s.size() && std::isdigit((unsigned char)s[used]); ++used) {
    v = 10 * v + (uint64_t)(s[used] - '0');
    if (v > (1ull << 40)) return 0;
  }
  if (used == 0) return 0;
  const std::string unit = s.substr(used);
  const uint64_t scale = unit.empty() ? 1 : unit == "K" ? 1024 : unit == "M" ? 1024 * 1024 : unit == "G" ? 1024ull << 20 : 0;
  return scale == 0 ? 0 : v * scale;
}

uint64_t ReadBandwidthChecksum(size_t words) {
  // n(n-1)/2 without overflowing the intermediate product: halve the even factor first.
  const uint64_t n = words;
  return n % 2 == 0 ? (n / 2) * (n - 1) : n * ((n - 1) / 2);
}

Bandwidth MeasureReadBandwidth(const BandwidthOptions& opt) {
  if (opt.mib < 1) Fail("memory bandwidth: buffer of {} MiB is too small", opt.mib);
  if (opt.repetitions < 1) Fail("memory bandwidth: {} repetitions (need at least 1)", opt.repetitions);
  if (opt.threads < 1) Fail("memory bandwidth: {} threads (need at least 1)", opt.threads);
  const size_t words = opt.mib * (size_t{1} << 20) / sizeof(uint64_t);
  // On huge pages where the kernel grants them, as the packed weights are (core/huge_pages.h): the
  // ceiling is the best rate the memory gives, not one held back by TLB walks. Left uninitialized:
  // first touch below.
  HugePageBuffer storage(words * sizeof(uint64_t));
  uint64_t* const buf = reinterpret_cast<uint64_t*>(storage.data());
  const int n = opt.threads;
  const int64_t chunks = (int64_t)((words + kChunkWords - 1) / kChunkWords);
  int granted = 1;  // OpenMP may run fewer threads than asked (OMP_THREAD_LIMIT)
#pragma omp parallel num_threads(n) if (n > 1)
  {
#pragma omp single
    granted = omp_get_num_threads();
#pragma omp for schedule(static)
    for (int64_t c = 0; c < chunks; ++c) {
      const size_t end = std::min(words, (size_t)(c + 1) * kChunkWords);
      for (size_t i = (size_t)c * kChunkWords; i < end; ++i) buf[i] = i;
    }
  }

  Bandwidth r;
  r.threads = granted;
  r.bytes = words * sizeof(uint64_t);
  r.checksum = ReadBandwidthChecksum(words);
  for (int rep = 0; rep < opt.repetitions; ++rep) {
    uint64_t sum = 0;
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel for num_threads(n) if (n > 1) schedule(static) reduction(+ : sum)
    for (int64_t c = 0; c < chunks; ++c)
      sum += SumWords(buf, (size_t)c * kChunkWords, std::min(words, (size_t)(c + 1) * kChunkWords));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // The sum is checked so the reads cannot be optimized away and a torn pass cannot count.
    if (sum != r.checksum) Fail("memory bandwidth: pass {} read a wrong sum {} (want {})", rep, sum, r.checksum);
    r.gb_per_s.push_back((double)r.bytes / std::max(s, 1e-9) / 1e9);
  }
  r.best = *std::max_element(r.gb_per_s.begin(), r.gb_per_s.end());
  r.mean = std::accumulate(r.gb_per_s.begin(), r.gb_per_s.end(), 0.0) / (double)r.gb_per_s.size();
  return r;
}

}  // namespace smelt
