// Hugging Face folders: the Q/K row permutation turns HF's rotate_half RoPE into llama.cpp's
// interleaved RoPE (checked on attention scores with naive RoPEs of both kinds); stories260K
// survives SaveHfModel -> LoadHfModel bit for bit, in one file and in shards; a hand-built Qwen2
// folder loads with its biases and NeoX layout; config.json fields (rope_scaling) parse; broken
// folders and refused exports fail cleanly and leave nothing behind.
#include "io/hf_model.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "core/half.h"
#include "io/gguf_model.h"
#include "io/hf_tokenizer.h"
#include "io/io_test_util.h"
#include "io/llama2c.h"
#include "io/safetensors.h"
#include "io/tokenizer.h"
#include "model/synth.h"
#include "peer.h"
#include "shared_assets.h"

namespace smelt {
namespace {

namespace fs = std::filesystem;
using testing_util::ExpectError;
using testing_util::ScratchDir;


std::vector<float> RandomVector(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> nd;
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}

// y = W x for W: ne {C, R} (R rows of C).
std::vector<double> MatVec(const Tensor& w, const std::vector<float>& x) {
  std::vector<double> y((size_t)w.ne[1]);
  for (int64_t r = 0; r < w.ne[1]; ++r) {
    for (int64_t c = 0; c < w.ne[0]; ++c) y[r] += (double)w.as<float>()[r * w.ne[0] + c] * x[c];
  }
  return y;
}

// Naive RoPE at position p over heads of size hd: pair i rotates by p * theta^(-2i/hd).
// NeoX/HF rotate_half pairs (i, i + hd/2); llama.cpp "normal" pairs (2i, 2i + 1).
void Rope(std::vector<double>& v, int hd, int p, bool neox) {
  for (size_t h = 0; h < v.size() / hd; ++h) {
    for (int i = 0; i < hd / 2; ++i) {
      double ang = p * std::pow(10000.0, -2.0 * i / hd);
      size_t a = h * hd + (neox ? i : 2 * i), b = h * hd + (neox ? i + hd / 2 : 2 * i + 1);
      double x = v[a], y = v[b];
      v[a] = x * std::cos(ang) - y * std::sin(ang);
      v[b] = x * std::sin(ang) + y * std::cos(ang);
    }
  }
}

TEST(HfModel, QkPermutationTurnsRotateHalfIntoInterleavedRope) {
  // GQA: 4 query heads share 2 kv heads; head size 8; model dim 12.
  const int hd = 8, nq = 4, nkv = 2, C = 12;
  std::mt19937 rng(11);
  Tensor wq = MakeF32Tensor("blk.0.attn_q.weight", {C, nq * hd}, RandomVector(C * nq * hd, rng));
  Tensor wk = MakeF32Tensor("blk.0.attn_k.weight", {C, nkv * hd}, RandomVector(C * nkv * hd, rng));
  Tensor pq = PermuteQkHfToGguf(wq, nq), pk = PermuteQkHfToGguf(wk, nkv);
  for (int trial = 0; trial < 4; ++trial) {
    std::vector<float> x1 = RandomVector(C, rng), x2 = RandomVector(C, rng);
    const int p1 = 3 + 5 * trial, p2 = 1 + trial;
    // HF: rotate_half RoPE on the HF weights.
    std::vector<double> q_hf = MatVec(wq, x1), k_hf = MatVec(wk, x2);
    Rope(q_hf, hd, p1, true);
    Rope(k_hf, hd, p2, true);
    // llama.cpp: interleaved RoPE on the permuted weights.
    std::vector<double> q_gg = MatVec(pq, x1), k_gg = MatVec(pk, x2);
    Rope(q_gg, hd, p1, false);
    Rope(k_gg, hd, p2, false);
    // The attention scores, what the model computes with them, agree head by head.
    for (int h = 0; h < nq; ++h) {
      const int kh = h / (nq / nkv);
      double s_hf = 0, s_gg = 0;
      for (int i = 0; i < hd; ++i) {
        s_hf += q_hf[h * hd + i] * k_hf[kh * hd + i];
        s_gg += q_gg[h * hd + i] * k_gg[kh * hd + i];
      }
      EXPECT_NEAR(s_gg, s_hf, 1e-9 * (1 + std::fabs(s_hf))) << "head " << h << " trial " << trial;
    }
    // Without the permutation the scores do differ (the test can fail).
    std::vector<double> q_raw = MatVec(wq, x1), k_raw = MatVec(wk, x2);
    Rope(q_raw, hd, p1, false);
    Rope(k_raw, hd, p2, false);
    double diff = 0;
    for (int h = 0; h < nq; ++h) {
      double a = 0, b = 0;
      for (int i = 0; i < hd; ++i) {
        a += q_raw[h * hd + i] * k_raw[(h / 2) * hd + i];
        b += q_hf[h * hd + i] * k_hf[(h / 2) * hd + i];
      }
      diff += std::fabs(a - b);
    }
    EXPECT_GT(diff, 1e-3);
  }
  // The inverse restores the HF order exactly; a bias permutes like its rows.
  Tensor back = PermuteQkGgufToHf(pq, nq);
  EXPECT_EQ(std::memcmp(back.data, wq.data, wq.nbytes), 0);
  Tensor bias = MakeF32Tensor("blk.0.attn_q.bias", {nq * hd}, RandomVector(nq * hd, rng));
  Tensor pb = PermuteQkHfToGguf(bias, nq);
  for (int64_t r = 0; r < nq * hd; ++r) {
    const float* row = pq.as<float>() + r * C;
    // Row r of the permuted matrix came from the same HF row as bias entry r.
    int64_t src = -1;
    for (int64_t s = 0; s < nq * hd; ++s) {
      if (std::memcmp(row, wq.as<float>() + s * C, C * sizeof(float)) == 0) src = s;
    }
    ASSERT_GE(src, 0);
    EXPECT_EQ(pb.as<float>()[r], bias.as<float>()[src]);
  }
  ExpectError([&] { PermuteQkHfToGguf(wq, 3); }, "tensor blk.0.attn_q.weight", "heads");
}

Model StoriesFromLlama2c() { return LoadLlama2cModel(assets::kStoriesDir + "/stories260K.bin", assets::kStoriesDir + "/tok512.bin"); }

void ExpectBitIdentical(const Model& a, const Model& b) {
  ASSERT_EQ(a.weights.size(), b.weights.size());
  for (const Tensor& t : a.weights.all()) {
    const Tensor* o = b.weights.Find(t.name);
    ASSERT_NE(o, nullptr) << t.name;
    testing_util::ExpectSameTensor(t, *o, t.name);
  }
  const ModelConfig &x = a.config, &y = b.config;
  EXPECT_EQ(x.arch, y.arch);
  EXPECT_EQ(x.dim, y.dim);
  EXPECT_EQ(x.n_layers, y.n_layers);
  EXPECT_EQ(x.n_heads, y.n_heads);
  EXPECT_EQ(x.n_kv_heads, y.n_kv_heads);
  EXPECT_EQ(x.head_dim, y.head_dim);
  EXPECT_EQ(x.ff, y.ff);
  EXPECT_EQ(x.vocab, y.vocab);
  EXPECT_EQ(x.context, y.context);
  EXPECT_EQ(x.norm_eps, y.norm_eps);
  EXPECT_EQ(x.rope_theta, y.rope_theta);
  EXPECT_EQ(x.rope_layout, y.rope_layout);
  EXPECT_EQ(x.tied_embeddings, y.tied_embeddings);
  EXPECT_EQ(a.vocab.tokens, b.vocab.tokens);
  EXPECT_EQ(a.vocab.bos, b.vocab.bos);
  EXPECT_EQ(a.vocab.eos, b.vocab.eos);
}

TEST(HfModel, StoriesRoundTripF32IsBitIdentical) {
  ScratchDir dir("hf_rt");
  Model m = StoriesFromLlama2c();
  const std::string out = dir.Path("stories-hf");
  SaveHfModel(m, out, {});
  EXPECT_TRUE(fs::exists(out + "/model.safetensors"));
  EXPECT_FALSE(fs::exists(out + "/model.safetensors.index.json"));
  for (const char* f : {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"})
    EXPECT_TRUE(fs::exists(out + "/" + f)) << f;
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.Path()), fs::directory_iterator()), 1);  // no temp left

  auto cfg = nlohmann::json::parse(testing_util::ReadAll(out + "/config.json"));
  EXPECT_EQ(cfg["architectures"][0], "LlamaForCausalLM");
  EXPECT_EQ(cfg["hidden_size"], 64);
  EXPECT_EQ(cfg["num_key_value_heads"], 4);
  EXPECT_EQ(cfg["rms_norm_eps"].get<double>(), 1e-5);
  EXPECT_EQ(cfg["tie_word_embeddings"], true);
  EXPECT_EQ(cfg["torch_dtype"], "float32");

  // The HF file holds Q in rotate_half order: llama2.c export.py's hf_export permute_original,
  // w.reshape(n_heads, hd/2, 2, dim).transpose(1, 2): HF row h*hd + s*hd/2 + j <- row h*hd + 2j + s.
  SafetensorsFile st = ReadSafetensors(out + "/model.safetensors");
  const Tensor* hq = st.Find("model.layers.0.self_attn.q_proj.weight");
  const Tensor* hk = st.Find("model.layers.0.self_attn.k_proj.weight");
  ASSERT_NE(hq, nullptr);
  ASSERT_NE(hk, nullptr);
  EXPECT_EQ(st.Find("lm_head.weight"), nullptr);
  auto check_rows = [&](const Tensor& hf, const Tensor& orig, int heads) {
    const int64_t dim = orig.ne[0], hd = orig.ne[1] / heads;
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t s = 0; s < 2; ++s)
        for (int64_t j = 0; j < hd / 2; ++j)
          ASSERT_EQ(std::memcmp(hf.as<float>() + (h * hd + s * hd / 2 + j) * dim,
                                orig.as<float>() + (h * hd + 2 * j + s) * dim, dim * 4), 0);
  };
  check_rows(*hq, m.weights.Get("blk.0.attn_q.weight"), 8);
  check_rows(*hk, m.weights.Get("blk.0.attn_k.weight"), 4);

  Model back = LoadHfModel(out);
  EXPECT_EQ(back.format, ModelFormat::kHuggingFace);
  ExpectBitIdentical(m, back);
}

TEST(HfModel, StoriesRoundTripSharded) {
  ScratchDir dir("hf_shards");
  Model m = StoriesFromLlama2c();
  const std::string out = dir.Path("sharded");
  const uint64_t max = 150000;
  SaveHfModel(m, out, {DType::kF32, max});
  ASSERT_TRUE(fs::exists(out + "/model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(out + "/model.safetensors"));
  int shards = 0;
  for (const auto& e : fs::directory_iterator(out)) {
    if (e.path().extension() != ".safetensors") continue;
    ++shards;
    SafetensorsFile f = ReadSafetensors(e.path().string());
    uint64_t bytes = 0;
    for (const Tensor& t : f.tensors) bytes += t.nbytes;
    if (f.tensors.size() > 1) {
      EXPECT_LE(bytes, max) << e.path();
    }
  }
  EXPECT_GE(shards, 3);
  auto index = nlohmann::json::parse(testing_util::ReadAll(out + "/model.safetensors.index.json"));
  EXPECT_EQ(index["weight_map"].size(), m.weights.size());
  EXPECT_EQ(index["weight_map"]["model.embed_tokens.weight"], fmt::format("model-00001-of-{:05d}.safetensors", shards));
  ExpectBitIdentical(m, LoadHfModel(out));
}

TEST(HfModel, HalfPrecisionExportsRoundEachValue) {
  ScratchDir dir("hf_half");
  Model m = StoriesFromLlama2c();
  for (DType type : {DType::kF16, DType::kBF16}) {
    const std::string out = dir.Path(type == DType::kF16 ? "f16" : "bf16");
    SaveHfModel(m, out, {type, 0});
    Model back = LoadHfModel(out);
    for (const Tensor& t : m.weights.all()) {
      const Tensor& b = back.weights.Get(t.name);
      auto round = [&](float x) { return type == DType::kF16 ? Fp16ToFloat(FloatToFp16(x)) : Bf16ToFloat(FloatToBf16(x)); };
      for (int64_t i = 0; i < t.nelements(); i += 7) {
        const float want = round(t.as<float>()[i]);
        float got;
        if (t.n_dims == 1) {  // norms come back as F32
          ASSERT_EQ(b.type, DType::kF32);
          got = b.as<float>()[i];
        } else {
          ASSERT_EQ(b.type, type);
          got = type == DType::kF16 ? Fp16ToFloat(b.as<uint16_t>()[i]) : Bf16ToFloat(b.as<uint16_t>()[i]);
        }
        ASSERT_EQ(got, want) << t.name << "[" << i << "]";
      }
    }
    auto cfg = nlohmann::json::parse(testing_util::ReadAll(out + "/config.json"));
    EXPECT_EQ(cfg["torch_dtype"], type == DType::kF16 ? "float16" : "bfloat16");
  }
}

TEST(HfModel, RefusedExportsLeaveNothing) {
  ScratchDir dir("hf_refuse");
  Model m = StoriesFromLlama2c();
  ExpectError([&] { SaveHfModel(m, dir.Path("q"), {DType::kQ4_0, 0}); }, dir.Path("q"), "F32, F16 or BF16");
  Model broken = m;
  broken.weights = Weights();
  for (const Tensor& t : m.weights.all())
    if (t.name != "blk.4.ffn_up.weight") broken.weights.Add(t);
  ExpectError([&] { SaveHfModel(broken, dir.Path("b"), {}); }, dir.Path("b"), "blk.4.ffn_up.weight");
  Model extra = m;
  extra.weights.Add(MakeF32Tensor("blk.0.attn_q.bias", {64}, std::vector<float>(64)));
  ExpectError([&] { SaveHfModel(extra, dir.Path("e"), {}); }, dir.Path("e"), "needs biases");
  extra = m;
  extra.weights.Add(MakeF32Tensor("blk.0.ffn_gate_inp.weight", {64}, std::vector<float>(64)));
  ExpectError([&] { SaveHfModel(extra, dir.Path("e"), {}); }, dir.Path("e"), "no Hugging Face equivalent");
  EXPECT_TRUE(fs::is_empty(dir.Path()));
  fs::create_directories(dir.Path("full"));
  testing_util::WriteText(dir.Path("full/x"), "keep me");
  ExpectError([&] { SaveHfModel(m, dir.Path("full"), {}); }, dir.Path("full"), "not empty");
  EXPECT_TRUE(fs::exists(dir.Path("full/x")));
  fs::create_directories(dir.Path("empty"));
  SaveHfModel(m, dir.Path("empty") + "/", {});
  EXPECT_TRUE(fs::exists(dir.Path("empty/model.safetensors")));
}

TEST(HfModel, ParsesLlama3RopeScalingAndRefusesUnknownArchitectures) {
  const std::string llama31 = R"({
    "architectures": ["LlamaForCausalLM"], "hidden_size": 2048, "intermediate_size": 8192,
    "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
    "vocab_size": 128256, "max_position_embeddings": 131072, "rms_norm_eps": 1e-05,
    "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"}})";
  ModelConfig c = ParseHfConfig(llama31, "config.json");
  EXPECT_EQ(c.arch, "llama");
  EXPECT_EQ(c.dim, 2048);
  EXPECT_EQ(c.n_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.context, 131072);
  EXPECT_EQ(c.rope_theta, 500000.0f);
  EXPECT_EQ(c.norm_eps, 1e-5f);
  EXPECT_EQ(c.rope_layout, RopeLayout::kNormal);
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_EQ(c.rope_scaling.factor, 32.0f);
  EXPECT_EQ(c.rope_scaling.low_freq_factor, 1.0f);
  EXPECT_EQ(c.rope_scaling.high_freq_factor, 4.0f);
  EXPECT_EQ(c.rope_scaling.original_context, 8192);
  // Written back and parsed again: the same numbers.
  ModelConfig again = ParseHfConfig(HfConfigJson(c, DType::kBF16, 1, 2), "again.json");
  EXPECT_EQ(again.rope_scaling.type, "llama3");
  EXPECT_EQ(again.rope_scaling.factor, 32.0f);
  EXPECT_EQ(again.rope_scaling.original_context, 8192);
  EXPECT_EQ(again.rope_theta, c.rope_theta);
  EXPECT_EQ(again.norm_eps, c.norm_eps);
  EXPECT_EQ(again.head_dim, 64);

  const std::string base = R"("hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
      "num_attention_heads": 4, "vocab_size": 100)";
  ModelConfig lin = ParseHfConfig(R"({"architectures": ["LlamaForCausalLM"], )" + base +
                                      R"(, "rope_scaling": {"type": "linear", "factor": 2.0}})",
                                  "lin.json");
  EXPECT_EQ(lin.rope_scaling.type, "linear");
  EXPECT_EQ(lin.rope_scaling.factor, 2.0f);
  EXPECT_EQ(lin.n_kv_heads, 4);   // defaults to the head count
  EXPECT_EQ(lin.head_dim, 16);    // hidden / heads
  EXPECT_EQ(lin.rope_theta, 10000.0f);
  ModelConfig mistral = ParseHfConfig(R"({"architectures": ["MistralForCausalLM"], "sliding_window": 4096, )" + base + "}",
                                      "m.json");
  EXPECT_EQ(mistral.arch, "llama");
  ModelConfig qwen = ParseHfConfig(R"({"architectures": ["Qwen2ForCausalLM"], )" + base + "}", "q.json");
  EXPECT_EQ(qwen.arch, "qwen2");
  EXPECT_TRUE(qwen.qkv_bias);
  EXPECT_EQ(qwen.rope_layout, RopeLayout::kNeox);

  ExpectError([&] { ParseHfConfig(R"({"architectures": ["GPT2LMHeadModel"], )" + base + "}", "g.json"); }, "g.json",
              "architecture GPT2LMHeadModel not supported");
  ExpectError([&] { ParseHfConfig(R"({"architectures": ["LlamaForCausalLM"], "rope_scaling": {"rope_type": "yarn"}, )" + base + "}", "y.json"); },
              "y.json", "rope_scaling type yarn not supported");
  ExpectError([&] { ParseHfConfig(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64})", "h.json"); }, "h.json",
              "missing \"num_hidden_layers\"");
  ExpectError([&] { ParseHfConfig(R"({"architectures": ["LlamaForCausalLM"], "num_key_value_heads": 3, )" + base + "}", "k.json"); },
              "k.json", "not a multiple");
  ExpectError([&] { ParseHfConfig("{\"architectures\": [\"LlamaForCausalLM\"], " + base + ", \"hidden_act\": \"gelu\"}", "a.json"); },
              "a.json", "hidden_act");
  ExpectError([&] { ParseHfConfig("{nope", "bad.json"); }, "bad.json", "invalid JSON");
}

// A Qwen2 folder assembled from HF names: BF16 matrices and norms, F32 biases, tied embeddings.
struct QwenFolder {
  ScratchDir dir{"hf_qwen"};
  std::vector<Tensor> hf;  // as written
  static constexpr int kDim = 8, kHeads = 2, kKv = 1, kHd = 4, kFf = 12, kLayers = 2, kVocab = 300;
  QwenFolder() {
    std::mt19937 rng(17);
    auto add = [&](const std::string& name, std::vector<int64_t> ne, DType type) {
      size_t n = 1;
      for (int64_t d : ne) n *= (size_t)d;
      Tensor t = MakeF32Tensor(name, ne, RandomVector(n, rng));
      if (type == DType::kBF16) {
        auto buf = std::make_shared<std::vector<uint16_t>>(n);
        for (size_t i = 0; i < n; ++i) (*buf)[i] = FloatToBf16(t.as<float>()[i]);
        t.type = type;
        t.data = buf->data();
        t.nbytes = n * 2;
        t.owner = std::shared_ptr<const void>(buf, buf->data());
      }
      hf.push_back(t);
    };
    add("model.embed_tokens.weight", {kDim, kVocab}, DType::kBF16);
    for (int l = 0; l < kLayers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      add(p + "input_layernorm.weight", {kDim}, DType::kBF16);
      add(p + "self_attn.q_proj.weight", {kDim, kHeads * kHd}, DType::kBF16);
      add(p + "self_attn.q_proj.bias", {kHeads * kHd}, DType::kF32);
      add(p + "self_attn.k_proj.weight", {kDim, kKv * kHd}, DType::kBF16);
      add(p + "self_attn.k_proj.bias", {kKv * kHd}, DType::kF32);
      add(p + "self_attn.v_proj.weight", {kDim, kKv * kHd}, DType::kBF16);
      add(p + "self_attn.v_proj.bias", {kKv * kHd}, DType::kF32);
      add(p + "self_attn.o_proj.weight", {kHeads * kHd, kDim}, DType::kBF16);
      add(p + "post_attention_layernorm.weight", {kDim}, DType::kBF16);
      add(p + "mlp.gate_proj.weight", {kDim, kFf}, DType::kBF16);
      add(p + "mlp.up_proj.weight", {kDim, kFf}, DType::kBF16);
      add(p + "mlp.down_proj.weight", {kFf, kDim}, DType::kBF16);
    }
    add("model.norm.weight", {kDim}, DType::kBF16);
    testing_util::WriteText(dir.Path("config.json"), R"({
      "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 8,
      "intermediate_size": 12, "num_hidden_layers": 2, "num_attention_heads": 2,
      "num_key_value_heads": 1, "vocab_size": 300, "max_position_embeddings": 4096,
      "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "tie_word_embeddings": true,
      "torch_dtype": "bfloat16", "sliding_window": 4096, "use_sliding_window": false,
      "bos_token_id": 1, "eos_token_id": 2})");
    SaveHfTokenizerJson(SyntheticVocab(kVocab), dir.Path("tokenizer.json"));
  }
  void WriteWeights(const std::vector<Tensor>& ts) { WriteSafetensors(dir.Path("model.safetensors"), ts); }
};

TEST(HfModel, Qwen2FolderWithBiasesLoads) {
  QwenFolder q;
  q.WriteWeights(q.hf);
  Model m = LoadHfModel(q.dir.Path());
  EXPECT_EQ(m.config.arch, "qwen2");
  EXPECT_TRUE(m.config.qkv_bias);
  EXPECT_EQ(m.config.rope_layout, RopeLayout::kNeox);
  EXPECT_TRUE(m.config.tied_embeddings);
  EXPECT_EQ(m.config.rope_theta, 1e6f);
  EXPECT_EQ(m.config.norm_eps, 1e-6f);
  EXPECT_EQ(m.config.context, 4096);
  EXPECT_EQ(m.info.at("hf.sliding_window"), "4096");
  EXPECT_EQ(m.weights.size(), 2u + 12u * QwenFolder::kLayers);
  EXPECT_EQ(m.vocab.size(), QwenFolder::kVocab);
  for (const Tensor& h : q.hf) {
    const std::string name = HfToCanonicalName(h.name);
    ASSERT_FALSE(name.empty()) << h.name;
    EXPECT_EQ(CanonicalToHfName(name), h.name);
    const Tensor& t = m.weights.Get(name);
    EXPECT_EQ(t.ne, h.ne) << name;
    if (h.n_dims == 1) {  // norms and biases as F32 values
      ASSERT_EQ(t.type, DType::kF32) << name;
      for (int64_t i = 0; i < h.nelements(); ++i) {
        float want = h.type == DType::kBF16 ? Bf16ToFloat(h.as<uint16_t>()[i]) : h.as<float>()[i];
        EXPECT_EQ(t.as<float>()[i], want) << name;
      }
    } else {  // matrices as they were, Q/K not permuted for NeoX RoPE
      EXPECT_EQ(t.type, DType::kBF16) << name;
      ASSERT_EQ(t.nbytes, h.nbytes);
      EXPECT_EQ(std::memcmp(t.data, h.data, h.nbytes), 0) << name;
    }
  }
  // Saved again (as Qwen2) and reloaded, the canonical tensors are unchanged.
  const std::string out = q.dir.Path("again");
  SaveHfModel(m, out, {DType::kBF16, 0});
  auto cfg = nlohmann::json::parse(testing_util::ReadAll(out + "/config.json"));
  EXPECT_EQ(cfg["architectures"][0], "Qwen2ForCausalLM");
  Model back = LoadHfModel(out);
  for (const Tensor& t : m.weights.all()) {
    const Tensor& b = back.weights.Get(t.name);
    ASSERT_EQ(b.nbytes, t.nbytes) << t.name;
    if (t.name.find(".bias") == std::string::npos) {  // BF16-exact values come back unchanged
      EXPECT_EQ(std::memcmp(b.data, t.data, t.nbytes), 0) << t.name;
    } else {  // F32 biases were stored as BF16
      for (int64_t i = 0; i < t.nelements(); ++i)
        EXPECT_EQ(b.as<float>()[i], Bf16ToFloat(FloatToBf16(t.as<float>()[i]))) << t.name;
    }
  }
}

TEST(HfModel, BrokenFoldersFail) {
  QwenFolder q;
  const std::string st = q.dir.Path("model.safetensors");
  ExpectError([&] { LoadHfModel(q.dir.Path()); }, q.dir.Path(), "no model.safetensors");
  std::vector<Tensor> ts = q.hf;
  ts.pop_back();  // model.norm.weight
  q.WriteWeights(ts);
  ExpectError([&] { LoadHfModel(q.dir.Path()); }, st, "missing tensor model.norm.weight");
  ts = q.hf;
  ts.push_back(MakeF32Tensor("model.layers.0.mlp.extra.weight", {2}, {1, 2}));
  q.WriteWeights(ts);
  ExpectError([&] { LoadHfModel(q.dir.Path()); }, st, "unexpected tensor model.layers.0.mlp.extra.weight");
  ts = q.hf;
  ts.push_back(MakeF32Tensor("model.layers.7.input_layernorm.weight", {8}, std::vector<float>(8)));
  q.WriteWeights(ts);
  ExpectError([&] { LoadHfModel(q.dir.Path()); }, st, "2-layer");
  ts = q.hf;
  ts[0] = MakeF32Tensor("model.embed_tokens.weight", {8, 299}, std::vector<float>(8 * 299));
  q.WriteWeights(ts);
  ExpectError([&] { LoadHfModel(q.dir.Path()); }, st, "does not match config.json");
  q.WriteWeights(q.hf);
  fs::remove(q.dir.Path("tokenizer.json"));
  ExpectError([&] { LoadHfModel(q.dir.Path()); }, q.dir.Path(), "no tokenizer.json or tokenizer.model");
  fs::remove(q.dir.Path("config.json"));
  ExpectError([&] { LoadHfModel(q.dir.Path()); }, q.dir.Path("config.json"), "cannot open");
}

// End to end against llama.cpp: stories260K from its llama2.c checkpoint, through a Hugging Face
// folder and back, written as GGUF, gives llama.cpp exactly the log-probs of ggml-org's own
// conversion of the model.
TEST(HfModelPeer, StoriesThroughHfRunsInLlamaCppLikeTheOfficialGguf) {
  if (!peer::Available()) GTEST_SKIP() << "llama.cpp peer not available";
  ScratchDir dir("hf_peer");
  SaveHfModel(StoriesFromLlama2c(), dir.Path("hf"), {});
  Model m = LoadHfModel(dir.Path("hf"));
  const std::string gguf = dir.Path("via_hf.gguf");
  SaveGgufModel(m, gguf, {});
  const std::vector<int32_t> ids =
      Tokenizer(m.vocab).Encode("Once upon a time, there was a little girl named Lily. She loved to play.", true);
  ASSERT_GT(ids.size(), 10u);
  const auto want = peer::Logprobs(assets::kStoriesDir + "/stories260K.gguf", ids);
  const auto got = peer::Logprobs(gguf, ids);
  ASSERT_EQ(got.size(), ids.size());
  ASSERT_EQ(want.size(), ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(got[i].top, want[i].top) << i;
    EXPECT_EQ(got[i].next_true, want[i].next_true) << i;
  }
}

}  // namespace
}  // namespace smelt
