// smelt inspect MODEL: what is inside a model file — architecture, hyper-parameters, tokenizer,
// every tensor's type, shape and bytes, total size and bits/weight.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <map>
#include <set>

#include "cli_util.h"
#include "formats/types.h"

namespace smelt::cli {
namespace {

struct InspectArgs {
  std::string model;
  LoadOptions load;
  bool json = false;
  bool tensors = true;
};

// Each block's query heads (its kv heads times the model's query heads per kv head).
std::vector<int> LayerHeads(const ModelConfig& c) {
  std::vector<int> heads;
  for (int l = 0; l < c.n_layers; ++l) heads.push_back(c.block(l).n_heads);
  return heads;
}

nlohmann::json ConfigJson(const ModelConfig& c) {
  nlohmann::json j = {{"architecture", c.arch},
          {"dim", c.dim},
          {"layers", c.n_layers},
          {"heads", c.n_heads},
          {"kv_heads", c.n_kv_heads},
          {"head_dim", c.head_dim},
          {"ff", c.ff},
          {"vocab", c.vocab},
          {"context", c.context},
          {"norm_eps", c.norm_eps},
          {"rope_theta", c.rope_theta},
          {"rope_dim", c.rope_dim},
          {"rope_layout", c.rope_layout == RopeLayout::kNeox ? "neox" : "normal"},
          {"rope_scaling", c.rope_scaling.type.empty() ? "none" : c.rope_scaling.type},
          {"tied_embeddings", c.tied_embeddings},
          {"qkv_bias", c.qkv_bias}};
  if (!c.layer_ff.empty()) j["layer_ff"] = c.layer_ff;  // ff is then the largest
  if (!c.layer_kv_heads.empty()) {  // heads and kv_heads: the largest
    j["layer_kv_heads"] = c.layer_kv_heads;
    j["layer_heads"] = LayerHeads(c);
  }
  return j;
}

// Types of the model's tensors that llama.cpp cannot load (TypeTraits::llama_cpp), by name.
std::vector<std::string> NonLlamaCppTypes(const Model& m) {
  std::set<std::string> names;
  for (const auto& t : m.weights.all()) {
    const TypeTraits* tr = FindTraits((uint32_t)t.type);
    if (!tr || !tr->llama_cpp) names.insert(tr ? std::string(tr->name) : std::to_string((uint32_t)t.type));
  }
  return {names.begin(), names.end()};
}

int RunInspect(const InspectArgs& a) {
  Model m = LoadModel(a.model, a.load);
  SizeInfo size = ModelSize(m);
  std::map<std::string, int64_t> params_by_type;
  for (const auto& t : m.weights.all()) params_by_type[std::string(DTypeName(t.type))] += t.nelements();
  const char* fmt_name = m.format == ModelFormat::kGguf          ? "gguf"
                         : m.format == ModelFormat::kHuggingFace ? "huggingface"
                         : m.format == ModelFormat::kLlama2c     ? "llama2c"
                                                                 : "synthetic";
  // llama.cpp reads GGUF files only, and only ggml's weight types.
  const std::vector<std::string> blocking = NonLlamaCppTypes(m);
  // llama.cpp's llama graph builds every block with one feed-forward size and head count.
  const bool uniform = m.config.uniform_blocks();
  const bool loadable = m.format == ModelFormat::kGguf && blocking.empty() && uniform;
  if (a.json) {
    nlohmann::json j;
    j["file"] = a.model;
    j["format"] = fmt_name;
    j["name"] = m.config.name;
    j["config"] = ConfigJson(m.config);
    j["parameters"] = size.parameters;
    j["size_bytes"] = size.bytes;
    j["bits_per_weight"] = size.bits_per_weight();
    j["parameters_by_type"] = params_by_type;
    j["llama_cpp_loadable"] = loadable;
    j["llama_cpp_unsupported_types"] = blocking;
    j["uniform_blocks"] = uniform;
    j["tokenizer"] = {{"model", m.vocab.model}, {"pre", m.vocab.pre},   {"size", m.vocab.size()},
                      {"bos", m.vocab.bos},     {"eos", m.vocab.eos},   {"add_bos", m.vocab.add_bos}};
    j["info"] = m.info;
    if (a.tensors) {
      j["tensors"] = nlohmann::json::array();
      for (const auto& t : m.weights.all()) {
        std::vector<int64_t> shape(t.ne.begin(), t.ne.begin() + t.n_dims);
        j["tensors"].push_back(
            {{"name", t.name}, {"type", DTypeName(t.type)}, {"shape", shape}, {"bytes", t.nbytes}});
      }
    }
    PrintJson(j);
    return 0;
  }
  const ModelConfig& c = m.config;
  fmt::print("file          {}\n", a.model);
  fmt::print("format        {}\n", fmt_name);
  if (m.format == ModelFormat::kGguf)
    fmt::print("llama.cpp     {}\n",
               loadable        ? "can load it"
               : !uniform      ? "cannot load it (block sizes differ; `smelt convert IN OUT --uniform` pads them "
                                 "with zero channels and heads)"
                               : fmt::format("cannot load it (smelt-only types: {})", fmt::join(blocking, ", ")));
  if (!c.name.empty()) fmt::print("name          {}\n", c.name);
  fmt::print("architecture  {}: dim {}, {} layers, {}, ff {}, vocab {}, context {}\n", c.arch, c.dim, c.n_layers,
             c.layer_kv_heads.empty()
                 ? fmt::format("{} heads ({} kv, head dim {})", c.n_heads, c.n_kv_heads, c.head_dim)
                 : fmt::format("heads per block [{}] ([{}] kv, head dim {})", fmt::join(LayerHeads(c), ", "),
                               fmt::join(c.layer_kv_heads, ", "), c.head_dim),
             c.layer_ff.empty() ? fmt::to_string(c.ff) : fmt::format("per block [{}]", fmt::join(c.layer_ff, ", ")),
             c.vocab, c.context);
  fmt::print("rope          {} layout, theta {}, {} dims{}\n", c.rope_layout == RopeLayout::kNeox ? "neox" : "normal",
             c.rope_theta, c.rope_dim, c.rope_scaling.type.empty() ? "" : ", scaling " + c.rope_scaling.type);
  fmt::print("norm eps      {}\n", c.norm_eps);
  fmt::print("head          {}{}\n", c.tied_embeddings ? "tied to token embeddings" : "separate output.weight",
             c.qkv_bias ? "; q/k/v biases" : "");
  fmt::print("tokenizer     {} ({}), {} tokens, bos {}, eos {}\n", m.vocab.model, m.vocab.pre.empty() ? "-" : m.vocab.pre,
             m.vocab.size(), m.vocab.bos, m.vocab.eos);
  fmt::print("parameters    {} ({:.2f} M)\n", size.parameters, size.parameters / 1e6);
  fmt::print("size          {} bytes ({:.2f} MiB), {:.3f} bits/weight\n", size.bytes, size.bytes / 1048576.0,
             size.bits_per_weight());
  std::string types;
  for (const auto& [k, v] : params_by_type) types += fmt::format("{}{} {:.1f}%", types.empty() ? "" : ", ", k,
                                                                 100.0 * v / std::max<int64_t>(size.parameters, 1));
  fmt::print("types         {}\n", types);
  for (const auto& [k, v] : m.info) fmt::print("info          {} = {}\n", k, v);
  if (a.tensors) {
    fmt::print("\n{:<36} {:<7} {:<18} {:>12}\n", "tensor", "type", "shape", "bytes");
    for (const auto& t : m.weights.all())
      fmt::print("{:<36} {:<7} {:<18} {:>12}\n", t.name, DTypeName(t.type), ShapeString(t), t.nbytes);
  }
  return 0;
}

}  // namespace

Command AddInspect(CLI::App& root) {
  auto args = std::make_shared<InspectArgs>();
  CLI::App* app = root.add_subcommand("inspect", "show architecture, tokenizer, tensors, size and bits/weight");
  app->add_option("model", args->model, "GGUF file, Hugging Face folder or llama2.c checkpoint")->required();
  AddLoadOptions(app, args->load);
  app->add_flag("--json", args->json, "print JSON");
  app->add_flag("!--no-tensors", args->tensors, "omit the per-tensor table");
  return {app, [args] { return RunInspect(*args); }};
}

}  // namespace smelt::cli
