// smelt synth: a deterministic random Llama model written as GGUF, for speed benchmarks.
#include <fmt/format.h>

#include "cli_util.h"
#include "formats/types.h"
#include "io/gguf_model.h"
#include "model/synth.h"

namespace smelt::cli {
namespace {

struct SynthArgs {
  SynthOptions opt;
  std::string type = "f32";
  std::string out;
  bool json = false;
};

int RunSynth(const SynthArgs& a) {
  auto type = ParseDType(a.type);
  if (!type) Fail("--type {}: unknown type", a.type);
  if (!Traits(*type).from_float)
    Fail("--type {}: smelt cannot write this type yet", a.type);
  Model m = SynthesizeModel(a.opt);
  m.info["synth.type"] = std::string(DTypeName(*type));
  GgufSaveOptions so;
  so.type = *type;
  SaveGgufModel(m, a.out, so);
  SizeInfo s = ModelSize(m);
  if (a.json) {
    PrintJson({{"file", a.out}, {"name", m.config.name}, {"parameters", s.parameters}, {"type", DTypeName(*type)}});
  } else {
    fmt::print("wrote {}: {} ({:.1f} M parameters, {})\n", a.out, m.config.name, s.parameters / 1e6, DTypeName(*type));
  }
  return 0;
}

}  // namespace

Command AddSynth(CLI::App& root) {
  auto a = std::make_shared<SynthArgs>();
  CLI::App* app = root.add_subcommand(
      "synth", "write a deterministic random Llama model as GGUF (for speed benchmarks; its text is meaningless)");
  app->add_option("--dim", a->opt.dim, "embedding size")->capture_default_str();
  app->add_option("--layers", a->opt.layers, "transformer blocks")->capture_default_str();
  app->add_option("--heads", a->opt.heads, "attention heads")->capture_default_str();
  app->add_option("--kv-heads", a->opt.kv_heads, "key/value heads (0: same as --heads)")->capture_default_str();
  app->add_option("--ff", a->opt.ff, "feed-forward size (0: Llama's 8/3·dim rule)")->capture_default_str();
  app->add_option("--vocab", a->opt.vocab, "vocabulary size (>= 260)")->capture_default_str();
  app->add_option("--context", a->opt.context, "context length")->capture_default_str();
  app->add_option("--seed", a->opt.seed, "random seed")->capture_default_str();
  app->add_flag("--tied", a->opt.tied, "tie the output head to the token embeddings");
  app->add_option("--sparsity", a->opt.sparsity,
                  "fraction of each row of the block matrices zeroed, smallest magnitudes first (0: dense)")
      ->capture_default_str();
  app->add_option("--type", a->type, "weight type: f32, f16, bf16, q8_0, q4_0")->capture_default_str();
  app->add_option("-o,--output", a->out, "output GGUF file")->required();
  app->add_flag("--json", a->json, "print JSON");
  return {app, [a] { return RunSynth(*a); }};
}

}  // namespace smelt::cli
