// smelt prune MODEL -o OUT.gguf --method magnitude|wanda|sparsegpt --sparsity S [--pattern N:M] | --structured heads|channels|layers --ratio R
// [--calib FILE] [--allocation uniform|global|owl] [--rounds R] [--type T] [--text EVAL --ctx N]:
// weight pruning (compress/prune.h) to a GGUF file, with a report of the sparsity reached per
// matrix and block and, with --text, its cost in perplexity and KL-divergence to the input.
//
// Two modes share the loading, evaluation and writing: unstructured/N:M weight pruning
// (RunWeightPruning) and, with --structured heads|channels|layers --ratio R, the removal of whole
// units into a smaller model (compress/structured.h, RunStructuredPruning).
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>

#include "cli_util.h"
#include "compress/prune.h"
#include "compress/structured.h"
#include "core/mapped_file.h"
#include "eval/kld.h"
#include "formats/types.h"
#include "io/gguf_model.h"
#include "train/data.h"
#include "train/distill.h"
#include "train/recover.h"

namespace smelt::cli {
namespace {

struct PruneArgs {
  std::string model, out, method, pattern, allocation = "uniform", type, text;
  std::optional<double> sparsity;
  std::string structured, layer_score = "cosine";  // structured mode: heads|channels|layers
  std::optional<double> ratio;
  int multiple_of = 1;  // --structured channels: kept channels a multiple of this
  SensitivityArgs calib;  // --calib, --calib-samples, --calib-tokens
  int rounds = 1;
  // Recovery between rounds: distillation from the unpruned model on --recover-data.
  int64_t recover_steps = 0, recover_batch = 8, recover_seq = 128;
  float recover_lr = 1e-3f, recover_alpha = 0.0f;
  std::string recover_data;
  float damp = 0.01f;
  int block = 128;
  double owl_m = 5.0, owl_lambda = 0.08;
  bool prune_head = false, prune_embeddings = false;
  int ctx = 128, chunks = 0;
  LoadOptions load;
  int threads = 1;
  bool json = false;
};

// What any pruning mode measures on the result: KL-divergence to the input and both
// perplexities on --text (absent without it).
std::optional<KldResult> Quality(const PruneArgs& a, const Model& base, const Model& pruned, const std::string& text) {
  if (a.text.empty()) return std::nullopt;
  KldOptions ko;
  ko.ppl.ctx = a.ctx;
  ko.ppl.max_chunks = a.chunks;
  ko.ppl.threads = a.threads;
  ko.ppl.progress = Progress("kld");
  return KlDivergence(pruned, &base, text, ko);
}

nlohmann::json QualityJson(const KldResult& k) {
  return {{"positions", k.n},          {"ppl_base", k.ppl_base}, {"ppl", k.ppl_model},
          {"kld_mean", k.kld_mean},    {"kld_stderr", k.kld_stderr}, {"kld_p99", k.kld_p99},
          {"same_top", k.same_top}};
}

void PrintQuality(const KldResult& k, const PruneArgs& a) {
  fmt::print("quality on {} ({} positions, ctx {}): ppl {:.4f} -> {:.4f}, KLD mean {:.6f} ± {:.6f}, same top {:.2f} %\n",
             a.text, k.n, a.ctx, k.ppl_base, k.ppl_model, k.kld_mean, k.kld_stderr, 100 * k.same_top);
}

// The recovery options' own checks (weight and structured pruning alike).
void CheckRecoveryArgs(const PruneArgs& a) {
  if (a.recover_steps < 0 || a.recover_batch < 1 || a.recover_seq < 1)
    Fail("--recover-steps {} must not be negative, --recover-batch {} and --recover-seq {} positive", a.recover_steps,
         a.recover_batch, a.recover_seq);
  if ((a.recover_steps > 0) != !a.recover_data.empty())
    Fail("--recover-steps and --recover-data go together (steps of distillation from the unpruned model on that text)");
  if (!(a.recover_alpha >= 0.0f && a.recover_alpha <= 1.0f)) Fail("--recover-alpha {}: must be in [0, 1]", a.recover_alpha);
}

// The checked options of weight pruning (before the model is loaded, so bad flags cost nothing).
PruneOptions WeightPruneOptions(const PruneArgs& a) {
  PruneOptions o;
  if (a.method.empty()) Fail("give --method magnitude, wanda or sparsegpt");
  const std::optional<PruneMethod> method = ParsePruneMethod(a.method);
  if (!method) Fail("--method {}: unknown method (magnitude, wanda, sparsegpt)", a.method);
  o.method = *method;
  const std::optional<PruneAllocation> alloc = ParsePruneAllocation(a.allocation);
  if (!alloc) Fail("--allocation {}: unknown allocation (uniform, global, owl)", a.allocation);
  o.allocation = *alloc;
  if (!a.pattern.empty()) {
    const std::optional<NmPattern> p = ParseNmPattern(a.pattern);
    if (!p) Fail("--pattern {}: expected N:M with 0 < N < M, e.g. 2:4 or 4:8", a.pattern);
    o.pattern = *p;
    if (a.sparsity && std::abs(*a.sparsity - p->sparsity()) > 1e-9)
      Fail("--sparsity {} does not match --pattern {} (which prunes {})", *a.sparsity, a.pattern, p->sparsity());
    if (o.allocation != PruneAllocation::kUniform) Fail("--allocation {}: an N:M pattern needs uniform", a.allocation);
    if (a.rounds != 1) Fail("--rounds {}: gradual pruning is for unstructured sparsity, not --pattern", a.rounds);
  } else {
    if (!a.sparsity) Fail("give --sparsity S (a fraction in [0, 1)) or --pattern N:M");
    if (!(*a.sparsity >= 0.0 && *a.sparsity < 1.0)) Fail("--sparsity {}: must be in [0, 1)", *a.sparsity);
    o.sparsity = *a.sparsity;
  }
  if (a.rounds < 1) Fail("--rounds {}: must be at least 1", a.rounds);
  o.rounds = a.rounds;
  CheckRecoveryArgs(a);
  if (a.recover_steps > 0 && a.rounds < 2)
    Fail("--recover-steps {}: recovery runs between gradual rounds (or after --structured removal); give --rounds 2 "
         "or more",
         a.recover_steps);
  const bool needs_calib = o.method != PruneMethod::kMagnitude || o.allocation == PruneAllocation::kOwl;
  if (needs_calib && a.calib.calib.empty())
    Fail("--method {}{} needs calibration text (--calib FILE)", a.method,
         o.allocation == PruneAllocation::kOwl ? " --allocation owl" : "");
  if (!needs_calib && !a.calib.calib.empty()) Fail("--calib: magnitude pruning with {} allocation uses no calibration data", a.allocation);
  if (!a.type.empty()) {
    o.type = ParseDType(a.type);
    if (!o.type) Fail("--type {}: unknown type", a.type);
  }
  if (a.block < 1) Fail("--block {}: must be at least 1", a.block);
  o.sparsegpt.damp = a.damp;
  o.sparsegpt.block = a.block;
  o.owl.m = a.owl_m;
  o.owl.lambda = a.owl_lambda;
  if (!(a.owl_m > 0) || !(a.owl_lambda >= 0)) Fail("--owl-m must be > 0 and --owl-lambda >= 0");
  o.prune_head = a.prune_head;
  o.prune_embeddings = a.prune_embeddings;
  o.threads = a.threads;
  return o;
}

std::string Recipe(const PruneArgs& a, const PruneOptions& o, int64_t calib_tokens) {
  std::string r = fmt::format("method={} ", a.method);
  r += o.pattern.structured() ? fmt::format("pattern={}:{}", o.pattern.n, o.pattern.m)
                              : fmt::format("sparsity={} allocation={} rounds={}", o.sparsity, a.allocation, o.rounds);
  if (o.allocation == PruneAllocation::kOwl) r += fmt::format(" owl_m={} owl_lambda={}", o.owl.m, o.owl.lambda);
  if (o.method == PruneMethod::kSparseGpt) r += fmt::format(" damp={} block={}", o.sparsegpt.damp, o.sparsegpt.block);
  if (o.type) r += fmt::format(" type={}", DTypeName(*o.type));
  if (o.prune_head) r += " prune_head=1";
  if (o.prune_embeddings) r += " prune_embeddings=1";
  if (!a.calib.calib.empty())
    r += fmt::format(" calib={} samples={} tokens={} calib_tokens_run={}", a.calib.calib, a.calib.calib_opt.samples,
                     a.calib.calib_opt.tokens, calib_tokens);
  return r;
}

void PrintReport(const PruneArgs& a, const PruneSummary& s, const std::optional<KldResult>& q, const Model& out) {
  const int64_t all = ModelSize(out).parameters;
  if (a.json) {
    nlohmann::json mats = nlohmann::json::array();
    std::map<int, std::pair<int64_t, int64_t>> layers;  // block -> (zeros, parameters)
    for (const MatrixPruneInfo& m : s.matrices) {
      nlohmann::json j = {{"name", m.name},       {"layer", m.layer},         {"parameters", m.parameters},
                          {"zeros", m.zeros},     {"sparsity", m.sparsity()}, {"target", m.target},
                          {"from", DTypeName(m.from)}, {"to", DTypeName(m.to)}, {"joint", m.joint}};
      if (a.method == "sparsegpt") j["proxy_loss"] = m.proxy_loss;
      mats.push_back(j);
      layers[m.layer].first += m.zeros;
      layers[m.layer].second += m.parameters;
    }
    nlohmann::json lj = nlohmann::json::array();
    for (const auto& [layer, zp] : layers)
      lj.push_back({{"layer", layer}, {"sparsity", (double)zp.first / (double)zp.second}, {"parameters", zp.second}});
    nlohmann::json j = {{"input", a.model},
                        {"output", a.out},
                        {"seconds", s.seconds},
                        {"matrices", mats},
                        {"layers", lj},
                        {"round_sparsity", s.round_sparsity},
                        {"pruned_parameters", s.parameters()},
                        {"zeros", s.zeros()},
                        {"sparsity", s.parameters() ? (double)s.zeros() / (double)s.parameters() : 0.0},
                        {"model_sparsity", all ? (double)s.zeros() / (double)all : 0.0}};
    if (!s.owl_outlier_ratio.empty()) j["owl_outlier_ratio"] = s.owl_outlier_ratio;
    if (q) j["quality"] = QualityJson(*q);
    PrintJson(j);
    return;
  }
  std::map<int, std::pair<int64_t, int64_t>> layers;
  for (const MatrixPruneInfo& m : s.matrices) {
    fmt::print("{:<28} {:>6} -> {:<6} sparsity {:6.2f} % (target {:6.2f} %){}\n", m.name, DTypeName(m.from),
               DTypeName(m.to), 100 * m.sparsity(), 100 * m.target, m.joint ? "  joint quantization" : "");
    layers[m.layer].first += m.zeros;
    layers[m.layer].second += m.parameters;
  }
  for (const auto& [layer, zp] : layers)
    fmt::print("{:<10} sparsity {:6.2f} % of {} weights\n", layer < 0 ? std::string("head/embd") : fmt::format("block {}", layer),
               100.0 * (double)zp.first / (double)zp.second, zp.second);
  fmt::print("pruned matrices: {} of {} weights zero ({:.2f} %), {:.2f} % of all {} parameters; {:.2f} s\n", s.zeros(),
             s.parameters(), s.parameters() ? 100.0 * (double)s.zeros() / (double)s.parameters() : 0.0,
             all ? 100.0 * (double)s.zeros() / (double)all : 0.0, all, s.seconds);
  if (q) PrintQuality(*q, a);
  fmt::print("wrote {}\n", a.out);
}

// Recovery training: the pruned model distilled from the unpruned one (soft labels, plus α of the
// text's own next tokens) on --recover-data for --recover-steps, keeping the zeros of `masked`.
struct Recovery {
  std::optional<train::Dataset> data;
  std::shared_ptr<train::Distiller> teacher;
};

Recovery MakeRecovery(const PruneArgs& a, const Model& unpruned) {
  Recovery r;
  if (a.recover_steps <= 0) return r;
  train::DataOptions d;
  d.seq = a.recover_seq;
  d.val_frac = 0.0;
  r.data = train::Dataset::FromFile(unpruned.vocab, a.recover_data, d);
  train::DistillOptions dopt;
  dopt.alpha = a.recover_alpha;
  std::vector<train::TrainModel> teachers;
  teachers.push_back(train::TrainModel::FromModel(unpruned));
  r.teacher = std::make_shared<train::Distiller>(std::move(teachers), dopt);
  return r;
}

Model Recover(const PruneArgs& a, const Recovery& r, const Model& pruned, std::span<const std::string> masked,
              const train::MaskOffsets& also_masked = {}) {
  train::TrainOptions t;
  t.steps = a.recover_steps;
  t.batch = a.recover_batch;
  t.lr = a.recover_lr;
  t.warmup = 0;
  t.threads = a.threads;
  return train::RecoverPruned(pruned, *r.data, t, train::DistillObjective(r.teacher), masked, also_masked).model;
}

std::string RecoveryRecipe(const PruneArgs& a) {
  return fmt::format(" recover_steps={} recover_data={} recover_lr={} recover_alpha={}", a.recover_steps,
                     a.recover_data, a.recover_lr, a.recover_alpha);
}

int RunWeightPruning(const PruneArgs& a) {
  PruneOptions o = WeightPruneOptions(a);
  const std::string text = a.text.empty() ? std::string() : ReadFileToString(a.text);
  const Model m = LoadModel(a.model, a.load);
  Calibration cal;
  if (!a.calib.calib.empty()) {
    cal = Calibrate(m, a.calib, CalibNeed::kSamples, a.threads);
    o.samples = &cal.samples;
  }
  const std::vector<std::string> targets = PruneTargets(m, o);  // every check before the work
  o.progress = Progress("prune");
  // Recovery after every round but the last, the pruned weights kept at zero.
  const Recovery recovery = MakeRecovery(a, m);
  int64_t recovered = 0;
  if (recovery.data) {
    o.recovery = [&](int, Model& pruned) {
      pruned = Recover(a, recovery, pruned, targets);
      recovered += a.recover_steps;
    };
  }
  PruneSummary summary;
  Model out = PruneModel(m, o, &summary);
  out.info = m.info;
  out.info["prune.recipe"] = Recipe(a, o, cal.tokens) + (recovered ? RecoveryRecipe(a) : std::string());
  out.info["prune.source"] = a.model;
  const std::optional<KldResult> q = Quality(a, m, out, text);  // before writing: a failure leaves no file
  SaveGgufModel(out, a.out, GgufSaveOptions{});
  PrintReport(a, summary, q, out);
  return 0;
}

// The checked options of structured pruning (before the model is loaded).
StructuredOptions StructuredPruneOptions(const PruneArgs& a) {
  StructuredOptions o;
  o.target = ParseStructuredTarget(a.structured, "--structured");
  CheckRecoveryArgs(a);
  if (!a.method.empty() || a.sparsity || !a.pattern.empty() || !a.type.empty() || a.rounds != 1)
    Fail("--structured {} removes whole units: --method, --sparsity, --pattern, --type and --rounds belong to weight "
         "pruning",
         a.structured);
  if (!a.ratio) Fail("--structured {}: give --ratio R, the fraction of its units removed, in [0, 1)", a.structured);
  if (!(*a.ratio >= 0.0 && *a.ratio < 1.0)) Fail("--ratio {}: must be in [0, 1)", *a.ratio);
  o.ratio = *a.ratio;
  if (a.multiple_of < 1) Fail("--multiple-of {}: must be at least 1", a.multiple_of);
  if (a.multiple_of != 1 && o.target != StructuredTarget::kChannels)
    Fail("--multiple-of {}: rounds the kept feed-forward channels; it belongs to --structured channels", a.multiple_of);
  o.multiple_of = a.multiple_of;
  if (a.allocation == "global" || a.allocation == "measured") {
    if (o.target == StructuredTarget::kLayers)
      Fail("--allocation {}: allocates heads or channels across blocks; --structured layers chooses whole blocks",
           a.allocation);
    o.allocation = a.allocation == "global" ? UnitAllocation::kGlobal : UnitAllocation::kMeasured;
    if (o.allocation == UnitAllocation::kMeasured) o.progress = Progress("measure");
  } else if (a.allocation != "uniform") {
    Fail("--allocation {}: --structured takes uniform (the same count from every block), global or measured "
         "(heads, channels)",
         a.allocation);
  }
  if (a.layer_score == "cosine") {
    o.layer_score = LayerScore::kCosine;
  } else if (a.layer_score == "kld") {
    o.layer_score = LayerScore::kKld;
  } else {
    Fail("--layer-score {}: unknown score (cosine, kld)", a.layer_score);
  }
  if (a.calib.calib.empty())
    Fail("--structured {} scores its units on calibration text: give --calib FILE", a.structured);
  o.threads = a.threads;
  return o;
}

// `seconds`: the whole removal; `recover_seconds`: the recovery's part of it (when it ran).
void PrintStructuredReport(const PruneArgs& a, const StructuredReport& r, const std::optional<KldResult>& q,
                           const Model& in, const Model& out, double seconds, double recover_seconds) {
  const char* what = StructuredTargetName(r.target);
  const double removed = 1.0 - (double)r.params_after / (double)r.params_before;
  if (a.json) {
    nlohmann::json layers = nlohmann::json::array();
    for (size_t l = 0; l < r.removed.size(); ++l) {
      layers.push_back({{"scores", r.scores[l]}, {"removed", r.removed[l]}});
      if (l < r.measured.size()) layers.back()["measured_kld"] = r.measured[l];  // [units removed alone, KLD]
    }
    nlohmann::json j = {{"input", a.model},
                        {"output", a.out},
                        {"structure", what},
                        {"ratio", *a.ratio},
                        {"allocation", a.allocation},
                        {"units_per_layer", r.units_per_layer},
                        {"removed_per_layer", r.removed_per_layer},
                        {"layers", layers},
                        {"parameters_before", r.params_before},
                        {"parameters_after", r.params_after},
                        {"parameters_removed", removed},
                        {"config", {{"layers", out.config.n_layers}, {"heads", out.config.n_heads},
                                    {"kv_heads", out.config.n_kv_heads}, {"ff", out.config.ff}}},
                        {"seconds", seconds}};
    if (!out.config.layer_ff.empty()) j["config"]["layer_ff"] = out.config.layer_ff;
    if (!out.config.layer_kv_heads.empty()) j["config"]["layer_kv_heads"] = out.config.layer_kv_heads;
    if (q) j["quality"] = QualityJson(*q);
    if (a.recover_steps > 0)
      j["recovery"] = {{"steps", a.recover_steps}, {"data", a.recover_data}, {"seconds", recover_seconds}};
    PrintJson(j);
    return;
  }
  if (r.target == StructuredTarget::kLayers) {
    std::string scores;
    for (double s : r.scores[0]) scores += fmt::format(" {:.4g}", s);
    fmt::print("block scores ({}):{}\n", a.layer_score == "kld" ? "KLD when skipped" : "1 - cos(input, output)", scores);
    std::string gone;
    for (int l : r.removed[0]) gone += fmt::format(" {}", l);
    fmt::print("removed blocks:{}\n", gone.empty() ? " none" : gone);
  } else {
    for (size_t l = 0; l < r.removed.size(); ++l) {
      std::string gone;
      for (int u : r.removed[l]) gone += fmt::format(" {}", u);
      if (gone.size() > 96) gone = gone.substr(0, 93) + " ...";
      const int units = r.target == StructuredTarget::kHeads ? in.config.block((int)l).n_kv_heads : in.config.ff_of((int)l);
      fmt::print("block {:<3} removed {} of {} {}:{}\n", l, r.removed[l].size(), units,
                 r.target == StructuredTarget::kHeads ? "kv groups" : "channels", gone.empty() ? " none" : gone);
    }
  }
  auto ff = [](const ModelConfig& c) {
    return c.layer_ff.empty() ? fmt::to_string(c.ff) : fmt::format("[{}]", fmt::join(c.layer_ff, ", "));
  };
  auto kv = [](const ModelConfig& c) {
    return c.layer_kv_heads.empty() ? fmt::to_string(c.n_kv_heads)
                                    : fmt::format("[{}]", fmt::join(c.layer_kv_heads, ", "));
  };
  fmt::print("config: layers {} -> {}, heads {}/{} -> {}/{} (kv), ff {} -> {}\n", in.config.n_layers, out.config.n_layers,
             in.config.n_heads, kv(in.config), out.config.n_heads, kv(out.config), ff(in.config), ff(out.config));
  fmt::print("parameters: {} -> {} ({:.2f} % removed); {:.2f} s\n", r.params_before, r.params_after, 100 * removed, seconds);
  if (a.recover_steps > 0)
    fmt::print("recovery: {} steps of distillation from the input model on {}; {:.2f} s of the above\n",
               a.recover_steps, a.recover_data, recover_seconds);
  auto all_multiples = [](const ModelConfig& c) {
    for (int l = 0; l < c.n_layers; ++l)
      if (c.ff_of(l) % 32 != 0) return false;
    return true;
  };
  if (all_multiples(in.config) && !all_multiples(out.config))
    fmt::print(stderr,
               "note: ff {} is not a multiple of 32 (it was): ffn_down will not quantize to q4_0/q8_0/k-quants and "
               "falls back to another type; --multiple-of 32 (or 256) keeps it quantizable\n",
               ff(out.config));
  if (q) PrintQuality(*q, a);
  fmt::print("wrote {}\n", a.out);
}

int RunStructuredPruning(const PruneArgs& a) {
  const StructuredOptions o = StructuredPruneOptions(a);
  const std::string text = a.text.empty() ? std::string() : ReadFileToString(a.text);
  const Model m = LoadModel(a.model, a.load);
  const Calibration cal = Calibrate(m, a.calib, CalibNeed::kSamples, a.threads);
  const auto t0 = std::chrono::steady_clock::now();
  StructuredReport r;
  Model out = PruneStructured(m, cal.samples, o, &r);
  // Recovery: the smaller model distilled from the input model; every weight it kept may move. A
  // model whose blocks differ trains padded to one size (the trainer's), its padding held at zero
  // and trimmed off again.
  double recover_seconds = 0;
  if (const Recovery recovery = MakeRecovery(a, m); recovery.data) {
    const auto r0 = std::chrono::steady_clock::now();
    const std::vector<PaddedRegion> padding = PaddedRegions(out);
    const train::MaskOffsets padded_zeros = [&padding](const train::TrainModel& tm) {
      std::vector<size_t> offsets;
      for (const PaddedRegion& p : padding) {
        const train::ParamSlice& s = tm.Slice(p.name);
        for (int64_t r = p.row0; r < p.row1; ++r)
          for (int64_t c = p.col0; c < p.col1; ++c) offsets.push_back(s.offset + (size_t)(r * s.ne[0] + c));
      }
      return offsets;
    };
    out = padding.empty() ? Recover(a, recovery, out, {})
                          : TrimBlocks(Recover(a, recovery, PadBlocks(out), {}, padded_zeros), out.config);
    recover_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - r0).count();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out.info = m.info;
  out.info["prune.recipe"] =
      fmt::format("structured={} ratio={} allocation={} multiple_of={} layer_score={} calib={} samples={} tokens={}",
                  a.structured, o.ratio, a.allocation, o.multiple_of, a.layer_score, a.calib.calib, a.calib.calib_opt.samples, a.calib.calib_opt.tokens) +
      (a.recover_steps > 0 ? RecoveryRecipe(a) : std::string());
  out.info["prune.source"] = a.model;
  const std::optional<KldResult> q = Quality(a, m, out, text);  // before writing: a failure leaves no file
  SaveGgufModel(out, a.out, GgufSaveOptions{});
  PrintStructuredReport(a, r, q, m, out, seconds, recover_seconds);
  return 0;
}

int RunPrune(const PruneArgs& a) {
  if (!a.out.ends_with(".gguf")) Fail("-o {}: the output must be a .gguf file", a.out);
  if (a.ctx < 8) Fail("--ctx {}: must be at least 8", a.ctx);
  if (!a.structured.empty()) return RunStructuredPruning(a);
  if (a.ratio) Fail("--ratio {}: belongs to --structured; weight pruning takes --sparsity", *a.ratio);
  return RunWeightPruning(a);
}

}  // namespace

Command AddPrune(CLI::App& root) {
  auto a = std::make_shared<PruneArgs>();
  CLI::App* app = root.add_subcommand("prune", "prune a model's weights (unstructured or N:M) or whole heads, channels or layers "
                                                "(--structured) to a GGUF file");
  app->add_option("model", a->model, "GGUF file, Hugging Face folder or llama2.c checkpoint")->required();
  app->add_option("-o,--output", a->out, "output GGUF file")->required();
  app->add_option("--method", a->method,
                  "magnitude: smallest |W| per matrix; wanda: smallest |W|·‖X‖ per output row (needs --calib); "
                  "sparsegpt: OBS reconstruction with the inverse Hessian, column blocks of --block (needs --calib)");
  app->add_option("--sparsity", a->sparsity, "fraction of each pruned matrix's weights set to zero, in [0, 1)");
  app->add_option("--pattern", a->pattern, "N:M semi-structured sparsity (2:4, 4:8): at most N non-zeros in every M "
                                           "consecutive weights of a row");
  app->add_option("--allocation", a->allocation,
                  "per-matrix sparsity: uniform; global (global magnitude across all pruned matrices); owl (outlier-"
                  "weighted per block, within ±--owl-lambda of the target, needs --calib). --structured channels: "
                  "uniform (the same count from every block), global (the lowest-scored channels of the whole "
                  "model) or measured (per-block counts from the calibration KLD of pruning each block alone); "
                  "the same for --structured heads (KV groups); with global and measured each block keeps its own "
                  "size")
      ->capture_default_str();
  app->add_option("--rounds", a->rounds,
                  "gradual pruning: R rounds on a cubic schedule to the target, calibration statistics re-collected "
                  "each round")
      ->capture_default_str();
  app->add_option("--recover-steps", a->recover_steps,
                  "between gradual rounds: steps of distillation from the unpruned model (pruned weights stay zero); "
                  "with --structured (uniform allocation): after the removal, every kept weight trained")
      ->capture_default_str();
  app->add_option("--recover-data", a->recover_data, "text the recovery steps train on");
  app->add_option("--recover-lr", a->recover_lr, "recovery learning rate")->capture_default_str();
  app->add_option("--recover-batch", a->recover_batch, "recovery sequences per step")->capture_default_str();
  app->add_option("--recover-seq", a->recover_seq, "recovery tokens per sequence")->capture_default_str();
  app->add_option("--recover-alpha", a->recover_alpha,
                  "weight of the text's own next tokens (cross-entropy) beside the soft labels")
      ->capture_default_str();
  app->add_option("--type", a->type,
                  "type of the pruned matrices (default: keep f32/f16/bf16; other input types are written as f32): a "
                  "type with an exact zero such as q8_0 or q4_0; with sparsegpt a type with code access is quantized in "
                  "the same sweep (joint)");
  app->add_option("--calib", a->calib.calib, "calibration text (wanda, sparsegpt, owl)");
  AddCalibOptions(app, a->calib);
  app->add_option("--damp", a->damp, "sparsegpt: dampening, a fraction of mean(diag(H))")->capture_default_str();
  app->add_option("--block", a->block, "sparsegpt: columns per mask-selection block")->capture_default_str();
  app->add_option("--owl-m", a->owl_m, "owl: a score above M times its block's mean is an outlier")->capture_default_str();
  app->add_option("--owl-lambda", a->owl_lambda, "owl: largest deviation of a block's sparsity from the target")
      ->capture_default_str();
  app->add_flag("--prune-head", a->prune_head, "also prune the output head");
  app->add_flag("--prune-embeddings", a->prune_embeddings, "also prune the token embedding (by magnitude)");
  app->add_option("--structured", a->structured,
                  "remove whole units instead of weights: heads (KV groups), channels (SwiGLU neurons) or layers "
                  "(blocks), the least important by their measured contribution (needs --calib); a smaller model");
  app->add_option("--ratio", a->ratio,
                  "--structured: fraction of the units removed (per block under uniform allocation; of the whole "
                  "model's under global and measured)");
  app->add_option("--multiple-of", a->multiple_of,
                  "--structured channels: keep a multiple of N channels (32: q4_0/q8_0 blocks, 256: k-quants), the "
                  "nearest to what --ratio keeps");
  app->add_option("--layer-score", a->layer_score,
                  "--structured layers: cosine (1 - cos of a block's input and output) or kld (KL-divergence when "
                  "only that block is skipped)")
      ->capture_default_str();
  app->add_option("--text", a->text, "evaluation text: report perplexity and KL-divergence to the input model");
  app->add_option("--ctx", a->ctx, "--text: window length in tokens")->capture_default_str();
  app->add_option("--chunks", a->chunks, "--text: evaluate at most this many windows (0: all)")->capture_default_str();
  AddThreads(app, a->threads);
  AddLoadOptions(app, a->load);
  app->add_flag("--json", a->json, "print JSON");
  return {app, [a] { return RunPrune(*a); }};
}

}  // namespace smelt::cli
