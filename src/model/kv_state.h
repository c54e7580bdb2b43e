#pragma once
// Saved KV state (a "prompt cache"): the keys and values of a prompt prefix as a model computed
// them, written once and loaded later to continue as if the prefix had just been evaluated.
//
// File layout (little-endian, no padding):
//   KvStateHeader                                       64 bytes
//   the writer's version string                         tool_version_len bytes, no terminator
//   the prefix's token ids                              n_tokens × int32
//   per layer 0 .. n_layers-1:
//     keys of positions [0, n)                          n_positions × that layer's row bytes
//     values of positions [0, n)                        n_positions × that layer's row bytes
// (a layer's row bytes are row_bytes unless the model's blocks have different kv head counts:
// then its own, KvCache::RowBytes(layer), and row_bytes is the widest layer's)
// Rows are KvCache's stored bytes (model/kv_cache.h: f32, f16, or i8 heads with their scales), so
// a rounded cache comes back bit for bit, and a file only loads into a cache of the same type.
// The model fingerprint ties a file to the weights that computed it.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "model/kv_cache.h"
#include "model/model.h"

namespace smelt {

inline constexpr char kKvStateMagic[4] = {'S', 'M', 'K', 'V'};
inline constexpr uint32_t kKvStateVersion = 1;

struct KvStateHeader {
  char magic[4];              // "SMKV"
  uint32_t version;           // kKvStateVersion
  uint64_t fingerprint;       // ModelFingerprint of the model that computed the rows
  uint32_t kv_type;           // 0 f32, 1 f16, 2 i8
  uint32_t n_layers;
  uint32_t n_kv_heads;
  uint32_t head_dim;
  uint64_t row_bytes;         // one position's keys (or values) in the widest layer: KvCache::RowBytes()
  uint64_t n_positions;
  uint64_t n_tokens;          // == n_positions: position i holds token i
  uint32_t tool_version_len;  // bytes of the writer's version string after the header (≤ 256)
  uint32_t reserved;          // 0
};
static_assert(sizeof(KvStateHeader) == 64, "the KV state header is 64 bytes with no padding");

// A 64-bit FNV-1a hash of what decides the KV rows and logits a model computes: the config
// fields of the forward pass (arch, dim, layers, heads, kv heads, head_dim, ff, vocab, norm eps,
// RoPE base, dims, layout and scaling, tied embeddings, biases) and, for every tensor in name
// order, its name, type, shape, and its first and last 4 KiB of data. Reading at most 8 KiB per
// tensor keeps it cheap for multi-gigabyte models, yet a re-quantized or fine-tuned variant
// differs in those bytes. The path and the model's name do not enter it.
uint64_t ModelFingerprint(const Model& m);

// Writes positions [0, tokens.size()) of `cache`, computed by `m` for `tokens`, to `path`
// atomically (temp file + rename: a failure leaves no file). Throws Error naming the path when
// the cache does not fit the model's shape, holds fewer positions, or a token id is outside the
// vocabulary.
void SaveKvState(const std::string& path, const Model& m, const KvCache& cache, std::span<const int32_t> tokens);

// Reads a file written by SaveKvState into `cache` and returns its tokens: the cache then holds
// positions [0, n) exactly as when saved (later positions are left as they were), and evaluation
// continues at position n. Everything is checked before the cache is touched (magic, version,
// fingerprint against `m`, shape and element type against `cache`, n ≤ capacity, the exact file
// size, token ids < vocab); any mismatch throws Error naming the path and what is wrong.
std::vector<int32_t> LoadKvState(const std::string& path, const Model& m, KvCache& cache);

// LoadKvState on a file's bytes: `name` is what errors name, `fingerprint` and `vocab` stand for
// the model. Any input either restores or throws Error without touching the cache.
std::vector<int32_t> RestoreKvState(std::span<const uint8_t> bytes, const std::string& name, uint64_t fingerprint,
                                    int vocab, KvCache& cache);

}  // namespace smelt
