// The BPE vocabulary trainer: its incremental merge loop against a naive BPE that recounts every
// pair after every merge, lossless encoding of text it never saw (byte fallback included), and
// one-line errors.
#include "train/vocab_train.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/error.h"
#include "io/tokenizer.h"

namespace smelt::train {
namespace {

const std::string kBible = std::string(SMELT_SHARED_DIR) + "/assets/kjv_bible/kjv.txt";

std::string ReadSlice(const std::string& path, size_t from, size_t n) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str().substr(from, n);
}

// Plain BPE on ASCII text: words cut at spaces (each word after a space, and the first one,
// spelt with a leading "▁") and newlines, every pair recounted after every merge, the most
// frequent (then the smallest text) merged next. `alphabet`: the single characters that have a
// token. Returns the merged texts in order.
std::vector<std::string> NaiveMerges(const std::string& text, const std::set<std::string>& alphabet, int n_merges) {
  const std::string sp = "\xE2\x96\x81";
  std::map<std::vector<std::string>, int64_t> words;
  std::vector<std::string> cur = {sp};
  bool has = true;
  auto flush = [&] {
    if (has && !cur.empty()) ++words[cur];
    cur.clear();
    has = false;
  };
  for (char ch : text) {
    if (ch == ' ') {
      flush();
      cur = {sp};
      has = true;
    } else if (ch == '\n') {
      flush();
      ++words[{"\n"}];
    } else {
      cur.push_back(std::string(1, ch));
      has = true;
    }
  }
  flush();
  std::vector<std::string> merges;
  while ((int)merges.size() < n_merges) {
    std::map<std::pair<std::string, std::string>, int64_t> pairs;
    for (const auto& [w, n] : words)
      for (size_t i = 0; i + 1 < w.size(); ++i) {
        const bool ok = w[i] != "\n" && w[i + 1] != "\n" && (w[i].size() > 1 || alphabet.count(w[i])) &&
                        (w[i + 1].size() > 1 || alphabet.count(w[i + 1]));
        if (ok) pairs[{w[i], w[i + 1]}] += n;
      }
    std::pair<std::string, std::string> best;
    int64_t best_n = 1;
    for (const auto& [p, n] : pairs)
      if (n > best_n || (n == best_n && best_n > 1 && p.first + p.second < best.first + best.second)) best = p, best_n = n;
    if (best_n < 2) break;
    merges.push_back(best.first + best.second);
    std::map<std::vector<std::string>, int64_t> next;
    for (const auto& [w, n] : words) {
      std::vector<std::string> m;
      for (size_t i = 0; i < w.size(); ++i) {
        if (i + 1 < w.size() && w[i] == best.first && w[i + 1] == best.second) {
          m.push_back(merges.back());
          ++i;
        } else {
          m.push_back(w[i]);
        }
      }
      next[m] += n;
    }
    words = std::move(next);
  }
  return merges;
}

TEST(TrainVocab, MergesEqualPlainBpeRecountedEveryStep) {
  const std::string text = ReadSlice(kBible, 0, 40000);
  const Vocab v = TrainBpeVocab(text, {.vocab_size = 600}, "kjv");
  ASSERT_EQ(v.size(), 600);
  std::set<std::string> alphabet;
  std::vector<std::string> merges;
  for (int i = 259; i < v.size(); ++i) {
    const bool one_char = v.tokens[i].size() == 1 || v.tokens[i] == "\xE2\x96\x81";
    (one_char ? (void)alphabet.insert(v.tokens[i]) : merges.push_back(v.tokens[i]));
  }
  ASSERT_GT(alphabet.size(), 40u);
  // A merge whose text already exists adds no token; the plain loop lists every merge, so drop repeats.
  std::vector<std::string> naive, all = NaiveMerges(text, alphabet, (int)merges.size() + 50);
  std::set<std::string> seen;
  for (const std::string& m : all)
    if (seen.insert(m).second && naive.size() < merges.size()) naive.push_back(m);
  EXPECT_EQ(merges, naive);
  // Scores replay the merges in order and rank every merge above every character.
  const int first_merge = 259 + (int)alphabet.size();
  for (int i = first_merge + 1; i < v.size(); ++i) EXPECT_LT(v.scores[i], v.scores[i - 1]);
  for (int i = 259; i < first_merge; ++i) EXPECT_LT(v.scores[i], v.scores[v.size() - 1]);
}

TEST(TrainVocab, EncodesUnseenTextLosslesslyAndCompressesMoreWithMoreTokens) {
  const std::string train = ReadSlice(kBible, 0, 400000);
  // (A lead byte such as 0xFF swallows the next three bytes as one "character" in the
  // tokenizer, as in llama.cpp, so invalid text is only lossless where that does not bite.)
  const std::string held_out = ReadSlice(kBible, 3000000, 40000) + "\nnaïve Ωmega 漢字 tab\there \x80 end.  two spaces\n";
  size_t prev = held_out.size() + 1;
  for (int size : {400, 1024, 4096}) {
    const Vocab v = TrainBpeVocab(train, {.vocab_size = size}, "kjv");
    EXPECT_LE(v.size(), size);
    const Tokenizer tok(v);
    const std::vector<int32_t> ids = tok.Encode(held_out, /*add_special=*/false);
    EXPECT_EQ(tok.Decode(ids), held_out) << size;
    std::printf("vocab %d: %zu tokens for %zu bytes of held-out text\n", v.size(), ids.size(), held_out.size());
    EXPECT_LT(ids.size(), prev);
    prev = ids.size();
  }
  EXPECT_EQ(TrainBpeVocab(train, {.vocab_size = 600}, "a").tokens, TrainBpeVocab(train, {.vocab_size = 600}, "b").tokens);
}

TEST(TrainVocab, BadInputFailsWithOneLine) {
  for (auto [text, size] : {std::pair<std::string, int>{"", 1024}, {"some text", 100}}) {
    try {
      TrainBpeVocab(text, {.vocab_size = size}, "corpus.txt");
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_EQ(msg.rfind("corpus.txt: ", 0), 0u) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace smelt::train
