// SentencePiece-style tokenization of "llama" vocabularies (llama.cpp's llm_tokenizer_spm).
//
// The text (spaces already spelled "▁") starts as one symbol per UTF-8 character. Every pair of
// adjacent symbols whose concatenation is a token is a candidate merge, keyed by that token's
// score; the best candidate (highest score, then leftmost) is merged and the new symbol's
// neighbours become candidates. A priority queue keeps this O(n log n); candidates made stale by
// an earlier merge are recognised by their length and skipped. Symbols that end up not being
// tokens are spelled as byte tokens (<0xXX>), or unk when the vocabulary has no such token.
//
// llama.cpp runs this over a whole text fragment at once. We cut the text between two symbols
// wherever that pair of symbols occurs in no token: no merge can ever cross such a cut, and a
// chunk's merges happen in the same relative order alone as within the whole, so tokenizing the
// chunks separately gives the same tokens, with small queues, and repeated chunks (words) done
// once.
#include "io/tokenizer.h"
#include "io/tokenizer_merge.h"

namespace smelt {

uint64_t SpmPairKey(std::string_view a, std::string_view b) {
  auto pack = [](std::string_view s) {
    uint32_t v = 0;
    for (size_t k = 0; k < 4; ++k) v = (v << 8) | (k < s.size() ? static_cast<uint8_t>(s[k]) : 0u);
    return v;
  };
  return (static_cast<uint64_t>(pack(a)) << 32) | pack(b);
}

void Tokenizer::EncodeSpm(std::string_view text, std::vector<int32_t>& out) const {
  PieceMemo memo;
  auto emit = [&](std::string_view chunk) {
    memo.Emit(chunk, out, [&](std::string_view c, std::vector<int32_t>& o) { EncodeSpmChunk(c, o); });
  };
  size_t chunk = 0, prev = 0;  // chunk start, previous symbol start
  for (size_t off = 0; off < text.size();) {
    const size_t len = std::min(Utf8SeqLen(static_cast<uint8_t>(text[off])), text.size() - off);
    if (off > 0 && !spm_pairs_.count(SpmPairKey(text.substr(prev, off - prev), text.substr(off, len)))) {
      emit(text.substr(chunk, off - chunk));
      chunk = off;
    }
    prev = off;
    off += len;
  }
  if (chunk < text.size()) emit(text.substr(chunk));
}

void Tokenizer::EncodeSpmChunk(std::string_view text, std::vector<int32_t>& out) const {
  std::vector<MergeSymbol> sym = Utf8Symbols(text);
  MergeSymbols<float>(
      text, sym,
      [&](std::string_view l, std::string_view r) -> std::optional<float> {
        const int32_t id = Find(std::string_view(l.data(), l.size() + r.size()));  // r follows l in text
        if (id < 0) return std::nullopt;
        return scores_[id];
      },
      [](float a, float b) { return a > b; });

  for (int i = sym.empty() ? -1 : 0; i != -1; i = sym[i].next) {
    std::string_view piece = text.substr(sym[i].off, sym[i].n);
    int32_t id = Find(piece);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    for (char c : piece) {
      int32_t byte_id = byte_token_[static_cast<uint8_t>(c)];
      if (byte_id < 0) byte_id = unk_;
      if (byte_id >= 0) out.push_back(byte_id);
    }
  }
}

}  // namespace smelt
