// smelt run MODEL -p TEXT -n N: generate text, streamed to stdout; speed to stderr.
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <optional>

#include "cli_util.h"
#include "io/tokenizer.h"
#include "runtime/generate.h"
#include "runtime/sampler.h"
#include "runtime/session.h"

namespace smelt::cli {
namespace {

struct RunArgs {
  std::string model, prompt;
  LoadOptions load;
  int n = 128;
  int ctx = 0;
  int threads = 1;
  SamplerOptions sampling;
  bool ignore_eos = false;
  bool json = false;
  KvType kv = KvType::kF32;
  Activations activations = Activations::kGgml;
  std::string draft;         // speculative decoding's draft model ("": none)
  std::string prompt_cache;  // KV state file of the prompt ("": none)
  int draft_tokens = 4;
};

// The prompt cache: positions of `prompt` that a saved state at `path` already holds (their
// common prefix, all but the last prompt token at most) are loaded; the rest but the last token
// is evaluated and the state saved for next time. Returns how many prompt tokens the session holds.
int UsePromptCache(Session& session, const std::string& path, std::span<const int32_t> prompt, bool quiet) {
  const int64_t keep_max = (int64_t)prompt.size() - 1;
  int64_t loaded = 0, kept = 0;
  if (std::filesystem::exists(path)) {
    const std::vector<int32_t> saved = session.LoadState(path);
    loaded = (int64_t)saved.size();
    while (kept < std::min<int64_t>(loaded, keep_max) && saved[kept] == prompt[kept]) ++kept;
    session.Truncate(0, (int)kept);
  }
  if (kept < keep_max) {
    session.Eval(prompt.subspan(kept, keep_max - kept));
    session.SaveState(path, prompt.first(keep_max));
  }
  if (!quiet)
    fmt::print(stderr, "prompt cache {}: {} of {} saved tokens reused, {} evaluated{}\n", path, kept, loaded,
               keep_max - kept, kept < keep_max ? ", saved" : "");
  return (int)keep_max;
}

int RunRun(const RunArgs& a) {
  Model m = LoadModel(a.model, a.load);
  Tokenizer tok(m.vocab);
  std::vector<int32_t> prompt = tok.Encode(a.prompt, /*add_special=*/true);
  if (prompt.empty()) prompt.push_back(m.vocab.bos >= 0 ? m.vocab.bos : 0);
  GenerateOptions go;
  SessionOptions so;
  so.threads = a.threads;
  so.context = a.ctx > 0 ? a.ctx : std::min<int>(m.config.context, (int)prompt.size() + a.n + 1);
  so.kv = a.kv;
  so.activations = a.activations;
  Session session(m, so);
  if (!a.prompt_cache.empty()) go.prompt_cached = UsePromptCache(session, a.prompt_cache, prompt, a.json);
  Sampler sampler(a.sampling);
  go.max_tokens = a.n;
  go.stop_at_eos = !a.ignore_eos;
  // A SentencePiece-style model never emits BOS mid-text; llama2.c's run.c stops there too.
  if (m.vocab.bos >= 0 && m.vocab.model == "llama") go.stop_tokens.push_back(m.vocab.bos);
  std::string text;
  auto on_piece = [&](int32_t, const std::string& piece) {
    if (a.json) {
      text += piece;
    } else {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    }
    return true;
  };
  GenerateStats st;
  SpeculativeStats spec;
  std::optional<Model> draft_model;
  if (a.draft.empty()) {
    st = Generate(session, tok, sampler, prompt, go, on_piece);
  } else {
    draft_model = LoadModel(a.draft, a.load);
    Session draft(*draft_model, so);
    st = GenerateSpeculative(session, draft, tok, sampler, prompt, go, {.draft_tokens = a.draft_tokens}, on_piece,
                             &spec);
  }
  if (a.json) {
    nlohmann::json j = {{"model", a.model},
                        {"prompt", a.prompt},
                        {"text", text},
                        {"tokens", st.tokens},
                        {"prompt_tokens", st.prompt_tokens},
                        {"generated_tokens", st.generated_tokens},
                        {"prompt_tok_s", st.PromptTokensPerSecond()},
                        {"decode_tok_s", st.DecodeTokensPerSecond()},
                        {"threads", a.threads}};
    if (draft_model)
      j["speculative"] = {{"draft", a.draft},          {"draft_tokens", a.draft_tokens}, {"steps", spec.steps},
                          {"drafted", spec.drafted},   {"accepted", spec.accepted},
                          {"acceptance_rate", spec.AcceptanceRate()}};
    PrintJson(j);
    return 0;
  }
  std::fputc('\n', stdout);
  std::fflush(stdout);
  fmt::print(stderr, "prompt: {} tokens, {:.1f} tok/s; generated: {} tokens, {:.1f} tok/s; {} threads\n",
             st.prompt_tokens, st.PromptTokensPerSecond(), st.generated_tokens, st.DecodeTokensPerSecond(), a.threads);
  if (draft_model)
    fmt::print(stderr, "speculative: {} steps of {} draft tokens, {} of {} proposals kept ({:.1f} %)\n", spec.steps,
               a.draft_tokens, spec.accepted, spec.drafted, 100.0 * spec.AcceptanceRate());
  return 0;
}

}  // namespace

Command AddRun(CLI::App& root) {
  auto a = std::make_shared<RunArgs>();
  CLI::App* app = root.add_subcommand("run", "generate text (streamed to stdout; tok/s to stderr)");
  app->add_option("model", a->model, "GGUF file, Hugging Face folder or llama2.c checkpoint")->required();
  app->add_option("-p,--prompt", a->prompt, "prompt text (default: empty, generation starts after BOS)");
  app->add_option("-n,--n-predict", a->n, "tokens to generate")->capture_default_str();
  app->add_option("-c,--ctx", a->ctx, "context length (0: prompt + n, at most the model's)")->capture_default_str();
  app->add_option("--temp", a->sampling.temperature, "temperature (0: greedy)")->capture_default_str();
  app->add_option("--top-k", a->sampling.top_k, "keep the k most likely tokens (0: off)")->capture_default_str();
  app->add_option("--top-p", a->sampling.top_p, "nucleus sampling mass (1: off)")->capture_default_str();
  app->add_option("--min-p", a->sampling.min_p, "drop tokens below min-p × the top probability")->capture_default_str();
  app->add_option("--repeat-penalty", a->sampling.repeat_penalty, "penalty for recent tokens (1: off)")
      ->capture_default_str();
  app->add_option("--repeat-last-n", a->sampling.repeat_last_n, "how many recent tokens the penalty sees")
      ->capture_default_str();
  app->add_option("--seed", a->sampling.seed, "random seed")->capture_default_str();
  app->add_flag("--llama2c-sampler", a->sampling.llama2c_compat,
                "sample exactly as llama2.c's run.c does (uses --temp, --top-p, --seed)");
  app->add_flag("--ignore-eos", a->ignore_eos, "keep generating past the end-of-sequence token");
  app->add_option("--draft", a->draft,
                  "speculative decoding: a smaller model with the same vocabulary proposes tokens that this model "
                  "verifies in one pass (output unchanged)");
  app->add_option("--draft-n", a->draft_tokens, "tokens the draft proposes per step")
      ->check(CLI::Range(1, 15))
      ->capture_default_str();
  app->add_option("--prompt-cache", a->prompt_cache,
                  "KV state file of the prompt: reuses the prefix it shares with this prompt, and saves the "
                  "prompt's state there for the next run");
  AddKvOption(app, a->kv);
  AddActivationsOption(app, a->activations);
  AddThreads(app, a->threads);
  AddLoadOptions(app, a->load);
  app->add_flag("--json", a->json, "print JSON at the end instead of streaming");
  return {app, [a] { return RunRun(*a); }};
}

}  // namespace smelt::cli
