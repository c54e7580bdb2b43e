#pragma once
// The key/value cache of a decoder: for every layer, the K and V rows (kv_dim = n_kv_heads ·
// head_dim values each, the layer's own count) of every position evaluated so far, stored head
// by head, layout [layer][kv head][pos]: attention reads one head's positions as one contiguous
// stream (which the hardware prefetchers follow; rows of all heads per position put each
// position's head 4 KB apart at kv_dim 1024 and f32, and ran at a third of the speed). Storage
// grows geometrically with use up to `capacity` positions, so a model with a long trained context
// does not reserve gigabytes up front; a layer's keys (values) of 2 MiB or more sit on huge pages.
//
// Element types (`--kv`):
//   f32  exact; attention reads the rows in place
//   f16  IEEE half, round to nearest even (llama.cpp's default cache type): 2 bytes per value
//   i8   per (position, head): an f32 scale d = max|x| / 127 and head_dim int8 codes
//        q = round(x / d) (x ≈ d·q): head_dim + 4 bytes per head, |error| ≤ d / 2
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "core/huge_pages.h"
#include "kernels/rope.h"

namespace smelt {

enum class KvType { kF32, kF16, kI8 };

// "f32", "f16", "i8"; nullopt for another name.
std::optional<KvType> ParseKvType(std::string_view name);
std::string_view KvTypeName(KvType t);

// One head's row in an i8 cache: the scale, then head_dim codes.
struct KvI8Head {
  float d;
  int8_t q[1];  // head_dim codes follow in place (the struct only names the layout)
};
static_assert(sizeof(float) == 4 && offsetof(KvI8Head, q) == 4, "an i8 cache head is a 4-byte scale, then the codes");

class KvCache {
 public:
  KvCache(int n_layers, int n_kv_heads, int head_dim, int64_t capacity, KvType type = KvType::kF32);
  // One kv head count per layer (a model whose blocks differ, ModelConfig::layer_kv_heads).
  KvCache(std::vector<int> kv_heads, int head_dim, int64_t capacity, KvType type = KvType::kF32);

  // Makes positions [0, n) addressable (n ≤ capacity), keeping what is stored.
  void Reserve(int64_t n);

  // Stores the key and value rows (kv_dim values each) of position `pos` (< reserved()) of
  // `layer`, rounded to the cache type.
  void Store(int layer, int64_t pos, const float* k, const float* v);
  // Store with each key head rotated by `rope` on its way in (kernels/rope.h RopeHead): the same
  // bytes as ApplyRope on k and then Store, without a rotated copy of the row (f32 caches are
  // written directly). k is left as given.
  void StoreRoped(int layer, int64_t pos, const float* k, const float* v, const RopeRotation& rope);

  // Keys (or values) of kv head `head` at positions [0, n) of `layer` as f32 rows of head_dim
  // values into dst (n, head_dim): what attention sees.
  void LoadHead(int layer, bool values, int head, int64_t n, float* dst) const;
  // The same for positions [start, start + n) (a tile of keys).
  void LoadHeadRange(int layer, bool values, int head, int64_t start, int64_t n, float* dst) const;

  // f32 caches only: kv head `head`'s (reserved(), head_dim) rows of one layer, read in place.
  const float* head_keys_f32(int layer, int head) const;
  const float* head_values_f32(int layer, int head) const;

  // The stored bytes (head bytes, in the cache type's encoding) of kv head `head`'s keys (or
  // values) at position `pos` (< reserved()) of `layer`; a head's positions are adjacent.
  const uint8_t* RawHead(int layer, bool values, int head, int64_t pos) const;
  // One position's keys (or values) of `layer` as a row of RowBytes(layer) bytes, head after head,
  // in the cache type's encoding: for saving and restoring a cache as it is (model/kv_state.h),
  // with no second rounding.
  void ReadRow(int layer, bool values, int64_t pos, uint8_t* dst) const;
  void WriteRow(int layer, bool values, int64_t pos, const uint8_t* src);

  KvType type() const { return type_; }
  int n_layers() const { return (int)k_.size(); }
  // The widest layer's kv heads (every layer's, unless they differ), and one layer's.
  int n_kv_heads() const { return n_kv_heads_; }
  int n_kv_heads(int layer) const { return kv_heads_[(size_t)layer]; }
  int head_dim() const { return head_dim_; }
  int64_t kv_dim(int layer) const { return (int64_t)kv_heads_[(size_t)layer] * head_dim_; }
  int64_t capacity() const { return capacity_; }
  int64_t reserved() const { return reserved_; }
  // Bytes of one position's keys (or values) in one layer (the widest, without an argument).
  size_t RowBytes(int layer) const { return (size_t)kv_heads_[(size_t)layer] * head_bytes_; }
  size_t RowBytes() const { return (size_t)n_kv_heads_ * head_bytes_; }
  // Bytes held for keys and values of every layer at `positions` positions.
  size_t BytesFor(int64_t positions) const;

 private:
  KvType type_;
  std::vector<int> kv_heads_;  // per layer
  int n_kv_heads_, head_dim_;  // the largest of kv_heads_
  size_t head_bytes_;  // one head's bytes at one position
  int64_t capacity_, reserved_ = 0;
  std::vector<HugePageBuffer> k_, v_;  // [layer] -> (kv heads, reserved_, head bytes)
  uint8_t* HeadAt(int layer, bool values, int head, int64_t pos);
};

}  // namespace smelt
