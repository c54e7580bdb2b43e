#pragma once
// Tensor views. A tensor is a typed, shaped view of bytes owned elsewhere (an mmapped file or a
// heap buffer kept alive by `owner`). Shapes follow GGUF/ggml order: ne[0] is the innermost
// (contiguous) dimension, so a weight matrix (OC, C) has ne = {C, OC}; rows are ne[0] long.
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace smelt {

// Element/storage types. The numeric values are ggml's `enum ggml_type` ids, because they are
// serialized in GGUF files: append-only, never renumber.
enum class DType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kIQ4_NL = 20,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kBF16 = 30,

  // smelt-native formats, ids 1024..2047: a range ggml's enum (which counts up from 0 and is
  // below 64 today) will never reach, so a GGUF file written with them can never be misread as
  // some future ggml type; llama.cpp rejects them as unknown ids (TypeTraits::llama_cpp).
  // Group-wise integers with fp16 scales (formats/group_int.h): bits 4/3/2, Symmetric or
  // Asymmetric, group 32/64/128.
  kI4S_G32 = 1024,
  kI4S_G64 = 1025,
  kI4S_G128 = 1026,
  kI4A_G32 = 1027,
  kI4A_G64 = 1028,
  kI4A_G128 = 1029,
  kI3S_G32 = 1030,
  kI3S_G64 = 1031,
  kI3S_G128 = 1032,
  kI3A_G32 = 1033,
  kI3A_G64 = 1034,
  kI3A_G128 = 1035,
  kI2S_G32 = 1036,
  kI2S_G64 = 1037,
  kI2S_G128 = 1038,
  kI2A_G32 = 1039,
  kI2A_G64 = 1040,
  kI2A_G128 = 1041,
  kNF4 = 1042,          // QLoRA NormalFloat-4, blocks of 64 (formats/nf4.h)
  kF8E4M3_B32 = 1043,  // OCP FP8 E4M3 elements, blocks of 32 (formats/fp8.h)
  kF8E5M2_B32 = 1044,  // OCP FP8 E5M2 elements, blocks of 32
  kPow2_B32 = 1045,    // sign + power-of-two exponent codes, blocks of 32 (formats/pow2.h)
  // Per-output-channel types (formats/per_channel.h): a scale per row in a row header.
  kI8_PC = 1046,  // int8, f32 scale per row (weight-only W8: f32 activations)
  kW8A8 = 1047,   // the i8_pc layout with int8 per-token activations (SmoothQuant W8A8)
  kI4S_PC = 1048,
  kI4A_PC = 1049,
  kI3S_PC = 1050,
  kI3A_PC = 1051,
  kI2S_PC = 1052,
  kI2A_PC = 1053,
  // Per-output-channel k-means codebooks, 2^b fp16 centroids per row (formats/kmeans.h).
  kKM4_PC = 1054,
  kKM3_PC = 1055,
  kKM2_PC = 1056,
  // Outlier-aware: 8 exact weights per row beside a base block format (formats/outliers.h).
  kQ4_0_O8 = 1057,
  kI3S_G32_O8 = 1058,
  // Sparse (formats/sparse24.h, formats/sparse_mask.h): 2:4 structured blocks of 32 (the 16 kept
  // values, their 2-bit positions, an fp16 scale), and unstructured rows (a bitmask per 32
  // weights, the non-zero int8 values packed per row up to a fixed capacity, an f32 row scale).
  kS24_Q8 = 1059,
  kS24_Q4 = 1060,
  kSP50_Q8 = 1061,  // up to 16 non-zeros per 32 weights on average over the row
  kSP70_Q8 = 1062,  // up to 10 non-zeros per 32 weights (at least 68.75 % zeros)
  // The same bitmask rows against int8 per-token activations (as w8a8 is to i8_pc): one exact
  // integer sum per row instead of one f32 step per 32 weights.
  kSP50_W8A8 = 1063,
  kSP70_W8A8 = 1064,
  // 2:4 int4 against int8 per-token activations: blocks of 128 laid out for one 64-byte gather
  // (formats/sparse24.h).
  kS24_W4A8 = 1065,
  // The bitmask rows unquantized: fp16 values (formats/sparse_mask.h).
  kSP50_F16 = 1066,
  kSP70_F16 = 1067,
  // The bitmask rows with int4 codes against int8 per-token activations: an 8-bit multiplier of
  // the row's f32 scale per 64 weights (formats/sparse_mask.h).
  kSP70_W4A8 = 1068,
};

// The id range reserved for smelt-native types (see DType).
inline constexpr uint32_t kFirstNativeTypeId = 1024;
inline constexpr uint32_t kLastNativeTypeId = 2047;

struct Tensor {
  std::string name;
  DType type = DType::kF32;
  int n_dims = 0;
  std::array<int64_t, 4> ne{1, 1, 1, 1};  // ne[0] innermost
  const void* data = nullptr;             // not owned
  size_t nbytes = 0;
  std::shared_ptr<const void> owner;      // keeps `data` alive (mmap or heap buffer)
  // The read-only file mapping the reader placed `data` in (its first byte and size), if any;
  // `owner` then points at its first byte too. A copy that points `data` or `owner` at other
  // memory keeps these, which is why InFileMapping checks both before pages are dropped.
  const void* mapping = nullptr;
  size_t mapping_size = 0;

  int64_t nelements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  // Whether [data, data + nbytes) lies inside the file mapping that `owner` keeps alive (pages
  // DropPages may give back).
  bool InFileMapping() const {
    const auto* base = static_cast<const uint8_t*>(mapping);
    const auto* p = static_cast<const uint8_t*>(data);
    return base && owner.get() == mapping && p >= base && nbytes <= mapping_size &&
           (size_t)(p - base) <= mapping_size - nbytes;
  }
  int64_t nrows() const { return ne[1] * ne[2] * ne[3]; }
  template <class T>
  const T* as() const { return static_cast<const T*>(data); }
};

// A heap-backed f32 tensor (owner holds the buffer).
Tensor MakeF32Tensor(std::string name, std::vector<int64_t> shape_ne, std::vector<float> values);

// `like` (name, shape) with its data replaced by `bytes` of type `type`, owned by the result.
Tensor TensorFromBytes(const Tensor& like, DType type, std::vector<uint8_t> bytes);

// Human-readable shape "[64, 512]" in ne order.
std::string ShapeString(const Tensor& t);

}  // namespace smelt
