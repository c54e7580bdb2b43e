#pragma once
// A tokenizer's data, described the way GGUF stores it (tokenizer.ggml.*), whatever file it came
// from: GGUF, llama2.c tokenizer .bin, HF tokenizer.json or sentencepiece tokenizer.model all
// become a Vocab, and a Vocab is all a Tokenizer (io/tokenizer.h) needs.
#include <cstdint>
#include <string>
#include <vector>

namespace smelt {

// GGUF tokenizer.ggml.token_type values (llama.cpp's llama_token_type); serialized.
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

struct Vocab {
  std::string model;                // "llama" (SentencePiece-style BPE with scores) or "gpt2" (byte-level BPE)
  std::string pre;                  // pre-tokenizer for gpt2: "default"/"gpt-2", "llama-bpe", "qwen2", "deepseek-llm", "starcoder", ...
  std::vector<std::string> tokens;  // piece text as stored in GGUF (SPM: "▁" for space; gpt2: byte-to-unicode mapped)
  std::vector<float> scores;        // SPM merge priorities (empty for gpt2)
  std::vector<TokenType> types;     // same length as tokens (kNormal if the source has none)
  std::vector<std::string> merges;  // gpt2 merges "a b", in rank order
  int32_t bos = -1, eos = -1, unk = -1, pad = -1;
  bool add_bos = false;             // prepend BOS when encoding with specials
  bool add_eos = false;
  bool add_space_prefix = true;     // SPM: prepend "▁" to the text (llama: true)

  int32_t size() const { return (int32_t)tokens.size(); }
};

}  // namespace smelt
