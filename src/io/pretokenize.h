#pragma once
// Pre-tokenizers of byte-level BPE ("gpt2") vocabularies: the regex lists llama.cpp applies before
// BPE, chosen by Vocab::pre ("gpt-2", "llama-bpe", "qwen2", "deepseek-llm", "starcoder", ...).
//
// Splitting follows llama.cpp's unicode_regex_split: the regexes run one after another, each
// over every piece the previous ones produced; a piece splits into its matches and the gaps
// between them (both kept, HF's "Isolated" behaviour). Matching uses PCRE2 (UTF + UCP) on a copy
// of the text where non-ASCII white space is replaced by U+000B, as llama.cpp does, and `$`
// matches only at the very end of a piece (std::regex semantics, not Perl's "before a final
// newline"); \p{Lu}/\p{Ll}/\p{Lt}/\p{Lm}/\p{Lo} mean \p{L}, as in llama.cpp's collapsed matching.
// Words come back spelled with GPT-2's byte-to-unicode mapping, ready for the merges.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace smelt {

class PreTokenizer {
 public:
  // `pre` is a llama.cpp pre-tokenizer name (aliases accepted; "" means "default").
  // Throws Error for names it does not know.
  explicit PreTokenizer(std::string_view pre);

  // text -> words (byte-level spelling).
  std::vector<std::string> Split(std::string_view text) const;

  const std::string& name() const { return name_; }
  bool ignore_merges() const { return ignore_merges_; }  // a word that is a token is kept whole
  bool clean_spaces() const { return clean_spaces_; }    // detokenizer removes " ." " ," etc.

 private:
  struct Regex;
  std::string name_;
  bool ignore_merges_ = false;
  bool clean_spaces_ = true;
  std::vector<std::shared_ptr<const Regex>> regexes_;
};

// True if PreTokenizer accepts `pre`.
bool IsKnownPreTokenizer(std::string_view pre);

// The regex HF's ByteLevel pre-tokenizer applies when use_regex is true (GPT-2's).
extern const char* const kByteLevelRegex;

// HF tokenizer.json side. A tokenizer.json pre_tokenizer is described by its list of Split
// regexes in order (plus kByteLevelRegex last when ByteLevel has use_regex). Returns the llama.cpp
// pre-tokenizer name for a known list, "" otherwise. `ignore_merges` (model.ignore_merges) tells
// Llama-3 ("llama-bpe") apart from other users of the same regex.
std::string PreTokenizerFromHfRegexes(const std::vector<std::string>& regexes, bool ignore_merges);
// The HF regex list that describes pre-tokenizer `pre` (inverse of the above).
std::vector<std::string> HfRegexesForPreTokenizer(std::string_view pre);

}  // namespace smelt
