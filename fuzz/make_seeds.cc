// Writes the hand-made seed inputs of three fuzz targets into fuzz/corpus/ (the files are committed;
// this program says how they were made and makes them again):
//   formats_fuzz:     per type id, a shape header and a payload of floats (Gaussian, zeros,
//                     NaN/inf, huge) that is also whole blocks of bytes;
//   safetensors_fuzz: small safetensors files of each supported dtype, an unsupported one, an
//                     unpadded and an empty header;
//   llama2c_fuzz:     tiny llama2.c checkpoints in the legacy and version-1 exports, shared and
//                     separate classifier, and a version-2 header.
// Built with the fuzz targets (SMELT_FUZZ=ON): build-asan/make_seeds [CORPUS_DIR], from the
// repository root (default fuzz/corpus). The other targets' seeds are files smelt writes
// (GGUF, config.json, KV state) or real tokenizers, committed as they are.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace {

namespace fs = std::filesystem;
using Bytes = std::string;

template <class T>
void Put(Bytes& out, T v) {
  char raw[sizeof(T)];
  std::memcpy(raw, &v, sizeof(T));  // little-endian hosts only, as the formats themselves
  out.append(raw, sizeof(T));
}

void Write(const fs::path& root, const std::string& target, const std::string& name, const Bytes& data) {
  const fs::path dir = root / target;
  fs::create_directories(dir);
  std::ofstream f(dir / name, std::ios::binary | std::ios::trunc);
  f.write(data.data(), (std::streamsize)data.size());
  if (!f) throw std::runtime_error("cannot write " + (dir / name).string());
}

// formats_fuzz: one type byte (a ggml id, or 128 + a smelt-native id − 1024), ne[4], then floats.
void FormatSeed(const fs::path& root, const std::string& name, int type_byte, std::initializer_list<int32_t> ne,
                const std::vector<float>& floats) {
  Bytes b;
  Put<uint8_t>(b, (uint8_t)type_byte);
  for (int32_t n : ne) Put(b, n);
  for (float f : floats) Put(b, f);
  Write(root, "formats_fuzz", name, b);
}

void FormatSeeds(const fs::path& root) {
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  std::vector<float> gauss(256);
  for (float& v : gauss) v = normal(rng);
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> special;
  for (int i = 0; i < 32; ++i)
    for (float v : {0.0f, -0.0f, inf, -inf, nan, 1e30f, -1e-30f, 65504.0f}) special.push_back(v);
  struct Named {
    int id;
    const char* name;
  };
  for (const Named& t : {Named{2, "q4_0"}, {3, "q4_1"}, {6, "q5_0"}, {7, "q5_1"}, {8, "q8_0"}, {9, "q8_1"},
                         {10, "q2_K"}, {11, "q3_K"}, {12, "q4_K"}, {13, "q5_K"}, {14, "q6_K"}, {15, "q8_K"},
                         {20, "iq4_nl"}, {1, "f16"}, {30, "bf16"}})
    FormatSeed(root, std::string(t.name) + "_gauss", t.id, {256, 4, 1, 1}, gauss);
  // smelt's own types: byte 128 + (id − 1024), see formats_fuzz.cc.
  for (const Named& t : {Named{0, "i4s_g32"}, {5, "i4a_g128"}, {7, "i3s_g64"}, {15, "i2a_g32"}, {18, "nf4"},
                         {19, "f8e4m3_b32"}, {20, "f8e5m2_b32"}, {21, "pow2_b32"}, {22, "i8_pc"}, {23, "w8a8"},
                         {24, "i4s_pc"}, {30, "km4_pc"}, {32, "km2_pc"}, {33, "q4_0_o8"}, {34, "i3s_g32_o8"}})
    FormatSeed(root, std::string(t.name) + "_gauss", 128 + t.id, {256, 2, 1, 1}, gauss);
  // The sparse types, also with half of the values zero (what a pruned row looks like).
  std::vector<float> pruned = gauss;
  for (size_t i = 0; i < pruned.size(); i += 2) pruned[i] = 0.0f;
  for (const Named& t : {Named{35, "s24_q8"}, {36, "s24_q4"}, {37, "sp50_q8"}, {38, "sp70_q8"}, {39, "sp50_w8a8"},
                         {40, "sp70_w8a8"}, {41, "s24_w4a8"}, {42, "sp50_f16"}, {43, "sp70_f16"}, {44, "sp70_w4a8"}}) {
    FormatSeed(root, std::string(t.name) + "_gauss", 128 + t.id, {256, 2, 1, 1}, gauss);
    FormatSeed(root, std::string(t.name) + "_pruned", 128 + t.id, {256, 1, 1, 1}, pruned);
  }
  FormatSeed(root, "f8e4m3_b32_special", 128 + 19, {256, 1, 1, 1}, special);
  FormatSeed(root, "q4_K_special", 12, {255, 1, 1, 1}, special);
  FormatSeed(root, "q6_K_special", 14, {-256, 2, 1, 1}, special);
  FormatSeed(root, "iq4_nl_special", 20, {32, 1 << 30, 1 << 30, 3}, special);
  FormatSeed(root, "q8_0_zero", 8, {0, 0, 0, 0}, std::vector<float>(64, 0.0f));
}

struct Entry {
  const char* name;
  const char* dtype;
  std::vector<int64_t> shape;
  Bytes raw;
};

// A safetensors file: u64 header length, the JSON header (entries in order, compact), padded with
// spaces to a multiple of 8 where `pad`, then the data.
Bytes Safetensors(const std::vector<Entry>& entries, const nlohmann::ordered_json* metadata, bool pad = true) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (metadata) header["__metadata__"] = *metadata;
  Bytes data;
  for (const Entry& e : entries) {
    header[e.name] = {{"dtype", e.dtype}, {"shape", e.shape}, {"data_offsets", {data.size(), data.size() + e.raw.size()}}};
    data += e.raw;
  }
  std::string text = header.dump();
  if (pad) text.append((8 - text.size() % 8) % 8, ' ');
  Bytes out;
  Put<uint64_t>(out, text.size());
  return out + text + data;
}

Bytes F32(std::initializer_list<float> v) {
  Bytes b;
  for (float f : v) Put(b, f);
  return b;
}
Bytes U16(std::initializer_list<uint16_t> v) {
  Bytes b;
  for (uint16_t h : v) Put(b, h);
  return b;
}

struct Llama2c {
  int dim = 4, hidden = 6, layers = 2, heads = 2, kv_heads = 1, vocab = 5, seq = 3;
  bool v1 = false, shared = true;
};
constexpr uint32_t kLlama2cMagic = 0x616B3432;  // "ak42"

// The version-1 export's header: magic, version, the 7 ints, the shared-classifier byte, zeros to 256.
Bytes Llama2cV1Header(int version, const Llama2c& c) {
  Bytes h;
  Put(h, kLlama2cMagic);
  Put<int32_t>(h, version);
  for (int v : {c.dim, c.hidden, c.layers, c.heads, c.kv_heads, c.vocab, c.seq}) Put<int32_t>(h, v);
  Put<uint8_t>(h, c.shared ? 1 : 0);
  h.resize(256, '\0');
  return h;
}

Bytes Llama2cCheckpoint(const Llama2c& c) {
  const int hs = c.dim / c.heads, kv = hs * c.kv_heads;
  int64_t floats = (int64_t)c.vocab * c.dim +
                   (int64_t)c.layers * (2 * c.dim + 2 * c.dim * c.dim + 2 * c.dim * kv + 3 * c.dim * c.hidden) + c.dim;
  if (!c.v1) floats += (int64_t)c.seq * hs;  // the legacy export's RoPE tables
  if (!c.shared) floats += (int64_t)c.vocab * c.dim;
  Bytes b;
  if (c.v1) {
    b = Llama2cV1Header(1, c);
  } else {
    for (int v : {c.dim, c.hidden, c.layers, c.heads, c.kv_heads, c.shared ? c.vocab : -c.vocab, c.seq})
      Put<int32_t>(b, v);
  }
  for (int64_t i = 0; i < floats; ++i) Put(b, (float)(i % 17) * 0.125f - 1.0f);
  return b;
}

void CheckpointSeeds(const fs::path& root) {
  const nlohmann::ordered_json pt = {{"format", "pt"}}, empty = nlohmann::ordered_json::object();
  Write(root, "safetensors_fuzz", "three_types.safetensors",
        Safetensors({{"a", "F32", {2, 3}, F32({1, 2, 3, 4, 5, 6})},
                     {"b", "F16", {3}, U16({0x3C00, 0xC000, 0x3800})},
                     {"c", "BF16", {1, 2}, U16({0x3F80, 0xBF00})}},
                    &pt));
  Write(root, "safetensors_fuzz", "odd_header.safetensors",
        Safetensors({{"x", "F16", {1}, U16({0x3C00})}, {"y", "F32", {2}, F32({0.5f, -1})}}, nullptr, false));
  Write(root, "safetensors_fuzz", "scalar_empty.safetensors",
        Safetensors({{"s", "F32", {}, F32({2.5f})}, {"e", "BF16", {0, 4}, ""}}, nullptr));
  Write(root, "safetensors_fuzz", "unsupported.safetensors", Safetensors({{"i", "I64", {1}, Bytes(8, '\0')}}, nullptr));
  Write(root, "safetensors_fuzz", "empty_header.safetensors", Safetensors({}, &empty));

  Write(root, "llama2c_fuzz", "legacy_shared.bin", Llama2cCheckpoint({}));
  Write(root, "llama2c_fuzz", "legacy_unshared.bin", Llama2cCheckpoint({.shared = false}));
  Write(root, "llama2c_fuzz", "v1_shared.bin", Llama2cCheckpoint({.v1 = true}));
  Write(root, "llama2c_fuzz", "v1_unshared.bin", Llama2cCheckpoint({.layers = 1, .v1 = true, .shared = false}));
  Write(root, "llama2c_fuzz", "v2_header.bin", Llama2cV1Header(2, {.layers = 1}));
}

}  // namespace

int main(int argc, char** argv) {
  const fs::path root = argc > 1 ? argv[1] : "fuzz/corpus";
  try {
    FormatSeeds(root);
    CheckpointSeeds(root);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
