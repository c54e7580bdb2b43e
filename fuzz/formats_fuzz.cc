// libFuzzer target: the weight formats on arbitrary bytes. Input: byte 0 picks a type id (below
// 128: ggml's ids, byte mod 32; from 128: smelt's own, kFirstNativeTypeId + (byte - 128) mod 64,
// which reaches every native id, the sparse and outlier types included), bytes 1..16 are four
// little-endian int32 extents for TensorBytes, the rest is payload.
// Decoding any payload, encoding any floats (NaN and infinity included) and sizing any shape
// must neither crash nor trip a sanitizer; TensorBytes must agree with plain arithmetic; rows
// smelt encodes pass the type's row check (TypeTraits::check_row).
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include "core/error.h"
#include "formats/types.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 17) return 0;
  const uint32_t id = data[0] < 128 ? data[0] % 32u : smelt::kFirstNativeTypeId + (data[0] - 128u) % 64u;
  const smelt::TypeTraits* tr = smelt::FindTraits(id);
  if (tr == nullptr) return 0;
  std::array<int64_t, 4> ne;
  for (int i = 0; i < 4; ++i) {
    int32_t v;
    std::memcpy(&v, data + 1 + 4 * i, 4);
    ne[i] = v;
  }
  const std::optional<size_t> bytes = smelt::TensorBytes(tr->type, ne);
  if (bytes) {
    // Accepted shapes: non-negative, whole blocks, and the size is the plain product.
    SMELT_ASSERT(ne[0] >= 0 && ne[1] >= 0 && ne[2] >= 0 && ne[3] >= 0 && ne[0] % tr->block_size == 0);
    unsigned __int128 want = (unsigned __int128)(ne[0] / tr->block_size) * tr->type_size + tr->row_header;
    for (int i = 1; i < 4; ++i) want *= (unsigned __int128)ne[i];
    SMELT_ASSERT(want == *bytes);
  }
  // Block structs are read in place and need their alignment (libFuzzer's data has none).
  const std::vector<uint8_t> aligned(data + 17, data + size);
  const uint8_t* payload = aligned.data();
  const size_t n = aligned.size();
  // One row of `blocks` blocks after the row header (per-channel types).
  const int64_t blocks = n < tr->row_header ? 0 : (int64_t)((n - tr->row_header) / tr->type_size);
  if (tr->to_float && blocks > 0) {
    std::vector<float> out((size_t)(blocks * tr->block_size));
    tr->to_float(payload, out.data(), (int64_t)out.size());
    if (tr->check_row) tr->check_row(payload, (int64_t)out.size());  // any verdict, no crash
  }
  const int64_t nf = (int64_t)(n / 4) / tr->block_size * tr->block_size;
  if (tr->from_float && nf > 0) {
    std::vector<float> in((size_t)nf);
    std::memcpy(in.data(), payload, (size_t)nf * 4);
    std::vector<uint8_t> packed(smelt::RowBytes(tr->type, nf));
    tr->from_float(in.data(), packed.data(), nf);
    // What smelt writes passes its own reader's row check.
    SMELT_ASSERT(!tr->check_row || tr->check_row(packed.data(), nf) == nullptr);
    if (tr->to_float) {
      std::vector<float> back((size_t)nf);
      tr->to_float(packed.data(), back.data(), nf);
    }
  }
  return 0;
}
