// Tokenizer: both merge algorithms against naive reference implementations written here from
// the definitions (random vocabularies and texts), special tokens, BOS/EOS, pieces, decoding,
// round trips on real text, speed, and llama.cpp itself through the peer.
#include "core/mapped_file.h"
#include "io/tokenizer.h"

#include <gtest/gtest.h>

#include <functional>
#include <optional>
#include <ctime>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "core/error.h"
#include "io/gguf_model.h"
#include "io/io_test_util.h"
#include "peer.h"
#include "shared_assets.h"

namespace smelt {
namespace {

using testing_util::ScratchDir;

using testing_util::kSpace;

// UTF-8 characters of s.
std::vector<std::string> Chars(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<uint8_t>(s[i]);
    size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

// Greedy pair merging, written plainly: merge the adjacent pair with the highest priority
// (leftmost among equals) until no adjacent pair has one.
std::vector<std::string> NaiveMerge(std::vector<std::string> sym,
                                    const std::function<std::optional<double>(const std::string&, const std::string&)>& priority) {
  while (true) {
    int best = -1;
    double best_priority = 0;
    for (size_t i = 0; i + 1 < sym.size(); ++i) {
      const std::optional<double> p = priority(sym[i], sym[i + 1]);
      if (p && (best < 0 || *p > best_priority)) {
        best = static_cast<int>(i);
        best_priority = *p;
      }
    }
    if (best < 0) return sym;
    sym[best] += sym[best + 1];
    sym.erase(sym.begin() + best + 1);
  }
}

// ---- SPM against a naive reference -------------------------------------------------------

// Definition: start from characters; repeatedly merge the adjacent pair whose concatenation is
// the token with the highest score (leftmost on ties); then unknown symbols become byte tokens.
std::vector<int32_t> NaiveSpm(const Vocab& v, const std::string& text) {
  if (text.empty()) return {};  // no text, no "▁" either
  std::map<std::string, int32_t> id;
  for (int32_t i = 0; i < v.size(); ++i) id[v.tokens[i]] = i;
  std::string escaped = kSpace;  // add_space_prefix
  for (char c : text) escaped += c == ' ' ? kSpace : std::string(1, c);
  const std::vector<std::string> sym = NaiveMerge(Chars(escaped), [&](const std::string& a, const std::string& b) {
    auto it = id.find(a + b);
    return it == id.end() ? std::nullopt : std::optional<double>(v.scores[it->second]);
  });
  std::vector<int32_t> out;
  for (const std::string& s : sym) {
    if (id.count(s)) {
      out.push_back(id[s]);
      continue;
    }
    for (unsigned char c : s) out.push_back(id.at(fmt::format("<0x{:02X}>", c)));
  }
  return out;
}

// A random SPM vocabulary: byte tokens, a few characters, and multi-character tokens (some
// with "▁" inside, some sharing scores) with random scores.
Vocab RandomSpmVocab(std::mt19937& rng) {
  Vocab v;
  v.model = "llama";
  v.pre = "default";
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.types = {TokenType::kUnknown, TokenType::kControl, TokenType::kControl};
  for (int b = 0; b < 256; ++b) {
    v.tokens.push_back(fmt::format("<0x{:02X}>", b));
    v.types.push_back(TokenType::kByte);
  }
  std::vector<std::string> pool = {"a", "b", "c", kSpace, "\xC3\xA9"};
  for (const std::string& c : pool) v.tokens.push_back(c);
  v.types.resize(v.tokens.size(), TokenType::kNormal);
  for (int k = 0; k < 60; ++k) {
    std::string t = pool[rng() % pool.size()] + pool[rng() % pool.size()];
    if (std::find(v.tokens.begin(), v.tokens.end(), t) != v.tokens.end()) continue;
    v.tokens.push_back(t);
    v.types.push_back(TokenType::kNormal);
    pool.push_back(t);
  }
  v.scores.resize(v.tokens.size());
  for (float& s : v.scores) s = -static_cast<float>(rng() % 20);  // many ties
  v.bos = 1;
  v.eos = 2;
  v.unk = 0;
  v.add_bos = true;
  return v;
}

TEST(TokenizerSpm, MatchesNaiveReferenceOnRandomVocabularies) {
  std::mt19937 rng(42);
  const std::vector<std::string> alphabet = {"a", "b", "c", " ", "\xC3\xA9", "x", "\xE4\xB8\xAD"};
  int checked = 0;
  for (int vocab_i = 0; vocab_i < 20; ++vocab_i) {
    const Vocab v = RandomSpmVocab(rng);
    const Tokenizer tok(v);
    for (int t = 0; t < 50; ++t) {
      std::string text;
      const int len = static_cast<int>(rng() % 30);
      for (int i = 0; i < len; ++i) text += alphabet[rng() % alphabet.size()];
      ASSERT_EQ(tok.Encode(text, false), NaiveSpm(v, text)) << "vocab " << vocab_i << " text '" << text << "'";
      ++checked;
    }
  }
  EXPECT_EQ(checked, 1000);
}

TEST(TokenizerSpm, UnknownCharacterWithoutByteTokensBecomesUnk) {
  Vocab v;
  v.model = "llama";
  v.tokens = {"<unk>", "<s>", "</s>", kSpace, "a", kSpace + "a"};
  v.types = {TokenType::kUnknown, TokenType::kControl, TokenType::kControl, TokenType::kNormal, TokenType::kNormal,
             TokenType::kNormal};
  v.scores = {0, 0, 0, 0, 0, -1};
  v.unk = 0;
  v.bos = 1;
  v.eos = 2;
  const Tokenizer tok(v);
  // "a\xE4\xB8\xAD" -> "▁a" then the three bytes of 中, each unknown.
  EXPECT_EQ(tok.Encode("a\xE4\xB8\xAD", false), (std::vector<int32_t>{5, 0, 0, 0}));
}

// ---- byte-level BPE against a naive reference --------------------------------------------

// GPT-2's bytes_to_unicode, from its definition.
std::string ByteLevelChar(int b) {
  auto printable = [](int x) { return (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255); };
  int cp = b;
  if (!printable(b)) {
    cp = 256;
    for (int x = 0; x < b; ++x) cp += !printable(x);
  }
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// Definition: characters; repeatedly merge the adjacent pair with the lowest merge rank
// (leftmost on ties).
std::vector<std::string> NaiveBpeWord(const std::string& word, const std::map<std::pair<std::string, std::string>, int>& rank) {
  return NaiveMerge(Chars(word), [&](const std::string& a, const std::string& b) {
    auto it = rank.find({a, b});
    return it == rank.end() ? std::nullopt : std::optional<double>(-it->second);  // lowest rank first
  });
}

TEST(TokenizerBpe, MatchesNaiveReferenceOnHandMadeVocabularies) {
  std::mt19937 rng(7);
  int checked = 0;
  for (int vocab_i = 0; vocab_i < 20; ++vocab_i) {
    Vocab v;
    v.model = "gpt2";
    v.pre = "gpt-2";
    for (int b = 0; b < 256; ++b) v.tokens.push_back(ByteLevelChar(b));
    std::vector<std::string> pool = {"a", "b", "c", "d", ByteLevelChar(' ')};
    std::map<std::pair<std::string, std::string>, int> rank;
    for (int k = 0; k < 40; ++k) {
      const std::string l = pool[rng() % pool.size()], r = pool[rng() % pool.size()];
      if (std::find(v.tokens.begin(), v.tokens.end(), l + r) != v.tokens.end()) continue;
      rank[{l, r}] = static_cast<int>(v.merges.size());
      v.merges.push_back(l + " " + r);
      v.tokens.push_back(l + r);
      pool.push_back(l + r);
    }
    v.types.assign(v.tokens.size(), TokenType::kNormal);
    v.add_space_prefix = false;
    const Tokenizer tok(v);
    std::map<std::string, int32_t> id;
    for (int32_t i = 0; i < v.size(); ++i) id[v.tokens[i]] = i;
    for (int t = 0; t < 50; ++t) {
      // Words of a-d separated by single spaces: GPT-2's pre-tokenizer keeps the space in front
      // of the following word.
      std::string text;
      std::vector<int32_t> expected;
      const int words = 1 + static_cast<int>(rng() % 6);
      for (int w = 0; w < words; ++w) {
        std::string word = w ? " " : "";
        for (int i = 0, n = 1 + static_cast<int>(rng() % 8); i < n; ++i) word += static_cast<char>('a' + rng() % 4);
        text += word;
        std::string spelled;
        for (char c : word) spelled += ByteLevelChar(static_cast<uint8_t>(c));
        for (const std::string& s : NaiveBpeWord(spelled, rank)) expected.push_back(id.at(s));
      }
      ASSERT_EQ(tok.Encode(text, false), expected) << "vocab " << vocab_i << " text '" << text << "'";
      EXPECT_EQ(tok.Decode(expected), text);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 1000);
}

// ---- special tokens, BOS/EOS, pieces -------------------------------------------------------

Vocab SmallSpmVocab() {
  Vocab v;
  v.model = "llama";
  v.pre = "default";
  // 0 <unk> 1 <s> 2 </s> 3 <tag> (user-defined) 4 ▁ 5 a 6 b 7 ▁a 8 ▁b 9 <0x0A> 10 <|x|> (unused)
  v.tokens = {"<unk>", "<s>", "</s>", "<tag>", kSpace, "a", "b", kSpace + "a", kSpace + "b", "<0x0A>", "<|x|>"};
  v.types = {TokenType::kUnknown, TokenType::kControl, TokenType::kControl, TokenType::kUserDefined, TokenType::kNormal,
             TokenType::kNormal,  TokenType::kNormal,  TokenType::kNormal,  TokenType::kNormal,      TokenType::kByte,
             TokenType::kUnused};
  v.scores = {0, 0, 0, 0, -5, -5, -5, -1, -2, 0, 0};
  v.unk = 0;
  v.bos = 1;
  v.eos = 2;
  v.add_bos = true;
  return v;
}

TEST(TokenizerSpecial, UserDefinedAlwaysControlOnlyWhenParsingSpecials) {
  const Tokenizer tok(SmallSpmVocab());
  // User-defined tokens are cut out even without parse_special; the text after any special
  // token gets the "▁" prefix again (llama.cpp's SPM convention).
  EXPECT_EQ(tok.Encode("a<tag>b", false), (std::vector<int32_t>{7, 3, 8}));
  // Control tokens only with parse_special; otherwise "<s>" is plain text, and as this
  // vocabulary has no tokens for '<', 's', '>' (not even byte tokens) each becomes <unk>.
  EXPECT_EQ(tok.Encode("a<s>b", false, true), (std::vector<int32_t>{7, 1, 8}));
  EXPECT_EQ(tok.Encode("a<s>b", false, false), (std::vector<int32_t>{7, 0, 0, 0, 6}));
}

TEST(TokenizerSpecial, AddSpecialPrependsBosAndAppendsEosWhenAsked) {
  Vocab v = SmallSpmVocab();
  EXPECT_EQ(Tokenizer(v).Encode("a", true), (std::vector<int32_t>{1, 7}));
  EXPECT_EQ(Tokenizer(v).Encode("", true), (std::vector<int32_t>{1}));
  EXPECT_EQ(Tokenizer(v).Encode("", false), (std::vector<int32_t>{}));
  v.add_eos = true;
  EXPECT_EQ(Tokenizer(v).Encode("a", true), (std::vector<int32_t>{1, 7, 2}));
  v.add_bos = false;
  EXPECT_EQ(Tokenizer(v).Encode("a", true), (std::vector<int32_t>{7, 2}));
  v.add_eos = false;
  v.add_space_prefix = false;
  EXPECT_EQ(Tokenizer(v).Encode("a b", true), (std::vector<int32_t>{5, 8}));
}

TEST(TokenizerSpecial, PiecesFollowLlamaCppTokenToPiece) {
  const Tokenizer tok(SmallSpmVocab());
  EXPECT_EQ(tok.TokenToPiece(7), " a");     // ▁ -> space
  EXPECT_EQ(tok.TokenToPiece(9), "\n");     // <0x0A> -> the byte
  EXPECT_EQ(tok.TokenToPiece(1), "");       // control
  EXPECT_EQ(tok.TokenToPiece(0), "");       // unknown
  EXPECT_EQ(tok.TokenToPiece(10), "");      // unused
  EXPECT_EQ(tok.TokenToPiece(3), "<tag>");  // user-defined: as written
  EXPECT_THROW(tok.TokenToPiece(11), Error);
  EXPECT_THROW(tok.TokenToPiece(-1), Error);
  // Decode drops the space Encode put in front (only at the very start).
  EXPECT_EQ(tok.Decode(std::vector<int32_t>{7, 8}), "a b");
  EXPECT_EQ(tok.Decode(std::vector<int32_t>{1, 7, 8}), " a b");  // llama_detokenize(remove_special=false)
}

TEST(TokenizerSpecial, ByteLevelPiecesAndSpaceCleanup) {
  const Tokenizer tok(LoadGgufVocab(assets::kVocabDir + "ggml-vocab-gpt-2.gguf"));
  const std::vector<int32_t> hello = tok.Encode(" Hello\n", false);
  ASSERT_EQ(hello.size(), 2u);
  EXPECT_EQ(tok.TokenToPiece(hello[0]), " Hello");  // "ĠHello"
  EXPECT_EQ(tok.TokenToPiece(hello[1]), "\n");      // "Ċ"
  EXPECT_EQ(tok.TokenToPiece(tok.vocab().eos), "");  // <|endoftext|> is control
  // GPT-2 asks for clean_up_tokenization_spaces: " ," " ." " 's" lose the space, " 't" keeps it.
  EXPECT_EQ(tok.Decode(tok.Encode("Hello , world . It 's , isn 't", false)), "Hello, world. It's, isn 't");
  // " ' " loses both spaces; the blanked space is not a space for the next quote.
  EXPECT_EQ(tok.Decode(tok.Encode("a ' b ' c", false)), "a'b'c");
  EXPECT_EQ(tok.Decode(tok.Encode("a ' ' b", false)), "a'' b");
}

TEST(TokenizerSpecial, RejectsWhatItCannotTokenize) {
  Vocab v = SmallSpmVocab();
  v.model = "bert";
  EXPECT_THROW(Tokenizer{v}, Error);
  v.model = "gpt2";
  v.pre = "no-such-pre-tokenizer";
  EXPECT_THROW(Tokenizer{v}, Error);
  v = SmallSpmVocab();
  v.types.pop_back();
  EXPECT_THROW(Tokenizer{v}, Error);
  v = SmallSpmVocab();
  v.bos = 99;  // out of range: treated as absent, so asking for BOS fails
  EXPECT_THROW(Tokenizer(v).Encode("a", true), Error);
  EXPECT_EQ(Tokenizer(v).Encode("a", false), (std::vector<int32_t>{7}));
}

// ---- real text ---------------------------------------------------------------------------

// Decode(Encode(text)) gives the text back. With BOS, llama.cpp's detokenizer spends its "drop
// the leading space" on the BOS token, so SPM vocabularies give the text with the space Encode
// put in front; smelt does the same.
TEST(TokenizerRoundTrip, DecodeEncodeGivesBackTinyStoriesAndKjv) {
  const std::string stories = ReadFileToString(assets::kDevText).substr(0, 30000);
  const std::string kjv = ReadFileToString(assets::kShared + "/assets/kjv_bible/kjv.txt").substr(0, 30000);
  for (const std::string& name : {std::string("stories260K"), std::string("ggml-vocab-llama-spm.gguf"),
                                  std::string("ggml-vocab-gpt-2.gguf"), std::string("ggml-vocab-deepseek-llm.gguf")}) {
    const Tokenizer tok(LoadGgufVocab(name == "stories260K" ? assets::kStoriesGguf : assets::kVocabDir + name));
    const bool spm = tok.vocab().model == "llama";
    for (const std::string* text : {&stories, &kjv}) {
      const std::vector<int32_t> ids = tok.Encode(*text, false);
      EXPECT_GT(ids.size(), text->size() / 8) << name;
      EXPECT_EQ(tok.Decode(ids), *text) << name;
      const std::vector<int32_t> with_bos = tok.Encode(*text, true);
      ASSERT_EQ(with_bos.size(), ids.size() + (tok.vocab().add_bos ? 1 : 0)) << name;
      EXPECT_EQ(tok.Decode(with_bos), (spm ? " " : "") + *text) << name;
    }
    // Line by line too (each line starts a new text, so the SPM space prefix applies each time).
    std::istringstream lines(kjv);
    int n = 0;
    for (std::string line; std::getline(lines, line) && n < 100; ++n) {
      EXPECT_EQ(tok.Decode(tok.Encode(line, false)), line) << name;
    }
  }
}

TEST(TokenizerSlow, Encodes400KBWellUnderASecond) {
  const std::string text = ReadFileToString(assets::kDevText);
  ASSERT_GT(text.size(), 390000u);
  for (const std::string& path : {assets::kStoriesGguf, assets::kVocabDir + "ggml-vocab-llama-spm.gguf", assets::kVocabDir + "ggml-vocab-gpt-2.gguf",
                                 assets::kVocabDir + "ggml-vocab-deepseek-llm.gguf"}) {
    const Tokenizer tok(LoadGgufVocab(path));
    const std::clock_t start = std::clock();  // CPU time: robust to a busy machine
    const std::vector<int32_t> ids = tok.Encode(text, true);
    const double seconds = static_cast<double>(std::clock() - start) / CLOCKS_PER_SEC;
    EXPECT_GT(ids.size(), 90000u) << path;
    EXPECT_LT(seconds, 0.5) << path;
  }
}

// llama.cpp tokenizes the text file for perplexity (BOS first); its token count must be ours.
TEST(TokenizerPeer, TokenCountOfAFileMatchesLlamaCpp) {
  if (!peer::Available()) GTEST_SKIP() << "llama.cpp peer unavailable";
  ScratchDir dir("tok_peer");
  const std::string text = ReadFileToString(assets::kDevText).substr(0, 12000) +
                           "\n  Odd  spacing,\ttabs\t and ünïcödé — “quotes” 🦙 <s> </s> end.\n";
  const std::string path = dir.Path("text.txt");
  std::ofstream(path, std::ios::binary) << text;
  const auto out = nlohmann::json::parse(
      peer::RunCommand(peer::Script() + " ppl '" + assets::kStoriesGguf + "' '" + path + "' 128 1 1 2>/dev/null"));
  const Tokenizer tok(LoadGgufVocab(assets::kStoriesGguf));
  EXPECT_EQ(out.at("tokens").get<size_t>(), tok.Encode(text, true).size());
}

}  // namespace
}  // namespace smelt
