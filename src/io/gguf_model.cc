#include "io/gguf_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <numbers>
#include <vector>

#include "core/error.h"
#include "formats/types.h"
#include "smelt/version.h"

namespace smelt {

namespace {

constexpr const char* kRopeFreqs = "rope_freqs.weight";

// --- config ---------------------------------------------------------------------------------

class ConfigReader {
 public:
  ConfigReader(const GgufFile& f, std::string arch) : f_(f), arch_(std::move(arch)) {}

  std::string Key(const char* suffix) const { return arch_ + "." + suffix; }

  // A count that must fit an int (the range is checked again by ValidateConfig).
  int Int(const char* suffix) const { return Narrow(Key(suffix), f_.GetInt(Key(suffix))); }
  std::optional<int> OptInt(const char* suffix) const {
    std::optional<int64_t> v = f_.FindInt(Key(suffix));
    if (!v) return std::nullopt;
    return Narrow(Key(suffix), *v);
  }
  // A count per block: a number (the same for every block) or an array of n_blocks numbers.
  std::vector<int> PerBlock(const char* suffix, int n_blocks) const {
    const GgufValue* v = f_.Find(Key(suffix));
    if (!v || !v->is_array()) return std::vector<int>((size_t)std::max(n_blocks, 0), Int(suffix));
    std::vector<int> out;
    for (int64_t x : v->AsInts()) {
      if (x <= 0 || x > std::numeric_limits<int32_t>::max()) Fail("{}: key {} holds {}, out of range", f_.path(), Key(suffix), x);
      out.push_back((int)x);
    }
    if ((int)out.size() != n_blocks) Fail("{}: key {} has {} sizes for {} blocks", f_.path(), Key(suffix), out.size(), n_blocks);
    return out;
  }
  float Float(const char* suffix) const { return (float)f_.GetFloat(Key(suffix)); }
  std::optional<float> OptFloat(const char* suffix) const {
    std::optional<double> v = f_.FindFloat(Key(suffix));
    if (!v) return std::nullopt;
    return (float)*v;
  }

 private:
  int Narrow(const std::string& key, int64_t v) const {
    if (v < 0 || v > std::numeric_limits<int32_t>::max()) Fail("{}: key {} = {} is out of range", f_.path(), key, v);
    return (int)v;
  }
  const GgufFile& f_;
  std::string arch_;
};

ModelConfig ReadConfig(const GgufFile& f) {
  ModelConfig c;
  c.arch = f.GetString("general.architecture");
  if (c.arch != "llama" && c.arch != "qwen2")
    Fail("{}: architecture {} is not supported (llama, qwen2)", f.path(), c.arch);
  c.name = f.FindString("general.name").value_or("");
  ConfigReader r(f, c.arch);
  c.context = r.Int("context_length");
  c.dim = r.Int("embedding_length");
  c.n_layers = r.Int("block_count");
  if (c.n_layers <= 0 || c.n_layers > 4096) Fail("{}: key {} = {} is out of range", f.path(), r.Key("block_count"), c.n_layers);
  SetFeedForwardSizes(c, r.PerBlock("feed_forward_length", c.n_layers), f.path());
  // Head counts: numbers, or per-block arrays (as llama.cpp's loader reads them too).
  const std::vector<int> heads = r.PerBlock("attention.head_count", c.n_layers);
  const std::vector<int> kv_heads =
      f.Find(r.Key("attention.head_count_kv")) ? r.PerBlock("attention.head_count_kv", c.n_layers) : heads;
  for (size_t l = 0; l < heads.size(); ++l) {
    if (heads[l] <= 0) Fail("{}: key {} = {} is out of range", f.path(), r.Key("attention.head_count"), heads[l]);
    if (kv_heads[l] <= 0)
      Fail("{}: key {} = {} is out of range", f.path(), r.Key("attention.head_count_kv"), kv_heads[l]);
    if (heads[l] % kv_heads[l] != 0)
      Fail("{}: block {}: head count {} is not a multiple of kv head count {}", f.path(), l, heads[l], kv_heads[l]);
    if (heads[l] / kv_heads[l] != heads[0] / kv_heads[0])
      Fail("{}: block {} has {} heads per kv head, block 0 has {}; they must agree", f.path(), l,
           heads[l] / kv_heads[l], heads[0] / kv_heads[0]);
  }
  c.n_heads = heads[0];
  c.n_kv_heads = kv_heads[0];
  SetKvHeadCounts(c, kv_heads, f.path());
  c.head_dim = r.OptInt("attention.key_length").value_or(c.dim / c.n_heads);
  if (std::optional<int> v = r.OptInt("attention.value_length"); v && *v != c.head_dim)
    Fail("{}: value head size {} differs from key head size {}; not supported", f.path(), *v, c.head_dim);
  c.norm_eps = r.Float("attention.layer_norm_rms_epsilon");
  c.rope_theta = r.OptFloat("rope.freq_base").value_or(10000.0f);
  c.rope_dim = r.OptInt("rope.dimension_count").value_or(c.head_dim);
  c.rope_layout = c.arch == "qwen2" ? RopeLayout::kNeox : RopeLayout::kNormal;

  // RoPE scaling: llama.cpp's keys ("linear"), or smelt's record of Llama 3 parameters.
  RopeScaling& s = c.rope_scaling;
  const std::string type = f.FindString(r.Key("rope.scaling.type")).value_or("none");
  if (type == "linear") {
    s.type = "linear";
    s.factor = r.OptFloat("rope.scaling.factor").value_or(1.0f);
  } else if (type != "none") {
    Fail("{}: rope scaling type {} is not supported (none, linear, llama3)", f.path(), type);
  } else if (std::optional<float> scale = r.OptFloat("rope.scale_linear")) {  // older files
    s.type = "linear";
    s.factor = *scale;
  }
  if (std::optional<int> oc = r.OptInt("rope.scaling.original_context_length")) s.original_context = *oc;
  if (std::optional<std::string> t = f.FindString("smelt.rope_scaling.type")) {
    s.type = *t;
    s.factor = (float)f.FindFloat("smelt.rope_scaling.factor").value_or(s.factor);
    s.low_freq_factor = (float)f.FindFloat("smelt.rope_scaling.low_freq_factor").value_or(s.low_freq_factor);
    s.high_freq_factor = (float)f.FindFloat("smelt.rope_scaling.high_freq_factor").value_or(s.high_freq_factor);
    if (std::optional<int64_t> oc = f.FindInt("smelt.rope_scaling.original_context")) s.original_context = (int)*oc;
  } else if (const Tensor* freqs = f.FindTensor(kRopeFreqs); freqs && s.type.empty()) {
    // A Llama 3 conversion: the per-frequency factors are the tensor itself; the largest one is
    // the scaling factor. (The runtime should use the tensor, which is exact.)
    if (freqs->type != DType::kF32) Fail("{}: tensor {} must be f32", f.path(), kRopeFreqs);
    std::vector<float> factors((size_t)freqs->nelements());
    std::memcpy(factors.data(), freqs->data, freqs->nbytes);  // the data may be unaligned
    s.type = "llama3";
    s.factor = *std::max_element(factors.begin(), factors.end());
  }

  const Tensor* embd = f.FindTensor("token_embd.weight");
  if (std::optional<int> v = r.OptInt("vocab_size")) {
    c.vocab = *v;
  } else if (embd) {
    c.vocab = (int)std::min<int64_t>(embd->ne[1], std::numeric_limits<int32_t>::max());
  } else if (const std::vector<std::string>* toks = f.FindStrings("tokenizer.ggml.tokens")) {
    c.vocab = (int)std::min<size_t>(toks->size(), std::numeric_limits<int32_t>::max());
  }
  c.tied_embeddings = f.FindTensor("output.weight") == nullptr;
  c.qkv_bias = c.arch == "qwen2" || f.FindTensor("blk.0.attn_q.bias") != nullptr;
  return c;
}

// --- vocabulary -----------------------------------------------------------------------------

// BPE pre-tokenizers for which llama.cpp prepends BOS by default.
bool BpeAddsBosByDefault(const std::string& pre) {
  static const char* kPre[] = {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral",
                               "midm-2.0", "lfm2", "jina-v5-nano", "tekken", "chameleon"};
  return std::any_of(std::begin(kPre), std::end(kPre), [&](const char* p) { return pre == p; });
}

TokenType ToTokenType(int64_t v) {
  return v >= 0 && v <= (int64_t)TokenType::kByte ? (TokenType)v : TokenType::kUndefined;
}

// --- tensors --------------------------------------------------------------------------------

std::string ShapeOf(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += fmt::format("{}{}", i ? ", " : "", ne[i]);
  return s + "]";
}

// Llama 3 RoPE frequency factors (one per rotated pair), as llama.cpp's converter writes them
// into rope_freqs.weight: 1 for high frequencies, `factor` for low ones, smooth in between.
std::vector<float> Llama3RopeFactors(const ModelConfig& c) {
  const RopeScaling& s = c.rope_scaling;
  const double low_wavelen = s.original_context / s.low_freq_factor;
  const double high_wavelen = s.original_context / s.high_freq_factor;
  std::vector<float> out(c.rope_dim / 2);
  for (int i = 0; i < c.rope_dim / 2; ++i) {
    const double freq = 1.0 / std::pow((double)c.rope_theta, 2.0 * i / c.rope_dim);
    const double wavelen = 2 * std::numbers::pi / freq;
    double factor;
    if (wavelen < high_wavelen) {
      factor = 1.0;
    } else if (wavelen > low_wavelen) {
      factor = s.factor;
    } else {
      const double smooth = (s.original_context / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      factor = 1.0 / ((1 - smooth) / s.factor + smooth);
    }
    out[i] = (float)factor;
  }
  return out;
}

// How one weight is written: its type, and whether it needs converting.
struct TensorPlan {
  const Tensor* src;
  DType type;
};

}  // namespace

std::vector<ModelTensorSpec> ModelTensorSpecs(const ModelConfig& c) {
  const int64_t dim = c.dim, vocab = c.vocab;
  std::vector<ModelTensorSpec> specs = {
      {"token_embd.weight", {dim, vocab}, true},
      {"output_norm.weight", {dim}, true},
      {"output.weight", {dim, vocab}, !c.tied_embeddings},
  };
  for (int i = 0; i < c.n_layers; ++i) {
    auto add = [&](const char* suffix, std::vector<int64_t> ne, bool required) {
      specs.push_back({BlockTensorName(i, suffix), std::move(ne), required});
    };
    const BlockShape b = c.block(i);
    const int64_t q = b.q_dim, kv = b.kv_dim;
    add("attn_norm.weight", {dim}, true);
    add("attn_q.weight", {dim, q}, true);
    add("attn_k.weight", {dim, kv}, true);
    add("attn_v.weight", {dim, kv}, true);
    add("attn_output.weight", {q, dim}, true);
    add("ffn_norm.weight", {dim}, true);
    const int64_t ff = b.ff;
    add("ffn_gate.weight", {dim, ff}, true);
    add("ffn_up.weight", {dim, ff}, true);
    add("ffn_down.weight", {ff, dim}, true);
    add("attn_q.bias", {q}, c.qkv_bias);
    add("attn_k.bias", {kv}, c.qkv_bias);
    add("attn_v.bias", {kv}, c.qkv_bias);
  }
  if (c.rope_scaling.type == "llama3") specs.push_back({kRopeFreqs, {c.rope_dim / 2}, false});
  return specs;
}

void CheckModelTensors(const ModelConfig& c, const Weights& w, const std::string& source) {
  for (const ModelTensorSpec& s : ModelTensorSpecs(c)) {
    const Tensor* t = w.Find(s.name);
    if (!t) {
      if (s.required) Fail("{}: missing tensor {}", source, s.name);
      continue;
    }
    bool ok = true;
    for (size_t d = 0; d < 4; ++d) ok &= t->ne[d] == (d < s.ne.size() ? s.ne[d] : 1);
    if (!ok) Fail("{}: tensor {} has shape {}, expected {}", source, s.name, ShapeString(*t), ShapeOf(s.ne));
  }
  for (const Tensor& t : w.all()) {
    std::optional<size_t> bytes = TensorBytes(t.type, t.ne);
    if (!t.data || !bytes || *bytes != t.nbytes)
      Fail("{}: tensor {}: {} bytes of data do not match {} {}", source, t.name, t.nbytes, DTypeName(t.type), ShapeString(t));
  }
}

Vocab GgufToVocab(const GgufFile& f) {
  Vocab v;
  std::optional<std::string> model = f.FindString("tokenizer.ggml.model");
  if (!model) Fail("{}: no tokenizer (missing key tokenizer.ggml.model)", f.path());
  v.model = *model;
  const bool spm = v.model == "llama", bpe = v.model == "gpt2";
  if (!spm && !bpe) Fail("{}: tokenizer model {} is not supported (llama, gpt2)", f.path(), v.model);
  v.pre = f.FindString("tokenizer.ggml.pre").value_or("default");
  v.tokens = f.GetStrings("tokenizer.ggml.tokens");
  const size_t n = v.tokens.size();
  if (n == 0) Fail("{}: tokenizer.ggml.tokens is empty", f.path());
  if (n > (size_t)std::numeric_limits<int32_t>::max()) Fail("{}: {} tokens is too many", f.path(), n);

  if (std::optional<std::vector<float>> scores = f.FindFloats("tokenizer.ggml.scores")) {
    if (scores->size() != n) Fail("{}: {} token scores for {} tokens", f.path(), scores->size(), n);
    v.scores = std::move(*scores);
  } else if (spm) {
    v.scores.assign(n, 0.0f);
  }
  if (std::optional<std::vector<int64_t>> types = f.FindInts("tokenizer.ggml.token_type")) {
    if (types->size() != n) Fail("{}: {} token types for {} tokens", f.path(), types->size(), n);
    v.types.resize(n);
    for (size_t i = 0; i < n; ++i) v.types[i] = ToTokenType((*types)[i]);
  } else {
    v.types.assign(n, TokenType::kNormal);
  }
  if (const std::vector<std::string>* merges = f.FindStrings("tokenizer.ggml.merges")) {
    v.merges = *merges;
  } else if (bpe) {
    Fail("{}: gpt2 tokenizer without tokenizer.ggml.merges", f.path());
  }

  // llama.cpp's defaults, then the keys; an id outside the vocabulary keeps the default.
  auto in_range = [&](int64_t id) { return id >= 0 && (size_t)id < n ? (int32_t)id : -1; };
  v.bos = in_range(spm ? 1 : 11);
  v.eos = in_range(spm ? 2 : 11);
  v.unk = spm ? in_range(0) : -1;
  v.pad = -1;
  if (bpe && (v.pre == "glm4" || v.pre == "chatglm-bpe")) v.bos = -1;
  auto special = [&](const char* key, int32_t& id) {
    if (std::optional<int64_t> k = f.FindInt(key); k && in_range(*k) >= 0) id = (int32_t)*k;
  };
  special("tokenizer.ggml.bos_token_id", v.bos);
  special("tokenizer.ggml.eos_token_id", v.eos);
  special("tokenizer.ggml.unknown_token_id", v.unk);
  special("tokenizer.ggml.padding_token_id", v.pad);
  v.add_bos = f.FindBool("tokenizer.ggml.add_bos_token").value_or(spm || BpeAddsBosByDefault(v.pre));
  v.add_eos = f.FindBool("tokenizer.ggml.add_eos_token").value_or(false);
  v.add_space_prefix = f.FindBool("tokenizer.ggml.add_space_prefix").value_or(spm);
  return v;
}

Model GgufToModel(const GgufFile& f) {
  Model m;
  m.source = f.path();
  m.format = ModelFormat::kGguf;
  m.config = ReadConfig(f);
  ValidateConfig(m.config, f.path());
  for (const Tensor& t : f.tensors()) m.weights.Add(t);
  CheckModelTensors(m.config, m.weights, f.path());
  if (std::optional<std::string> tm = f.FindString("tokenizer.ggml.model"); tm && *tm != "none" && *tm != "no_vocab") {
    m.vocab = GgufToVocab(f);
    if (m.vocab.size() != m.config.vocab)
      Fail("{}: the tokenizer has {} tokens but the model's vocabulary size is {}", f.path(), m.vocab.size(), m.config.vocab);
  }
  for (const GgufKV& kv : f.kvs()) {
    if (kv.value.type() != GgufType::kString || kv.key == "general.architecture") continue;
    if (kv.key.starts_with("general.") || kv.key == "tokenizer.chat_template") {
      m.info[kv.key] = kv.value.AsString();
    } else if (kv.key.starts_with("smelt.") && !kv.key.starts_with("smelt.rope_scaling.")) {
      m.info[kv.key.substr(6)] = kv.value.AsString();
    }
  }
  return m;
}

Model LoadGgufModel(const std::string& path) { return GgufToModel(GgufFile::Open(path)); }

Vocab LoadGgufVocab(const std::string& path) { return GgufToVocab(GgufFile::Open(path)); }

std::optional<uint32_t> LlamaFileType(DType t) {
  switch (t) {
    case DType::kF32: return 0;
    case DType::kF16: return 1;
    case DType::kQ4_0: return 2;
    case DType::kQ4_1: return 3;
    case DType::kQ8_0: return 7;
    case DType::kQ5_0: return 8;
    case DType::kQ5_1: return 9;
    case DType::kQ2_K: return 10;
    case DType::kQ3_K: return 12;  // Q3_K_M
    case DType::kQ4_K: return 15;  // Q4_K_M
    case DType::kQ5_K: return 17;  // Q5_K_M
    case DType::kQ6_K: return 18;
    case DType::kIQ4_NL: return 25;
    case DType::kBF16: return 32;
    default: return std::nullopt;
  }
}

namespace {

void AddConfigKeys(const ModelConfig& c, GgufWriter& w, const std::string& path) {
  auto key = [&](const char* suffix) { return c.arch + "." + suffix; };
  auto u32 = [](int v) { return GgufValue::U32((uint32_t)v); };
  w.Set(key("context_length"), u32(c.context));
  w.Set(key("embedding_length"), u32(c.dim));
  w.Set(key("block_count"), u32(c.n_layers));
  if (c.layer_ff.empty()) {
    w.Set(key("feed_forward_length"), u32(c.ff));
  } else {  // sizes that differ per block: an array, as llama.cpp's loader reads it
    w.Set(key("feed_forward_length"), GgufValue::I32Array(c.layer_ff));
  }
  if (c.layer_kv_heads.empty()) {
    w.Set(key("attention.head_count"), u32(c.n_heads));
    w.Set(key("attention.head_count_kv"), u32(c.n_kv_heads));
  } else {  // per block, as llama.cpp's loader reads them
    std::vector<int32_t> heads, kv;
    for (int l = 0; l < c.n_layers; ++l) heads.push_back(c.block(l).n_heads), kv.push_back(c.block(l).n_kv_heads);
    w.Set(key("attention.head_count"), GgufValue::I32Array(heads));
    w.Set(key("attention.head_count_kv"), GgufValue::I32Array(kv));
  }
  w.Set(key("attention.layer_norm_rms_epsilon"), GgufValue::F32(c.norm_eps));
  w.Set(key("rope.freq_base"), GgufValue::F32(c.rope_theta));
  w.Set(key("rope.dimension_count"), u32(c.rope_dim));
  if (c.head_dim != c.dim / c.n_heads || !c.layer_kv_heads.empty()) {
    w.Set(key("attention.key_length"), u32(c.head_dim));
    w.Set(key("attention.value_length"), u32(c.head_dim));
  }
  w.Set(key("vocab_size"), u32(c.vocab));
  const RopeScaling& s = c.rope_scaling;
  if (s.type == "linear") {
    w.Set(key("rope.scaling.type"), GgufValue::String("linear"));
    w.Set(key("rope.scaling.factor"), GgufValue::F32(s.factor));
    w.Set(key("rope.scaling.original_context_length"), u32(s.original_context));
  } else if (s.type == "llama3") {
    // llama.cpp knows Llama 3 scaling only through rope_freqs.weight; smelt keeps the parameters.
    w.Set("smelt.rope_scaling.type", GgufValue::String("llama3"));
    w.Set("smelt.rope_scaling.factor", GgufValue::F32(s.factor));
    w.Set("smelt.rope_scaling.low_freq_factor", GgufValue::F32(s.low_freq_factor));
    w.Set("smelt.rope_scaling.high_freq_factor", GgufValue::F32(s.high_freq_factor));
    w.Set("smelt.rope_scaling.original_context", u32(s.original_context));
  } else if (!s.type.empty()) {
    Fail("{}: rope scaling type {} cannot be written to GGUF", path, s.type);
  }
}

void AddVocabKeys(const Vocab& v, GgufWriter& w) {
  const size_t n = v.tokens.size();
  w.Set("tokenizer.ggml.model", GgufValue::String(v.model));
  if (!v.pre.empty()) w.Set("tokenizer.ggml.pre", GgufValue::String(v.pre));
  w.Set("tokenizer.ggml.tokens", GgufValue::StringArray(v.tokens));
  if (!v.scores.empty()) w.Set("tokenizer.ggml.scores", GgufValue::F32Array(v.scores));
  std::vector<int32_t> types(n, (int32_t)TokenType::kNormal);
  for (size_t i = 0; i < n && i < v.types.size(); ++i) types[i] = (int32_t)v.types[i];
  w.Set("tokenizer.ggml.token_type", GgufValue::I32Array(types));
  if (!v.merges.empty()) w.Set("tokenizer.ggml.merges", GgufValue::StringArray(v.merges));
  auto id = [&](const char* key, int32_t tok) {
    if (tok >= 0) w.Set(key, GgufValue::U32((uint32_t)tok));
  };
  id("tokenizer.ggml.bos_token_id", v.bos);
  id("tokenizer.ggml.eos_token_id", v.eos);
  id("tokenizer.ggml.unknown_token_id", v.unk);
  id("tokenizer.ggml.padding_token_id", v.pad);
  w.Set("tokenizer.ggml.add_bos_token", GgufValue::Bool(v.add_bos));
  w.Set("tokenizer.ggml.add_eos_token", GgufValue::Bool(v.add_eos));
  if (v.model == "llama" || v.add_space_prefix) w.Set("tokenizer.ggml.add_space_prefix", GgufValue::Bool(v.add_space_prefix));
}

// A tensor's bytes converted row by row to `type` (one row of scratch, no whole-tensor copy).
GgufWriter::Producer ConvertingProducer(const Tensor& src, DType type) {
  return [src, type](const GgufWriter::Emit& emit) {
    const int64_t n = src.ne[0];
    std::vector<float> row((size_t)n);
    std::vector<uint8_t> packed(type == DType::kF32 ? 0 : RowBytes(type, n));
    const FromFloatFn encode = Traits(type).from_float;
    for (int64_t r = 0; r < src.nrows(); ++r) {
      DequantizeRow(src, r, row.data());
      if (type == DType::kF32) {
        emit(row.data(), row.size() * sizeof(float));
      } else {
        encode(row.data(), packed.data(), n);
        emit(packed.data(), packed.size());
      }
    }
  };
}

}  // namespace

GgufWriter GgufModelWriter(const Model& m, const std::string& path, const GgufSaveOptions& opt) {
  const ModelConfig& c = m.config;
  ValidateConfig(c, path);
  const RopeLayout want = c.arch == "qwen2" ? RopeLayout::kNeox : RopeLayout::kNormal;
  if (c.arch != "llama" && c.arch != "qwen2") Fail("{}: architecture {} cannot be written (llama, qwen2)", path, c.arch);
  if (c.rope_layout != want) Fail("{}: architecture {} needs {} RoPE", path, c.arch, want == RopeLayout::kNeox ? "NeoX" : "normal");
  CheckModelTensors(c, m.weights, path);
  if (!m.vocab.tokens.empty() && m.vocab.size() != c.vocab)
    Fail("{}: the tokenizer has {} tokens but the model's vocabulary size is {}", path, m.vocab.size(), c.vocab);
  if (opt.type && !Traits(*opt.type).from_float) Fail("{}: smelt cannot write {} tensors yet", path, DTypeName(*opt.type));

  // Decide each tensor's type.
  std::vector<TensorPlan> plan;
  std::string fallbacks;
  std::map<DType, int> matrix_types;
  bool quantized = false;
  for (const Tensor& t : m.weights.all()) {
    DType type = t.type;
    if (t.n_dims == 1) {
      type = DType::kF32;
    } else if (t.n_dims == 2 && opt.type) {
      type = *opt.type;
      if (t.ne[0] % Traits(type).block_size != 0) {
        type = DType::kF16;
        fallbacks += fmt::format("{}{}={}", fallbacks.empty() ? "" : ", ", t.name, DTypeName(type));
      }
    }
    if (type != t.type && !Traits(t.type).to_float)
      Fail("{}: tensor {}: cannot convert {} to {}", path, t.name, DTypeName(t.type), DTypeName(type));
    if (t.n_dims == 2) ++matrix_types[type];
    quantized |= Traits(type).quantized;
    plan.push_back({&t, type});
  }
  std::vector<float> rope_factors;
  if (c.rope_scaling.type == "llama3" && !m.weights.Contains(kRopeFreqs)) rope_factors = Llama3RopeFactors(c);

  GgufWriter w;
  w.Set("general.architecture", GgufValue::String(c.arch));
  std::string name = c.name;
  if (name.empty() && m.info.count("general.name")) name = m.info.at("general.name");
  w.Set("general.name", GgufValue::String(name.empty() ? "smelt model" : name));
  AddConfigKeys(c, w, path);
  // The file type: the most common matrix type written.
  DType main_type = DType::kF32;
  if (!matrix_types.empty()) {
    main_type = std::max_element(matrix_types.begin(), matrix_types.end(),
                                 [](const auto& a, const auto& b) { return a.second < b.second; })->first;
  }
  if (std::optional<uint32_t> ft = LlamaFileType(main_type)) w.Set("general.file_type", GgufValue::U32(*ft));
  if (quantized) w.Set("general.quantization_version", GgufValue::U32(2));
  if (!m.vocab.tokens.empty()) AddVocabKeys(m.vocab, w);
  w.Set("smelt.version", GgufValue::String(kVersion));
  if (!fallbacks.empty()) w.Set("smelt.type_fallback", GgufValue::String(fallbacks));
  for (const auto& [k, v] : m.info) {
    if (k == "version" || k == "type_fallback" || k == "general.name") continue;
    const bool verbatim = k.starts_with("general.") || k.starts_with("tokenizer.") || k.starts_with("smelt.");
    std::string key = verbatim ? k : "smelt." + k;
    if (!w.Has(key)) w.Set(std::move(key), GgufValue::String(v));
  }

  for (const TensorPlan& p : plan) {
    if (p.type == p.src->type) {
      w.AddTensor(*p.src);
    } else {
      w.AddTensor(p.src->name, p.type, p.src->n_dims, p.src->ne, ConvertingProducer(*p.src, p.type));
    }
  }
  if (!rope_factors.empty()) {
    Tensor t = MakeF32Tensor(kRopeFreqs, {(int64_t)rope_factors.size()}, rope_factors);
    w.AddTensor(t);
  }
  return w;
}

void SaveGgufModel(const Model& m, const std::string& path, const GgufSaveOptions& opt) {
  GgufModelWriter(m, path, opt).WriteFile(path);
}

}  // namespace smelt
