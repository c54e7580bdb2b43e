#pragma once
// safetensors: the Hugging Face tensor container. Layout:
//   u64 little-endian N | N bytes of JSON header | byte buffer
// header = {"NAME": {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}, ...,
//           "__metadata__": {"key": "value", ...}}
// Offsets are relative to the start of the byte buffer; shapes are row-major (the LAST dim is
// contiguous), so smelt reverses them into ggml ne order: shape [OC, C] <-> ne {C, OC}.
// smelt reads and writes F32, F16 and BF16; other dtypes are refused by name.
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "core/tensor.h"

namespace smelt {

// A parsed safetensors file (or a set of shards): zero-copy views into the mapping.
struct SafetensorsFile {
  std::string path;
  std::vector<Tensor> tensors;                // in byte-buffer order (shard by shard)
  std::map<std::string, std::string> metadata;  // "__metadata__" (merged over shards)

  const Tensor* Find(const std::string& name) const;
};

// Largest header smelt accepts (the format's own reference reader uses the same bound).
inline constexpr uint64_t kSafetensorsMaxHeader = 100u * 1000 * 1000;

// Parses a safetensors image held in memory. Tensors point into `bytes`, kept alive by `owner`
// (may be null when the caller keeps the bytes alive). Tensors whose data is not aligned to
// their element size are copied to the heap. `source` names the file in errors.
// Throws Error: "SOURCE: tensor NAME: data_offsets [0, 12] hold 12 bytes, shape [2, 2] F32 needs 16".
SafetensorsFile ParseSafetensors(std::span<const uint8_t> bytes, const std::string& source,
                                 std::shared_ptr<const void> owner);

// Memory-maps and parses one .safetensors file.
SafetensorsFile ReadSafetensors(const std::string& path);

// Reads a sharded checkpoint from its index (model.safetensors.index.json: {"weight_map":
// {tensor: shard file}}): loads every shard named there (plain file names beside the index),
// checks that each mapped tensor is in its shard, that no tensor appears twice, and that no
// shard holds tensors the index does not list.
SafetensorsFile ReadSafetensorsIndex(const std::string& index_path);

// The header facts of one tensor to write.
struct SafetensorsTensorInfo {
  std::string name;
  DType type = DType::kF32;  // F32, F16 or BF16
  int n_dims = 0;
  std::array<int64_t, 4> ne{1, 1, 1, 1};  // ggml order

  size_t nbytes() const;
};

// Streams a safetensors file: the header is written from the declared tensors, then each
// tensor's bytes in the same order, then Commit() renames the finished file into place.
// Nothing is left at `path` if Commit() is not reached.
class SafetensorsWriter {
 public:
  // Throws Error for an unsupported type or a duplicate name.
  SafetensorsWriter(std::string path, std::vector<SafetensorsTensorInfo> infos,
                    const std::map<std::string, std::string>& metadata = {});
  // Writes the next declared tensor's bytes; nbytes must equal its declared size.
  void Write(const void* data, size_t nbytes);
  void Commit();  // all tensors must have been written
  uint64_t total_bytes() const { return header_bytes_ + data_bytes_; }

 private:
  std::string path_;
  std::vector<SafetensorsTensorInfo> infos_;
  size_t next_ = 0;
  uint64_t header_bytes_ = 0, data_bytes_ = 0;
  AtomicFileWriter out_;
};

// Writes whole tensors (F32/F16/BF16) to `path` atomically.
void WriteSafetensors(const std::string& path, std::span<const Tensor> tensors,
                      const std::map<std::string, std::string>& metadata = {});

// The safetensors spelling of a dtype ("F32", "F16", "BF16"); asserts it is one of those.
const char* SafetensorsDTypeName(DType t);

}  // namespace smelt
