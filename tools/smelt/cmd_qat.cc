// smelt qat --model M --type T --data FILE -o OUT.gguf [--teacher T]: quantization-aware
// training (train/qat.h). The model trains through its fake-quantized weights towards the fp
// teacher's logits (default: the model itself before quantization) and is written in the real
// quantized format, the file `smelt quantize --type T` would write for the trained weights.
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "cli_util.h"
#include "compress/rules.h"
#include "formats/types.h"
#include "io/gguf_model.h"
#include "train/data.h"
#include "train/distill.h"
#include "train/qat.h"
#include "train/trainer.h"

namespace smelt::cli {
namespace {

struct QatArgs {
  std::string model, teacher, type, rules, data, out;
  train::TrainOptions opt;
  train::DataOptions data_opt;
  float alpha = 0.0f, temperature = 1.0f, scale_lr = 1e-3f;
  bool learn_scales = false, json = false;
  uint64_t seed = 1;
};

int RunQat(QatArgs& a) {
  using Clock = std::chrono::steady_clock;
  if (!a.out.ends_with(".gguf")) Fail("-o {}: the output must be a .gguf file", a.out);
  if (a.type.empty() && a.rules.empty()) Fail("qat needs --type TYPE or --rules 'GLOB=TYPE; ...'");
  std::vector<TypeRule> rules;
  if (!a.rules.empty()) rules = ParseTypeRules(a.rules);
  if (!a.type.empty()) {
    if (!ParseDType(a.type)) Fail("--type {}: unknown type", a.type);
    auto all = ParseTypeRules("*=" + a.type);
    rules.insert(rules.end(), all.begin(), all.end());
  }
  if (!(a.alpha >= 0.0f && a.alpha <= 1.0f)) Fail("--alpha {}: must be in [0, 1]", a.alpha);
  if (!(a.temperature > 0.0f)) Fail("--temperature {}: must be positive", a.temperature);
  if (!(a.scale_lr > 0.0f)) Fail("--scale-lr {}: must be positive", a.scale_lr);
  a.data_opt.seed = a.seed;

  const Model student_model = LoadModel(a.model);
  if (student_model.vocab.tokens.empty()) Fail("{}: the model has no tokenizer", a.model);
  auto student = train::TrainModel::FromModel(student_model);
  std::shared_ptr<const train::TrainModel> teacher;
  if (a.teacher.empty()) {
    teacher = std::make_shared<const train::TrainModel>(student);
  } else {
    const Model t = LoadModel(a.teacher);
    if (t.config.vocab != student_model.config.vocab || t.vocab.tokens != student_model.vocab.tokens)
      Fail("{}: the teacher's vocabulary ({} tokens) is not the model's ({} tokens)", a.teacher, t.config.vocab,
           student_model.config.vocab);
    teacher = std::make_shared<const train::TrainModel>(train::TrainModel::FromModel(t));
  }
  const train::Dataset data = train::Dataset::FromFile(student_model.vocab, a.data, a.data_opt);

  auto fq = std::make_shared<train::FakeQuantizer>(student, rules, a.learn_scales);
  train::Trainer t(std::move(student), a.opt);
  train::DistillTarget target;
  target.alpha = a.alpha;
  target.soft.temperature = a.temperature;
  t.set_objective(train::FakeQuantized(fq, train::DistillObjective(teacher, target)));

  // KL to the teacher on the validation split, of the quantized model (round to nearest before
  // training, the trained one after).
  const std::vector<train::Batch> val = data.ValBatches(a.opt.batch, a.opt.eval_batches);
  auto measure = [&] {
    if (val.empty()) return train::KlCe{};
    fq->Apply(t.model(), a.opt.threads);
    const train::KlCe r = train::MeasureKlCe(t.model(), *teacher, val, a.opt.threads);
    fq->Restore(t.model());
    t.model().ZeroGrad();
    return r;
  };
  const train::KlCe before = measure();
  const bool tty = isatty(fileno(stderr));
  const auto start = Clock::now();
  int64_t tokens = 0;
  while (t.step() < a.opt.steps) {
    const train::StepStats s = t.Step(data);
    fq->UpdateScales(a.scale_lr * s.lr / a.opt.lr, a.opt.threads);
    tokens += s.tokens;
    if (tty) {
      std::fprintf(stderr, "\rqat step %lld/%lld  loss %.4f  lr %.2e   ", (long long)s.step, (long long)a.opt.steps,
                   s.loss, (double)s.lr);
      std::fflush(stderr);
    }
  }
  if (tty) std::fputc('\n', stderr);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const train::KlCe after = measure();

  Model out = fq->Export(t.model(), a.opt.threads);
  out.info = student_model.info;
  out.info["quantize.recipe"] = fmt::format(
      "method=qat rules='{}{}{}' teacher={} data={} steps={} batch={} seq={} lr={} alpha={} temperature={} "
      "learn_scales={} seed={}",
      a.rules, a.rules.empty() || a.type.empty() ? "" : "; ", a.type.empty() ? "" : "*=" + a.type,
      a.teacher.empty() ? a.model : a.teacher, a.data, a.opt.steps, a.opt.batch, data.seq(), a.opt.lr, a.alpha,
      a.temperature, a.learn_scales, a.seed);
  out.info["quantize.source"] = a.model;
  SaveGgufModel(out, a.out, GgufSaveOptions{});

  const double tps = seconds > 0 ? (double)tokens / seconds : 0.0;
  if (a.json) {
    nlohmann::json m = nlohmann::json::array();
    for (const train::QatMatrix& q : fq->matrices())
      m.push_back({{"name", q.name}, {"wanted", DTypeName(q.wanted)}, {"type", DTypeName(q.type)}, {"learned_scales", q.learned}});
    PrintJson({{"output", a.out},
               {"model", a.model},
               {"teacher", a.teacher.empty() ? a.model : a.teacher},
               {"steps", a.opt.steps},
               {"batch", a.opt.batch},
               {"seq", data.seq()},
               {"threads", a.opt.threads},
               {"losses", t.losses()},
               {"val_kl_before", before.kl},
               {"val_kl_after", after.kl},
               {"val_ce_before", before.ce},
               {"val_ce_after", after.ce},
               {"val_targets", after.scored},
               {"file_bytes", std::filesystem::file_size(a.out)},
               {"matrices", m},
               {"tokens", tokens},
               {"seconds", seconds},
               {"tokens_per_second", tps}});
    return 0;
  }
  for (const train::QatMatrix& q : fq->matrices())
    fmt::print("{:<28} -> {:<8}{}{}\n", q.name, DTypeName(q.type),
               q.type == q.wanted ? "" : fmt::format(" (wanted {}: its blocks do not divide rows of {})",
                                                      DTypeName(q.wanted), q.cols),
               q.learned ? " learned scales" : "");
  fmt::print("validation KL to the teacher: {:.5f} (round to nearest) -> {:.5f} (qat); cross-entropy {:.4f} -> {:.4f}\n",
             before.kl, after.kl, before.ce, after.ce);
  fmt::print("{} steps, {} tokens in {:.1f} s: {:.0f} tokens/s, threads: {}\n", a.opt.steps, tokens, seconds, tps,
             a.opt.threads);
  fmt::print("wrote {} ({} bytes)\n", a.out, std::filesystem::file_size(a.out));
  return 0;
}

}  // namespace

Command AddQat(CLI::App& root) {
  auto a = std::make_shared<QatArgs>();
  a->opt.lr = 1e-4f;
  a->opt.steps = 200;
  a->opt.adam.weight_decay = 0.0f;
  a->data_opt.seq = 128;
  CLI::App* app = root.add_subcommand(
      "qat", "quantization-aware training: train through the quantized weights towards an fp teacher, write GGUF");
  app->add_option("--model", a->model, "the model to quantize (any format smelt loads)")->required();
  app->add_option("--type", a->type, "type of every matrix no --rules entry names (as in smelt quantize)");
  app->add_option("--rules", a->rules, "per-tensor types, first match wins (as in smelt quantize)");
  app->add_option("--data", a->data, "UTF-8 training text (documents separated by <|endoftext|> lines)")->required();
  app->add_option("-o,--output", a->out, "output GGUF file (the quantized model)")->required();
  app->add_option("--teacher", a->teacher, "fp model whose logits are the target (default: --model itself)");
  app->add_option("--steps", a->opt.steps, "optimizer steps")->capture_default_str()->check(CLI::PositiveNumber);
  app->add_option("--batch", a->opt.batch, "sequences per step")->capture_default_str()->check(CLI::PositiveNumber);
  app->add_option("--seq", a->data_opt.seq, "tokens per sequence")->capture_default_str()->check(CLI::PositiveNumber);
  app->add_option("--lr", a->opt.lr, "peak learning rate of the weights")->capture_default_str();
  app->add_option("--warmup", a->opt.warmup, "linear warmup steps (then cosine decay to lr/10)")->capture_default_str();
  app->add_option("--alpha", a->alpha, "weight of hard-label cross-entropy; 1 - alpha on the teacher's soft labels")
      ->capture_default_str();
  app->add_option("--temperature", a->temperature, "softmax temperature of the soft labels (loss scaled by T^2)")
      ->capture_default_str();
  app->add_flag("--learn-scales", a->learn_scales, "learn each block's scale (LSQ) for q8_0 and q4_0 matrices");
  app->add_option("--scale-lr", a->scale_lr, "peak learning rate of the log-scales (--learn-scales)")
      ->capture_default_str();
  app->add_option("--val-frac", a->data_opt.val_frac, "fraction of sequences held out to measure KL (the end)")
      ->capture_default_str();
  app->add_option("--eval-batches", a->opt.eval_batches, "validation batches measured (0: all)")->capture_default_str();
  app->add_option("--seed", a->seed, "seed of the data order")->capture_default_str();
  AddThreads(app, a->opt.threads);
  app->add_flag("--json", a->json, "print JSON");
  return {app, [a] { return RunQat(*a); }};
}

}  // namespace smelt::cli
