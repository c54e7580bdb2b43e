// libFuzzer target: the files that come beside a model's weights, each parsed from memory:
//   a Hugging Face config.json (ParseHfConfig, then ValidateConfig and the round trip through
//     HfConfigJson where it validates),
//   a sentencepiece tokenizer.model (ParseSentencePieceModel: libsentencepiece's loading and
//     smelt's own scan of the serialized ModelProto), then tokenizing with it,
//   a llama2.c tokenizer.bin (ParseLlama2cVocab) of the token count its records spell, and of
//     one more.
// Every input is offered to all three, so a real file of any of them is a seed as it is. Any
// input must either parse or throw smelt::Error; crashes, leaks and sanitizer reports are bugs.
// Seeds (fuzz/corpus/model_side_files_fuzz/): two config.json files smelt writes, a 300-piece BPE
// tokenizer.model trained by libsentencepiece's trainer on a few lines of text, and a 40-token
// llama2.c tokenizer.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/tensor.h"
#include "io/hf_model.h"
#include "io/hf_tokenizer.h"
#include "io/llama2c_vocab.h"
#include "tokenize_check.h"

namespace {

// How many whole llama2.c token records (f32 score, int32 length, the bytes) follow the 4-byte
// header, up to the first that does not fit.
int Llama2cRecords(const uint8_t* data, size_t size) {
  size_t off = 4;
  int n = 0;
  while (size >= off + 8 && n < (1 << 20)) {
    int32_t len;
    std::memcpy(&len, data + off + 4, 4);
    if (len < 0 || (size_t)len > size - off - 8) break;
    off += 8 + (size_t)len;
    ++n;
  }
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const smelt::ModelConfig c = smelt::ParseHfConfig(std::string(text), "config.json");
    smelt::ValidateConfig(c, "config.json");
    const smelt::ModelConfig again =
        smelt::ParseHfConfig(smelt::HfConfigJson(c, smelt::DType::kF32, 1, 2), "again.json");
    SMELT_ASSERT(again.dim == c.dim && again.n_layers == c.n_layers && again.n_heads == c.n_heads &&
                 again.n_kv_heads == c.n_kv_heads && again.ff == c.ff && again.vocab == c.vocab);
  } catch (const smelt::Error&) {
  }
  try {
    CheckTokenizes(smelt::ParseSentencePieceModel(text, "tokenizer.model"));
  } catch (const smelt::Error&) {
  }
  const int records = Llama2cRecords(data, size);
  for (int count : {records, records + 1}) {
    if (count <= 0) continue;
    try {
      const smelt::Vocab v = smelt::ParseLlama2cVocab(std::span<const uint8_t>(data, size), count, "tokenizer.bin");
      SMELT_ASSERT(count == records && v.size() == count);
      CheckTokenizes(v);
    } catch (const smelt::Error&) {
    }
  }
  return 0;
}
