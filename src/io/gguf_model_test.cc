// GGUF <-> Model: stories260K's config and vocabulary against its README, save/load round
// trips (exact for F32, bounded error for the quantized types), llama.cpp's vocabulary defaults,
// clear errors for missing or mis-shaped tensors, and llama.cpp itself (the peer) loading and
// running what SaveGgufModel writes.
#include "io/gguf_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>

#include "core/half.h"
#include "formats/types.h"
#include "io/io_test_util.h"
#include "model/synth.h"
#include "peer.h"
#include "smelt/version.h"
#include "shared_assets.h"

namespace smelt {
namespace {

using testing_util::ExpectError;
using testing_util::ReadAll;
using testing_util::ScratchDir;


// A small SentencePiece-style vocabulary of n tokens.
Vocab TinySpmVocab(int n) {
  Vocab v;
  v.model = "llama";
  v.pre = "default";
  const char* base[] = {"<unk>", "<s>", "</s>"};
  for (int i = 0; i < n; ++i) {
    v.tokens.push_back(i < 3 ? base[i] : fmt::format("\xe2\x96\x81t{}", i));
    v.scores.push_back(i < 3 ? 0.0f : -(float)i);
    v.types.push_back(i == 0 ? TokenType::kUnknown : i < 3 ? TokenType::kControl : TokenType::kNormal);
  }
  v.unk = 0, v.bos = 1, v.eos = 2;
  v.add_bos = true;
  return v;
}

struct TinyOptions {
  int dim = 32, layers = 2, heads = 4, kv_heads = 2, ff = 64, vocab = 50;
  bool qwen2 = false;  // q/k/v biases, NeoX RoPE
  bool tied = false;   // no output.weight
};

// A tiny model with random F32 weights (fixed seed) for every required tensor, and a
// SentencePiece-style vocabulary.
Model TinyModel(const TinyOptions& o) {
  Model m;
  ModelConfig& c = m.config;
  c.arch = o.qwen2 ? "qwen2" : "llama";
  c.name = "tiny";
  c.dim = o.dim, c.n_layers = o.layers, c.n_heads = o.heads, c.n_kv_heads = o.kv_heads, c.ff = o.ff;
  c.head_dim = c.rope_dim = o.dim / o.heads;
  c.vocab = o.vocab, c.context = 64;
  c.rope_layout = o.qwen2 ? RopeLayout::kNeox : RopeLayout::kNormal;
  c.qkv_bias = o.qwen2;
  c.tied_embeddings = o.tied;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 0.5f);
  for (const ModelTensorSpec& s : ModelTensorSpecs(c)) {
    if (!s.required) continue;
    int64_t n = 1;
    for (int64_t d : s.ne) n *= d;
    std::vector<float> v((size_t)n);
    for (float& x : v) x = normal(rng) + (s.ne.size() == 1 && s.name.ends_with("norm.weight") ? 1.0f : 0.0f);
    m.weights.Add(MakeF32Tensor(s.name, s.ne, std::move(v)));
  }
  m.vocab = TinySpmVocab(o.vocab);
  return m;
}

void ExpectSameConfig(const ModelConfig& a, const ModelConfig& b) {
  EXPECT_EQ(a.arch, b.arch);
  EXPECT_EQ(a.dim, b.dim);
  EXPECT_EQ(a.n_layers, b.n_layers);
  EXPECT_EQ(a.n_heads, b.n_heads);
  EXPECT_EQ(a.n_kv_heads, b.n_kv_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.ff, b.ff);
  EXPECT_EQ(a.vocab, b.vocab);
  EXPECT_EQ(a.context, b.context);
  EXPECT_EQ(a.norm_eps, b.norm_eps);
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.rope_dim, b.rope_dim);
  EXPECT_EQ(a.rope_layout, b.rope_layout);
  EXPECT_EQ(a.rope_scaling.type, b.rope_scaling.type);
  EXPECT_EQ(a.rope_scaling.factor, b.rope_scaling.factor);
  EXPECT_EQ(a.tied_embeddings, b.tied_embeddings);
  EXPECT_EQ(a.qkv_bias, b.qkv_bias);
}

void ExpectSameVocab(const Vocab& a, const Vocab& b) {
  EXPECT_EQ(a.model, b.model);
  EXPECT_EQ(a.pre, b.pre);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.scores, b.scores);
  EXPECT_EQ(a.types, b.types);
  EXPECT_EQ(a.merges, b.merges);
  EXPECT_EQ(a.bos, b.bos);
  EXPECT_EQ(a.eos, b.eos);
  EXPECT_EQ(a.unk, b.unk);
  EXPECT_EQ(a.pad, b.pad);
  EXPECT_EQ(a.add_bos, b.add_bos);
  EXPECT_EQ(a.add_eos, b.add_eos);
  EXPECT_EQ(a.add_space_prefix, b.add_space_prefix);
}

// ---- loading -------------------------------------------------------------------------------

TEST(GgufModel, LoadStories260K) {
  Model m = LoadGgufModel(assets::kStoriesGguf);
  const ModelConfig& c = m.config;
  // The README: dim 64, hidden 172, 5 layers, 8 heads, 4 kv heads, vocab 512, rope dim 8,
  // rms eps 1e-5, context_length 2048; the GGUF carries output.weight.
  EXPECT_EQ(c.arch, "llama");
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.ff, 172);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.rope_dim, 8);
  EXPECT_EQ(c.vocab, 512);
  EXPECT_EQ(c.context, 2048);
  EXPECT_EQ(c.norm_eps, 1e-5f);
  EXPECT_EQ(c.rope_theta, 10000.0f);
  EXPECT_EQ(c.rope_layout, RopeLayout::kNormal);
  EXPECT_FALSE(c.tied_embeddings);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_TRUE(c.rope_scaling.type.empty());
  EXPECT_EQ(m.weights.size(), 48u);
  EXPECT_EQ(m.format, ModelFormat::kGguf);
  EXPECT_EQ(m.source, assets::kStoriesGguf);
  EXPECT_EQ(m.info.at("general.name"), "llama");

  const Vocab& v = m.vocab;
  EXPECT_EQ(v.model, "llama");
  ASSERT_EQ(v.size(), 512);
  EXPECT_EQ(v.tokens[0], "<unk>");
  EXPECT_EQ(v.types[0], TokenType::kUnknown);
  EXPECT_EQ(v.types[1], TokenType::kControl);
  EXPECT_EQ(v.types[3], TokenType::kByte);
  EXPECT_EQ(v.scores.size(), 512u);
  EXPECT_EQ(v.bos, 1);
  EXPECT_EQ(v.eos, 2);
  EXPECT_EQ(v.unk, 0);
  EXPECT_EQ(v.pad, -1);  // the file says 0xffffffff: out of range, llama.cpp keeps "none"
  EXPECT_TRUE(v.add_bos);  // no key: llama.cpp's SPM default
  EXPECT_FALSE(v.add_eos);
  EXPECT_TRUE(v.add_space_prefix);
  EXPECT_TRUE(v.merges.empty());
}

struct VocabDefaults {
  const char* file;
  int32_t bos, eos, unk, pad;
  bool add_bos, add_space_prefix;
  const char* pre;
};

TEST(GgufModel, VocabOnlyFilesWithLlamaCppDefaults) {
  // Ids from the files' keys where present, else llama.cpp's defaults (SPM: 1/2/0/-1 and BOS
  // added; BPE: 11/11/-1/-1, BOS only for Llama-3-style pre-tokenizers); add_bos from the key.
  const VocabDefaults cases[] = {
      {"ggml-vocab-llama-spm.gguf", 1, 2, 0, -1, true, true, "default"},
      {"ggml-vocab-phi-3.gguf", 1, 32000, 0, 32000, true, true, "default"},
      {"ggml-vocab-gpt-2.gguf", 50256, 50256, -1, -1, false, false, "gpt-2"},
      {"ggml-vocab-starcoder.gguf", 0, 0, 0, -1, false, false, "starcoder"},
      {"ggml-vocab-deepseek-llm.gguf", 100000, 100001, -1, 100001, true, false, "deepseek-llm"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.file);
    Vocab v = LoadGgufVocab(assets::kVocabDir + c.file);
    EXPECT_EQ(v.bos, c.bos);
    EXPECT_EQ(v.eos, c.eos);
    EXPECT_EQ(v.unk, c.unk);
    EXPECT_EQ(v.pad, c.pad);
    EXPECT_EQ(v.add_bos, c.add_bos);
    EXPECT_FALSE(v.add_eos);
    EXPECT_EQ(v.add_space_prefix, c.add_space_prefix);
    EXPECT_EQ(v.pre, c.pre);
    EXPECT_EQ(v.types.size(), v.tokens.size());
    if (v.model == "gpt2") {
      EXPECT_FALSE(v.merges.empty());
      EXPECT_TRUE(v.scores.empty());
    } else {
      EXPECT_EQ(v.scores.size(), v.tokens.size());
    }
  }
  // phi-3's vocabulary file says architecture phi3, which smelt does not run.
  ExpectError([] { LoadGgufModel(assets::kVocabDir + "ggml-vocab-phi-3.gguf"); }, assets::kVocabDir + "ggml-vocab-phi-3.gguf: ",
              "architecture phi3 is not supported");
}

// A vocabulary-only file with the given tokenizer keys.
Vocab VocabFromKeys(const std::function<void(GgufWriter&)>& keys) {
  GgufWriter w;
  keys(w);
  std::vector<uint8_t> b = w.WriteToMemory();
  return GgufToVocab(GgufFile::Parse(b.data(), b.size(), "vocab.gguf"));
}

TEST(GgufModel, VocabDefaultsFollowLlamaCpp) {
  std::vector<std::string> tokens;
  for (int i = 0; i < 20; ++i) tokens.push_back(fmt::format("t{}", i));
  auto gpt2 = [&](const char* pre) {
    return [=](GgufWriter& w) {
      w.Set("tokenizer.ggml.model", GgufValue::String("gpt2"));
      if (pre) w.Set("tokenizer.ggml.pre", GgufValue::String(pre));
      w.Set("tokenizer.ggml.tokens", GgufValue::StringArray(tokens));
      w.Set("tokenizer.ggml.merges", GgufValue::StringArray({"t 1"}));
    };
  };
  Vocab llama3 = VocabFromKeys(gpt2("llama-bpe"));
  EXPECT_TRUE(llama3.add_bos);
  EXPECT_FALSE(llama3.add_space_prefix);
  EXPECT_EQ(llama3.bos, 11);
  EXPECT_EQ(llama3.eos, 11);
  EXPECT_EQ(llama3.unk, -1);
  EXPECT_EQ(llama3.types, std::vector<TokenType>(20, TokenType::kNormal));
  Vocab qwen = VocabFromKeys(gpt2("qwen2"));
  EXPECT_FALSE(qwen.add_bos);
  Vocab nopre = VocabFromKeys(gpt2(nullptr));
  EXPECT_EQ(nopre.pre, "default");
  EXPECT_FALSE(nopre.add_bos);
  Vocab keyed = VocabFromKeys([&](GgufWriter& w) {
    gpt2("llama-bpe")(w);
    w.Set("tokenizer.ggml.add_bos_token", GgufValue::Bool(false));
    w.Set("tokenizer.ggml.bos_token_id", GgufValue::U32(5));
    w.Set("tokenizer.ggml.eos_token_id", GgufValue::U32(20));  // out of range: default kept
    w.Set("tokenizer.ggml.add_space_prefix", GgufValue::Bool(true));
  });
  EXPECT_FALSE(keyed.add_bos);
  EXPECT_EQ(keyed.bos, 5);
  EXPECT_EQ(keyed.eos, 11);
  EXPECT_TRUE(keyed.add_space_prefix);
  Vocab spm = VocabFromKeys([&](GgufWriter& w) {
    w.Set("tokenizer.ggml.model", GgufValue::String("llama"));
    w.Set("tokenizer.ggml.tokens", GgufValue::StringArray(tokens));
  });
  EXPECT_EQ(spm.bos, 1);
  EXPECT_EQ(spm.eos, 2);
  EXPECT_EQ(spm.unk, 0);
  EXPECT_TRUE(spm.add_bos);
  EXPECT_TRUE(spm.add_space_prefix);
  EXPECT_EQ(spm.scores, std::vector<float>(20, 0.0f));

  ExpectError([&] { VocabFromKeys([&](GgufWriter& w) { w.Set("x", GgufValue::U8(0)); }); }, "vocab.gguf: ",
              "missing key tokenizer.ggml.model");
  ExpectError([&] { VocabFromKeys([&](GgufWriter& w) { w.Set("tokenizer.ggml.model", GgufValue::String("bert")); }); },
              "vocab.gguf: ", "tokenizer model bert is not supported");
  ExpectError(
      [&] {
        VocabFromKeys([&](GgufWriter& w) {
          w.Set("tokenizer.ggml.model", GgufValue::String("gpt2"));
          w.Set("tokenizer.ggml.tokens", GgufValue::StringArray(tokens));
        });
      },
      "vocab.gguf: ", "merges");
  ExpectError(
      [&] {
        VocabFromKeys([&](GgufWriter& w) {
          w.Set("tokenizer.ggml.model", GgufValue::String("llama"));
          w.Set("tokenizer.ggml.tokens", GgufValue::StringArray(tokens));
          w.Set("tokenizer.ggml.scores", GgufValue::F32Array(std::vector<float>(3)));
        });
      },
      "vocab.gguf: ", "3 token scores for 20 tokens");
}

// ---- saving --------------------------------------------------------------------------------

TEST(GgufModel, SaveF32IsExactAndByteStable) {
  ScratchDir dir("gguf_model_f32");
  Model m = LoadGgufModel(assets::kStoriesGguf);
  const std::string a = dir.Path("a.gguf"), b = dir.Path("b.gguf");
  SaveGgufModel(m, a, {});
  SaveGgufModel(m, b, {DType::kF32});
  EXPECT_EQ(ReadAll(a), ReadAll(b));
  Model r = LoadGgufModel(a);
  ExpectSameConfig(r.config, m.config);
  ExpectSameVocab(r.vocab, m.vocab);
  ASSERT_EQ(r.weights.size(), m.weights.size());
  for (const Tensor& t : m.weights.all()) {
    const Tensor& u = r.weights.Get(t.name);
    EXPECT_EQ(u.type, DType::kF32);
    EXPECT_EQ(u.ne, t.ne);
    ASSERT_EQ(u.nbytes, t.nbytes);
    EXPECT_EQ(std::memcmp(u.data, t.data, t.nbytes), 0) << t.name;
  }
  GgufFile f = GgufFile::Open(a);
  EXPECT_EQ(f.GetInt("general.file_type"), 0);
  EXPECT_FALSE(f.Has("general.quantization_version"));
  EXPECT_EQ(f.GetString("smelt.version"), kVersion);
  EXPECT_EQ(f.GetString("general.name"), "llama");
  EXPECT_EQ(f.Find("llama.block_count")->type(), GgufType::kU32);
  EXPECT_EQ(f.Find("llama.rope.freq_base")->type(), GgufType::kF32);
  EXPECT_EQ(f.Find("tokenizer.ggml.add_bos_token")->type(), GgufType::kBool);
  EXPECT_EQ(r.info.at("version"), kVersion);
}

// Largest |x| in the 32-value block of row r that holds column j.
float BlockMax(const std::vector<float>& x, int64_t ne0, int64_t r, int64_t j, int64_t block) {
  float m = 0;
  const int64_t start = r * ne0 + j / block * block;
  for (int64_t k = 0; k < block; ++k) m = std::max(m, std::fabs(x[(size_t)(start + k)]));
  return m;
}

TEST(GgufModel, SaveQuantizedConvertsMatricesAndFallsBackToF16) {
  ScratchDir dir("gguf_model_q");
  Model m = LoadGgufModel(assets::kStoriesGguf);
  struct Case {
    DType type;
    uint32_t ftype;
    float max_step;  // error bound as a fraction of the block's largest |x|
  };
  for (Case c : {Case{DType::kQ8_0, 7, 1.0f / 127}, Case{DType::kQ4_0, 2, 1.0f / 7}}) {
    SCOPED_TRACE(DTypeName(c.type));
    const std::string path = dir.Path(fmt::format("{}.gguf", DTypeName(c.type)));
    SaveGgufModel(m, path, {c.type});
    Model q = LoadGgufModel(path);
    ExpectSameConfig(q.config, m.config);
    GgufFile f = GgufFile::Open(path);
    EXPECT_EQ(f.GetInt("general.file_type"), c.ftype);
    EXPECT_EQ(f.GetInt("general.quantization_version"), 2);
    // ffn_down rows are 172 long: not whole blocks of 32, so written as F16 and recorded.
    std::string fallback = f.GetString("smelt.type_fallback");
    for (int l = 0; l < 5; ++l)
      EXPECT_NE(fallback.find(fmt::format("blk.{}.ffn_down.weight=f16", l)), std::string::npos) << fallback;
    EXPECT_EQ(q.info.at("type_fallback"), fallback);
    for (const Tensor& t : m.weights.all()) {
      const Tensor& u = q.weights.Get(t.name);
      const bool down = t.name.find("ffn_down") != std::string::npos;
      const DType want = t.n_dims == 1 ? DType::kF32 : down ? DType::kF16 : c.type;
      ASSERT_EQ(u.type, want) << t.name;
      std::vector<float> orig = DequantizeAll(t), got = DequantizeAll(u);
      for (size_t i = 0; i < orig.size(); ++i) {
        if (want == DType::kF32) {
          ASSERT_EQ(got[i], orig[i]);
        } else if (want == DType::kF16) {
          ASSERT_EQ(got[i], Fp16ToFloat(FloatToFp16(orig[i]))) << t.name << " " << i;
        } else {
          // Round to nearest of a grid with step amax/127 (Q8_0) or amax/8 (Q4_0, one-sided
          // range), plus the f16 rounding of the scale.
          const int64_t r = (int64_t)i / t.ne[0], j = (int64_t)i % t.ne[0];
          const float amax = BlockMax(orig, t.ne[0], r, j, 32);
          ASSERT_LE(std::fabs(got[i] - orig[i]), amax * c.max_step + 1e-3f * amax) << t.name << " " << i;
        }
      }
    }
  }
}

// stories260K's rows (64, 172) are no whole number of 256-value super-blocks: every matrix falls
// back to F16, and general.file_type says what was written.
TEST(GgufModel, FileTypeFollowsTheMatricesWritten) {
  if (!Traits(DType::kQ4_K).from_float) GTEST_SKIP() << "no q4_K encoder";
  ScratchDir dir("gguf_model_k");
  Model m = LoadGgufModel(assets::kStoriesGguf);
  SaveGgufModel(m, dir.Path("k.gguf"), {DType::kQ4_K});
  GgufFile f = GgufFile::Open(dir.Path("k.gguf"));
  EXPECT_EQ(f.GetInt("general.file_type"), 1);
  EXPECT_FALSE(f.Has("general.quantization_version"));
  for (const Tensor& t : f.tensors()) EXPECT_EQ(t.type, t.n_dims == 2 ? DType::kF16 : DType::kF32) << t.name;
  EXPECT_NE(f.GetString("smelt.type_fallback").find("token_embd.weight=f16"), std::string::npos);
}

TEST(GgufModel, SaveHalfTypesRoundEachValue) {
  ScratchDir dir("gguf_model_half");
  Model m = TinyModel({});
  for (DType type : {DType::kF16, DType::kBF16}) {
    const std::string path = dir.Path(fmt::format("{}.gguf", DTypeName(type)));
    SaveGgufModel(m, path, {type});
    Model r = LoadGgufModel(path);
    EXPECT_EQ(GgufFile::Open(path).GetInt("general.file_type"), type == DType::kF16 ? 1 : 32);
    EXPECT_FALSE(GgufFile::Open(path).Has("smelt.type_fallback"));
    for (const Tensor& t : m.weights.all()) {
      const Tensor& u = r.weights.Get(t.name);
      ASSERT_EQ(u.type, t.n_dims == 1 ? DType::kF32 : type);
      std::vector<float> got = DequantizeAll(u);
      for (int64_t i = 0; i < t.nelements(); ++i) {
        const float x = t.as<float>()[i];
        const float want = t.n_dims == 1 ? x : type == DType::kF16 ? Fp16ToFloat(FloatToFp16(x)) : Bf16ToFloat(FloatToBf16(x));
        ASSERT_EQ(got[(size_t)i], want) << t.name;
      }
    }
    // A second save of the converted model keeps its types (nullopt) and its bytes.
    const std::string again = dir.Path("again.gguf");
    SaveGgufModel(r, again, {});
    Model r2 = LoadGgufModel(again);
    for (const Tensor& t : r.weights.all()) {
      const Tensor& u = r2.weights.Get(t.name);
      EXPECT_EQ(u.type, t.type);
      EXPECT_EQ(std::memcmp(u.data, t.data, t.nbytes), 0);
    }
  }
}

TEST(GgufModel, Qwen2AndTiedRoundTrip) {
  ScratchDir dir("gguf_model_qwen2");
  TinyOptions o;
  o.qwen2 = true;
  o.tied = true;
  Model m = TinyModel(o);
  m.config.rope_theta = 1000000.0f;
  m.vocab.model = "gpt2";
  m.vocab.pre = "qwen2";
  m.vocab.scores.clear();
  m.vocab.merges = {"\xe2\x96\x81 t", "t 1"};
  m.vocab.add_bos = false;
  m.vocab.add_space_prefix = false;
  m.vocab.unk = -1;
  m.vocab.pad = 2;
  m.info["recipe"] = "gptq w4";
  m.info["general.author"] = "smelt tests";
  const std::string path = dir.Path("qwen2.gguf");
  SaveGgufModel(m, path, {});
  Model r = LoadGgufModel(path);
  ExpectSameConfig(r.config, m.config);
  ExpectSameVocab(r.vocab, m.vocab);
  EXPECT_EQ(r.config.rope_layout, RopeLayout::kNeox);
  EXPECT_TRUE(r.config.qkv_bias);
  EXPECT_TRUE(r.config.tied_embeddings);
  EXPECT_FALSE(r.weights.Contains("output.weight"));
  EXPECT_TRUE(r.weights.Contains("blk.1.attn_v.bias"));
  EXPECT_EQ(r.info.at("recipe"), "gptq w4");
  EXPECT_EQ(r.info.at("general.author"), "smelt tests");
  EXPECT_EQ(r.info.at("general.name"), "tiny");
  GgufFile f = GgufFile::Open(path);
  EXPECT_EQ(f.GetString("general.architecture"), "qwen2");
  EXPECT_EQ(f.GetString("smelt.recipe"), "gptq w4");
  EXPECT_FALSE(f.Has("tokenizer.ggml.add_space_prefix"));

  // A qwen2 file without the biases is rejected, naming the tensor.
  Model nobias = TinyModel(o);
  Weights w;
  for (const Tensor& t : nobias.weights.all())
    if (t.name != "blk.0.attn_k.bias") w.Add(t);
  nobias.weights = w;
  ExpectError([&] { SaveGgufModel(nobias, dir.Path("x.gguf"), {}); }, dir.Path("x.gguf") + ": ",
              "missing tensor blk.0.attn_k.bias");
  Model wrong_layout = TinyModel(o);
  wrong_layout.config.rope_layout = RopeLayout::kNormal;
  ExpectError([&] { SaveGgufModel(wrong_layout, dir.Path("x.gguf"), {}); }, dir.Path("x.gguf") + ": ", "NeoX");
  EXPECT_FALSE(std::filesystem::exists(dir.Path("x.gguf")));
}

TEST(GgufModel, Llama3RopeScaling) {
  ScratchDir dir("gguf_model_llama3");
  TinyOptions o;
  o.dim = 64;
  o.heads = 2;
  o.kv_heads = 1;
  Model m = TinyModel(o);  // head dim 32: 16 rotated pairs
  RopeScaling& s = m.config.rope_scaling;
  s.type = "llama3";
  s.factor = 8;
  s.low_freq_factor = 1;
  s.high_freq_factor = 4;
  s.original_context = 64;
  const std::string path = dir.Path("l3.gguf");
  SaveGgufModel(m, path, {});
  Model r = LoadGgufModel(path);
  EXPECT_EQ(r.config.rope_scaling.type, "llama3");
  EXPECT_EQ(r.config.rope_scaling.factor, 8.0f);
  EXPECT_EQ(r.config.rope_scaling.low_freq_factor, 1.0f);
  EXPECT_EQ(r.config.rope_scaling.high_freq_factor, 4.0f);
  EXPECT_EQ(r.config.rope_scaling.original_context, 64);
  // rope_freqs.weight: 1 for wavelengths below 64/4, 8 above 64/1, smooth and rising between.
  const Tensor& freqs = r.weights.Get("rope_freqs.weight");
  ASSERT_EQ(freqs.ne[0], 16);
  for (int i = 0; i < 16; ++i) {
    const double wavelen = 2 * M_PI * std::pow(10000.0, 2.0 * i / 32);
    const float f = freqs.as<float>()[i];
    if (wavelen < 16) {
      EXPECT_EQ(f, 1.0f) << i;
    } else if (wavelen > 64) {
      EXPECT_EQ(f, 8.0f) << i;
    } else {
      EXPECT_GT(f, 1.0f);
      EXPECT_LT(f, 8.0f);
    }
    if (i > 0) {
      EXPECT_GE(f, freqs.as<float>()[i - 1]);
    }
  }
  // Without smelt's keys (a llama.cpp conversion), the tensor alone marks Llama 3 scaling.
  GgufFile f = GgufFile::Open(path);
  GgufWriter w;
  for (const GgufKV& kv : f.kvs())
    if (!kv.key.starts_with("smelt.rope_scaling.")) w.Set(kv.key, kv.value);
  for (const Tensor& t : f.tensors()) w.AddTensor(t);
  std::vector<uint8_t> bytes = w.WriteToMemory();
  Model plain = GgufToModel(GgufFile::Parse(bytes.data(), bytes.size(), "plain.gguf"));
  EXPECT_EQ(plain.config.rope_scaling.type, "llama3");
  EXPECT_EQ(plain.config.rope_scaling.factor, 8.0f);
}

TEST(GgufModel, LinearRopeScalingUsesLlamaCppKeys) {
  ScratchDir dir("gguf_model_linear");
  Model m = TinyModel({});
  m.config.rope_scaling.type = "linear";
  m.config.rope_scaling.factor = 4;
  SaveGgufModel(m, dir.Path("lin.gguf"), {});
  GgufFile f = GgufFile::Open(dir.Path("lin.gguf"));
  EXPECT_EQ(f.GetString("llama.rope.scaling.type"), "linear");
  EXPECT_EQ(f.GetFloat("llama.rope.scaling.factor"), 4.0);
  Model r = GgufToModel(f);
  EXPECT_EQ(r.config.rope_scaling.type, "linear");
  EXPECT_EQ(r.config.rope_scaling.factor, 4.0f);
}

// ---- malformed models ----------------------------------------------------------------------

// stories260K re-written with `edit` applied to its tensor list.
std::vector<uint8_t> EditedStories(const std::function<void(std::vector<Tensor>&)>& edit) {
  GgufFile f = GgufFile::Open(assets::kStoriesGguf);
  GgufWriter w;
  for (const GgufKV& kv : f.kvs()) w.Set(kv.key, kv.value);
  std::vector<Tensor> tensors = f.tensors();
  edit(tensors);
  for (const Tensor& t : tensors) w.AddTensor(t);
  return w.WriteToMemory();
}

TEST(GgufModel, MissingOrMisshapedTensorsAreNamed) {
  auto load = [](const std::vector<uint8_t>& b) { GgufToModel(GgufFile::Parse(b.data(), b.size(), "m.gguf")); };
  std::vector<uint8_t> missing = EditedStories([](std::vector<Tensor>& ts) {
    std::erase_if(ts, [](const Tensor& t) { return t.name == "blk.3.ffn_up.weight"; });
  });
  ExpectError([&] { load(missing); }, "m.gguf: ", "missing tensor blk.3.ffn_up.weight");
  std::vector<uint8_t> reshaped = EditedStories([](std::vector<Tensor>& ts) {
    for (Tensor& t : ts)
      if (t.name == "blk.1.attn_k.weight") t.ne = {32, 64, 1, 1};
  });
  ExpectError([&] { load(reshaped); }, "m.gguf: ", "tensor blk.1.attn_k.weight has shape [32, 64], expected [64, 32]");
  std::vector<uint8_t> untied = EditedStories([](std::vector<Tensor>& ts) {
    std::erase_if(ts, [](const Tensor& t) { return t.name == "output.weight"; });
  });
  GgufFile uf = GgufFile::Parse(untied.data(), untied.size(), "u.gguf");
  EXPECT_TRUE(GgufToModel(uf).config.tied_embeddings);
}

TEST(GgufModel, BadConfigValuesAreNamed) {
  GgufFile f = GgufFile::Open(assets::kStoriesGguf);
  auto with = [&](const std::string& key, GgufValue v) {
    GgufWriter w;
    for (const GgufKV& kv : f.kvs()) w.Set(kv.key, kv.key == key ? v : kv.value);
    for (const Tensor& t : f.tensors()) w.AddTensor(t);
    return w.WriteToMemory();
  };
  auto load = [](const std::vector<uint8_t>& b) { GgufToModel(GgufFile::Parse(b.data(), b.size(), "c.gguf")); };
  ExpectError([&] { load(with("llama.block_count", GgufValue::String("5"))); }, "c.gguf: key llama.block_count",
              "expected an integer, found string");
  ExpectError([&] { load(with("llama.attention.head_count", GgufValue::U32(0))); }, "c.gguf: ", "head_count");
  ExpectError([&] { load(with("llama.attention.head_count_kv", GgufValue::U32(3))); }, "c.gguf: ", "kv head count");
  ExpectError([&] { load(with("llama.embedding_length", GgufValue::I64(-64))); }, "c.gguf: ", "out of range");
  ExpectError([&] { load(with("tokenizer.ggml.tokens", GgufValue::StringArray({"a", "b"}))); }, "c.gguf: ",
              "2 tokens");
  ExpectError([&] { load(with("general.architecture", GgufValue::String("gpt2"))); }, "c.gguf: ",
              "architecture gpt2 is not supported");
  // Per-block feed-forward sizes: one per block, each positive, each matching the block's tensors.
  const std::vector<int32_t> four = {172, 172, 172, 172}, zero = {172, 172, 0, 172, 172},
                             other = {172, 172, 160, 172, 172}, same = {172, 172, 172, 172, 172};
  ExpectError([&] { load(with("llama.feed_forward_length", GgufValue::I32Array(four))); }, "c.gguf: ",
              "4 sizes for 5 blocks");
  ExpectError([&] { load(with("llama.feed_forward_length", GgufValue::I32Array(zero))); }, "c.gguf: ",
              "out of range");
  ExpectError([&] { load(with("llama.feed_forward_length", GgufValue::I32Array(other))); }, "c.gguf: ",
              "tensor blk.2.ffn_gate.weight has shape [64, 172], expected [64, 160]");
  const std::vector<int32_t> heads = {8, 8, 8, 8, 3};
  ExpectError([&] { load(with("llama.attention.head_count", GgufValue::I32Array(heads))); }, "c.gguf: ",
              "block 4: head count 3 is not a multiple of kv head count 4");
  const std::vector<int32_t> kv = {4, 4, 4, 4, 8};
  ExpectError([&] { load(with("llama.attention.head_count_kv", GgufValue::I32Array(kv))); }, "c.gguf: ",
              "block 4 has 1 heads per kv head, block 0 has 2");
  ExpectError([&] { load(with("llama.block_count", GgufValue::U32(1u << 30))); }, "c.gguf: ", "out of range");
  const std::vector<uint8_t> uniform = with("llama.feed_forward_length", GgufValue::I32Array(same));
  const Model m = GgufToModel(GgufFile::Parse(uniform.data(), uniform.size(), "c.gguf"));
  EXPECT_EQ(m.config.ff, 172);
  EXPECT_TRUE(m.config.layer_ff.empty());  // an array of equal sizes is one size
}

TEST(GgufModel, LlamaFileTypes) {
  EXPECT_EQ(LlamaFileType(DType::kF32), 0u);
  EXPECT_EQ(LlamaFileType(DType::kF16), 1u);
  EXPECT_EQ(LlamaFileType(DType::kQ4_0), 2u);
  EXPECT_EQ(LlamaFileType(DType::kQ4_1), 3u);
  EXPECT_EQ(LlamaFileType(DType::kQ8_0), 7u);
  EXPECT_EQ(LlamaFileType(DType::kQ5_0), 8u);
  EXPECT_EQ(LlamaFileType(DType::kQ5_1), 9u);
  EXPECT_EQ(LlamaFileType(DType::kBF16), 32u);
  EXPECT_FALSE(LlamaFileType(DType::kI32).has_value());
}

// ---- llama.cpp loads and runs what smelt writes ---------------------------------------------

// Token ids for `text` by greedy longest match over the vocabulary (any valid ids will do for
// comparing two files; this just makes them a plausible story).
std::vector<int32_t> NaiveIds(const Vocab& v, const std::string& text) {
  std::map<std::string, int32_t> index;
  for (int32_t i = 0; i < v.size(); ++i) index.emplace(v.tokens[i], i);
  std::string s;
  for (char ch : " " + text) s += ch == ' ' ? std::string("\xe2\x96\x81") : std::string(1, ch);
  std::vector<int32_t> ids = {v.bos};
  size_t p = 0;
  while (p < s.size()) {
    size_t best = 0;
    int32_t id = -1;
    for (size_t len = 1; len <= 16 && p + len <= s.size(); ++len) {
      auto it = index.find(s.substr(p, len));
      if (it != index.end()) best = len, id = it->second;
    }
    if (id < 0) {  // byte fallback
      id = index.at(fmt::format("<0x{:02X}>", (uint8_t)s[p]));
      best = 1;
    }
    ids.push_back(id);
    p += best;
  }
  return ids;
}

const std::string kStoryText =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she "
    "saw a big, red ball.";

const std::vector<peer::PositionLogprobs>& OriginalLogprobs(const std::vector<int32_t>& ids) {
  static const std::vector<peer::PositionLogprobs> lp = peer::Logprobs(assets::kStoriesGguf, ids);
  return lp;
}

TEST(GgufModelPeer, F32RewriteGivesIdenticalLogprobs) {
  if (!peer::Available()) GTEST_SKIP() << "llama.cpp peer not available";
  ScratchDir dir("gguf_peer_f32");
  Model m = LoadGgufModel(assets::kStoriesGguf);
  const std::vector<int32_t> ids = NaiveIds(m.vocab, kStoryText);
  const std::string path = dir.Path("f32.gguf");
  SaveGgufModel(m, path, {DType::kF32});
  const auto& want = OriginalLogprobs(ids);
  const auto got = peer::Logprobs(path, ids);
  ASSERT_EQ(got.size(), ids.size());
  ASSERT_EQ(want.size(), ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(got[i].top, want[i].top) << i;
    EXPECT_EQ(got[i].next_true, want[i].next_true) << i;
  }
}

TEST(GgufModelPeer, QuantizedRewritesLoadAndAgreeOnTopTokens) {
  if (!peer::Available()) GTEST_SKIP() << "llama.cpp peer not available";
  ScratchDir dir("gguf_peer_q");
  Model m = LoadGgufModel(assets::kStoriesGguf);
  const std::vector<int32_t> ids = NaiveIds(m.vocab, kStoryText);
  const auto& want = OriginalLogprobs(ids);
  for (auto [type, min_agree] : {std::pair{DType::kF16, 0.95}, {DType::kQ8_0, 0.9}, {DType::kQ4_0, 0.6}}) {
    SCOPED_TRACE(DTypeName(type));
    const std::string path = dir.Path(fmt::format("{}.gguf", DTypeName(type)));
    SaveGgufModel(m, path, {type});
    const auto got = peer::Logprobs(path, ids);
    ASSERT_EQ(got.size(), ids.size());
    int same = 0;
    for (size_t i = 0; i < ids.size(); ++i) {
      ASSERT_FALSE(got[i].top.empty());
      for (const auto& [tok, lp] : got[i].top) {
        EXPECT_TRUE(std::isfinite(lp));
        EXPECT_LE(lp, 0.0);
      }
      same += got[i].top[0].first == want[i].top[0].first;
    }
    const double agree = (double)same / ids.size();
    EXPECT_GE(agree, min_agree);
    std::printf("[ info ] %s: same top token as the original at %d of %zu positions\n",
                std::string(DTypeName(type)).c_str(), same, ids.size());
  }
}

// llama.cpp accepts smelt's qwen2 layout (biases, NeoX, tied head, gpt2 vocabulary) and a tied
// Q8_0 llama.
TEST(GgufModelPeer, Qwen2AndTiedFilesLoad) {
  if (!peer::Available()) GTEST_SKIP() << "llama.cpp peer not available";
  ScratchDir dir("gguf_peer_qwen2");
  TinyOptions o;
  o.qwen2 = true;
  o.tied = true;
  o.vocab = 300;
  Model m = TinyModel(o);
  Vocab& v = m.vocab;
  v.model = "gpt2";
  v.pre = "qwen2";
  v.scores.clear();
  v.merges = {"\xe2\x96\x81 t"};
  v.add_bos = false;
  v.add_space_prefix = false;
  const std::string path = dir.Path("qwen2.gguf");
  SaveGgufModel(m, path, {});
  o.qwen2 = false;
  o.dim = 64;
  const std::string path8 = dir.Path("tied_q8_0.gguf");
  Model llama = TinyModel(o);
  llama.vocab = SyntheticVocab(o.vocab);  // llama.cpp's SPM tokenizer needs the byte tokens
  SaveGgufModel(llama, path8, {DType::kQ8_0});
  for (const std::string& p : {path, path8}) {
    const auto lp = peer::Logprobs(p, {1, 5, 7, 9, 200});
    ASSERT_EQ(lp.size(), 5u);
    for (const auto& pos : lp) {
      ASSERT_FALSE(pos.top.empty());
      for (const auto& [tok, logp] : pos.top) {
        EXPECT_TRUE(std::isfinite(logp));
        EXPECT_LT(tok, 300);
      }
    }
  }
}

// ---- fuzz seeds ----------------------------------------------------------------------------

// The seed files of fuzz/gguf_fuzz: tiny valid GGUFs. Regenerate them with
// SMELT_WRITE_FUZZ_SEEDS=1 smelt_tests --gtest_filter=GgufModel.FuzzSeeds
std::map<std::string, std::vector<uint8_t>> FuzzSeeds(const std::string& tmp) {
  std::map<std::string, std::vector<uint8_t>> seeds;
  auto save = [&](const std::string& name, const Model& m, std::optional<DType> type) {
    SaveGgufModel(m, tmp + "/" + name, {type});
    seeds[name] = ReadAll(tmp + "/" + name);
  };
  TinyOptions o;
  o.dim = 8, o.layers = 1, o.heads = 2, o.kv_heads = 1, o.ff = 16, o.vocab = 16;
  save("llama_f32.gguf", TinyModel(o), std::nullopt);
  o.qwen2 = true;
  save("qwen2_f16.gguf", TinyModel(o), DType::kF16);
  o = {};
  o.dim = 32, o.layers = 1, o.heads = 2, o.kv_heads = 1, o.ff = 32, o.vocab = 16, o.tied = true;
  save("llama_q8_0.gguf", TinyModel(o), DType::kQ8_0);

  GgufWriter w;
  w.Set("tokenizer.ggml.model", GgufValue::String("gpt2"));
  w.Set("tokenizer.ggml.pre", GgufValue::String("llama-bpe"));
  w.Set("tokenizer.ggml.tokens", GgufValue::StringArray({"a", "b", "ab", "\xc4\xa0"}));
  w.Set("tokenizer.ggml.merges", GgufValue::StringArray({"a b"}));
  w.Set("nested", GgufValue::ArrayOfArrays({GgufValue::I32Array(std::vector<int32_t>{1, 2}),
                                            GgufValue::StringArray({"x"})}));
  w.Set("f64", GgufValue::F64(0.25));
  w.Set("i8", GgufValue::I8(-1));
  seeds["vocab_gpt2.gguf"] = w.WriteToMemory();
  return seeds;
}

TEST(GgufModel, FuzzSeeds) {
  ScratchDir dir("gguf_seeds");
  const std::string corpus = std::string(SMELT_SOURCE_DIR) + "/fuzz/corpus/gguf_fuzz";
  const bool write = std::getenv("SMELT_WRITE_FUZZ_SEEDS") != nullptr;
  if (write) std::filesystem::create_directories(corpus);
  for (const auto& [name, bytes] : FuzzSeeds(dir.Path())) {
    SCOPED_TRACE(name);
    EXPECT_LT(bytes.size(), 10000u);
    GgufFile f = GgufFile::Parse(bytes.data(), bytes.size(), name);
    if (name.starts_with("vocab")) {
      EXPECT_EQ(GgufToVocab(f).size(), 4);
    } else {
      EXPECT_EQ(GgufToModel(f).config.n_layers, 1);
    }
    if (write) testing_util::WriteAll(corpus + "/" + name, bytes);
  }
}

}  // namespace
}  // namespace smelt
