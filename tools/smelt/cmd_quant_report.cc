// smelt quant-report BASE QUANT --text FILE: what a quantized model lost relative to its base,
// per tensor, per block and at the output.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "cli_util.h"
#include "core/mapped_file.h"
#include "eval/quant_report.h"
#include "formats/types.h"

namespace smelt::cli {
namespace {

struct QuantReportArgs {
  std::string base, quant, text;
  LoadOptions load;
  QuantReportOptions report;
  bool no_tensors = false;
  bool json = false;
};

// SQNR for JSON: a number, or "inf" for identical tensors (JSON has no infinity).
nlohmann::json SqnrJson(double db) { return std::isinf(db) && db > 0 ? nlohmann::json("inf") : nlohmann::json(db); }

std::vector<int64_t> Shape(const TensorError& t) {
  return std::vector<int64_t>(t.ne.begin(), t.ne.begin() + std::clamp(t.n_dims, 1, 4));
}

std::string SqnrText(double db) { return std::isinf(db) && db > 0 ? "inf" : fmt::format("{:.2f}", db); }

nlohmann::json SizeJson(const WeightSize& s) {
  return {{"parameters", s.parameters},
          {"bytes", s.bytes},
          {"bits_per_weight", s.bits_per_weight()},
          {"matrix_parameters", s.matrix_parameters},
          {"matrix_bytes", s.matrix_bytes},
          {"matrix_bits_per_weight", s.matrix_bits_per_weight()}};
}

void PrintReportJson(const QuantReportArgs& a, const QuantReport& r) {
  nlohmann::json tensors = nlohmann::json::array();
  for (const TensorError& t : r.tensors)
    tensors.push_back({{"name", t.name},
                       {"shape", Shape(t)},
                       {"base_type", DTypeName(t.base_type)},
                       {"quant_type", DTypeName(t.quant_type)},
                       {"rmse", t.rmse},
                       {"sqnr_db", SqnrJson(t.sqnr_db)},
                       {"max_abs_error", t.max_abs},
                       {"bits_per_weight", t.bits_per_weight}});
  nlohmann::json layers = nlohmann::json::array();
  for (const LayerError& l : r.layers)
    layers.push_back({{"layer", l.layer}, {"cosine_mean", l.cosine_mean}, {"cosine_min", l.cosine_min},
                      {"rel_l2", l.rel_l2}});
  const KldResult& k = r.kld;
  PrintJson({{"base", a.base},
             {"quant", a.quant},
             {"text", a.text},
             {"ctx", a.report.ppl.ctx},
             {"tensors", tensors},
             {"only_in_base", r.only_in_base},
             {"only_in_quant", r.only_in_quant},
             {"layers", layers},
             {"layer_windows", r.layer_windows},
             {"layer_positions", r.layer_positions},
             {"summary",
              {{"chunks", k.n_chunks},
               {"positions", k.n},
               {"ppl_base", k.ppl_base},
               {"ppl_quant", k.ppl_model},
               {"ln_ppl_ratio", k.ln_ppl_ratio},
               {"kld_mean", k.kld_mean},
               {"kld_stderr", k.kld_stderr},
               {"kld_median", k.kld_median},
               {"kld_p99", k.kld_p99},
               {"kld_max", k.kld_max},
               {"same_top", k.same_top},
               {"delta_p_mean", k.dp_mean},
               {"delta_p_rms", k.dp_rms},
               {"base_size", SizeJson(r.base_size)},
               {"quant_size", SizeJson(r.quant_size)},
               {"seconds", k.seconds}}}});
}

void PrintTensorTable(const QuantReport& r) {
  size_t name_w = 6;
  for (const TensorError& t : r.tensors) name_w = std::max(name_w, t.name.size());
  fmt::print("{:<{}}  {:<13}  {:<13}  {:>6}  {:>10}  {:>8}  {:>10}\n", "tensor", name_w, "shape", "type", "bpw",
             "RMSE", "SQNR dB", "max |err|");
  for (const TensorError& t : r.tensors) {
    fmt::print("{:<{}}  {:<13}  {:<13}  {:>6.2f}  {:>10.3e}  {:>8}  {:>10.3e}\n", t.name, name_w,
               fmt::format("[{}]", fmt::join(Shape(t), ", ")),
               fmt::format("{} → {}", DTypeName(t.base_type), DTypeName(t.quant_type)), t.bits_per_weight, t.rmse,
               SqnrText(t.sqnr_db), t.max_abs);
  }
  if (!r.only_in_base.empty()) fmt::print("only in base: {}\n", fmt::join(r.only_in_base, ", "));
  if (!r.only_in_quant.empty()) fmt::print("only in quant: {}\n", fmt::join(r.only_in_quant, ", "));
  fmt::print("\n");
}

void PrintReportText(const QuantReportArgs& a, const QuantReport& r) {
  fmt::print("base   {}\nquant  {}\ntext   {}\n\n", a.base, a.quant, a.text);
  if (!a.no_tensors) PrintTensorTable(r);
  fmt::print("{:>5}  {:>11}  {:>11}  {:>9}\n", "block", "cosine mean", "cosine min", "rel L2");
  for (const LayerError& l : r.layers)
    fmt::print("{:>5}  {:>11.6f}  {:>11.6f}  {:>9.5f}\n", l.layer, l.cosine_mean, l.cosine_min, l.rel_l2);
  fmt::print("(residual stream after each block, {} window{} of the text, {} positions)\n\n", r.layer_windows,
             r.layer_windows == 1 ? "" : "s", r.layer_positions);
  const KldResult& k = r.kld;
  auto size = [](const WeightSize& s) {
    return fmt::format("{:>12} bytes  {:>6.2f} bits/weight  (2-D weights: {:.2f})", s.bytes, s.bits_per_weight(),
                       s.matrix_bits_per_weight());
  };
  fmt::print("size       base  {}\n           quant {}\n", size(r.base_size), size(r.quant_size));
  fmt::print("scored     {} positions ({} windows of {}, second half)\n", k.n, k.n_chunks, a.report.ppl.ctx);
  fmt::print("ppl        base {:.4f}, quant {:.4f}, ln ratio {:+.5f}\n", k.ppl_base, k.ppl_model, k.ln_ppl_ratio);
  fmt::print("KLD        mean {:.6f} ± {:.6f}, median {:.6f}, p99 {:.6f}, max {:.6f}\n", k.kld_mean, k.kld_stderr,
             k.kld_median, k.kld_p99, k.kld_max);
  fmt::print("same top   {:.3f} %\n", 100 * k.same_top);
  fmt::print("Δp         mean {:+.4f} %, rms {:.4f} %\n", 100 * k.dp_mean, 100 * k.dp_rms);
}

int RunQuantReport(QuantReportArgs& a) {
  Model base = LoadModel(a.base, a.load);
  Model quant = LoadModel(a.quant, a.load);
  const std::string text = ReadFileToString(a.text);
  a.report.tensors = !a.no_tensors;
  a.report.text_name = a.text;
  a.report.tensor_progress = Progress("tensors");
  a.report.ppl.progress = Progress("kld");
  const QuantReport r = MakeQuantReport(base, quant, text, a.report);
  if (a.json) {
    PrintReportJson(a, r);
  } else {
    PrintReportText(a, r);
  }
  return 0;
}

}  // namespace

Command AddQuantReport(CLI::App& root) {
  auto a = std::make_shared<QuantReportArgs>();
  CLI::App* app = root.add_subcommand(
      "quant-report", "what a quantized model lost relative to its base: per tensor, per block, at the output");
  app->add_option("base", a->base, "the base (reference) model: GGUF file, Hugging Face folder or llama2.c checkpoint")
      ->required();
  app->add_option("quant", a->quant, "the quantized model (same architecture and shape)")->required();
  app->add_option("--text", a->text, "UTF-8 text file both models are run on")->required();
  app->add_option("--ctx", a->report.ppl.ctx, "window length in tokens (the second half of each window is scored)")
      ->capture_default_str();
  app->add_option("--chunks", a->report.ppl.max_chunks, "evaluate at most this many windows (0: all)")
      ->capture_default_str();
  app->add_option("--layer-chunks", a->report.layer_windows, "windows the per-block comparison runs on")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app->add_flag("--no-tensors", a->no_tensors, "skip the per-tensor comparison");
  AddThreads(app, a->report.ppl.threads);
  AddLoadOptions(app, a->load);
  app->add_flag("--json", a->json, "print JSON");
  return {app, [a] { return RunQuantReport(*a); }};
}

}  // namespace smelt::cli
