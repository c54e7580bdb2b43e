#pragma once
// The one table of weight formats. Each format lives in its own file under formats/ as a plain
// block struct with a static_assert on its size and scalar reference encode/decode; this table
// ties them together (ggml's type_traits idea): adding a format adds a row, not branches.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "core/tensor.h"

namespace smelt {

// Decode n values (n a multiple of block_size) from packed blocks to f32. The blocks are read in
// place as structs, so src must be aligned for their fp16/f32 fields (see BlockAlignment);
// DequantizeRow/DequantizeAll take care of misaligned tensors themselves.
using ToFloatFn = void (*)(const void* src, float* dst, int64_t n);
// Encode n values (n a multiple of block_size) to packed blocks: the scalar reference quantizer.
using FromFloatFn = void (*)(const float* src, void* dst, int64_t n);
// Encode n values minimising Σ importance·error² (importance: n non-negative values).
using FromFloatWeightedFn = void (*)(const float* src, const float* importance, void* dst, int64_t n);

struct TypeTraits {
  DType type;
  std::string_view name;  // ggml's spelling, lower case: "f32", "q4_0", "q4_K" ... (serialized)
  int64_t block_size;     // values per block (1 for plain types)
  size_t type_size;       // bytes per block
  bool quantized;
  ToFloatFn to_float;      // null for integer types
  FromFloatFn from_float;  // null where smelt cannot write the type yet
  // Importance-weighted MSE encoder (formats/weighted_quants.h); null where smelt has none yet.
  FromFloatWeightedFn from_float_weighted = nullptr;
  // Whether ggml/llama.cpp can load a GGUF tensor of this type: true for ggml's weight types,
  // false for ggml's activation-only types (q8_1, q8_K: ggml has no to_float for them / llama.cpp
  // refuses them as weights) and for the smelt-native types (ids >= kFirstNativeTypeId).
  bool llama_cpp = true;
  // Bytes at the start of every row (per-row scales, formats/per_channel.h); 0 for block formats.
  // Where it is not 0, to_float/from_float take exactly one whole row (header included).
  size_t row_header = 0;
  // The sparse types: from_float stores at most sparse_n of every sparse_m consecutive weights
  // (2:4: 2 of 4), or with sparse_per_row sparse_n·(n/sparse_m) of a row's n weights anywhere in
  // it (the bitmask rows' capacity), and prunes an input with more non-zeros by magnitude to fit.
  // sparse_m = 0: not sparse.
  int sparse_n = 0, sparse_m = 0;
  bool sparse_per_row = false;
  // Where a type's row holds data that follows from its other bytes (s24_w4a8's header): the
  // check a reader runs on every row of n values, returning what is wrong, or nullptr.
  const char* (*check_row)(const void* row, int64_t n) = nullptr;
};

// Traits of a known type; nullptr for an id smelt does not know (e.g. read from a file).
const TypeTraits* FindTraits(uint32_t type_id);
// Traits of a known type (asserts it is known).
const TypeTraits& Traits(DType t);
// Case-insensitive lookup by name ("Q8_0", "q4_k", "bf16").
std::optional<DType> ParseDType(std::string_view name);
std::string_view DTypeName(DType t);

// Bytes of one row of n values (row header included); n must be a multiple of the block size.
size_t RowBytes(DType t, int64_t n);
// Bytes of a whole tensor, or nullopt if ne[0] is not a multiple of the block size or the size
// overflows.
std::optional<size_t> TensorBytes(DType t, const std::array<int64_t, 4>& ne);

// Alignment (bytes) that packed data of type t needs for to_float/from_float: that of the
// widest field of its block struct, at most 8.
size_t BlockAlignment(DType t);

// Dequantizes row `row` of a 2-D (or flattened) tensor into dst[ne[0]].
void DequantizeRow(const Tensor& t, int64_t row, float* dst);
// Dequantizes a whole tensor into a new f32 buffer (nelements values).
std::vector<float> DequantizeAll(const Tensor& t);

}  // namespace smelt
