#pragma once
// Read-only memory map of a whole file (zero-copy loading). Shared ownership so tensors that
// point into the mapping keep it alive.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace smelt {

class MappedFile {
 public:
  // Throws Error("PATH: cannot open: ...") on failure. An empty file maps to size 0.
  static std::shared_ptr<MappedFile> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Gives back the memory of the whole pages inside [p, p + n) of a read-only file mapping
// (MADV_DONTNEED): they leave the process's resident set and are read from the file again if
// touched. Only for data inside a file mapping (Tensor::InFileMapping); anything else would lose
// its contents. Best effort:
// failures are ignored.
void DropPages(const void* p, size_t n);

// Reads a whole file into a string (small text files: configs, JSON). Throws Error.
std::string ReadFileToString(const std::string& path);

// Streams a file to PATH.tmp.<pid>; Commit() renames it onto PATH. If Commit() is never
// reached (an exception, a crash), the temporary is removed and PATH is untouched.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::string path);  // throws Error
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;
  void Write(const void* bytes, size_t n);  // throws Error
  void WriteZeros(size_t n);
  uint64_t offset() const { return offset_; }
  void Commit();  // throws Error

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  uint64_t offset_ = 0;
};

// Writes `bytes` to PATH atomically: PATH.tmp.<pid> then rename. Nothing half-written remains
// on failure. Throws Error.
void WriteFileAtomic(const std::string& path, const void* bytes, size_t n);

}  // namespace smelt
