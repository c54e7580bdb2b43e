// llama2.c tokenizer files: tok512.bin must give the vocabulary stories260K.gguf carries (the
// same model converted by llama.cpp) and tokenize exactly like it; malformed files fail clearly.
#include "io/llama2c_vocab.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <random>
#include <span>
#include <sstream>

#include "core/mapped_file.h"
#include "io/gguf_model.h"
#include "io/io_test_util.h"
#include "io/tokenizer.h"
#include "shared_assets.h"

namespace smelt {
namespace {

using testing_util::ScratchDir;


TEST(Llama2cVocab, Tok512IsTheVocabularyOfStories260KGguf) {
  const Vocab a = LoadLlama2cVocab(assets::kStoriesDir + "/tok512.bin", 512);
  const Vocab b = LoadGgufVocab(assets::kStoriesDir + "/stories260K.gguf");
  ASSERT_EQ(a.size(), 512);
  EXPECT_EQ(a.model, b.model);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.scores, b.scores);
  EXPECT_EQ(a.types, b.types);
  EXPECT_EQ(a.bos, b.bos);
  EXPECT_EQ(a.eos, b.eos);
  EXPECT_EQ(a.unk, b.unk);
  EXPECT_EQ(a.add_bos, b.add_bos);
  EXPECT_EQ(a.add_eos, b.add_eos);
  EXPECT_EQ(a.add_space_prefix, b.add_space_prefix);
  // The same file parsed from memory.
  const std::string bytes = ReadFileToString(assets::kStoriesDir + "/tok512.bin");
  const Vocab m = ParseLlama2cVocab(std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), 512, "tok512");
  EXPECT_EQ(m.tokens, a.tokens);
  EXPECT_EQ(m.scores, a.scores);
  EXPECT_EQ(m.types, a.types);
}

TEST(Llama2cVocab, TokenizesLikeTheGgufVocabulary) {
  const Tokenizer a(LoadLlama2cVocab(assets::kStoriesDir + "/tok512.bin", 512));
  const Tokenizer b(LoadGgufVocab(assets::kStoriesDir + "/stories260K.gguf"));
  std::vector<std::string> texts;
  std::ifstream in(std::string(SMELT_SHARED_DIR) + "/assets/tinystories_valid_sample/tinystories_val_dev.txt");
  for (std::string line; std::getline(in, line) && texts.size() < 300;) texts.push_back(line);
  std::mt19937 rng(3);
  const std::vector<std::string> alphabet = {"a", "e", "t", " ", "  ", "\n", "\t", ".", ",", "!", "Lily", "\xC3\xA9",
                                             "\xE4\xB8\xAD", "\xF0\x9F\xA6\x99", "<s>", "</s>", "0", "9", "'"};
  for (int i = 0; i < 300; ++i) {
    std::string t;
    for (int k = 0, n = static_cast<int>(rng() % 25); k < n; ++k) t += alphabet[rng() % alphabet.size()];
    texts.push_back(t);
  }
  for (const std::string& t : texts) {
    for (bool special : {false, true}) {
      ASSERT_EQ(a.Encode(t, special, special), b.Encode(t, special, special)) << "'" << t << "'";
    }
  }
}

// Writes a llama2.c tokenizer file: max_len, then (score, len, bytes) per token.
struct TokFile {
  std::string bytes;
  void I32(int32_t v) { bytes.append(reinterpret_cast<const char*>(&v), 4); }
  void F32(float v) { bytes.append(reinterpret_cast<const char*>(&v), 4); }
  void Token(float score, const std::string& s) {
    F32(score);
    I32(static_cast<int32_t>(s.size()));
    bytes += s;
  }
};

TEST(Llama2cVocab, SpellsPiecesTheLlamaCppWay) {
  ScratchDir dir("l2c_vocab");
  TokFile f;
  f.I32(6);
  f.Token(0, "<unk>");
  f.Token(0, "\n<s>\n");
  f.Token(0, "\n</s>\n");
  f.Token(0, "<0x0A>");
  f.Token(-1.5f, " the");
  f.Token(-2, "a b");
  std::ofstream(dir.Path("tok.bin"), std::ios::binary) << f.bytes;
  const Vocab v = LoadLlama2cVocab(dir.Path("tok.bin"), 6);
  EXPECT_EQ(v.tokens, (std::vector<std::string>{"<unk>", "<s>", "</s>", "<0x0A>", "\xE2\x96\x81the", "a\xE2\x96\x81" "b"}));
  EXPECT_EQ(v.types, (std::vector<TokenType>{TokenType::kUnknown, TokenType::kControl, TokenType::kControl,
                                             TokenType::kByte, TokenType::kNormal, TokenType::kNormal}));
  EXPECT_EQ(v.scores[4], -1.5f);
  EXPECT_EQ(v.bos, 1);
  EXPECT_EQ(v.eos, 2);
  EXPECT_EQ(v.unk, 0);
  EXPECT_TRUE(v.add_bos);
}

TEST(Llama2cVocab, MalformedFilesFailWithTheFileName) {
  ScratchDir dir("l2c_bad");
  auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(dir.Path(name), std::ios::binary) << bytes;
    return dir.Path(name);
  };
  TokFile good;
  good.I32(3);
  for (const char* t : {"<unk>", "ab", "cd"}) good.Token(0, t);
  auto expect_error = [](const std::string& path, int n, const char* keyword) {
    try {
      LoadLlama2cVocab(path, n);
      ADD_FAILURE() << "no error for " << path;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(path), std::string::npos) << msg;
      EXPECT_NE(msg.find(keyword), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  };
  const std::string ok = write("ok.bin", good.bytes);
  EXPECT_EQ(LoadLlama2cVocab(ok, 3).size(), 3);
  expect_error(ok, 4, "expected vocab_size 4");   // fewer tokens than asked for
  expect_error(ok, 2, "vocab_size does not match");  // more
  expect_error(ok, 0, "vocab_size");
  expect_error(ok, 1 << 30, "cannot hold vocab_size 1073741824");  // refused before anything is sized by it
  expect_error(write("trunc.bin", good.bytes.substr(0, good.bytes.size() - 1)), 3, "past the end");
  expect_error(write("trunc2.bin", good.bytes.substr(0, good.bytes.size() - 4)), 3, "truncated");
  expect_error(write("empty.bin", ""), 3, "not a llama2.c tokenizer");
  TokFile neg;
  neg.I32(3);
  neg.F32(0);
  neg.I32(-5);
  expect_error(write("neg.bin", neg.bytes), 1, "negative length");
  TokFile huge;
  huge.I32(3);
  huge.F32(0);
  huge.I32(0x7fffffff);
  huge.bytes += "abc";
  expect_error(write("huge.bin", huge.bytes), 1, "past the end");
  expect_error(dir.Path("missing.bin"), 3, "missing.bin");
}

}  // namespace
}  // namespace smelt
