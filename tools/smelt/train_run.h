#pragma once
// What `smelt train` and `smelt distill` share: the run's options (data, schedule, validation,
// checkpoints, output), a model config from --config-style text, resuming from a checkpoint,
// the step loop with its progress line, and the summary printed at the end (text or JSON).
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cli_util.h"
#include "data_parallel.h"
#include "train/data.h"
#include "train/trainer.h"

namespace smelt::cli {

struct TrainRunArgs {
  std::string data, ckpt, out;
  train::TrainOptions opt;
  train::DataOptions data_opt;
  int64_t eval_every = 0, ckpt_every = 0;
  uint64_t seed = 1;
  bool resume = false, json = false;
};
// --data, the schedule (--steps --batch --seq --lr --warmup --accum --clip --wd), validation
// (--val-frac --eval-every --eval-batches), --seed, -t, --ckpt --ckpt-every --resume, -o, --json.
void AddTrainRunOptions(CLI::App* app, TrainRunArgs& a);

// dim=..,layers=..,heads=..,kv-heads=..,ff=..[,ctx=..,theta=..,eps=..,tied=0|1]: a new llama
// config with `vocab` tokens; `flag` names the option in errors.
ModelConfig ParseModelConfig(const std::string& spec, int vocab, const std::string& flag);

// With --resume and an existing --ckpt: the trainer saved there, after checking that it was
// made on the same data, with the same schedule flags and a `vocab`-token vocabulary. Otherwise
// nothing. Throws Error("CKPT: ...") before anything is written. In a data-parallel run rank 0
// alone reads it (the loop hands its state to the other ranks).
std::optional<train::Trainer> ResumeTrainer(const TrainRunArgs& a, const train::Dataset& data, int vocab,
                                            const DataParallel& dp);

struct TrainRunResult {
  int64_t resumed_from = 0, tokens = 0;
  double seconds = 0, val = 0, final_loss = 0;
  bool has_val = false;  // --val-frac 0: no validation split
  std::vector<std::pair<int64_t, double>> val_losses;
  double tokens_per_second() const { return seconds > 0 ? (double)tokens / seconds : 0.0; }
};
// Steps `t` to its step count (validation every --eval-every steps, checkpoints every
// --ckpt-every steps and at the end, a progress line on a terminal), then exports the model to
// -o (atomically). Data-parallel: the trainer first takes rank 0's state and sums every step over
// the ranks (DataParallel::Attach); rank 0 alone shows progress and writes files.
// Schedules may validate on other data than the steps draw from (a replay mix has no split of
// its own) and change the trainer before a step (progressive growth).
struct LoopHooks {
  const train::Dataset* val = nullptr;  // null: `data`
  std::function<void(train::Trainer&)> before_step;
};
TrainRunResult RunTrainingLoop(train::Trainer& t, const train::Dataset& data, const TrainRunArgs& a,
                               int64_t resumed_from, DataParallel& dp, const LoopHooks& hooks = {});

// The summary's JSON fields (output, data, parameters, steps, ..., tokens_per_second).
nlohmann::json TrainRunJson(const train::Trainer& t, const train::Dataset& data, const TrainRunArgs& a,
                            const TrainRunResult& r, int ranks);
// The summary as text: "VERB NAME (...) on DATA", steps and losses, speed, output.
void PrintTrainRun(const char* verb, const train::Trainer& t, const train::Dataset& data, const TrainRunArgs& a,
                   const TrainRunResult& r);

}  // namespace smelt::cli
