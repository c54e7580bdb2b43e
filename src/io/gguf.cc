#include "io/gguf.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/mapped_file.h"
#include "formats/types.h"

namespace smelt {

namespace {

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as a little-endian u32

// Bytes of one element of a scalar type; 0 for string/array/unknown.
size_t ScalarSize(GgufType t) {
  switch (t) {
    case GgufType::kU8:
    case GgufType::kI8:
    case GgufType::kBool:
      return 1;
    case GgufType::kU16:
    case GgufType::kI16:
      return 2;
    case GgufType::kU32:
    case GgufType::kI32:
    case GgufType::kF32:
      return 4;
    case GgufType::kU64:
    case GgufType::kI64:
    case GgufType::kF64:
      return 8;
    default:
      return 0;
  }
}

bool IsKnownType(uint32_t t) { return t <= (uint32_t)GgufType::kF64; }
bool IsIntegerType(GgufType t) {
  return ScalarSize(t) != 0 && t != GgufType::kF32 && t != GgufType::kF64 && t != GgufType::kBool;
}
bool IsSignedType(GgufType t) {
  return t == GgufType::kI8 || t == GgufType::kI16 || t == GgufType::kI32 || t == GgufType::kI64;
}

// Decodes one packed little-endian scalar element to the payload GgufValue keeps: its bytes,
// zero-extended, or sign-extended for signed integer types.
uint64_t DecodeScalar(GgufType t, const uint8_t* p) {
  uint64_t v = 0;
  const size_t n = ScalarSize(t);
  SMELT_ASSERT(n != 0);
  std::memcpy(&v, p, n);  // little-endian host
  if (IsSignedType(t) && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);
  return v;
}

double BitsToDouble(uint64_t bits) {
  double d;
  std::memcpy(&d, &bits, 8);
  return d;
}

uint64_t AlignUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace

std::string GgufTypeName(GgufType t) {
  static constexpr const char* kNames[] = {"u8",  "i8",   "u16",    "i16",   "u32", "i32", "f32",
                                           "bool", "string", "array", "u64", "i64", "f64"};
  uint32_t id = (uint32_t)t;
  if (id < std::size(kNames)) return kNames[id];
  return fmt::format("type {}", id);
}

bool IsValidUtf8(std::string_view s) {
  size_t i = 0, n = s.size();
  while (i < n) {
    uint8_t c = (uint8_t)s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;  // continuation byte, overlong 2-byte lead (c0/c1), or f5..ff
    }
    if (n - i < (size_t)len) return false;
    for (int k = 1; k < len; ++k) {
      uint8_t cc = (uint8_t)s[i + k];
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += (size_t)len;
  }
  return true;
}

// ---- GgufValue ------------------------------------------------------------------------------

GgufValue GgufValue::Scalar(GgufType t, uint64_t bits) {
  GgufValue v;
  v.type_ = t;
  v.bits_ = bits;
  return v;
}

GgufValue GgufValue::F64(double d) {
  uint64_t u;
  std::memcpy(&u, &d, 8);
  return Scalar(GgufType::kF64, u);
}

GgufValue GgufValue::String(std::string s) {
  GgufValue v;
  v.type_ = GgufType::kString;
  v.str_ = std::move(s);
  return v;
}

GgufValue GgufValue::StringArray(std::vector<std::string> s) {
  GgufValue v;
  v.type_ = GgufType::kArray;
  v.elem_ = GgufType::kString;
  v.strings_ = std::move(s);
  return v;
}

GgufValue GgufValue::NumericArray(GgufType elem, std::vector<uint8_t> bytes) {
  SMELT_ASSERT(ScalarSize(elem) != 0 && bytes.size() % ScalarSize(elem) == 0);
  GgufValue v;
  v.type_ = GgufType::kArray;
  v.elem_ = elem;
  v.raw_ = std::move(bytes);
  return v;
}

GgufValue GgufValue::F32Array(std::span<const float> a) {
  std::vector<uint8_t> bytes(a.size() * 4);
  if (!a.empty()) std::memcpy(bytes.data(), a.data(), bytes.size());
  return NumericArray(GgufType::kF32, std::move(bytes));
}

GgufValue GgufValue::I32Array(std::span<const int32_t> a) {
  std::vector<uint8_t> bytes(a.size() * 4);
  if (!a.empty()) std::memcpy(bytes.data(), a.data(), bytes.size());
  return NumericArray(GgufType::kI32, std::move(bytes));
}

GgufValue GgufValue::ArrayOfArrays(std::vector<GgufValue> items) {
  for (const auto& it : items) SMELT_ASSERT(it.is_array());
  GgufValue v;
  v.type_ = GgufType::kArray;
  v.elem_ = GgufType::kArray;
  v.items_ = std::move(items);
  return v;
}

size_t GgufValue::size() const {
  if (!is_array()) return 0;
  if (elem_ == GgufType::kString) return strings_.size();
  if (elem_ == GgufType::kArray) return items_.size();
  return raw_.size() / ScalarSize(elem_);
}

std::string GgufValue::TypeDescription() const {
  if (!is_array()) return GgufTypeName(type_);
  return "array of " + GgufTypeName(elem_);
}

int64_t GgufValue::AsInt() const {
  if (!IsIntegerType(type_)) Fail("expected an integer, found {}", TypeDescription());
  if (type_ == GgufType::kU64 && bits_ > (uint64_t)std::numeric_limits<int64_t>::max())
    Fail("value {} does not fit in a signed 64-bit integer", bits_);
  return (int64_t)bits_;
}

uint64_t GgufValue::AsUint() const {
  if (!IsIntegerType(type_)) Fail("expected an integer, found {}", TypeDescription());
  if (IsSignedType(type_) && (int64_t)bits_ < 0) Fail("expected a non-negative integer, found {}", (int64_t)bits_);
  return bits_;
}

double GgufValue::AsFloat() const {
  if (type_ == GgufType::kF32) return BitsFloat((uint32_t)bits_);
  if (type_ == GgufType::kF64) return BitsToDouble(bits_);
  if (IsIntegerType(type_)) return IsSignedType(type_) ? (double)(int64_t)bits_ : (double)bits_;
  Fail("expected a number, found {}", TypeDescription());
}

bool GgufValue::AsBool() const {
  if (type_ != GgufType::kBool) Fail("expected a bool, found {}", TypeDescription());
  return bits_ != 0;
}

const std::string& GgufValue::AsString() const {
  if (type_ != GgufType::kString) Fail("expected a string, found {}", TypeDescription());
  return str_;
}

const std::vector<std::string>& GgufValue::AsStrings() const {
  if (!is_array() || elem_ != GgufType::kString) Fail("expected an array of strings, found {}", TypeDescription());
  return strings_;
}

std::vector<int64_t> GgufValue::AsInts() const {
  if (!is_array() || !IsIntegerType(elem_)) Fail("expected an array of integers, found {}", TypeDescription());
  const size_t es = ScalarSize(elem_), n = raw_.size() / es;
  std::vector<int64_t> out(n);
  for (size_t i = 0; i < n; ++i) {
    uint64_t b = DecodeScalar(elem_, raw_.data() + i * es);
    if (elem_ == GgufType::kU64 && b > (uint64_t)std::numeric_limits<int64_t>::max())
      Fail("array element {} = {} does not fit in a signed 64-bit integer", i, b);
    out[i] = (int64_t)b;
  }
  return out;
}

std::vector<float> GgufValue::AsFloats() const {
  if (!is_array() || ScalarSize(elem_) == 0 || elem_ == GgufType::kBool)
    Fail("expected an array of numbers, found {}", TypeDescription());
  const size_t es = ScalarSize(elem_), n = raw_.size() / es;
  std::vector<float> out(n);
  if (elem_ == GgufType::kF32) {
    if (n) std::memcpy(out.data(), raw_.data(), n * 4);
    return out;
  }
  for (size_t i = 0; i < n; ++i) {
    uint64_t b = DecodeScalar(elem_, raw_.data() + i * es);
    out[i] = elem_ == GgufType::kF64 ? (float)BitsToDouble(b)
             : IsSignedType(elem_)   ? (float)(int64_t)b
                                     : (float)b;
  }
  return out;
}

const std::vector<GgufValue>& GgufValue::AsArrays() const {
  if (!is_array() || elem_ != GgufType::kArray) Fail("expected an array of arrays, found {}", TypeDescription());
  return items_;
}

std::string GgufValue::ToString(size_t max_items) const {
  auto scalar = [](GgufType t, uint64_t b) -> std::string {
    if (t == GgufType::kBool) return b ? "true" : "false";
    if (t == GgufType::kF32) return fmt::format("{}", BitsFloat((uint32_t)b));
    if (t == GgufType::kF64) return fmt::format("{}", BitsToDouble(b));
    if (IsSignedType(t)) return fmt::format("{}", (int64_t)b);
    return fmt::format("{}", b);
  };
  if (type_ == GgufType::kString) return fmt::format("\"{}\"", str_);
  if (!is_array()) return scalar(type_, bits_);
  std::string s = "[";
  const size_t n = size(), shown = std::min(n, max_items);
  for (size_t i = 0; i < shown; ++i) {
    if (i) s += ", ";
    if (elem_ == GgufType::kString) {
      s += fmt::format("\"{}\"", strings_[i]);
    } else if (elem_ == GgufType::kArray) {
      s += items_[i].ToString(max_items);
    } else {
      s += scalar(elem_, DecodeScalar(elem_, raw_.data() + i * ScalarSize(elem_)));
    }
  }
  if (shown < n) s += fmt::format("{}... ({} items)", shown ? ", " : "", n);
  return s + "]";
}

// ---- reading -------------------------------------------------------------------------------

class GgufParser {
 public:
  GgufParser(const uint8_t* data, size_t size, const std::string& path) : p_(data), size_(size), path_(path) {}

  GgufFile Run(std::shared_ptr<const void> owner, bool file_backed) {
    GgufFile f;
    f.path_ = path_;
    ParseHeader(f);
    ParseTensorInfos(f);
    PlaceTensors(f, std::move(owner), file_backed);
    return f;
  }

 private:
  template <class... Args>
  [[noreturn]] void Bad(fmt::format_string<Args...> fmt_str, Args&&... args) {
    throw Error(path_ + ": " + fmt::format(fmt_str, std::forward<Args>(args)...));
  }

  size_t remaining() const { return size_ - pos_; }

  // Fails unless n more bytes are present; `what` names the item being read.
  void Need(uint64_t n, std::string_view what) {
    if (n > remaining()) Bad("truncated: {} ends past end of file (needs {} bytes at offset {}, file has {})", what, n, pos_, size_);
  }

  template <class T>
  T Read(std::string_view what) {
    Need(sizeof(T), what);
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string ReadString(std::string_view what) {
    uint64_t n = Read<uint64_t>(what);
    if (n > remaining()) Bad("{}: string length {} runs past end of file (offset {}, file has {} bytes)", what, n, pos_, size_);
    std::string s(reinterpret_cast<const char*>(p_ + pos_), (size_t)n);
    pos_ += (size_t)n;
    return s;
  }

  GgufValue ReadValue(GgufType t, int depth, const std::string& what) {
    if (ScalarSize(t) != 0) {
      Need(ScalarSize(t), what);
      GgufValue v = GgufValue::Scalar(t, DecodeScalar(t, p_ + pos_));
      pos_ += ScalarSize(t);
      if (t == GgufType::kBool && v.bits_ > 1) Bad("{}: bool value {} is not 0 or 1", what, v.bits_);
      return v;
    }
    if (t == GgufType::kString) return GgufValue::String(ReadString(what));
    SMELT_ASSERT(t == GgufType::kArray);
    if (depth >= kGgufMaxArrayDepth) Bad("{}: arrays nested deeper than {}", what, kGgufMaxArrayDepth);
    uint32_t et = Read<uint32_t>(what);
    if (!IsKnownType(et)) Bad("{}: unknown array element type {}", what, et);
    const GgufType elem = (GgufType)et;
    uint64_t n = Read<uint64_t>(what);
    // Smallest encoding of one element: a scalar, a string's length, an array's type+count.
    const uint64_t min_elem = ScalarSize(elem) ? ScalarSize(elem) : elem == GgufType::kString ? 8 : 12;
    if (n > remaining() / min_elem)
      Bad("{}: array count {} of {} runs past end of file ({} bytes left)", what, n, GgufTypeName(elem), remaining());
    GgufValue v;
    v.type_ = GgufType::kArray;
    v.elem_ = elem;
    if (ScalarSize(elem) != 0) {
      const size_t bytes = (size_t)n * ScalarSize(elem);
      v.raw_.assign(p_ + pos_, p_ + pos_ + bytes);
      pos_ += bytes;
      if (elem == GgufType::kBool)
        for (size_t i = 0; i < v.raw_.size(); ++i)
          if (v.raw_[i] > 1) Bad("{}: bool element {} is {}, not 0 or 1", what, i, v.raw_[i]);
    } else if (elem == GgufType::kString) {
      v.strings_.reserve((size_t)n);
      for (uint64_t i = 0; i < n; ++i) v.strings_.push_back(ReadString(what));
    } else {
      v.items_.reserve((size_t)n);
      for (uint64_t i = 0; i < n; ++i) {
        v.items_.push_back(ReadValue(GgufType::kArray, depth + 1, what));
      }
    }
    return v;
  }

  void ParseHeader(GgufFile& f) {
    uint32_t magic = Read<uint32_t>("header");
    if (magic != kGgufMagic) {
      Bad("not a GGUF file (magic {:02x} {:02x} {:02x} {:02x}, expected \"GGUF\")", p_[0], p_[1], p_[2], p_[3]);
    }
    uint32_t version = Read<uint32_t>("header");
    if (version == 1) Bad("GGUF version 1 is not supported (only versions 2 and 3)");
    if (version != 2 && version != 3) {
      if (__builtin_bswap32(version) == 2 || __builtin_bswap32(version) == 3)
        Bad("big-endian GGUF files are not supported");
      Bad("unsupported GGUF version {} (only versions 2 and 3)", version);
    }
    f.version_ = version;
    const uint64_t n_tensors = Read<uint64_t>("header");
    const uint64_t n_kv = Read<uint64_t>("header");
    // Smallest encodings: a KV is key length (8) + 1 key byte + type (4) + 1 value byte; a
    // tensor info is name length (8) + 1 + n_dims (4) + one dim (8) + type (4) + offset (8).
    constexpr uint64_t kMinKv = 8 + 1 + 4 + 1, kMinTensor = 8 + 1 + 4 + 8 + 4 + 8;
    if (n_kv > remaining() / kMinKv) Bad("key/value count {} is more than the file could hold ({} bytes)", n_kv, size_);
    if (n_tensors > remaining() / kMinTensor)
      Bad("tensor count {} is more than the file could hold ({} bytes)", n_tensors, size_);
    n_tensors_ = n_tensors;

    f.kvs_.reserve((size_t)n_kv);
    for (uint64_t i = 0; i < n_kv; ++i) {
      std::string key = ReadString(fmt::format("key {}", i));
      if (key.empty()) Bad("key {} is empty", i);
      if (!IsValidUtf8(key)) Bad("key {} is not valid UTF-8", i);
      const std::string what = "key " + key;
      if (f.kv_index_.count(key)) Bad("duplicate key {}", key);
      uint32_t t = Read<uint32_t>(what);
      if (!IsKnownType(t)) Bad("{}: unknown value type {}", what, t);
      GgufValue v = ReadValue((GgufType)t, 0, what);
      f.kv_index_.emplace(key, f.kvs_.size());
      f.kvs_.push_back({std::move(key), std::move(v)});
    }

    if (const GgufValue* a = f.Find("general.alignment")) {
      if (!IsIntegerType(a->type())) Bad("key general.alignment: expected an integer, found {}", a->TypeDescription());
      uint64_t al = a->bits_;
      if (IsSignedType(a->type()) && (int64_t)al <= 0) Bad("general.alignment {} is not positive", (int64_t)al);
      if (al == 0 || (al & (al - 1)) != 0 || al > (1u << 30)) Bad("general.alignment {} is not a power of two up to 2^30", al);
      f.alignment_ = (uint32_t)al;
    }
  }

  void ParseTensorInfos(GgufFile& f) {
    f.tensors_.reserve((size_t)n_tensors_);
    f.offsets_.reserve((size_t)n_tensors_);
    for (uint64_t i = 0; i < n_tensors_; ++i) {
      Tensor t;
      t.name = ReadString(fmt::format("tensor info {}", i));
      if (t.name.empty()) Bad("tensor {} has an empty name", i);
      if (!IsValidUtf8(t.name)) Bad("tensor {}: name is not valid UTF-8", i);
      const std::string what = "tensor " + t.name;
      if (f.tensor_index_.count(t.name)) Bad("duplicate tensor name {}", t.name);
      uint32_t n_dims = Read<uint32_t>(what);
      if (n_dims < 1 || n_dims > 4) Bad("{}: n_dims {} is outside 1..4", what, n_dims);
      t.n_dims = (int)n_dims;
      int64_t count = 1;
      for (uint32_t d = 0; d < n_dims; ++d) {
        uint64_t ne = Read<uint64_t>(what);
        if (ne == 0 || ne > (uint64_t)std::numeric_limits<int64_t>::max())
          Bad("{}: dimension {} = {} is not a positive size", what, d, ne);
        t.ne[d] = (int64_t)ne;
        if (__builtin_mul_overflow(count, (int64_t)ne, &count)) Bad("{}: element count overflows (dims {})", what, ShapeString(t));
      }
      uint32_t type_id = Read<uint32_t>(what);
      const TypeTraits* tr = FindTraits(type_id);
      if (!tr) Bad("{}: unknown tensor type id {}", what, type_id);
      t.type = tr->type;
      if (t.ne[0] % tr->block_size != 0)
        Bad("{}: ne[0] = {} is not a multiple of the block size {} of {}", what, t.ne[0], tr->block_size, tr->name);
      std::optional<size_t> nbytes = TensorBytes(t.type, t.ne);
      if (!nbytes) Bad("{}: size of {} {} overflows", what, tr->name, ShapeString(t));
      t.nbytes = *nbytes;
      uint64_t offset = Read<uint64_t>(what);
      if (offset % f.alignment_ != 0) Bad("{}: data offset {} is not aligned to {}", what, offset, f.alignment_);
      f.tensor_index_.emplace(t.name, f.tensors_.size());
      f.tensors_.push_back(std::move(t));
      f.offsets_.push_back(offset);
    }
  }

  void PlaceTensors(GgufFile& f, std::shared_ptr<const void> owner, bool file_backed) {
    f.data_offset_ = AlignUp(pos_, f.alignment_);
    if (f.tensors_.empty()) return;
    if (f.data_offset_ > size_) Bad("truncated: data section starts at {}, past end of file ({} bytes)", f.data_offset_, size_);
    const uint64_t data_size = size_ - f.data_offset_;
    for (size_t i = 0; i < f.tensors_.size(); ++i) {
      Tensor& t = f.tensors_[i];
      const uint64_t off = f.offsets_[i];
      if (off > data_size || t.nbytes > data_size - off)
        Bad("tensor {}: data [{}, +{}) past end of file (data section has {} bytes)", t.name, off, t.nbytes, data_size);
      t.data = p_ + f.data_offset_ + off;
      t.owner = owner;
      if (file_backed) t.mapping = p_, t.mapping_size = size_;
      if (const auto check = Traits(t.type).check_row) {
        const size_t row_bytes = RowBytes(t.type, t.ne[0]);
        for (int64_t r = 0; r < t.nrows(); ++r)
          if (const char* wrong = check(static_cast<const uint8_t*>(t.data) + r * row_bytes, t.ne[0]))
            Bad("tensor {} ({}): row {}: {}", t.name, DTypeName(t.type), r, wrong);
      }
    }
    std::vector<size_t> order(f.tensors_.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return f.offsets_[a] < f.offsets_[b]; });
    for (size_t k = 1; k < order.size(); ++k) {
      const size_t a = order[k - 1], b = order[k];
      if (f.offsets_[a] + f.tensors_[a].nbytes > f.offsets_[b])
        Bad("tensors {} and {} overlap (offsets {} +{} and {})", f.tensors_[a].name, f.tensors_[b].name, f.offsets_[a],
            f.tensors_[a].nbytes, f.offsets_[b]);
    }
  }

  const uint8_t* p_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& path_;
  uint64_t n_tensors_ = 0;
};

GgufFile GgufFile::Open(const std::string& path) {
  std::shared_ptr<MappedFile> m = MappedFile::Open(path);
  std::shared_ptr<const void> owner(m, m->data());
  return GgufParser(m->data(), m->size(), path).Run(std::move(owner), /*file_backed=*/true);
}

GgufFile GgufFile::Parse(const uint8_t* data, size_t size, std::string name, std::shared_ptr<const void> owner) {
  return GgufParser(data, size, name).Run(std::move(owner), /*file_backed=*/false);
}

const GgufValue* GgufFile::Find(std::string_view key) const {
  auto it = kv_index_.find(std::string(key));
  return it == kv_index_.end() ? nullptr : &kvs_[it->second].value;
}

const Tensor* GgufFile::FindTensor(std::string_view name) const {
  auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

// Runs get(v), prefixing a type error with "PATH: key K: ".
template <class F>
auto Checked(const std::string& path, std::string_view key, const GgufValue& v, F&& get) -> decltype(get(v)) {
  try {
    return get(v);
  } catch (const Error& e) {
    Rethrow(fmt::format("{}: key {}", path, key), e);
  }
}

}  // namespace

const GgufValue& GgufFile::Require(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (!v) Fail("{}: missing key {}", path_, key);
  return *v;
}

int64_t GgufFile::GetInt(std::string_view key) const {
  return Checked(path_, key, Require(key), [](const GgufValue& x) { return x.AsInt(); });
}
double GgufFile::GetFloat(std::string_view key) const {
  return Checked(path_, key, Require(key), [](const GgufValue& x) { return x.AsFloat(); });
}
bool GgufFile::GetBool(std::string_view key) const {
  return Checked(path_, key, Require(key), [](const GgufValue& x) { return x.AsBool(); });
}
const std::string& GgufFile::GetString(std::string_view key) const {
  return Checked(path_, key, Require(key), [](const GgufValue& x) -> const std::string& { return x.AsString(); });
}
const std::vector<std::string>& GgufFile::GetStrings(std::string_view key) const {
  return Checked(path_, key, Require(key),
                 [](const GgufValue& x) -> const std::vector<std::string>& { return x.AsStrings(); });
}

std::optional<int64_t> GgufFile::FindInt(std::string_view key) const {
  if (!Has(key)) return std::nullopt;
  return GetInt(key);
}
std::optional<double> GgufFile::FindFloat(std::string_view key) const {
  if (!Has(key)) return std::nullopt;
  return GetFloat(key);
}
std::optional<bool> GgufFile::FindBool(std::string_view key) const {
  if (!Has(key)) return std::nullopt;
  return GetBool(key);
}
std::optional<std::string> GgufFile::FindString(std::string_view key) const {
  if (!Has(key)) return std::nullopt;
  return GetString(key);
}
const std::vector<std::string>* GgufFile::FindStrings(std::string_view key) const {
  if (!Has(key)) return nullptr;
  return &GetStrings(key);
}
std::optional<std::vector<int64_t>> GgufFile::FindInts(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (!v) return std::nullopt;
  return Checked(path_, key, *v, [](const GgufValue& x) { return x.AsInts(); });
}
std::optional<std::vector<float>> GgufFile::FindFloats(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (!v) return std::nullopt;
  return Checked(path_, key, *v, [](const GgufValue& x) { return x.AsFloats(); });
}

// ---- writing -------------------------------------------------------------------------------

GgufWriter::GgufWriter(uint32_t alignment) : alignment_(alignment) {
  SMELT_ASSERT(alignment > 0 && (alignment & (alignment - 1)) == 0);
  if (alignment != kGgufDefaultAlignment) Set("general.alignment", GgufValue::U32(alignment));
}

bool GgufWriter::Has(std::string_view key) const {
  for (const auto& kv : kvs_)
    if (kv.key == key) return true;
  return false;
}

void GgufWriter::Set(std::string key, GgufValue value) {
  if (key.empty() || !IsValidUtf8(key)) Fail("GGUF key \"{}\" is empty or not valid UTF-8", key);
  if (key == "general.alignment") {  // the key decides the layout, so it must be honoured
    const uint64_t a = value.AsUint();
    if (value.type() != GgufType::kU32 || a == 0 || (a & (a - 1)) != 0 || a > (1u << 30))
      Fail("general.alignment must be a u32 power of two up to 2^30, not {} {}", value.TypeDescription(), a);
    alignment_ = (uint32_t)a;
    for (auto& kv : kvs_) {
      if (kv.key == key) {  // set by the constructor
        kv.value = std::move(value);
        return;
      }
    }
  } else if (Has(key)) {
    Fail("duplicate GGUF key {}", key);
  }
  kvs_.push_back({std::move(key), std::move(value)});
}

void GgufWriter::AddTensor(const Tensor& t) {
  std::optional<size_t> nbytes = TensorBytes(t.type, t.ne);
  if (!nbytes || *nbytes != t.nbytes || !t.data)
    Fail("tensor {}: {} bytes of data do not match its type {} and shape {}", t.name, t.nbytes, DTypeName(t.type),
         ShapeString(t));
  Tensor keep = t;  // holds the owner until written
  AddTensor(t.name, t.type, t.n_dims, t.ne, [keep](const Emit& emit) { emit(keep.data, keep.nbytes); });
}

void GgufWriter::AddTensor(std::string name, DType type, int n_dims, std::array<int64_t, 4> ne, Producer produce) {
  if (name.empty() || !IsValidUtf8(name)) Fail("tensor name \"{}\" is empty or not valid UTF-8", name);
  for (const auto& t : tensors_)
    if (t.name == name) Fail("duplicate tensor {}", name);
  if (n_dims < 1 || n_dims > 4) Fail("tensor {}: n_dims {} is outside 1..4", name, n_dims);
  for (int d = 0; d < 4; ++d)
    if (ne[d] <= 0 || (d >= n_dims && ne[d] != 1)) Fail("tensor {}: invalid dimension {} = {}", name, d, ne[d]);
  const TypeTraits& tr = Traits(type);
  if (ne[0] % tr.block_size != 0)
    Fail("tensor {}: row length {} is not a multiple of the block size {} of {}", name, ne[0], tr.block_size, tr.name);
  std::optional<size_t> nbytes = TensorBytes(type, ne);
  if (!nbytes) Fail("tensor {}: size overflows", name);
  tensors_.push_back({std::move(name), type, n_dims, ne, *nbytes, std::move(produce)});
}

namespace {

// Buffers small writes (a vocabulary is hundreds of thousands of short strings).
class BufferedOut {
 public:
  explicit BufferedOut(const std::function<void(const void*, size_t)>& sink) : sink_(sink) { buf_.reserve(kCap); }
  ~BufferedOut() = default;
  void Write(const void* p, size_t n) {
    if (buf_.size() + n > kCap) Flush();
    if (n >= kCap) {
      sink_(p, n);
    } else {
      const uint8_t* b = static_cast<const uint8_t*>(p);
      buf_.insert(buf_.end(), b, b + n);
    }
    offset_ += n;
  }
  template <class T>
  void Put(T v) {
    Write(&v, sizeof(T));
  }
  void PutString(const std::string& s) {
    Put<uint64_t>(s.size());
    Write(s.data(), s.size());
  }
  void Zeros(size_t n) {
    static constexpr uint8_t kZeros[64] = {};
    while (n > 0) {
      size_t k = std::min(n, sizeof(kZeros));
      Write(kZeros, k);
      n -= k;
    }
  }
  void Flush() {
    if (!buf_.empty()) sink_(buf_.data(), buf_.size());
    buf_.clear();
  }
  uint64_t offset() const { return offset_; }

 private:
  static constexpr size_t kCap = 1 << 20;
  const std::function<void(const void*, size_t)>& sink_;
  std::vector<uint8_t> buf_;
  uint64_t offset_ = 0;
};

void PutValue(BufferedOut& out, const GgufValue& v) {
  switch (v.type()) {
    case GgufType::kString:
      out.PutString(v.AsString());
      return;
    case GgufType::kArray:
      out.Put<uint32_t>((uint32_t)v.elem_type());
      out.Put<uint64_t>(v.size());
      if (v.elem_type() == GgufType::kString) {
        for (const auto& s : v.AsStrings()) out.PutString(s);
      } else if (v.elem_type() == GgufType::kArray) {
        for (const auto& a : v.AsArrays()) PutValue(out, a);
      } else {
        out.Write(v.raw().data(), v.raw().size());
      }
      return;
    default: {
      const uint64_t bits = v.scalar_bits();
      out.Write(&bits, ScalarSize(v.type()));  // little-endian host: the low bytes
    }
  }
}

}  // namespace

void GgufWriter::Serialize(const std::function<void(const void*, size_t)>& sink, const std::string& what) const {
  BufferedOut out(sink);
  out.Put<uint32_t>(kGgufMagic);
  out.Put<uint32_t>(3);
  out.Put<uint64_t>(tensors_.size());
  out.Put<uint64_t>(kvs_.size());
  for (const auto& kv : kvs_) {
    out.PutString(kv.key);
    out.Put<uint32_t>((uint32_t)kv.value.type());
    PutValue(out, kv.value);
  }
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    out.PutString(t.name);
    out.Put<uint32_t>((uint32_t)t.n_dims);
    for (int d = 0; d < t.n_dims; ++d) out.Put<uint64_t>((uint64_t)t.ne[d]);
    out.Put<uint32_t>((uint32_t)t.type);
    out.Put<uint64_t>(offset);
    offset = AlignUp(offset + t.nbytes, alignment_);
  }
  if (!tensors_.empty()) out.Zeros(AlignUp(out.offset(), alignment_) - out.offset());
  for (const auto& t : tensors_) {
    const uint64_t start = out.offset();
    t.produce([&](const void* p, size_t n) {
      if (out.offset() - start + n > t.nbytes) Fail("{}: tensor {}: producer wrote more than {} bytes", what, t.name, t.nbytes);
      out.Write(p, n);
    });
    if (out.offset() - start != t.nbytes)
      Fail("{}: tensor {}: producer wrote {} bytes, expected {}", what, t.name, out.offset() - start, t.nbytes);
    out.Zeros(AlignUp(out.offset(), alignment_) - out.offset());
  }
  out.Flush();
}

void GgufWriter::WriteFile(const std::string& path) const {
  AtomicFileWriter w(path);
  Serialize([&](const void* p, size_t n) { w.Write(p, n); }, path);
  w.Commit();
}

std::vector<uint8_t> GgufWriter::WriteToMemory() const {
  std::vector<uint8_t> bytes;
  Serialize(
      [&](const void* p, size_t n) {
        const uint8_t* b = static_cast<const uint8_t*>(p);
        bytes.insert(bytes.end(), b, b + n);
      },
      "(memory)");
  return bytes;
}

}  // namespace smelt
