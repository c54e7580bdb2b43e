#include "io/hf_model.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "core/half.h"
#include "core/mapped_file.h"
#include "formats/types.h"
#include "io/gguf_model.h"
#include "io/hf_tokenizer.h"
#include "io/json_util.h"
#include "io/safetensors.h"

namespace smelt {
namespace fs = std::filesystem;
using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

namespace {

// ---- names ------------------------------------------------------------------------------------

struct NamePair {
  const char* hf;
  const char* gguf;
};

// Per-layer names: "model.layers.N." + hf  <->  "blk.N." + gguf.
constexpr NamePair kBlockNames[] = {
    {"input_layernorm.weight", "attn_norm.weight"},
    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.q_proj.bias", "attn_q.bias"},
    {"self_attn.k_proj.bias", "attn_k.bias"},
    {"self_attn.v_proj.bias", "attn_v.bias"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
};
constexpr NamePair kGlobalNames[] = {
    {"model.embed_tokens.weight", "token_embd.weight"},
    {"model.norm.weight", "output_norm.weight"},
    {"lm_head.weight", "output.weight"},
};

// Parses "<prefix>N.<rest>" -> (N, rest); N must be a plain decimal below 1e6.
bool SplitLayerName(const std::string& name, std::string_view prefix, int* layer, std::string* rest) {
  if (name.compare(0, prefix.size(), prefix) != 0) return false;
  size_t i = prefix.size(), start = i;
  int n = 0;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9' && i - start < 6) n = n * 10 + (name[i++] - '0');
  if (i == start || i >= name.size() || name[i] != '.' || (name[start] == '0' && i - start > 1)) return false;
  *layer = n;
  *rest = name.substr(i + 1);
  return true;
}

bool SameShape(const Tensor& t, const std::vector<int64_t>& ne) {
  if (t.n_dims != (int)ne.size()) return false;
  for (size_t i = 0; i < ne.size(); ++i) {
    if (t.ne[i] != ne[i]) return false;
  }
  return true;
}

std::string NeString(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += fmt::format("{}{}", i ? ", " : "", ne[i]);
  return s + "]";
}

bool EndsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Which Q/K tensors are permuted, and by how many heads (0: not a Q/K tensor).
int QkHeads(const std::string& name, const ModelConfig& c) {
  auto ends = [&](const char* s) { return EndsWith(name, s); };
  if (ends(".attn_q.weight") || ends(".attn_q.bias")) return c.n_heads;
  if (ends(".attn_k.weight") || ends(".attn_k.bias")) return c.n_kv_heads;
  return 0;
}

// ---- config.json ------------------------------------------------------------------------------

struct HfArch {
  const char* hf;
  const char* model_type;
  const char* arch;  // smelt/GGUF architecture
  bool permute_qk;   // HF rotate_half rows -> llama.cpp interleaved rows
};
constexpr HfArch kArchs[] = {
    {"LlamaForCausalLM", "llama", "llama", true},
    {"MistralForCausalLM", "mistral", "llama", true},
    {"Qwen2ForCausalLM", "qwen2", "qwen2", false},
};

int GetInt(const json& j, const char* key, const std::string& source, std::optional<int> def = std::nullopt) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (def) return *def;
    Fail("{}: missing \"{}\"", source, key);
  }
  if (!it->is_number_integer() || it->get<int64_t>() < INT32_MIN || it->get<int64_t>() > INT32_MAX)
    Fail("{}: \"{}\" must be an integer", source, key);
  return (int)it->get<int64_t>();
}

double GetNumber(const json& j, const char* key, const std::string& source, double def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_number()) Fail("{}: \"{}\" must be a number", source, key);
  return it->get<double>();
}

bool GetBool(const json& j, const char* key, const std::string& source, bool def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_boolean()) Fail("{}: \"{}\" must be true or false", source, key);
  return it->get<bool>();
}

// A token id from config.json / generation_config.json (an int, or a list: its first element).
std::optional<int32_t> GetTokenId(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return std::nullopt;
  const json* v = &*it;
  if (v->is_array() && !v->empty()) v = &(*v)[0];
  if (!v->is_number_integer() || v->get<int64_t>() < 0 || v->get<int64_t>() > INT32_MAX) return std::nullopt;
  return (int32_t)v->get<int64_t>();
}

const HfArch& FindArch(const json& j, const std::string& source) {
  std::string name;
  auto archs = j.find("architectures");
  if (archs != j.end() && archs->is_array() && !archs->empty() && (*archs)[0].is_string()) {
    name = (*archs)[0].get<std::string>();
    for (const HfArch& a : kArchs) {
      if (name == a.hf) return a;
    }
  } else if (auto mt = j.find("model_type"); mt != j.end() && mt->is_string()) {
    name = "model_type " + mt->get<std::string>();
    for (const HfArch& a : kArchs) {
      if (mt->get<std::string>() == a.model_type) return a;
    }
  } else {
    Fail("{}: no \"architectures\" or \"model_type\"", source);
  }
  Fail("{}: architecture {} not supported (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)", source,
       Printable(name));
}

// Shortest decimal that reads back as the same float, as a double (1e-5f -> 1e-05, not
// 9.999999747378752e-06).
double FloatForJson(float f) { return std::stod(fmt::format("{}", f)); }

ModelConfig ParseHfConfigJson(const json& j, const std::string& source, std::map<std::string, std::string>* info) {
  if (!j.is_object()) Fail("{}: not a JSON object", source);
  const HfArch& arch = FindArch(j, source);
  ModelConfig c;
  c.arch = arch.arch;
  c.rope_layout = arch.permute_qk ? RopeLayout::kNormal : RopeLayout::kNeox;
  c.qkv_bias = c.arch == "qwen2";
  if (auto it = j.find("_name_or_path"); it != j.end() && it->is_string()) c.name = it->get<std::string>();
  c.dim = GetInt(j, "hidden_size", source);
  c.n_layers = GetInt(j, "num_hidden_layers", source);
  c.n_heads = GetInt(j, "num_attention_heads", source);
  c.n_kv_heads = GetInt(j, "num_key_value_heads", source, c.n_heads);
  c.head_dim = GetInt(j, "head_dim", source, c.n_heads > 0 ? c.dim / c.n_heads : 0);
  c.rope_dim = c.head_dim;
  c.ff = GetInt(j, "intermediate_size", source);
  c.vocab = GetInt(j, "vocab_size", source);
  c.context = GetInt(j, "max_position_embeddings", source, 2048);
  c.norm_eps = (float)GetNumber(j, "rms_norm_eps", source, 1e-6);
  c.rope_theta = (float)GetNumber(j, "rope_theta", source, 10000.0);
  c.tied_embeddings = GetBool(j, "tie_word_embeddings", source, false);
  if (auto act = j.find("hidden_act"); act != j.end() && !(act->is_string() && act->get<std::string>() == "silu"))
    Fail("{}: hidden_act {} not supported (silu only)", source, Printable(act->dump()));
  if (c.arch == "llama" && GetBool(j, "attention_bias", source, false))
    Fail("{}: attention_bias = true not supported for {}", source, arch.hf);
  if (GetBool(j, "mlp_bias", source, false)) Fail("{}: mlp_bias = true not supported", source);
  if (GetNumber(j, "partial_rotary_factor", source, 1.0) != 1.0)
    Fail("{}: partial_rotary_factor not supported", source);

  auto rs = j.find("rope_scaling");
  if (rs != j.end() && !rs->is_null()) {
    if (!rs->is_object()) Fail("{}: rope_scaling must be an object", source);
    std::string type;
    for (const char* k : {"rope_type", "type"}) {
      if (auto t = rs->find(k); t != rs->end() && t->is_string()) {
        type = t->get<std::string>();
        break;
      }
    }
    const std::string where = source + ": rope_scaling";
    if (type == "llama3") {
      c.rope_scaling.type = type;
      c.rope_scaling.factor = (float)GetNumber(*rs, "factor", where, 8.0);
      c.rope_scaling.low_freq_factor = (float)GetNumber(*rs, "low_freq_factor", where, 1.0);
      c.rope_scaling.high_freq_factor = (float)GetNumber(*rs, "high_freq_factor", where, 4.0);
      c.rope_scaling.original_context = GetInt(*rs, "original_max_position_embeddings", where, 8192);
    } else if (type == "linear") {
      c.rope_scaling.type = type;
      c.rope_scaling.factor = (float)GetNumber(*rs, "factor", where, 1.0);
    } else if (type != "default" && !type.empty()) {
      Fail("{}: rope_scaling type {} not supported (llama3, linear)", source, Printable(type));
    }
    if (!(c.rope_scaling.factor > 0.0f)) Fail("{}: rope_scaling factor must be positive", source);
  }
  if (info) {
    if (auto dt = j.find("torch_dtype"); dt != j.end() && dt->is_string()) (*info)["hf.torch_dtype"] = dt->get<std::string>();
    // Mistral's sliding-window attention (4096): llama.cpp ignores it, which is exact for
    // contexts up to the window; smelt does the same and records it.
    if (auto sw = j.find("sliding_window"); sw != j.end() && sw->is_number_integer())
      (*info)["hf.sliding_window"] = std::to_string(sw->get<int64_t>());
    (*info)["hf.architecture"] = arch.hf;
  }
  ValidateConfig(c, source);
  return c;
}

// ---- the output folder ------------------------------------------------------------------------

// A sibling temporary folder, removed unless Commit() moved it onto the target.
class StagingDir {
 public:
  explicit StagingDir(const std::string& dir) {
    fs::path p = fs::path(dir).lexically_normal();
    if (p.filename().empty()) p = p.parent_path();  // "out/" -> "out"
    target_ = p;
    std::error_code ec;
    if (fs::exists(target_, ec)) {
      if (!fs::is_directory(target_, ec)) Fail("{}: exists and is not a folder", dir);
      if (!fs::is_empty(target_, ec)) Fail("{}: folder exists and is not empty; refusing to overwrite it", dir);
    }
    tmp_ = target_;
    tmp_ += ".tmp." + std::to_string(::getpid());
    fs::remove_all(tmp_, ec);
    if (!fs::create_directories(tmp_, ec)) Fail("{}: cannot create folder: {}", tmp_.string(), ec.message());
  }
  ~StagingDir() {
    if (!committed_) {
      std::error_code ec;
      fs::remove_all(tmp_, ec);
    }
  }
  std::string File(const std::string& name) const { return (tmp_ / name).string(); }
  void Commit() {
    std::error_code ec;
    if (fs::exists(target_, ec)) fs::remove(target_, ec);  // an empty folder (checked above)
    fs::rename(tmp_, target_, ec);
    if (ec) Fail("{}: cannot move the finished folder into place: {}", target_.string(), ec.message());
    committed_ = true;
  }

 private:
  fs::path target_, tmp_;
  bool committed_ = false;
};

// A tensor's values in `type` (F32/F16/BF16), in HF row order. Returns the original bytes
// when nothing changes, else a heap copy.
Tensor ToHfTensor(const Tensor& t, const ModelConfig& c, DType type) {
  const int qk_heads = c.rope_layout == RopeLayout::kNormal ? QkHeads(t.name, c) : 0;
  Tensor src = qk_heads ? PermuteQkGgufToHf(t, qk_heads) : t;
  if (src.type == type) return src;
  std::vector<float> f = DequantizeAll(src);
  Tensor out = src;
  out.type = type;
  if (type == DType::kF32) {
    auto buf = std::make_shared<std::vector<float>>(std::move(f));
    out.data = buf->data();
    out.nbytes = buf->size() * 4;
    out.owner = std::shared_ptr<const void>(buf, buf->data());
    return out;
  }
  auto buf = std::make_shared<std::vector<uint16_t>>(f.size());
  for (size_t i = 0; i < f.size(); ++i) (*buf)[i] = type == DType::kF16 ? FloatToFp16(f[i]) : FloatToBf16(f[i]);
  out.data = buf->data();
  out.nbytes = buf->size() * 2;
  out.owner = std::shared_ptr<const void>(buf, buf->data());
  return out;
}

const char* TorchDTypeName(DType t) {
  switch (t) {
    case DType::kF16: return "float16";
    case DType::kBF16: return "bfloat16";
    default: return "float32";
  }
}

std::string TokenText(const Vocab& v, int32_t id) {
  return id >= 0 && id < v.size() ? v.tokens[(size_t)id] : std::string();
}

}  // namespace

// ---- public: names and permutation ------------------------------------------------------------

namespace {

// Maps a name between the HF and canonical spellings (to_canonical: HF -> canonical).
std::string MapTensorName(const std::string& name, bool to_canonical) {
  for (const NamePair& p : kGlobalNames) {
    if (name == (to_canonical ? p.hf : p.gguf)) return to_canonical ? p.gguf : p.hf;
  }
  int layer = 0;
  std::string rest;
  if (!SplitLayerName(name, to_canonical ? "model.layers." : "blk.", &layer, &rest)) return "";
  for (const NamePair& p : kBlockNames) {
    if (rest == (to_canonical ? p.hf : p.gguf))
      return to_canonical ? BlockTensorName(layer, p.gguf) : fmt::format("model.layers.{}.{}", layer, p.hf);
  }
  return "";
}

}  // namespace

std::string HfToCanonicalName(const std::string& hf_name) { return MapTensorName(hf_name, true); }
std::string CanonicalToHfName(const std::string& name) { return MapTensorName(name, false); }

namespace {

// new row (h*hd + 2j + s) <- old row (h*hd + s*hd/2 + j) when to_gguf, the inverse otherwise.
Tensor PermuteQkRows(const Tensor& t, int n_head, bool to_gguf) {
  const int64_t rows = t.n_dims <= 1 ? t.ne[0] : t.nrows();
  if (n_head <= 0 || rows <= 0 || rows % (2 * (int64_t)n_head) != 0)
    Fail("tensor {}: {} rows do not split into {} heads of even size", t.name, rows, n_head);
  SMELT_ASSERT(t.nbytes % (size_t)rows == 0);
  const size_t row_bytes = t.nbytes / (size_t)rows;
  const int64_t hd = rows / n_head, half = hd / 2;
  auto buf = std::make_shared<std::vector<uint8_t>>(t.nbytes);
  const uint8_t* src = static_cast<const uint8_t*>(t.data);
  for (int64_t h = 0; h < n_head; ++h) {
    for (int64_t j = 0; j < half; ++j) {
      for (int64_t s = 0; s < 2; ++s) {
        const int64_t interleaved = h * hd + 2 * j + s, rotate_half = h * hd + s * half + j;
        const int64_t dst_row = to_gguf ? interleaved : rotate_half;
        const int64_t src_row = to_gguf ? rotate_half : interleaved;
        std::memcpy(buf->data() + dst_row * row_bytes, src + src_row * row_bytes, row_bytes);
      }
    }
  }
  Tensor out = t;
  out.data = buf->data();
  out.owner = std::shared_ptr<const void>(buf, buf->data());
  return out;
}

}  // namespace

Tensor PermuteQkHfToGguf(const Tensor& t, int n_head) { return PermuteQkRows(t, n_head, true); }
Tensor PermuteQkGgufToHf(const Tensor& t, int n_head) { return PermuteQkRows(t, n_head, false); }

// ---- config -----------------------------------------------------------------------------------

ModelConfig ParseHfConfig(const std::string& json_text, const std::string& source) {
  return ParseHfConfigJson(ParseJsonStrict(json_text, source), source, nullptr);
}

std::string HfConfigJson(const ModelConfig& c, DType type, int32_t bos, int32_t eos) {
  const bool qwen = c.arch == "qwen2";
  ojson j;
  j["architectures"] = {qwen ? "Qwen2ForCausalLM" : "LlamaForCausalLM"};
  j["model_type"] = qwen ? "qwen2" : "llama";
  j["hidden_size"] = c.dim;
  j["intermediate_size"] = c.ff;
  j["num_hidden_layers"] = c.n_layers;
  j["num_attention_heads"] = c.n_heads;
  j["num_key_value_heads"] = c.n_kv_heads;
  j["head_dim"] = c.head_dim;
  j["vocab_size"] = c.vocab;
  j["max_position_embeddings"] = c.context;
  j["rms_norm_eps"] = FloatForJson(c.norm_eps);
  j["rope_theta"] = FloatForJson(c.rope_theta);
  if (c.rope_scaling.type == "llama3") {
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", FloatForJson(c.rope_scaling.factor)},
                         {"low_freq_factor", FloatForJson(c.rope_scaling.low_freq_factor)},
                         {"high_freq_factor", FloatForJson(c.rope_scaling.high_freq_factor)},
                         {"original_max_position_embeddings", c.rope_scaling.original_context}};
  } else if (c.rope_scaling.type == "linear") {
    j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", FloatForJson(c.rope_scaling.factor)}};
  } else {
    j["rope_scaling"] = nullptr;
  }
  j["tie_word_embeddings"] = c.tied_embeddings;
  j["hidden_act"] = "silu";
  if (!qwen) {
    j["attention_bias"] = false;
    j["mlp_bias"] = false;
  } else {
    j["use_sliding_window"] = false;
  }
  if (bos >= 0) j["bos_token_id"] = bos;
  if (eos >= 0) j["eos_token_id"] = eos;
  j["torch_dtype"] = TorchDTypeName(type);
  j["use_cache"] = true;
  return j.dump(2) + "\n";
}

// ---- loading ----------------------------------------------------------------------------------

Model LoadHfModel(const std::string& dir) {
  const std::string config_path = (fs::path(dir) / "config.json").string();
  const json cj = ParseJsonStrict(ReadFileToString(config_path), config_path);
  Model m;
  m.source = dir;
  m.format = ModelFormat::kHuggingFace;
  m.config = ParseHfConfigJson(cj, config_path, &m.info);
  ModelConfig& c = m.config;
  if (c.name.empty()) c.name = fs::path(dir).lexically_normal().filename().string();
  m.info["general.name"] = c.name;

  std::error_code ec;
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  const fs::path single = fs::path(dir) / "model.safetensors";
  SafetensorsFile st;
  if (fs::exists(index, ec)) {
    st = ReadSafetensorsIndex(index.string());
  } else if (fs::exists(single, ec)) {
    st = ReadSafetensors(single.string());
  } else {
    Fail("{}: no model.safetensors or model.safetensors.index.json (PyTorch .bin checkpoints are not supported)", dir);
  }

  // Canonical tensors by name, checked against the shapes config.json implies.
  std::map<std::string, Tensor> found;
  const bool has_head = st.Find("lm_head.weight") != nullptr;
  c.tied_embeddings = !has_head;  // llama.cpp: no lm_head means the embeddings serve as the head
  // The tensors the config requires (with lm_head's presence deciding the head, output.weight is
  // required exactly when present; biases only for Qwen2).
  const std::vector<ModelTensorSpec> specs = ModelTensorSpecs(c);
  std::map<std::string, std::vector<int64_t>> want;
  for (const ModelTensorSpec& s : specs) {
    if (s.required) want[s.name] = s.ne;
  }
  for (Tensor& t : st.tensors) {
    const std::string name = HfToCanonicalName(t.name);
    if (name.empty()) {
      if (EndsWith(t.name, ".rotary_emb.inv_freq")) continue;  // old checkpoints: recomputed
      Fail("{}: unexpected tensor {} for {}", st.path, Printable(t.name), m.info["hf.architecture"]);
    }
    auto w = want.find(name);
    if (w == want.end())
      Fail("{}: tensor {} does not belong to a {}-layer {} model", st.path, t.name, c.n_layers,
           m.info["hf.architecture"]);
    if (!SameShape(t, w->second))
      Fail("{}: tensor {}: shape {} does not match config.json (expected {})", st.path, t.name, ShapeString(t),
           NeString(w->second));
    const std::string hf_name = t.name;
    t.name = name;
    if (t.n_dims == 1 && t.type != DType::kF32) {  // norms and biases in F32, as llama.cpp stores them
      std::vector<int64_t> ne = {t.ne[0]};
      t = MakeF32Tensor(name, ne, DequantizeAll(t));
    }
    const int qk_heads = c.rope_layout == RopeLayout::kNormal ? QkHeads(name, c) : 0;
    if (qk_heads) t = PermuteQkHfToGguf(t, qk_heads);
    found[name] = std::move(t);
  }
  for (const ModelTensorSpec& s : specs) {
    if (!s.required) continue;
    auto it = found.find(s.name);
    if (it == found.end()) Fail("{}: missing tensor {}", st.path, CanonicalToHfName(s.name));
    m.weights.Add(std::move(it->second));
  }

  // Vocabulary: tokenizer.json (refined by tokenizer_config.json and tokenizer.model's scores),
  // else the sentencepiece tokenizer.model alone.
  const fs::path tj = fs::path(dir) / "tokenizer.json", tm = fs::path(dir) / "tokenizer.model";
  if (fs::exists(tj, ec)) {
    m.vocab = LoadHfTokenizerDir(dir);
  } else if (fs::exists(tm, ec)) {
    m.vocab = LoadSentencePieceModel(tm.string());
  } else {
    Fail("{}: no tokenizer.json or tokenizer.model", dir);
  }
  if (m.vocab.size() > c.vocab)
    Fail("{}: tokenizer has {} tokens, more than the model's vocab_size {}", dir, m.vocab.size(), c.vocab);
  // Checkpoints often pad the embedding table past the tokenizer (as llama.cpp, add [PADi]).
  for (int32_t i = m.vocab.size(); i < c.vocab; ++i) {
    m.vocab.tokens.push_back(fmt::format("[PAD{}]", i));
    m.vocab.types.push_back(TokenType::kUnused);
    if (!m.vocab.scores.empty()) m.vocab.scores.push_back(0.0f);
  }
  // Special ids the tokenizer files left open come from config.json / generation_config.json.
  json gen;
  const fs::path gp = fs::path(dir) / "generation_config.json";
  if (fs::exists(gp, ec)) gen = ParseJsonStrict(ReadFileToString(gp.string()), gp.string());
  for (const json* src : {&cj, static_cast<const json*>(&gen)}) {
    if (!src->is_object()) continue;
    auto fill = [&](int32_t* id, const char* key) {
      auto v = GetTokenId(*src, key);
      if (*id < 0 && v && *v < c.vocab) *id = *v;
    };
    fill(&m.vocab.bos, "bos_token_id");
    fill(&m.vocab.eos, "eos_token_id");
    fill(&m.vocab.pad, "pad_token_id");
  }
  return m;
}

// ---- saving -----------------------------------------------------------------------------------

void SaveHfModel(const Model& m, const std::string& dir, const HfSaveOptions& opt) {
  const ModelConfig& c = m.config;
  if (opt.type != DType::kF32 && opt.type != DType::kF16 && opt.type != DType::kBF16)
    Fail("{}: Hugging Face export stores F32, F16 or BF16, not {}", dir, DTypeName(opt.type));
  if (c.arch != "llama" && c.arch != "qwen2")
    Fail("{}: architecture {} cannot be exported as a Hugging Face model (llama, qwen2)", dir, c.arch);
  if (c.arch == "llama" && c.qkv_bias)
    Fail("{}: a llama model with q/k/v biases has no LlamaForCausalLM equivalent", dir);
  if (c.arch == "qwen2" && !c.qkv_bias) Fail("{}: Qwen2ForCausalLM needs q/k/v biases, the model has none", dir);
  if (c.rope_dim != c.head_dim) Fail("{}: partial RoPE (rope dim {} of {}) cannot be exported", dir, c.rope_dim, c.head_dim);
  if (!c.uniform_blocks())
    Fail("{}: the feed-forward size or kv head count differs per block; config.json has one of each, so this model "
         "can only be written as GGUF (or padded: smelt convert --uniform)",
         dir);

  // The tensors to write, in canonical order, checked against the config. rope_freqs.weight
  // (llama3 GGUFs) is derived from rope_scaling, which config.json carries; a tied model's extra
  // output.weight is the embedding table.
  std::set<std::string> known;
  std::vector<const Tensor*> tensors;
  for (const ModelTensorSpec& s : ModelTensorSpecs(c)) {
    known.insert(s.name);
    const Tensor* t = m.weights.Find(s.name);
    if (!t) {
      if (s.required) Fail("{}: model has no tensor {}", dir, s.name);
      continue;
    }
    if (!s.required) {
      if (EndsWith(s.name, ".bias")) Fail("{}: tensor {} needs biases the config does not declare", dir, s.name);
      continue;
    }
    if (!SameShape(*t, s.ne))
      Fail("{}: tensor {}: shape {} does not match the config (expected {})", dir, s.name, ShapeString(*t),
           NeString(s.ne));
    tensors.push_back(t);
  }
  for (const Tensor& t : m.weights.all()) {
    if (!known.count(t.name)) Fail("{}: tensor {} has no Hugging Face equivalent", dir, t.name);
  }

  // Shards: consecutive tensors, each shard at most max_shard_bytes (a larger tensor alone).
  const size_t esize = opt.type == DType::kF32 ? 4 : 2;
  std::vector<std::vector<size_t>> shards(1);
  uint64_t in_shard = 0, total = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const uint64_t nb = (uint64_t)tensors[i]->nelements() * esize;
    if (opt.max_shard_bytes > 0 && !shards.back().empty() && in_shard + nb > opt.max_shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(i);
    in_shard += nb;
    total += nb;
  }

  StagingDir out(dir);
  ojson weight_map = ojson::object();
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string file = shards.size() == 1
                                 ? std::string("model.safetensors")
                                 : fmt::format("model-{:05d}-of-{:05d}.safetensors", s + 1, shards.size());
    std::vector<SafetensorsTensorInfo> infos;
    for (size_t i : shards[s]) {
      const Tensor& t = *tensors[i];
      const std::string hf = CanonicalToHfName(t.name);
      SMELT_ASSERT(!hf.empty());
      infos.push_back({hf, opt.type, t.n_dims, t.ne});
      weight_map[hf] = file;
    }
    SafetensorsWriter w(out.File(file), infos, {{"format", "pt"}});
    for (size_t i : shards[s]) {
      Tensor hf = ToHfTensor(*tensors[i], c, opt.type);
      w.Write(hf.data, hf.nbytes);
    }
    w.Commit();
  }
  if (shards.size() > 1) {
    ojson index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    const std::string text = index.dump(2) + "\n";
    WriteFileAtomic(out.File("model.safetensors.index.json"), text.data(), text.size());
  }

  const Vocab& v = m.vocab;
  const std::string config = HfConfigJson(c, opt.type, v.bos, v.eos);
  WriteFileAtomic(out.File("config.json"), config.data(), config.size());
  ojson gen = ojson::object();
  if (v.bos >= 0) gen["bos_token_id"] = v.bos;
  if (v.eos >= 0) gen["eos_token_id"] = v.eos;
  if (v.pad >= 0) gen["pad_token_id"] = v.pad;
  const std::string gen_text = gen.dump(2) + "\n";
  WriteFileAtomic(out.File("generation_config.json"), gen_text.data(), gen_text.size());
  if (!v.tokens.empty()) {
    SaveHfTokenizerJson(v, out.File("tokenizer.json"));
    ojson tc = ojson::object();
    tc["add_bos_token"] = v.add_bos;
    tc["add_eos_token"] = v.add_eos;
    if (v.bos >= 0) tc["bos_token"] = TokenText(v, v.bos);
    if (v.eos >= 0) tc["eos_token"] = TokenText(v, v.eos);
    if (v.unk >= 0) tc["unk_token"] = TokenText(v, v.unk);
    if (v.pad >= 0) tc["pad_token"] = TokenText(v, v.pad);
    tc["model_max_length"] = c.context;
    tc["clean_up_tokenization_spaces"] = false;
    tc["tokenizer_class"] = c.arch == "qwen2" ? "Qwen2TokenizerFast" : "LlamaTokenizerFast";
    const std::string tc_text = tc.dump(2) + "\n";
    WriteFileAtomic(out.File("tokenizer_config.json"), tc_text.data(), tc_text.size());
  }
  out.Commit();
}

}  // namespace smelt
