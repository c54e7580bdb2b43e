#pragma once
// GGUF (v2/v3) reading and writing: llama.cpp's self-describing container of key/value metadata
// and tensors.
//
// File layout (all little-endian):
//   u32 magic "GGUF" | u32 version | u64 tensor_count | u64 kv_count
//   kv_count x  { string key | u32 value_type | value }
//   tensor_count x { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
//   padding to `general.alignment` (default 32)
//   data section: each tensor at data_start + offset (offset a multiple of the alignment)
// A string is u64 length + bytes (no terminator); an array is u32 element type + u64 count +
// elements (arrays may nest).
//
// The reader is zero-copy: it maps the file and every Tensor points into the mapping (its owner
// keeps the mapping alive). It validates everything an untrusted file can get wrong and throws
// smelt::Error with one line naming the file and the problem.
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/half.h"
#include "core/tensor.h"

namespace smelt {

// GGUF metadata value types (serialized ids).
enum class GgufType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};

// "u32", "string", "array" ...; "type 17" for an id outside the table.
std::string GgufTypeName(GgufType t);

inline constexpr uint32_t kGgufDefaultAlignment = 32;
inline constexpr int kGgufMaxArrayDepth = 8;  // arrays of arrays nest at most this deep

// One metadata value: a scalar, a string, or an array (of scalars, of strings, or of arrays).
// Numeric arrays keep their elements packed as in the file; string arrays are a vector of
// strings (a vocabulary is one such array).
class GgufValue {
 public:
  GgufValue() = default;  // u8 0

  // --- construction ------------------------------------------------------------------------
  static GgufValue U8(uint8_t v) { return Scalar(GgufType::kU8, v); }
  static GgufValue I8(int8_t v) { return Scalar(GgufType::kI8, (uint64_t)(int64_t)v); }
  static GgufValue U16(uint16_t v) { return Scalar(GgufType::kU16, v); }
  static GgufValue I16(int16_t v) { return Scalar(GgufType::kI16, (uint64_t)(int64_t)v); }
  static GgufValue U32(uint32_t v) { return Scalar(GgufType::kU32, v); }
  static GgufValue I32(int32_t v) { return Scalar(GgufType::kI32, (uint64_t)(int64_t)v); }
  static GgufValue U64(uint64_t v) { return Scalar(GgufType::kU64, v); }
  static GgufValue I64(int64_t v) { return Scalar(GgufType::kI64, (uint64_t)v); }
  static GgufValue F32(float v) { return Scalar(GgufType::kF32, FloatBits(v)); }
  static GgufValue F64(double v);
  static GgufValue Bool(bool v) { return Scalar(GgufType::kBool, v ? 1 : 0); }
  static GgufValue String(std::string v);
  static GgufValue StringArray(std::vector<std::string> v);
  // An array of a numeric element type; `bytes` are the packed little-endian elements.
  static GgufValue NumericArray(GgufType elem, std::vector<uint8_t> bytes);
  static GgufValue F32Array(std::span<const float> v);
  static GgufValue I32Array(std::span<const int32_t> v);
  // An array whose elements are arrays (all items must be arrays).
  static GgufValue ArrayOfArrays(std::vector<GgufValue> items);

  // --- inspection --------------------------------------------------------------------------
  GgufType type() const { return type_; }
  bool is_array() const { return type_ == GgufType::kArray; }
  GgufType elem_type() const { return elem_; }  // arrays only
  size_t size() const;                           // element count of an array; 0 for scalars
  // "u32", "string", "array of f32" ...
  std::string TypeDescription() const;

  // --- typed access: each throws Error("expected ..., found ...") on a type mismatch --------
  int64_t AsInt() const;     // any integer type (a u64 above INT64_MAX throws)
  uint64_t AsUint() const;   // any integer type, must be >= 0
  double AsFloat() const;    // f32, f64, or any integer type
  bool AsBool() const;
  const std::string& AsString() const;
  const std::vector<std::string>& AsStrings() const;  // array of strings
  std::vector<int64_t> AsInts() const;                // array of an integer type
  std::vector<float> AsFloats() const;                // array of f32/f64 (or integers)
  const std::vector<GgufValue>& AsArrays() const;     // array of arrays
  std::span<const uint8_t> raw() const { return raw_; }  // packed elements of a numeric array
  // A scalar's payload: its little-endian bytes, zero-extended (signed integers sign-extended).
  uint64_t scalar_bits() const { return bits_; }

  // Short human-readable rendering: scalars in full, arrays as "[a, b, c, ... (N)]".
  std::string ToString(size_t max_items = 8) const;

  bool operator==(const GgufValue& o) const = default;

 private:
  friend class GgufParser;
  static GgufValue Scalar(GgufType t, uint64_t bits);

  GgufType type_ = GgufType::kU8;
  GgufType elem_ = GgufType::kU8;
  uint64_t bits_ = 0;  // scalar payload, see scalar_bits()
  std::string str_;
  std::vector<std::string> strings_;  // array of strings
  std::vector<uint8_t> raw_;          // array of numbers, packed
  std::vector<GgufValue> items_;      // array of arrays
};

struct GgufKV {
  std::string key;
  GgufValue value;
};

// A parsed GGUF file. Cheap to move; tensors stay valid as long as any copy of them lives.
class GgufFile {
 public:
  // Maps and parses PATH. Throws Error("PATH: ...").
  static GgufFile Open(const std::string& path);
  // Parses bytes in memory; `name` is used in error messages and as path(). Tensors point into
  // `data` and hold `owner` (may be null if the caller keeps `data` alive).
  static GgufFile Parse(const uint8_t* data, size_t size, std::string name,
                        std::shared_ptr<const void> owner = nullptr);

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // file offset of the data section

  // --- metadata ----------------------------------------------------------------------------
  const std::vector<GgufKV>& kvs() const { return kvs_; }
  const GgufValue* Find(std::string_view key) const;
  bool Has(std::string_view key) const { return Find(key) != nullptr; }
  // Required keys: throw Error("PATH: missing key K") or ("PATH: key K: expected ...").
  int64_t GetInt(std::string_view key) const;
  double GetFloat(std::string_view key) const;
  bool GetBool(std::string_view key) const;
  const std::string& GetString(std::string_view key) const;
  const std::vector<std::string>& GetStrings(std::string_view key) const;
  // Optional keys: nullopt/nullptr when absent, Error when present with the wrong type.
  std::optional<int64_t> FindInt(std::string_view key) const;
  std::optional<double> FindFloat(std::string_view key) const;
  std::optional<bool> FindBool(std::string_view key) const;
  std::optional<std::string> FindString(std::string_view key) const;
  const std::vector<std::string>* FindStrings(std::string_view key) const;
  std::optional<std::vector<int64_t>> FindInts(std::string_view key) const;
  std::optional<std::vector<float>> FindFloats(std::string_view key) const;

  // --- tensors (file order); data points into the mapping ----------------------------------
  const std::vector<Tensor>& tensors() const { return tensors_; }
  const Tensor* FindTensor(std::string_view name) const;
  // Offset of tensor i relative to the data section, as stored in the file.
  uint64_t tensor_offset(size_t i) const { return offsets_[i]; }

 private:
  friend class GgufParser;
  const GgufValue& Require(std::string_view key) const;  // throws "PATH: missing key K"

  std::string path_;
  uint32_t version_ = 3;
  uint32_t alignment_ = kGgufDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<GgufKV> kvs_;
  std::unordered_map<std::string, size_t> kv_index_;
  std::vector<Tensor> tensors_;
  std::vector<uint64_t> offsets_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

// Builds a GGUF v3 file: metadata in insertion order, then tensor infos and data in insertion
// order, each tensor aligned. Tensor bytes are produced while writing (streaming), so a
// converter never needs a second copy of the model in memory.
class GgufWriter {
 public:
  // Receives the bytes of a tensor, in order, in pieces of any size.
  using Emit = std::function<void(const void* bytes, size_t n)>;
  // Must emit exactly TensorBytes(type, ne) bytes in total.
  using Producer = std::function<void(const Emit& emit)>;

  // alignment: a power of two; written as general.alignment when it is not 32.
  explicit GgufWriter(uint32_t alignment = kGgufDefaultAlignment);

  // Adds a key (throws Error on a duplicate or empty key, or a key that is not UTF-8).
  // Setting general.alignment (a u32 power of two) changes the alignment the file is laid out
  // with.
  void Set(std::string key, GgufValue value);
  bool Has(std::string_view key) const;
  // A tensor whose bytes are t.data[0 .. t.nbytes) (kept alive by t.owner until written).
  void AddTensor(const Tensor& t);
  // A tensor whose bytes come from `produce` at write time. Throws Error on a duplicate or
  // invalid name, n_dims outside 1..4, non-positive dims, or ne[0] not a multiple of the type's
  // block size.
  void AddTensor(std::string name, DType type, int n_dims, std::array<int64_t, 4> ne, Producer produce);

  // Writes the file atomically (temp file + rename). Throws Error.
  void WriteFile(const std::string& path) const;
  // The same bytes, in memory.
  std::vector<uint8_t> WriteToMemory() const;

 private:
  struct PendingTensor {
    std::string name;
    DType type;
    int n_dims;
    std::array<int64_t, 4> ne;
    size_t nbytes;
    Producer produce;
  };
  void Serialize(const std::function<void(const void*, size_t)>& out, const std::string& what) const;

  uint32_t alignment_;
  std::vector<GgufKV> kvs_;
  std::vector<PendingTensor> tensors_;
};

// True if `s` is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
bool IsValidUtf8(std::string_view s);

}  // namespace smelt
