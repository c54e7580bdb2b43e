// smelt convert IN OUT: any supported input to GGUF (OUT ends in .gguf) or a Hugging Face folder.
#include <fmt/format.h>

#include "cli_util.h"
#include "compress/structured.h"
#include "formats/types.h"
#include "io/gguf_model.h"
#include "io/hf_model.h"
#include "smelt/version.h"

namespace smelt::cli {
namespace {

struct ConvertArgs {
  std::string in, out, type, to;
  LoadOptions load;
  double shard_mb = 0;
  bool uniform = false;
  bool json = false;
};

int RunConvert(const ConvertArgs& a) {
  std::string to = a.to;
  if (to.empty()) to = a.out.size() > 5 && a.out.ends_with(".gguf") ? "gguf" : "hf";
  if (to != "gguf" && to != "hf") Fail("--to {}: expected gguf or hf", to);
  std::optional<DType> type;
  if (!a.type.empty()) {
    type = ParseDType(a.type);
    if (!type) Fail("--type {}: unknown type", a.type);
  }
  Model m = LoadModel(a.in, a.load);
  m.info["converted_from"] = a.in;
  const bool padded = a.uniform && !m.config.uniform_blocks();
  if (padded) m = PadBlocks(m);
  if (to == "gguf") {
    if (type && !Traits(*type).from_float)
      Fail("--type {}: smelt cannot write this type yet", a.type);
    GgufSaveOptions so;
    so.type = type;
    SaveGgufModel(m, a.out, so);
  } else {
    HfSaveOptions so;
    so.type = type.value_or(DType::kF32);
    if (so.type != DType::kF32 && so.type != DType::kF16 && so.type != DType::kBF16)
      Fail("--type {}: a Hugging Face folder holds f32, f16 or bf16", a.type);
    so.max_shard_bytes = (uint64_t)(a.shard_mb * 1024 * 1024);
    SaveHfModel(m, a.out, so);
  }
  if (a.json) {
    PrintJson({{"input", a.in},
               {"output", a.out},
               {"to", to},
               {"type", type ? DTypeName(*type) : "keep"},
               {"padded", padded}});
  } else {
    fmt::print("wrote {} ({}, {}{})\n", a.out, to, type ? DTypeName(*type) : std::string_view("types kept"),
               padded ? fmt::format("; every block padded to ff {} and {} kv heads", m.config.ff, m.config.n_kv_heads)
                      : "");
  }
  return 0;
}

}  // namespace

Command AddConvert(CLI::App& root) {
  auto a = std::make_shared<ConvertArgs>();
  CLI::App* app = root.add_subcommand("convert", "convert a model to GGUF or to a Hugging Face folder");
  app->add_option("input", a->in, "GGUF file, Hugging Face folder or llama2.c checkpoint")->required();
  app->add_option("output", a->out, "output: NAME.gguf, or a folder for Hugging Face")->required();
  app->add_option("--type", a->type, "weight type: f32, f16, bf16 (GGUF also q8_0, q4_0); default: keep (GGUF) or f32 (HF)");
  app->add_option("--to", a->to, "gguf or hf (default: from the output name)");
  app->add_option("--shard-mb", a->shard_mb, "Hugging Face: split safetensors into shards of at most this many MiB");
  AddLoadOptions(app, a->load);
  app->add_flag("--uniform", a->uniform,
                "pad blocks whose feed-forward size or kv head count differs (structured pruning with global or "
                "measured allocation) to the widest with zero channels and heads: the same function, loadable by "
                "llama.cpp and as a Hugging Face folder");
  app->add_flag("--json", a->json, "print JSON");
  return {app, [a] { return RunConvert(*a); }};
}

}  // namespace smelt::cli
