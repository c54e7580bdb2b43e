#include "io/llama2c.h"

#include <filesystem>
#include <map>

#include "core/error.h"
#include "core/mapped_file.h"
#include "io/llama2c_vocab.h"

namespace smelt {
namespace {

constexpr uint32_t kMagicAk42 = 0x616b3432;  // "ak42" read as a little-endian u32
constexpr size_t kLegacyHeaderBytes = 7 * 4;
constexpr size_t kV1HeaderBytes = 256;

uint32_t ReadU32Le(const uint8_t* p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

struct Llama2cHeader {
  int32_t dim = 0, hidden = 0, layers = 0, heads = 0, kv_heads = 0, vocab = 0, seq = 0;
  bool shared = true;   // classifier shares the embedding table
  bool v1 = false;      // "version 1" export (else legacy)
  size_t data_offset = 0;

  std::string Describe() const {
    return fmt::format("dim={}, hidden_dim={}, n_layers={}, n_heads={}, n_kv_heads={}, vocab_size={}, seq_len={}{}",
                       dim, hidden, layers, heads, kv_heads, vocab, seq, v1 ? " (version 1)" : " (legacy)");
  }
};

Llama2cHeader ParseHeader(std::span<const uint8_t> bytes, const std::string& source) {
  if (bytes.size() < kLegacyHeaderBytes)
    Fail("{}: {} bytes is too small for a llama2.c checkpoint", source, bytes.size());
  Llama2cHeader h;
  const uint8_t* p = bytes.data();
  const uint8_t* params = p;
  if (ReadU32Le(p) == kMagicAk42) {
    if (bytes.size() < kV1HeaderBytes)
      Fail("{}: truncated llama2.c header ({} of {} bytes)", source, bytes.size(), kV1HeaderBytes);
    const int32_t version = (int32_t)ReadU32Le(p + 4);
    if (version == 2) Fail("{}: llama2.c version 2 (int8 quantized) checkpoints are not supported", source);
    if (version != 1) Fail("{}: unknown llama2.c checkpoint version {}", source, version);
    params = p + 8;
    const uint8_t shared = p[36];
    if (shared > 1) Fail("{}: shared_classifier flag is {}, expected 0 or 1", source, shared);
    h.shared = shared == 1;
    h.v1 = true;
    h.data_offset = kV1HeaderBytes;
  } else {
    h.data_offset = kLegacyHeaderBytes;
  }
  int32_t v[7];
  for (int i = 0; i < 7; ++i) v[i] = (int32_t)ReadU32Le(params + 4 * i);
  h.dim = v[0], h.hidden = v[1], h.layers = v[2], h.heads = v[3], h.kv_heads = v[4], h.vocab = v[5], h.seq = v[6];
  if (!h.v1) {  // legacy: a negative vocab_size marks a separate classifier
    h.shared = h.vocab > 0;
    if (h.vocab != INT32_MIN && h.vocab < 0) h.vocab = -h.vocab;
  }
  auto check = [&](bool ok, const char* what) {
    if (!ok) Fail("{}: implausible llama2.c header ({}): {}", source, h.Describe(), what);
  };
  check(h.dim > 0 && h.dim <= (1 << 16), "dim must be in 1..65536");
  check(h.hidden > 0 && h.hidden <= (1 << 20), "hidden_dim must be in 1..1048576");
  check(h.layers > 0 && h.layers <= 1024, "n_layers must be in 1..1024");
  check(h.heads > 0 && h.heads <= h.dim && h.dim % h.heads == 0, "n_heads must divide dim");
  check(h.kv_heads > 0 && h.kv_heads <= h.heads && h.heads % h.kv_heads == 0, "n_kv_heads must divide n_heads");
  check((h.dim / h.heads) % 2 == 0, "head size dim/n_heads must be even");
  check(h.vocab > 0 && h.vocab <= (1 << 22), "vocab_size must be in 1..4194304");
  check(h.seq > 0 && h.seq <= (1 << 24), "seq_len must be in 1..16777216");
  return h;
}

}  // namespace

Model ParseLlama2cCheckpoint(std::span<const uint8_t> bytes, const std::string& source,
                             std::shared_ptr<const void> owner) {
  const Llama2cHeader h = ParseHeader(bytes, source);
  const int64_t dim = h.dim, hidden = h.hidden, L = h.layers, vocab = h.vocab;
  const int64_t head_size = dim / h.heads;
  const int64_t kv_dim = head_size * h.kv_heads;

  // Size implied by the header, in floats (the bounds above keep every product far from overflow).
  const int64_t per_layer = 2 * dim + 2 * dim * dim + 2 * dim * kv_dim + 3 * dim * hidden;
  int64_t floats = vocab * dim + L * per_layer + dim;
  if (!h.v1) floats += (int64_t)h.seq * head_size;  // freq_cis_real + freq_cis_imag
  if (!h.shared) floats += vocab * dim;
  const uint64_t expected = h.data_offset + (uint64_t)floats * 4;
  if (bytes.size() != expected)
    Fail("{}: expected {} bytes for {}, found {}", source, expected, h.Describe(), bytes.size());

  std::map<std::string, Tensor> by_name;
  uint64_t at = h.data_offset;
  // Takes `count` consecutive tensors of shape ne (ggml order) named by `name(i)`.
  auto take = [&](auto name, int64_t count, std::vector<int64_t> ne) {
    for (int64_t i = 0; i < count; ++i) {
      Tensor t;
      t.name = name(i);
      t.type = DType::kF32;
      t.n_dims = (int)ne.size();
      for (size_t d = 0; d < ne.size(); ++d) t.ne[d] = ne[d];
      t.nbytes = (size_t)t.nelements() * 4;
      SMELT_ASSERT(at + t.nbytes <= bytes.size());
      t.data = bytes.data() + at;
      t.owner = owner;
      at += t.nbytes;
      by_name[t.name] = std::move(t);
    }
  };
  auto block = [](const char* suffix) { return [suffix](int64_t l) { return BlockTensorName((int)l, suffix); }; };
  auto single = [](const char* name) { return [name](int64_t) { return std::string(name); }; };

  // Matrices (OC, C) row-major are ne {C, OC}.
  if (!h.v1) {
    take(single("token_embd.weight"), 1, {dim, vocab});
    take(block("attn_norm.weight"), L, {dim});
  } else {
    take(block("attn_norm.weight"), L, {dim});
    take(block("ffn_norm.weight"), L, {dim});
    take(single("output_norm.weight"), 1, {dim});
    take(single("token_embd.weight"), 1, {dim, vocab});
  }
  take(block("attn_q.weight"), L, {dim, dim});
  take(block("attn_k.weight"), L, {dim, kv_dim});
  take(block("attn_v.weight"), L, {dim, kv_dim});
  take(block("attn_output.weight"), L, {dim, dim});
  if (!h.v1) take(block("ffn_norm.weight"), L, {dim});
  take(block("ffn_gate.weight"), L, {dim, hidden});  // w1
  take(block("ffn_down.weight"), L, {hidden, dim});  // w2
  take(block("ffn_up.weight"), L, {dim, hidden});    // w3
  if (!h.v1) {
    take(single("output_norm.weight"), 1, {dim});
    at += (uint64_t)h.seq * head_size * 4;  // freq_cis_real, freq_cis_imag: recomputed by the runtime
  }
  if (!h.shared) take(single("output.weight"), 1, {dim, vocab});
  SMELT_ASSERT(at == bytes.size());

  Model m;
  m.format = ModelFormat::kLlama2c;
  m.source = source;
  ModelConfig& c = m.config;
  c.arch = "llama";
  c.name = std::filesystem::path(source).stem().string();
  c.dim = h.dim;
  c.n_layers = h.layers;
  c.n_heads = h.heads;
  c.n_kv_heads = h.kv_heads;
  c.head_dim = (int)head_size;
  c.ff = h.hidden;
  c.vocab = h.vocab;
  c.context = h.seq;
  c.norm_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  c.rope_dim = (int)head_size;
  c.rope_layout = RopeLayout::kNormal;
  c.tied_embeddings = h.shared;
  ValidateConfig(c, source);
  m.info["general.name"] = c.name;
  m.info["llama2c.format"] = h.v1 ? "version 1" : "legacy";

  // Canonical order: embeddings, head, then block by block.
  auto add = [&](const std::string& name) { m.weights.Add(std::move(by_name.at(name))); };
  add("token_embd.weight");
  add("output_norm.weight");
  if (!h.shared) add("output.weight");
  for (int l = 0; l < h.layers; ++l) {
    for (const char* s : {"attn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight",
                          "attn_output.weight", "ffn_norm.weight", "ffn_gate.weight", "ffn_down.weight",
                          "ffn_up.weight"})
      add(BlockTensorName(l, s));
  }
  return m;
}

Model LoadLlama2cModel(const std::string& checkpoint, const std::string& tokenizer_bin) {
  auto mf = MappedFile::Open(checkpoint);
  Model m = ParseLlama2cCheckpoint(std::span<const uint8_t>(mf->data(), mf->size()), checkpoint, mf);
  m.vocab = LoadLlama2cVocab(tokenizer_bin, m.config.vocab);
  return m;
}

}  // namespace smelt
