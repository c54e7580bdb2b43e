#include "train/vocab_train.h"

#include <algorithm>
#include <fmt/format.h>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "io/utf8.h"

namespace smelt::train {
namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // "▁" U+2581
constexpr int kFirstByteToken = 3;                    // after <unk>, <s>, </s>
constexpr int kFirstPiece = kFirstByteToken + 256;

// The corpus as SentencePiece cuts it: spaces as "▁" (one prepended, as the tokenizer does),
// split into UTF-8 characters the way the tokenizer splits them (by lead byte), a word starting
// at every "▁" and every newline standing alone. Returns each distinct word's characters and
// count.
std::unordered_map<std::string, int64_t> CountWords(std::string_view text) {
  std::unordered_map<std::string, int64_t> words;
  std::string word = std::string(kSpace);
  auto flush = [&] {
    if (!word.empty()) ++words[word];
    word.clear();
  };
  for (size_t i = 0; i < text.size();) {
    const size_t n = std::min(Utf8SeqLen((uint8_t)text[i]), text.size() - i);
    if (text[i] == ' ') {
      flush();
      word = std::string(kSpace);
    } else if (text[i] == '\n') {
      flush();
      ++words["\n"];
    } else {
      word.append(text.substr(i, n));
    }
    i += n;
  }
  flush();
  return words;
}

// The characters of `word` (split by lead byte, as the tokenizer splits).
std::vector<std::string_view> Chars(std::string_view word) {
  std::vector<std::string_view> out;
  for (size_t i = 0; i < word.size();) {
    const size_t n = std::min(Utf8SeqLen((uint8_t)word[i]), word.size() - i);
    out.push_back(word.substr(i, n));
    i += n;
  }
  return out;
}

uint64_t PairKey(int a, int b) { return (uint64_t)(uint32_t)a << 32 | (uint32_t)b; }

struct Word {
  std::vector<int> sym;  // token ids; -1 for a character without a token (never merges)
  int64_t count = 0;
};

class Merger {
 public:
  Merger(std::vector<Word> words, std::vector<std::string>& tokens, int newline)
      : words_(std::move(words)), tokens_(tokens), newline_(newline) {
    for (const std::string& t : tokens_) id_of_.emplace(t, (int)id_of_.size());
    for (int w = 0; w < (int)words_.size(); ++w) AddPairs(w, +1);
  }

  // Learns merges until the vocabulary holds `size` tokens or no pair occurs twice.
  void Run(int size) {
    while ((int)tokens_.size() < size) {
      uint64_t best = 0;
      int64_t best_count = 2;  // a pair seen once is not worth a token
      std::string best_text;   // empty until a pair qualifies
      for (const auto& [key, count] : counts_) {
        if (count < best_count) continue;
        std::string text = tokens_[key >> 32] + tokens_[(uint32_t)key];
        if (count > best_count || best_text.empty() || text < best_text)
          best = key, best_count = count, best_text = std::move(text);
      }
      if (best_text.empty()) break;
      auto [it, added] = id_of_.emplace(best_text, (int)tokens_.size());
      if (added) tokens_.push_back(best_text);
      Apply((int)(best >> 32), (int)(uint32_t)best, it->second);
    }
  }

 private:
  bool Mergeable(int s) const { return s >= 0 && s != newline_; }

  void AddPairs(int w, int sign) {
    const Word& word = words_[w];
    for (size_t i = 0; i + 1 < word.sym.size(); ++i) {
      if (!Mergeable(word.sym[i]) || !Mergeable(word.sym[i + 1])) continue;
      const uint64_t key = PairKey(word.sym[i], word.sym[i + 1]);
      int64_t& c = counts_[key];
      c += sign * word.count;
      if (sign > 0) {
        std::vector<int>& ws = where_[key];
        if (ws.empty() || ws.back() != w) ws.push_back(w);
      }
      if (c == 0) counts_.erase(key);
    }
  }

  // Replaces every (a, b) in the words that hold it by `ab`, left to right.
  void Apply(int a, int b, int ab) {
    const uint64_t key = PairKey(a, b);
    std::vector<int> ws = std::move(where_[key]);
    where_.erase(key);
    for (int w : ws) {
      std::vector<int>& s = words_[w].sym;
      bool holds = false;
      for (size_t i = 0; i + 1 < s.size() && !holds; ++i) holds = s[i] == a && s[i + 1] == b;
      if (!holds) continue;  // an entry left from before an earlier merge changed the word
      AddPairs(w, -1);
      std::vector<int> merged;
      merged.reserve(s.size());
      for (size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          merged.push_back(ab);
          ++i;
        } else {
          merged.push_back(s[i]);
        }
      }
      s = std::move(merged);
      AddPairs(w, +1);
    }
    counts_.erase(key);
  }

  std::vector<Word> words_;
  std::vector<std::string>& tokens_;
  int newline_;
  std::unordered_map<std::string, int> id_of_;
  std::unordered_map<uint64_t, int64_t> counts_;        // pair -> occurrences in the corpus
  std::unordered_map<uint64_t, std::vector<int>> where_;  // pair -> words that held it when counted
};

}  // namespace

Vocab TrainBpeVocab(std::string_view text, const VocabTrainOptions& opt, const std::string& source) {
  if (text.empty()) Fail("{}: the text is empty; nothing to learn a vocabulary from", source);
  if (opt.vocab_size < kFirstPiece + 1)
    Fail("{}: vocabulary size {} is too small (at least {}: 3 special and 256 byte tokens, and one piece)", source,
         opt.vocab_size, kFirstPiece + 1);
  const std::unordered_map<std::string, int64_t> counts = CountWords(text);

  // The alphabet: characters by frequency (ties: by text), as many as fit and occur often enough.
  std::unordered_map<std::string, int64_t> char_count;
  for (const auto& [w, n] : counts)
    for (std::string_view c : Chars(w)) char_count[std::string(c)] += n;
  std::vector<std::pair<std::string, int64_t>> chars(char_count.begin(), char_count.end());
  std::sort(chars.begin(), chars.end(), [](const auto& x, const auto& y) {
    return x.second != y.second ? x.second > y.second : x.first < y.first;
  });
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  for (int b = 0; b < 256; ++b) tokens.push_back(fmt::format("<0x{:02X}>", b));
  for (const auto& [c, n] : chars) {
    if (n < opt.min_char_count || (int)tokens.size() >= opt.vocab_size) break;
    // A lone invalid byte is spelt by its byte token; only whole characters become pieces.
    if (c.size() == 1 && (uint8_t)c[0] >= 0x80) continue;
    tokens.push_back(c);
  }
  const int n_chars = (int)tokens.size() - kFirstPiece;

  std::unordered_map<std::string, int> char_id;
  for (int i = kFirstPiece; i < (int)tokens.size(); ++i) char_id.emplace(tokens[i], i);
  std::vector<Word> words;
  words.reserve(counts.size());
  std::vector<std::pair<std::string, int64_t>> sorted(counts.begin(), counts.end());
  std::sort(sorted.begin(), sorted.end());  // a fixed order: the same text gives the same vocabulary
  for (const auto& [w, n] : sorted) {
    Word word;
    word.count = n;
    for (std::string_view c : Chars(w)) {
      auto it = char_id.find(std::string(c));
      word.sym.push_back(it == char_id.end() ? -1 : it->second);
    }
    words.push_back(std::move(word));
  }
  const auto nl = char_id.find("\n");
  Merger merger(std::move(words), tokens, nl == char_id.end() ? -1 : nl->second);
  merger.Run(opt.vocab_size);

  Vocab v;
  v.model = "llama";
  v.tokens = std::move(tokens);
  const int n = v.size(), n_merges = n - kFirstPiece - n_chars;
  v.scores.assign(n, 0.0f);
  v.types.assign(n, TokenType::kNormal);
  v.types[0] = TokenType::kUnknown;
  v.types[1] = v.types[2] = TokenType::kControl;
  for (int b = 0; b < 256; ++b) v.types[kFirstByteToken + b] = TokenType::kByte;
  // Merges outrank characters (which are never a merge's result), earlier merges outrank later.
  for (int i = 0; i < n_chars; ++i) v.scores[kFirstPiece + i] = -(float)(n_merges + i);
  for (int i = 0; i < n_merges; ++i) v.scores[kFirstPiece + n_chars + i] = -(float)i;
  v.unk = 0, v.bos = 1, v.eos = 2;
  v.add_bos = true;
  v.add_space_prefix = true;
  return v;
}

}  // namespace smelt::train
