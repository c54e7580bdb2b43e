// smelt demo: the main job. End to end on one model: load (or synthesize) it, write it as GGUF in
// several weight types, and measure each one's size, perplexity, KL-divergence to the f32 model
// and decode speed, in one table.
//
// Until smelt trains its own teacher, the embedded default is a deterministic *random* model
// (`smelt synth`): its perplexity is meaningless and the table says so. --model runs the same job
// on a real model.
#include <fmt/format.h>

#include <chrono>
#include <filesystem>

#include "cli_util.h"
#include "core/mapped_file.h"
#include "eval/kld.h"
#include "eval/perplexity.h"
#include "formats/types.h"
#include "io/gguf_model.h"
#include "model/synth.h"
#include "runtime/session.h"

namespace smelt::cli {
namespace {

// Public-domain text (the opening of the King James Bible's Genesis) for the default run.
constexpr const char* kDefaultText =
    "In the beginning God created the heaven and the earth. And the earth was without form, and void; and "
    "darkness was upon the face of the deep. And the Spirit of God moved upon the face of the waters. And God "
    "said, Let there be light: and there was light. And God saw the light, that it was good: and God divided the "
    "light from the darkness. And God called the light Day, and the darkness he called Night. And the evening and "
    "the morning were the first day. And God said, Let there be a firmament in the midst of the waters, and let it "
    "divide the waters from the waters. And God made the firmament, and divided the waters which were under the "
    "firmament from the waters which were above the firmament: and it was so. And God called the firmament Heaven. "
    "And the evening and the morning were the second day. And God said, Let the waters under the heaven be gathered "
    "together unto one place, and let the dry land appear: and it was so. And God called the dry land Earth; and the "
    "gathering together of the waters called he Seas: and God saw that it was good. And God said, Let the earth "
    "bring forth grass, the herb yielding seed, and the fruit tree yielding fruit after his kind, whose seed is in "
    "itself, upon the earth: and it was so. And the earth brought forth grass, and herb yielding seed after his "
    "kind, and the tree yielding fruit, whose seed was in itself, after his kind: and God saw that it was good. And "
    "the evening and the morning were the third day.\n";

struct DemoArgs {
  std::string model, text, workdir;
  LoadOptions load;
  int threads = 1;
  int ctx = 128;
  int gen = 32;
  bool json = false;
};

// Decode speed: greedy generation of n tokens after BOS, tokens/s of the decode steps.
double DecodeTokensPerSecond(const Model& m, int n, int threads) {
  SessionOptions so;
  so.threads = threads;
  so.context = n + 2;
  Session s(m, so);
  int32_t tok = m.vocab.bos >= 0 ? m.vocab.bos : 0;
  auto logits = s.Eval(std::span<const int32_t>(&tok, 1));
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    tok = (int32_t)(std::max_element(logits.begin(), logits.end()) - logits.begin());
    logits = s.Eval(std::span<const int32_t>(&tok, 1));
  }
  return n / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int RunDemo(const DemoArgs& a) {
  namespace fs = std::filesystem;
  const bool synthetic = a.model.empty();
  fs::path work = a.workdir.empty() ? fs::temp_directory_path() / "smelt-demo" : fs::path(a.workdir);
  fs::create_directories(work);

  Model base;
  if (synthetic) {
    fmt::print(stderr,
               "demo: no --model given, so the embedded default is used: a deterministic RANDOM Llama model\n"
               "      (smelt synth: dim 256, 4 layers, 8 heads, vocab 2048). Its perplexity is meaningless; the\n"
               "      table shows what each weight type costs in size, fidelity (KLD) and speed.\n");
    SynthOptions so;
    so.dim = 256;
    so.layers = 4;
    so.heads = 8;
    so.vocab = 2048;
    base = SynthesizeModel(so);
  } else {
    base = LoadModel(a.model, a.load);
  }
  std::string text = a.text.empty() ? std::string(kDefaultText) : ReadFileToString(a.text);

  struct Row {
    std::string type, file;
    uint64_t bytes = 0;
    double bpw = 0, ppl = 0, kld = 0, same_top = 0, tok_s = 0;
  };
  std::vector<Row> rows;
  KldOptions ko;
  ko.ppl.ctx = a.ctx;
  ko.ppl.threads = a.threads;
  for (DType t : {DType::kF32, DType::kF16, DType::kQ8_0, DType::kQ4_0}) {
    Row r;
    r.type = std::string(DTypeName(t));
    r.file = (work / fmt::format("model-{}.gguf", r.type)).string();
    GgufSaveOptions gs;
    gs.type = t;
    SaveGgufModel(base, r.file, gs);
    Model m = LoadModel(r.file);
    SizeInfo s = ModelSize(m);
    r.bytes = fs::file_size(r.file);
    r.bpw = s.bits_per_weight();
    KldResult k = KlDivergence(m, &base, text, ko);
    r.ppl = k.ppl_model;
    r.kld = k.kld_mean;
    r.same_top = k.same_top;
    r.tok_s = DecodeTokensPerSecond(m, a.gen, a.threads);
    if (!a.json) fmt::print(stderr, "demo: {} done\n", r.type);
    rows.push_back(r);
  }
  if (a.json) {
    nlohmann::json j;
    j["model"] = synthetic ? "synthetic (random weights)" : a.model;
    j["text"] = a.text.empty() ? "embedded (Genesis 1:1-13, KJV)" : a.text;
    j["ctx"] = a.ctx;
    j["threads"] = a.threads;
    for (const auto& r : rows)
      j["rows"].push_back({{"type", r.type}, {"file", r.file}, {"bytes", r.bytes}, {"bits_per_weight", r.bpw},
                           {"ppl", r.ppl}, {"kld", r.kld}, {"same_top", r.same_top}, {"decode_tok_s", r.tok_s}});
    PrintJson(j);
    return 0;
  }
  fmt::print("\nmodel: {}\ntext:  {}; windows of {} tokens; {} threads\n\n", synthetic ? "synthetic (random weights)" : a.model,
             a.text.empty() ? "embedded (Genesis 1:1-13, KJV)" : a.text, a.ctx, a.threads);
  fmt::print("| type | size (MiB) | bits/weight | ppl | KLD to f32 | same top | decode tok/s |\n");
  fmt::print("|---|---|---|---|---|---|---|\n");
  for (const auto& r : rows)
    fmt::print("| {} | {:.2f} | {:.2f} | {:.3f} | {:.6f} | {:.1f} % | {:.1f} |\n", r.type, r.bytes / 1048576.0, r.bpw,
               r.ppl, r.kld, 100 * r.same_top, r.tok_s);
  fmt::print("\nfiles in {}\n", work.string());
  return 0;
}

}  // namespace

Command AddDemo(CLI::App& root) {
  auto a = std::make_shared<DemoArgs>();
  CLI::App* app = root.add_subcommand(
      "demo", "the main job: one model through every weight type, with size, ppl, KLD and speed in one table");
  app->add_option("--model", a->model, "a real model (default: a synthetic random one)");
  app->add_option("--text", a->text, "evaluation text (default: an embedded public-domain passage)");
  app->add_option("--workdir", a->workdir, "where the converted files go (default: a temp folder)");
  app->add_option("--ctx", a->ctx, "evaluation window")->capture_default_str();
  app->add_option("--gen", a->gen, "tokens generated for the speed figure")->capture_default_str();
  AddThreads(app, a->threads);
  AddLoadOptions(app, a->load);
  app->add_flag("--json", a->json, "print JSON");
  return {app, [a] { return RunDemo(*a); }};
}

}  // namespace smelt::cli
