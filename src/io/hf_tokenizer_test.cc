// tokenizer.json and sentencepiece models: exact round trips of real vocabularies, foreign files
// (no smelt extension) that must still tokenize like the original, hand-written files checked
// field by field, clear errors, and sentencepiece models trained here checked against
// sentencepiece's own encoder.
#include "core/mapped_file.h"
#include "io/hf_tokenizer.h"

#include <gtest/gtest.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "io/gguf_model.h"
#include "io/io_test_util.h"
#include "io/tokenizer.h"
#include "shared_assets.h"

namespace smelt {
namespace {

using json = nlohmann::json;
using testing_util::ScratchDir;

using testing_util::kSpace;

// Sample texts: TinyStories and KJV lines, and the llama.cpp vocabulary test inputs.
std::vector<std::string> SampleTexts(size_t n_lines) {
  std::vector<std::string> texts;
  for (const char* file : {"/assets/tinystories_valid_sample/tinystories_val_dev.txt", "/assets/kjv_bible/kjv.txt"}) {
    std::ifstream in(assets::kShared + file);
    size_t k = 0;
    for (std::string line; std::getline(in, line) && k < n_lines; ++k) texts.push_back(line);
  }
  const std::string inp = ReadFileToString(assets::kVocabDir + "ggml-vocab-gpt-2.gguf.inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  for (size_t pos = 0, next; pos < inp.size(); pos = next + sep.size()) {
    next = inp.find(sep, pos);
    if (next == std::string::npos) break;
    texts.push_back(inp.substr(pos, next - pos));
  }
  return texts;
}

void ExpectSameVocab(const Vocab& a, const Vocab& b, const std::string& what) {
  EXPECT_EQ(a.model, b.model) << what;
  EXPECT_EQ(a.pre, b.pre) << what;
  EXPECT_EQ(a.tokens, b.tokens) << what;
  EXPECT_EQ(a.scores, b.scores) << what;
  EXPECT_EQ(a.types, b.types) << what;
  EXPECT_EQ(a.merges, b.merges) << what;
  EXPECT_EQ(a.bos, b.bos) << what;
  EXPECT_EQ(a.eos, b.eos) << what;
  EXPECT_EQ(a.unk, b.unk) << what;
  EXPECT_EQ(a.pad, b.pad) << what;
  EXPECT_EQ(a.add_bos, b.add_bos) << what;
  EXPECT_EQ(a.add_eos, b.add_eos) << what;
  EXPECT_EQ(a.add_space_prefix, b.add_space_prefix) << what;
}

// The file as another writer would have made it: without the "smelt" line in "model".
std::string WithoutExtension(const std::string& text) {
  const size_t at = text.find("\n    \"smelt\": {");
  EXPECT_NE(at, std::string::npos);
  return text.substr(0, at) + text.substr(text.find('\n', at + 1));
}

// Saved and read back: an equal Vocab. Read back without smelt's extension (as any other
// tokenizer.json): the same tokens for every sample text.
void CheckGgufVocabThroughTokenizerJson(const std::string& name) {
  const Vocab v = LoadGgufVocab(name == std::string("stories260K") ? assets::kStoriesGguf : assets::kVocabDir + name);
  const std::string text = HfTokenizerJsonString(v);
  ExpectSameVocab(ParseHfTokenizerJson(text), v, name);

  const Vocab foreign = ParseHfTokenizerJson(WithoutExtension(text));
  EXPECT_EQ(foreign.model, v.model);
  EXPECT_EQ(foreign.tokens, v.tokens);
  const Tokenizer want(v), got(foreign);
  for (const std::string& t : SampleTexts(100)) {
    ASSERT_EQ(got.Encode(t, false), want.Encode(t, false)) << name << ": '" << t << "'";
  }
}

// SentencePiece-style: exact, and merge-rank scores tokenize like the true scores.
// Byte-level: exact, and the pre-tokenizer is recognised from the regexes alone.
// (Real vocabularies of 32K-100K tokens take a second or more each: not under the sanitizers.)
TEST(HfTokenizerGguf, Stories260K) { CheckGgufVocabThroughTokenizerJson("stories260K"); }
TEST(HfTokenizerGgufSlow, LlamaSpm) { CheckGgufVocabThroughTokenizerJson("ggml-vocab-llama-spm.gguf"); }
TEST(HfTokenizerGgufSlow, Gpt2) { CheckGgufVocabThroughTokenizerJson("ggml-vocab-gpt-2.gguf"); }
TEST(HfTokenizerGgufSlow, Starcoder) { CheckGgufVocabThroughTokenizerJson("ggml-vocab-starcoder.gguf"); }
TEST(HfTokenizerGgufSlow, DeepseekLlm) { CheckGgufVocabThroughTokenizerJson("ggml-vocab-deepseek-llm.gguf"); }

TEST(HfTokenizer, SaveAndLoadThroughAFile) {
  ScratchDir dir("hf_tok");
  const Vocab v = LoadGgufVocab(assets::kStoriesGguf);
  SaveHfTokenizerJson(v, dir.Path("tokenizer.json"));
  ExpectSameVocab(LoadHfTokenizerJson(dir.Path("tokenizer.json")), v, "file");
  // What the file says to other readers: standard BPE with byte fallback, BOS by template.
  const json j = json::parse(ReadFileToString(dir.Path("tokenizer.json")));
  EXPECT_EQ(j["model"]["type"], "BPE");
  EXPECT_EQ(j["model"]["byte_fallback"], true);
  EXPECT_EQ(j["model"]["vocab"]["<s>"], 1);
  EXPECT_EQ(j["post_processor"]["single"][0]["SpecialToken"]["id"], "<s>");
  EXPECT_EQ(j["pre_tokenizer"]["type"], "Metaspace");
}

// A byte-level tokenizer.json written by hand, in the shape of real ones.
std::string ByteLevelJson(const json& pre_tokenizer, bool ignore_merges) {
  json j = {
      {"version", "1.0"},
      {"added_tokens",
       {{{"id", 7}, {"content", "<|endoftext|>"}, {"special", true}},
        {{"id", 9}, {"content", "<|im_start|>"}, {"special", false}},
        {{"id", 10}, {"content", "my token"}, {"special", false}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer", pre_tokenizer},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", "<|endoftext|>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"special_tokens", {{"<|endoftext|>", {{"id", "<|endoftext|>"}, {"ids", {7}}}}}}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model",
       {{"type", "BPE"},
        {"ignore_merges", ignore_merges},
        {"vocab", {{"a", 0}, {"b", 1}, {"\xC4\xA0", 2}, {"ab", 3}, {"\xC4\xA0" "ab", 4}, {"\xC4\xA0" "a", 5}, {"c", 6}}},
        {"merges", {"a b", {"\xC4\xA0", "ab"}, "\xC4\xA0 a"}}}},
  };
  return j.dump();
}

json SplitThenByteLevel(const std::string& regex) {
  return {{"type", "Sequence"},
          {"pretokenizers",
           {{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}},
            {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
}

TEST(HfTokenizer, ReadsAByteLevelFileFieldByField) {
  const std::string llama3 =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
      "\\s+(?!\\S)|\\s+";
  const Vocab v = ParseHfTokenizerJson(ByteLevelJson(SplitThenByteLevel(llama3), true));
  EXPECT_EQ(v.model, "gpt2");
  EXPECT_EQ(v.pre, "llama-bpe");
  ASSERT_EQ(v.size(), 11);
  EXPECT_EQ(v.tokens[8], "[PAD8]");  // an id no entry names
  EXPECT_EQ(v.types[8], TokenType::kUnused);
  EXPECT_EQ(v.types[3], TokenType::kNormal);
  EXPECT_EQ(v.types[7], TokenType::kControl);      // special
  EXPECT_EQ(v.types[9], TokenType::kControl);      // not special, but looks it (llama.cpp's rule)
  EXPECT_EQ(v.types[10], TokenType::kUserDefined);  // not special
  EXPECT_EQ(v.tokens[10], "my token");
  EXPECT_EQ(v.merges, (std::vector<std::string>{"a b", "\xC4\xA0 ab", "\xC4\xA0 a"}));  // both merge forms
  EXPECT_TRUE(v.add_bos);
  EXPECT_EQ(v.bos, 7);
  EXPECT_EQ(v.eos, 7);
  EXPECT_TRUE(v.scores.empty());

  const Tokenizer tok(v);
  // "ab" is a token (kept whole: ignore_merges); " abc" = Ġ a b c: "a b" (rank 0) before "Ġ a"
  // (rank 2), then "Ġ ab" (rank 1).
  EXPECT_EQ(tok.Encode("ab abc", true), (std::vector<int32_t>{7, 3, 4, 6}));
  EXPECT_EQ(tok.Encode("ab my token", false), (std::vector<int32_t>{3, 2, 10}));  // user-defined cut out first

  // Other pre-tokenizers are recognised by their regexes.
  const std::string qwen2 =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
      "\\s+(?!\\S)|\\s+";
  EXPECT_EQ(ParseHfTokenizerJson(ByteLevelJson(SplitThenByteLevel(qwen2), false)).pre, "qwen2");
  EXPECT_EQ(ParseHfTokenizerJson(ByteLevelJson(SplitThenByteLevel(llama3), false)).pre, "dbrx");  // no ignore_merges
  const json gpt2 = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  EXPECT_EQ(ParseHfTokenizerJson(ByteLevelJson(gpt2, false)).pre, "gpt-2");
  const json starcoder = {{"type", "Sequence"},
                          {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, gpt2}}};
  EXPECT_EQ(ParseHfTokenizerJson(ByteLevelJson(starcoder, false)).pre, "starcoder");
}

TEST(HfTokenizer, ReadsASentencePieceStyleFileWithScoresFromMergeRanks) {
  json j = {
      {"added_tokens", {{{"id", 0}, {"content", "<unk>"}, {"special", true}}, {{"id", 1}, {"content", "<s>"}, {"special", true}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "Metaspace"}, {"replacement", kSpace}, {"prepend_scheme", "first"}, {"split", false}}},
      {"decoder", nullptr},
      {"model",
       {{"type", "BPE"},
        {"byte_fallback", true},
        {"unk_token", "<unk>"},
        {"vocab", {{"<unk>", 0}, {"<s>", 1}, {"<0x41>", 2}, {kSpace, 3}, {"a", 4}, {"b", 5}, {"ab", 6}, {kSpace + "ab", 7}, {"ba", 8}}},
        {"merges", {"a b", kSpace + " ab", "b a"}}}},
  };
  const Vocab v = ParseHfTokenizerJson(j.dump());
  EXPECT_EQ(v.model, "llama");
  EXPECT_TRUE(v.add_space_prefix);
  EXPECT_TRUE(v.add_bos);  // llama.cpp's default for SentencePiece vocabularies
  EXPECT_EQ(v.bos, 1);
  EXPECT_EQ(v.unk, 0);
  EXPECT_EQ(v.types, (std::vector<TokenType>{TokenType::kUnknown, TokenType::kControl, TokenType::kByte, TokenType::kNormal,
                                             TokenType::kNormal, TokenType::kNormal, TokenType::kNormal, TokenType::kNormal,
                                             TokenType::kNormal}));
  // ab <- merge 0, ▁ab <- merge 1, ba <- merge 2; single characters 0.
  EXPECT_EQ(v.scores, (std::vector<float>{0, 0, 0, 0, 0, 0, -0.0f, -1, -2}));
  const Tokenizer tok(v);
  EXPECT_EQ(tok.Encode("ab bab", false), (std::vector<int32_t>{7, 3, 5, 6}));  // ▁ab ▁ b ab: "ab" outranks "ba"

  j["pre_tokenizer"]["prepend_scheme"] = "never";
  EXPECT_FALSE(ParseHfTokenizerJson(j.dump()).add_space_prefix);
}

TEST(HfTokenizer, ErrorsNameTheFileAndTheProblem) {
  auto expect_error = [](const std::string& text, const std::string& keyword) {
    try {
      ParseHfTokenizerJson(text, "t.json");
      ADD_FAILURE() << "no error, expected " << keyword;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_EQ(msg.rfind("t.json: ", 0), 0u) << msg;
      EXPECT_NE(msg.find(keyword), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  };
  expect_error("{", "invalid JSON");
  expect_error("[]", "not a tokenizer.json");
  expect_error("{}", "no \"model\"");
  expect_error(R"({"model": {"type": "WordPiece", "vocab": {}}})", "WordPiece");
  expect_error(R"({"model": {"type": "BPE", "vocab": {"a": 0, "a": 1}, "merges": []}})", "duplicate key");
  expect_error(R"({"model": {"type": "BPE", "vocab": {"a": -3}, "merges": []}})", "out of range");
  expect_error(R"({"model": {"type": "BPE", "vocab": {"a": "x"}, "merges": []}})", "not an integer");
  expect_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [3]}})", "merge #0");
  expect_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})", "neither byte-level");
  expect_error(ByteLevelJson(SplitThenByteLevel("[a-z]+"), false), "unknown pre-tokenizer regex [\"[a-z]+\"");
  json bad_ext = json::parse(HfTokenizerJsonString(LoadGgufVocab(assets::kStoriesGguf)));
  // Numbers that do not fit the field are errors, not conversions (a float, a huge id, a score
  // beyond float's range).
  const json good_ext = bad_ext;
  bad_ext["model"]["smelt"]["types"][3] = 1.5;
  expect_error(bad_ext.dump(), "types[3] is not an integer");
  bad_ext = good_ext;
  bad_ext["model"]["smelt"]["types"][3] = 5.5e42;
  expect_error(bad_ext.dump(), "types[3] is not an integer");
  bad_ext = good_ext;
  bad_ext["model"]["smelt"]["bos"] = 1e300;
  expect_error(bad_ext.dump(), "model.smelt.bos is not an integer");
  bad_ext = good_ext;
  bad_ext["model"]["smelt"]["eos"] = 18446744073709551615ull;
  expect_error(bad_ext.dump(), "model.smelt.eos is outside");
  bad_ext = good_ext;
  bad_ext["model"]["smelt"]["version"] = 1.0e40;
  expect_error(bad_ext.dump(), "version");
  bad_ext = good_ext;
  bad_ext["model"]["smelt"]["scores"][0] = 1e300;
  expect_error(bad_ext.dump(), "not a finite float");
  bad_ext = good_ext;
  bad_ext["model"]["smelt"]["types"].erase(0);
  expect_error(bad_ext.dump(), "types has 511 entries");
  bad_ext["model"]["smelt"]["model"] = "gpt2";
  expect_error(bad_ext.dump(), "model.smelt says model");
  Vocab unwritable = LoadGgufVocab(assets::kStoriesGguf);
  unwritable.tokens[5] = unwritable.tokens[6];
  EXPECT_THROW(HfTokenizerJsonString(unwritable), Error);
  unwritable.tokens[5] = "\xFF";
  EXPECT_THROW(HfTokenizerJsonString(unwritable), Error);
}

// ---- sentencepiece ----------------------------------------------------------------------

// Trains a small BPE sentencepiece model on the first ~8 KB of TinyStories (no normalization, so
// that text reaches the model unchanged, as in llama.cpp); returns the model path.
std::string TrainSentencePiece(const ScratchDir& dir, const std::string& extra = "", const std::string& type = "bpe") {
  const std::string text = ReadFileToString(assets::kDevText).substr(0, 8000);
  std::ofstream(dir.Path("train.txt"), std::ios::binary) << text;
  const std::string prefix = dir.Path("sp");
  const auto status = sentencepiece::SentencePieceTrainer::Train(
      "--input=" + dir.Path("train.txt") + " --model_prefix=" + prefix +
      " --vocab_size=320 --model_type=" + type + " --byte_fallback=true --character_coverage=1.0"
      " --normalization_rule_name=identity --remove_extra_whitespaces=false --minloglevel=2"
      " --user_defined_symbols=<tag> --control_symbols=<ctl>" + extra);
  EXPECT_TRUE(status.ok()) << status.ToString();
  return prefix + ".model";
}

TEST(SentencePieceModel, TokenizesLikeSentencePieceOnHeldOutText) {
  ScratchDir dir("spm");
  const std::string model = TrainSentencePiece(dir);
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(model).ok());

  const Vocab v = LoadSentencePieceModel(model);
  ASSERT_EQ(v.size(), sp.GetPieceSize());
  const Vocab m = ParseSentencePieceModel(ReadFileToString(model), "in memory");  // the same file from memory
  EXPECT_EQ(m.tokens, v.tokens);
  EXPECT_EQ(m.scores, v.scores);
  EXPECT_EQ(m.types, v.types);
  EXPECT_EQ(m.add_space_prefix, v.add_space_prefix);
  EXPECT_EQ(v.model, "llama");
  EXPECT_TRUE(v.add_space_prefix);
  EXPECT_EQ(v.unk, sp.unk_id());
  EXPECT_EQ(v.bos, sp.bos_id());
  EXPECT_EQ(v.eos, sp.eos_id());
  int bytes = 0, user = 0, control = 0;
  for (int i = 0; i < v.size(); ++i) {
    EXPECT_EQ(v.tokens[i], sp.IdToPiece(i));
    EXPECT_EQ(v.scores[i], sp.GetScore(i));
    bytes += v.types[i] == TokenType::kByte;
    user += v.types[i] == TokenType::kUserDefined;
    control += v.types[i] == TokenType::kControl;
  }
  EXPECT_EQ(bytes, 256);
  EXPECT_EQ(user, 1);     // <tag>
  EXPECT_EQ(control, 3);  // <s> </s> <ctl>

  // Held-out text (past what the model was trained on), including characters it never saw,
  // which both sides spell as byte tokens. (Not user-defined tokens inside text: llama.cpp, and
  // so smelt, starts the text after a special token with a new "▁", sentencepiece does not.)
  const Tokenizer tok(v);
  const std::string held_out = ReadFileToString(assets::kDevText).substr(200000, 30000);
  std::istringstream lines(held_out + "\nZürich ünïcödé 中文 🦙 x\n  two  spaces\n");
  int compared = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    std::vector<int> want;
    ASSERT_TRUE(sp.Encode(line, &want).ok());
    const std::vector<int32_t> got = tok.Encode(line, false);
    ASSERT_EQ(std::vector<int>(got.begin(), got.end()), want) << "'" << line << "'";
    ++compared;
  }
  EXPECT_GT(compared, 50);
}

TEST(SentencePieceModel, ReadsAddDummyPrefixAndRejectsWhatItCannotUse) {
  ScratchDir dir("spm2");
  EXPECT_FALSE(LoadSentencePieceModel(TrainSentencePiece(dir, " --add_dummy_prefix=false")).add_space_prefix);

  ScratchDir dir2("spm3");
  const std::string unigram = TrainSentencePiece(dir2, "", "unigram");
  EXPECT_THROW(LoadSentencePieceModel(unigram), Error);

  try {
    ParseSentencePieceModel("not a model", "junk bytes");
    ADD_FAILURE() << "junk accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("junk bytes: not a sentencepiece model"), std::string::npos) << e.what();
  }
  std::ofstream(dir2.Path("junk.model"), std::ios::binary) << "not a model";
  try {
    LoadSentencePieceModel(dir2.Path("junk.model"));
    ADD_FAILURE() << "junk accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("junk.model"), std::string::npos) << e.what();
  }
}

// A model folder: tokenizer.json without smelt's extension takes its scores from
// tokenizer.model and its special tokens from tokenizer_config.json.
TEST(HfTokenizerDir, UsesTokenizerModelScoresAndTokenizerConfig) {
  ScratchDir dir("hf_dir");
  const std::string model = TrainSentencePiece(dir);
  const Vocab sp = LoadSentencePieceModel(model);
  std::filesystem::copy_file(model, dir.Path("tokenizer.model"));
  std::ofstream(dir.Path("tokenizer.json"), std::ios::binary) << WithoutExtension(HfTokenizerJsonString(sp));
  std::ofstream(dir.Path("tokenizer_config.json"))
      << R"({"add_bos_token": false, "add_eos_token": true, "eos_token": {"content": "<ctl>"}, "pad_token": "<unk>"})";
  const Vocab v = LoadHfTokenizerDir(dir.Path());
  EXPECT_EQ(v.tokens, sp.tokens);
  EXPECT_EQ(v.scores, sp.scores);
  EXPECT_FALSE(v.add_bos);
  EXPECT_TRUE(v.add_eos);
  EXPECT_EQ(v.tokens[v.eos], "<ctl>");
  EXPECT_EQ(v.pad, sp.unk);
}

}  // namespace
}  // namespace smelt
