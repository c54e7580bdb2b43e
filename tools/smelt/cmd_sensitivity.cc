// smelt sensitivity MODEL --calib FILE [--candidates T,T,...] [--sensitivity proxy|kl] [--json]:
// the table the mixed-precision allocator of `quantize --target-bpw` works from, without writing
// anything: for every weight matrix and candidate type, the predicted damage and the bytes.
#include <fmt/format.h>

#include <cmath>

#include "cli_util.h"
#include "formats/types.h"

namespace smelt::cli {
namespace {

struct SensitivityCmdArgs {
  std::string model;
  SensitivityArgs sens;
  LoadOptions load;
  int threads = 1;
  bool json = false;
};

nlohmann::json Db(double db) { return std::isinf(db) ? nlohmann::json("inf") : nlohmann::json(db); }

int RunSensitivity(const SensitivityCmdArgs& a) {
  CandidatesOf(a.sens), KindOf(a.sens);  // fail on bad options before loading the model
  const Model m = LoadModel(a.model, a.load);
  const Calibration cal = Calibrate(m, a.sens, CalibNeed::kStats, a.threads);
  const std::vector<MatrixSensitivity> table = Sensitivity(m, a.sens, cal, {}, a.threads);
  if (a.json) {
    nlohmann::json rows = nlohmann::json::array();
    for (const MatrixSensitivity& ms : table) {
      nlohmann::json cands = nlohmann::json::array();
      for (const CandidateDamage& c : ms.candidates)
        cands.push_back({{"candidate", DTypeName(c.wanted)},
                         {"type", DTypeName(c.type)},
                         {"bytes", c.bytes},
                         {"bits_per_weight", 8.0 * (double)c.bytes / (double)ms.elements},
                         {"damage", c.damage},
                         {"sqnr_db", Db(c.sqnr_db)}});
      rows.push_back({{"name", ms.name}, {"elements", ms.elements}, {"importance", ms.has_stats}, {"candidates", cands}});
    }
    PrintJson({{"model", a.model},
               {"sensitivity", a.sens.kind},
               {"calib", a.sens.calib},
               {"calib_tokens", cal.stats.tokens},
               {"matrices", rows}});
    return 0;
  }
  fmt::print("{} damage per matrix and candidate (bytes; a type in brackets is the fallback written)\n",
             a.sens.kind == "kl" ? "mean KL-divergence on calibration tokens" : "importance-weighted squared error");
  for (const MatrixSensitivity& ms : table) {
    fmt::print("{}{}\n", ms.name, ms.has_stats || a.sens.kind == "kl" ? "" : "  (no input statistics: token shares)");
    for (const CandidateDamage& c : ms.candidates)
      fmt::print("  {:<9}{:<10} {:>12.5g}  {:>10} B  {:6.3f} bpw  SQNR {:6.2f} dB\n", DTypeName(c.wanted),
                 c.type == c.wanted ? "" : fmt::format("[{}]", DTypeName(c.type)), c.damage, c.bytes,
                 8.0 * (double)c.bytes / (double)ms.elements, c.sqnr_db);
  }
  return 0;
}

}  // namespace

Command AddSensitivity(CLI::App& root) {
  auto a = std::make_shared<SensitivityCmdArgs>();
  CLI::App* app = root.add_subcommand(
      "sensitivity",
      "how much each weight matrix suffers from each candidate type (the table behind quantize --target-bpw)");
  app->footer(
      "Each matrix is quantized alone to each candidate (round to nearest) and its damage predicted:\n"
      "  proxy: sum over input columns c of E[x_c^2] (from --calib) times the squared weight error of column c,\n"
      "         the expected squared output error; a token embedding weights its rows by the tokens' shares.\n"
      "  kl:    the mean KL-divergence to the unquantized model over the calibration tokens (slower).\n"
      "quantize --target-bpw B picks one candidate per matrix with the least total damage within the budget.\n"
      "Example: smelt sensitivity model.gguf --calib train.txt --candidates q4_0,q5_0,q8_0 --calib-samples 8");
  app->add_option("model", a->model, "GGUF file, Hugging Face folder or llama2.c checkpoint")->required();
  app->add_option("--calib", a->sens.calib, "calibration text")->required();
  AddCalibOptions(app, a->sens);
  AddSensitivityOptions(app, a->sens);
  AddThreads(app, a->threads);
  AddLoadOptions(app, a->load);
  app->add_flag("--json", a->json, "print JSON");
  return {app, [a] { return RunSensitivity(*a); }};
}

}  // namespace smelt::cli
