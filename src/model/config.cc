#include "model/config.h"

#include <algorithm>

#include "core/error.h"

namespace smelt {

void ValidateConfig(const ModelConfig& c, const std::string& source) {
  auto positive = [&](int v, const char* what, int limit) {
    if (v <= 0 || v > limit) Fail("{}: {} = {} is out of range (1..{})", source, what, v, limit);
  };
  positive(c.dim, "embedding size", 1 << 20);
  positive(c.n_layers, "layer count", 4096);
  positive(c.n_heads, "head count", 4096);
  positive(c.n_kv_heads, "kv head count", 4096);
  positive(c.head_dim, "head size", 1 << 16);
  positive(c.ff, "feed-forward size", 1 << 22);
  if (!c.layer_ff.empty()) {
    if ((int)c.layer_ff.size() != c.n_layers)
      Fail("{}: {} feed-forward sizes for {} layers", source, c.layer_ff.size(), c.n_layers);
    for (int v : c.layer_ff) positive(v, "feed-forward size", 1 << 22);
    const int largest = *std::max_element(c.layer_ff.begin(), c.layer_ff.end());
    if (c.ff != largest) Fail("{}: feed-forward size {} is not the largest layer's ({})", source, c.ff, largest);
  }
  positive(c.vocab, "vocabulary size", 1 << 24);
  if (!c.layer_kv_heads.empty()) {
    if ((int)c.layer_kv_heads.size() != c.n_layers)
      Fail("{}: {} kv head counts for {} layers", source, c.layer_kv_heads.size(), c.n_layers);
    for (int v : c.layer_kv_heads) positive(v, "kv head count", 4096);
    const int largest = *std::max_element(c.layer_kv_heads.begin(), c.layer_kv_heads.end());
    if (c.n_kv_heads != largest)
      Fail("{}: kv head count {} is not the largest layer's ({})", source, c.n_kv_heads, largest);
  }
  if (c.n_heads % c.n_kv_heads != 0)
    Fail("{}: head count {} is not a multiple of kv head count {}", source, c.n_heads, c.n_kv_heads);
  if (c.head_dim % 2 != 0) Fail("{}: head size {} is odd; RoPE needs pairs", source, c.head_dim);
  if (c.rope_dim <= 0 || c.rope_dim > c.head_dim || c.rope_dim % 2 != 0)
    Fail("{}: rope dimension {} does not fit head size {}", source, c.rope_dim, c.head_dim);
  if (!(c.norm_eps > 0.0f) || c.norm_eps > 1.0f) Fail("{}: rms norm epsilon {} is out of range", source, c.norm_eps);
  if (!(c.rope_theta > 0.0f)) Fail("{}: rope theta {} must be positive", source, c.rope_theta);
}

void SetFeedForwardSizes(ModelConfig& c, std::vector<int> sizes, const std::string& source) {
  if ((int)sizes.size() != c.n_layers || sizes.empty())
    Fail("{}: {} feed-forward sizes for {} layers", source, sizes.size(), c.n_layers);
  c.ff = *std::max_element(sizes.begin(), sizes.end());
  if (std::all_of(sizes.begin(), sizes.end(), [&](int v) { return v == c.ff; })) {
    c.layer_ff.clear();
  } else {
    c.layer_ff = std::move(sizes);
  }
}

void SetKvHeadCounts(ModelConfig& c, std::vector<int> kv_heads, const std::string& source) {
  if ((int)kv_heads.size() != c.n_layers || kv_heads.empty())
    Fail("{}: {} kv head counts for {} layers", source, kv_heads.size(), c.n_layers);
  const int group = c.n_heads / c.n_kv_heads;
  c.n_kv_heads = *std::max_element(kv_heads.begin(), kv_heads.end());
  c.n_heads = c.n_kv_heads * group;
  if (std::all_of(kv_heads.begin(), kv_heads.end(), [&](int v) { return v == c.n_kv_heads; })) {
    c.layer_kv_heads.clear();
  } else {
    c.layer_kv_heads = std::move(kv_heads);
  }
}

}  // namespace smelt
