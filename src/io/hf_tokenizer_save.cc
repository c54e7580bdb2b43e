// Vocab -> tokenizer.json, plus the "smelt" extension that makes the round trip exact.
#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "core/mapped_file.h"
#include "io/hf_tokenizer.h"
#include "io/hf_tokenizer_internal.h"
#include "io/json_util.h"
#include "io/pretokenize.h"
#include "io/utf8.h"

namespace smelt {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

namespace {

constexpr int kExtensionVersion = 1;
constexpr const char* kSpace = "\xE2\x96\x81";  // "▁"

// A string as a JSON literal; tokens must be valid UTF-8 to be written at all.
std::string Quote(const std::string& s, const char* what) {
  try {
    return json(s).dump();
  } catch (const json::exception&) {
    Fail("cannot write tokenizer.json: {} '{}' is not valid UTF-8", what, Printable(s));
  }
}

bool IsSpecialType(TokenType t) { return t == TokenType::kControl || t == TokenType::kUserDefined; }

// SentencePiece-style vocabulary: merges that rebuild each normal token from two tokens, best
// score first (HF's SentencePiece extractor: every split of a piece into two pieces).
std::vector<std::string> MergesFromScores(const Vocab& v) {
  std::unordered_map<std::string_view, int32_t> id_of;
  for (int32_t i = 0; i < v.size(); ++i) id_of.emplace(v.tokens[i], i);
  struct Merge {
    float score;
    int32_t l, r;
    size_t split;
    int32_t token;
  };
  std::vector<Merge> merges;
  for (int32_t i = 0; i < v.size(); ++i) {
    if (v.types[i] != TokenType::kNormal) continue;
    const std::string_view t = v.tokens[i];
    std::vector<Merge> local;
    for (size_t k = Utf8SeqLen(static_cast<uint8_t>(t[0])); k < t.size(); k += Utf8SeqLen(static_cast<uint8_t>(t[k]))) {
      auto l = id_of.find(t.substr(0, k)), r = id_of.find(t.substr(k));
      if (l != id_of.end() && r != id_of.end()) local.push_back({v.scores.empty() ? 0.0f : v.scores[i], l->second, r->second, k, i});
    }
    std::sort(local.begin(), local.end(), [](const Merge& a, const Merge& b) { return a.l != b.l ? a.l < b.l : a.r < b.r; });
    merges.insert(merges.end(), local.begin(), local.end());
  }
  std::stable_sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) { return a.score > b.score; });
  std::vector<std::string> out;
  out.reserve(merges.size());
  for (const Merge& m : merges) {
    const std::string& t = v.tokens[m.token];
    out.push_back(t.substr(0, m.split) + " " + t.substr(m.split));
  }
  return out;
}

ojson PreTokenizerJson(const Vocab& v) {
  if (v.model == "llama") {
    return {{"type", "Metaspace"}, {"replacement", kSpace}, {"prepend_scheme", v.add_space_prefix ? "first" : "never"},
            {"split", false}};
  }
  const std::vector<std::string> regexes = HfRegexesForPreTokenizer(v.pre);
  const bool byte_level_regex = !regexes.empty() && regexes.back() == kByteLevelRegex;
  ojson byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", byte_level_regex}};
  if (regexes.size() == 1 && byte_level_regex) return byte_level;
  ojson seq = ojson::array();
  for (size_t i = 0; i + (byte_level_regex ? 1 : 0) < regexes.size(); ++i) {
    seq.push_back({{"type", "Split"}, {"pattern", {{"Regex", regexes[i]}}}, {"behavior", "Isolated"}, {"invert", false}});
  }
  seq.push_back(byte_level);
  return {{"type", "Sequence"}, {"pretokenizers", seq}};
}

ojson DecoderJson(const Vocab& v) {
  if (v.model == "gpt2") return {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  ojson seq = ojson::array();
  seq.push_back({{"type", "Replace"}, {"pattern", {{"String", kSpace}}}, {"content", " "}});
  seq.push_back({{"type", "ByteFallback"}});
  seq.push_back({{"type", "Fuse"}});
  if (v.add_space_prefix) seq.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
  return {{"type", "Sequence"}, {"decoders", seq}};
}

ojson PostProcessorJson(const Vocab& v) {
  const bool bos = v.add_bos && v.bos >= 0, eos = v.add_eos && v.eos >= 0;
  if (!bos && !eos) {
    if (v.model == "gpt2") return {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}};
    return nullptr;
  }
  auto special = [&](int32_t id, int type_id) { return ojson{{"SpecialToken", {{"id", v.tokens[id]}, {"type_id", type_id}}}}; };
  auto sequence = [](const char* name, int type_id) { return ojson{{"Sequence", {{"id", name}, {"type_id", type_id}}}}; };
  ojson single = ojson::array(), pair = ojson::array(), specials = ojson::object();
  if (bos) single.push_back(special(v.bos, 0));
  single.push_back(sequence("A", 0));
  if (eos) single.push_back(special(v.eos, 0));
  pair = single;
  if (bos) pair.push_back(special(v.bos, 1));
  pair.push_back(sequence("B", 1));
  if (eos) pair.push_back(special(v.eos, 1));
  for (int32_t id : {bos ? v.bos : -1, eos ? v.eos : -1}) {
    if (id >= 0) specials[v.tokens[id]] = {{"id", v.tokens[id]}, {"ids", {id}}, {"tokens", {v.tokens[id]}}};
  }
  return {{"type", "TemplateProcessing"}, {"single", single}, {"pair", pair}, {"special_tokens", specials}};
}

}  // namespace

json SmeltExtension(const Vocab& v) {
  json ext = {{"version", kExtensionVersion}, {"model", v.model}, {"pre", v.pre}, {"bos", v.bos}, {"eos", v.eos},
              {"unk", v.unk}, {"pad", v.pad}, {"add_bos", v.add_bos}, {"add_eos", v.add_eos},
              {"add_space_prefix", v.add_space_prefix}, {"keep_merges", !v.merges.empty()}};
  json types = json::array();
  for (TokenType t : v.types) types.push_back(static_cast<int32_t>(t));
  ext["types"] = std::move(types);
  if (!v.scores.empty()) ext["scores"] = v.scores;
  return ext;
}

void ApplySmeltExtension(const json& ext, const std::string& source, const std::vector<std::string>& merges, Vocab& v) {
  if (!ext.is_object()) Fail("{}: model.smelt is not an object", source);
  // Integers are read only from JSON integers in range: a float or a huge number is an error,
  // never a conversion.
  auto integer = [&](const json& j, const std::string& what, int64_t lo, int64_t hi) -> int64_t {
    if (!j.is_number_integer()) Fail("{}: model.smelt.{} is not an integer", source, what);
    if (j.is_number_unsigned() ? j.get<uint64_t>() > static_cast<uint64_t>(hi) : j.get<int64_t>() < lo || j.get<int64_t>() > hi) {
      Fail("{}: model.smelt.{} is outside [{}, {}]", source, what, lo, hi);
    }
    return j.get<int64_t>();
  };
  const auto version = ext.find("version");
  if (version == ext.end() || !version->is_number_integer() || version->get<int64_t>() != kExtensionVersion) {
    Fail("{}: model.smelt version {} is not supported", source, version == ext.end() ? "(none)" : version->dump());
  }
  if (ext.value("model", std::string()) != v.model) {
    Fail("{}: model.smelt says model '{}' but the file describes '{}'", source, ext.value("model", std::string()), v.model);
  }
  const int32_t n = v.size();
  v.pre = ext.value("pre", v.pre);
  auto id = [&](const char* key) -> int32_t {
    const auto it = ext.find(key);
    if (it == ext.end()) return -1;
    return static_cast<int32_t>(integer(*it, key, -1, n - 1));
  };
  v.bos = id("bos");
  v.eos = id("eos");
  v.unk = id("unk");
  v.pad = id("pad");
  v.add_bos = ext.value("add_bos", v.add_bos);
  v.add_eos = ext.value("add_eos", v.add_eos);
  v.add_space_prefix = ext.value("add_space_prefix", v.add_space_prefix);
  const json& types = ext.at("types");
  if (!types.is_array() || static_cast<int32_t>(types.size()) != n) {
    Fail("{}: model.smelt.types has {} entries for {} tokens", source, types.is_array() ? types.size() : 0, n);
  }
  for (int32_t i = 0; i < n; ++i) {
    const int64_t t = integer(types[i], fmt::format("types[{}]", i), 0, static_cast<int64_t>(TokenType::kByte));
    v.types[i] = static_cast<TokenType>(t);
  }
  v.scores.clear();
  if (auto s = ext.find("scores"); s != ext.end()) {
    if (!s->is_array() || static_cast<int32_t>(s->size()) != n) Fail("{}: model.smelt.scores has the wrong length", source);
    v.scores.reserve(n);
    for (const json& x : *s) {
      if (!x.is_number()) Fail("{}: model.smelt.scores holds a non-number", source);
      const double d = x.get<double>();
      if (!(std::fabs(d) <= std::numeric_limits<float>::max())) Fail("{}: model.smelt.scores holds {} (not a finite float)", source, d);
      v.scores.push_back(static_cast<float>(d));
    }
  }
  v.merges = ext.value("keep_merges", false) ? merges : std::vector<std::string>{};
}

std::string HfTokenizerJsonString(const Vocab& v) {
  if (v.model != "llama" && v.model != "gpt2") Fail("cannot write tokenizer.json for tokenizer model '{}'", v.model);
  const int32_t n = v.size();
  if (n == 0) Fail("cannot write tokenizer.json: empty vocabulary");
  if (v.types.size() != v.tokens.size()) Fail("cannot write tokenizer.json: {} token types for {} tokens", v.types.size(), n);
  if (!v.scores.empty() && v.scores.size() != v.tokens.size()) {
    Fail("cannot write tokenizer.json: {} scores for {} tokens", v.scores.size(), n);
  }
  for (float s : v.scores) {
    if (!std::isfinite(s)) Fail("cannot write tokenizer.json: a token score is not finite");
  }
  if (v.model == "gpt2" && !IsKnownPreTokenizer(v.pre)) Fail("cannot write tokenizer.json: unknown pre-tokenizer '{}'", v.pre);
  std::unordered_set<std::string_view> seen;
  for (const std::string& t : v.tokens) {
    if (!seen.insert(t).second) Fail("cannot write tokenizer.json: token '{}' appears twice", Printable(t));
  }
  const std::vector<std::string> merges = v.model == "llama" && v.merges.empty() ? MergesFromScores(v) : v.merges;

  ojson added = ojson::array();
  for (int32_t i = 0; i < n; ++i) {
    if (!IsSpecialType(v.types[i]) && !(v.model == "llama" && i == v.unk)) continue;
    added.push_back({{"id", i}, {"content", v.tokens[i]}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                     {"normalized", false}, {"special", v.types[i] != TokenType::kUserDefined}});
  }
  const bool spm = v.model == "llama";
  const bool ignore_merges = !spm && PreTokenizer(v.pre).ignore_merges();

  auto dump = [](const ojson& j) {
    try {
      return j.dump();
    } catch (const ojson::exception&) {
      Fail("cannot write tokenizer.json: a token is not valid UTF-8");
    }
  };
  std::string s;
  s.reserve(static_cast<size_t>(n) * 24 + merges.size() * 16);
  s += "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [";
  for (size_t i = 0; i < added.size(); ++i) s += (i ? ",\n    " : "\n    ") + dump(added[i]);
  s += added.empty() ? "],\n" : "\n  ],\n";
  s += "  \"normalizer\": null,\n";
  s += "  \"pre_tokenizer\": " + dump(PreTokenizerJson(v)) + ",\n";
  s += "  \"post_processor\": " + dump(PostProcessorJson(v)) + ",\n";
  s += "  \"decoder\": " + dump(DecoderJson(v)) + ",\n";
  s += "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n";
  s += "    \"unk_token\": " + (v.unk >= 0 && v.unk < n ? Quote(v.tokens[v.unk], "token") : std::string("null")) + ",\n";
  s += "    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n";
  s += fmt::format("    \"fuse_unk\": {},\n    \"byte_fallback\": {},\n    \"ignore_merges\": {},\n", spm, spm, ignore_merges);
  s += "    \"smelt\": " + SmeltExtension(v).dump() + ",\n";
  s += "    \"vocab\": {";
  for (int32_t i = 0; i < n; ++i) s += fmt::format("{}\n      {}: {}", i ? "," : "", Quote(v.tokens[i], "token"), i);
  s += "\n    },\n    \"merges\": [";
  for (size_t i = 0; i < merges.size(); ++i) s += (i ? ",\n      " : "\n      ") + Quote(merges[i], "merge");
  s += merges.empty() ? "]\n  }\n}\n" : "\n    ]\n  }\n}\n";
  return s;
}

void SaveHfTokenizerJson(const Vocab& v, const std::string& path) {
  std::string text;
  try {
    text = HfTokenizerJsonString(v);
  } catch (const Error& e) {
    Rethrow(path, e);
  }
  WriteFileAtomic(path, text.data(), text.size());
}

}  // namespace smelt
