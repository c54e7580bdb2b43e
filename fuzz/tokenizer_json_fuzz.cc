// libFuzzer target: tokenizer.json parsing from memory, then tokenizing with what was parsed.
// Any input must either throw smelt::Error or give a Vocab that passes CheckTokenizes
// (tokenize_check.h) and, where it can be written, reads back the same.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"
#include "io/hf_tokenizer.h"
#include "io/tokenizer.h"
#include "tokenize_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  smelt::Vocab v;
  try {
    v = smelt::ParseHfTokenizerJson(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.json");
  } catch (const smelt::Error&) {
    return 0;
  }
  CheckTokenizes(v);
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
