#pragma once
// Shared between the tokenizer.json reader (hf_tokenizer.cc) and writer (hf_tokenizer_save.cc).
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "model/vocab.h"

namespace smelt {

struct HfTokenizerParse {
  Vocab vocab;
  bool has_extension = false;  // the file carries SaveHfTokenizerJson's "smelt" object
};
HfTokenizerParse ParseHfTokenizerJsonDetailed(std::string_view text, const std::string& source);

// model.smelt: what tokenizer.json cannot say (pre-tokenizer name, token types, scores, special
// ids and flags, whether the merges belong to the vocabulary). Written by SaveHfTokenizerJson,
// applied over what the reader derived; `merges` are the file's merges.
nlohmann::json SmeltExtension(const Vocab& v);
void ApplySmeltExtension(const nlohmann::json& ext, const std::string& source,
                         const std::vector<std::string>& merges, Vocab& v);

}  // namespace smelt
