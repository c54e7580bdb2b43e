// smelt quantize MODEL -o OUT.gguf --type T [--rules R] [--method rtn|mse|gptq|awq] [--calib FILE]
// [--smooth ALPHA]:
// post-training quantization of any model smelt loads to a GGUF file llama.cpp can load.
#include <fmt/format.h>

#include "cli_util.h"
#include "compress/calibration.h"
#include "compress/quantize.h"
#include "formats/types.h"
#include "io/gguf_model.h"

namespace smelt::cli {
namespace {

struct QuantizeArgs {
  std::string model, out, type, rules, method = "rtn", calib;
  CalibOptions calib_opt;
  LoadOptions load;
  int threads = 1;
  float damp = 0.01f;
  bool act_order = false;
  int awq_grid = 20;
  bool awq_clip = false;
  std::optional<float> smooth;
  bool json = false;
};

int RunQuantize(const QuantizeArgs& a) {
  if (!a.out.ends_with(".gguf")) Fail("-o {}: the output must be a .gguf file", a.out);
  QuantizeOptions q;
  const std::optional<QuantMethod> method = ParseQuantMethod(a.method);
  if (!method) Fail("--method {}: unknown method (rtn, mse, gptq, awq)", a.method);
  if ((*method == QuantMethod::kGptq || *method == QuantMethod::kAwq) && a.calib.empty())
    Fail("--method {} needs calibration text (--calib FILE)", a.method);
  if (*method == QuantMethod::kAwq && a.awq_grid < 1) Fail("--awq-grid {}: needs at least 1 point", a.awq_grid);
  if (*method != QuantMethod::kAwq && a.awq_clip) Fail("--awq-clip: only with --method awq");
  q.method = *method;
  if (a.smooth) {
    if (!(*a.smooth >= 0.0f && *a.smooth <= 1.0f)) Fail("--smooth {}: alpha must be in [0, 1]", *a.smooth);
    if (a.calib.empty()) Fail("--smooth needs calibration text (--calib FILE) for the activation ranges");
    if (*method == QuantMethod::kAwq) Fail("--smooth: not with --method awq (both rescale input channels)");
    q.smooth_alpha = a.smooth;
  }
  // Rules: --rules first (first match wins), then --type as the catch-all.
  if (!a.rules.empty()) q.rules = ParseTypeRules(a.rules);
  if (!a.type.empty()) {
    const std::optional<DType> t = ParseDType(a.type);
    if (!t) Fail("--type {}: unknown type", a.type);
    auto all = ParseTypeRules("*=" + a.type);
    q.rules.insert(q.rules.end(), all.begin(), all.end());
  }
  if (q.rules.empty()) Fail("give --type TYPE or --rules 'GLOB=TYPE; ...'");
  if (!a.calib.empty() && q.method == QuantMethod::kRtn && !a.smooth)
    Fail("--calib: method rtn uses no calibration data (use --method mse for importance-weighted quantization)");

  Model m = LoadModel(a.model, a.load);
  q.threads = a.threads;
  q.gptq.damp = a.damp;
  q.gptq.act_order = a.act_order;
  q.awq.grid = a.awq_grid;
  q.awq.clip = a.awq_clip;
  ActivationStats stats;
  if (!a.calib.empty()) {
    const auto samples = CalibrationSamples(m, a.calib, a.calib_opt);
    StatsOptions so;
    so.threads = a.threads;
    so.hessian = q.method == QuantMethod::kGptq || q.method == QuantMethod::kAwq;
    so.progress = Progress("calibration");
    stats = CollectActivationStats(m, samples, so);
    q.stats = &stats;
  }
  q.progress = Progress("quantize");
  QuantizeSummary summary;
  Model out = QuantizeModel(m, q, &summary);

  std::string recipe = fmt::format("method={} rules='{}{}{}'", a.method, a.rules,
                                   a.rules.empty() || a.type.empty() ? "" : "; ", a.type.empty() ? "" : "*=" + a.type);
  if (q.method == QuantMethod::kGptq) recipe += fmt::format(" damp={} act_order={}", a.damp, a.act_order);
  if (q.method == QuantMethod::kAwq) recipe += fmt::format(" awq_grid={} awq_clip={}", a.awq_grid, a.awq_clip);
  if (a.smooth) recipe += fmt::format(" smooth_alpha={}", *a.smooth);
  if (!a.calib.empty())
    recipe += fmt::format(" calib={} samples={} tokens={} calib_tokens_run={}", a.calib, a.calib_opt.samples,
                          a.calib_opt.tokens, stats.tokens);
  out.info["quantize.recipe"] = recipe;
  out.info["quantize.source"] = a.model;
  if (std::string fb = summary.Fallbacks(); !fb.empty()) out.info["quantize.fallback"] = fb;
  SaveGgufModel(out, a.out, GgufSaveOptions{});

  const SizeInfo before = ModelSize(m), after = ModelSize(out);
  if (a.json) {
    nlohmann::json tensors = nlohmann::json::array();
    for (const TensorChoice& c : summary.tensors) {
      nlohmann::json t = {{"name", c.name},
                          {"from", DTypeName(c.from)},
                          {"wanted", DTypeName(c.wanted)},
                          {"to", DTypeName(c.to)},
                          {"mse_search", c.weighted},
                          {"gptq", c.gptq},
                          {"importance", c.importance},
                          {"smoothed", c.smoothed}};
      if (c.awq) {
        t["awq_alpha"] = c.awq_alpha;
        t["awq_loss"] = c.awq_loss;
        t["awq_loss_rtn"] = c.awq_loss_rtn;
      }
      tensors.push_back(std::move(t));
    }
    PrintJson({{"input", a.model},
               {"output", a.out},
               {"recipe", recipe},
               {"seconds", summary.seconds},
               {"bytes_before", before.bytes},
               {"bytes_after", after.bytes},
               {"bits_per_weight", after.bits_per_weight()},
               {"tensors", tensors}});
    return 0;
  }
  for (const TensorChoice& c : summary.tensors) {
    const std::string fallback =
        c.to == c.wanted ? ""
                         : fmt::format("  (wanted {}: its blocks do not divide rows of {})", DTypeName(c.wanted),
                                       m.weights.Get(c.name).ne[0]);
    const std::string how = c.gptq ? "gptq" : c.weighted ? (c.importance ? "mse+importance" : "mse") : "rtn";
    fmt::print("{:<28} {:>6} -> {:<6} {}{}{}\n", c.name, DTypeName(c.from), DTypeName(c.to), how,
               c.awq ? fmt::format(" awq alpha={:.2f}", c.awq_alpha) : c.smoothed ? " smoothed" : "", fallback);
  }
  fmt::print("wrote {}: {:.2f} MiB -> {:.2f} MiB, {:.3f} bits/weight, quantized in {:.2f} s\n", a.out,
             before.bytes / 1048576.0, after.bytes / 1048576.0, after.bits_per_weight(), summary.seconds);
  return 0;
}

}  // namespace

Command AddQuantize(CLI::App& root) {
  auto a = std::make_shared<QuantizeArgs>();
  CLI::App* app = root.add_subcommand("quantize", "quantize a model's weight matrices to a GGUF file");
  app->add_option("model", a->model, "GGUF file, Hugging Face folder or llama2.c checkpoint")->required();
  app->add_option("-o,--output", a->out, "output GGUF file")->required();
  app->add_option("--type", a->type,
                  "type of every matrix no rule names: q8_0, q4_0, q4_1, q5_0, q5_1, q2_K..q6_K, iq4_nl, f16, bf16, "
                  "f32 (llama.cpp loads these); smelt-only: i4s_g32, i4a_g128, i3s_g64, i2a_g32 ... (int4/3/2, "
                  "symmetric/asymmetric, groups 32/64/128), nf4, f8e4m3_b32, f8e5m2_b32, pow2_b32");
  app->add_option("--rules", a->rules, "per-tensor types, first match wins: 'output.weight=q6_K; blk.*.attn_v.*=q5_K'");
  app->add_option("--method", a->method,
                  "rtn: round to nearest (llama-quantize's bytes); mse: per-block MSE-optimal scales, "
                  "importance-weighted with --calib; gptq: GPTQ with Hessians from --calib; awq: AWQ input-channel "
                  "scales searched on --calib and folded into the preceding norm/ffn_up/attn_v, then rtn")
      ->capture_default_str();
  app->add_option("--calib", a->calib, "calibration text: an importance matrix is collected from it");
  app->add_option("--calib-samples", a->calib_opt.samples, "calibration samples")->capture_default_str();
  app->add_option("--calib-tokens", a->calib_opt.tokens, "tokens per calibration sample")->capture_default_str();
  app->add_option("--damp", a->damp, "gptq: dampening, a fraction of mean(diag(H))")->capture_default_str();
  app->add_flag("--act-order", a->act_order, "gptq: visit columns by decreasing Hessian diagonal (static groups)");
  app->add_option("--awq-grid", a->awq_grid, "awq: exponents alpha = i/N, i = 0..N-1, tried per group")
      ->capture_default_str();
  app->add_flag("--awq-clip", a->awq_clip,
                "awq: encode with the mse clipping search weighted by the scaled inputs' importance instead of rtn");
  app->add_option("--smooth", a->smooth,
                  "SmoothQuant with strength ALPHA (0.5 typical) before the method: per input channel, activation "
                  "range moved into the weights (needs --calib); pair with --type w8a8 for W8A8");
  AddThreads(app, a->threads);
  AddLoadOptions(app, a->load);
  app->add_flag("--json", a->json, "print JSON");
  return {app, [a] { return RunQuantize(*a); }};
}

}  // namespace smelt::cli
