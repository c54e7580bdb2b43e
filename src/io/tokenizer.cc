// Tokenizer: vocabulary set-up, special-token partitioning, BOS/EOS, pieces and detokenization.
// The two merge algorithms live in tokenizer_spm.cc and tokenizer_bpe.cc.
#include "io/tokenizer.h"

#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "io/pretokenize.h"
#include "io/utf8.h"

namespace smelt {
namespace {

// llama.cpp's llama_token_attr bits (as derived from GGUF token types).
constexpr uint32_t kAttrUnknown = 1u << 0;
constexpr uint32_t kAttrUnused = 1u << 1;
constexpr uint32_t kAttrNormal = 1u << 2;
constexpr uint32_t kAttrControl = 1u << 3;
constexpr uint32_t kAttrUserDefined = 1u << 4;
constexpr uint32_t kAttrByte = 1u << 5;

uint32_t AttrFromType(TokenType t) {
  switch (t) {
    case TokenType::kNormal: return kAttrNormal;
    case TokenType::kUnknown: return kAttrUnknown;
    case TokenType::kControl: return kAttrControl;
    case TokenType::kUserDefined: return kAttrUserDefined;
    case TokenType::kUnused: return kAttrUnused;
    case TokenType::kByte: return kAttrByte;
    default: return 0;  // undefined (and unknown values)
  }
}

// Token texts llama.cpp recognises as end-of-turn / end-of-generation / fill-in-the-middle markers
// and forces to be control tokens whatever their type says.
bool LooksLikeControl(std::string_view t) {
  static constexpr std::string_view kTexts[] = {
      "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>",
      "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>", "<|eom_id|>", "<|return|>", "<|call|>",
      "<|flush|>", "<|calls|>", "</s>", "[EOS]", "<eos>", "<turn|>", "<|tool_response>", "[e~[",
      "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>", "<|code_prefix|>",
      "<|prefix|>", "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>",
      "<|code_suffix|>", "<|suffix|>", "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>",
      "▁<MID>", "<|code_middle|>", "<|middle|>", "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]",
      "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>",
  };
  return std::find(std::begin(kTexts), std::end(kTexts), t) != std::end(kTexts);
}

std::string ReplaceAll(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  for (size_t pos = 0;;) {
    size_t hit = s.find(from, pos);
    out.append(s.substr(pos, hit == std::string_view::npos ? std::string_view::npos : hit - pos));
    if (hit == std::string_view::npos) return out;
    out.append(to);
    pos = hit + from.size();
  }
}

// llama_decode_text: a byte-level piece back to its bytes.
std::string DecodeByteLevel(const std::string& text) {
  std::string out;
  for (uint32_t cp : DecodeUtf8Lenient(text)) {
    int b = UnicodeToByte(cp);
    if (b >= 0) {
      out.push_back(static_cast<char>(b));
      continue;
    }
    std::string utf8;
    AppendUtf8(cp, utf8);
    out += "[UNK_BYTE_0x";
    for (char c : utf8) out += fmt::format("{:02x}", static_cast<uint8_t>(c));
    out += text + "]";
  }
  return out;
}

// clean_up_tokenization_spaces, exactly as llama_detokenize does it: three in-place passes over
// the text, each compacting it (reads see the pass's input, writes trail behind).
std::string CleanSpaces(std::string s) {
  // " ?" " !" " ." " ," -> drop the space
  size_t n = s.size(), total = n ? 1 : 0;
  for (size_t i = 1; i < n; ++i) {
    const char x = s[i];
    if (s[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) --total;
    s[total++] = x;
  }
  // " ' " -> "'" (the space after it is blanked in place, which later reads see)
  n = total;
  total = n ? 1 : 0;
  for (size_t i = 1; i < n; ++i) {
    const char x = s[i];
    if (x == '\'' && i + 1 < n && s[i - 1] == ' ' && s[i + 1] == ' ') {
      --total;
      s[++i] = '\0';
    }
    s[total++] = x;
  }
  // " 's" " 'm" " 're" " 've" -> drop the space (" 't" " 'd" " 'll" keep it)
  n = total;
  total = n ? 1 : 0;
  for (size_t i = 1; i < n; ++i) {
    const char x = s[i];
    if (s[i - 1] == ' ' && x == '\'' && i + 1 < n) {
      const char x1 = s[i + 1];
      if (x1 == 's' || x1 == 'm') {
        --total;
      } else if (x1 != 't' && x1 != 'd' && i + 2 < n) {
        const char x2 = s[i + 2];
        if ((x1 == 'r' || x1 == 'v') && x2 == 'e') --total;
      }
    }
    s[total++] = x;
  }
  s.resize(total);
  return s;
}

}  // namespace

int ByteTokenValue(std::string_view t) {
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
  const int hi = hex(t[3]), lo = hex(t[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

Tokenizer::Tokenizer(const Vocab& v) : vocab_(v) {
  const size_t n = v.tokens.size();
  if (v.model == "llama") {
    spm_ = true;
  } else if (v.model == "gpt2") {
    spm_ = false;
  } else {
    Fail("tokenizer: unsupported tokenizer model '{}' (smelt supports \"llama\" and \"gpt2\")", v.model);
  }
  if (!v.types.empty() && v.types.size() != n) Fail("tokenizer: {} token types for {} tokens", v.types.size(), n);
  if (!v.scores.empty() && v.scores.size() != n) Fail("tokenizer: {} token scores for {} tokens", v.scores.size(), n);
  auto valid = [&](int32_t id) { return id >= 0 && static_cast<size_t>(id) < n ? id : -1; };
  bos_ = valid(v.bos);
  eos_ = valid(v.eos);
  unk_ = valid(v.unk);

  texts_.resize(n);
  scores_.assign(n, 0.0f);
  attrs_.resize(n);
  token_to_id_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    texts_[i] = v.tokens[i].empty() ? fmt::format("[EMPTY_{}]", i) : v.tokens[i];
    token_to_id_[texts_[i]] = static_cast<int32_t>(i);
    if (!v.scores.empty()) scores_[i] = v.scores[i];
    attrs_[i] = v.types.empty() ? kAttrNormal : AttrFromType(v.types[i]);
    if (LooksLikeControl(texts_[i])) attrs_[i] |= kAttrControl;
    const std::string& t = texts_[i];
    if (t == "<|channel|>" || t == "<|message|>" || t == "<|start|>" || t == "<|constrain|>") {
      attrs_[i] = kAttrUserDefined;  // llama.cpp always renders these (gpt-oss)
    }
  }

  for (size_t i = 0; i < n; ++i) {
    if (attrs_[i] & (kAttrControl | kAttrUserDefined | kAttrUnknown)) special_ids_.push_back(static_cast<int32_t>(i));
  }
  std::stable_sort(special_ids_.begin(), special_ids_.end(),
                   [&](int32_t a, int32_t b) { return texts_[a].size() > texts_[b].size(); });

  if (spm_) {
    for (const std::string& t : texts_) {
      size_t prev = 0;
      for (size_t off = 0; off < t.size();) {
        const size_t len = std::min(Utf8SeqLen(static_cast<uint8_t>(t[off])), t.size() - off);
        if (off > 0) spm_pairs_.insert(SpmPairKey(std::string_view(t).substr(prev, off - prev), std::string_view(t).substr(off, len)));
        prev = off;
        off += len;
      }
    }
    for (int b = 0; b < 256; ++b) {
      int32_t id = Find(fmt::format("<0x{:02X}>", b));
      if (id < 0) id = Find(std::string(1, static_cast<char>(b)));
      byte_token_[b] = id;
    }
  } else {
    pre_ = std::make_shared<const PreTokenizer>(v.pre);
    merge_rank_.reserve(v.merges.size());
    for (size_t r = 0; r < v.merges.size(); ++r) {
      const std::string& m = v.merges[r];
      size_t sp = m.find(' ', 1);
      if (sp == std::string::npos) continue;  // llama.cpp ignores such entries too
      std::string key = m.substr(0, sp);
      key.push_back('\0');
      key.append(m, sp + 1);
      merge_rank_.emplace(std::move(key), static_cast<int32_t>(r));  // first occurrence wins
    }
  }

  // Pieces (llama_token_to_piece with special = false).
  pieces_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t attr = attrs_[i];
    const std::string& t = texts_[i];
    std::string& piece = pieces_[i];
    if (attr & (kAttrUnknown | kAttrControl)) continue;
    if (attr & kAttrUserDefined) {
      piece = t;
    } else if (attr & kAttrNormal) {
      if (spm_) {
        piece = ReplaceAll(t, "\xE2\x96\x81", " ");
      } else {
        piece = DecodeByteLevel(t);
      }
    } else if (attr & kAttrByte) {
      const int b = ByteTokenValue(t);
      if (b >= 0) piece.assign(1, static_cast<char>(b));
    }
  }
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool add_special, bool parse_special) const {
  // Cut special tokens out of the text: fragments are either a token or a range of raw text.
  struct Fragment {
    int32_t token;  // -1: raw text
    size_t off, len;
  };
  std::vector<Fragment> frags, next;
  if (!text.empty()) frags.push_back({-1, 0, text.size()});
  for (int32_t id : special_ids_) {
    if (!parse_special && (attrs_[id] & (kAttrControl | kAttrUnknown))) continue;
    const std::string& t = texts_[id];
    if (text.find(t) == std::string_view::npos) continue;
    next.clear();
    for (const Fragment& f : frags) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      size_t pos = f.off;
      const size_t end = f.off + f.len;
      while (pos < end) {
        size_t m = text.substr(0, end).find(t, pos);
        if (m == std::string_view::npos) break;
        if (m > pos) next.push_back({-1, pos, m - pos});
        next.push_back({id, 0, 0});
        pos = m + t.size();
      }
      if (pos < end) next.push_back({-1, pos, end - pos});
    }
    frags.swap(next);
  }

  std::vector<int32_t> out;
  if (add_special && vocab_.add_bos) {
    if (bos_ < 0) Fail("tokenizer: the vocabulary asks for BOS but has no BOS token");
    out.push_back(bos_);
  }
  bool prev_special = true;  // SPM: a "▁" goes before text at the start and after special tokens
  std::string buf;
  for (const Fragment& f : frags) {
    if (f.token >= 0) {
      out.push_back(f.token);
      prev_special = true;
      continue;
    }
    std::string_view raw = text.substr(f.off, f.len);
    if (spm_) {
      buf.clear();
      if (vocab_.add_space_prefix && prev_special) buf = "\xE2\x96\x81";
      buf += ReplaceAll(raw, " ", "\xE2\x96\x81");
      EncodeSpm(buf, out);
    } else {
      EncodeBpe(raw, out);
    }
    prev_special = false;
  }
  if (add_special && vocab_.add_eos) {
    if (eos_ < 0) Fail("tokenizer: the vocabulary asks for EOS but has no EOS token");
    out.push_back(eos_);
  }
  return out;
}

std::string Tokenizer::TokenToPiece(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= pieces_.size()) {
    Fail("tokenizer: token id {} outside the vocabulary (size {})", id, pieces_.size());
  }
  return pieces_[id];
}

std::string Tokenizer::Decode(std::span<const int32_t> ids) const {
  std::string out;
  bool strip_space = spm_ && vocab_.add_space_prefix;  // the space Encode put in front
  for (int32_t id : ids) {
    std::string piece = TokenToPiece(id);
    if (strip_space && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
    strip_space = false;
    out += piece;
  }
  if (!spm_ && pre_->clean_spaces()) out = CleanSpaces(out);
  return out;
}

}  // namespace smelt
