// smelt train: trains a Llama-family model on a text file (from scratch or from a model), with
// checkpoints it resumes from, and writes the result as an f32 GGUF model.
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>

#include "cli_util.h"
#include "core/mapped_file.h"
#include "train/checkpoint.h"
#include "train/data.h"
#include "train/trainer.h"
#include "train/vocab_train.h"

namespace smelt::cli {
namespace {

struct TrainArgs {
  std::string data, config, tokenizer, init, ckpt, out;
  train::TrainOptions opt;
  train::DataOptions data_opt;
  int64_t eval_every = 0, ckpt_every = 0;
  int vocab_size = 0;  // > 0: learn a vocabulary of this size from --data
  uint64_t seed = 1;
  bool resume = false, json = false;
};

// --config dim=..,layers=..,heads=..,kv-heads=..,ff=..[,ctx=..,theta=..,eps=..,tied=0|1]
ModelConfig ParseConfig(const std::string& spec, int vocab) {
  std::map<std::string, std::string> kv;
  size_t start = 0;
  while (start <= spec.size()) {
    const size_t end = std::min(spec.find(',', start), spec.size());
    const std::string item = spec.substr(start, end - start);
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) Fail("--config: '{}' is not KEY=VALUE", item);
    kv[item.substr(0, eq)] = item.substr(eq + 1);
    start = end + 1;
  }
  auto number = [&](const char* key, std::optional<double> fallback) {
    auto it = kv.find(key);
    if (it == kv.end()) {
      if (!fallback) Fail("--config: missing {}=", key);
      return *fallback;
    }
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(it->second, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != it->second.size()) Fail("--config: {}={} is not a number", key, it->second);
    kv.erase(it);
    return v;
  };
  ModelConfig c;
  c.arch = "llama";
  c.dim = (int)number("dim", std::nullopt);
  c.n_layers = (int)number("layers", std::nullopt);
  c.n_heads = (int)number("heads", std::nullopt);
  c.n_kv_heads = (int)number("kv-heads", (double)c.n_heads);
  c.ff = (int)number("ff", std::nullopt);
  c.context = (int)number("ctx", 2048.0);
  c.rope_theta = (float)number("theta", 10000.0);
  c.norm_eps = (float)number("eps", 1e-5);
  c.tied_embeddings = number("tied", 0.0) != 0.0;
  if (!kv.empty()) Fail("--config: unknown key {}", kv.begin()->first);
  if (c.n_heads <= 0 || c.dim % c.n_heads != 0) Fail("--config: heads={} must divide dim={}", c.n_heads, c.dim);
  c.head_dim = c.rope_dim = c.dim / c.n_heads;
  c.vocab = vocab;
  c.name = fmt::format("smelt-train d{} l{} h{}", c.dim, c.n_layers, c.n_heads);
  ValidateConfig(c, "--config");
  return c;
}

// The run's options against the checkpoint's: resuming with other ones would not continue it.
void CheckSameRun(const train::TrainOptions& flags, const train::TrainOptions& saved, const std::string& ckpt) {
  auto same = [&](const char* flag, double a, double b) {
    if (a != b) Fail("{}: the checkpoint was made with {} {}, not {}", ckpt, flag, b, a);
  };
  same("--steps", (double)flags.steps, (double)saved.steps);
  same("--batch", (double)flags.batch, (double)saved.batch);
  same("--accum", (double)flags.accum, (double)saved.accum);
  same("--lr", flags.lr, saved.lr);
  same("--warmup", (double)flags.warmup, (double)saved.warmup);
  same("--clip", flags.clip, saved.clip);
  same("--wd", flags.adam.weight_decay, saved.adam.weight_decay);
}

int RunTrain(TrainArgs& a) {
  using Clock = std::chrono::steady_clock;
  if (a.init.empty() == a.config.empty()) Fail("train needs either --init MODEL or --config ... --tokenizer MODEL");
  if (!a.config.empty() && a.tokenizer.empty() && a.vocab_size == 0)
    Fail("train --config needs --tokenizer MODEL or --vocab-size N for the vocabulary");
  if (a.vocab_size != 0 && (!a.tokenizer.empty() || !a.init.empty()))
    Fail("--vocab-size {}: learns a new vocabulary for --config, not with --tokenizer or --init", a.vocab_size);
  if (a.resume && a.ckpt.empty()) Fail("--resume needs --ckpt FILE");
  a.data_opt.seed = a.seed;

  std::optional<Model> init;
  Vocab vocab;
  if (!a.init.empty()) {
    init = LoadModel(a.init);
    vocab = init->vocab;
  } else if (!a.tokenizer.empty()) {
    vocab = LoadModel(a.tokenizer).vocab;
  } else {
    // A new vocabulary from the training text itself (document separators are not text).
    std::string text = ReadFileToString(a.data);
    const std::string& sep = a.data_opt.separator;
    for (size_t p; !sep.empty() && (p = text.find(sep)) != std::string::npos;) text.erase(p, sep.size());
    vocab = train::TrainBpeVocab(text, {.vocab_size = a.vocab_size}, a.data);
  }
  if (vocab.tokens.empty()) Fail("{}: the model has no tokenizer", a.init.empty() ? a.tokenizer : a.init);
  const train::Dataset data = train::Dataset::FromFile(vocab, a.data, a.data_opt);

  std::optional<train::Trainer> trainer;
  int64_t resumed_from = 0;
  if (a.resume && std::filesystem::exists(a.ckpt)) {
    train::Checkpoint c = train::LoadCheckpoint(a.ckpt, a.opt.threads);
    if (c.data_fingerprint != data.Fingerprint())
      Fail("{}: the checkpoint was trained on other data (or another --seq, --val-frac or tokenizer) than {}", a.ckpt,
           a.data);
    CheckSameRun(a.opt, c.trainer.options(), a.ckpt);
    if (c.trainer.model().config().vocab != (int)vocab.tokens.size())
      Fail("{}: the checkpoint's vocabulary differs from the tokenizer's", a.ckpt);
    trainer.emplace(std::move(c.trainer));
    resumed_from = trainer->step();
  } else {
    train::TrainModel model = init ? train::TrainModel::FromModel(*init)
                                   : train::TrainModel::FromScratch(ParseConfig(a.config, vocab.size()), vocab, a.seed);
    trainer.emplace(std::move(model), a.opt);
  }
  init.reset();
  train::Trainer& t = *trainer;
  const int64_t steps = t.options().steps;
  const bool tty = isatty(fileno(stderr));
  const auto start = Clock::now();
  int64_t tokens = 0;
  std::vector<std::pair<int64_t, double>> val_losses;
  double last_val = -1;
  auto save = [&] {
    if (!a.ckpt.empty()) train::SaveCheckpoint(t, data.Fingerprint(), a.ckpt);
  };
  while (t.step() < steps) {
    const train::StepStats s = t.Step(data);
    tokens += s.tokens;
    if (a.eval_every > 0 && s.step % a.eval_every == 0 && data.val_sequences() > 0) {
      last_val = t.ValLoss(data);
      val_losses.emplace_back(s.step, last_val);
    }
    if (a.ckpt_every > 0 && s.step % a.ckpt_every == 0 && s.step < steps) save();
    if (tty) {
      const double el = std::chrono::duration<double>(Clock::now() - start).count();
      const double eta = el * (double)(steps - s.step) / (double)(s.step - resumed_from);
      std::fprintf(stderr, "\rstep %lld/%lld  loss %.4f%s  lr %.2e  %.0f tok/s  ETA %.0fs   ", (long long)s.step,
                   (long long)steps, s.loss, last_val >= 0 ? fmt::format("  val {:.4f}", last_val).c_str() : "",
                   (double)s.lr, el > 0 ? (double)tokens / el : 0.0, eta);
      std::fflush(stderr);
    }
  }
  if (tty) std::fputc('\n', stderr);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const bool has_val = data.val_sequences() > 0;  // --val-frac 0: no validation split
  const double val = has_val ? t.ValLoss(data) : 0.0;
  save();
  train::ExportGguf(t.model(), a.out);

  const double final_loss = t.losses().empty() ? 0.0 : t.losses().back();
  const double tps = seconds > 0 ? (double)tokens / seconds : 0.0;
  if (a.json) {
    nlohmann::json vl = nlohmann::json::array();
    for (const auto& [step, loss] : val_losses) vl.push_back({{"step", step}, {"loss", loss}});
    PrintJson({{"output", a.out},
               {"data", a.data},
               {"parameters", (int64_t)t.model().params().size()},
               {"steps", steps},
               {"resumed_from", resumed_from},
               {"batch", t.options().batch},
               {"accum", t.options().accum},
               {"seq", data.seq()},
               {"threads", t.options().threads},
               {"train_sequences", data.train_sequences()},
               {"val_sequences", data.val_sequences()},
               {"final_loss", final_loss},
               {"val_loss", has_val ? nlohmann::json(val) : nlohmann::json(nullptr)},
               {"losses", t.losses()},
               {"val_losses", vl},
               {"tokens", tokens},
               {"seconds", seconds},
               {"tokens_per_second", tps}});
    return 0;
  }
  fmt::print("trained {} ({:.2f} M parameters) on {}: {} train / {} validation sequences of {} tokens\n",
             t.model().config().name, (double)t.model().params().size() / 1e6, a.data, data.train_sequences(),
             data.val_sequences(), data.seq());
  if (resumed_from > 0) fmt::print("resumed from step {} of {}\n", resumed_from, steps);
  fmt::print("steps {}  final loss {:.4f}  validation loss {}\n", steps, final_loss,
             has_val ? fmt::format("{:.4f}", val) : std::string("(no validation split)"));
  fmt::print("{} tokens in {:.1f} s: {:.0f} tokens/s, threads: {}\n", tokens, seconds, tps, t.options().threads);
  fmt::print("wrote {}{}\n", a.out, a.ckpt.empty() ? "" : fmt::format(" (checkpoint {})", a.ckpt));
  return 0;
}

}  // namespace

Command AddTrain(CLI::App& root) {
  auto a = std::make_shared<TrainArgs>();
  CLI::App* app = root.add_subcommand("train", "train a Llama-family model on a text file (f32, AdamW), write GGUF");
  app->add_option("--data", a->data, "UTF-8 training text (documents separated by <|endoftext|> lines)")->required();
  app->add_option("--config", a->config,
                  "a new model: dim=..,layers=..,heads=..,kv-heads=..,ff=..[,ctx=..,theta=..,eps=..,tied=1]");
  app->add_option("--tokenizer", a->tokenizer, "model whose vocabulary a new model (--config) uses");
  app->add_option("--vocab-size", a->vocab_size,
                  "a new model (--config) with a new SentencePiece-style BPE vocabulary of N tokens learned from --data "
                  "(instead of --tokenizer)");
  app->add_option("--init", a->init, "start from this model instead (any weight type, dequantized to f32)");
  app->add_option("--steps", a->opt.steps, "optimizer steps")->capture_default_str()->check(CLI::PositiveNumber);
  app->add_option("--batch", a->opt.batch, "sequences per micro-batch")->capture_default_str()->check(CLI::PositiveNumber);
  app->add_option("--seq", a->data_opt.seq, "tokens per sequence")->capture_default_str()->check(CLI::PositiveNumber);
  app->add_option("--lr", a->opt.lr, "peak learning rate")->capture_default_str();
  app->add_option("--warmup", a->opt.warmup, "linear warmup steps (then cosine decay to lr/10)")->capture_default_str();
  app->add_option("--accum", a->opt.accum, "micro-batches per step (gradient accumulation)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app->add_option("--clip", a->opt.clip, "global gradient-norm limit (0: none)")->capture_default_str();
  app->add_option("--wd", a->opt.adam.weight_decay, "AdamW weight decay (matrices only)")->capture_default_str();
  app->add_option("--val-frac", a->data_opt.val_frac, "fraction of sequences held out for validation (the end)")
      ->capture_default_str();
  app->add_option("--eval-every", a->eval_every, "validation loss every E steps (0: only at the end)")
      ->capture_default_str();
  app->add_option("--eval-batches", a->opt.eval_batches, "validation batches per evaluation (0: all)")
      ->capture_default_str();
  app->add_option("--seed", a->seed, "seed of the initialisation and the data order")->capture_default_str();
  AddThreads(app, a->opt.threads);
  app->add_option("--ckpt", a->ckpt, "checkpoint file, written every --ckpt-every steps and at the end");
  app->add_option("--ckpt-every", a->ckpt_every, "steps between checkpoints (0: only at the end)")
      ->capture_default_str();
  app->add_flag("--resume", a->resume,
                "continue from --ckpt when it exists (same flags and data; the same --threads repeats a straight "
                "run bit for bit)");
  app->add_option("-o,--output", a->out, "output GGUF model (f32)")->required();
  app->add_flag("--json", a->json, "print JSON");
  return {app, [a] { return RunTrain(*a); }};
}

}  // namespace smelt::cli
