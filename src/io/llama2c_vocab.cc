#include "io/llama2c_vocab.h"

#include <cstring>

#include "core/error.h"
#include "core/mapped_file.h"
#include "io/tokenizer.h"

namespace smelt {

Vocab LoadLlama2cVocab(const std::string& path, int vocab_size) {
  if (vocab_size <= 0) Fail("{}: invalid vocab_size {}", path, vocab_size);
  auto file = MappedFile::Open(path);
  return ParseLlama2cVocab(std::span<const uint8_t>(file->data(), file->size()), vocab_size, path);
}

Vocab ParseLlama2cVocab(std::span<const uint8_t> bytes, int vocab_size, const std::string& source) {
  if (vocab_size <= 0) Fail("{}: invalid vocab_size {}", source, vocab_size);
  const uint8_t* p = bytes.data();
  const size_t size = bytes.size();
  size_t off = 0;
  auto read_i32 = [&](const char* what, int index) {
    if (size - off < 4) Fail("{}: truncated at token {} ({}) after {} bytes", source, index, what, off);
    int32_t v;
    std::memcpy(&v, p + off, 4);
    off += 4;
    return v;
  };
  auto read_f32 = [&](int index) {
    if (size - off < 4) Fail("{}: truncated at token {} (score) after {} bytes", source, index, off);
    float v;
    std::memcpy(&v, p + off, 4);
    off += 4;
    return v;
  };

  if (size < 4) Fail("{}: not a llama2.c tokenizer ({} bytes)", source, size);
  const int32_t max_len = read_i32("header", -1);
  if (max_len <= 0) Fail("{}: invalid max_token_length {}", source, max_len);
  // Each token takes at least its score and its length (8 bytes): a count the file cannot hold
  // fails here, before anything is sized by it.
  if ((size - off) / 8 < static_cast<size_t>(vocab_size))
    Fail("{}: {} bytes cannot hold vocab_size {} tokens (8 bytes or more each)", source, size, vocab_size);

  Vocab v;
  v.model = "llama";
  v.pre = "default";
  v.tokens.resize(vocab_size);
  v.scores.resize(vocab_size);
  v.types.resize(vocab_size);
  for (int i = 0; i < vocab_size; ++i) {
    if (off == size) Fail("{}: has {} tokens, expected vocab_size {}", source, i, vocab_size);
    v.scores[i] = read_f32(i);
    const int32_t len = read_i32("length", i);
    if (len < 0) Fail("{}: token {}: negative length {}", source, i, len);
    if (static_cast<size_t>(len) > size - off) {
      Fail("{}: token {}: length {} runs past the end of the file", source, i, len);
    }
    std::string text(reinterpret_cast<const char*>(p + off), static_cast<size_t>(len));
    off += static_cast<size_t>(len);

    TokenType type = TokenType::kNormal;
    if (i == 0) {
      text = "<unk>";
      type = TokenType::kUnknown;
    } else if (i == 1) {
      text = "<s>";
      type = TokenType::kControl;
    } else if (i == 2) {
      text = "</s>";
      type = TokenType::kControl;
    } else if (text.empty()) {
      type = TokenType::kControl;
    } else if (ByteTokenValue(text) >= 0) {
      type = TokenType::kByte;
    }
    std::string spelled;
    spelled.reserve(text.size());
    for (char c : text) {
      if (c == ' ') {
        spelled += "\xE2\x96\x81";  // "▁"
      } else {
        spelled.push_back(c);
      }
    }
    v.tokens[i] = std::move(spelled);
    v.types[i] = type;
  }
  if (off != size) {
    Fail("{}: {} bytes left after {} tokens: vocab_size does not match the file", source, size - off, vocab_size);
  }
  v.unk = 0;
  v.bos = vocab_size > 1 ? 1 : -1;
  v.eos = vocab_size > 2 ? 2 : -1;
  v.add_bos = true;
  v.add_eos = false;
  v.add_space_prefix = true;
  return v;
}

}  // namespace smelt
