#include "train_run.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>

#include "train/checkpoint.h"

namespace smelt::cli {
namespace {

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

// Parameters of the model itself (not the auxiliary ones a loss trains alongside).
int64_t ModelParameters(const train::TrainModel& m) {
  int64_t n = 0;
  for (const train::ParamSlice& s : m.slices())
    if (!s.auxiliary) n += (int64_t)s.size;
  return n;
}

}  // namespace

void AddTrainRunOptions(CLI::App* app, TrainRunArgs& a) {
  app->add_option("--data", a.data, "UTF-8 training text (documents separated by <|endoftext|> lines)")->required();
  app->add_option("--steps", a.opt.steps, "optimizer steps")->capture_default_str()->check(CLI::PositiveNumber);
  app->add_option("--batch", a.opt.batch, "sequences per micro-batch")->capture_default_str()->check(CLI::PositiveNumber);
  app->add_option("--seq", a.data_opt.seq, "tokens per sequence")->capture_default_str()->check(CLI::PositiveNumber);
  app->add_option("--lr", a.opt.lr, "peak learning rate")->capture_default_str();
  app->add_option("--warmup", a.opt.warmup, "linear warmup steps (then cosine decay to lr/10)")->capture_default_str();
  app->add_option("--accum", a.opt.accum, "micro-batches per step (gradient accumulation)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app->add_option("--clip", a.opt.clip, "global gradient-norm limit (0: none)")->capture_default_str();
  app->add_option("--wd", a.opt.adam.weight_decay, "AdamW weight decay (matrices only)")->capture_default_str();
  app->add_option("--val-frac", a.data_opt.val_frac, "fraction of sequences held out for validation (the end)")
      ->capture_default_str();
  app->add_option("--eval-every", a.eval_every, "validation loss every E steps (0: only at the end)")
      ->capture_default_str();
  app->add_option("--eval-batches", a.opt.eval_batches, "validation batches per evaluation (0: all)")
      ->capture_default_str();
  app->add_option("--seed", a.seed, "seed of the initialisation and the data order")->capture_default_str();
  AddThreads(app, a.opt.threads);
  app->add_option("--ckpt", a.ckpt, "checkpoint file, written every --ckpt-every steps and at the end");
  app->add_option("--ckpt-every", a.ckpt_every, "steps between checkpoints (0: only at the end)")
      ->capture_default_str();
  app->add_flag("--resume", a.resume,
                "continue from --ckpt when it exists (same flags and data; the same --threads repeats a straight "
                "run bit for bit)");
  app->add_option("-o,--output", a.out, "output GGUF model (f32)")->required();
  app->add_flag("--json", a.json, "print JSON");
}

ModelConfig ParseModelConfig(const std::string& spec, int vocab, const std::string& flag) {
  std::map<std::string, std::string> kv;
  size_t start = 0;
  while (start <= spec.size()) {
    const size_t end = std::min(spec.find(',', start), spec.size());
    const std::string item = spec.substr(start, end - start);
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) Fail("{}: '{}' is not KEY=VALUE", flag, item);
    kv[item.substr(0, eq)] = item.substr(eq + 1);
    start = end + 1;
  }
  auto number = [&](const char* key, std::optional<double> fallback) {
    auto it = kv.find(key);
    if (it == kv.end()) {
      if (!fallback) Fail("{}: missing {}=", flag, key);
      return *fallback;
    }
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(it->second, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != it->second.size()) Fail("{}: {}={} is not a number", flag, key, it->second);
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
  if (!kv.empty()) Fail("{}: unknown key {}", flag, kv.begin()->first);
  if (c.n_heads <= 0 || c.dim % c.n_heads != 0) Fail("{}: heads={} must divide dim={}", flag, c.n_heads, c.dim);
  c.head_dim = c.rope_dim = c.dim / c.n_heads;
  c.vocab = vocab;
  c.name = fmt::format("smelt-train d{} l{} h{}", c.dim, c.n_layers, c.n_heads);
  ValidateConfig(c, flag);
  return c;
}

std::optional<train::Trainer> ResumeTrainer(const TrainRunArgs& a, const train::Dataset& data, int vocab,
                                            const DataParallel& dp) {
  const bool resume = dp.Agree(a.resume && std::filesystem::exists(a.ckpt));
  if (!resume || !dp.root()) return std::nullopt;
  train::Checkpoint c = train::LoadCheckpoint(a.ckpt, a.opt.threads);
  if (c.data_fingerprint != data.Fingerprint())
    Fail("{}: the checkpoint was trained on other data (or another --seq, --val-frac or tokenizer) than {}", a.ckpt,
         a.data);
  CheckSameRun(a.opt, c.trainer.options(), a.ckpt);
  if (c.trainer.model().config().vocab != vocab) Fail("{}: the checkpoint's vocabulary differs from the tokenizer's", a.ckpt);
  return std::move(c.trainer);
}

TrainRunResult RunTrainingLoop(train::Trainer& t, const train::Dataset& data, const TrainRunArgs& a,
                               int64_t resumed_from, DataParallel& dp, const LoopHooks& hooks) {
  const train::Dataset& val = hooks.val ? *hooks.val : data;
  using Clock = std::chrono::steady_clock;
  dp.Attach(t, data.Fingerprint());
  TrainRunResult r;
  r.resumed_from = resumed_from;
  const int64_t steps = t.options().steps;
  const bool tty = dp.root() && isatty(fileno(stderr));
  const auto start = Clock::now();
  double last_val = -1;
  auto save = [&] {
    if (!a.ckpt.empty() && dp.root()) train::SaveCheckpoint(t, data.Fingerprint(), a.ckpt);
  };
  while (t.step() < steps) {
    if (hooks.before_step) hooks.before_step(t);
    const train::StepStats s = t.Step(data);
    r.tokens += s.tokens;
    if (a.eval_every > 0 && s.step % a.eval_every == 0 && val.val_sequences() > 0) {
      last_val = t.ValLoss(val);
      r.val_losses.emplace_back(s.step, last_val);
    }
    if (a.ckpt_every > 0 && s.step % a.ckpt_every == 0 && s.step < steps) save();
    if (tty) {
      const double el = std::chrono::duration<double>(Clock::now() - start).count();
      const double eta = el * (double)(steps - s.step) / (double)(s.step - resumed_from);
      std::fprintf(stderr, "\rstep %lld/%lld  loss %.4f%s  lr %.2e  %.0f tok/s  ETA %.0fs   ", (long long)s.step,
                   (long long)steps, s.loss, last_val >= 0 ? fmt::format("  val {:.4f}", last_val).c_str() : "",
                   (double)s.lr, el > 0 ? (double)r.tokens / el : 0.0, eta);
      std::fflush(stderr);
    }
  }
  if (tty) std::fputc('\n', stderr);
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  r.has_val = val.val_sequences() > 0;
  r.val = r.has_val ? t.ValLoss(val) : 0.0;
  r.final_loss = t.losses().empty() ? 0.0 : t.losses().back();
  if (!dp.root()) return r;
  save();
  train::ExportGguf(t.model(), a.out);
  return r;
}

nlohmann::json TrainRunJson(const train::Trainer& t, const train::Dataset& data, const TrainRunArgs& a,
                            const TrainRunResult& r, int ranks) {
  nlohmann::json vl = nlohmann::json::array();
  for (const auto& [step, loss] : r.val_losses) vl.push_back({{"step", step}, {"loss", loss}});
  return {{"output", a.out},
          {"data", a.data},
          {"parameters", ModelParameters(t.model())},
          {"steps", t.options().steps},
          {"resumed_from", r.resumed_from},
          {"batch", t.options().batch},
          {"accum", t.options().accum},
          {"seq", data.seq()},
          {"threads", t.options().threads},
          {"ranks", ranks},
          {"train_sequences", data.train_sequences()},
          {"val_sequences", data.val_sequences()},
          {"final_loss", r.final_loss},
          {"val_loss", r.has_val ? nlohmann::json(r.val) : nlohmann::json(nullptr)},
          {"losses", t.losses()},
          {"val_losses", vl},
          {"tokens", r.tokens},
          {"seconds", r.seconds},
          {"tokens_per_second", r.tokens_per_second()}};
}

void PrintTrainRun(const char* verb, const train::Trainer& t, const train::Dataset& data, const TrainRunArgs& a,
                   const TrainRunResult& r) {
  fmt::print("{} {} ({:.2f} M parameters) on {}: {} train / {} validation sequences of {} tokens\n", verb,
             t.model().config().name, (double)ModelParameters(t.model()) / 1e6, a.data, data.train_sequences(),
             data.val_sequences(), data.seq());
  if (r.resumed_from > 0) fmt::print("resumed from step {} of {}\n", r.resumed_from, t.options().steps);
  fmt::print("steps {}  final loss {:.4f}  validation loss {}\n", t.options().steps, r.final_loss,
             r.has_val ? fmt::format("{:.4f}", r.val) : std::string("(no validation split)"));
  fmt::print("{} tokens in {:.1f} s: {:.0f} tokens/s, threads: {}\n", r.tokens, r.seconds, r.tokens_per_second(),
             t.options().threads);
  fmt::print("wrote {}{}\n", a.out, a.ckpt.empty() ? "" : fmt::format(" (checkpoint {})", a.ckpt));
}

}  // namespace smelt::cli
