// smelt quantize MODEL -o OUT.gguf --type T [--rules R] [--method rtn|mse|gptq|awq] [--calib FILE]
// [--smooth ALPHA] [--target-bpw B | --target-size S]:
// post-training quantization of any model smelt loads to a GGUF file llama.cpp can load.
// With --target-bpw / --target-size the types come from the mixed-precision allocator
// (compress/allocate.h) over a sensitivity table (compress/sensitivity.h).
// --format int4|int3|int2 --group 32|64|128 [--asym] is another spelling of the group-int types
// (i4s_g128 ...); --format also takes any type name, as --type does.
#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <filesystem>
#include <optional>

#include "cli_util.h"
#include "compress/allocate.h"
#include "compress/calibration.h"
#include "compress/quantize.h"
#include "compress/rules.h"
#include "eval/quant_report.h"
#include "formats/types.h"
#include "io/gguf.h"
#include "io/gguf_model.h"

namespace smelt::cli {
namespace {

struct QuantizeArgs {
  std::string model, out, type, format, rules, method = "rtn";
  std::optional<int> group;
  bool asym = false;
  SensitivityArgs sens;  // --calib, --candidates, --sensitivity
  double target_bpw = 0;
  std::string target_size;
  LoadOptions load;
  int threads = 1;
  float damp = 0.01f;
  bool act_order = false;
  int awq_grid = 20;
  bool awq_clip = false;
  std::optional<float> smooth;
  bool json = false;
};

// "1500000", "900K", "1.5M", "2G" (K/M/G: powers of 1024; an optional trailing "iB" or "B").
uint64_t ParseSize(const std::string& text) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  std::string unit = text.substr(used);
  if (unit.ends_with("iB")) unit.resize(unit.size() - 2);
  else if (unit.ends_with("B")) unit.resize(unit.size() - 1);
  const double scale = unit.empty() ? 1 : unit == "K" || unit == "k" ? 1024.0 : unit == "M" ? 1048576.0
                       : unit == "G"                                 ? 1073741824.0
                                                                     : 0;
  if (used == 0 || scale == 0 || !(v > 0))
    Fail("--target-size {}: expected a positive size in bytes with an optional K, M or G suffix", text);
  return (uint64_t)std::floor(v * scale);
}

// Bytes of the output file besides the allocated matrices' data: the file written once with each
// of them at its smallest candidate (zero bytes; `info` as the real file will have it, plus a
// worst-case fallback note), less those bytes, plus one alignment of padding per matrix.
uint64_t OtherFileBytes(const Model& m, const std::vector<MatrixSensitivity>& table,
                        const std::map<std::string, std::string>& info, const std::string& out) {
  Model probe = m;
  probe.info = info;
  std::string fallback;
  uint64_t allocated = 0;
  for (const MatrixSensitivity& ms : table) {
    const CandidateDamage* smallest = &ms.candidates[0];
    size_t longest = 0;
    for (const CandidateDamage& c : ms.candidates) {
      if (c.bytes < smallest->bytes) smallest = &c;
      longest = std::max(longest, DTypeName(c.type).size());
    }
    fallback += fmt::format("{}{}={}", fallback.empty() ? "" : ", ", ms.name, std::string(longest, 'x'));
    auto zeros = std::make_shared<std::vector<uint8_t>>(smallest->bytes, 0);
    Tensor t = m.weights.Get(ms.name);
    t.type = smallest->type;
    t.data = zeros->data();
    t.nbytes = zeros->size();
    t.owner = std::shared_ptr<const void>(zeros, zeros->data());
    probe.weights.Set(t);
    allocated += smallest->bytes;
  }
  probe.info["quantize.fallback"] = fallback;
  const std::string path = out + ".size-probe";
  SaveGgufModel(probe, path, GgufSaveOptions{});
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(path, ec);
  std::filesystem::remove(path, ec);
  return size - allocated + kGgufDefaultAlignment * table.size();
}

// The group-int type that `--format int<b> --group G [--asym]` names, when format is int<b>.
std::optional<DType> GroupIntFormat(const QuantizeArgs& a) {
  int bits = 0;
  if (a.format == "int4") bits = 4;
  else if (a.format == "int3") bits = 3;
  else if (a.format == "int2") bits = 2;
  else return std::nullopt;
  if (!a.group) Fail("--format {} needs --group 32, 64 or 128", a.format);
  if (*a.group != 32 && *a.group != 64 && *a.group != 128)
    Fail("--group {}: the group-int types have groups of 32, 64 or 128", *a.group);
  const std::string name = fmt::format("i{}{}_g{}", bits, a.asym ? 'a' : 's', *a.group);
  const std::optional<DType> t = ParseDType(name);
  SMELT_ASSERT(t.has_value());
  return t;
}

// The catch-all type: --type, or --format as a type name or group-int spelling.
std::string CatchAllType(const QuantizeArgs& a) {
  if (!a.format.empty() && !a.type.empty()) Fail("give --type or --format, not both");
  const bool int_format = a.format == "int4" || a.format == "int3" || a.format == "int2";
  if (!a.format.empty() && !int_format && !ParseDType(a.format))
    Fail("--format {}: unknown format (int4, int3, int2 with --group, or a type name)", a.format);
  if ((a.group || a.asym) && !int_format)
    Fail("--group and --asym go with --format int4, int3 or int2 (not '{}')", a.format.empty() ? a.type : a.format);
  if (int_format) return std::string(DTypeName(*GroupIntFormat(a)));
  return a.format.empty() ? a.type : a.format;
}

// An explicit --group promises that group to every matrix the catch-all rule reaches: a matrix
// whose rows it does not divide is an error, not a silent fallback.
void CheckGroupDivides(const QuantizeArgs& a, const std::vector<TypeRule>& rules, const Model& m, DType type) {
  if (!a.group) return;
  for (const Tensor& t : m.weights.all()) {
    if (t.n_dims != 2) continue;
    const TypeRule* rule = MatchTypeRule(rules, t.name);
    if (rule && rule->type == type && t.ne[0] % *a.group != 0)
      Fail("{}: --group {} does not divide the {}-value rows of {} (give it another type with --rules)", a.model,
           *a.group, t.ne[0], t.name);
  }
}

int RunQuantize(const QuantizeArgs& a) {
  if (!a.out.ends_with(".gguf")) Fail("-o {}: the output must be a .gguf file", a.out);
  const std::string type = CatchAllType(a);
  QuantizeOptions q;
  const std::optional<QuantMethod> method = ParseQuantMethod(a.method);
  if (!method) Fail("--method {}: unknown method (rtn, mse, gptq, awq)", a.method);
  const std::string& calib = a.sens.calib;
  if ((*method == QuantMethod::kGptq || *method == QuantMethod::kAwq) && calib.empty())
    Fail("--method {} needs calibration text (--calib FILE)", a.method);
  if (*method == QuantMethod::kAwq && a.awq_grid < 1) Fail("--awq-grid {}: needs at least 1 point", a.awq_grid);
  if (*method != QuantMethod::kAwq && a.awq_clip) Fail("--awq-clip: only with --method awq");
  q.method = *method;
  if (a.smooth) {
    if (!(*a.smooth >= 0.0f && *a.smooth <= 1.0f)) Fail("--smooth {}: alpha must be in [0, 1]", *a.smooth);
    if (calib.empty()) Fail("--smooth needs calibration text (--calib FILE) for the activation ranges");
    if (*method == QuantMethod::kAwq) Fail("--smooth: not with --method awq (both rescale input channels)");
    q.smooth_alpha = a.smooth;
  }
  const bool mixed = a.target_bpw > 0 || !a.target_size.empty();
  if (a.target_bpw < 0) Fail("--target-bpw {}: must be positive", a.target_bpw);
  if (a.target_bpw > 0 && !a.target_size.empty()) Fail("give --target-bpw or --target-size, not both");
  if (mixed) {
    if (!type.empty()) Fail("--type: with --target-bpw/--target-size the allocator picks every matrix's type");
    if (calib.empty()) Fail("--target-bpw/--target-size: the sensitivity analysis needs calibration text (--calib FILE)");
    CandidatesOf(a.sens), KindOf(a.sens);  // fail on bad options before loading the model
  } else if (!a.sens.candidates.empty() || a.sens.kind != "proxy") {
    Fail("--candidates/--sensitivity: only used with --target-bpw or --target-size");
  }
  const uint64_t target_bytes = a.target_size.empty() ? 0 : ParseSize(a.target_size);
  // Rules: --rules first (first match wins), then --type as the catch-all.
  if (!a.rules.empty()) q.rules = ParseTypeRules(a.rules);
  if (!type.empty()) {
    const std::optional<DType> t = ParseDType(type);
    if (!t) Fail("--type {}: unknown type", type);
    auto all = ParseTypeRules("*=" + type);
    q.rules.insert(q.rules.end(), all.begin(), all.end());
  }
  if (q.rules.empty() && !mixed) Fail("give --type TYPE (or --format), --rules 'GLOB=TYPE; ...' or --target-bpw BITS");
  if (!calib.empty() && q.method == QuantMethod::kRtn && !mixed && !a.smooth)
    Fail("--calib: method rtn uses no calibration data (use --method mse for importance-weighted quantization)");

  Model m = LoadModel(a.model, a.load);
  if (!type.empty()) CheckGroupDivides(a, q.rules, m, *ParseDType(type));
  q.threads = a.threads;
  q.gptq.damp = a.damp;
  q.gptq.act_order = a.act_order;
  q.awq.grid = a.awq_grid;
  q.awq.clip = a.awq_clip;
  Calibration cal;
  if (!calib.empty()) {
    // gptq's and awq's Hessians come from their own staged pass over the samples (one group's at
    // a time); statistics are gathered first only for what runs before it (smoothing, the
    // sensitivity table).
    const bool staged = q.method == QuantMethod::kGptq || q.method == QuantMethod::kAwq;
    const CalibNeed need = staged && !a.smooth && !mixed ? CalibNeed::kSamples : CalibNeed::kStats;
    cal = Calibrate(m, a.sens, need, a.threads);
    if (need != CalibNeed::kSamples) q.stats = &cal.stats;
    if (staged) q.samples = &cal.samples;  // progress: per tensor as groups finish
  }

  std::string recipe = fmt::format("method={} rules='{}{}{}'", a.method, a.rules,
                                   a.rules.empty() || type.empty() ? "" : "; ", type.empty() ? "" : "*=" + type);
  if (mixed)
    recipe += fmt::format(" {} candidates={} sensitivity={}",
                          a.target_size.empty() ? fmt::format("target_bpw={}", a.target_bpw)
                                                : fmt::format("target_size={}", target_bytes),
                          a.sens.candidates.empty() ? "default" : a.sens.candidates, a.sens.kind);
  if (q.method == QuantMethod::kGptq) recipe += fmt::format(" damp={} act_order={}", a.damp, a.act_order);
  if (q.method == QuantMethod::kAwq) recipe += fmt::format(" awq_grid={} awq_clip={}", a.awq_grid, a.awq_clip);
  if (a.smooth) recipe += fmt::format(" smooth_alpha={}", *a.smooth);
  if (!calib.empty())
    recipe += fmt::format(" calib={} samples={} tokens={} calib_tokens_run={}", calib, a.sens.calib_opt.samples,
                          a.sens.calib_opt.tokens, cal.tokens);
  std::map<std::string, std::string> info = m.info;
  info["quantize.recipe"] = recipe;
  info["quantize.source"] = a.model;

  // Mixed precision. Precedence: --rules entries naming one tensor exactly (no * or ?) first,
  // and those tensors stay out of the allocation (and its bits/weight); then the allocator's
  // exact-name choices for every other matrix; then the remaining --rules patterns (which so no
  // longer reach a 2-D matrix).
  MixedPlan plan;
  if (mixed) {
    std::vector<TypeRule> exact, patterns;
    for (const TypeRule& r : q.rules) (r.glob.find_first_of("*?") == std::string::npos ? exact : patterns).push_back(r);
    std::vector<std::string> only;
    for (const Tensor& t : m.weights.all())
      if (t.n_dims == 2 && !MatchTypeRule(exact, t.name)) only.push_back(t.name);
    if (only.empty()) Fail("--rules names every matrix exactly: nothing is left to allocate");
    const std::vector<MatrixSensitivity> table = Sensitivity(m, a.sens, cal, only, a.threads);
    uint64_t budget = 0;
    if (a.target_size.empty()) {
      budget = BudgetForBitsPerWeight(table, a.target_bpw);
    } else {
      // The exactly named matrices are written as their rules say; count them at that size.
      Model fixed = m;
      for (const Tensor& t : m.weights.all())
        if (const TypeRule* r = t.n_dims == 2 ? MatchTypeRule(exact, t.name) : nullptr; r && r->type)
          fixed.weights.Set(EncodeTensor(t, FallbackType(*r->type, t.ne[0]), nullptr, a.threads));
      const uint64_t other = OtherFileBytes(fixed, table, info, a.out);
      if (other >= target_bytes)
        Fail("--target-size {}: the header, the unallocated tensors and padding alone take {} bytes", a.target_size,
             other);
      budget = target_bytes - other;
    }
    plan = PlanMixedPrecision(table, budget);
    const std::vector<TypeRule> chosen = plan.Rules();
    q.rules = exact;
    q.rules.insert(q.rules.end(), chosen.begin(), chosen.end());
    q.rules.insert(q.rules.end(), patterns.begin(), patterns.end());
  }

  q.progress = Progress("quantize");
  QuantizeSummary summary;
  Model out = QuantizeModel(m, q, &summary);
  out.info = info;
  if (std::string fb = summary.Fallbacks(); !fb.empty()) out.info["quantize.fallback"] = fb;
  SaveGgufModel(out, a.out, GgufSaveOptions{});
  const uint64_t file_bytes = std::filesystem::file_size(a.out);
  if (target_bytes && file_bytes > target_bytes) {
    std::error_code ec;
    std::filesystem::remove(a.out, ec);
    Fail("{}: {} bytes exceed --target-size {} ({} bytes); removed", a.out, file_bytes, a.target_size, target_bytes);
  }

  std::map<std::string, const MixedChoice*> chosen;
  for (const MixedChoice& c : plan.tensors) chosen[c.name] = &c;
  const SizeInfo before = ModelSize(m), after = ModelSize(out);
  if (a.json) {
    nlohmann::json tensors = nlohmann::json::array();
    for (const TensorChoice& c : summary.tensors) {
      nlohmann::json j = {{"name", c.name},
                          {"from", DTypeName(c.from)},
                          {"wanted", DTypeName(c.wanted)},
                          {"to", DTypeName(c.to)},
                          {"mse_search", c.weighted},
                          {"gptq", c.gptq},
                          {"importance", c.importance},
                          {"smoothed", c.smoothed}};
      if (c.awq) {
        j["awq_alpha"] = c.awq_alpha;
        j["awq_loss"] = c.awq_loss;
        j["awq_loss_rtn"] = c.awq_loss_rtn;
      }
      if (Traits(c.to).sparse_m) {
        j["nonzero"] = c.nonzero_before;
        j["stored"] = c.nonzero_stored;
      }
      if (auto it = chosen.find(c.name); it != chosen.end()) {
        j["allocated"] = true;
        j["predicted_damage"] = it->second->damage;
      }
      tensors.push_back(j);
    }
    nlohmann::json j = {{"input", a.model},
                        {"output", a.out},
                        {"recipe", recipe},
                        {"seconds", summary.seconds},
                        {"bytes_before", before.bytes},
                        {"bytes_after", after.bytes},
                        {"file_bytes", file_bytes},
                        {"bits_per_weight", after.bits_per_weight()},
                        {"matrix_bits_per_weight", MeasureWeights(out).matrix_bits_per_weight()},
                        {"tensors", tensors}};
    if (mixed)
      j["allocation"] = {{"sensitivity", a.sens.kind},
                         {"matrices", plan.tensors.size()},
                         {"budget_bytes", plan.budget},
                         {"bytes", plan.bytes},
                         {"bits_per_weight", plan.bits_per_weight()},
                         {"predicted_damage", plan.damage}};
    PrintJson(j);
    return 0;
  }
  for (const TensorChoice& c : summary.tensors) {
    std::string fallback =
        c.to == c.wanted ? ""
                         : fmt::format("  (wanted {}: its blocks do not divide rows of {})", DTypeName(c.wanted),
                                       m.weights.Get(c.name).ne[0]);
    if (c.Pruned())
      fallback += fmt::format("  (pruned by magnitude to fit: {:.1f} % of the weights stored, {:.1f} % non-zero)",
                              100 * c.nonzero_stored, 100 * c.nonzero_before);
    const auto it = chosen.find(c.name);
    const std::string damage = it == chosen.end() ? "" : fmt::format("  damage {:.4g}", it->second->damage);
    const std::string how = c.gptq ? "gptq" : c.weighted ? (c.importance ? "mse+importance" : "mse") : "rtn";
    const std::string scaled =
        c.awq ? fmt::format(" awq alpha={:.2f}", c.awq_alpha) : c.smoothed ? std::string(" smoothed") : std::string();
    fmt::print("{:<28} {:>6} -> {:<6} {}{}{}{}\n", c.name, DTypeName(c.from), DTypeName(c.to), how, scaled, damage,
               fallback);
  }
  if (mixed)
    fmt::print("allocated {} matrices: {:.3f} bits/weight ({} of {} budget bytes), predicted {} damage {:.4g}\n",
               plan.tensors.size(), plan.bits_per_weight(), plan.bytes, plan.budget, a.sens.kind, plan.damage);
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
                  "symmetric/asymmetric, groups 32/64/128), nf4, f8e4m3_b32, f8e5m2_b32, pow2_b32; per output "
                  "channel: i8_pc, w8a8 (int8 per-token activations), i4s_pc ... i2a_pc, km4_pc/km3_pc/km2_pc "
                  "(k-means codebooks); outlier-aware: q4_0_o8, i3s_g32_o8 (8 exact weights per row)");
  app->add_option("--format", a->format,
                  "int4, int3 or int2 with --group (and --asym): the group-int type i<b>{s,a}_g<group>; "
                  "or any --type name");
  app->add_option("--group", a->group,
                  "--format int<b>: weights per scale, 32, 64 or 128; it must divide the rows of every matrix "
                  "it applies to (route others elsewhere with --rules)");
  app->add_flag("--asym", a->asym, "--format int<b>: asymmetric groups (scale and offset) instead of symmetric");
  app->add_option("--rules", a->rules, "per-tensor types, first match wins: 'output.weight=q6_K; blk.*.attn_v.*=q5_K'");
  app->add_option("--method", a->method,
                  "rtn: round to nearest (llama-quantize's bytes); mse: per-block MSE-optimal scales, "
                  "importance-weighted with --calib; gptq: GPTQ with Hessians from --calib; awq: AWQ input-channel "
                  "scales searched on --calib and folded into the preceding norm/ffn_up/attn_v, then rtn")
      ->capture_default_str();
  app->add_option("--calib", a->sens.calib,
                  "calibration text: importance (mse), Hessians (gptq) and the sensitivity table (--target-*) "
                  "come from it");
  AddCalibOptions(app, a->sens);
  app->add_option("--target-bpw", a->target_bpw,
                  "mixed precision: choose each matrix's type among --candidates so that the matrices it "
                  "allocates average at most this many bits per weight (8 x their bytes / their elements; 1-D "
                  "tensors and matrices --rules names exactly are not counted) with the least predicted damage. "
                  "A --rules entry naming one tensor exactly (no * or ?) keeps that tensor out of the allocation "
                  "with the user's type; the allocator's choices go ahead of --rules patterns. Needs --calib");
  app->add_option("--target-size", a->target_size,
                  "mixed precision as --target-bpw, with a budget for the whole output file: SIZE in bytes, or "
                  "with a K, M or G suffix (powers of 1024); the header, 1-D tensors and other matrices are "
                  "subtracted first");
  AddSensitivityOptions(app, a->sens);
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
