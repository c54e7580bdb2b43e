#include "model/kv_cache.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "core/error.h"
#include "core/half.h"
#include "kernels/convert.h"

namespace smelt {
namespace {

size_t HeadBytes(KvType t, int head_dim) {
  switch (t) {
    case KvType::kF32: return sizeof(float) * head_dim;
    case KvType::kF16: return sizeof(fp16_t) * head_dim;
    case KvType::kI8: return offsetof(KvI8Head, q) + head_dim;
  }
  return 0;
}

void EncodeHead(KvType t, const float* x, int n, uint8_t* dst) {
  switch (t) {
    case KvType::kF32:
      std::memcpy(dst, x, sizeof(float) * n);
      return;
    case KvType::kF16:
      FloatRowToHalf(x, reinterpret_cast<fp16_t*>(dst), n);
      return;
    case KvType::kI8: {
      float amax = 0.0f;
      for (int i = 0; i < n; ++i) amax = std::max(amax, std::abs(x[i]));
      const float d = amax / 127.0f, inv = d > 0.0f ? 1.0f / d : 0.0f;
      std::memcpy(dst, &d, sizeof d);
      int8_t* q = reinterpret_cast<int8_t*>(dst + offsetof(KvI8Head, q));
      for (int i = 0; i < n; ++i) q[i] = (int8_t)std::clamp<long>(std::lround(x[i] * inv), -127, 127);
      return;
    }
  }
}

void DecodeHead(KvType t, const uint8_t* src, int64_t n, float* y) {
  switch (t) {
    case KvType::kF32:
      std::memcpy(y, src, sizeof(float) * n);
      return;
    case KvType::kF16:
      HalfRowToFloat(reinterpret_cast<const fp16_t*>(src), y, n);
      return;
    case KvType::kI8: {
      float d;
      std::memcpy(&d, src, sizeof d);
      ScaledInt8RowToFloat(reinterpret_cast<const int8_t*>(src + offsetof(KvI8Head, q)), d, y, n);
      return;
    }
  }
}

}  // namespace

std::optional<KvType> ParseKvType(std::string_view name) {
  if (name == "f32") return KvType::kF32;
  if (name == "f16") return KvType::kF16;
  if (name == "i8") return KvType::kI8;
  return std::nullopt;
}

std::string_view KvTypeName(KvType t) {
  switch (t) {
    case KvType::kF32: return "f32";
    case KvType::kF16: return "f16";
    case KvType::kI8: return "i8";
  }
  return "?";
}

KvCache::KvCache(int n_layers, int n_kv_heads, int head_dim, int64_t capacity, KvType type)
    : KvCache(std::vector<int>((size_t)std::max(n_layers, 0), n_kv_heads), head_dim, capacity, type) {}

KvCache::KvCache(std::vector<int> kv_heads, int head_dim, int64_t capacity, KvType type)
    : type_(type),
      kv_heads_(std::move(kv_heads)),
      n_kv_heads_(kv_heads_.empty() ? 0 : *std::max_element(kv_heads_.begin(), kv_heads_.end())),
      head_dim_(head_dim),
      head_bytes_(HeadBytes(type, head_dim)),
      capacity_(capacity),
      k_(kv_heads_.size()),
      v_(kv_heads_.size()) {
  SMELT_ASSERT(!kv_heads_.empty() && head_dim > 0 && capacity > 0);
  for (int h : kv_heads_) SMELT_ASSERT(h > 0);
}

size_t KvCache::BytesFor(int64_t positions) const {
  size_t bytes = 0;
  for (size_t l = 0; l < kv_heads_.size(); ++l) bytes += 2 * RowBytes((int)l) * (size_t)positions;
  return bytes;
}

void KvCache::Reserve(int64_t n) {
  SMELT_ASSERT(n >= 0 && n <= capacity_);
  if (n <= reserved_) return;
  const int64_t grown = std::min(capacity_, std::max<int64_t>({n, 2 * reserved_, 64}));
  // Each head's block of positions moves to its new place, grown apart; the rest is zeroed. f32
  // rows are read in place as floats: the buffers are at least 64-byte aligned, and from 2 MiB on
  // on huge pages (core/huge_pages.h), which a long context's attention streams.
  const size_t old_block = (size_t)reserved_ * head_bytes_, new_block = (size_t)grown * head_bytes_;
  for (auto* side : {&k_, &v_})
    for (size_t l = 0; l < side->size(); ++l) {
      HugePageBuffer bigger((size_t)kv_heads_[l] * new_block);
      for (int h = 0; h < kv_heads_[l]; ++h) {
        uint8_t* to = bigger.data() + h * new_block;
        if (old_block > 0) std::memcpy(to, (*side)[l].data() + h * old_block, old_block);
        std::memset(to + old_block, 0, new_block - old_block);
      }
      (*side)[l] = std::move(bigger);
    }
  reserved_ = grown;
}

uint8_t* KvCache::HeadAt(int layer, bool values, int head, int64_t pos) {
  return const_cast<uint8_t*>(std::as_const(*this).RawHead(layer, values, head, pos));
}

void KvCache::Store(int layer, int64_t pos, const float* k, const float* v) {
  SMELT_ASSERT(pos >= 0 && pos < reserved_);
  for (int h = 0; h < n_kv_heads(layer); ++h) {
    EncodeHead(type_, k + (int64_t)h * head_dim_, head_dim_, HeadAt(layer, false, h, pos));
    EncodeHead(type_, v + (int64_t)h * head_dim_, head_dim_, HeadAt(layer, true, h, pos));
  }
}

void KvCache::StoreRoped(int layer, int64_t pos, const float* k, const float* v, const RopeRotation& rope) {
  SMELT_ASSERT(pos >= 0 && pos < reserved_);
  constexpr int kMaxHead = 512;
  float rotated[kMaxHead];
  SMELT_ASSERT(type_ == KvType::kF32 || head_dim_ <= kMaxHead);
  for (int h = 0; h < n_kv_heads(layer); ++h) {
    const float* kh = k + (int64_t)h * head_dim_;
    uint8_t* kd = HeadAt(layer, false, h, pos);
    if (type_ == KvType::kF32) {
      RopeHead(reinterpret_cast<float*>(kd), kh, head_dim_, rope);
    } else {
      RopeHead(rotated, kh, head_dim_, rope);
      EncodeHead(type_, rotated, head_dim_, kd);
    }
    EncodeHead(type_, v + (int64_t)h * head_dim_, head_dim_, HeadAt(layer, true, h, pos));
  }
}

void KvCache::LoadHead(int layer, bool values, int head, int64_t n, float* dst) const {
  LoadHeadRange(layer, values, head, 0, n, dst);
}

void KvCache::LoadHeadRange(int layer, bool values, int head, int64_t start, int64_t n, float* dst) const {
  SMELT_ASSERT(start >= 0 && n >= 0 && start + n <= reserved_ && head >= 0 && head < n_kv_heads(layer));
  if (n == 0) return;
  const uint8_t* src = RawHead(layer, values, head, start);
  if (type_ != KvType::kI8) {  // no per-position scale: the positions' values are one adjacent run
    DecodeHead(type_, src, n * head_dim_, dst);
    return;
  }
  for (int64_t p = 0; p < n; ++p) DecodeHead(type_, src + (size_t)p * head_bytes_, head_dim_, dst + p * head_dim_);
}

const float* KvCache::head_keys_f32(int layer, int head) const {
  SMELT_ASSERT(type_ == KvType::kF32 && reserved_ > 0);
  return reinterpret_cast<const float*>(RawHead(layer, false, head, 0));
}

const float* KvCache::head_values_f32(int layer, int head) const {
  SMELT_ASSERT(type_ == KvType::kF32 && reserved_ > 0);
  return reinterpret_cast<const float*>(RawHead(layer, true, head, 0));
}

const uint8_t* KvCache::RawHead(int layer, bool values, int head, int64_t pos) const {
  SMELT_ASSERT(layer >= 0 && layer < n_layers() && head >= 0 && head < n_kv_heads(layer) && pos >= 0 &&
               pos < reserved_);
  return (values ? v_ : k_)[layer].data() + ((size_t)head * (size_t)reserved_ + (size_t)pos) * head_bytes_;
}

void KvCache::ReadRow(int layer, bool values, int64_t pos, uint8_t* dst) const {
  for (int h = 0; h < n_kv_heads(layer); ++h) std::memcpy(dst + h * head_bytes_, RawHead(layer, values, h, pos), head_bytes_);
}

void KvCache::WriteRow(int layer, bool values, int64_t pos, const uint8_t* src) {
  for (int h = 0; h < n_kv_heads(layer); ++h) std::memcpy(HeadAt(layer, values, h, pos), src + h * head_bytes_, head_bytes_);
}

}  // namespace smelt
