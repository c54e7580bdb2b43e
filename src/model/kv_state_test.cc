// Saved KV state against an uninterrupted evaluation: stories260K runs the first half of a text,
// saves, and a fresh cache loaded from the file gives the second half's logits bit for bit as the
// cache that computed the first half does, and as one batch of the whole text (for f32, f16 and
// i8 caches), while a cache without the prefix does not. Every check of the loader rejects its bad input with a one-line error
// naming the file and leaves the cache as it was; a failed save leaves no file.
#include "model/kv_state.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "compress/quantize.h"
#include "core/mapped_file.h"
#include "io/io_test_util.h"
#include "io/load.h"
#include "io/tokenizer.h"
#include "model/llama.h"
#include "model/synth.h"
#include "shared_assets.h"
#include "smelt/version.h"

namespace smelt {
namespace {

using testing_util::ExpectError;
using testing_util::ReadAll;
using testing_util::ScratchDir;
using testing_util::WriteAll;

constexpr int kThreads = 2;

const Model& Stories() {
  static const Model m = LoadModel(assets::kStoriesGguf);
  return m;
}

// The first n tokens of the calibration text.
std::vector<int32_t> Tokens(const Model& m, size_t n) {
  std::vector<int32_t> t = Tokenizer(m.vocab).Encode(ReadFileToString(assets::kTrainText).substr(0, 4 * n + 64), true);
  EXPECT_GE(t.size(), n);
  t.resize(n);
  return t;
}

KvCache CacheFor(const Model& m, int64_t capacity, KvType type) {
  return KvCache(m.config.n_layers, m.config.n_kv_heads, m.config.head_dim, capacity, type);
}

// Logits (T, V) of `tokens` at positions pos.. on `cache`.
std::vector<float> Eval(LlamaForward& fwd, std::span<const int32_t> tokens, int64_t pos, KvCache& cache) {
  cache.Reserve(pos + (int64_t)tokens.size());
  std::vector<float> logits(tokens.size() * (size_t)fwd.config().vocab);
  fwd.Forward(tokens, pos, cache, true, kThreads, logits.data());
  return logits;
}

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Every stored byte of positions [0, reserved()) of a cache.
std::vector<uint8_t> CacheBytes(const KvCache& c) {
  std::vector<uint8_t> out;
  if (c.reserved() == 0) return out;
  for (int l = 0; l < c.n_layers(); ++l)
    for (bool values : {false, true})
      for (int64_t pos = 0; pos < c.reserved(); ++pos) {
        std::vector<uint8_t> row(c.RowBytes(l));
        c.ReadRow(l, values, pos, row.data());
        out.insert(out.end(), row.begin(), row.end());
      }
  return out;
}

// `m` with one byte of tensor `name` flipped, in a buffer of its own.
Model WithFlippedByte(const Model& m, const std::string& name, size_t at) {
  Model out = m;
  Tensor t = m.weights.Get(name);
  const uint8_t* src = static_cast<const uint8_t*>(t.data);
  auto buf = std::make_shared<std::vector<uint8_t>>(src, src + t.nbytes);
  (*buf)[at] ^= 0x10;
  t.data = buf->data();
  t.owner = buf;
  out.weights.Set(t);
  return out;
}

TEST(KvState, FingerprintSeparatesVariantsOfAModel) {
  const Model& m = Stories();
  const uint64_t f = ModelFingerprint(m);
  EXPECT_EQ(ModelFingerprint(LoadModel(assets::kStoriesGguf)), f) << "the same file loaded twice";

  const std::string embd = "token_embd.weight";
  const size_t nbytes = m.weights.Get(embd).nbytes;
  ASSERT_GT(nbytes, 4 * 4096u) << "the tensor must have bytes outside both hashed ends";
  EXPECT_NE(ModelFingerprint(WithFlippedByte(m, embd, 100)), f) << "a byte in the first 4 KiB";
  EXPECT_NE(ModelFingerprint(WithFlippedByte(m, embd, nbytes - 100)), f) << "a byte in the last 4 KiB";
  // Only the ends are read: a change in the middle goes unseen, as documented.
  EXPECT_EQ(ModelFingerprint(WithFlippedByte(m, embd, nbytes / 2)), f) << "a byte outside both ends";

  Model requantized = m;
  requantized.weights.Set(EncodeTensor(m.weights.Get("blk.0.attn_q.weight"), DType::kQ8_0, nullptr, 1));
  EXPECT_NE(ModelFingerprint(requantized), f) << "one tensor in another type";

  Model eps = m;
  eps.config.norm_eps *= 2;
  EXPECT_NE(ModelFingerprint(eps), f) << "another norm eps";
  Model theta = m;
  theta.config.rope_theta *= 2;
  EXPECT_NE(ModelFingerprint(theta), f) << "another RoPE base";

  Model renamed = m;
  renamed.source = "elsewhere.gguf";
  renamed.config.name = "another name";
  EXPECT_EQ(ModelFingerprint(renamed), f) << "where it came from and its name do not matter";
}

TEST(KvState, LoadedPrefixContinuesBitForBit) {
  const Model& m = Stories();
  const std::vector<int32_t> tokens = Tokens(m, 48);
  const std::span<const int32_t> first(tokens.data(), 24), second(tokens.data() + 24, 24);
  ScratchDir dir("kv_state");
  for (KvType type : {KvType::kF32, KvType::kF16, KvType::kI8}) {
    SCOPED_TRACE(std::string(KvTypeName(type)));
    const std::string path = dir.Path(std::string(KvTypeName(type)) + ".smkv");
    LlamaForward fwd(m);

    // The cache that evaluated the prefix continues without a save and load in between.
    KvCache live = CacheFor(m, 64, type);
    Eval(fwd, first, 0, live);
    SaveKvState(path, m, live, first);
    const std::vector<float> want = Eval(fwd, second, 24, live);
    // The forward pass computes each token's row on its own, so all 48 tokens in one batch give
    // the same bits.
    KvCache whole = CacheFor(m, 64, type);
    const std::vector<float> all = Eval(fwd, tokens, 0, whole);
    EXPECT_TRUE(SameBits(std::vector<float>(all.begin() + 24 * (size_t)m.config.vocab, all.end()), want))
        << "one batch of 48 differs from 24 + 24";

    KvCache fresh = CacheFor(m, 64, type);
    EXPECT_EQ(LoadKvState(path, m, fresh), std::vector<int32_t>(first.begin(), first.end()));
    EXPECT_GE(fresh.reserved(), 24);
    EXPECT_TRUE(SameBits(Eval(fwd, second, 24, fresh), want)) << "loaded into an empty cache";

    // A cache that held a longer, different prefix: the loaded positions replace its rows.
    KvCache used = CacheFor(m, 64, type);
    Eval(fwd, std::span<const int32_t>(tokens.data() + 8, 40), 0, used);
    LoadKvState(path, m, used);
    EXPECT_TRUE(SameBits(Eval(fwd, second, 24, used), want)) << "loaded over another prefix";

    // Without the prefix the continuation differs, so the comparisons above can fail.
    KvCache other = CacheFor(m, 64, type);
    Eval(fwd, std::span<const int32_t>(tokens.data() + 1, 24), 0, other);
    EXPECT_FALSE(SameBits(Eval(fwd, second, 24, other), want));

    // The file is exactly header, version, tokens and every layer's K and V rows.
    EXPECT_EQ(std::filesystem::file_size(path), sizeof(KvStateHeader) + std::string_view(kVersion).size() +
                                                    24 * sizeof(int32_t) + 2 * 5 * 24 * live.RowBytes());
  }
}

// A file's bytes with the header edited by `edit`.
template <class F>
std::vector<uint8_t> EditHeader(std::vector<uint8_t> bytes, F edit) {
  KvStateHeader h;
  std::memcpy(&h, bytes.data(), sizeof h);
  edit(h);
  std::memcpy(bytes.data(), &h, sizeof h);
  return bytes;
}

TEST(KvState, RejectsBadFilesWithoutTouchingTheCache) {
  const Model& m = Stories();
  const std::vector<int32_t> tokens = Tokens(m, 24);
  ScratchDir dir("kv_state_bad");
  LlamaForward fwd(m);
  KvCache saved = CacheFor(m, 64, KvType::kF16);
  Eval(fwd, tokens, 0, saved);
  const std::string good = dir.Path("good.smkv");
  SaveKvState(good, m, saved, tokens);
  const std::vector<uint8_t> bytes = ReadAll(good);

  // The target already holds something; every failed load must leave it as it is.
  KvCache target = CacheFor(m, 64, KvType::kF16);
  Eval(fwd, std::span<const int32_t>(tokens.data(), 10), 0, target);
  const std::vector<uint8_t> before = CacheBytes(target);
  const int64_t reserved = target.reserved();
  auto expect_rejected = [&](const std::string& name, const std::vector<uint8_t>& file, const Model& model,
                             KvCache& cache, const std::string& keyword) {
    SCOPED_TRACE(name);
    const std::string path = dir.Path(name);
    WriteAll(path, file);
    const std::vector<uint8_t> cache_before = CacheBytes(cache);
    const int64_t cache_reserved = cache.reserved();
    ExpectError([&] { LoadKvState(path, model, cache); }, path, keyword);
    EXPECT_EQ(cache.reserved(), cache_reserved);
    EXPECT_TRUE(CacheBytes(cache) == cache_before) << "the cache was modified";
  };

  expect_rejected("empty.smkv", {}, m, target, "too short");
  expect_rejected("truncated.smkv", std::vector<uint8_t>(bytes.begin(), bytes.end() - 1), m, target, "expected");
  std::vector<uint8_t> longer = bytes;
  longer.push_back(0);
  expect_rejected("longer.smkv", longer, m, target, "expected");
  expect_rejected("magic.smkv", EditHeader(bytes, [](KvStateHeader& h) { h.magic[3] = 'X'; }), m, target, "bad magic");
  expect_rejected("version.smkv", EditHeader(bytes, [](KvStateHeader& h) { h.version = 2; }), m, target, "version 2");
  expect_rejected("type.smkv", EditHeader(bytes, [](KvStateHeader& h) { h.kv_type = 7; }), m, target, "type code 7");
  expect_rejected("ntokens.smkv", EditHeader(bytes, [](KvStateHeader& h) { h.n_tokens = 23; }), m, target,
                  "23 tokens for 24 positions");
  expect_rejected("huge.smkv", EditHeader(bytes, [](KvStateHeader& h) { h.n_positions = h.n_tokens = ~0ull >> 1; }),
                  m, target, "capacity");

  std::vector<uint8_t> bad_token = bytes;
  const int32_t outside = m.config.vocab;
  std::memcpy(&bad_token[sizeof(KvStateHeader) + std::string_view(kVersion).size() + 5 * sizeof(int32_t)], &outside,
              sizeof outside);
  expect_rejected("token.smkv", bad_token, m, target, "token 5 is 512, outside the vocabulary of 512");

  // Another model with the same shape (random weights), and a re-quantized stories260K.
  const Model synth = SynthesizeModel(
      {.dim = 64, .layers = 5, .heads = 8, .kv_heads = 4, .ff = 172, .vocab = 512, .context = 512, .seed = 3, .tied = false});
  expect_rejected("synth.smkv", bytes, synth, target, "different model");
  QuantizeOptions q8;
  q8.rules = {{.glob = "*", .type = DType::kQ8_0}};
  expect_rejected("q8_0.smkv", bytes, QuantizeModel(m, q8), target, "different model");

  // Caches the file does not fit: another element type, shape or capacity.
  KvCache f32 = CacheFor(m, 64, KvType::kF32);
  expect_rejected("to_f32.smkv", bytes, m, f32, "saved from an f16 KV cache, this cache is f32 (load it with --kv f16)");
  KvCache shape(m.config.n_layers, 2, 2 * m.config.head_dim, 64, KvType::kF16);
  expect_rejected("shape.smkv", bytes, m, shape, "5x4x8");
  KvCache small = CacheFor(m, 16, KvType::kF16);
  expect_rejected("small.smkv", bytes, m, small, "capacity of 16");
  // A cache whose capacity is only a number: positions it admits must not overflow the size.
  KvCache vast = CacheFor(m, int64_t{1} << 62, KvType::kF16);
  expect_rejected("overflow.smkv", EditHeader(bytes, [](KvStateHeader& h) { h.n_positions = h.n_tokens = 1ull << 61; }),
                  m, vast, "overflow");

  EXPECT_EQ(target.reserved(), reserved);
  EXPECT_TRUE(CacheBytes(target) == before);
}

TEST(KvState, FailedSaveLeavesNoFile) {
  const Model& m = Stories();
  const std::vector<int32_t> tokens = Tokens(m, 8);
  LlamaForward fwd(m);
  KvCache cache = CacheFor(m, 16, KvType::kF32);
  Eval(fwd, tokens, 0, cache);
  ScratchDir dir("kv_state_save");

  const std::string missing = dir.Path("no/such/dir/state.smkv");
  ExpectError([&] { SaveKvState(missing, m, cache, tokens); }, missing, "cannot create");

  std::vector<int32_t> bad = tokens;
  bad[3] = -1;
  const std::string path = dir.Path("state.smkv");
  ExpectError([&] { SaveKvState(path, m, cache, bad); }, path, "token 3 is -1");
  const std::vector<int32_t> too_many(cache.reserved() + 1, 1);
  ExpectError([&] { SaveKvState(path, m, cache, too_many); }, path, "holds only");
  KvCache other_shape(m.config.n_layers - 1, m.config.n_kv_heads, m.config.head_dim, 16);
  other_shape.Reserve(8);
  ExpectError([&] { SaveKvState(path, m, other_shape, tokens); }, path, "4x4x8");
  EXPECT_TRUE(std::filesystem::is_empty(dir.Path())) << "a failed save left a file";

  // And a successful one leaves exactly the file.
  SaveKvState(path, m, cache, tokens);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.Path()), {}), 1);
}

// The fuzz target's seeds still restore into the model it parses against (the same options as
// in fuzz/kv_state_fuzz.cc), so fuzzing starts from inputs that pass every check.
TEST(KvState, FuzzSeedsRestoreIntoTheFuzzModel) {
  const Model m = SynthesizeModel(
      {.dim = 32, .layers = 2, .heads = 4, .kv_heads = 2, .ff = 64, .vocab = 300, .context = 64, .seed = 7, .tied = false});
  const std::filesystem::path corpus = std::filesystem::path(SMELT_SOURCE_DIR) / "fuzz/corpus/kv_state_fuzz";
  int seeds = 0;
  for (const auto& entry : std::filesystem::directory_iterator(corpus)) {
    SCOPED_TRACE(entry.path().filename().string());
    const std::vector<uint8_t> bytes = ReadAll(entry.path().string());
    ASSERT_GE(bytes.size(), sizeof(KvStateHeader));
    KvStateHeader h;
    std::memcpy(&h, bytes.data(), sizeof h);
    const KvType type = h.kv_type == 0 ? KvType::kF32 : h.kv_type == 1 ? KvType::kF16 : KvType::kI8;
    KvCache cache = CacheFor(m, 32, type);
    EXPECT_EQ(LoadKvState(entry.path().string(), m, cache).size(), h.n_positions);
    ++seeds;
  }
  EXPECT_GE(seeds, 1);
}

}  // namespace
}  // namespace smelt
