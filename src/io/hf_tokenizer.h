#pragma once
// Hugging Face tokenizers: tokenizer.json (the `tokenizers` library's format) and sentencepiece
// tokenizer.model, read into a Vocab; tokenizer.json written from one.
//
// tokenizer.json kinds understood (model.type "BPE"):
//   byte-level BPE (a ByteLevel pre-tokenizer)      -> Vocab "gpt2"; `pre` is recognised from the
//       pre-tokenizer's Split regexes (io/pretokenize.h); an unknown regex is an Error naming it.
//   SentencePiece-style BPE (byte_fallback, spaces  -> Vocab "llama". tokenizer.json keeps merges,
//       as "▁" via a Metaspace pre-tokenizer or a      not SentencePiece scores, so scores are
//       Replace normalizer: Llama 2, Mistral)          derived from them: a token made by the
//       merge of rank r scores -r, so the SPM algorithm merges in rank order, which is what the
//       BPE model does (llama.cpp's own HF converter falls back to -1000 for every token, which
//       loses the order). LoadHfTokenizerDir takes the true scores from tokenizer.model instead
//       when the folder has one.
// Added tokens: special -> control, others -> user-defined. Ids missing from the file become
// "[PADi]" unused tokens. BOS/EOS come from the post-processor template (add_bos/add_eos and
// the ids), else from the conventional token texts.
//
// SaveHfTokenizerJson writes a standard tokenizer.json and, inside "model", a "smelt" object
// with what the format cannot express (scores, token types, pre-tokenizer name, special ids and
// flags), so that LoadHfTokenizerJson gives back an equal Vocab.
#include <string>
#include <string_view>

#include "model/vocab.h"

namespace smelt {

Vocab LoadHfTokenizerJson(const std::string& path);
// Same, from the file's text; `source` names it in error messages.
Vocab ParseHfTokenizerJson(std::string_view json_text, const std::string& source = "tokenizer.json");
// A model folder: tokenizer.json, refined by tokenizer_config.json (bos/eos/unk/pad token names,
// add_bos_token/add_eos_token) and, for SentencePiece-style BPE, scores from tokenizer.model.
Vocab LoadHfTokenizerDir(const std::string& dir);

void SaveHfTokenizerJson(const Vocab& v, const std::string& path);
// The text SaveHfTokenizerJson writes.
std::string HfTokenizerJsonString(const Vocab& v);

// A sentencepiece model file (tokenizer.model) -> Vocab "llama": pieces, scores and piece types
// (normal/unknown/control/user-defined/unused/byte), unk/bos/eos/pad ids, add_space_prefix from
// the normalizer's add_dummy_prefix; add_bos as llama.cpp does for SPM vocabularies.
Vocab LoadSentencePieceModel(const std::string& path);
// The same from the file's bytes held in memory; `source` names them in errors.
Vocab ParseSentencePieceModel(std::string_view bytes, const std::string& source);

}  // namespace smelt
