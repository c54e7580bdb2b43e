// smelt sysinfo: the CPU, the SIMD features and kernel path smelt's dispatch sees, BLAS and
// OpenMP threads, and the measured memory read bandwidth at 1 thread and at all threads.
#include <fmt/format.h>

#include "cli_util.h"
#include "runtime/sysinfo.h"

namespace smelt::cli {
namespace {

struct SysinfoArgs {
  size_t mib = 512;
  int reps = 5;
  bool json = false;
};

// 1 thread and all logical cores (once when they are the same).
std::vector<Bandwidth> MeasureBandwidths(const SystemInfo& s, const SysinfoArgs& a) {
  std::vector<Bandwidth> out;
  if (a.mib == 0) return out;
  for (int threads : {1, s.logical_cores}) {
    if (!out.empty() && out.back().threads == threads) break;
    out.push_back(MeasureReadBandwidth({.mib = a.mib, .repetitions = a.reps, .threads = threads}));
  }
  return out;
}

int RunSysinfo(const SysinfoArgs& a) {
  const SystemInfo s = GetSystemInfo();
  const std::vector<Bandwidth> bw = MeasureBandwidths(s, a);
  if (a.json) {
    nlohmann::json j = SystemJson(s);
    j["bandwidth"] = nlohmann::json::array();
    for (const Bandwidth& b : bw)
      j["bandwidth"].push_back({{"threads", b.threads},
                                {"buffer_mib", a.mib},
                                {"repetitions", a.reps},
                                {"best_gb_s", b.best},
                                {"mean_gb_s", b.mean}});
    PrintJson(j);
    return 0;
  }
  std::string have, lack;
  for (const auto& [name, on] : SimdFeatureList(s.features)) (on ? have : lack) += fmt::format(" {}", name);
  fmt::print("cpu:           {}\n", s.cpu);
  fmt::print("logical cores: {}\n", s.logical_cores);
  fmt::print("simd:         {}{}\n", have.empty() ? " (none)" : have, lack.empty() ? "" : "   (absent:" + lack + ")");
  fmt::print("kernel path:   {}\n", s.kernel_path);
  fmt::print("prefetch:      {} B ahead (SMELT_PREFETCH_DISTANCE overrides)\n", s.prefetch_distance);
  if (s.llc_bytes) fmt::print("largest cache: {} MiB\n", s.llc_bytes >> 20);
  if (!s.huge_pages.empty())
    fmt::print("huge pages:    {} (transparent; smelt asks for them for packed weights and the KV cache{})\n",
               s.huge_pages, s.huge_pages == "never" ? ", and gets none" : "");
  fmt::print("openblas:      {}, {} threads\n", s.blas_core, s.blas_threads);
  fmt::print("openmp:        {} threads at most\n", s.omp_max_threads);
  for (const Bandwidth& b : bw)
    fmt::print("memory read:   {} thread{}: best {:.1f} GB/s, mean {:.1f} GB/s ({} MiB, {} passes)\n", b.threads,
               b.threads == 1 ? "" : "s", b.best, b.mean, a.mib, a.reps);
  return 0;
}

}  // namespace

Command AddSysinfo(CLI::App& root) {
  auto a = std::make_shared<SysinfoArgs>();
  CLI::App* app = root.add_subcommand(
      "sysinfo", "CPU, SIMD features, kernel path, BLAS/OpenMP threads and measured memory read bandwidth");
  app->add_option("--mib", a->mib, "bandwidth buffer in MiB, much larger than the last-level cache (0: skip)")
      ->capture_default_str();
  app->add_option("--reps", a->reps, "bandwidth passes (best and mean are reported)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app->add_flag("--json", a->json, "print JSON");
  return {app, [a] { return RunSysinfo(*a); }};
}

}  // namespace smelt::cli
