#include "io/load.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "core/error.h"
#include "io/gguf_model.h"
#include "io/hf_model.h"
#include "io/llama2c.h"

namespace smelt {
namespace fs = std::filesystem;

FileKind DetectFileKind(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    return fs::exists(fs::path(path) / "config.json", ec) ? FileKind::kHuggingFace : FileKind::kUnknown;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return FileKind::kUnknown;
  char magic[4] = {};
  in.read(magic, 4);
  if (in.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0) return FileKind::kGguf;
  if (in.gcount() == 4 && std::memcmp(magic, "24ka", 4) == 0) return FileKind::kLlama2c;  // "ak42" LE
  // llama2.c legacy: 7 int32 header with a positive dim, plausible sizes.
  int32_t hdr[7] = {};
  in.seekg(0);
  in.read(reinterpret_cast<char*>(hdr), sizeof(hdr));
  if (in.gcount() == sizeof(hdr) && hdr[0] > 0 && hdr[0] < (1 << 16) && hdr[1] > 0 && hdr[2] > 0 && hdr[2] < 1024 &&
      hdr[3] > 0 && hdr[4] > 0 && hdr[5] != 0 && hdr[6] > 0)
    return FileKind::kLlama2c;
  return FileKind::kUnknown;
}

std::string_view FileKindName(FileKind k) {
  switch (k) {
    case FileKind::kGguf: return "gguf";
    case FileKind::kHuggingFace: return "huggingface";
    case FileKind::kLlama2c: return "llama2c";
    case FileKind::kUnknown: break;
  }
  return "unknown";
}

namespace {

std::string FindLlama2cTokenizer(const std::string& checkpoint) {
  fs::path dir = fs::path(checkpoint).parent_path();
  if (dir.empty()) dir = ".";
  std::vector<fs::path> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (e.path().extension() == ".bin" && (name == "tokenizer.bin" || name.rfind("tok", 0) == 0))
      found.push_back(e.path());
  }
  if (found.size() != 1)
    Fail("{}: llama2.c checkpoint needs its tokenizer: pass --tokenizer FILE ({} candidate tokenizer .bin files beside it)",
         checkpoint, found.size());
  return found[0].string();
}

}  // namespace

Model LoadModel(const std::string& path, const LoadOptions& opt) {
  std::error_code ec;
  if (!fs::exists(path, ec)) Fail("{}: no such file or folder", path);
  switch (DetectFileKind(path)) {
    case FileKind::kGguf: return LoadGgufModel(path);
    case FileKind::kHuggingFace: return LoadHfModel(path);
    case FileKind::kLlama2c:
      return LoadLlama2cModel(path, opt.tokenizer.empty() ? FindLlama2cTokenizer(path) : opt.tokenizer);
    case FileKind::kUnknown: break;
  }
  if (fs::is_directory(path, ec)) Fail("{}: folder has no config.json (not a Hugging Face model)", path);
  Fail("{}: unrecognised model file (not GGUF, not a llama2.c checkpoint)", path);
}

}  // namespace smelt
