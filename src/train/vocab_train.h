#pragma once
// A new SentencePiece-style BPE vocabulary learned from a text corpus, for models trained from
// scratch on a user's text (`smelt train` without a tokenizer of its own).
//
// The vocabulary is what llama.cpp's "llama" tokenizer (and smelt's, io/tokenizer.h) runs:
// <unk>, <s>, </s>, the 256 byte-fallback tokens <0x00>..<0xFF>, the corpus's characters, then one
// token per merge with score −rank, so the tokenizer's highest-score-first merging replays the
// merges in the order they were learned. Training is classic BPE (Sennrich et al. 2016) over
// words as SentencePiece cuts them: spaces become "▁", a word starts at each "▁" and a newline is a
// word of its own that never merges; the most frequent adjacent pair (counted over the corpus,
// ties broken by the smaller merged text) becomes the next token, until the vocabulary is full or
// no pair occurs twice. Characters seen fewer than `min_char_count` times (or beyond the
// vocabulary's room) get no token of their own and are spelt with byte tokens.
#include <cstdint>
#include <string>
#include <string_view>

#include "model/vocab.h"

namespace smelt::train {

struct VocabTrainOptions {
  int vocab_size = 1024;   // total tokens, specials and byte tokens included (>= 260)
  int min_char_count = 2;  // rarer characters are left to byte fallback
};

// The learned vocabulary (model "llama", BOS added, a space prefix added). Throws Error naming
// `source` for an empty text or a vocab_size below 260.
Vocab TrainBpeVocab(std::string_view text, const VocabTrainOptions& opt, const std::string& source);

}  // namespace smelt::train
