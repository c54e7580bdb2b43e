#pragma once
// Shared helpers of the smelt subcommands: option structs common to several commands, progress
// lines (only on a terminal), and JSON/text output.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>

#include "compress/activation_stats.h"
#include "compress/calibration.h"
#include "compress/sensitivity.h"
#include "core/error.h"
#include "io/load.h"
#include "kernels/matmul.h"
#include "model/kv_cache.h"
#include "runtime/sysinfo.h"

namespace smelt::cli {

// A subcommand: its CLI11 app and the function that runs it after parsing (returns exit code).
struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

// Registration functions, one per cmd_*.cc file.
Command AddInspect(CLI::App& root);
Command AddRun(CLI::App& root);
Command AddEval(CLI::App& root);
Command AddConvert(CLI::App& root);
Command AddSynth(CLI::App& root);
Command AddDemo(CLI::App& root);
Command AddQuantize(CLI::App& root);
Command AddPrune(CLI::App& root);
Command AddQuantReport(CLI::App& root);
Command AddSensitivity(CLI::App& root);
Command AddSysinfo(CLI::App& root);
Command AddBench(CLI::App& root);
Command AddTrain(CLI::App& root);
Command AddDistill(CLI::App& root);
Command AddQat(CLI::App& root);

// --tokenizer for llama2.c checkpoints, used by every command that loads a model.
void AddLoadOptions(CLI::App* app, LoadOptions& opt);
// -t/--threads with the default (number of cores, at most 2 on small machines).
void AddThreads(CLI::App* app, int& threads);
int DefaultThreads();
// --kv f32|f16|i8: the KV cache's element type (model/kv_cache.h) into `kv` (another name is a
// one-line usage error).
void AddKvOption(CLI::App* app, KvType& kv);
// --activations ggml|exact (kernels/matmul.h Activations), and its name for JSON.
void AddActivationsOption(CLI::App* app, Activations& act);
const char* ActivationsName(Activations act);

// A progress reporter that redraws one line on stderr when stderr is a terminal and stays
// silent otherwise (pipes, CI).
std::function<void(int, int)> Progress(std::string label);

// Prints JSON (indented) to stdout.
void PrintJson(const nlohmann::json& j);

// The SIMD features by name ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512dq",
// "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_vbmi2", "avx_vnni", "amx_int8", "amx_bf16"), in that
// order, each with
// whether the CPU has it.
std::vector<std::pair<std::string, bool>> SimdFeatureList(const CpuFeatures& f);
// The machine as JSON: cpu, logical_cores, simd {name: bool}, kernel_path, openblas {core,
// threads}, openmp_max_threads (`sysinfo --json` and `bench --json` share it).
nlohmann::json SystemJson(const SystemInfo& s);

// Parameters and bytes of the model's weights; bits/weight = 8 * bytes / parameters.
struct SizeInfo {
  int64_t parameters = 0;
  uint64_t bytes = 0;
  double bits_per_weight() const { return parameters ? 8.0 * (double)bytes / (double)parameters : 0; }
};
SizeInfo ModelSize(const Model& m);

// Calibration and sensitivity options shared by `quantize --target-bpw` and `sensitivity`.
struct SensitivityArgs {
  std::string calib, candidates, kind = "proxy";
  CalibOptions calib_opt;
};
void AddCalibOptions(CLI::App* app, SensitivityArgs& a);
void AddSensitivityOptions(CLI::App* app, SensitivityArgs& a);

// The parsed --candidates (DefaultCandidates when empty) and --sensitivity; throws Error.
std::vector<DType> CandidatesOf(const SensitivityArgs& a);
SensitivityKind KindOf(const SensitivityArgs& a);

// Calibration samples of a.calib and, as asked, their activation statistics (the staged pass of
// compress/activation_stats.h; no Hessians: GPTQ and AWQ take theirs from their own staged pass).
enum class CalibNeed { kSamples, kStats };
struct Calibration {
  std::vector<std::vector<int32_t>> samples;
  ActivationStats stats;  // empty with kSamples
  int64_t tokens = 0;     // calibration tokens in samples
};
Calibration Calibrate(const Model& m, const SensitivityArgs& a, CalibNeed need, int threads);

// The sensitivity table of the matrices named in `only` (all 2-D matrices when empty).
std::vector<MatrixSensitivity> Sensitivity(const Model& m, const SensitivityArgs& a, const Calibration& c,
                                           std::vector<std::string> only, int threads);

}  // namespace smelt::cli
