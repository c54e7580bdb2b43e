// safetensors: a file assembled byte by byte from the format description parses to the expected
// tensors; the writer's files are checked independently (raw header JSON, alignment) and read
// back equal; a corpus of corrupt files each gives a one-line Error naming the file.
#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <random>

#include "core/half.h"
#include "io/io_test_util.h"

namespace smelt {
namespace {

using testing_util::ExpectError;
using testing_util::ScratchDir;

// u64 LE header length + header text + data, assembled by hand.
std::vector<uint8_t> Assemble(const std::string& header, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out;
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back((uint8_t)(n >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

void PutF32(std::vector<uint8_t>& v, float f) {
  uint8_t b[4];
  std::memcpy(b, &f, 4);
  v.insert(v.end(), b, b + 4);
}
void PutU16(std::vector<uint8_t>& v, uint16_t x) {
  v.push_back((uint8_t)x);
  v.push_back((uint8_t)(x >> 8));
}

SafetensorsFile Parse(const std::vector<uint8_t>& bytes, const std::string& source = "t.safetensors") {
  return ParseSafetensors(bytes, source, nullptr);
}

TEST(Safetensors, HandWrittenFileParses) {
  // a: F32 [2, 3] = 1..6 at [0, 24); b: F16 [3] = {1, -2, 0.5} at [24, 30); c: BF16 [1, 2] =
  // {1, -0.5} at [30, 34). Half codes from IEEE 754: 1.0 = 0x3C00, -2.0 = 0xC000, 0.5 = 0x3800;
  // bfloat16 is the top half of the f32: 1.0 = 0x3F80, -0.5 = 0xBF00.
  const std::string header =
      R"({"b":{"dtype":"F16","shape":[3],"data_offsets":[24,30]},)"
      R"("__metadata__":{"format":"pt","note":"hand made"},)"
      R"("c":{"dtype":"BF16","shape":[1,2],"data_offsets":[30,34]},)"
      R"("a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}})";
  std::vector<uint8_t> data;
  for (int i = 1; i <= 6; ++i) PutF32(data, (float)i);
  for (uint16_t h : {0x3C00, 0xC000, 0x3800}) PutU16(data, h);
  for (uint16_t h : {0x3F80, 0xBF00}) PutU16(data, h);
  const std::vector<uint8_t> bytes = Assemble(header, data);  // the tensors point into it
  SafetensorsFile f = Parse(bytes);

  ASSERT_EQ(f.tensors.size(), 3u);
  EXPECT_EQ(f.metadata.at("format"), "pt");
  EXPECT_EQ(f.metadata.at("note"), "hand made");
  const Tensor& a = f.tensors[0];  // buffer order
  EXPECT_EQ(a.name, "a");
  EXPECT_EQ(a.type, DType::kF32);
  EXPECT_EQ(a.n_dims, 2);
  EXPECT_EQ(a.ne[0], 3);  // last (contiguous) dim first
  EXPECT_EQ(a.ne[1], 2);
  EXPECT_EQ(a.nbytes, 24u);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(a.as<float>()[i], (float)(i + 1));
  const Tensor& b = f.tensors[1];
  EXPECT_EQ(b.name, "b");
  EXPECT_EQ(b.type, DType::kF16);
  EXPECT_EQ(b.n_dims, 1);
  EXPECT_EQ(b.ne[0], 3);
  EXPECT_EQ(Fp16ToFloat(b.as<uint16_t>()[0]), 1.0f);
  EXPECT_EQ(Fp16ToFloat(b.as<uint16_t>()[1]), -2.0f);
  EXPECT_EQ(Fp16ToFloat(b.as<uint16_t>()[2]), 0.5f);
  const Tensor& c = f.tensors[2];
  EXPECT_EQ(c.type, DType::kBF16);
  EXPECT_EQ(c.ne[0], 2);
  EXPECT_EQ(c.ne[1], 1);
  EXPECT_EQ(Bf16ToFloat(c.as<uint16_t>()[0]), 1.0f);
  EXPECT_EQ(Bf16ToFloat(c.as<uint16_t>()[1]), -0.5f);
  // Whatever the header length did to alignment, the data is readable as its element type.
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data) % 4, 0u);
  EXPECT_NE(f.Find("c"), nullptr);
  EXPECT_EQ(f.Find("d"), nullptr);
}

TEST(Safetensors, RankZeroAndEmptyTensors) {
  const std::string header =
      R"({"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"e":{"dtype":"F16","shape":[0,5],"data_offsets":[4,4]}})";
  std::vector<uint8_t> data;
  PutF32(data, 2.5f);
  const std::vector<uint8_t> bytes = Assemble(header, data);  // the tensors point into it
  SafetensorsFile f = Parse(bytes);
  ASSERT_EQ(f.tensors.size(), 2u);
  const Tensor* s = f.Find("s");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->n_dims, 0);
  EXPECT_EQ(s->nelements(), 1);
  EXPECT_EQ(s->as<float>()[0], 2.5f);
  const Tensor* e = f.Find("e");
  EXPECT_EQ(e->nelements(), 0);
  EXPECT_EQ(e->nbytes, 0u);
}

Tensor RandomTensor(const std::string& name, DType type, std::vector<int64_t> ne, std::mt19937& rng) {
  std::normal_distribution<float> nd;
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  std::vector<float> v((size_t)n);
  for (float& x : v) x = nd(rng);
  Tensor t = MakeF32Tensor(name, ne, v);
  if (type == DType::kF32) return t;
  auto buf = std::make_shared<std::vector<uint16_t>>((size_t)n);
  for (int64_t i = 0; i < n; ++i) (*buf)[i] = type == DType::kF16 ? FloatToFp16(v[i]) : FloatToBf16(v[i]);
  t.type = type;
  t.data = buf->data();
  t.nbytes = buf->size() * 2;
  t.owner = std::shared_ptr<const void>(buf, buf->data());
  return t;
}

TEST(Safetensors, WriteReadRoundTripAllTypes) {
  ScratchDir dir("st_rt");
  std::mt19937 rng(3);
  std::vector<Tensor> ts = {RandomTensor("w.f32", DType::kF32, {5, 3}, rng),
                            RandomTensor("v.f16", DType::kF16, {7}, rng),
                            RandomTensor("x.bf16", DType::kBF16, {2, 3, 4}, rng),
                            RandomTensor("y.f32", DType::kF32, {3, 1, 2, 2}, rng)};
  const std::string path = dir.Path("m.safetensors");
  WriteSafetensors(path, ts, {{"format", "pt"}});

  // Independent look at the bytes: header length, 8-byte aligned data, row-major shapes.
  std::vector<uint8_t> raw = testing_util::ReadAll(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | raw[i];
  EXPECT_EQ((8 + n) % 8, 0u);
  auto header = nlohmann::json::parse(std::string(raw.begin() + 8, raw.begin() + 8 + n));
  EXPECT_EQ(header["w.f32"]["shape"], nlohmann::json({3, 5}));
  EXPECT_EQ(header["x.bf16"]["shape"], nlohmann::json({4, 3, 2}));
  EXPECT_EQ(header["x.bf16"]["dtype"], "BF16");
  EXPECT_EQ(header["v.f16"]["dtype"], "F16");
  EXPECT_EQ(header["__metadata__"]["format"], "pt");
  size_t total = 0;
  for (const Tensor& t : ts) total += t.nbytes;
  EXPECT_EQ(raw.size(), 8 + n + total);

  SafetensorsFile f = ReadSafetensors(path);
  ASSERT_EQ(f.tensors.size(), ts.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    const Tensor& a = ts[i];
    const Tensor* b = f.Find(a.name);
    ASSERT_NE(b, nullptr) << a.name;
    EXPECT_EQ(b->type, a.type);
    EXPECT_EQ(b->n_dims, a.n_dims);
    EXPECT_EQ(b->ne, a.ne);
    ASSERT_EQ(b->nbytes, a.nbytes);
    EXPECT_EQ(std::memcmp(a.data, b->data, a.nbytes), 0) << a.name;
  }
  EXPECT_EQ(f.metadata.at("format"), "pt");
}

TEST(Safetensors, UnfinishedWriterLeavesNothing) {
  ScratchDir dir("st_abort");
  const std::string path = dir.Path("m.safetensors");
  {
    SafetensorsWriter w(path, {{"a", DType::kF32, 1, {4, 1, 1, 1}}});
    float v[4] = {1, 2, 3, 4};
    w.Write(v, sizeof(v));
  }  // no Commit
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_TRUE(std::filesystem::is_empty(dir.Path()));
  ExpectError([&] { SafetensorsWriter w(path, {{"q", DType::kQ4_0, 1, {32, 1, 1, 1}}}); }, path, "F32, F16, BF16");
  ExpectError([&] { SafetensorsWriter w(path, {{"a", DType::kF32, 1, {1, 1, 1, 1}}, {"a", DType::kF32, 1, {1, 1, 1, 1}}}); },
              path, "twice");
  EXPECT_TRUE(std::filesystem::is_empty(dir.Path()));
}

// One F32 tensor "a" of shape [2] at [0, 8), with the header text replaced.
std::vector<uint8_t> WithHeader(const std::string& header, size_t data_bytes = 8) {
  return Assemble(header, std::vector<uint8_t>(data_bytes, 0));
}

TEST(Safetensors, CorruptFilesFailWithOneLineErrors) {
  const std::string src = "bad.safetensors";
  auto expect = [&](const std::vector<uint8_t>& bytes, const std::string& keyword) {
    SCOPED_TRACE(keyword);
    ExpectError([&] { Parse(bytes, src); }, src, keyword);
  };
  const std::string good = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  ASSERT_EQ(Parse(WithHeader(good)).tensors.size(), 1u);

  std::vector<uint8_t> truncated = WithHeader(good);
  truncated.resize(truncated.size() - 3);
  expect(truncated, "past the end of the data");
  expect(std::vector<uint8_t>{1, 0, 0}, "too small");
  std::vector<uint8_t> long_header = WithHeader(good);
  long_header[0] = 0xff;  // header length 255 + ... > file
  expect(long_header, "runs past the end of the file");
  std::vector<uint8_t> absurd = WithHeader(good);
  absurd[5] = 0x01;  // 2^40 + ...
  expect(absurd, "absurd");
  expect(WithHeader(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})"), "invalid JSON");
  expect(WithHeader("{\"a\":\n\x01}"), "invalid JSON");
  expect(WithHeader(R"([1,2])"), "not a safetensors file");
  expect(WithHeader(R"({"a":[1,2]})"), "not an object");
  expect(WithHeader(R"({"a":{"shape":[2],"data_offsets":[0,8]}})"), "dtype");
  expect(WithHeader(R"({"a":{"dtype":"F32","data_offsets":[0,8]}})"), "shape");
  expect(WithHeader(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})"), "data_offsets");
  expect(WithHeader(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})"), "past the end of the data");
  expect(WithHeader(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})"), "reversed");
  expect(WithHeader(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})"), "needs 12");
  expect(WithHeader(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})"), "non-negative");
  expect(WithHeader(R"({"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})"), "non-negative");
  expect(WithHeader(R"({"a":{"dtype":"F32","shape":[1,1,1,1,2],"data_offsets":[0,8]}})"), "rank 5");
  expect(WithHeader(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})"),
         "overflows");
  expect(WithHeader(R"({"a":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,8]}})"), "overflows");
  expect(WithHeader(R"({"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})"), "I64 not supported");
  expect(WithHeader(R"({"a":{"dtype":"Q9","shape":[2],"data_offsets":[0,8]}})"), "unknown dtype \"Q9\"");
  expect(WithHeader(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})"),
         "duplicate key \"a\"");
  expect(WithHeader(R"({"a":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}})"), "duplicate");
  expect(WithHeader(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})"),
         "overlap");
  expect(WithHeader(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})"), "belong to no tensor");
  expect(WithHeader(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})"), "belong to no tensor");
  expect(WithHeader(R"({"__metadata__":{"k":1},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})"),
         "not a string");
  expect(WithHeader(R"({"__metadata__":[],"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})"),
         "__metadata__");
  // Tensor names with control bytes stay on one line in the message.
  expect(WithHeader("{\"a\\n\\u0001\":{\"dtype\":\"X\",\"shape\":[2],\"data_offsets\":[0,8]}}"), "a\\x0a\\x01");
}

TEST(Safetensors, CorruptFileOnDiskNamesThePath) {
  ScratchDir dir("st_bad");
  const std::string path = dir.Path("broken.safetensors");
  testing_util::WriteAll(path, WithHeader(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,9]}})"));
  ExpectError([&] { ReadSafetensors(path); }, path, "past the end");
  ExpectError([&] { ReadSafetensors(dir.Path("missing.safetensors")); }, dir.Path("missing.safetensors"), "cannot open");
}

// Three shards of two tensors each, with an index.
struct ShardedFixture {
  ScratchDir dir{"st_shards"};
  std::vector<Tensor> ts;
  ShardedFixture() {
    std::mt19937 rng(5);
    for (int i = 0; i < 6; ++i) ts.push_back(RandomTensor("t" + std::to_string(i), DType::kF32, {3, i + 1}, rng));
    for (int s = 0; s < 3; ++s)
      WriteSafetensors(dir.Path(Shard(s)), std::span<const Tensor>(ts.data() + 2 * s, 2));
  }
  static std::string Shard(int s) { return "model-0000" + std::to_string(s + 1) + "-of-00003.safetensors"; }
  std::string WriteIndex(const nlohmann::json& weight_map) {
    const std::string path = dir.Path("model.safetensors.index.json");
    testing_util::WriteText(path, nlohmann::json{{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}}.dump());
    return path;
  }
  nlohmann::json GoodMap() const {
    nlohmann::json m;
    for (int i = 0; i < 6; ++i) m["t" + std::to_string(i)] = Shard(i / 2);
    return m;
  }
};

TEST(Safetensors, ShardedIndexLoadsAllShards) {
  ShardedFixture fx;
  SafetensorsFile f = ReadSafetensorsIndex(fx.WriteIndex(fx.GoodMap()));
  ASSERT_EQ(f.tensors.size(), 6u);
  for (const Tensor& a : fx.ts) {
    const Tensor* b = f.Find(a.name);
    ASSERT_NE(b, nullptr) << a.name;
    ASSERT_EQ(b->nbytes, a.nbytes);
    EXPECT_EQ(std::memcmp(a.data, b->data, a.nbytes), 0);
  }
}

TEST(Safetensors, ShardedIndexInconsistenciesFail) {
  ShardedFixture fx;
  const std::string index = fx.dir.Path("model.safetensors.index.json");
  auto m = fx.GoodMap();
  m["t1"] = ShardedFixture::Shard(2);  // t1 lives in shard 1
  fx.WriteIndex(m);
  ExpectError([&] { ReadSafetensorsIndex(index); }, index, "maps it to");
  m = fx.GoodMap();
  m["t9"] = ShardedFixture::Shard(0);
  fx.WriteIndex(m);
  ExpectError([&] { ReadSafetensorsIndex(index); }, index, "t9 is missing");
  m = fx.GoodMap();
  m.erase("t5");
  fx.WriteIndex(m);
  ExpectError([&] { ReadSafetensorsIndex(index); }, fx.dir.Path(ShardedFixture::Shard(2)), "not listed");
  m = fx.GoodMap();
  m["t0"] = "../elsewhere.safetensors";
  fx.WriteIndex(m);
  ExpectError([&] { ReadSafetensorsIndex(index); }, index, "plain file name");
  // The same tensor in two shards.
  WriteSafetensors(fx.dir.Path("extra.safetensors"), std::span<const Tensor>(fx.ts.data(), 1));
  m = fx.GoodMap();
  m["t0"] = "extra.safetensors";
  fx.WriteIndex(m);
  ExpectError([&] { ReadSafetensorsIndex(index); }, index, "appears in both");
  testing_util::WriteText(index, R"({"weight_map":{"t0":"a","t0":"b"}})");
  ExpectError([&] { ReadSafetensorsIndex(index); }, index, "duplicate");
  testing_util::WriteText(index, R"({"weights":{}})");
  ExpectError([&] { ReadSafetensorsIndex(index); }, index, "weight_map");
}

}  // namespace
}  // namespace smelt
