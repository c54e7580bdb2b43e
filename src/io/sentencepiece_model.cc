// sentencepiece tokenizer.model -> Vocab. libsentencepiece loads and validates the model and gives
// pieces, scores, most piece types and the special ids; the two things its C++ API does not
// expose (the USER_DEFINED piece type and the normalizer's add_dummy_prefix) are read from the
// serialized ModelProto with a minimal protobuf scan.
#include <sentencepiece_processor.h>

#include <cstring>
#include <optional>
#include <string_view>

#include "core/error.h"
#include "io/hf_tokenizer.h"

namespace smelt {
namespace {

// Protobuf wire format, just enough to walk the fields of a message.
class ProtoReader {
 public:
  explicit ProtoReader(std::string_view data) : data_(data) {}
  bool done() const { return pos_ >= data_.size(); }

  // Next field; false at the end or on malformed input.
  bool Next(uint32_t* field, uint32_t* wire, uint64_t* varint, std::string_view* bytes) {
    uint64_t key;
    if (done() || !Varint(&key)) return false;
    *field = static_cast<uint32_t>(key >> 3);
    *wire = static_cast<uint32_t>(key & 7);
    switch (*wire) {
      case 0: return Varint(varint);
      case 1: return Skip(8);
      case 5: return Skip(4);
      case 2: {
        uint64_t len;
        if (!Varint(&len) || len > data_.size() - pos_) return false;
        *bytes = data_.substr(pos_, len);
        pos_ += len;
        return true;
      }
      default: return false;
    }
  }

 private:
  bool Varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64 && pos_ < data_.size(); shift += 7) {
      const uint8_t b = static_cast<uint8_t>(data_[pos_++]);
      *v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  }
  bool Skip(size_t n) {
    if (n > data_.size() - pos_) return false;
    pos_ += n;
    return true;
  }
  std::string_view data_;
  size_t pos_ = 0;
};

// ModelProto fields: 1 = pieces (SentencePiece: 1 piece, 2 score, 3 type), 2 = trainer_spec
// (3 = model_type), 3 = normalizer_spec (3 = add_dummy_prefix).
struct ProtoFacts {
  std::vector<int> piece_types;  // sentencepiece's Type enum: 1 normal ... 6 byte (same numbers as GGUF)
  bool add_dummy_prefix = true;
  int model_type = 1;  // UNIGRAM = 1, BPE = 2, WORD = 3, CHAR = 4
};

std::optional<ProtoFacts> ScanModelProto(std::string_view proto) {
  ProtoFacts facts;
  ProtoReader top(proto);
  uint32_t field, wire;
  uint64_t v;
  std::string_view bytes;
  while (!top.done()) {
    if (!top.Next(&field, &wire, &v, &bytes)) return std::nullopt;
    if (wire != 2) continue;
    ProtoReader sub(bytes);
    uint32_t f, w;
    uint64_t x;
    std::string_view b;
    if (field == 1) {
      int type = 1;  // NORMAL when absent
      while (!sub.done()) {
        if (!sub.Next(&f, &w, &x, &b)) return std::nullopt;
        if (f == 3 && w == 0) type = static_cast<int>(x);
      }
      facts.piece_types.push_back(type);
    } else if (field == 2) {
      while (!sub.done()) {
        if (!sub.Next(&f, &w, &x, &b)) return std::nullopt;
        if (f == 3 && w == 0) facts.model_type = static_cast<int>(x);
      }
    } else if (field == 3) {
      while (!sub.done()) {
        if (!sub.Next(&f, &w, &x, &b)) return std::nullopt;
        if (f == 3 && w == 0) facts.add_dummy_prefix = x != 0;
      }
    }
  }
  return facts;
}

// The Vocab of a loaded model; `path` names it in errors.
Vocab VocabOf(const sentencepiece::SentencePieceProcessor& sp, const std::string& path) {
  const auto facts = ScanModelProto(sp.serialized_model_proto());
  const int n = sp.GetPieceSize();
  if (!facts || static_cast<int>(facts->piece_types.size()) != n) Fail("{}: unreadable sentencepiece model", path);
  if (facts->model_type != 2) {
    Fail("{}: sentencepiece model type {} is not BPE (llama.cpp's SPM tokenizer reproduces BPE models only)", path,
         facts->model_type == 1 ? "unigram" : std::to_string(facts->model_type));
  }

  Vocab v;
  v.model = "llama";
  v.pre = "default";
  v.tokens.resize(n);
  v.scores.resize(n);
  v.types.resize(n);
  for (int i = 0; i < n; ++i) {
    v.tokens[i] = sp.IdToPiece(i);
    v.scores[i] = sp.GetScore(i);
    TokenType t = TokenType::kNormal;
    if (sp.IsUnknown(i)) {
      t = TokenType::kUnknown;
    } else if (sp.IsControl(i)) {
      t = TokenType::kControl;
    } else if (sp.IsUnused(i)) {
      t = TokenType::kUnused;
    } else if (sp.IsByte(i)) {
      t = TokenType::kByte;
    } else if (facts->piece_types[i] == static_cast<int>(TokenType::kUserDefined)) {
      t = TokenType::kUserDefined;
    }
    v.types[i] = t;
  }
  auto id = [&](int i) { return i >= 0 && i < n ? i : -1; };
  v.unk = id(sp.unk_id());
  v.bos = id(sp.bos_id());
  v.eos = id(sp.eos_id());
  v.pad = id(sp.pad_id());
  v.add_bos = v.bos >= 0;
  v.add_eos = false;
  v.add_space_prefix = facts->add_dummy_prefix;
  return v;
}

}  // namespace

Vocab LoadSentencePieceModel(const std::string& path) {
  sentencepiece::SentencePieceProcessor sp;
  const auto status = sp.Load(path);
  if (!status.ok()) Fail("{}: not a sentencepiece model: {}", path, status.ToString());
  return VocabOf(sp, path);
}

Vocab ParseSentencePieceModel(std::string_view bytes, const std::string& source) {
  sentencepiece::SentencePieceProcessor sp;
  const auto status = sp.LoadFromSerializedProto(bytes);
  if (!status.ok()) Fail("{}: not a sentencepiece model: {}", source, status.ToString());
  return VocabOf(sp, source);
}

}  // namespace smelt
