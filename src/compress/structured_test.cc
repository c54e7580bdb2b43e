// Structured pruning: the smaller model computes exactly what the full model computes with the
// removed units silenced (an independent construction: zeroed weights in the original shape), its
// importance scores rank units as ablation does, and bad ratios fail cleanly.
#include "compress/structured.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <numeric>
#include <random>
#include <sstream>

#include "compress/calibration.h"
#include "core/error.h"
#include "eval/kld.h"
#include "formats/types.h"
#include "io/gguf_model.h"
#include "io/hf_model.h"
#include "model/llama_naive.h"
#include "train/model.h"
#include "io/load.h"
#include "runtime/session.h"
#include "shared_assets.h"
#include "tiny_models.h"

namespace smelt {
namespace {

using assets::kStoriesGguf;

std::vector<float> UnpackedLogits(const Model& m, const std::vector<int32_t>& tokens) {
  Session s(m, {.context = (int)tokens.size(), .activations = Activations::kExact, .repack = false});
  std::span<const float> z = s.Eval(tokens, true);
  return {z.begin(), z.end()};
}

// `m` with columns [u * per, (u + 1) * per) of tensor `name` set to zero for every u in `units`.
void ZeroColumns(Model& m, const std::string& name, int per, const std::vector<int>& units) {
  const Tensor& t = m.weights.Get(name);
  std::vector<float> w = DequantizeAll(t);
  for (int64_t r = 0; r < t.nrows(); ++r)
    for (int u : units)
      for (int i = 0; i < per; ++i) w[(size_t)(r * t.ne[0] + (int64_t)u * per + i)] = 0.0f;
  m.weights.Set(MakeF32Tensor(name, {t.ne[0], t.ne[1]}, std::move(w)));
}

void ExpectClose(const std::vector<float>& a, const std::vector<float>& b) {
  ASSERT_EQ(a.size(), b.size());
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) diff += (a[i] - b[i]) * (double)(a[i] - b[i]), norm += (double)b[i] * b[i];
  EXPECT_LE(std::sqrt(diff), 1e-5 * std::sqrt(norm));
}

// `m` written to a GGUF file and read back.
Model ThroughGguf(const Model& m, const std::string& tag) {
  const auto path = std::filesystem::temp_directory_path() / ("smelt-" + tag + "-" + std::to_string(::getpid()) + ".gguf");
  SaveGgufModel(m, path.string(), {});
  Model back = LoadGgufModel(path.string());
  std::filesystem::remove(path);
  return back;
}

const std::vector<int32_t> kTokens = {1, 7, 3, 22, 9, 41, 5, 17, 30, 2, 11, 8};

TEST(CompressStructured, SmallerModelEqualsSilencedUnitsInTheFullOne) {
  for (bool qwen2 : {false, true}) {
    const Model m = tiny::TinyLlama({.dim = 32, .layers = 3, .heads = 4, .kv_heads = 2, .ff = 24, .qwen2 = qwen2});
    const ModelConfig& c = m.config;
    const int G = c.n_heads / c.n_kv_heads;
    {  // heads: group 1 of layer 0, group 0 of layers 1 and 2
      const std::vector<std::vector<int>> removed = {{1}, {0}, {0}};
      const Model p = RemoveUnits(m, StructuredTarget::kHeads, removed);
      EXPECT_EQ(p.config.n_kv_heads, 1);
      EXPECT_EQ(p.config.n_heads, G);
      EXPECT_EQ(p.config.head_dim, c.head_dim);
      Model ref = m;
      for (int l = 0; l < c.n_layers; ++l) {
        std::vector<int> q;
        for (int g : removed[l])
          for (int h = 0; h < G; ++h) q.push_back(g * G + h);
        ZeroColumns(ref, BlockTensorName(l, "attn_output.weight"), c.head_dim, q);
      }
      ExpectClose(UnpackedLogits(p, kTokens), UnpackedLogits(ref, kTokens));
    }
    {  // channels: a different third of the channels in each layer
      const std::vector<std::vector<int>> removed = {{0, 5, 6, 23, 9, 12, 1, 2}, {3, 4, 7, 8, 10, 11, 20, 21},
                                                     {13, 14, 15, 16, 17, 18, 19, 22}};
      const Model p = RemoveUnits(m, StructuredTarget::kChannels, removed);
      EXPECT_EQ(p.config.ff, 16);
      Model ref = m;
      for (int l = 0; l < c.n_layers; ++l) ZeroColumns(ref, BlockTensorName(l, "ffn_down.weight"), 1, removed[l]);
      ExpectClose(UnpackedLogits(p, kTokens), UnpackedLogits(ref, kTokens));
    }
    {  // layers: the middle block becomes the identity when both of its outputs are zero
      const Model p = RemoveUnits(m, StructuredTarget::kLayers, {{1}});
      EXPECT_EQ(p.config.n_layers, 2);
      EXPECT_NE(p.weights.Find("blk.1.attn_q.weight"), nullptr);
      EXPECT_EQ(p.weights.Find("blk.2.attn_q.weight"), nullptr);
      Model ref = m;
      ZeroColumns(ref, "blk.1.attn_output.weight", (int)c.q_dim(), {0});
      ZeroColumns(ref, "blk.1.ffn_down.weight", c.ff, {0});
      ExpectClose(UnpackedLogits(p, kTokens), UnpackedLogits(ref, kTokens));
    }
  }
}

// Channels removed in different numbers per block: the model keeps a feed-forward size per block,
// computes what the full model computes with those channels silenced (fast path and the plain
// double-precision reference), round-trips through GGUF (a per-block array), and padded back to one
// size with zero channels computes the same again.
TEST(CompressStructured, PerBlockChannelCountsKeepTheSameFunction) {
  for (DType type : {DType::kF32, DType::kQ8_0}) {
    SCOPED_TRACE(DTypeName(type));
    Model m = tiny::TinyLlama({.dim = 64, .layers = 3, .heads = 4, .kv_heads = 2, .ff = 96});
    if (type != DType::kF32)
      for (int l = 0; l < 3; ++l)
        for (const char* s : {"ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"})
          m.weights.Set(tiny::EncodeTensor(m.weights.Get(BlockTensorName(l, s)), type));
    std::vector<std::vector<int>> removed(3);
    for (int j = 0; j < 32; ++j) removed[0].push_back(3 * j);  // 96 -> 64; block 1 keeps 96
    for (int j = 0; j < 64; ++j) removed[2].push_back(j + 16);  // 96 -> 32
    const Model p = RemoveUnits(m, StructuredTarget::kChannels, removed);
    EXPECT_EQ(p.config.ff, 96);
    EXPECT_EQ(p.config.layer_ff, (std::vector<int>{64, 96, 32}));
    EXPECT_EQ(p.weights.Get("blk.2.ffn_gate.weight").ne[1], 32);
    EXPECT_EQ(p.weights.Get("blk.2.ffn_gate.weight").type, type);  // rows kept in their type
    Model ref = m;
    for (int l = 0; l < 3; ++l) ZeroColumns(ref, BlockTensorName(l, "ffn_down.weight"), 1, removed[l]);
    const std::vector<float> want = UnpackedLogits(ref, kTokens);
    ExpectClose(UnpackedLogits(p, kTokens), want);
    ExpectClose(NaiveLlamaLogits(p, kTokens), want);

    const Model back = ThroughGguf(p, "per-block-ff");
    EXPECT_EQ(back.config.layer_ff, p.config.layer_ff);
    EXPECT_EQ(back.config.ff, 96);
    ExpectClose(UnpackedLogits(back, kTokens), want);

    const Model padded = PadBlocks(p);
    EXPECT_TRUE(padded.config.layer_ff.empty());
    EXPECT_EQ(padded.config.ff, 96);
    for (int l = 0; l < 3; ++l)  // RemoveUnits wrote ffn_down as f32; the padding keeps every type
      for (const char* s : {"ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"})
        EXPECT_EQ(padded.weights.Get(BlockTensorName(l, s)).type, p.weights.Get(BlockTensorName(l, s)).type) << l << s;
    // Zero columns appended to a q8_0 down projection as whole blocks (64 -> 96 values a row).
    Model q = p;
    q.weights.Set(tiny::EncodeTensor(p.weights.Get("blk.0.ffn_down.weight"), DType::kQ8_0));
    const Model q_padded = PadBlocks(q);
    EXPECT_EQ(q_padded.weights.Get("blk.0.ffn_down.weight").type, DType::kQ8_0);
    ExpectClose(UnpackedLogits(q_padded, kTokens), UnpackedLogits(q, kTokens));
    ExpectClose(UnpackedLogits(padded, kTokens), want);
    EXPECT_TRUE(PadBlocks(padded).config.layer_ff.empty());
  }
  {  // widths that are not whole q8_0 blocks: the padded down projection is written as f32
    const Model m = tiny::TinyLlama({.dim = 64, .layers = 2, .heads = 4, .kv_heads = 2, .ff = 80});
    std::vector<int> gone;
    for (int j = 0; j < 16; ++j) gone.push_back(5 * j);
    Model p = RemoveUnits(m, StructuredTarget::kChannels, {gone, {}});  // 64 and 80 wide
    p.weights.Set(tiny::EncodeTensor(p.weights.Get("blk.0.ffn_down.weight"), DType::kQ8_0));
    const Model padded = PadBlocks(p);
    EXPECT_EQ(padded.weights.Get("blk.0.ffn_down.weight").type, DType::kF32);
    ExpectClose(UnpackedLogits(padded, kTokens), UnpackedLogits(p, kTokens));
  }
}

// KV groups removed in different numbers per block: the model keeps a kv head count per block and
// computes what the full model computes with those groups silenced (zeroed attn_output columns),
// in the fast path (an f32 cache, and f16 and i8 caches against the same cache type on the padded
// model), the double-precision reference and the staged statistics pass; it round-trips through
// GGUF, its KV state saves and restores, and PadBlocks gives the same function at one size.
TEST(CompressStructured, PerBlockHeadCountsKeepTheSameFunction) {
  const Model m = tiny::TinyLlama({.dim = 64, .layers = 3, .heads = 8, .kv_heads = 4, .ff = 64, .qwen2 = true});
  const ModelConfig& c = m.config;
  const std::vector<std::vector<int>> removed = {{0, 2}, {}, {1, 2, 3}};
  const Model p = RemoveUnits(m, StructuredTarget::kHeads, removed);
  EXPECT_EQ(p.config.layer_kv_heads, (std::vector<int>{2, 4, 1}));
  EXPECT_EQ(p.config.n_kv_heads, 4);
  EXPECT_EQ(p.config.n_heads, 8);
  EXPECT_EQ(p.config.block(2).n_heads, 2);
  EXPECT_EQ(p.weights.Get("blk.2.attn_q.bias").ne[0], 2 * c.head_dim);
  Model ref = m;
  for (int l = 0; l < 3; ++l) {
    std::vector<int> q;
    for (int g : removed[l])
      for (int h = 0; h < 2; ++h) q.push_back(g * 2 + h);
    ZeroColumns(ref, BlockTensorName(l, "attn_output.weight"), c.head_dim, q);
  }
  const std::vector<float> want = UnpackedLogits(ref, kTokens);
  ExpectClose(UnpackedLogits(p, kTokens), want);
  ExpectClose(NaiveLlamaLogits(p, kTokens), want);

  // Removing a whole block keeps the others' own sizes.
  EXPECT_EQ(RemoveUnits(p, StructuredTarget::kLayers, {{1}}).config.layer_kv_heads, (std::vector<int>{2, 1}));
  EXPECT_TRUE(RemoveUnits(p, StructuredTarget::kLayers, {{0, 2}}).config.uniform_blocks());

  const Model padded = PadBlocks(p);
  EXPECT_TRUE(padded.config.uniform_blocks());
  EXPECT_EQ(padded.weights.Get("blk.2.attn_k.weight").ne[1], 4 * c.head_dim);
  ExpectClose(UnpackedLogits(padded, kTokens), want);
  for (KvType kv : {KvType::kF16, KvType::kI8}) {  // rounded caches: the padded heads are exact zeros
    auto logits = [&](const Model& model) {
      Session s(model, {.context = 16, .activations = Activations::kExact, .kv = kv, .repack = false});
      std::span<const float> z = s.Eval(kTokens, true);
      return std::vector<float>(z.begin(), z.end());
    };
    ExpectClose(logits(p), logits(padded));
  }

  const auto dir = std::filesystem::temp_directory_path() / ("smelt-per-block-heads-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const Model back = ThroughGguf(p, "per-block-heads");
  EXPECT_EQ(back.config.layer_kv_heads, p.config.layer_kv_heads);
  ExpectClose(UnpackedLogits(back, kTokens), want);

  // A saved prefix, restored into a fresh session, continues exactly as the uninterrupted one.
  const std::vector<int32_t> prefix(kTokens.begin(), kTokens.begin() + 7), rest(kTokens.begin() + 7, kTokens.end());
  for (KvType kv : {KvType::kF32, KvType::kI8}) {
    const SessionOptions so{.context = 16, .activations = Activations::kExact, .kv = kv, .repack = false};
    Session a(p, so);
    a.Eval(prefix);
    a.SaveState((dir / "prefix.kv").string(), prefix);
    std::span<const float> za = a.Eval(rest, true);
    const std::vector<float> whole(za.begin(), za.end());
    Session b(p, so);
    EXPECT_EQ(b.LoadState((dir / "prefix.kv").string()), prefix);
    std::span<const float> zb = b.Eval(rest, true);
    EXPECT_EQ(std::vector<float>(zb.begin(), zb.end()), whole);
    Session other(padded, so);  // a different model: refused
    EXPECT_THROW(other.LoadState((dir / "prefix.kv").string()), Error);
  }
  std::filesystem::remove_all(dir);
}

// PaddedRegions names exactly the zeros PadBlocks adds (every element in them zero, as many as
// the padding adds), and TrimBlocks takes them off again: the per-block model back, tensor for
// tensor and bit for bit, for channels and KV groups (with biases) differing at once. Values
// written into the padded model outside the regions survive the trim; inside them they are gone.
TEST(CompressStructured, PaddedRegionsAreThePaddingAndTrimBlocksRemovesIt) {
  const Model m = tiny::TinyLlama({.dim = 64, .layers = 3, .heads = 8, .kv_heads = 4, .ff = 96, .qwen2 = true});
  std::vector<std::vector<int>> channels(3);
  for (int j = 0; j < 32; ++j) channels[0].push_back(3 * j);
  for (int j = 0; j < 64; ++j) channels[2].push_back(j + 16);
  const Model p = RemoveUnits(RemoveUnits(m, StructuredTarget::kChannels, channels), StructuredTarget::kHeads,
                              {{1}, {0, 2, 3}, {}});
  ASSERT_FALSE(p.config.uniform_blocks());
  const Model padded = PadBlocks(p);
  const std::vector<PaddedRegion> regions = PaddedRegions(p);
  int64_t in_regions = 0, added = 0;
  for (const Tensor& t : padded.weights.all()) added += t.nelements();
  for (const Tensor& t : p.weights.all()) added -= t.nelements();
  Model marked = padded;  // every element 1 + its old value outside the regions, 7 inside
  std::map<std::string, std::vector<float>> values;
  for (const Tensor& t : padded.weights.all()) values[t.name] = DequantizeAll(t);
  std::map<std::string, std::vector<char>> inside;
  for (const PaddedRegion& r : regions) {
    const Tensor& t = padded.weights.Get(r.name);
    auto& in = inside[r.name];
    in.resize((size_t)t.nelements(), 0);
    for (int64_t row = r.row0; row < r.row1; ++row)
      for (int64_t col = r.col0; col < r.col1; ++col) {
        EXPECT_EQ(values[r.name][(size_t)(row * t.ne[0] + col)], 0.0f) << r.name;
        in[(size_t)(row * t.ne[0] + col)] = 1;
        ++in_regions;
      }
  }
  EXPECT_EQ(in_regions, added);
  for (auto& [name, v] : values) {
    const auto it = inside.find(name);
    for (size_t i = 0; i < v.size(); ++i) v[i] = it != inside.end() && it->second[i] ? 7.0f : v[i] + 1.0f;
    const Tensor& t = padded.weights.Get(name);
    marked.weights.Set(MakeF32Tensor(name, std::vector<int64_t>(t.ne.begin(), t.ne.begin() + t.n_dims), v));
  }
  const Model trimmed = TrimBlocks(padded, p.config), trimmed_marked = TrimBlocks(marked, p.config);
  EXPECT_EQ(trimmed.config.layer_ff, p.config.layer_ff);
  EXPECT_EQ(trimmed.config.layer_kv_heads, p.config.layer_kv_heads);
  ASSERT_EQ(trimmed.weights.all().size(), p.weights.all().size());
  for (const Tensor& t : p.weights.all()) {
    EXPECT_EQ(DequantizeAll(trimmed.weights.Get(t.name)), DequantizeAll(t)) << t.name;
    std::vector<float> plus_one = DequantizeAll(t);
    for (float& x : plus_one) x += 1.0f;
    EXPECT_EQ(DequantizeAll(trimmed_marked.weights.Get(t.name)), plus_one) << t.name;
  }
  EXPECT_TRUE(PaddedRegions(padded).empty());
}

// Formats that hold one feed-forward size refuse a model whose sizes differ, naming the output;
// a GGUF whose per-block array has the wrong length is refused on load.
TEST(CompressStructured, PerBlockSizesAreRefusedWhereAFormatHasOneSize) {
  const Model m = tiny::TinyLlama({.dim = 32, .layers = 2, .heads = 4, .kv_heads = 2, .ff = 24});
  const Model p = RemoveUnits(m, StructuredTarget::kChannels, {{0, 1}, {}});
  const auto dir = std::filesystem::temp_directory_path() / ("smelt-per-block-hf-" + std::to_string(::getpid()));
  try {
    SaveHfModel(p, dir.string(), {});
    ADD_FAILURE() << "per-block sizes written as config.json";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(dir.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("feed-forward"), std::string::npos) << msg;
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "config.json"));
  std::filesystem::remove_all(dir);
  SaveHfModel(PadBlocks(p), dir.string(), {});  // padded, it is an ordinary model
  EXPECT_TRUE(std::filesystem::exists(dir / "config.json"));
  std::filesystem::remove_all(dir);
  const Model heads = RemoveUnits(m, StructuredTarget::kHeads, {{0}, {}});
  EXPECT_THROW(SaveHfModel(heads, dir.string(), {}), Error);
  EXPECT_FALSE(std::filesystem::exists(dir / "config.json"));
  std::filesystem::remove_all(dir);

  EXPECT_THROW(train::TrainModel::FromScratch(p.config, p.vocab, 1), Error);  // training has one size
  EXPECT_THROW(train::TrainModel::FromScratch(heads.config, heads.vocab, 1), Error);

  ModelConfig c = p.config;
  c.layer_ff = {22, 24, 24};
  EXPECT_THROW(ValidateConfig(c, "x"), Error);
  c.layer_ff = {22, 23};
  EXPECT_THROW(ValidateConfig(c, "x"), Error);  // ff must be the largest
  SetFeedForwardSizes(c, {24, 24}, "x");
  EXPECT_TRUE(c.layer_ff.empty());
  EXPECT_EQ(c.ff, 24);
}

// GlobalRemovalCounts against brute force: over every way of splitting the removal between blocks
// (whole groups of M after each block's remainder, at least one group kept per block), none
// removes a smaller total score than the greedy choice, and the kept total is what the ratio asks.
TEST(CompressStructured, GlobalRemovalCountsAreTheCheapestSplit) {
  std::mt19937 rng(17);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int M : {1, 2, 3})
    for (int trial = 0; trial < 30; ++trial) {
      std::vector<std::vector<double>> scores(3);
      for (auto& s : scores) {
        s.resize(4 + rng() % 7);
        const double scale = std::pow(10.0, (double)(rng() % 3));  // blocks of different magnitude
        for (double& v : s) v = scale * u(rng);
      }
      const double ratio = 0.05 + 0.6 * u(rng);
      std::vector<std::vector<double>> sorted = scores;
      for (auto& s : sorted) std::sort(s.begin(), s.end());
      // The cost of removing k units of block l: its k lowest scores.
      auto cost = [&](const std::vector<int>& counts) {
        double c = 0;
        for (size_t l = 0; l < counts.size(); ++l)
          for (int i = 0; i < counts[l]; ++i) c += sorted[l][i];
        return c;
      };
      const std::vector<int> got = GlobalRemovalCounts(scores, ratio, M, "scores");
      int units = 0, removed = 0;
      for (size_t l = 0; l < 3; ++l) units += (int)scores[l].size(), removed += got[l];
      for (size_t l = 0; l < 3; ++l) {
        const int n = (int)scores[l].size(), kept = n - got[l];
        EXPECT_GE(kept, M);
        EXPECT_EQ(kept % M, 0);
      }
      const int want_kept =
          M == 1 ? units - (int)std::llround(ratio * units) : (int)std::llround((1.0 - ratio) * units / M) * M;
      int whole = 0;  // units in whole groups
      for (const auto& sc : scores) whole += (int)sc.size() / M * M;
      // The nearest multiple is what is kept unless a clamp applies (a group per block; the
      // remainders always go).
      if (want_kept >= 3 * M && want_kept <= whole) {
        EXPECT_EQ(units - removed, want_kept) << "ratio " << ratio << " M " << M;
      }
      double best = 1e300;
      std::function<void(size_t, std::vector<int>&)> search = [&](size_t l, std::vector<int>& counts) {
        if (l == 3) {
          int r = 0;
          for (int c : counts) r += c;
          if (r == removed) best = std::min(best, cost(counts));
          return;
        }
        const int n = (int)scores[l].size();
        for (int k = n % M; n - k >= M; k += M) {
          counts.push_back(k);
          search(l + 1, counts);
          counts.pop_back();
        }
      };
      std::vector<int> counts;
      search(0, counts);
      EXPECT_LE(cost(got), best * (1 + 1e-12)) << "ratio " << ratio << " M " << M;
    }
  EXPECT_THROW(GlobalRemovalCounts({{1, 2}, {3, 4}}, 0.9, 1, "s"), Error);  // would empty a block
  EXPECT_THROW(GlobalRemovalCounts({{1, 2}, {3, 4}}, 1.0, 1, "s"), Error);
  EXPECT_THROW(GlobalRemovalCounts({{1, 2}, {3, 4, 5}}, 0.2, 3, "s"), Error);  // a block below one group
}

TEST(CompressStructured, QuantizedRowsAreKeptByteForByteAndTheFileRoundTrips) {
  Model m = tiny::TinyLlama({.dim = 64, .layers = 2, .heads = 4, .kv_heads = 2, .ff = 96});
  for (int l = 0; l < 2; ++l)
    for (const char* s : {"attn_q.weight", "attn_k.weight", "ffn_gate.weight", "ffn_up.weight"}) {
      const Tensor& t = m.weights.Get(BlockTensorName(l, s));
      m.weights.Set(tiny::EncodeTensor(t, DType::kQ8_0));
    }
  const Model p = RemoveUnits(m, StructuredTarget::kHeads, {{0}, {1}});
  const Tensor& a = m.weights.Get("blk.0.attn_k.weight");
  const Tensor& b = p.weights.Get("blk.0.attn_k.weight");
  EXPECT_EQ(b.type, DType::kQ8_0);
  const size_t rb = RowBytes(a.type, a.ne[0]), hd = (size_t)m.config.head_dim;
  ASSERT_EQ(b.nbytes, rb * hd);
  EXPECT_EQ(std::memcmp(b.data, static_cast<const uint8_t*>(a.data) + rb * hd, b.nbytes), 0);  // kv head 1 kept

  // The head size no longer follows from dim / heads: the file must say it.
  const Model back = ThroughGguf(p, "structured");
  EXPECT_EQ(back.config.head_dim, m.config.head_dim);
  EXPECT_EQ(back.config.n_heads, 2);
  ExpectClose(UnpackedLogits(back, kTokens), UnpackedLogits(p, kTokens));
}

double HeldOutKld(const Model& m, const Model& base) {
  std::ifstream f(assets::kDevText);
  std::stringstream ss;
  ss << f.rdbuf();
  KldOptions o;
  o.ppl.ctx = 128;
  o.ppl.max_chunks = 12;
  return KlDivergence(m, &base, ss.str(), o).kld_mean;
}

// The n units of each row of `scores` with the highest scores.
std::vector<std::vector<int>> Highest(const std::vector<std::vector<double>>& scores, int n) {
  std::vector<std::vector<int>> out;
  for (const auto& s : scores) {
    std::vector<int> order(s.size());
    for (size_t i = 0; i < s.size(); ++i) order[i] = (int)i;
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return s[a] > s[b]; });
    order.resize(n);
    std::sort(order.begin(), order.end());
    out.push_back(order);
  }
  return out;
}

TEST(CompressStructuredSlow, LowScoredUnitsCostLessThanHighScoredOnesOnStories260K) {
  const Model m = LoadModel(kStoriesGguf);
  const auto samples = CalibrationSamples(m, assets::kTrainText, {.samples = 16, .tokens = 128});
  struct Case {
    StructuredTarget target;
    double ratio;
    LayerScore score;
  };
  for (const Case& k : {Case{StructuredTarget::kHeads, 0.25, LayerScore::kCosine},
                        Case{StructuredTarget::kChannels, 0.3, LayerScore::kCosine},
                        Case{StructuredTarget::kLayers, 0.2, LayerScore::kCosine},
                        Case{StructuredTarget::kLayers, 0.2, LayerScore::kKld}}) {
    StructuredOptions o;
    o.target = k.target;
    o.ratio = k.ratio;
    o.layer_score = k.score;
    StructuredReport r;
    const Model low = PruneStructured(m, samples, o, &r);
    const Model high = RemoveUnits(m, k.target, Highest(r.scores, r.removed_per_layer));
    EXPECT_LT(r.params_after, r.params_before);
    const double kl_low = HeldOutKld(low, m), kl_high = HeldOutKld(high, m);
    std::printf("%s ratio %.2f (%s): KLD removing lowest-scored %.4f, highest-scored %.4f\n",
                StructuredTargetName(k.target), k.ratio, k.score == LayerScore::kKld ? "kld" : "cosine", kl_low, kl_high);
    EXPECT_LT(kl_low, kl_high) << StructuredTargetName(k.target);
  }
}

// Mean KL(m ‖ q) over the positions of kTokens, with plain loops in double.
double PlainKld(const Model& m, const Model& q) {
  const std::vector<float> full = UnpackedLogits(m, kTokens), z = UnpackedLogits(q, kTokens);
  const int V = m.config.vocab;
  double kl = 0;
  for (size_t t = 0; t < kTokens.size(); ++t) {
    double mp = -1e300, mq = -1e300, sp = 0, sq = 0;
    for (int i = 0; i < V; ++i) mp = std::max(mp, (double)full[t * V + i]), mq = std::max(mq, (double)z[t * V + i]);
    for (int i = 0; i < V; ++i) sp += std::exp(full[t * V + i] - mp), sq += std::exp(z[t * V + i] - mq);
    for (int i = 0; i < V; ++i) {
      const double lp = full[t * V + i] - mp - std::log(sp), lq = z[t * V + i] - mq - std::log(sq);
      kl += std::exp(lp) * (lp - lq);
    }
  }
  return kl / (double)kTokens.size();
}

TEST(CompressStructured, LayerKldScoreIsTheMeasuredCostOfSkippingThatBlock) {
  const Model m = tiny::TinyLlama({.dim = 32, .layers = 3, .heads = 4, .kv_heads = 2, .ff = 24});
  const std::vector<std::vector<int32_t>> samples = {kTokens};
  StructuredOptions o;
  o.target = StructuredTarget::kLayers;
  o.layer_score = LayerScore::kKld;
  const auto scores = StructuredScores(m, samples, o);
  ASSERT_EQ(scores.size(), 1u);
  for (int l = 0; l < 3; ++l) {
    const double kl = PlainKld(m, RemoveUnits(m, StructuredTarget::kLayers, {{l}}));
    EXPECT_NEAR(scores[0][l], kl, 1e-6 * (1 + kl));
  }
}

// Measured allocation: every measured point is the calibration KLD of that block alone losing its
// k lowest-scored channels (plain loops), and the per-block counts add up to the ratio.
TEST(CompressStructured, MeasuredAllocationMeasuresEachBlockAlone) {
  const Model m = tiny::TinyLlama({.dim = 32, .layers = 3, .heads = 4, .kv_heads = 2, .ff = 24, .seed = 3});
  StructuredOptions o;
  o.target = StructuredTarget::kChannels;
  o.allocation = UnitAllocation::kMeasured;
  o.ratio = 0.5;
  int calls = 0;
  o.progress = [&](int done, int total) {
    EXPECT_EQ(done, ++calls);
    EXPECT_EQ(total, 21);
  };
  StructuredReport r;
  const Model p = PruneStructured(m, {kTokens}, o, &r);
  EXPECT_EQ(calls, 21);
  ASSERT_EQ(r.measured.size(), 3u);
  int kept = 0;
  for (int l = 0; l < 3; ++l) {
    kept += p.config.ff_of(l);
    ASSERT_EQ(r.measured[l].size(), 8u);  // (0, 0) and 3, 6, ..., 21 channels
    EXPECT_EQ(r.measured[l][0], (std::pair<int, double>{0, 0.0}));
    std::vector<int> order(24);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return r.scores[l][a] < r.scores[l][b]; });
    for (size_t i = 1; i < r.measured[l].size(); i += 3) {
      const auto [k, kld] = r.measured[l][i];
      EXPECT_EQ(k, 3 * (int)i);
      std::vector<std::vector<int>> one(3);
      one[l].assign(order.begin(), order.begin() + k);
      const double want = PlainKld(m, RemoveUnits(m, StructuredTarget::kChannels, one));
      EXPECT_NEAR(kld, want, 1e-6 * (1 + want)) << "block " << l << ", " << k << " channels";
    }
  }
  EXPECT_EQ(kept, 36);
  o.target = StructuredTarget::kLayers;  // whole blocks are not allocated per block
  o.progress = nullptr;
  EXPECT_THROW(PruneStructured(m, {kTokens}, o), Error);
  o.target = StructuredTarget::kHeads;  // 2 kv groups per block; 2 of the 6 go, from the two cheapest blocks
  o.ratio = 1.0 / 3;
  const Model h = PruneStructured(m, {kTokens}, o, &r);
  ASSERT_EQ(h.config.layer_kv_heads.size(), 3u);
  EXPECT_EQ(h.config.layer_kv_heads[0] + h.config.layer_kv_heads[1] + h.config.layer_kv_heads[2], 4);
  ASSERT_EQ(r.measured.size(), 3u);
  int dearest = 0;  // the block whose one group costs most keeps both
  for (int l = 1; l < 3; ++l)
    if (r.measured[l].at(1).second > r.measured[dearest].at(1).second) dearest = l;
  EXPECT_EQ(h.config.layer_kv_heads[dearest], 2);
}

// HullMarginalCosts against the lower convex envelope by brute force: in one dimension its value at
// x is the least interpolation over the pairs of points around x (past the last point, the last
// segment continued); the costs' prefix sums must follow it at every whole count.
TEST(CompressStructured, HullMarginalCostsFollowTheLowerConvexEnvelope) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int trial = 0; trial < 200; ++trial) {
    const int units = 8 + (int)(rng() % 40);
    std::vector<std::pair<int, double>> pts = {{0, 0.0}};
    for (int k = 1; k < units; ++k)
      if (rng() % 4 == 0) pts.push_back({k, pts.back().second + u(rng) * (trial % 2 ? 1.0 : k * 0.1) - 0.2});
    if (pts.size() < 2) pts.push_back({units - 1, 1.0});
    const std::vector<double> cost = HullMarginalCosts(pts, units);
    ASSERT_EQ((int)cost.size(), units);
    auto envelope = [&](double x) {
      double best = 1e300;
      for (size_t i = 0; i < pts.size(); ++i)
        for (size_t j = i; j < pts.size(); ++j) {
          const auto &a = pts[i], &b = pts[j];
          if (a.first > x || b.first < x) continue;
          best = std::min(best, a.first == b.first ? a.second
                                                   : a.second + (b.second - a.second) * (x - a.first) / (b.first - a.first));
        }
      return best;
    };
    const int last = pts.back().first;
    double prefix = 0;
    for (int k = 1; k <= units; ++k) {
      prefix += cost[k - 1];
      const double want =
          k <= last ? envelope(k) : envelope(last) + (envelope(last) - envelope(last - 1)) * (k - last);
      EXPECT_NEAR(prefix, want, 1e-9 * (1 + std::fabs(want))) << "trial " << trial << ", k " << k;
      if (k > 1) {
        EXPECT_GE(cost[k - 1], cost[k - 2] - 1e-12);
      }
    }
  }
}

TEST(CompressStructured, BadRatiosFailWithOneLine) {
  const Model m = tiny::TinyLlama({.dim = 32, .layers = 2, .heads = 4, .kv_heads = 2, .ff = 24});
  const std::vector<std::vector<int32_t>> samples = {kTokens};
  for (double ratio : {-0.1, 1.0, 1.5, 0.8}) {  // 0.8 of 2 kv groups rounds to both
    StructuredOptions o;
    o.target = StructuredTarget::kHeads;
    o.ratio = ratio;
    try {
      PruneStructured(m, samples, o);
      ADD_FAILURE() << "ratio " << ratio << " accepted";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("tiny"), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  }
  EXPECT_THROW(ParseStructuredTarget("rows", "--structured"), Error);
  EXPECT_THROW(PruneStructured(m, {}, {}), Error);
}

// Kept channels a multiple of M: the multiple nearest to what the ratio keeps (brute force over
// every multiple that fits, ties to the larger), never none, never more than there are.
TEST(CompressStructured, MultipleOfKeepsTheNearestWholeMultiple) {
  for (int units : {96, 172, 1000, 2816})
    for (int M : {32, 256}) {
      if (units < M) {
        EXPECT_THROW(UnitsToRemove(units, 0.25, "m", M), Error);
        continue;
      }
      for (double ratio = 0.0; ratio < 0.999; ratio += 0.0625) {
        const int kept = units - UnitsToRemove(units, ratio, "m", M);
        const double want = (1.0 - ratio) * units;
        int best = M;
        for (int k = M; k <= units; k += M)
          if (std::fabs(k - want) <= std::fabs(best - want)) best = k;
        EXPECT_EQ(kept, best) << units << " units, ratio " << ratio << ", multiple " << M;
        EXPECT_EQ(kept % M, 0);
      }
    }
  EXPECT_EQ(UnitsToRemove(172, 0.25, "m", 1), UnitsToRemove(172, 0.25, "m"));
  EXPECT_THROW(UnitsToRemove(172, 0.25, "m", 0), Error);
}

}  // namespace
}  // namespace smelt
