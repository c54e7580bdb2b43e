// smelt train: trains a Llama-family model on a text file (from scratch or from a model), with
// checkpoints it resumes from, and writes the result as an f32 GGUF model.
#include <optional>

#include "cli_util.h"
#include "data_parallel.h"
#include "core/mapped_file.h"
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
};

int RunTrain(TrainArgs& a, DataParallel& dp) {
  TrainRunArgs& r = a.run;
  if (a.init.empty() == a.config.empty()) Fail("train needs either --init MODEL or --config ... --tokenizer MODEL");
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
  const train::Dataset data = train::Dataset::FromFile(vocab, r.data, r.data_opt);

  std::optional<train::Trainer> trainer = ResumeTrainer(r, data, vocab.size(), dp);
  const int64_t resumed_from = trainer ? trainer->step() : 0;
  if (!trainer) {
    train::TrainModel model =
        init ? train::TrainModel::FromModel(*init)
             : train::TrainModel::FromScratch(ParseModelConfig(a.config, vocab.size(), "--config"), vocab, r.seed);
    trainer.emplace(std::move(model), r.opt);
  }
  init.reset();
  const TrainRunResult res = RunTrainingLoop(*trainer, data, r, resumed_from, dp);
  if (!dp.root()) return 0;  // rank 0 prints
  if (r.json)
    PrintJson(TrainRunJson(*trainer, data, r, res, dp.ranks()));
  else
    PrintTrainRun("trained", *trainer, data, r, res);
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
  return {app, [a] { return RunDataParallel([&](DataParallel& dp) { return RunTrain(*a, dp); }); }};
}

}  // namespace smelt::cli
