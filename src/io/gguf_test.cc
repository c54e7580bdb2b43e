// GGUF reader/writer tests: the shared stories260K file and llama.cpp's vocabulary-only files
// checked against facts established independently (their READMEs, a naive reader of the
// llama2.c files), write/read round trips, and a corpus of corrupt files made by precise
// mutations of a valid one.
#include "io/gguf.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>

#include "formats/types.h"
#include "io/io_test_util.h"
#include "tiny_models.h"
#include "shared_assets.h"

namespace smelt {
namespace {

using testing_util::ExpectError;
using testing_util::ReadAll;
using testing_util::ScratchDir;
using testing_util::WriteAll;


// ---- naive little-endian readers of the raw files (independent of the code under test) -----

template <class T>
T At(const std::vector<uint8_t>& b, size_t off) {
  T v;
  std::memcpy(&v, b.data() + off, sizeof(T));
  return v;
}

// Scores of a llama2.c tokenizer.bin: i32 max_token_length, then per token f32 score, i32 len,
// len bytes.
std::vector<float> ReadTok512Scores(const std::string& path, int n) {
  std::vector<uint8_t> b = ReadAll(path);
  std::vector<float> scores;
  size_t p = 4;
  for (int i = 0; i < n; ++i) {
    scores.push_back(At<float>(b, p));
    int32_t len = At<int32_t>(b, p + 4);
    p += 8 + (size_t)len;
  }
  EXPECT_EQ(p, b.size());
  return scores;
}

// ---- stories260K ---------------------------------------------------------------------------

TEST(Gguf, Stories260KFacts) {
  GgufFile f = GgufFile::Open(assets::kStoriesGguf);
  EXPECT_EQ(f.path(), assets::kStoriesGguf);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  ASSERT_EQ(f.tensors().size(), 48u);
  for (const Tensor& t : f.tensors()) EXPECT_EQ(t.type, DType::kF32) << t.name;
  EXPECT_EQ(f.GetString("general.architecture"), "llama");
  EXPECT_EQ(f.GetInt("llama.embedding_length"), 64);
  EXPECT_EQ(f.GetInt("llama.feed_forward_length"), 172);
  EXPECT_EQ(f.GetInt("llama.block_count"), 5);
  EXPECT_EQ(f.GetInt("llama.attention.head_count"), 8);
  EXPECT_EQ(f.GetInt("llama.attention.head_count_kv"), 4);
  EXPECT_EQ(f.GetInt("llama.rope.dimension_count"), 8);
  EXPECT_EQ(f.GetInt("llama.context_length"), 2048);
  EXPECT_EQ((float)f.GetFloat("llama.attention.layer_norm_rms_epsilon"), 1e-5f);
  EXPECT_EQ(f.Find("llama.attention.layer_norm_rms_epsilon")->type(), GgufType::kF32);
  EXPECT_EQ(f.Find("llama.block_count")->type(), GgufType::kU32);

  const Tensor* embd = f.FindTensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  EXPECT_EQ(embd->n_dims, 2);
  EXPECT_EQ(embd->ne[0], 64);
  EXPECT_EQ(embd->ne[1], 512);
  const Tensor* down = f.FindTensor("blk.4.ffn_down.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->ne[0], 172);
  EXPECT_EQ(down->ne[1], 64);
  const Tensor* norm = f.FindTensor("blk.2.attn_norm.weight");
  ASSERT_NE(norm, nullptr);
  EXPECT_EQ(norm->n_dims, 1);
  EXPECT_EQ(norm->ne[0], 64);
  EXPECT_EQ(norm->nbytes, 64u * 4);

  // The embedding table is bit-identical to the one in the llama2.c export (after its 7 x i32
  // header), per the asset's README.
  std::vector<uint8_t> bin = ReadAll(assets::kShared + "/assets/stories260K/stories260K.bin");
  ASSERT_GE(bin.size(), 28 + embd->nbytes);
  EXPECT_EQ(std::memcmp(embd->data, bin.data() + 28, embd->nbytes), 0);

  // 512 tokens whose scores equal tok512.bin's.
  const std::vector<std::string>& tokens = f.GetStrings("tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.size(), 512u);
  EXPECT_EQ(tokens[1], "<s>");
  std::optional<std::vector<float>> scores = f.FindFloats("tokenizer.ggml.scores");
  ASSERT_TRUE(scores.has_value());
  std::vector<float> want = ReadTok512Scores(assets::kShared + "/assets/stories260K/tok512.bin", 512);
  ASSERT_EQ(scores->size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ((*scores)[i], want[i]) << i;
}

TEST(Gguf, TensorsPointIntoTheMapping) {
  std::vector<uint8_t> raw = ReadAll(assets::kStoriesGguf);
  GgufFile f = GgufFile::Open(assets::kStoriesGguf);
  EXPECT_EQ(f.data_offset() % 32, 0u);
  for (size_t i = 0; i < f.tensors().size(); ++i) {
    const Tensor& t = f.tensors()[i];
    const uint8_t* base = static_cast<const uint8_t*>(t.owner.get());
    ASSERT_NE(base, nullptr);
    const uint8_t* p = static_cast<const uint8_t*>(t.data);
    EXPECT_GE(p, base);
    EXPECT_LE(p + t.nbytes, base + raw.size());
    EXPECT_EQ((size_t)(p - base), f.data_offset() + f.tensor_offset(i)) << t.name;
    EXPECT_EQ(f.tensor_offset(i) % 32, 0u);
    EXPECT_EQ(std::memcmp(p, raw.data() + (p - base), t.nbytes), 0);
  }
  // The tensors keep the mapping alive after the file object is gone.
  Tensor keep = f.tensors()[0];
  const size_t off = static_cast<const uint8_t*>(keep.data) - static_cast<const uint8_t*>(keep.owner.get());
  f = GgufFile();
  EXPECT_EQ(std::memcmp(keep.data, raw.data() + off, keep.nbytes), 0);
}

// ---- llama.cpp's vocabulary-only files ----------------------------------------------------

struct VocabFileFacts {
  const char* file;
  const char* model;
  size_t tokens;
  size_t merges;  // 0: no merges key
  bool scores;
  const char* token0;
};

TEST(Gguf, VocabOnlyFiles) {
  // Counts and first entries as listed by an independent dump of the files.
  const VocabFileFacts facts[] = {
      {"ggml-vocab-llama-spm.gguf", "llama", 32000, 0, true, "<unk>"},
      {"ggml-vocab-phi-3.gguf", "llama", 32064, 0, true, "<unk>"},
      {"ggml-vocab-gpt-2.gguf", "gpt2", 50257, 50000, false, "!"},
      {"ggml-vocab-starcoder.gguf", "gpt2", 49152, 48872, false, "<|endoftext|>"},
      {"ggml-vocab-deepseek-llm.gguf", "gpt2", 102400, 99757, false, "!"},
  };
  for (const auto& fact : facts) {
    SCOPED_TRACE(fact.file);
    GgufFile f = GgufFile::Open(assets::kVocabDir + fact.file);
    EXPECT_TRUE(f.tensors().empty());
    EXPECT_EQ(f.GetString("tokenizer.ggml.model"), fact.model);
    const auto& tokens = f.GetStrings("tokenizer.ggml.tokens");
    ASSERT_EQ(tokens.size(), fact.tokens);
    EXPECT_EQ(tokens[0], fact.token0);
    std::optional<std::vector<int64_t>> types = f.FindInts("tokenizer.ggml.token_type");
    ASSERT_TRUE(types.has_value());
    EXPECT_EQ(types->size(), fact.tokens);
    EXPECT_EQ(f.Find("tokenizer.ggml.token_type")->elem_type(), GgufType::kI32);
    EXPECT_EQ(f.Has("tokenizer.ggml.scores"), fact.scores);
    if (fact.merges) {
      const auto& merges = f.GetStrings("tokenizer.ggml.merges");
      ASSERT_EQ(merges.size(), fact.merges);
      EXPECT_NE(merges[0].find(' '), std::string::npos);
    } else {
      EXPECT_EQ(f.FindStrings("tokenizer.ggml.merges"), nullptr);
    }
  }
  GgufFile spm = GgufFile::Open(assets::kVocabDir + "ggml-vocab-llama-spm.gguf");
  EXPECT_EQ(spm.GetStrings("tokenizer.ggml.tokens")[3], "<0x00>");
  EXPECT_EQ((*spm.FindInts("tokenizer.ggml.token_type"))[3], 6);  // byte token
  GgufFile gpt2 = GgufFile::Open(assets::kVocabDir + "ggml-vocab-gpt-2.gguf");
  EXPECT_EQ(gpt2.GetStrings("tokenizer.ggml.merges")[0], "\xc4\xa0 t");  // "Ġ t"
  EXPECT_EQ(gpt2.GetInt("tokenizer.ggml.bos_token_id"), 50256);
}

// ---- typed access -------------------------------------------------------------------------

TEST(Gguf, TypedGettersNameFileKeyAndTypes) {
  GgufWriter w;
  w.Set("llama.block_count", GgufValue::String("five"));
  w.Set("count", GgufValue::I16(-3));
  w.Set("big", GgufValue::U64(~uint64_t{0}));
  w.Set("flag", GgufValue::Bool(true));
  w.Set("names", GgufValue::StringArray({"a", "b"}));
  std::vector<uint8_t> bytes = w.WriteToMemory();
  GgufFile f = GgufFile::Parse(bytes.data(), bytes.size(), "model.gguf");
  try {
    f.GetInt("llama.block_count");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "model.gguf: key llama.block_count: expected an integer, found string");
  }
  EXPECT_EQ(f.GetInt("count"), -3);
  EXPECT_EQ(f.GetFloat("count"), -3.0);
  ExpectError([&] { f.Find("count")->AsUint(); }, "expected a non-negative", "non-negative");
  ExpectError([&] { f.GetInt("big"); }, "model.gguf: key big", "does not fit");
  EXPECT_EQ(f.Find("big")->AsUint(), ~uint64_t{0});
  ExpectError([&] { f.GetString("missing"); }, "model.gguf", "missing key missing");
  EXPECT_FALSE(f.FindInt("missing").has_value());
  ExpectError([&] { f.FindBool("count"); }, "model.gguf: key count", "expected a bool, found i16");
  ExpectError([&] { f.GetStrings("flag"); }, "model.gguf: key flag", "expected an array of strings, found bool");
  ExpectError([&] { f.FindInts("names"); }, "model.gguf: key names", "found array of string");
  EXPECT_TRUE(f.GetBool("flag"));
}

// ---- write -> read round trips -------------------------------------------------------------

std::vector<uint8_t> Pack(const void* p, size_t n) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  return std::vector<uint8_t>(b, b + n);
}

// One key of every value type, including arrays of every element type and nested arrays.
GgufWriter AllTypesWriter(uint32_t alignment = kGgufDefaultAlignment) {
  GgufWriter w(alignment);
  w.Set("t.u8", GgufValue::U8(250));
  w.Set("t.i8", GgufValue::I8(-100));
  w.Set("t.u16", GgufValue::U16(65000));
  w.Set("t.i16", GgufValue::I16(-32000));
  w.Set("t.u32", GgufValue::U32(4000000000u));
  w.Set("t.i32", GgufValue::I32(-2000000000));
  w.Set("t.f32", GgufValue::F32(0.1f));
  w.Set("t.bool", GgufValue::Bool(true));
  w.Set("t.string", GgufValue::String("h\xc3\xa9llo \xe2\x96\x81 world"));
  w.Set("t.u64", GgufValue::U64(18000000000000000000ull));
  w.Set("t.i64", GgufValue::I64(-9000000000000000000ll));
  w.Set("t.f64", GgufValue::F64(-1.0 / 3.0));
  w.Set("t.empty_string", GgufValue::String(""));
  const uint16_t u16s[] = {1, 65535};
  const int64_t i64s[] = {-1, 1ll << 40};
  const double f64s[] = {0.5, -2.25};
  const uint8_t bools[] = {1, 0, 1};
  w.Set("a.u16", GgufValue::NumericArray(GgufType::kU16, Pack(u16s, sizeof u16s)));
  w.Set("a.i64", GgufValue::NumericArray(GgufType::kI64, Pack(i64s, sizeof i64s)));
  w.Set("a.f64", GgufValue::NumericArray(GgufType::kF64, Pack(f64s, sizeof f64s)));
  w.Set("a.bool", GgufValue::NumericArray(GgufType::kBool, Pack(bools, sizeof bools)));
  const float f32s[] = {1.5f, -0.0f, 3e38f};
  w.Set("a.f32", GgufValue::F32Array(f32s));
  const int32_t i32s[] = {-7, 0, 7};
  w.Set("a.i32", GgufValue::I32Array(i32s));
  w.Set("a.string", GgufValue::StringArray({"", "x", "\xe2\x96\x81the"}));
  w.Set("a.empty", GgufValue::F32Array({}));
  GgufValue inner1 = GgufValue::I32Array(i32s);
  GgufValue inner2 = GgufValue::StringArray({"p", "q"});
  GgufValue nested = GgufValue::ArrayOfArrays({inner1, inner2, GgufValue::ArrayOfArrays({inner1})});
  w.Set("a.nested", nested);
  return w;
}

TEST(Gguf, MetadataRoundTripEveryType) {
  GgufWriter w = AllTypesWriter();
  std::vector<uint8_t> bytes = w.WriteToMemory();
  GgufFile f = GgufFile::Parse(bytes.data(), bytes.size(), "mem");
  EXPECT_EQ(f.version(), 3u);
  ASSERT_EQ(f.kvs().size(), 22u);
  EXPECT_EQ(f.GetInt("t.u8"), 250);
  EXPECT_EQ(f.Find("t.u8")->type(), GgufType::kU8);
  EXPECT_EQ(f.GetInt("t.i8"), -100);
  EXPECT_EQ(f.GetInt("t.u16"), 65000);
  EXPECT_EQ(f.GetInt("t.i16"), -32000);
  EXPECT_EQ(f.GetInt("t.u32"), 4000000000ll);
  EXPECT_EQ(f.GetInt("t.i32"), -2000000000);
  EXPECT_EQ((float)f.GetFloat("t.f32"), 0.1f);
  EXPECT_EQ(f.Find("t.f32")->type(), GgufType::kF32);
  EXPECT_TRUE(f.GetBool("t.bool"));
  EXPECT_EQ(f.GetString("t.string"), "h\xc3\xa9llo \xe2\x96\x81 world");
  EXPECT_EQ(f.Find("t.u64")->AsUint(), 18000000000000000000ull);
  EXPECT_EQ(f.GetInt("t.i64"), -9000000000000000000ll);
  EXPECT_EQ(f.GetFloat("t.f64"), -1.0 / 3.0);
  EXPECT_EQ(f.GetString("t.empty_string"), "");
  EXPECT_EQ(*f.FindInts("a.u16"), (std::vector<int64_t>{1, 65535}));
  EXPECT_EQ(*f.FindInts("a.i64"), (std::vector<int64_t>{-1, 1ll << 40}));
  EXPECT_EQ(*f.FindFloats("a.f64"), (std::vector<float>{0.5f, -2.25f}));
  EXPECT_EQ(f.Find("a.bool")->elem_type(), GgufType::kBool);
  EXPECT_EQ(f.Find("a.bool")->size(), 3u);
  std::vector<float> f32 = *f.FindFloats("a.f32");
  ASSERT_EQ(f32.size(), 3u);
  EXPECT_EQ(f32[0], 1.5f);
  EXPECT_TRUE(std::signbit(f32[1]));
  EXPECT_EQ(f32[2], 3e38f);
  EXPECT_EQ(*f.FindInts("a.i32"), (std::vector<int64_t>{-7, 0, 7}));
  EXPECT_EQ(f.GetStrings("a.string"), (std::vector<std::string>{"", "x", "\xe2\x96\x81the"}));
  EXPECT_EQ(f.Find("a.empty")->size(), 0u);
  const GgufValue& nested = *f.Find("a.nested");
  ASSERT_EQ(nested.AsArrays().size(), 3u);
  EXPECT_EQ(nested.AsArrays()[0].AsInts(), (std::vector<int64_t>{-7, 0, 7}));
  EXPECT_EQ(nested.AsArrays()[1].AsStrings(), (std::vector<std::string>{"p", "q"}));
  EXPECT_EQ(nested.AsArrays()[2].AsArrays()[0].AsInts(), (std::vector<int64_t>{-7, 0, 7}));
  // Every value reads back equal to what was written, in order.
  std::vector<uint8_t> again = AllTypesWriter().WriteToMemory();
  EXPECT_EQ(bytes, again);
  GgufWriter copy;
  for (const GgufKV& kv : f.kvs()) copy.Set(kv.key, kv.value);
  EXPECT_EQ(copy.WriteToMemory(), bytes);
  EXPECT_EQ(f.Find("a.i32")->ToString(), "[-7, 0, 7]");
  EXPECT_EQ(f.Find("a.string")->ToString(2), "[\"\", \"x\", ... (3 items)]");
}

// The header of a file written by GgufWriter, checked byte by byte against the spec.
TEST(Gguf, WriterLayoutFollowsTheSpec) {
  GgufWriter w;
  w.Set("k", GgufValue::U32(7));
  const float vals[3] = {1, 2, 3};
  w.AddTensor(MakeF32Tensor("a", {3}, {vals, vals + 3}));
  w.AddTensor(MakeF32Tensor("b", {1}, {4}));
  std::vector<uint8_t> b = w.WriteToMemory();
  EXPECT_EQ(std::memcmp(b.data(), "GGUF", 4), 0);
  EXPECT_EQ(At<uint32_t>(b, 4), 3u);   // version
  EXPECT_EQ(At<uint64_t>(b, 8), 2u);   // tensors
  EXPECT_EQ(At<uint64_t>(b, 16), 1u);  // kvs
  EXPECT_EQ(At<uint64_t>(b, 24), 1u);  // key length
  EXPECT_EQ(b[32], 'k');
  EXPECT_EQ(At<uint32_t>(b, 33), 4u);  // u32
  EXPECT_EQ(At<uint32_t>(b, 37), 7u);
  size_t p = 41;  // tensor info "a": name, n_dims 1, ne 3, type f32, offset 0
  EXPECT_EQ(At<uint64_t>(b, p), 1u);
  EXPECT_EQ(b[p + 8], 'a');
  EXPECT_EQ(At<uint32_t>(b, p + 9), 1u);
  EXPECT_EQ(At<uint64_t>(b, p + 13), 3u);
  EXPECT_EQ(At<uint32_t>(b, p + 21), 0u);
  EXPECT_EQ(At<uint64_t>(b, p + 25), 0u);
  p += 33;  // "b": offset 32 (12 bytes of "a" padded to 32)
  EXPECT_EQ(At<uint64_t>(b, p + 25), 32u);
  const size_t data = (p + 33 + 31) / 32 * 32;
  for (size_t i = p + 33; i < data; ++i) EXPECT_EQ(b[i], 0) << i;
  EXPECT_EQ(At<float>(b, data + 8), 3.0f);
  EXPECT_EQ(At<float>(b, data + 32), 4.0f);
  EXPECT_EQ(b.size(), data + 64);
}

TEST(Gguf, TensorRoundTripEveryWritableType) {
  ScratchDir dir("gguf_types");
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  for (uint32_t alignment : {32u, 64u}) {
    GgufWriter w = AllTypesWriter(alignment);
    std::vector<DType> types;
    std::vector<std::vector<float>> values;
    std::vector<uint32_t> ids;  // ggml's range and the smelt-native one
    for (uint32_t id = 0; id < 64; ++id) ids.push_back(id), ids.push_back(kFirstNativeTypeId + id);
    for (uint32_t id : ids) {
      const TypeTraits* tr = FindTraits(id);
      if (!tr || !tr->from_float) continue;
      types.push_back(tr->type);
      const int64_t ne0 = tr->block_size * 3, ne1 = 5;
      std::vector<float> v((size_t)(ne0 * ne1));
      for (float& x : v) x = u(rng);
      values.push_back(v);
      Tensor f32 = MakeF32Tensor(fmt::format("w.{}", tr->name), {ne0, ne1}, v);
      w.AddTensor(f32.name, tr->type, 2, f32.ne, [f32, tr](const GgufWriter::Emit& emit) {
        std::vector<uint8_t> row(RowBytes(tr->type, f32.ne[0]));
        for (int64_t r = 0; r < f32.ne[1]; ++r) {
          tr->from_float(f32.as<float>() + r * f32.ne[0], row.data(), f32.ne[0]);
          emit(row.data(), row.size());
        }
      });
    }
    ASSERT_GE(types.size(), 5u);
    const std::string path = dir.Path(fmt::format("types{}.gguf", alignment));
    w.WriteFile(path);
    std::vector<uint8_t> first = ReadAll(path);
    w.WriteFile(path);
    EXPECT_EQ(ReadAll(path), first) << "not byte-stable";
    EXPECT_EQ(w.WriteToMemory(), first);

    GgufFile f = GgufFile::Open(path);
    EXPECT_EQ(f.alignment(), alignment);
    EXPECT_EQ(f.data_offset() % alignment, 0u);
    EXPECT_EQ(f.Has("general.alignment"), alignment != 32);
    ASSERT_EQ(f.tensors().size(), types.size());
    for (size_t i = 0; i < types.size(); ++i) {
      const Tensor& t = f.tensors()[i];
      EXPECT_EQ(t.type, types[i]);
      EXPECT_EQ(f.tensor_offset(i) % alignment, 0u);
      EXPECT_EQ(t.nbytes, RowBytes(t.type, t.ne[0]) * 5);
      // The bytes read back are the bytes the encoder produced.
      const TypeTraits& tr = Traits(t.type);
      std::vector<uint8_t> want(t.nbytes);
      const size_t row_bytes = RowBytes(t.type, t.ne[0]);  // row by row: per-channel types have row headers
      for (int64_t r = 0; r < t.nrows(); ++r)
        tr.from_float(values[i].data() + r * t.ne[0], want.data() + r * row_bytes, t.ne[0]);
      EXPECT_EQ(std::memcmp(want.data(), t.data, t.nbytes), 0) << tr.name;
    }
  }
}

// A type whose rows hold data that follows from their other bytes (s24_w4a8's header: the sum
// of the row's scaled codes) is checked on reading: a file whose header disagrees fails with one
// line naming the tensor and the row; the writer's own rows pass.
TEST(Gguf, RowsWhoseHeaderDoesNotFollowFromTheirBlocksAreRefused) {
  const int64_t n = 256, rows = 3;
  std::vector<float> v = tiny::RandomVector(n * rows, 9);
  GgufWriter w;
  w.AddTensor(tiny::EncodeTensor(MakeF32Tensor("w", {n, rows}, v), DType::kS24_W4A8));
  const std::vector<uint8_t> bytes = w.WriteToMemory();
  GgufFile good = GgufFile::Parse(bytes.data(), bytes.size(), "good.gguf");
  const size_t row1 = (size_t)(static_cast<const uint8_t*>(good.tensors()[0].data) - bytes.data()) + RowBytes(DType::kS24_W4A8, n);
  std::vector<uint8_t> bad = bytes;
  bad[row1] ^= 1;  // the lowest bit of row 1's header
  ExpectError([&] { GgufFile::Parse(bad.data(), bad.size(), "bad.gguf"); }, "bad.gguf: ", "tensor w (s24_w4a8): row 1");
}

TEST(Gguf, WriterRejectsBadInput) {
  GgufWriter w;
  w.Set("a", GgufValue::U8(1));
  ExpectError([&] { w.Set("a", GgufValue::U8(2)); }, "duplicate", "a");
  ExpectError([&] { w.Set("bad\xff", GgufValue::U8(2)); }, "GGUF key", "UTF-8");
  w.AddTensor(MakeF32Tensor("t", {2}, {1, 2}));
  ExpectError([&] { w.AddTensor(MakeF32Tensor("t", {2}, {1, 2})); }, "duplicate tensor", "t");
  ExpectError([&] { w.AddTensor("q", DType::kQ8_0, 1, {33, 1, 1, 1}, nullptr); }, "tensor q", "block size");
  ExpectError([&] { w.AddTensor("z", DType::kF32, 5, {1, 1, 1, 1}, nullptr); }, "tensor z", "n_dims");
  w.AddTensor("short", DType::kF32, 1, {4, 1, 1, 1}, [](const GgufWriter::Emit& e) { e("abc", 3); });
  ScratchDir dir("gguf_writer_bad");
  ExpectError([&] { w.WriteFile(dir.Path("x.gguf")); }, dir.Path("x.gguf"), "producer wrote 3 bytes");
  EXPECT_FALSE(std::filesystem::exists(dir.Path("x.gguf")));  // nothing half-written
  EXPECT_TRUE(std::filesystem::is_empty(dir.Path()));
}

TEST(Gguf, NestingDepthIsLimited) {
  GgufValue v = GgufValue::I32Array({});
  for (int i = 0; i < kGgufMaxArrayDepth; ++i) v = GgufValue::ArrayOfArrays({v});
  GgufWriter w;
  w.Set("deep", v);
  std::vector<uint8_t> b = w.WriteToMemory();
  ExpectError([&] { GgufFile::Parse(b.data(), b.size(), "deep.gguf"); }, "deep.gguf: key deep", "nested deeper");
  GgufValue ok = GgufValue::I32Array({});
  for (int i = 0; i < kGgufMaxArrayDepth - 1; ++i) ok = GgufValue::ArrayOfArrays({ok});
  GgufWriter w2;
  w2.Set("deep", ok);
  b = w2.WriteToMemory();
  EXPECT_EQ(GgufFile::Parse(b.data(), b.size(), "ok.gguf").Find("deep")->size(), 1u);
}

// ---- corrupt files ------------------------------------------------------------------------

// A small valid file with known names to find fields by: two keys of equal length, an i32
// array, a bool, and tensors of two types.
std::vector<uint8_t> ValidFile() {
  GgufWriter w;
  w.Set("key.aa", GgufValue::String("hello"));
  w.Set("key.ab", GgufValue::U32(5));
  const int32_t arr[] = {1, 2, 3};
  w.Set("key.arr", GgufValue::I32Array(arr));
  w.Set("key.flag", GgufValue::Bool(false));
  std::vector<float> v(16);
  for (int i = 0; i < 16; ++i) v[i] = (float)i;
  w.AddTensor(MakeF32Tensor("tensor.a", {8, 2}, v));
  w.AddTensor("tensor.b", DType::kQ8_0, 2, {32, 2, 1, 1}, [](const GgufWriter::Emit& emit) {
    std::vector<uint8_t> zeros(68, 0);
    emit(zeros.data(), zeros.size());
  });
  return w.WriteToMemory();
}

size_t FindBytes(const std::vector<uint8_t>& b, const std::string& s) {
  auto it = std::search(b.begin(), b.end(), s.begin(), s.end());
  SMELT_ASSERT(it != b.end());
  return (size_t)(it - b.begin());
}

template <class T>
void Put(std::vector<uint8_t>& b, size_t off, T v) {
  std::memcpy(b.data() + off, &v, sizeof(T));
}

// Field offsets of the tensor info named `name` (which must be unique in the file).
struct InfoFields {
  size_t name, n_dims, ne0, ne1, type, offset;
};
InfoFields Info(const std::vector<uint8_t>& b, const std::string& name) {
  InfoFields f;
  f.name = FindBytes(b, name);
  f.n_dims = f.name + name.size();
  f.ne0 = f.n_dims + 4;
  f.ne1 = f.ne0 + 8;
  f.type = f.ne1 + 8;  // both tensors are 2-D
  f.offset = f.type + 4;
  return f;
}

TEST(Gguf, ValidFileParses) {
  std::vector<uint8_t> b = ValidFile();
  GgufFile f = GgufFile::Parse(b.data(), b.size(), "valid.gguf");
  ASSERT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.tensors()[1].type, DType::kQ8_0);
  EXPECT_EQ(f.tensors()[0].as<float>()[15], 15.0f);
}

TEST(Gguf, CorruptFilesFailWithOneClearLine) {
  ScratchDir dir("gguf_corrupt");
  const std::vector<uint8_t> good = ValidFile();
  GgufFile parsed = GgufFile::Parse(good.data(), good.size(), "valid");
  const size_t data = parsed.data_offset();
  const InfoFields a = Info(good, "tensor.a"), b = Info(good, "tensor.b");
  const size_t key_aa = FindBytes(good, "key.aa"), key_ab = FindBytes(good, "key.ab");
  const size_t arr_count = FindBytes(good, "key.arr") + 7 + 4 + 4;  // after name, type, elem type
  const size_t str_len = key_aa + 6 + 4;                            // the u64 length of "hello"
  const size_t flag = FindBytes(good, "key.flag") + 8 + 4;
  const size_t end_of_b = data + parsed.tensor_offset(1) + 68;

  struct Case {
    std::string name;
    std::function<void(std::vector<uint8_t>&)> mutate;
    std::string keyword;
  };
  std::vector<Case> cases = {
      {"wrong_magic", [](auto& f) { f[0] = 'X'; }, "not a GGUF file"},
      {"version1", [](auto& f) { Put<uint32_t>(f, 4, 1); }, "version 1 is not supported"},
      {"version99", [](auto& f) { Put<uint32_t>(f, 4, 99); }, "unsupported GGUF version 99"},
      {"big_endian", [](auto& f) { Put<uint32_t>(f, 4, 0x03000000); }, "big-endian"},
      {"huge_kv_count", [](auto& f) { Put<uint64_t>(f, 16, 1ull << 60); }, "key/value count"},
      {"huge_tensor_count", [](auto& f) { Put<uint64_t>(f, 8, 1ull << 40); }, "tensor count"},
      {"duplicate_key", [&](auto& f) { f[key_ab + 5] = 'a'; }, "duplicate key key.aa"},
      {"bad_utf8_key", [&](auto& f) { f[key_aa + 4] = (char)0xff; }, "not valid UTF-8"},
      {"overlong_utf8_key", [&](auto& f) { f[key_aa + 4] = (char)0xc0; f[key_aa + 5] = (char)0xae; }, "UTF-8"},
      {"unknown_value_type", [&](auto& f) { Put<uint32_t>(f, key_ab + 6, 13); }, "unknown value type 13"},
      {"huge_string_length", [&](auto& f) { Put<uint64_t>(f, str_len, 1ull << 62); }, "string length"},
      {"huge_array_count", [&](auto& f) { Put<uint64_t>(f, arr_count, 1ull << 40); }, "array count"},
      {"bad_bool", [&](auto& f) { f[flag] = 2; }, "not 0 or 1"},
      {"duplicate_tensor", [&](auto& f) { f[b.name + 7] = 'a'; }, "duplicate tensor name tensor.a"},
      {"bad_utf8_name", [&](auto& f) { f[a.name + 2] = (char)0x80; }, "not valid UTF-8"},
      {"n_dims_0", [&](auto& f) { Put<uint32_t>(f, a.n_dims, 0); }, "n_dims 0"},
      {"n_dims_5", [&](auto& f) { Put<uint32_t>(f, a.n_dims, 5); }, "n_dims 5"},
      {"zero_dim", [&](auto& f) { Put<uint64_t>(f, a.ne1, 0); }, "not a positive size"},
      {"negative_dim", [&](auto& f) { Put<uint64_t>(f, a.ne0, ~0ull); }, "not a positive size"},
      {"absurd_dims", [&](auto& f) { Put<uint64_t>(f, a.ne0, 1ull << 40); }, "past end of file"},
      {"overflowing_dims",
       [&](auto& f) {
         Put<uint64_t>(f, a.ne0, 1ull << 32);
         Put<uint64_t>(f, a.ne1, 1ull << 32);
       },
       "overflows"},
      {"unknown_type", [&](auto& f) { Put<uint32_t>(f, b.type, 99); }, "unknown tensor type id 99"},
      {"block_size", [&](auto& f) { Put<uint64_t>(f, b.ne0, 48); }, "not a multiple of the block size 32"},
      {"unaligned_offset", [&](auto& f) { Put<uint64_t>(f, b.offset, 8); }, "not aligned"},
      {"offset_past_end", [&](auto& f) { Put<uint64_t>(f, b.offset, 1ull << 20); }, "past end of file"},
      {"huge_offset", [&](auto& f) { Put<uint64_t>(f, b.offset, ~0ull - 31); }, "past end of file"},
      {"overlap", [&](auto& f) { Put<uint64_t>(f, b.offset, 0); }, "overlap"},
  };
  // Truncations: in the header, in each part of the metadata, in the tensor infos, in the data.
  for (size_t cut : {size_t{0}, size_t{3}, size_t{6}, size_t{15}, size_t{23}, key_aa + 2, str_len + 4, arr_count + 9,
                     flag, a.name + 3, b.ne1 + 2, b.offset + 7, data, data + 40, end_of_b - 1}) {
    cases.push_back({fmt::format("truncated_{}", cut), [cut](auto& f) { f.resize(cut); }, ""});
  }
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<uint8_t> bytes = good;
    c.mutate(bytes);
    const std::string path = dir.Path(c.name + ".gguf");
    WriteAll(path, bytes);
    if (c.keyword.empty()) {  // truncation: any of the wordings for "the file ends too early"
      try {
        GgufFile::Open(path);
        ADD_FAILURE() << "no error";
      } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << msg;
        EXPECT_TRUE(msg.find("truncated") != std::string::npos || msg.find("past end of file") != std::string::npos ||
                    msg.find("could hold") != std::string::npos)
            << msg;
        EXPECT_EQ(msg.find('\n'), std::string::npos);
      }
    } else {
      ExpectError([&] { GgufFile::Open(path); }, path + ": ", c.keyword);
    }
  }
}

// A file of one key, built by hand: header, key, value type, value bytes.
std::vector<uint8_t> OneKeyFile(const std::string& key, GgufType type, const std::vector<uint8_t>& value) {
  std::vector<uint8_t> b = {'G', 'G', 'U', 'F', 3, 0, 0, 0};
  auto u64 = [&](uint64_t v) { b.insert(b.end(), (uint8_t*)&v, (uint8_t*)&v + 8); };
  u64(0);  // tensors
  u64(1);  // kvs
  u64(key.size());
  b.insert(b.end(), key.begin(), key.end());
  const uint32_t t = (uint32_t)type;
  b.insert(b.end(), (const uint8_t*)&t, (const uint8_t*)&t + 4);
  b.insert(b.end(), value.begin(), value.end());
  return b;
}

TEST(Gguf, AlignmentKey) {
  for (uint32_t al : {0u, 3u, 48u}) {
    std::vector<uint8_t> b = OneKeyFile("general.alignment", GgufType::kU32, Pack(&al, 4));
    ExpectError([&] { GgufFile::Parse(b.data(), b.size(), "al.gguf"); }, "al.gguf: ", "power of two");
    GgufWriter w;
    ExpectError([&] { w.Set("general.alignment", GgufValue::U32(al)); }, "general.alignment", "power of two");
  }
  std::vector<uint8_t> s = OneKeyFile("general.alignment", GgufType::kString, {2, 0, 0, 0, 0, 0, 0, 0, '3', '2'});
  ExpectError([&] { GgufFile::Parse(s.data(), s.size(), "al.gguf"); }, "al.gguf: key general.alignment", "integer");
  GgufWriter bad;
  ExpectError([&] { bad.Set("general.alignment", GgufValue::String("32")); }, "", "expected an integer");

  // Setting the key lays the file out with it (also over the constructor's choice).
  GgufWriter w(64);
  w.Set("general.alignment", GgufValue::U32(128));
  w.AddTensor(MakeF32Tensor("a", {3}, {1, 2, 3}));
  w.AddTensor(MakeF32Tensor("b", {1}, {4}));
  std::vector<uint8_t> b = w.WriteToMemory();
  GgufFile f = GgufFile::Parse(b.data(), b.size(), "al.gguf");
  EXPECT_EQ(f.kvs().size(), 1u);
  EXPECT_EQ(f.alignment(), 128u);
  EXPECT_EQ(f.data_offset() % 128, 0u);
  EXPECT_EQ(f.tensor_offset(1), 128u);
  EXPECT_EQ(f.tensors()[1].as<float>()[0], 4.0f);
}

// Every prefix of a valid file fails cleanly (or, for cuts in the trailing padding, parses).
TEST(Gguf, EveryTruncationIsAnError) {
  const std::vector<uint8_t> good = ValidFile();
  GgufFile parsed = GgufFile::Parse(good.data(), good.size(), "valid");
  const size_t needed = parsed.data_offset() + parsed.tensor_offset(1) + parsed.tensors()[1].nbytes;
  for (size_t n = 0; n < good.size(); ++n) {
    std::vector<uint8_t> cut(good.begin(), good.begin() + (ptrdiff_t)n);
    if (n >= needed) {
      EXPECT_NO_THROW(GgufFile::Parse(cut.data(), cut.size(), "cut"));
    } else {
      EXPECT_THROW(GgufFile::Parse(cut.data(), cut.size(), "cut"), Error) << n;
    }
  }
}

TEST(Gguf, MissingFile) {
  ExpectError([] { GgufFile::Open("/nonexistent/model.gguf"); }, "/nonexistent/model.gguf: ", "cannot open");
}

TEST(Gguf, Utf8Validation) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8("\xc3\xa9\xe2\x96\x81\xf0\x9f\x98\x80"));  // é ▁ 😀
  EXPECT_FALSE(IsValidUtf8("\x80"));                                 // lone continuation
  EXPECT_FALSE(IsValidUtf8("\xc3"));                                 // cut sequence
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));                             // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xe0\x80\xaf"));                         // overlong 3-byte
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));                         // surrogate U+D800
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));                     // U+110000
  EXPECT_FALSE(IsValidUtf8("\xff"));
}

}  // namespace
}  // namespace smelt
