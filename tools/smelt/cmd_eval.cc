// smelt eval ppl | kld: perplexity and KL-divergence the way llama-perplexity computes them.
#include <fmt/format.h>

#include "cli_util.h"
#include "core/mapped_file.h"
#include "eval/kld.h"
#include "eval/perplexity.h"

namespace smelt::cli {
namespace {

struct EvalArgs {
  std::string model, text, base, base_logits_in, base_logits_out;
  LoadOptions load;
  PplOptions ppl;
  bool json = false;
};

void AddCommon(CLI::App* app, EvalArgs& a) {
  app->add_option("model", a.model, "GGUF file, Hugging Face folder or llama2.c checkpoint")->required();
  app->add_option("--text", a.text, "UTF-8 text file to score")->required();
  app->add_option("--ctx", a.ppl.ctx, "window length in tokens (the second half of each window is scored)")
      ->capture_default_str();
  app->add_option("--chunks", a.ppl.max_chunks, "evaluate at most this many windows (0: all)")->capture_default_str();
  app->add_flag("--per-line", a.ppl.per_line, "score each non-empty line on its own (BOS + line)");
  AddThreads(app, a.ppl.threads);
  AddKvOption(app, a.ppl.kv);
  AddActivationsOption(app, a.ppl.activations);
  AddLoadOptions(app, a.load);
  app->add_flag("--json", a.json, "print JSON");
}

int RunPpl(EvalArgs& a) {
  Model m = LoadModel(a.model, a.load);
  std::string text = ReadFileToString(a.text);
  a.ppl.progress = Progress("ppl");
  PplResult r = Perplexity(m, text, a.ppl);
  if (a.json) {
    PrintJson({{"model", a.model},
               {"text", a.text},
               {"ctx", a.ppl.ctx},
               {"per_line", a.ppl.per_line},
               {"threads", a.ppl.threads},
               {"tokens", r.n_tokens},
               {"chunks", r.n_chunks},
               {"scored", r.n_scored},
               {"mean_nll", r.mean_nll()},
               {"ppl", r.ppl()},
               {"ppl_stderr", r.ppl_stderr()},
               {"seconds", r.seconds},
               {"tokens_per_second", r.seconds > 0 ? (double)r.n_chunks * a.ppl.ctx / r.seconds : 0}});
    return 0;
  }
  fmt::print("model   {}\ntext    {} ({} tokens)\n", a.model, a.text, r.n_tokens);
  fmt::print("method  {}\n", a.ppl.per_line ? "per line (BOS + line, all tokens scored)"
                                            : fmt::format("{} windows of {} tokens, second half scored", r.n_chunks, a.ppl.ctx));
  fmt::print("scored  {} tokens in {:.2f} s, {} threads\n", r.n_scored, r.seconds, a.ppl.threads);
  fmt::print("nll     {:.5f} nats/token\nppl     {:.4f} ± {:.4f}\n", r.mean_nll(), r.ppl(), r.ppl_stderr());
  return 0;
}

int RunKld(EvalArgs& a) {
  if (a.base.empty() && a.base_logits_in.empty()) Fail("eval kld needs --base MODEL or --base-logits FILE");
  Model m = LoadModel(a.model, a.load);
  std::optional<Model> base;
  if (!a.base.empty()) base = LoadModel(a.base, a.load);
  std::string text = ReadFileToString(a.text);
  KldOptions ko;
  a.ppl.progress = Progress("kld");
  ko.ppl = a.ppl;
  ko.base_logits_in = a.base.empty() ? a.base_logits_in : "";
  ko.base_logits_out = a.base_logits_out;
  KldResult r = KlDivergence(m, base ? &*base : nullptr, text, ko);
  if (a.json) {
    PrintJson({{"model", a.model},
               {"base", a.base.empty() ? a.base_logits_in : a.base},
               {"text", a.text},
               {"ctx", a.ppl.ctx},
               {"positions", r.n},
               {"kld_mean", r.kld_mean},
               {"kld_stderr", r.kld_stderr},
               {"kld_median", r.kld_median},
               {"kld_p99", r.kld_p99},
               {"kld_p99_9", r.kld_p999},
               {"kld_max", r.kld_max},
               {"same_top", r.same_top},
               {"same_top_stderr", r.same_top_stderr},
               {"delta_p_mean", r.dp_mean},
               {"delta_p_rms", r.dp_rms},
               {"delta_p_p01", r.dp_p01},
               {"delta_p_p99", r.dp_p99},
               {"ppl_base", r.ppl_base},
               {"ppl_model", r.ppl_model},
               {"ln_ppl_ratio", r.ln_ppl_ratio},
               {"seconds", r.seconds}});
    return 0;
  }
  fmt::print("model        {}\nbase         {}\npositions    {} ({} windows of {})\n", a.model,
             a.base.empty() ? a.base_logits_in : a.base, r.n, r.n_chunks, a.ppl.ctx);
  fmt::print("ppl          base {:.4f}, model {:.4f}, ln ratio {:+.5f}\n", r.ppl_base, r.ppl_model, r.ln_ppl_ratio);
  fmt::print("KLD          mean {:.6f} ± {:.6f}, median {:.6f}, p99 {:.6f}, p99.9 {:.6f}, max {:.6f}\n", r.kld_mean,
             r.kld_stderr, r.kld_median, r.kld_p99, r.kld_p999, r.kld_max);
  fmt::print("same top     {:.3f} ± {:.3f} %\n", 100 * r.same_top, 100 * r.same_top_stderr);
  fmt::print("Δp           mean {:+.4f} %, rms {:.4f} %, p1 {:+.4f} %, p99 {:+.4f} %\n", 100 * r.dp_mean, 100 * r.dp_rms,
             100 * r.dp_p01, 100 * r.dp_p99);
  return 0;
}

}  // namespace

Command AddEval(CLI::App& root) {
  CLI::App* app = root.add_subcommand("eval", "measure quality: perplexity or KL-divergence to a base model");
  app->require_subcommand(1);
  auto ppl = std::make_shared<EvalArgs>();
  CLI::App* p = app->add_subcommand("ppl", "perplexity over a text (llama-perplexity's method)");
  AddCommon(p, *ppl);
  auto kld = std::make_shared<EvalArgs>();
  CLI::App* k = app->add_subcommand("kld", "KL-divergence of MODEL to a base model over a text");
  AddCommon(k, *kld);
  k->add_option("--base", kld->base, "the base (reference) model");
  k->add_option("--base-logits", kld->base_logits_in, "saved base log-probs (instead of --base)");
  k->add_option("--save-base-logits", kld->base_logits_out, "also save the base's log-probs to this file for reuse");
  return {app, [=] { return p->parsed() ? RunPpl(*ppl) : RunKld(*kld); }};
}

}  // namespace smelt::cli
