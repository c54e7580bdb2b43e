#pragma once
// Flags of the training schedules (a student's start from its teacher, progressive growth,
// curriculum, knowledge replay, adversarial embeddings) and their use in a training loop; shared
// by the commands that train.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/model.h"
#include "train/adversarial.h"
#include "train/data.h"
#include "train/schedule.h"
#include "train/student_init.h"
#include "train/trainer.h"
#include "train_run.h"

namespace smelt::cli {

struct ScheduleArgs {
  std::string teacher;            // the teacher's model file (ordering, initialisation, growth)
  std::string init_from_teacher;  // every:K | layers:I,J,... | pruned:FILE
  std::vector<int64_t> grow_at;   // progressive growth stages
  bool curriculum = false;
  std::string pacing;             // "c0,S"
  std::string replay;             // original-domain text
  double replay_share = 0.2;
  float adversarial = 0.0f;       // ε of the embedding perturbation (0: off)
};

// Adds --init-from-teacher, --grow-at, --curriculum, --pacing, --replay, --replay-share and
// --adversarial (and --teacher when `teacher_flag`; a command with its own teacher flag fills
// ScheduleArgs::teacher itself).
void AddScheduleFlags(CLI::App* app, ScheduleArgs& a, bool teacher_flag);

class Schedules {
 public:
  // Checks the flags against each other and loads the teacher when one is given.
  explicit Schedules(ScheduleArgs args);

  bool starts_from_teacher() const { return !a_.init_from_teacher.empty(); }
  const Model* teacher() const { return teacher_ ? &*teacher_ : nullptr; }
  // The student's first state, from --init-from-teacher (its first growth stage with --grow-at).
  train::TrainModel Student() const;
  // The data the steps draw from: `fresh` in the curriculum's order (scored by the teacher), or
  // mixed with --replay's text; otherwise `fresh` itself. Validation stays on `fresh`.
  train::Dataset TrainData(const train::Dataset& fresh, const Vocab& vocab, const train::DataOptions& data_opt,
                           const train::TrainOptions& opt);
  // Before a step: grows the student when a stage is due at t.step(). Returns true if it did.
  bool MaybeGrow(train::Trainer& t);
  // Checks a resumed trainer's depth against the stages passed (a stage at step s is applied
  // before step s + 1); throws naming `ckpt` otherwise.
  void Resumed(const train::Trainer& t, const std::string& ckpt);
  // Sets the adversarial objective on top of `loss` when --adversarial is given (otherwise
  // leaves the trainer's objective alone).
  void SetObjective(train::Trainer& t, train::PerturbableLoss loss) const;
  // The training loop's hooks: validation on `val`, growth before a step (the grown trainer keeps
  // the objective and the data-parallel reducer).
  LoopHooks Hooks(const train::Dataset& val);
  // Original-domain validation loss of `m` (with --replay; called before and after the run).
  void MeasureOriginal(const train::TrainModel& m, const train::TrainOptions& opt, bool after);
  // What the schedules did, for --json (null members when unused) and the text summary.
  nlohmann::json Json() const;
  std::string Summary() const;

 private:
  ScheduleArgs a_;
  std::optional<Model> teacher_;
  std::optional<train::TrainModel> teacher_train_;
  std::optional<train::GrowthPlan> plan_;
  std::vector<int> map_;  // the teacher block of each student block (when grown from the teacher)
  size_t stages_done_ = 0;
  train::Pacing pacing_;
  std::optional<train::Dataset> original_;
  train::Forgetting forgetting_;
};

}  // namespace smelt::cli
