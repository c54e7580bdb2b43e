#pragma once
// Helpers for the file-format tests: scratch folders, whole-file reads and writes, and a check
// that a call throws smelt::Error with a given source name and keyword in its one-line message.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"

namespace smelt::testing_util {

// SentencePiece's word-boundary mark U+2581 in UTF-8.
inline const std::string kSpace = "\xE2\x96\x81";

// A fresh, empty folder under the test temp dir, removed with everything in it at scope end.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& tag) {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::path(::testing::TempDir()) /
            ("smelt_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string Path(const std::string& name = "") const { return name.empty() ? path_.string() : (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline std::vector<uint8_t> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

inline void WriteAll(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), (std::streamsize)bytes.size());
}

inline void WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// Same type, shape and bytes.
inline void ExpectSameTensor(const Tensor& a, const Tensor& b, const std::string& what) {
  EXPECT_EQ(a.type, b.type) << what;
  EXPECT_EQ(a.n_dims, b.n_dims) << what;
  EXPECT_EQ(a.ne, b.ne) << what;
  ASSERT_EQ(a.nbytes, b.nbytes) << what;
  EXPECT_EQ(std::memcmp(a.data, b.data, a.nbytes), 0) << what << ": bytes differ";
}

// Runs f; expects smelt::Error whose message starts with `source` and contains `keyword`, and
// is one line.
template <class F>
void ExpectError(F&& f, const std::string& source, const std::string& keyword) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing \"" << keyword << "\"";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(source, 0), 0u) << msg;
    EXPECT_NE(msg.find(keyword), std::string::npos) << "message: " << msg << "\nexpected: " << keyword;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

}  // namespace smelt::testing_util
