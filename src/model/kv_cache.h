#pragma once
// The key/value cache of a decoder: for every layer, the K and V rows (f32, kv_dim values each)
// of every position evaluated so far, layout [layer][pos][kv_dim]. Storage grows geometrically
// with use up to `capacity` positions, so a model with a long trained context does not reserve
// gigabytes up front.
#include <cstdint>
#include <vector>

namespace smelt {

class KvCache {
 public:
  KvCache(int n_layers, int64_t kv_dim, int64_t capacity);

  // Makes positions [0, n) addressable (n ≤ capacity), keeping what is stored.
  void Reserve(int64_t n);

  // (reserved(), kv_dim) rows of one layer.
  float* keys(int layer) { return k_[layer].data(); }
  float* values(int layer) { return v_[layer].data(); }
  const float* keys(int layer) const { return k_[layer].data(); }
  const float* values(int layer) const { return v_[layer].data(); }

  int n_layers() const { return (int)k_.size(); }
  int64_t kv_dim() const { return kv_dim_; }
  int64_t capacity() const { return capacity_; }
  int64_t reserved() const { return reserved_; }

 private:
  int64_t kv_dim_, capacity_, reserved_ = 0;
  std::vector<std::vector<float>> k_, v_;  // [layer] -> (reserved_, kv_dim_)
};

}  // namespace smelt
