// Byte-level BPE tokenization of "gpt2" vocabularies (llama.cpp's llm_tokenizer_bpe).
//
// The pre-tokenizer cuts the text into words spelled with GPT-2's byte mapping. Within a word,
// symbols start as single characters; the adjacent pair with the lowest merge rank (ties:
// leftmost) is merged until no adjacent pair has a merge. A priority queue keeps this
// O(n log n) on long words; stale candidates are recognised by their length. When the
// pre-tokenizer says so (Llama-3 and others: ignore_merges), a word that is itself a token is
// emitted whole. A final symbol that is not a token is spelled byte by byte where those bytes
// are tokens (llama.cpp's behaviour; with a complete byte alphabet this never happens).
#include <string>

#include "io/pretokenize.h"
#include "io/tokenizer.h"
#include "io/tokenizer_merge.h"

namespace smelt {

void Tokenizer::EncodeBpe(std::string_view text, std::vector<int32_t>& out) const {
  const std::vector<std::string> words = pre_->Split(text);
  PieceMemo memo;  // holds views into `words`
  for (const std::string& word : words) {
    memo.Emit(word, out, [&](std::string_view w, std::vector<int32_t>& o) { EncodeBpeWord(w, o); });
  }
}

void Tokenizer::EncodeBpeWord(std::string_view word, std::vector<int32_t>& out) const {
  if (pre_->ignore_merges()) {
    if (const int32_t id = Find(word); id >= 0) {
      out.push_back(id);
      return;
    }
  }
  std::vector<MergeSymbol> sym = Utf8Symbols(word);
  std::string key;
  MergeSymbols<int32_t>(
      word, sym,
      [&](std::string_view l, std::string_view r) -> std::optional<int32_t> {
        key.assign(l);
        key.push_back('\0');
        key.append(r);
        auto it = merge_rank_.find(key);
        if (it == merge_rank_.end()) return std::nullopt;
        return it->second;
      },
      [](int32_t a, int32_t b) { return a < b; });

  for (const MergeSymbol& s : sym) {
    if (s.n == 0) continue;
    const std::string_view piece = word.substr(s.off, s.n);
    int32_t id = Find(piece);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    for (char c : piece) {
      int32_t byte_id = Find(std::string_view(&c, 1));
      if (byte_id >= 0) out.push_back(byte_id);
    }
  }
}

}  // namespace smelt
