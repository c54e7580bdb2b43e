// smelt train: trains a Llama-family model on a text file (from scratch or from a model), with
// checkpoints it resumes from, and writes the result as an f32 GGUF model.
#include <fmt/format.h>

#include <optional>

#include "cli_util.h"
#include "data_parallel.h"
#include "core/mapped_file.h"
#include "schedule_flags.h"
#include "train/data.h"
#include "train/trainer.h"
#include "train/vocab_train.h"
#include "train_run.h"

namespace smelt::cli {
namespace {

struct TrainArgs {
  TrainRunArgs run;
  std::string config, tokenizer, init;
  int vocab_size = 0;  // > 0: learn a vocabulary of this size from --data
  ScheduleArgs sched;
};

int RunTrain(TrainArgs& a, DataParallel& dp) {
  TrainRunArgs& r = a.run;
  Schedules sched(a.sched);
  const int starts = (int)!a.init.empty() + (int)!a.config.empty() + (int)sched.starts_from_teacher();
  if (starts != 1)
    Fail("train needs one of --init MODEL, --config ... --tokenizer MODEL, or --teacher MODEL --init-from-teacher ...");
  if (!a.config.empty() && a.tokenizer.empty() && a.vocab_size == 0)
    Fail("train --config needs --tokenizer MODEL or --vocab-size N for the vocabulary");
  if (a.vocab_size != 0 && (!a.tokenizer.empty() || !a.init.empty()))
    Fail("--vocab-size {}: learns a new vocabulary for --config, not with --tokenizer or --init", a.vocab_size);
  if (r.resume && r.ckpt.empty()) Fail("--resume needs --ckpt FILE");
  r.data_opt.seed = r.seed;

  std::optional<Model> init;
  Vocab vocab;
  if (!a.init.empty()) {
    init = LoadModel(a.init);
    vocab = init->vocab;
  } else if (sched.starts_from_teacher()) {
    vocab = sched.teacher()->vocab;
  } else if (!a.tokenizer.empty()) {
    vocab = LoadModel(a.tokenizer).vocab;
  } else {
    // A new vocabulary from the training text itself (document separators are not text).
    std::string text = ReadFileToString(r.data);
    const std::string& sep = r.data_opt.separator;
    for (size_t p; !sep.empty() && (p = text.find(sep)) != std::string::npos;) text.erase(p, sep.size());
    vocab = train::TrainBpeVocab(text, {.vocab_size = a.vocab_size}, r.data);
  }
  if (vocab.tokens.empty()) Fail("{}: the model has no tokenizer", a.init.empty() ? a.tokenizer : a.init);
  // Validation stays on --data's own split; the steps may draw from a curriculum or replay mix.
  const train::Dataset val_data = train::Dataset::FromFile(vocab, r.data, r.data_opt);
  const train::Dataset data = sched.TrainData(val_data, vocab, r.data_opt, r.opt);

  train::TrainModel first =
      sched.starts_from_teacher()
          ? sched.Student()
          : (init ? train::TrainModel::FromModel(*init)
                  : train::TrainModel::FromScratch(ParseModelConfig(a.config, vocab.size(), "--config"), vocab, r.seed));
  sched.MeasureOriginal(first, r.opt, /*after=*/false);
  std::optional<train::Trainer> trainer = ResumeTrainer(r, data, vocab.size(), dp);
  const int64_t resumed_from = trainer ? trainer->step() : 0;
  if (trainer)
    sched.Resumed(*trainer, r.ckpt);
  else
    trainer.emplace(std::move(first), r.opt);
  init.reset();
  sched.SetObjective(*trainer, train::Perturbable(train::CrossEntropyLogitLoss(vocab.size())));
  const TrainRunResult res = RunTrainingLoop(*trainer, data, r, resumed_from, dp, sched.Hooks(val_data));
  if (!dp.root()) return 0;  // rank 0 measures and prints
  sched.MeasureOriginal(trainer->model(), r.opt, /*after=*/true);
  if (r.json) {
    nlohmann::json j = TrainRunJson(*trainer, val_data, r, res, dp.ranks());
    j["blocks"] = trainer->model().config().n_layers;
    j["schedule"] = sched.Json();
    PrintJson(j);
  } else {
    PrintTrainRun("trained", *trainer, val_data, r, res);
    fmt::print("{}", sched.Summary());
  }
  return 0;
}

}  // namespace

Command AddTrain(CLI::App& root) {
  auto a = std::make_shared<TrainArgs>();
  CLI::App* app = root.add_subcommand("train", "train a Llama-family model on a text file (f32, AdamW), write GGUF");
  app->add_option("--config", a->config,
                  "a new model: dim=..,layers=..,heads=..,kv-heads=..,ff=..[,ctx=..,theta=..,eps=..,tied=1]");
  app->add_option("--tokenizer", a->tokenizer, "model whose vocabulary a new model (--config) uses");
  app->add_option("--vocab-size", a->vocab_size,
                  "a new model (--config) with a new SentencePiece-style BPE vocabulary of N tokens learned from --data "
                  "(instead of --tokenizer)");
  app->add_option("--init", a->init, "start from this model instead (any weight type, dequantized to f32)");
  AddTrainRunOptions(app, a->run);
  AddScheduleFlags(app, a->sched, /*teacher_flag=*/true);
  return {app, [a] { return RunDataParallel([&](DataParallel& dp) { return RunTrain(*a, dp); }); }};
}

}  // namespace smelt::cli
