// libFuzzer target: tokenizer.json parsing from memory, then tokenizing with what was parsed.
// Any input must either throw smelt::Error or give a Vocab the Tokenizer accepts or rejects with
// smelt::Error; encoding and decoding a fixed text must then work and agree with the pieces.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"
#include "io/hf_tokenizer.h"
#include "io/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  smelt::Vocab v;
  try {
    v = smelt::ParseHfTokenizerJson(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.json");
  } catch (const smelt::Error&) {
    return 0;
  }
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
  // What was read and can be written must read back the same (writing may refuse: duplicate
  // token texts, invalid UTF-8).
  std::string written;
  try {
    written = smelt::HfTokenizerJsonString(v);
  } catch (const smelt::Error&) {
    return 0;
  }
  const smelt::Vocab again = smelt::ParseHfTokenizerJson(written, "again.json");
  SMELT_ASSERT(again.tokens == v.tokens && again.types == v.types && again.merges == v.merges &&
               again.scores == v.scores && again.pre == v.pre && again.bos == v.bos && again.eos == v.eos);
  return 0;
}
