// Pre-tokenizers: splits worked out by hand from the regex definitions, the quirks llama.cpp has
// (letter subcategories read as \p{L}, non-ASCII white space, lenient UTF-8), and the mapping
// between tokenizer.json regex lists and llama.cpp names.
#include "io/pretokenize.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "io/utf8.h"

namespace smelt {
namespace {

// Words as plain text (the byte-level spelling undone), for readable expectations.
std::vector<std::string> Words(const std::string& pre, const std::string& text) {
  std::vector<std::string> out;
  for (const std::string& w : PreTokenizer(pre).Split(text)) {
    std::string raw;
    for (uint32_t cp : DecodeUtf8Lenient(w)) {
      const int b = UnicodeToByte(cp);
      EXPECT_GE(b, 0) << "not byte-level spelled: " << w;
      raw.push_back(static_cast<char>(b));
    }
    out.push_back(raw);
  }
  return out;
}

using V = std::vector<std::string>;

TEST(PreTokenizer, Gpt2SplitsByTheGpt2Regex) {
  // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  EXPECT_EQ(Words("gpt-2", "I'm  here, DON'T 42!"), (V{"I", "'m", " ", " here", ",", " DON", "'", "T", " 42", "!"}));
  EXPECT_EQ(Words("gpt-2", "a\n\nb  "), (V{"a", "\n", "\n", "b", "  "}));
  EXPECT_EQ(Words("gpt-2", ""), V{});
}

TEST(PreTokenizer, Llama3GroupsDigitsByThreeAndFoldsContractions) {
  // (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  EXPECT_EQ(Words("llama-bpe", "Hello world1234567 DON'T"), (V{"Hello", " world", "123", "456", "7", " DON", "'T"}));
  EXPECT_EQ(Words("llama-bpe", "x  \n\n y"), (V{"x", "  \n\n", " y"}));
  EXPECT_EQ(Words("llama-bpe", "$hello...\n"), (V{"$hello", "...\n"}));
}

TEST(PreTokenizer, Qwen2SplitsSingleDigits) {
  EXPECT_EQ(Words("qwen2", "ab 123"), (V{"ab", " ", "1", "2", "3"}));
}

TEST(PreTokenizer, MultiRegexPreTokenizersSplitPieceByPiece) {
  // starcoder: first every digit alone, then the GPT-2 regex inside each remaining piece.
  EXPECT_EQ(Words("starcoder", "ab12 cd"), (V{"ab", "1", "2", " cd"}));
  // default: punctuation runs, then GPT-2, then digit runs, then "[0-9][0-9][0-9]" cuts 12345.
  EXPECT_EQ(Words("default", "x=12345;"), (V{"x", "=", "123", "45", ";"}));
}

TEST(PreTokenizer, NonAsciiWhiteSpaceAndLetterSubcategories) {
  // U+3000 (ideographic space) is white space for \s; 'é' and 'Ж' are letters.
  EXPECT_EQ(Words("gpt-2", "a\xE3\x80\x80" "b"), (V{"a", "\xE3\x80\x80", "b"}));
  EXPECT_EQ(Words("gpt-2", "caf\xC3\xA9 \xD0\x96x"), (V{"caf\xC3\xA9", " \xD0\x96x"}));
  // tekken spells upper/lower case with lookaheads; a non-ASCII lower-case letter counts as
  // both, as in llama.cpp.
  EXPECT_EQ(Words("tekken", "HelloWorld"), (V{"Hello", "World"}));
}

TEST(PreTokenizer, InvalidUtf8BecomesReplacementCharacters) {
  // Each bad byte is U+FFFD (a symbol, so it joins the punctuation-like run), as in llama.cpp.
  EXPECT_EQ(Words("gpt-2", "a\xFF\xFE b"), (V{"a", "\xEF\xBF\xBD\xEF\xBF\xBD", " b"}));
}

TEST(PreTokenizer, UnknownNamesAreErrors) {
  EXPECT_THROW(PreTokenizer("not-a-pre-tokenizer"), Error);
  EXPECT_FALSE(IsKnownPreTokenizer("not-a-pre-tokenizer"));
  EXPECT_TRUE(IsKnownPreTokenizer("llama3"));
  EXPECT_EQ(PreTokenizer("llama3").name(), "llama-bpe");  // aliases resolve to one name
  EXPECT_TRUE(PreTokenizer("llama3").ignore_merges());
  EXPECT_FALSE(PreTokenizer("deepseek-llm").clean_spaces());
}

TEST(PreTokenizer, TokenizerJsonRegexListsMapBothWays) {
  const std::string sample = "Hello world1234567 DON'T x=12345; \xE4\xB8\xAD\xE6\x96\x87 caf\xC3\xA9\n\n  end  ";
  for (const char* pre : {"gpt-2", "llama-bpe", "dbrx", "qwen2", "qwen35", "starcoder", "deepseek-llm", "deepseek-coder",
                          "deepseek-v3", "tekken", "gpt-4o", "seed-coder", "bloom", "default", "falcon", "viking", "mpt",
                          "command-r", "stablelm2", "bailingmoe", "minicpm5", "laguna", "trillion"}) {
    const PreTokenizer want(pre);
    const std::string back = PreTokenizerFromHfRegexes(HfRegexesForPreTokenizer(pre), want.ignore_merges());
    ASSERT_FALSE(back.empty()) << pre;
    // The name read back splits text the same way (it may be another alias of the same list).
    EXPECT_EQ(Words(back, sample), Words(pre, sample)) << pre << " -> " << back;
    EXPECT_EQ(PreTokenizer(back).ignore_merges(), want.ignore_merges()) << pre << " -> " << back;
  }
  EXPECT_EQ(PreTokenizerFromHfRegexes(HfRegexesForPreTokenizer("mpt"), false), "gpt-2");
  EXPECT_EQ(PreTokenizerFromHfRegexes({"[a-z]+"}, false), "");
}

}  // namespace
}  // namespace smelt
