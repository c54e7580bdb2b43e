#pragma once
// The check the tokenizer fuzz targets share: a Vocab that parsed is handed to the Tokenizer,
// which must accept it or refuse it with smelt::Error. Where accepted, encoding a fixed text (with
// and without special tokens) gives ids inside the vocabulary, and decoding them gives no more
// bytes than their pieces hold.
#include <cstdint>
#include <string>

#include "core/error.h"
#include "io/tokenizer.h"

inline void CheckTokenizes(const smelt::Vocab& v) {
  try {
    const smelt::Tokenizer tok(v);
    for (bool special : {false, true}) {
      const auto ids = tok.Encode("Hello world! 123 <s> \xC3\xA9\xE4\xB8\xAD  \n\tend\xFF", special, special);
      std::string pieces;
      for (int32_t id : ids) {
        SMELT_ASSERT(id >= 0 && id < v.size());
        pieces += tok.TokenToPiece(id);
      }
      const std::string text = tok.Decode(ids);
      SMELT_ASSERT(text.size() <= pieces.size());
    }
  } catch (const smelt::Error&) {
  }
}
