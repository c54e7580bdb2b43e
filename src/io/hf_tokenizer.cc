// tokenizer.json -> Vocab (see hf_tokenizer.h for what is understood and how scores are derived).
#include "io/hf_tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <unordered_map>

#include "core/error.h"
#include "core/mapped_file.h"
#include "io/hf_tokenizer_internal.h"
#include "io/json_util.h"
#include "io/pretokenize.h"
#include "io/tokenizer.h"
#include "io/utf8.h"

namespace smelt {

using json = nlohmann::json;

namespace {

constexpr int32_t kMaxTokens = 1 << 20;  // far above any real vocabulary (~260K); bounds allocations

// The few json accessors the reader needs, each failing with a one-line Error naming the file.
struct Reader {
  const std::string& source;

  const json* Child(const json& obj, const char* key) const {
    if (!obj.is_object()) return nullptr;
    auto it = obj.find(key);
    return it == obj.end() || it->is_null() ? nullptr : &*it;
  }
  std::string String(const json& obj, const char* key, const std::string& dflt = "") const {
    const json* c = Child(obj, key);
    if (!c) return dflt;
    if (!c->is_string()) Fail("{}: \"{}\" is not a string", source, key);
    return c->get<std::string>();
  }
  bool Bool(const json& obj, const char* key, bool dflt) const {
    const json* c = Child(obj, key);
    if (!c) return dflt;
    if (!c->is_boolean()) Fail("{}: \"{}\" is not true/false", source, key);
    return c->get<bool>();
  }
  // `what` and `name` describe the entry in error messages ("token", "abc").
  int32_t Id(const json& value, const char* what, std::string_view name = {}) const {
    auto where = [&] { return name.empty() ? std::string(what) : fmt::format("{} {}", what, Printable(name)); };
    if (!value.is_number_integer()) Fail("{}: {}: id is not an integer", source, where());
    const int64_t id = value.get<int64_t>();
    if (id < 0 || id >= kMaxTokens) Fail("{}: {}: id {} out of range", source, where(), id);
    return static_cast<int32_t>(id);
  }
};

// Visits a pre_tokenizer / normalizer / decoder tree (Sequence nodes flattened), in order.
template <class F>
void ForEachNode(const json* node, const char* list_key, F&& f) {
  if (!node || !node->is_object()) return;
  auto type = node->find("type");
  if (type != node->end() && *type == "Sequence") {
    auto list = node->find(list_key);
    if (list != node->end() && list->is_array()) {
      for (const json& child : *list) ForEachNode(&child, list_key, f);
    }
    return;
  }
  f(*node);
}

std::string NodeType(const json& node) {
  auto t = node.find("type");
  return t != node.end() && t->is_string() ? t->get<std::string>() : "";
}

bool LooksSpecial(const std::string& t) {  // llama.cpp's does_token_look_special
  auto wrapped = [&](std::string_view a, std::string_view b) {
    return t.size() >= a.size() + b.size() && t.compare(0, a.size(), a) == 0 &&
           t.compare(t.size() - b.size(), b.size(), b) == 0;
  };
  return t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]" || wrapped("<|", "|>") ||
         wrapped("<｜", "｜>") || wrapped("<unused", ">");
}


int32_t IdOfText(const Vocab& v, std::string_view text) {
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    if (v.tokens[i] == text) return static_cast<int32_t>(i);
  }
  return -1;
}

// add_bos/add_eos and their ids from a TemplateProcessing post-processor (possibly in a Sequence).
void ReadTemplate(const Reader& r, const json* post, Vocab& v, bool* found) {
  ForEachNode(post, "processors", [&](const json& node) {
    if (NodeType(node) != "TemplateProcessing") return;
    const json* single = r.Child(node, "single");
    if (!single || !single->is_array()) return;
    *found = true;
    auto special_id = [&](const json& item) -> int32_t {
      const json* st = r.Child(item, "SpecialToken");
      if (!st) return -2;  // not a special token
      const std::string name = r.String(*st, "id");
      if (const json* specials = r.Child(node, "special_tokens")) {
        if (const json* entry = r.Child(*specials, name.c_str())) {
          if (const json* ids = r.Child(*entry, "ids"); ids && ids->is_array() && !ids->empty()) {
            return r.Id((*ids)[0], "post_processor special token", name);
          }
        }
      }
      return IdOfText(v, name);
    };
    v.add_bos = v.add_eos = false;
    if (!single->empty()) {
      if (int32_t id = special_id(single->front()); id != -2) {
        v.add_bos = true;
        if (id >= 0) v.bos = id;
      }
    }
    if (single->size() > 1) {
      if (int32_t id = special_id(single->back()); id != -2) {
        v.add_eos = true;
        if (id >= 0) v.eos = id;
      }
    }
  });
}

}  // namespace

HfTokenizerParse ParseHfTokenizerJsonDetailed(std::string_view text, const std::string& source) {
  const json j = ParseJsonStrict(text, source);
  const Reader r{source};
  try {
    if (!j.is_object()) Fail("{}: not a tokenizer.json (top level is not an object)", source);
    const json* model = r.Child(j, "model");
    if (!model || !model->is_object()) Fail("{}: no \"model\" object", source);
    const std::string type = r.String(*model, "type", r.Child(*model, "merges") ? "BPE" : "");
    if (type != "BPE") Fail("{}: tokenizer model type '{}' is not supported (smelt reads BPE)", source, type);

    // Tokens: model.vocab, then added_tokens (which may extend it and carry the special flag).
    const json* vocab = r.Child(*model, "vocab");
    if (!vocab || !vocab->is_object()) Fail("{}: model has no \"vocab\" object", source);
    std::vector<std::pair<int32_t, std::string>> entries;  // (id, text)
    entries.reserve(vocab->size());
    for (auto it = vocab->begin(); it != vocab->end(); ++it) entries.emplace_back(r.Id(it.value(), "token", it.key()), it.key());
    std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (size_t i = 1; i < entries.size(); ++i) {
      if (entries[i].first == entries[i - 1].first) Fail("{}: tokens share id {}", source, entries[i].first);
    }
    std::vector<std::pair<int32_t, bool>> added;  // (id, special)
    std::vector<std::string> added_text;
    if (const json* at = r.Child(j, "added_tokens")) {
      if (!at->is_array()) Fail("{}: \"added_tokens\" is not a list", source);
      for (const json& t : *at) {
        const json* id = r.Child(t, "id");
        if (!id) Fail("{}: added token without an id", source);
        added.emplace_back(r.Id(*id, "added token"), r.Bool(t, "special", false));
        added_text.push_back(r.String(t, "content"));
      }
    }
    int32_t max_id = entries.empty() ? -1 : entries.back().first;
    for (const auto& a : added) max_id = std::max(max_id, a.first);
    if (max_id < 0) Fail("{}: empty vocabulary", source);

    HfTokenizerParse out;
    Vocab& v = out.vocab;
    const int32_t n = max_id + 1;
    v.tokens.resize(n);
    v.types.assign(n, TokenType::kUnused);
    for (auto& [id, text] : entries) {
      v.tokens[id] = std::move(text);
      v.types[id] = TokenType::kNormal;
    }
    for (size_t k = 0; k < added.size(); ++k) {
      v.tokens[added[k].first] = added_text[k];
      v.types[added[k].first] = TokenType::kNormal;
    }
    for (int32_t i = 0; i < n; ++i) {
      if (v.types[i] == TokenType::kUnused) v.tokens[i] = fmt::format("[PAD{}]", i);  // an id no entry names
    }

    // Merges: "a b" strings or ["a", "b"] pairs, in rank order.
    std::vector<std::string> merges;
    if (const json* m = r.Child(*model, "merges")) {
      if (!m->is_array()) Fail("{}: \"merges\" is not a list", source);
      merges.reserve(m->size());
      for (const json& e : *m) {
        if (e.is_string()) {
          merges.push_back(e.get<std::string>());
        } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
          merges.push_back(e[0].get<std::string>() + " " + e[1].get<std::string>());
        } else {
          Fail("{}: merge #{} is neither \"a b\" nor [\"a\", \"b\"]", source, merges.size());
        }
      }
    }

    // Which kind: byte-level (gpt2) or SentencePiece-style (llama).
    const json* pre = r.Child(j, "pre_tokenizer");
    const json* norm = r.Child(j, "normalizer");
    const json* dec = r.Child(j, "decoder");
    bool byte_level = false, metaspace = false, prepend_space = false;
    ForEachNode(pre, "pretokenizers", [&](const json& node) {
      const std::string t = NodeType(node);
      if (t == "ByteLevel") byte_level = true;
      if (t == "Metaspace") {
        metaspace = true;
        const std::string scheme = r.String(node, "prepend_scheme", r.Bool(node, "add_prefix_space", true) ? "always" : "never");
        prepend_space = scheme != "never";
      }
    });
    ForEachNode(norm, "normalizers", [&](const json& node) {
      const std::string t = NodeType(node);
      if (t == "Prepend" && r.String(node, "prepend") == "\xE2\x96\x81") prepend_space = true;
      if (t == "Replace" && r.String(node, "content") == "\xE2\x96\x81") metaspace = true;
    });
    ForEachNode(dec, "decoders", [&](const json& node) {
      if (NodeType(node) == "ByteLevel") byte_level = true;
    });
    const bool byte_fallback = r.Bool(*model, "byte_fallback", false);
    const bool ignore_merges = r.Bool(*model, "ignore_merges", false);
    const std::string unk_text = r.String(*model, "unk_token");

    if (byte_level) {
      v.model = "gpt2";
      v.add_space_prefix = false;
      std::vector<std::string> regexes;
      ForEachNode(pre, "pretokenizers", [&](const json& node) {
        const std::string t = NodeType(node);
        if (t == "Split") {
          const json* pattern = r.Child(node, "pattern");
          const std::string re = pattern ? r.String(*pattern, "Regex") : "";
          if (re.empty()) Fail("{}: Split pre-tokenizer without a regex pattern", source);
          const std::string behavior = r.String(node, "behavior", "Isolated");
          if (behavior != "Isolated" || r.Bool(node, "invert", false)) {
            Fail("{}: Split pre-tokenizer with behavior {}{} is not supported", source, behavior,
                 r.Bool(node, "invert", false) ? " (inverted)" : "");
          }
          regexes.push_back(re);
        } else if (t == "ByteLevel") {
          if (r.Bool(node, "add_prefix_space", false)) Fail("{}: ByteLevel add_prefix_space is not supported", source);
          if (r.Bool(node, "use_regex", true)) regexes.push_back(kByteLevelRegex);
        } else if (t == "Digits") {
          regexes.push_back(r.Bool(node, "individual_digits", false) ? "\\p{N}" : "\\p{N}+");
        } else {
          Fail("{}: pre-tokenizer {} is not supported", source, t.empty() ? "(untyped)" : t);
        }
      });
      v.pre = PreTokenizerFromHfRegexes(regexes, ignore_merges);
      if (v.pre.empty()) {
        Fail("{}: unknown pre-tokenizer regex {} (not one llama.cpp knows)", source, Printable(json(regexes).dump(), 300));
      }
      v.merges = merges;
      for (const auto& [id, special] : added) {
        v.types[id] = special || LooksSpecial(v.tokens[id]) ? TokenType::kControl : TokenType::kUserDefined;
      }
      if (!unk_text.empty()) v.unk = IdOfText(v, unk_text);
      for (const char* t : {"<|endoftext|>", "<|end_of_text|>", "</s>"}) {
        if (v.eos < 0) v.eos = IdOfText(v, t);
      }
      bool has_template = false;
      ReadTemplate(r, r.Child(j, "post_processor"), v, &has_template);
      if (v.bos < 0) v.bos = v.eos;  // GPT-2 style: one <|endoftext|> for both
    } else if (metaspace || byte_fallback) {
      v.model = "llama";
      v.pre = "default";
      v.add_space_prefix = prepend_space;
      for (int32_t i = 0; i < n; ++i) {
        if (ByteTokenValue(v.tokens[i]) >= 0) v.types[i] = TokenType::kByte;
      }
      if (!unk_text.empty()) {
        v.unk = IdOfText(v, unk_text);
        if (v.unk >= 0) v.types[v.unk] = TokenType::kUnknown;
      }
      for (const auto& [id, special] : added) {
        if (id == v.unk) continue;
        v.types[id] = special ? TokenType::kControl : TokenType::kUserDefined;
      }
      // Scores: a token made by the merge of rank r scores -r (first merge making it wins);
      // other multi-character tokens can never be built by BPE and score lowest.
      v.scores.assign(n, 0.0f);
      std::vector<bool> scored(n, false);
      std::unordered_map<std::string_view, int32_t> id_of;
      for (int32_t i = 0; i < n; ++i) id_of.emplace(v.tokens[i], i);
      std::string joined;
      for (size_t rank = 0; rank < merges.size(); ++rank) {
        const std::string& m = merges[rank];
        const size_t sp = m.find(' ', 1);
        if (sp == std::string::npos) continue;
        joined.assign(m, 0, sp);
        joined.append(m, sp + 1);
        auto it = id_of.find(joined);
        if (it == id_of.end() || scored[it->second]) continue;
        scored[it->second] = true;
        v.scores[it->second] = -static_cast<float>(rank);
      }
      for (int32_t i = 0; i < n; ++i) {
        const std::string& t = v.tokens[i];
        const bool multi = !t.empty() && Utf8SeqLen(static_cast<uint8_t>(t[0])) < t.size();
        if (!scored[i] && v.types[i] == TokenType::kNormal && multi) v.scores[i] = -1e9f;
      }
      v.add_bos = true;
      v.bos = IdOfText(v, "<s>");
      v.eos = IdOfText(v, "</s>");
      bool has_template = false;
      ReadTemplate(r, r.Child(j, "post_processor"), v, &has_template);
    } else {
      Fail("{}: neither byte-level BPE nor SentencePiece-style BPE (no ByteLevel or Metaspace pre-tokenizer)", source);
    }

    // What SaveHfTokenizerJson records beyond the standard format.
    if (const json* ext = r.Child(*model, "smelt")) {
      out.has_extension = true;
      ApplySmeltExtension(*ext, source, merges, v);
    }
    return out;
  } catch (const json::exception& e) {
    Fail("{}: malformed tokenizer.json: {}", source, Printable(e.what(), 200));
  }
}

Vocab ParseHfTokenizerJson(std::string_view json_text, const std::string& source) {
  return ParseHfTokenizerJsonDetailed(json_text, source).vocab;
}

Vocab LoadHfTokenizerJson(const std::string& path) { return ParseHfTokenizerJson(ReadFileToString(path), path); }

Vocab LoadHfTokenizerDir(const std::string& dir) {
  namespace fs = std::filesystem;
  const std::string tj = (fs::path(dir) / "tokenizer.json").string();
  HfTokenizerParse p = ParseHfTokenizerJsonDetailed(ReadFileToString(tj), tj);
  Vocab& v = p.vocab;

  std::error_code ec;
  const fs::path tc = fs::path(dir) / "tokenizer_config.json";
  if (fs::exists(tc, ec)) {
    const std::string src = tc.string();
    const json c = ParseJsonStrict(ReadFileToString(src), src);
    const Reader r{src};
    try {
      v.add_bos = r.Bool(c, "add_bos_token", v.add_bos);
      v.add_eos = r.Bool(c, "add_eos_token", v.add_eos);
      auto token = [&](const char* key, int32_t& id) {
        const json* t = r.Child(c, key);
        if (!t) return;
        std::string text = t->is_string() ? t->get<std::string>() : r.String(*t, "content");
        if (int32_t found = IdOfText(v, text); found >= 0) id = found;
      };
      token("bos_token", v.bos);
      token("eos_token", v.eos);
      token("unk_token", v.unk);
      token("pad_token", v.pad);
    } catch (const json::exception& e) {
      Fail("{}: {}", src, Printable(e.what(), 200));
    }
  }

  // SentencePiece-style BPE: the true scores are in tokenizer.model, when it matches.
  const fs::path tm = fs::path(dir) / "tokenizer.model";
  if (v.model == "llama" && !p.has_extension && fs::exists(tm, ec)) {
    const Vocab sp = LoadSentencePieceModel(tm.string());
    const size_t common = std::min(sp.tokens.size(), v.tokens.size());
    if (std::equal(sp.tokens.begin(), sp.tokens.begin() + common, v.tokens.begin())) {
      std::copy(sp.scores.begin(), sp.scores.begin() + common, v.scores.begin());
    }
  }
  return v;
}

}  // namespace smelt
