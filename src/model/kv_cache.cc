#include "model/kv_cache.h"

#include <algorithm>

#include "core/error.h"

namespace smelt {

KvCache::KvCache(int n_layers, int64_t kv_dim, int64_t capacity)
    : kv_dim_(kv_dim), capacity_(capacity), k_(n_layers), v_(n_layers) {
  SMELT_ASSERT(n_layers > 0 && kv_dim > 0 && capacity > 0);
}

void KvCache::Reserve(int64_t n) {
  SMELT_ASSERT(n >= 0 && n <= capacity_);
  if (n <= reserved_) return;
  const int64_t grown = std::min(capacity_, std::max<int64_t>({n, 2 * reserved_, 64}));
  for (auto* side : {&k_, &v_})
    for (auto& layer : *side) layer.resize((size_t)(grown * kv_dim_));
  reserved_ = grown;
}

}  // namespace smelt
