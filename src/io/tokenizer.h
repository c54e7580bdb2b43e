#pragma once
// Text <-> token ids for a Vocab, reproducing llama.cpp token for token.
//
//   "llama" vocabularies: llama.cpp's SentencePiece-style tokenizer (llm_tokenizer_spm): spaces
//     become "▁", a "▁" is prepended when add_space_prefix, the text is split into UTF-8
//     characters and adjacent pairs whose concatenation is a token are merged, highest score
//     first (ties: leftmost); what is left and is not a token falls back to <0xXX> byte tokens
//     (or unk when the vocabulary has none).
//   "gpt2" vocabularies: byte-level BPE; the pre-tokenizer named by Vocab::pre splits the text
//     into words (io/pretokenize.h), each word is merged by merge rank (lowest first, ties:
//     leftmost).
//
// Control, user-defined and unknown tokens are "special": before the model runs, user-defined
// tokens are cut out of the text wherever they occur, and so are control/unknown tokens when
// `parse_special` is set (longest token text first). Encode(add_special) adds BOS when
// Vocab::add_bos and EOS when Vocab::add_eos.
//
// TokenToPiece gives the bytes a token prints as (llama_token_to_piece with special=false):
// "▁" -> " " and <0xXX> -> the byte for SPM, the GPT-2 byte mapping undone for gpt2, user-defined
// tokens as written, control/unknown/unused tokens as "". Decode concatenates pieces like
// llama_detokenize(remove_special=false, unparse_special=false): one leading space of the first
// piece is dropped for SPM vocabularies with add_space_prefix (the space Encode added), and the
// gpt2 pre-tokenizers that ask for it clean " ." " ," " !" " ?" " 's" " 'm" " 're" " 've".
#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "model/vocab.h"

namespace smelt {

class PreTokenizer;

// The byte a byte token spells: "<0x0A>" -> 10; -1 if `piece` is not of that form.
int ByteTokenValue(std::string_view piece);

// SPM: key of two adjacent symbols (UTF-8 characters), for Tokenizer's pair set.
uint64_t SpmPairKey(std::string_view a, std::string_view b);

class Tokenizer {
 public:
  // Copies what it needs from `v`. Throws Error for an unsupported vocabulary (model other than
  // "llama"/"gpt2", unknown pre-tokenizer, malformed merges, sizes that disagree).
  explicit Tokenizer(const Vocab& v);

  std::vector<int32_t> Encode(std::string_view text, bool add_special, bool parse_special = false) const;
  std::string TokenToPiece(int32_t id) const;  // throws Error for an id outside the vocabulary
  std::string Decode(std::span<const int32_t> ids) const;
  const Vocab& vocab() const { return vocab_; }

  // A heterogeneous-lookup hash map from token text to id.
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using TokenMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

 private:
  void EncodeSpm(std::string_view text, std::vector<int32_t>& out) const;  // tokenizer_spm.cc
  void EncodeSpmChunk(std::string_view text, std::vector<int32_t>& out) const;
  void EncodeBpe(std::string_view text, std::vector<int32_t>& out) const;  // tokenizer_bpe.cc
  void EncodeBpeWord(std::string_view word, std::vector<int32_t>& out) const;
  int32_t Find(std::string_view text) const {  // -1 if not a token
    auto it = token_to_id_.find(text);
    return it == token_to_id_.end() ? -1 : it->second;
  }

  Vocab vocab_;
  bool spm_ = true;                        // "llama" (else "gpt2")
  int32_t bos_ = -1, eos_ = -1, unk_ = -1; // validated ids (-1: none)
  std::vector<std::string> texts_;         // token texts (empty ones renamed "[EMPTY_i]", as llama.cpp)
  std::vector<float> scores_;              // SPM merge priorities (0 where the vocab has none)
  TokenMap token_to_id_;
  std::vector<uint32_t> attrs_;            // llama.cpp token attributes (kAttr* in tokenizer.cc)
  std::vector<int32_t> special_ids_;       // control/user-defined/unknown, longest text first
  std::vector<std::string> pieces_;        // TokenToPiece cache
  std::array<int32_t, 256> byte_token_{};  // SPM: token of byte b (<0xXX>, else the 1-byte piece), -1 if none
  std::unordered_set<uint64_t> spm_pairs_;  // SPM: adjacent symbol pairs found inside some token (SpmPairKey)
  TokenMap merge_rank_;                    // BPE: left + '\0' + right -> merge rank
  std::shared_ptr<const PreTokenizer> pre_;  // BPE
};

}  // namespace smelt
