// llama2.c checkpoints: the legacy and version-1 exports of stories260K and llama.cpp's GGUF
// conversion of the same model hold bit-identical tensors after smelt's mapping (this is also
// what settles that llama2.c's Q/K rows need no permutation); small checkpoints built from the
// layout in llama2.c's run.c/export.py land where the spec says; corrupt files fail cleanly.
#include "io/llama2c.h"

#include <gtest/gtest.h>

#include <cstring>

#include "io/gguf_model.h"
#include "io/io_test_util.h"
#include "shared_assets.h"

namespace smelt {
namespace {

using testing_util::ExpectError;
using testing_util::ExpectSameTensor;
using testing_util::ReadAll;


TEST(Llama2c, StoriesLegacyV1AndGgufHoldEqualTensors) {
  Model legacy = LoadLlama2cModel(assets::kStoriesDir + "/stories260K.bin", assets::kStoriesDir + "/tok512.bin");
  Model v1 = LoadLlama2cModel(assets::kStoriesDir + "/stories260K_v1.bin", assets::kStoriesDir + "/tok512.bin");
  Model gguf = LoadGgufModel(assets::kStoriesDir + "/stories260K.gguf");

  const ModelConfig& c = legacy.config;
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.ff, 172);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.vocab, 512);
  EXPECT_EQ(c.context, 512);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_TRUE(c.tied_embeddings);
  EXPECT_EQ(c.rope_layout, RopeLayout::kNormal);
  for (const Model* m : {&v1, &gguf}) {
    EXPECT_EQ(m->config.dim, c.dim);
    EXPECT_EQ(m->config.ff, c.ff);
    EXPECT_EQ(m->config.n_layers, c.n_layers);
    EXPECT_EQ(m->config.n_heads, c.n_heads);
    EXPECT_EQ(m->config.n_kv_heads, c.n_kv_heads);
    EXPECT_EQ(m->config.head_dim, c.head_dim);
    EXPECT_EQ(m->config.rope_dim, c.rope_dim);
    EXPECT_EQ(m->config.vocab, c.vocab);
    EXPECT_EQ(m->config.norm_eps, c.norm_eps);
    EXPECT_EQ(m->config.rope_layout, c.rope_layout);
  }
  EXPECT_EQ(legacy.vocab.size(), 512);

  // 5 layers x 9 tensors + embeddings + final norm; the classifier is the embedding table.
  ASSERT_EQ(legacy.weights.size(), 47u);
  ASSERT_EQ(v1.weights.size(), 47u);
  for (const Tensor& t : legacy.weights.all()) {
    const Tensor* o = v1.weights.Find(t.name);
    ASSERT_NE(o, nullptr) << t.name;
    ExpectSameTensor(t, *o, "v1 " + t.name);
  }
  // Every tensor of llama.cpp's conversion; its output.weight is a copy of the shared table.
  int compared = 0;
  for (const Tensor& g : gguf.weights.all()) {
    const std::string name = g.name == "output.weight" ? "token_embd.weight" : g.name;
    const Tensor* t = legacy.weights.Find(name);
    ASSERT_NE(t, nullptr) << g.name;
    ExpectSameTensor(*t, g, "gguf " + g.name);
    ++compared;
  }
  EXPECT_GE(compared, 47);
}

// A tiny checkpoint: header + floats numbered 0, 1, 2, ... so every tensor's first value is its
// float offset in the payload.
struct TinyDims {
  int32_t dim = 4, hidden = 6, layers = 2, heads = 2, kv_heads = 1, vocab = 5, seq = 3;
};

std::vector<uint8_t> TinyCheckpoint(const TinyDims& d, bool v1, bool shared) {
  std::vector<uint8_t> out;
  auto put32 = [&](uint32_t x) {
    for (int i = 0; i < 4; ++i) out.push_back((uint8_t)(x >> (8 * i)));
  };
  if (v1) {
    put32(0x616b3432);
    put32(1);
  }
  for (int32_t x : {d.dim, d.hidden, d.layers, d.heads, d.kv_heads, (v1 || shared) ? d.vocab : -d.vocab, d.seq})
    put32((uint32_t)x);
  if (v1) {
    out.push_back(shared ? 1 : 0);
    out.resize(256, 0);
  }
  const int64_t hs = d.dim / d.heads, kv = hs * d.kv_heads, L = d.layers;
  int64_t floats = (int64_t)d.vocab * d.dim + L * (2 * d.dim + 2 * d.dim * d.dim + 2 * d.dim * kv + 3 * d.dim * d.hidden) +
                   d.dim + (v1 ? 0 : d.seq * hs) + (shared ? 0 : (int64_t)d.vocab * d.dim);
  for (int64_t i = 0; i < floats; ++i) {
    float f = (float)i;
    uint8_t b[4];
    std::memcpy(b, &f, 4);
    out.insert(out.end(), b, b + 4);
  }
  return out;
}

float First(const Model& m, const std::string& name) { return m.weights.Get(name).as<float>()[0]; }

TEST(Llama2c, TinyLegacyUnsharedLayout) {
  TinyDims d;
  auto bytes = TinyCheckpoint(d, false, false);
  Model m = ParseLlama2cCheckpoint(bytes, "tiny.bin", nullptr);
  EXPECT_FALSE(m.config.tied_embeddings);
  // Offsets from run.c's memory_map_weights, dim 4, kv_dim 2, hidden 6, 2 layers, vocab 5.
  EXPECT_EQ(First(m, "token_embd.weight"), 0);
  EXPECT_EQ(First(m, "blk.0.attn_norm.weight"), 20);
  EXPECT_EQ(First(m, "blk.1.attn_norm.weight"), 24);
  EXPECT_EQ(First(m, "blk.0.attn_q.weight"), 28);
  EXPECT_EQ(First(m, "blk.1.attn_q.weight"), 44);
  EXPECT_EQ(First(m, "blk.0.attn_k.weight"), 60);
  EXPECT_EQ(First(m, "blk.0.attn_v.weight"), 76);
  EXPECT_EQ(First(m, "blk.0.attn_output.weight"), 92);
  EXPECT_EQ(First(m, "blk.0.ffn_norm.weight"), 124);
  EXPECT_EQ(First(m, "blk.0.ffn_gate.weight"), 132);   // w1
  EXPECT_EQ(First(m, "blk.0.ffn_down.weight"), 180);   // w2
  EXPECT_EQ(First(m, "blk.1.ffn_up.weight"), 252);     // w3, layer 1
  EXPECT_EQ(First(m, "output_norm.weight"), 276);
  EXPECT_EQ(First(m, "output.weight"), 276 + 4 + 3 * 2);  // after freq_cis (seq 3 x head 2)
  const Tensor& k = m.weights.Get("blk.0.attn_k.weight");
  EXPECT_EQ(k.ne[0], 4);
  EXPECT_EQ(k.ne[1], 2);
  const Tensor& down = m.weights.Get("blk.0.ffn_down.weight");
  EXPECT_EQ(down.ne[0], 6);
  EXPECT_EQ(down.ne[1], 4);
}

TEST(Llama2c, TinyV1UnsharedLayout) {
  TinyDims d;
  auto bytes = TinyCheckpoint(d, true, false);
  Model m = ParseLlama2cCheckpoint(bytes, "tiny_v1.bin", nullptr);
  EXPECT_FALSE(m.config.tied_embeddings);
  // export.py version1_export: norms, final norm, embeddings, then wq..w3 by kind, classifier.
  EXPECT_EQ(First(m, "blk.0.attn_norm.weight"), 0);
  EXPECT_EQ(First(m, "blk.1.attn_norm.weight"), 4);
  EXPECT_EQ(First(m, "blk.0.ffn_norm.weight"), 8);
  EXPECT_EQ(First(m, "output_norm.weight"), 16);
  EXPECT_EQ(First(m, "token_embd.weight"), 20);
  EXPECT_EQ(First(m, "blk.0.attn_q.weight"), 40);
  EXPECT_EQ(First(m, "blk.0.ffn_gate.weight"), 40 + 32 + 16 + 16 + 32);
  EXPECT_EQ(First(m, "output.weight"), 40 + 32 + 16 + 16 + 32 + 48 * 3);
  Model shared = ParseLlama2cCheckpoint(TinyCheckpoint(d, true, true), "tiny_v1s.bin", nullptr);
  EXPECT_TRUE(shared.config.tied_embeddings);
  EXPECT_EQ(shared.weights.Find("output.weight"), nullptr);
}

std::vector<uint8_t> WithInt(std::vector<uint8_t> b, size_t offset, int32_t v) {
  for (int i = 0; i < 4; ++i) b[offset + i] = (uint8_t)((uint32_t)v >> (8 * i));
  return b;
}

TEST(Llama2c, CorruptCheckpointsFail) {
  const std::string src = "stories.bin";
  const std::vector<uint8_t> good = ReadAll(assets::kStoriesDir + "/stories260K.bin");
  const std::vector<uint8_t> good_v1 = ReadAll(assets::kStoriesDir + "/stories260K_v1.bin");
  ASSERT_EQ(good.size(), 1056540u);
  auto expect = [&](const std::vector<uint8_t>& b, const std::string& keyword) {
    SCOPED_TRACE(keyword);
    ExpectError([&] { ParseLlama2cCheckpoint(b, src, nullptr); }, src, keyword);
  };
  std::vector<uint8_t> b = good;
  b.resize(b.size() - 100);
  expect(b, "expected 1056540 bytes for dim=64, hidden_dim=172, n_layers=5, n_heads=8, n_kv_heads=4, "
            "vocab_size=512, seq_len=512 (legacy), found 1056440");
  b = good;
  b.push_back(0);
  expect(b, "found 1056541");
  expect(std::vector<uint8_t>(good.begin(), good.begin() + 20), "too small");
  expect(std::vector<uint8_t>(good.begin(), good.begin() + 28), "expected 1056540 bytes");
  expect(WithInt(good, 0, 0), "dim must be");
  expect(WithInt(good, 0, -64), "dim must be");
  expect(WithInt(good, 0, 1 << 30), "dim must be");
  expect(WithInt(good, 0, 60), "n_heads must divide dim");
  expect(WithInt(good, 4, -1), "hidden_dim");
  expect(WithInt(good, 8, 100000), "n_layers");
  expect(WithInt(good, 12, 0), "n_heads");
  expect(WithInt(good, 16, 3), "n_kv_heads must divide n_heads");
  expect(WithInt(good, 16, 16), "n_kv_heads");
  expect(WithInt(good, 20, INT32_MIN), "vocab_size");
  expect(WithInt(good, 20, 0), "vocab_size");
  expect(WithInt(good, 24, 0), "seq_len");
  expect(WithInt(WithInt(good, 0, 16), 12, 16), "head size");  // head size 1
  // A legacy file with a negative vocab_size needs a classifier it does not have.
  expect(WithInt(good, 20, -512), "expected 1187612 bytes");

  std::vector<uint8_t> v = good_v1;
  v.resize(v.size() - 4);
  expect(v, "(version 1), found 1040380");
  expect(WithInt(good_v1, 4, 2), "version 2 (int8 quantized)");
  expect(WithInt(good_v1, 4, 7), "unknown llama2.c checkpoint version 7");
  v = good_v1;
  v[36] = 5;
  expect(v, "shared_classifier");
  expect(std::vector<uint8_t>(good_v1.begin(), good_v1.begin() + 100), "truncated llama2.c header");
  expect(WithInt(good_v1, 8 + 4 * 5, -512), "vocab_size");  // v1 has no negative-vocab convention
  // Bad magic: read as a legacy header, which is then implausible.
  expect(WithInt(good_v1, 0, 0x616b3431), "implausible");
}

TEST(Llama2c, MissingFilesNameThePath) {
  ExpectError([] { LoadLlama2cModel("/nonexistent/x.bin", assets::kStoriesDir + "/tok512.bin"); }, "/nonexistent/x.bin", "cannot open");
}

}  // namespace
}  // namespace smelt
