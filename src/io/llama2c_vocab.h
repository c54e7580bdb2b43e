#pragma once
// llama2.c tokenizer files (tokenizer.bin, tok512.bin): int32 max_token_length, then for each of
// the vocabulary's tokens: f32 score, int32 byte length, the bytes. The count is not stored; it
// is the checkpoint's vocab_size.
#include <cstdint>
#include <span>
#include <string>

#include "model/vocab.h"

namespace smelt {

// Reads a llama2.c tokenizer of `vocab_size` tokens into a "llama" Vocab, spelled the way
// llama.cpp's converter does: spaces as "▁", id 0 "<unk>" (unknown), ids 1/2 "<s>"/"</s>"
// (control; the file spells them "\n<s>\n" and "\n</s>\n"), "<0xXX>" pieces typed as bytes.
// BOS=1, EOS=2, UNK=0, add_bos. Throws Error on a truncated file, a negative or oversized token
// length, a vocab_size the file's bytes cannot hold (checked before anything is allocated), or a
// token count that disagrees with vocab_size.
Vocab LoadLlama2cVocab(const std::string& path, int vocab_size);

// The same from a file's bytes held in memory; `source` names them in errors.
Vocab ParseLlama2cVocab(std::span<const uint8_t> bytes, int vocab_size, const std::string& source);

}  // namespace smelt
