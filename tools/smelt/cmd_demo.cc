// smelt demo: the main job. By default it trains a small teacher on the King James Bible, distils
// a smaller student from it, quantizes and prunes the student, and prints one table of size, ppl,
// KLD to the teacher and decode speed per stage (src/pipeline/demo.h; files cached per recipe).
// --model runs the compression and measuring part on the user's model instead.
#include <fcntl.h>
#include <fmt/format.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "cli_util.h"
#include "compress/calibration.h"
#include "compress/prune.h"
#include "core/mapped_file.h"
#include "formats/types.h"
#include "io/gguf_model.h"
#include "pipeline/demo.h"
#include "smelt/version.h"

extern char** environ;

namespace smelt::cli {
namespace {

// Public-domain text (the opening of the King James Bible's Genesis): --model's default
// evaluation text.
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

// The King James Bible as Debian's bible-kjv prints it, one verse per line.
constexpr const char* kBibleCommand = "bible -l100000 'Gen1:1-Rev22:21'";

struct DemoArgs {
  std::string model, text, calib, corpus, workdir;
  LoadOptions load;
  int threads = 1;
  int ctx = 128;
  int gen = 32;
  int chunks = 0;
  bool quick = false, json = false, baseline = false;
};

// The default corpus: the output of `bible` (posix_spawnp, so a missing program is told apart
// from one that fails).
std::string RunBible() {
  int fds[2];
  if (pipe(fds) != 0) Fail("demo: cannot create a pipe for `{}`", kBibleCommand);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  posix_spawn_file_actions_addclose(&fa, fds[1]);
  char arg0[] = "bible", arg1[] = "-l100000", arg2[] = "Gen1:1-Rev22:21";
  char* argv[] = {arg0, arg1, arg2, nullptr};
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, "bible", &fa, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    if (rc == ENOENT)
      Fail("demo: the default corpus comes from the `bible` program, which is not installed: install bible-kjv "
           "(scripts/install-deps.sh), or give --corpus FILE");
    Fail("demo: cannot run `{}`: {}", kBibleCommand, std::strerror(rc));
  }
  std::string out;
  char buf[1 << 16];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    out.append(buf, (size_t)n);
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    Fail("demo: `{}` failed (exit status {}); install bible-kjv (scripts/install-deps.sh) or give --corpus FILE",
         kBibleCommand, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  return out;
}

// $XDG_CACHE_HOME/smelt/demo, else ~/.cache/smelt/demo, else a temp folder.
std::string DefaultWorkdir() {
  namespace fs = std::filesystem;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return (fs::path(x) / "smelt" / "demo").string();
  if (const char* h = std::getenv("HOME"); h && *h) return (fs::path(h) / ".cache" / "smelt" / "demo").string();
  return (fs::temp_directory_path() / "smelt-demo").string();
}

nlohmann::json RowJson(const pipeline::DemoRow& r) {
  return {{"stage", r.stage},
          {"file", r.file},
          {"bytes", r.bytes},
          {"parameters", r.parameters},
          {"bits_per_weight", r.bits_per_weight},
          {"ppl", r.ppl},
          {"kld", r.kld},
          {"same_top", r.same_top},
          {"decode_tok_s", r.decode_tok_s},
          {"cached", r.cached},
          {"stage_seconds", r.stage_seconds}};
}

void PrintTable(const std::vector<pipeline::DemoRow>& rows, const std::string& kld_to, int threads, bool made_column) {
  fmt::print("| stage | file | size (KiB) | params | bits/weight | ppl | KLD to {} | same top | decode tok/s ({} thr){} |\n",
             kld_to, threads, made_column ? " | made in" : "");
  fmt::print("|---|---|---|---|---|---|---|---|---{}|\n", made_column ? "|---" : "");
  for (const auto& r : rows)
    fmt::print("| {} | {} | {:.1f} | {} | {:.2f} | {:.3f} | {:.5f} | {:.1f} % | {:.0f}{} |\n", r.stage,
               std::filesystem::path(r.file).filename().string(), (double)r.bytes / 1024.0, r.parameters,
               r.bits_per_weight, r.ppl, r.kld, 100 * r.same_top, r.decode_tok_s,
               !made_column ? "" : r.cached ? " | cached" : fmt::format(" | {:.0f} s", r.stage_seconds));
}

// The default job: train, distil, compress, measure (src/pipeline/demo.h).
int RunPipeline(const DemoArgs& a) {
  const bool tty = isatty(fileno(stderr)) != 0;
  const std::string corpus_name = a.corpus.empty() ? std::string("King James Bible (bible-kjv)") : a.corpus;
  const std::string corpus = a.corpus.empty() ? RunBible() : ReadFileToString(a.corpus);
  pipeline::DemoRecipe recipe = a.quick ? pipeline::QuickRecipe() : pipeline::DefaultRecipe();
  recipe.baseline = a.baseline;
  const std::string workdir = a.workdir.empty() ? DefaultWorkdir() : a.workdir;
  pipeline::DemoProgress progress;
  if (tty) {
    progress.note = [](const std::string& line) { fmt::print(stderr, "\rdemo: {}\x1b[K\n", line); };
    progress.step = [](const std::string& stage, int64_t step, int64_t steps, double loss) {
      fmt::print(stderr, "\rdemo: {} step {}/{}  loss {:.4f}\x1b[K", stage, step, steps, loss);
    };
  }
  const pipeline::DemoResult res = pipeline::RunDemoPipeline(corpus, corpus_name, recipe, workdir, a.threads, progress);
  if (a.json) {
    nlohmann::json j = {{"corpus", corpus_name},
                        {"corpus_bytes", corpus.size()},
                        {"sections", res.split.sections},
                        {"held_out_sections", res.split.held_out_sections},
                        {"held_out_bytes", res.split.held_out.size()},
                        {"vocab", res.vocab},
                        {"folder", res.folder},
                        {"recipe", pipeline::RecipeText(recipe)},
                        {"version", kVersion},
                        {"threads", a.threads},
                        {"seconds", res.seconds},
                        {"rows", nlohmann::json::array()}};
    for (const auto& r : res.rows) j["rows"].push_back(RowJson(r));
    PrintJson(j);
    return 0;
  }
  fmt::print("\ncorpus: {} ({} bytes): {} sections, every {}-th held out ({} sections, {} bytes; never trained on)\n",
             corpus_name, corpus.size(), res.split.sections, recipe.held_out_every, res.split.held_out_sections,
             res.split.held_out.size());
  fmt::print("recipe: {}\nppl, KLD to the teacher and same top on the held-out text (windows of {} tokens, at most {}); "
             "vocabulary {} tokens; {} threads\n\n",
             pipeline::RecipeText(recipe), recipe.eval_ctx, recipe.eval_chunks, res.vocab, a.threads);
  PrintTable(res.rows, "teacher", a.threads, true);
  fmt::print("\nfiles in {} ({:.0f} s)\n", res.folder, res.seconds);
  return 0;
}

// --model: the user's model through f16, q8_0, q4_0 and 2:4 pruning, measured against itself.
int RunOnModel(const DemoArgs& a) {
  namespace fs = std::filesystem;
  fs::path work = a.workdir.empty() ? fs::temp_directory_path() / "smelt-demo-model" : fs::path(a.workdir);
  fs::create_directories(work);
  const Model base = LoadModel(a.model, a.load);
  const std::string text = a.text.empty() ? std::string(kDefaultText) : ReadFileToString(a.text);
  std::vector<std::vector<int32_t>> samples;
  if (!a.calib.empty()) samples = CalibrationSamples(base, a.calib, CalibOptions{.samples = 32, .tokens = 128});
  std::vector<pipeline::DemoRow> rows;
  auto measure = [&](const std::string& stage, const std::string& file) {
    const Model m = LoadModel(file);
    rows.push_back(pipeline::MeasureStage(stage, file, m, base, "", false, text, a.ctx, a.chunks, a.gen, a.threads));
    if (isatty(fileno(stderr)) && !a.json) fmt::print(stderr, "demo: {} done\n", stage);
  };
  for (DType t : {DType::kF32, DType::kF16, DType::kQ8_0, DType::kQ4_0}) {
    const std::string file = (work / fmt::format("model-{}.gguf", DTypeName(t))).string();
    GgufSaveOptions gs;
    gs.type = t;
    SaveGgufModel(base, file, gs);
    measure(std::string(DTypeName(t)), file);
  }
  // 2:4 sparsity: Wanda with calibration text, magnitude without.
  PruneOptions o;
  o.method = samples.empty() ? PruneMethod::kMagnitude : PruneMethod::kWanda;
  o.pattern = NmPattern{2, 4};
  o.samples = samples.empty() ? nullptr : &samples;
  o.threads = a.threads;
  Model pruned = PruneModel(base, o);
  pruned.info = base.info;
  pruned.info["prune.recipe"] = fmt::format("method={} pattern=2:4{}", PruneMethodName(o.method),
                                            a.calib.empty() ? "" : " calib=" + a.calib + " samples=32 tokens=128");
  const std::string pfile = (work / "model-2of4.gguf").string();
  SaveGgufModel(pruned, pfile, GgufSaveOptions{});
  measure(fmt::format("2:4 ({})", PruneMethodName(o.method)), pfile);

  if (a.json) {
    nlohmann::json j = {{"model", a.model},
                        {"text", a.text.empty() ? "embedded (Genesis 1:1-13, KJV)" : a.text},
                        {"ctx", a.ctx},
                        {"threads", a.threads},
                        {"rows", nlohmann::json::array()}};
    for (const auto& r : rows) j["rows"].push_back(RowJson(r));
    PrintJson(j);
    return 0;
  }
  fmt::print("\nmodel: {}\ntext:  {}; windows of {} tokens; {} threads\n\n", a.model,
             a.text.empty() ? "embedded (Genesis 1:1-13, KJV)" : a.text, a.ctx, a.threads);
  PrintTable(rows, "f32", a.threads, false);
  fmt::print("\nfiles in {}\n", work.string());
  return 0;
}

int RunDemo(const DemoArgs& a) {
  if (!a.model.empty()) {
    if (!a.corpus.empty() || a.quick || a.baseline)
      Fail("demo: --model measures your model; --corpus, --quick and --baseline are for the training job");
    return RunOnModel(a);
  }
  if (!a.text.empty() || !a.calib.empty() || a.chunks != 0)
    Fail("demo: --text, --calib and --chunks go with --model; the training job evaluates on its held-out corpus sections");
  return RunPipeline(a);
}

}  // namespace

Command AddDemo(CLI::App& root) {
  auto a = std::make_shared<DemoArgs>();
  CLI::App* app = root.add_subcommand(
      "demo",
      "the main job: train a teacher on the King James Bible, distil a student, quantize and prune it; one table of "
      "size, ppl, KLD and speed per stage (cached per recipe)");
  app->add_option("--corpus", a->corpus, "training text (default: the King James Bible from `bible`, bible-kjv)");
  app->add_option("--workdir", a->workdir,
                  "cache folder of the stages (default: $XDG_CACHE_HOME/smelt/demo or ~/.cache/smelt/demo)");
  app->add_flag("--quick", a->quick, "a tiny recipe that runs in seconds (for tests)");
  app->add_flag("--baseline", a->baseline,
                "also train the student without the teacher (same start, batches and steps) and measure it");
  app->add_option("--model", a->model, "instead: quantize, prune and measure this model (no training)");
  app->add_option("--text", a->text, "with --model: evaluation text (default: an embedded public-domain passage)");
  app->add_option("--calib", a->calib, "with --model: calibration text for Wanda (default: magnitude pruning)");
  app->add_option("--ctx", a->ctx, "with --model: evaluation window")->capture_default_str();
  app->add_option("--chunks", a->chunks, "with --model: evaluate at most N windows (0: all)")->capture_default_str();
  app->add_option("--gen", a->gen, "with --model: tokens generated for the speed figure")->capture_default_str();
  AddThreads(app, a->threads);
  AddLoadOptions(app, a->load);
  app->add_flag("--json", a->json, "print JSON");
  return {app, [a] { return RunDemo(*a); }};
}

}  // namespace smelt::cli
