#include "model/config.h"

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
  positive(c.vocab, "vocabulary size", 1 << 24);
  if (c.n_heads % c.n_kv_heads != 0)
    Fail("{}: head count {} is not a multiple of kv head count {}", source, c.n_heads, c.n_kv_heads);
  if (c.head_dim % 2 != 0) Fail("{}: head size {} is odd; RoPE needs pairs", source, c.head_dim);
  if (c.rope_dim <= 0 || c.rope_dim > c.head_dim || c.rope_dim % 2 != 0)
    Fail("{}: rope dimension {} does not fit head size {}", source, c.rope_dim, c.head_dim);
  if (!(c.norm_eps > 0.0f) || c.norm_eps > 1.0f) Fail("{}: rms norm epsilon {} is out of range", source, c.norm_eps);
  if (!(c.rope_theta > 0.0f)) Fail("{}: rope theta {} must be positive", source, c.rope_theta);
}

}  // namespace smelt
