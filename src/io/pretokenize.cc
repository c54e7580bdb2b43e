#include "io/pretokenize.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <array>

#include "core/error.h"
#include "io/utf8.h"

namespace smelt {
namespace {

// ---- regexes (as llama.cpp applies them; its own adaptations of the tokenizer.json ones) ----

// GPT-2's, without the final "|\s+" (llama.cpp's list; the two split text identically).
constexpr const char* kGpt2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
constexpr const char* kLlama3 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kQwen2 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kQwen35 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| "
    "?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kStarcoderWords = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
constexpr const char* kDeepseekLetters =
    "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+";
constexpr const char* kDeepseekPunct = "\\s?[!-/:-~！-／：-～‘-‟　-。]+";
constexpr const char* kDeepseekCjk = "[一-龥ࠀ-一가-퟿]+";
constexpr const char* kDeepseek3Cjk = "[一-龥぀-ゟ゠-ヿ]+";
constexpr const char* kDeepseek3Words =
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
    "?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kBloom = " ?[^(\\s|.,!?…。，、।۔،)]+";
constexpr const char* kTekken =
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+(("
    "?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kGpt4o =
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'["
    "lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'["
    "vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kSeedCoder =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| "
    "?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kBailing =
    "'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+";
constexpr const char* kMinicpm5 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}+| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

struct PreSpec {
  std::vector<std::string_view> names;  // first is canonical
  std::vector<const char*> regexes;
  bool ignore_merges;
  bool clean_spaces;
};

// llama.cpp's pre-tokenizer table (llama-vocab.cpp), for the kinds smelt supports.
const std::vector<PreSpec>& PreSpecs() {
  static const std::vector<PreSpec> specs = {
      {{"default"},
       {"[\\p{P}\\$\\+<=>\\^~\\|]+", kGpt2, "\\p{N}+", "[0-9][0-9][0-9]"},
       false, true},
      {{"llama-bpe", "llama3", "llama-v3", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano"},
       {kLlama3}, true, true},
      {{"dbrx", "smaug-bpe", "glm4", "chatglm-bpe"}, {kLlama3}, false, true},
      {{"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum",
        "modern-bert", "jina-v1-en", "jina-v2-code", "roberta-bpe", "exaone4", "mpt", "olmo", "jais"},
       {kGpt2}, false, true},
      {{"trillion", "granite-docling"}, {kGpt2}, false, false},
      {{"starcoder", "refact", "codeshell", "exaone", "minerva-7b", "mellum2"}, {"\\p{N}", kStarcoderWords}, false, true},
      {{"command-r", "smollm"}, {"\\p{N}", kStarcoderWords}, false, false},
      {{"falcon"}, {"[\\p{P}\\$\\+<=>\\^~\\|`]+", kGpt2, "[0-9][0-9][0-9]"}, false, true},
      {{"deepseek-llm"}, {"[\r\n]", kDeepseekLetters, kDeepseekPunct, "\\s+$", kDeepseekCjk, "\\p{N}+"}, false, false},
      {{"deepseek-coder"}, {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", kDeepseekCjk, "\\p{N}"}, false, false},
      {{"deepseek-v3", "hunyuan-dense", "joyai-llm"}, {"\\p{N}{1,3}", kDeepseek3Cjk, kDeepseek3Words}, false, false},
      {{"qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "hunyuan", "solar-open", "grok-2"}, {kQwen2}, false, false},
      {{"stablelm2", "megrez"}, {kQwen2}, false, true},
      {{"qwen35"}, {kQwen35}, false, false},
      {{"bloom", "gpt3-finnish"}, {kBloom}, false, true},
      {{"poro-chat"}, {kBloom}, false, false},
      {{"viking"}, {kBloom, "\\p{N}"}, false, false},
      {{"tekken"}, {kTekken}, true, false},
      {{"gpt-4o", "llama4", "kanana2", "talkie"}, {kGpt4o}, false, false},
      {{"seed-coder"}, {kSeedCoder}, false, false},
      {{"bailingmoe", "bailingmoe2", "llada-moe"}, {kBailing}, false, false},
      {{"minicpm5"}, {"\\p{N}{1,3}", kMinicpm5}, true, true},
      {{"laguna"}, {"[^\\n]+|[\\n]+", kQwen2}, false, false},
  };
  return specs;
}

const PreSpec* FindSpec(std::string_view pre) {
  if (pre.empty()) pre = "default";
  for (const auto& s : PreSpecs()) {
    if (std::find(s.names.begin(), s.names.end(), pre) != s.names.end()) return &s;
  }
  return nullptr;
}

// llama.cpp treats the letter subcategories as \p{L}; so do we.
std::string AdaptRegex(std::string_view re) {
  std::string out(re);
  for (const char* sub : {"\\p{Lu}", "\\p{Ll}", "\\p{Lt}", "\\p{Lm}", "\\p{Lo}"}) {
    for (size_t pos; (pos = out.find(sub)) != std::string::npos;) out.replace(pos, 6, "\\p{L}");
  }
  return out;
}

bool IsNonAsciiSpace(uint32_t cp) {
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
         cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

struct MatchDataDeleter {
  void operator()(pcre2_match_data* m) const { pcre2_match_data_free(m); }
};
struct MatchContextDeleter {
  void operator()(pcre2_match_context* m) const { pcre2_match_context_free(m); }
};
struct JitStackDeleter {
  void operator()(pcre2_jit_stack* s) const { pcre2_jit_stack_free(s); }
};

}  // namespace

const char* const kByteLevelRegex =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

struct PreTokenizer::Regex {
  std::string source;
  pcre2_code* code = nullptr;
  ~Regex() { pcre2_code_free(code); }
};

bool IsKnownPreTokenizer(std::string_view pre) { return FindSpec(pre) != nullptr; }

PreTokenizer::PreTokenizer(std::string_view pre) {
  const PreSpec* spec = FindSpec(pre);
  if (!spec) Fail("unknown pre-tokenizer '{}'", pre);
  name_ = std::string(spec->names.front());
  ignore_merges_ = spec->ignore_merges;
  clean_spaces_ = spec->clean_spaces;
  for (const char* src : spec->regexes) {
    auto re = std::make_shared<Regex>();
    re->source = AdaptRegex(src);
    int err = 0;
    PCRE2_SIZE err_off = 0;
    re->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(re->source.data()), re->source.size(),
                             PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &err, &err_off, nullptr);
    if (!re->code) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof(msg));
      Fail("pre-tokenizer {}: regex /{}/ at offset {}: {}", name_, re->source, err_off,
           reinterpret_cast<const char*>(msg));
    }
    pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if unavailable
    regexes_.push_back(std::move(re));
  }
}

std::vector<std::string> PreTokenizer::Split(std::string_view text) const {
  const std::vector<uint32_t> cps = DecodeUtf8Lenient(text);
  const size_t n = cps.size();

  // The subject PCRE2 sees: valid UTF-8, non-ASCII white space as U+000B, surrogates (which
  // llama.cpp passes through) as a private-use character. byte_at[i] = byte offset of cps[i].
  std::string subject;
  subject.reserve(text.size());
  std::vector<size_t> byte_at(n + 1);
  for (size_t i = 0; i < n; ++i) {
    byte_at[i] = subject.size();
    uint32_t cp = cps[i];
    if (IsNonAsciiSpace(cp)) cp = 0x0B;
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xE000;
    AppendUtf8(cp, subject);
  }
  byte_at[n] = subject.size();
  auto cp_index = [&](size_t byte) {
    return static_cast<size_t>(std::lower_bound(byte_at.begin(), byte_at.end(), byte) - byte_at.begin());
  };

  std::unique_ptr<pcre2_match_data, MatchDataDeleter> md(pcre2_match_data_create(1, nullptr));
  std::unique_ptr<pcre2_match_context, MatchContextDeleter> mctx(pcre2_match_context_create(nullptr));
  std::unique_ptr<pcre2_jit_stack, JitStackDeleter> jit_stack(pcre2_jit_stack_create(32 * 1024, 8 << 20, nullptr));
  if (!md || !mctx || !jit_stack) Fail("pre-tokenizer {}: out of memory", name_);
  pcre2_jit_stack_assign(mctx.get(), nullptr, jit_stack.get());
  const auto* subj = reinterpret_cast<PCRE2_SPTR>(subject.data());

  // Pieces as (first code point, count).
  std::vector<std::pair<size_t, size_t>> pieces;
  if (n > 0) pieces.emplace_back(0, n);
  std::vector<std::pair<size_t, size_t>> next;
  for (const auto& re : regexes_) {
    next.clear();
    next.reserve(pieces.size() * 2);
    for (const auto& [start, count] : pieces) {
      const size_t b0 = byte_at[start], b1 = byte_at[start + count];
      size_t pos = b0;   // search position (bytes)
      size_t done = b0;  // end of what has been emitted
      while (pos < b1) {
        int rc = pcre2_match(re->code, subj + b0, b1 - b0, pos - b0, PCRE2_NO_UTF_CHECK, md.get(), mctx.get());
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
          PCRE2_UCHAR msg[256];
          pcre2_get_error_message(rc, msg, sizeof(msg));
          Fail("pre-tokenizer {}: regex /{}/: {}", name_, re->source, reinterpret_cast<const char*>(msg));
        }
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
        const size_t ms = b0 + ov[0], me = b0 + ov[1];
        if (me == ms) {  // empty match: step over one character
          pos = byte_at[cp_index(ms) + 1];
          continue;
        }
        if (ms > done) next.emplace_back(cp_index(done), cp_index(ms) - cp_index(done));
        next.emplace_back(cp_index(ms), cp_index(me) - cp_index(ms));
        done = pos = me;
      }
      if (done < b1) next.emplace_back(cp_index(done), cp_index(b1) - cp_index(done));
    }
    pieces.swap(next);
  }

  std::vector<std::string> words;
  words.reserve(pieces.size());
  std::string raw;
  for (const auto& [start, count] : pieces) {
    raw.clear();
    for (size_t i = start; i < start + count; ++i) AppendUtf8(cps[i], raw);
    words.push_back(ByteEncode(raw));
  }
  return words;
}

// ---- tokenizer.json regexes ---------------------------------------------------------------

namespace {

struct HfForm {
  std::string_view pre;
  std::vector<const char*> regexes;
  int ignore_merges;  // -1: either, 0/1: must match model.ignore_merges
};

constexpr const char* kLlama3Hf =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kQwen2Hf =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kQwen35Hf =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| "
    "?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kTekkenHf =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|[^\\r\\n\\p{L}\\p{N}]?["
    "\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+";
constexpr const char* kGpt4oHf =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'"
    "d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'"
    "ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kSeedCoderHf =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\r\n]+|\\s*[\r\n]+|\\s+(?!"
    "\\S)|\\s+";

// Known tokenizer.json pre_tokenizer regex lists (first match wins; a name's first entry is
// what SaveHfTokenizerJson writes for it).
const std::vector<HfForm>& HfForms() {
  static const std::vector<HfForm> forms = {
      {"gpt-2", {kByteLevelRegex}, -1},
      {"llama-bpe", {kLlama3Hf}, 1},
      {"llama-bpe", {kLlama3}, 1},
      {"dbrx", {kLlama3Hf}, 0},
      {"dbrx", {kLlama3}, 0},
      {"qwen2", {kQwen2Hf}, -1},
      {"qwen2", {kQwen2}, -1},
      {"qwen35", {kQwen35Hf}, -1},
      {"qwen35", {kQwen35}, -1},
      {"starcoder", {"\\p{N}", kByteLevelRegex}, -1},
      {"deepseek-llm", {"[\r\n]", kDeepseekLetters, kDeepseekPunct, "\\s+$", kDeepseekCjk, "\\p{N}+"}, -1},
      {"deepseek-coder", {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", kDeepseekCjk, "\\p{N}"}, -1},
      {"deepseek-v3", {"\\p{N}{1,3}", kDeepseek3Cjk, kDeepseek3Words}, -1},
      {"tekken", {kTekkenHf}, -1},
      {"gpt-4o", {kGpt4oHf}, -1},
      {"seed-coder", {kSeedCoderHf}, -1},
      {"bloom", {kBloom}, -1},
  };
  return forms;
}

}  // namespace

std::string PreTokenizerFromHfRegexes(const std::vector<std::string>& regexes, bool ignore_merges) {
  for (const auto& f : HfForms()) {
    if (f.ignore_merges >= 0 && f.ignore_merges != (ignore_merges ? 1 : 0)) continue;
    if (f.regexes.size() != regexes.size()) continue;
    if (std::equal(regexes.begin(), regexes.end(), f.regexes.begin())) return std::string(f.pre);
  }
  // llama.cpp's own lists (what SaveHfTokenizerJson writes for names without an HF form).
  for (const auto& spec : PreSpecs()) {
    if (spec.ignore_merges != ignore_merges || spec.regexes.size() != regexes.size()) continue;
    if (std::equal(regexes.begin(), regexes.end(), spec.regexes.begin())) return std::string(spec.names.front());
  }
  return "";
}

std::vector<std::string> HfRegexesForPreTokenizer(std::string_view pre) {
  const PreSpec* spec = FindSpec(pre);
  if (!spec) Fail("unknown pre-tokenizer '{}'", pre);
  // The HF form of this name, else of a name that splits the same way, else llama.cpp's list.
  for (const auto& f : HfForms()) {
    if (f.pre == spec->names.front()) return {f.regexes.begin(), f.regexes.end()};
  }
  for (const auto& f : HfForms()) {
    const auto& other = FindSpec(f.pre)->regexes;
    if (std::equal(other.begin(), other.end(), spec->regexes.begin(), spec->regexes.end(),
                   [](std::string_view a, std::string_view b) { return a == b; })) {
      return {f.regexes.begin(), f.regexes.end()};
    }
  }
  return {spec->regexes.begin(), spec->regexes.end()};
}

}  // namespace smelt
