#include "model/kv_state.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <string_view>

#include "core/error.h"
#include "core/mapped_file.h"
#include "smelt/version.h"

namespace smelt {
namespace {

// Bytes hashed at each end of a tensor's data.
constexpr size_t kFingerprintEdge = 4096;
constexpr uint32_t kMaxToolVersionLen = 256;

// 64-bit FNV-1a. Every field goes in at a fixed width and strings with their length, so two
// different field sequences cannot produce the same byte stream.
class Fnv1a64 {
 public:
  void Bytes(const void* p, size_t n) {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    for (size_t i = 0; i < n; ++i) h_ = (h_ ^ b[i]) * 0x100000001b3ull;
  }
  void U64(uint64_t v) { Bytes(&v, sizeof v); }
  void F32(float v) { U64(std::bit_cast<uint32_t>(v)); }
  void Str(std::string_view s) {
    U64(s.size());
    Bytes(s.data(), s.size());
  }
  uint64_t value() const { return h_; }

 private:
  uint64_t h_ = 0xcbf29ce484222325ull;
};

// File codes of the cache types (fixed here, independent of the enum's order).
uint32_t KvTypeCode(KvType t) {
  switch (t) {
    case KvType::kF32: return 0;
    case KvType::kF16: return 1;
    case KvType::kI8: return 2;
  }
  return ~0u;
}

bool KvTypeFromCode(uint32_t code, KvType* t) {
  for (KvType k : {KvType::kF32, KvType::kF16, KvType::kI8})
    if (KvTypeCode(k) == code) return *t = k, true;
  return false;
}

}  // namespace

uint64_t ModelFingerprint(const Model& m) {
  const ModelConfig& c = m.config;
  Fnv1a64 h;
  h.Str("smelt model fingerprint 1");
  h.Str(c.arch);
  for (int v : {c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.ff, c.vocab, c.rope_dim,
                (int)c.rope_layout, (int)c.tied_embeddings, (int)c.qkv_bias, c.rope_scaling.original_context})
    h.U64((uint64_t)(int64_t)v);
  for (const std::vector<int>* per_block : {&c.layer_ff, &c.layer_kv_heads})  // empty unless sizes differ
    for (int v : *per_block) h.U64((uint64_t)(int64_t)v);
  for (float v : {c.norm_eps, c.rope_theta, c.rope_scaling.factor, c.rope_scaling.low_freq_factor,
                  c.rope_scaling.high_freq_factor})
    h.F32(v);
  h.Str(c.rope_scaling.type);

  std::vector<const Tensor*> tensors;
  for (const Tensor& t : m.weights.all()) tensors.push_back(&t);
  std::sort(tensors.begin(), tensors.end(), [](const Tensor* a, const Tensor* b) { return a->name < b->name; });
  h.U64(tensors.size());
  for (const Tensor* t : tensors) {
    h.Str(t->name);
    h.U64((uint64_t)t->type);
    h.U64((uint64_t)t->n_dims);
    for (int64_t n : t->ne) h.U64((uint64_t)n);
    h.U64(t->nbytes);
    if (t->nbytes == 0) continue;
    const uint8_t* data = static_cast<const uint8_t*>(t->data);
    const size_t head = std::min(t->nbytes, kFingerprintEdge);
    const size_t tail_from = std::max(head, t->nbytes - std::min(t->nbytes, kFingerprintEdge));
    h.Bytes(data, head);
    h.Bytes(data + tail_from, t->nbytes - tail_from);
  }
  return h.value();
}

void SaveKvState(const std::string& path, const Model& m, const KvCache& cache, std::span<const int32_t> tokens) {
  const ModelConfig& c = m.config;
  bool same_heads = true;
  for (int l = 0; l < std::min(c.n_layers, cache.n_layers()); ++l) same_heads &= cache.n_kv_heads(l) == c.block(l).n_kv_heads;
  if (cache.n_layers() != c.n_layers || !same_heads || cache.head_dim() != c.head_dim)
    Fail("{}: the KV cache is {}x{}x{} (layers x kv heads x head dim), the model {} is {}x{}x{}", path,
         cache.n_layers(), cache.n_kv_heads(), cache.head_dim(), m.source, c.n_layers, c.n_kv_heads, c.head_dim);
  const int64_t n = (int64_t)tokens.size();
  if (n > cache.reserved())
    Fail("{}: {} tokens to save, but the KV cache holds only {} positions", path, n, cache.reserved());
  for (int64_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= c.vocab)
      Fail("{}: token {} is {}, outside the vocabulary of {}", path, i, tokens[i], c.vocab);

  const std::string_view version = kVersion;
  KvStateHeader h{};
  std::memcpy(h.magic, kKvStateMagic, sizeof h.magic);
  h.version = kKvStateVersion;
  h.fingerprint = ModelFingerprint(m);
  h.kv_type = KvTypeCode(cache.type());
  h.n_layers = (uint32_t)cache.n_layers();
  h.n_kv_heads = (uint32_t)cache.n_kv_heads();
  h.head_dim = (uint32_t)cache.head_dim();
  h.row_bytes = cache.RowBytes();
  h.n_positions = (uint64_t)n;
  h.n_tokens = (uint64_t)n;
  h.tool_version_len = (uint32_t)version.size();
  SMELT_ASSERT(version.size() <= kMaxToolVersionLen);

  AtomicFileWriter out(path);
  out.Write(&h, sizeof h);
  out.Write(version.data(), version.size());
  out.Write(tokens.data(), tokens.size_bytes());
  std::vector<uint8_t> row(cache.RowBytes());
  for (int layer = 0; layer < cache.n_layers(); ++layer)
    for (bool values : {false, true})
      for (int64_t pos = 0; pos < n; ++pos) {
        cache.ReadRow(layer, values, pos, row.data());
        out.Write(row.data(), cache.RowBytes(layer));
      }
  out.Commit();
}

std::vector<int32_t> RestoreKvState(std::span<const uint8_t> bytes, const std::string& name, uint64_t fingerprint,
                                    int vocab, KvCache& cache) {
  KvStateHeader h{};
  if (bytes.size() < sizeof h)
    Fail("{}: {} bytes, too short for a KV state file (the header alone is {})", name, bytes.size(), sizeof h);
  std::memcpy(&h, bytes.data(), sizeof h);
  if (std::memcmp(h.magic, kKvStateMagic, sizeof h.magic) != 0) Fail("{}: not a smelt KV state file (bad magic)", name);
  if (h.version != kKvStateVersion)
    Fail("{}: KV state format version {}, this smelt reads version {}", name, h.version, kKvStateVersion);
  if (h.reserved != 0) Fail("{}: reserved header field is {}, expected 0", name, h.reserved);
  KvType type;
  if (!KvTypeFromCode(h.kv_type, &type)) Fail("{}: unknown KV cache type code {}", name, h.kv_type);
  if (h.fingerprint != fingerprint)
    Fail("{}: saved from a different model (fingerprint {:016x}, this model's is {:016x})", name, h.fingerprint,
         fingerprint);
  if (h.n_layers != (uint32_t)cache.n_layers() || h.n_kv_heads != (uint32_t)cache.n_kv_heads() ||
      h.head_dim != (uint32_t)cache.head_dim())
    Fail("{}: saved for a {}x{}x{} KV cache (layers x kv heads x head dim), this cache is {}x{}x{}", name, h.n_layers,
         h.n_kv_heads, h.head_dim, cache.n_layers(), cache.n_kv_heads(), cache.head_dim());
  if (type != cache.type())
    Fail("{}: saved from an {} KV cache, this cache is {} (load it with --kv {})", name, KvTypeName(type),
         KvTypeName(cache.type()), KvTypeName(type));
  if (h.row_bytes != cache.RowBytes())
    Fail("{}: rows of {} bytes, an {} cache of this shape has {}", name, h.row_bytes, KvTypeName(type), cache.RowBytes());
  if (h.n_tokens != h.n_positions)
    Fail("{}: {} tokens for {} positions (they must be equal)", name, h.n_tokens, h.n_positions);
  if (h.n_positions > (uint64_t)cache.capacity())
    Fail("{}: {} positions, more than the KV cache's capacity of {}", name, h.n_positions, cache.capacity());
  if (h.tool_version_len > kMaxToolVersionLen)
    Fail("{}: version string of {} bytes (at most {})", name, h.tool_version_len, kMaxToolVersionLen);

  // n ≤ capacity, but the capacity is only a number: check the size arithmetic for overflow.
  // The rows: n positions of each layer's row bytes (the widest is h.row_bytes), keys and values.
  const uint64_t n = h.n_positions;
  uint64_t layer_rows = 0, rows = 0, expected = 0;
  for (int l = 0; l < cache.n_layers(); ++l) layer_rows += cache.RowBytes(l);  // at most n_layers · row_bytes
  if (__builtin_mul_overflow(n, layer_rows, &rows) || __builtin_mul_overflow(rows, 2ull, &rows) ||
      __builtin_mul_overflow(n, sizeof(int32_t), &expected) ||
      __builtin_add_overflow(expected, sizeof h + h.tool_version_len, &expected) ||
      __builtin_add_overflow(expected, rows, &expected))
    Fail("{}: {} positions of {} bytes overflow the file size", name, n, h.row_bytes);
  if (bytes.size() != expected)
    Fail("{}: {} bytes, expected {} for {} positions of an {} cache", name, bytes.size(), expected, n,
         KvTypeName(type));

  const uint8_t* p = bytes.data() + sizeof h + h.tool_version_len;
  std::vector<int32_t> tokens(n);
  if (n > 0) std::memcpy(tokens.data(), p, n * sizeof(int32_t));
  for (uint64_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= vocab)
      Fail("{}: token {} is {}, outside the vocabulary of {}", name, i, tokens[i], vocab);
  p += n * sizeof(int32_t);

  if (n == 0) return tokens;
  cache.Reserve((int64_t)n);
  for (int layer = 0; layer < cache.n_layers(); ++layer)
    for (bool values : {false, true})
      for (uint64_t pos = 0; pos < n; ++pos, p += cache.RowBytes(layer)) cache.WriteRow(layer, values, (int64_t)pos, p);
  return tokens;
}

std::vector<int32_t> LoadKvState(const std::string& path, const Model& m, KvCache& cache) {
  const auto file = MappedFile::Open(path);
  return RestoreKvState(std::span<const uint8_t>(file->data(), file->size()), path, ModelFingerprint(m),
                        m.config.vocab, cache);
}

}  // namespace smelt
