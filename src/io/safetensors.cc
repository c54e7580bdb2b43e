#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "formats/types.h"
#include "io/json_util.h"

namespace smelt {
namespace {

using json = nlohmann::json;

// Bytes per element of the dtypes smelt reads, 0 for others.
size_t ElementSize(DType t) {
  switch (t) {
    case DType::kF32: return 4;
    case DType::kF16:
    case DType::kBF16: return 2;
    default: return 0;
  }
}

// safetensors dtype spelling -> DType. Known-but-unsupported dtypes are refused by name.
DType ParseStDType(const std::string& s, const std::string& source, const std::string& tensor) {
  if (s == "F32") return DType::kF32;
  if (s == "F16") return DType::kF16;
  if (s == "BF16") return DType::kBF16;
  static constexpr const char* kKnown[] = {"BOOL", "U8",  "I8",  "I16",     "U16",     "I32",     "U32",
                                           "I64",  "U64", "F64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4",
                                           "F6_E2M3", "F6_E3M2", "C64"};
  for (const char* k : kKnown) {
    if (s == k) Fail("{}: tensor {}: dtype {} not supported (smelt reads F32, F16, BF16)", source, tensor, s);
  }
  Fail("{}: tensor {}: unknown dtype \"{}\"", source, tensor, Printable(s));
}

uint64_t ReadU64Le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::string ShapeText(const json& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += fmt::format("{}{}", i ? ", " : "", shape[i].get<uint64_t>());
  return s + "]";
}

struct Entry {
  Tensor t;
  uint64_t begin = 0, end = 0;
};

// Validates one header entry and returns the tensor with its byte range (data not yet set).
Entry ParseEntry(const std::string& name, const json& v, uint64_t buffer_size, const std::string& source) {
  const std::string pname = Printable(name);
  if (!v.is_object()) Fail("{}: tensor {}: header entry is not an object", source, pname);
  auto dt = v.find("dtype");
  auto shape = v.find("shape");
  auto offs = v.find("data_offsets");
  if (dt == v.end() || !dt->is_string()) Fail("{}: tensor {}: missing or non-string dtype", source, pname);
  if (shape == v.end() || !shape->is_array()) Fail("{}: tensor {}: missing or non-array shape", source, pname);
  if (offs == v.end() || !offs->is_array() || offs->size() != 2 || !(*offs)[0].is_number_unsigned() ||
      !(*offs)[1].is_number_unsigned())
    Fail("{}: tensor {}: data_offsets must be two non-negative integers", source, pname);
  Entry e;
  e.t.name = name;
  e.t.type = ParseStDType(dt->get<std::string>(), source, pname);
  if (shape->size() > 4) Fail("{}: tensor {}: rank {} not supported (at most 4)", source, pname, shape->size());
  for (const auto& d : *shape) {
    if (!d.is_number_unsigned()) Fail("{}: tensor {}: shape must hold non-negative integers", source, pname);
  }
  const int rank = (int)shape->size();
  e.t.n_dims = rank;
  uint64_t count = 1;
  for (int i = 0; i < rank; ++i) {
    uint64_t d = (*shape)[i].get<uint64_t>();
    if (d > (uint64_t)INT64_MAX || __builtin_mul_overflow(count, d, &count) || count > (uint64_t)INT64_MAX)
      Fail("{}: tensor {}: shape {} overflows", source, pname, ShapeText(*shape));
    e.t.ne[rank - 1 - i] = (int64_t)d;  // row-major shape -> ggml ne order
  }
  uint64_t need = 0;
  if (__builtin_mul_overflow(count, (uint64_t)ElementSize(e.t.type), &need))
    Fail("{}: tensor {}: shape {} overflows", source, pname, ShapeText(*shape));
  e.begin = (*offs)[0].get<uint64_t>();
  e.end = (*offs)[1].get<uint64_t>();
  if (e.begin > e.end) Fail("{}: tensor {}: data_offsets [{}, {}] are reversed", source, pname, e.begin, e.end);
  if (e.end > buffer_size)
    Fail("{}: tensor {}: data_offsets [{}, {}] run past the end of the data ({} bytes)", source, pname, e.begin,
         e.end, buffer_size);
  if (e.end - e.begin != need)
    Fail("{}: tensor {}: data_offsets [{}, {}] hold {} bytes, shape {} {} needs {}", source, pname, e.begin, e.end,
         e.end - e.begin, ShapeText(*shape), dt->get<std::string>(), need);
  e.t.nbytes = (size_t)need;
  return e;
}

}  // namespace

const Tensor* SafetensorsFile::Find(const std::string& name) const {
  for (const Tensor& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

const char* SafetensorsDTypeName(DType t) {
  switch (t) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    default: break;
  }
  SMELT_ASSERT(!"safetensors stores F32, F16, BF16 only");
  return "";
}

SafetensorsFile ParseSafetensors(std::span<const uint8_t> bytes, const std::string& source,
                                 std::shared_ptr<const void> owner) {
  if (bytes.size() < 8) Fail("{}: {} bytes is too small for a safetensors file", source, bytes.size());
  const uint64_t n = ReadU64Le(bytes.data());
  if (n > kSafetensorsMaxHeader)
    Fail("{}: header length {} is absurd (limit {} bytes)", source, n, kSafetensorsMaxHeader);
  if (n > bytes.size() - 8)
    Fail("{}: header length {} runs past the end of the file ({} bytes)", source, n, bytes.size());
  std::string_view text(reinterpret_cast<const char*>(bytes.data()) + 8, (size_t)n);
  if (text.empty() || text[0] != '{') Fail("{}: header does not start with '{{' (not a safetensors file)", source);
  json header = ParseJsonStrict(text, source);
  if (!header.is_object()) Fail("{}: header is not a JSON object", source);

  const uint8_t* buffer = bytes.data() + 8 + n;
  const uint64_t buffer_size = bytes.size() - 8 - n;
  SafetensorsFile f;
  f.path = source;
  std::vector<Entry> entries;
  for (const auto& [key, v] : header.items()) {
    if (key == "__metadata__") {
      if (!v.is_object()) Fail("{}: __metadata__ is not an object", source);
      for (const auto& [mk, mv] : v.items()) {
        if (!mv.is_string()) Fail("{}: __metadata__ value of \"{}\" is not a string", source, Printable(mk));
        f.metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    entries.push_back(ParseEntry(key, v, buffer_size, source));
  }

  // The tensors must tile the byte buffer exactly: no overlaps, no holes (as the format's
  // reference reader requires; it rules out polyglot files).
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t at = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    if (e.begin < at)
      Fail("{}: tensor {}: data_offsets [{}, {}] overlap tensor {}", source, Printable(e.t.name), e.begin, e.end,
           Printable(entries[i - 1].t.name));
    if (e.begin > at)
      Fail("{}: bytes [{}, {}) of the data belong to no tensor (before {})", source, at, e.begin,
           Printable(e.t.name));
    at = e.end;
  }
  if (at != buffer_size) Fail("{}: bytes [{}, {}) of the data belong to no tensor", source, at, buffer_size);

  for (Entry& e : entries) {
    const uint8_t* p = buffer + e.begin;
    const size_t align = ElementSize(e.t.type);
    if (reinterpret_cast<uintptr_t>(p) % align == 0) {
      e.t.data = p;
      e.t.owner = owner;
    } else {  // misaligned (odd header length or offsets): copy so the data can be read as T*
      auto copy = std::make_shared<std::vector<uint8_t>>(p, p + e.t.nbytes);
      e.t.data = copy->data();
      e.t.owner = std::shared_ptr<const void>(copy, copy->data());
    }
    f.tensors.push_back(std::move(e.t));
  }
  return f;
}

SafetensorsFile ReadSafetensors(const std::string& path) {
  auto mf = MappedFile::Open(path);
  return ParseSafetensors(std::span<const uint8_t>(mf->data(), mf->size()), path, mf);
}

SafetensorsFile ReadSafetensorsIndex(const std::string& index_path) {
  namespace fs = std::filesystem;
  json index = ParseJsonStrict(ReadFileToString(index_path), index_path);
  if (!index.is_object()) Fail("{}: not a JSON object", index_path);
  auto wm = index.find("weight_map");
  if (wm == index.end() || !wm->is_object()) Fail("{}: missing or non-object weight_map", index_path);
  std::map<std::string, std::string> shard_of;  // tensor -> shard file
  std::set<std::string> shards;
  for (const auto& [name, file] : wm->items()) {
    if (!file.is_string()) Fail("{}: weight_map entry {} is not a file name", index_path, Printable(name));
    const std::string fn = file.get<std::string>();
    if (fn.empty() || fn == "." || fn == ".." || fn.find('/') != std::string::npos || fn.find('\0') != std::string::npos)
      Fail("{}: weight_map entry {}: \"{}\" is not a plain file name", index_path, Printable(name), Printable(fn));
    shard_of[name] = fn;
    shards.insert(fn);
  }
  const fs::path dir = fs::path(index_path).parent_path();
  SafetensorsFile out;
  out.path = index_path;
  std::map<std::string, std::string> found_in;  // tensor -> shard it was found in
  for (const std::string& fn : shards) {
    const std::string shard_path = (dir / fn).string();
    SafetensorsFile shard = ReadSafetensors(shard_path);
    for (Tensor& t : shard.tensors) {
      auto it = shard_of.find(t.name);
      if (it == shard_of.end())
        Fail("{}: tensor {} is not listed in the weight map of {}", shard_path, Printable(t.name), index_path);
      if (auto prev = found_in.find(t.name); prev != found_in.end())
        Fail("{}: tensor {} appears in both {} and {}", index_path, Printable(t.name), prev->second, fn);
      if (it->second != fn)
        Fail("{}: tensor {} is in {} but the index maps it to {}", index_path, Printable(t.name), fn, it->second);
      found_in[t.name] = fn;
      out.tensors.push_back(std::move(t));
    }
    for (auto& [k, v] : shard.metadata) out.metadata[k] = v;
  }
  for (const auto& [name, fn] : shard_of) {
    if (!found_in.count(name)) Fail("{}: tensor {} is missing from shard {}", index_path, Printable(name), fn);
  }
  return out;
}

// ---- writing ----------------------------------------------------------------------------------

size_t SafetensorsTensorInfo::nbytes() const {
  size_t n = ElementSize(type);
  for (int i = 0; i < n_dims; ++i) n *= (size_t)ne[i];
  return n;
}

SafetensorsWriter::SafetensorsWriter(std::string path, std::vector<SafetensorsTensorInfo> infos,
                                     const std::map<std::string, std::string>& metadata)
    : path_(std::move(path)), infos_(std::move(infos)), out_(path_) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    auto& m = header["__metadata__"];
    for (const auto& [k, v] : metadata) m[k] = v;
  }
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const SafetensorsTensorInfo& info : infos_) {
    if (ElementSize(info.type) == 0)
      Fail("{}: tensor {}: type {} cannot be stored in safetensors (F32, F16, BF16 only)", path_, info.name,
           DTypeName(info.type));
    if (info.name == "__metadata__" || !names.insert(info.name).second)
      Fail("{}: tensor name {} is used twice or reserved", path_, info.name);
    SMELT_ASSERT(info.n_dims >= 0 && info.n_dims <= 4);
    nlohmann::ordered_json shape = nlohmann::ordered_json::array();
    for (int i = info.n_dims - 1; i >= 0; --i) shape.push_back(info.ne[i]);  // ne order -> row-major
    const uint64_t nb = info.nbytes();
    header[info.name] = {{"dtype", SafetensorsDTypeName(info.type)},
                         {"shape", shape},
                         {"data_offsets", {offset, offset + nb}}};
    offset += nb;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // pad so the data starts 8-byte aligned
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = (uint8_t)((uint64_t)text.size() >> (8 * i));
  out_.Write(len, 8);
  out_.Write(text.data(), text.size());
  header_bytes_ = 8 + text.size();
  data_bytes_ = offset;
}

void SafetensorsWriter::Write(const void* data, size_t nbytes) {
  SMELT_ASSERT(next_ < infos_.size());
  SMELT_ASSERT(nbytes == infos_[next_].nbytes());
  out_.Write(data, nbytes);
  ++next_;
}

void SafetensorsWriter::Commit() {
  SMELT_ASSERT(next_ == infos_.size());
  out_.Commit();
}

void WriteSafetensors(const std::string& path, std::span<const Tensor> tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<SafetensorsTensorInfo> infos;
  for (const Tensor& t : tensors) infos.push_back({t.name, t.type, t.n_dims, t.ne});
  SafetensorsWriter w(path, infos, metadata);
  for (const Tensor& t : tensors) {
    if (ElementSize(t.type) != 0 && t.nbytes != SafetensorsTensorInfo{t.name, t.type, t.n_dims, t.ne}.nbytes())
      Fail("{}: tensor {}: {} bytes do not match its shape {}", path, t.name, t.nbytes, ShapeString(t));
    w.Write(t.data, t.nbytes);
  }
  w.Commit();
}

}  // namespace smelt
