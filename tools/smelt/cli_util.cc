#include "cli_util.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

namespace smelt::cli {

void AddLoadOptions(CLI::App* app, LoadOptions& opt) {
  app->add_option("--tokenizer", opt.tokenizer,
                  "tokenizer .bin of a llama2.c checkpoint (default: the one tokenizer.bin/tok*.bin beside it)");
}

int DefaultThreads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : (int)std::min(n, 8u);
}

void AddThreads(CLI::App* app, int& threads) {
  threads = DefaultThreads();
  app->add_option("-t,--threads", threads, "worker threads")->check(CLI::Range(1, 256))->capture_default_str();
}

void AddKvOption(CLI::App* app, KvType& kv) {
  app->add_option_function<std::string>(
         "--kv",
         [&kv](const std::string& name) { kv = *ParseKvType(name); },  // checked below, before this runs
         "KV cache element type: f32 (exact), f16 (llama.cpp's default) or i8 (int8 with a scale per position "
         "and head)")
      ->check(CLI::IsMember({"f32", "f16", "i8"}))
      ->default_str("f32");
}

void AddActivationsOption(CLI::App* app, Activations& act) {
  app->add_option_function<std::string>(
         "--activations",
         [&act](const std::string& name) { act = name == "exact" ? Activations::kExact : Activations::kGgml; },
         "what the weight products see: ggml (the input rounded to the int8 or f16 blocks the weight type's "
         "kernels take, as llama.cpp does: fast) or exact (the f32 input as computed: weight-only "
         "quantization, e.g. bitsandbytes' NF4; no packed kernels, slower)")
      ->check(CLI::IsMember({"ggml", "exact"}))
      ->default_str("ggml");
}

const char* ActivationsName(Activations act) { return act == Activations::kExact ? "exact" : "ggml"; }

std::function<void(int, int)> Progress(std::string label) {
  if (!isatty(fileno(stderr))) return {};
  auto start = std::make_shared<std::chrono::steady_clock::time_point>(std::chrono::steady_clock::now());
  return [label = std::move(label), start](int done, int total) {
    double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - *start).count();
    double eta = done > 0 ? el * (total - done) / done : 0;
    std::fprintf(stderr, "\r%s %d/%d  %.1fs elapsed, ETA %.1fs   ", label.c_str(), done, total, el, eta);
    if (done == total) std::fputc('\n', stderr);
    std::fflush(stderr);
  };
}

void PrintJson(const nlohmann::json& j) { std::printf("%s\n", j.dump(2).c_str()); }

std::vector<std::pair<std::string, bool>> SimdFeatureList(const CpuFeatures& f) {
  return {{"avx2", f.avx2},
          {"fma", f.fma},
          {"f16c", f.f16c},
          {"avx512f", f.avx512f},
          {"avx512bw", f.avx512bw},
          {"avx512dq", f.avx512dq},
          {"avx512vl", f.avx512vl},
          {"avx512_vnni", f.avx512_vnni},
          {"avx512_bf16", f.avx512_bf16},
          {"avx512_vbmi2", f.avx512_vbmi2},
          {"avx_vnni", f.avx_vnni},
          {"amx_int8", f.amx_int8},
          {"amx_bf16", f.amx_bf16}};
}

nlohmann::json SystemJson(const SystemInfo& s) {
  nlohmann::json simd = nlohmann::json::object();
  for (const auto& [name, on] : SimdFeatureList(s.features)) simd[name] = on;
  return {{"cpu", s.cpu},
          {"logical_cores", s.logical_cores},
          {"simd", simd},
          {"kernel_path", s.kernel_path},
          {"prefetch_distance", s.prefetch_distance},
          {"llc_bytes", s.llc_bytes},
          {"transparent_huge_pages", s.huge_pages},
          {"openblas", {{"core", s.blas_core}, {"threads", s.blas_threads}}},
          {"openmp_max_threads", s.omp_max_threads}};
}

SizeInfo ModelSize(const Model& m) {
  SizeInfo s;
  for (const auto& t : m.weights.all()) {
    s.parameters += t.nelements();
    s.bytes += t.nbytes;
  }
  return s;
}

void AddCalibOptions(CLI::App* app, SensitivityArgs& a) {
  app->add_option("--calib-samples", a.calib_opt.samples, "calibration samples")->capture_default_str();
  app->add_option("--calib-tokens", a.calib_opt.tokens, "tokens per calibration sample")->capture_default_str();
}

void AddSensitivityOptions(CLI::App* app, SensitivityArgs& a) {
  app->add_option("--candidates", a.candidates,
                   "types the allocator chooses among, e.g. q4_0,q5_0,q8_0 (default "
                   "q2_K,q3_K,q4_0,q4_K,q5_0,q5_K,q6_K,q8_0); a type whose block does not divide a matrix's rows "
                   "counts as its fallback (q4_K -> q5_0, q6_K -> q8_0, ...)");
  app->add_option("--sensitivity", a.kind,
                  "damage of each (matrix, type): proxy = importance-weighted squared error "
                  "sum_c E[x_c^2] sum_o (w_hat - w)^2 (one encode each); kl = mean KL-divergence to the "
                  "unquantized model on the calibration samples with only that matrix quantized (one forward "
                  "pass each)")
      ->capture_default_str();
}

std::vector<DType> CandidatesOf(const SensitivityArgs& a) {
  return a.candidates.empty() ? DefaultCandidates() : ParseCandidates(a.candidates);
}

SensitivityKind KindOf(const SensitivityArgs& a) {
  const std::optional<SensitivityKind> k = ParseSensitivityKind(a.kind);
  if (!k) Fail("--sensitivity {}: unknown measure (proxy, kl)", a.kind);
  return *k;
}

Calibration Calibrate(const Model& m, const SensitivityArgs& a, CalibNeed need, int threads) {
  Calibration c;
  c.samples = CalibrationSamples(m, a.calib, a.calib_opt);
  for (const auto& s : c.samples) c.tokens += (int64_t)s.size();
  if (need == CalibNeed::kSamples) return c;
  StatsOptions so;
  so.threads = threads;
  so.progress = Progress("calibration");
  c.stats = CollectActivationStatsStaged(m, c.samples, so);
  return c;
}

std::vector<MatrixSensitivity> Sensitivity(const Model& m, const SensitivityArgs& a, const Calibration& c,
                                           std::vector<std::string> only, int threads) {
  SensitivityOptions so;
  so.candidates = CandidatesOf(a);
  so.kind = KindOf(a);
  so.stats = &c.stats;
  so.samples = &c.samples;
  so.only = std::move(only);
  so.threads = threads;
  so.progress = Progress("sensitivity");
  return AnalyzeSensitivity(m, so);
}

}  // namespace smelt::cli
