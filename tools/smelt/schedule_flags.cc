#include "schedule_flags.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "cli_util.h"
#include "io/load.h"

namespace smelt::cli {

void AddScheduleFlags(CLI::App* app, ScheduleArgs& a, bool teacher_flag) {
  if (teacher_flag)
    app->add_option("--teacher", a.teacher,
                    "teacher model for --init-from-teacher, --grow-at and --curriculum (same vocabulary)");
  app->add_option("--init-from-teacher", a.init_from_teacher,
                  "start the student from the teacher: every:K (blocks 0, K, 2K, ...), layers:I,J,... (those "
                  "blocks), or pruned:FILE (a structurally pruned teacher); embeddings, norms and head copied");
  app->add_option("--grow-at", a.grow_at,
                  "progressive growth: the student starts with part of its --init-from-teacher blocks and gains "
                  "the rest, copied from the teacher, at these steps (comma-separated)")
      ->delimiter(',');
  app->add_flag("--curriculum", a.curriculum, "serve training sequences easy to hard by the teacher's loss");
  app->add_option("--pacing", a.pacing,
                  "curriculum pacing c0,S: draw from the easiest fraction c0 at first, growing (square root) to all "
                  "sequences by step S");
  app->add_option("--replay", a.replay,
                  "original-domain text mixed into the training data (knowledge replay); reports the forgetting "
                  "(its validation loss before and after)");
  app->add_option("--replay-share", a.replay_share, "share of training sequences taken from --replay")
      ->capture_default_str();
  app->add_option("--adversarial", a.adversarial,
                  "adversarial training: also minimise the loss with the input embeddings moved by EPS (L2 per "
                  "sequence) along the loss gradient");
}

namespace {

train::Pacing ParsePacing(const std::string& s) {
  const size_t comma = s.find(',');
  train::Pacing p;
  try {
    size_t u1 = 0, u2 = 0;
    if (comma == std::string::npos) throw std::invalid_argument(s);
    p.c0 = std::stod(s.substr(0, comma), &u1);
    p.steps = std::stoll(s.substr(comma + 1), &u2);
    if (u1 != comma || u2 != s.size() - comma - 1) throw std::invalid_argument(s);
  } catch (const std::exception&) {
    Fail("--pacing {}: expected c0,S (a fraction and a step count)", s);
  }
  if (!(p.c0 > 0.0 && p.c0 <= 1.0) || p.steps < 1)
    Fail("--pacing {}: c0 must be in (0, 1] and S at least 1", s);
  return p;
}

}  // namespace

Schedules::Schedules(ScheduleArgs args) : a_(std::move(args)) {
  const bool pruned = a_.init_from_teacher.starts_with("pruned:");
  if (!a_.grow_at.empty() && (a_.init_from_teacher.empty() || pruned))
    Fail("--grow-at needs --init-from-teacher every:K or layers:... (the blocks the student grows to)");
  if (!a_.pacing.empty() && !a_.curriculum) Fail("--pacing {} needs --curriculum", a_.pacing);
  if (a_.curriculum && !a_.replay.empty()) Fail("--curriculum and --replay cannot be combined");
  if (!(a_.replay_share >= 0.0 && a_.replay_share < 1.0))
    Fail("--replay-share {} must be in [0, 1)", a_.replay_share);
  if (!(a_.adversarial >= 0.0f)) Fail("--adversarial {} must not be negative", a_.adversarial);
  const bool needs_teacher = !a_.init_from_teacher.empty() || a_.curriculum;
  if (needs_teacher && a_.teacher.empty())
    Fail("{} needs --teacher MODEL", a_.curriculum ? "--curriculum" : "--init-from-teacher");
  if (!a_.pacing.empty()) pacing_ = ParsePacing(a_.pacing);
  if (a_.teacher.empty() || !needs_teacher) return;  // (a teacher the schedules do not use is not loaded)
  teacher_ = LoadModel(a_.teacher);
  if (teacher_->vocab.tokens.empty()) Fail("{}: the teacher has no tokenizer", a_.teacher);
  teacher_train_ = train::TrainModel::FromModel(*teacher_);
  if (!a_.init_from_teacher.empty() && !pruned) {
    map_ = train::ParseTeacherBlocks(a_.init_from_teacher, teacher_->config.n_layers);
    if (!a_.grow_at.empty()) {
      plan_ = train::PlanGrowth(map_, a_.grow_at);
      map_ = plan_->initial;
    }
  }
}

train::TrainModel Schedules::Student() const {
  SMELT_ASSERT(teacher_train_);
  if (a_.init_from_teacher.starts_with("pruned:")) {
    const std::string path = a_.init_from_teacher.substr(7);
    const Model m = LoadModel(path);
    train::CheckWithinTeacher(m.config, teacher_->config, path);
    if (m.vocab.tokens != teacher_->vocab.tokens) Fail("{}: its vocabulary differs from the teacher's", path);
    return train::TrainModel::FromModel(m);
  }
  return train::StudentFromTeacher(*teacher_train_, map_);
}

train::Dataset Schedules::TrainData(const train::Dataset& fresh, const Vocab& vocab,
                                    const train::DataOptions& data_opt, const train::TrainOptions& opt) {
  if (a_.curriculum) {
    if (teacher_->vocab.tokens != vocab.tokens)
      Fail("{}: the teacher's vocabulary differs from the student's; the curriculum scores the student's tokens",
           a_.teacher);
    train::Dataset d = fresh;
    d.set_order(train::CurriculumOrder(train::EasyToHard(train::SequenceLosses(*teacher_train_, fresh, opt.batch,
                                                                                opt.threads)),
                                       pacing_, opt.batch * opt.accum, data_opt.seed));
    return d;
  }
  if (!a_.replay.empty()) {
    original_ = train::Dataset::FromFile(vocab, a_.replay, data_opt);
    return train::ReplayMix(fresh, *original_, a_.replay_share, data_opt.seed);
  }
  return fresh;
}

bool Schedules::MaybeGrow(train::Trainer& t) {
  if (!plan_ || stages_done_ >= plan_->at_steps.size() || plan_->at_steps[stages_done_] != t.step()) return false;
  std::vector<int> grown;
  t = train::GrowTrainer(t, map_, *teacher_train_, plan_->add[stages_done_], &grown);
  map_ = std::move(grown);
  ++stages_done_;
  return true;
}

void Schedules::Resumed(const train::Trainer& t, const std::string& ckpt) {
  if (!plan_) return;
  while (stages_done_ < plan_->at_steps.size() && plan_->at_steps[stages_done_] < t.step()) {
    map_.insert(map_.end(), plan_->add[stages_done_].begin(), plan_->add[stages_done_].end());
    ++stages_done_;
  }
  std::sort(map_.begin(), map_.end());
  if ((int)map_.size() != t.model().config().n_layers)
    Fail("{}: the checkpoint has {} blocks, but growth reaches {} blocks by step {}", ckpt,
         t.model().config().n_layers, map_.size(), t.step());
}

void Schedules::SetObjective(train::Trainer& t, train::PerturbableLoss loss) const {
  if (a_.adversarial > 0.0f) t.set_objective(train::AdversarialObjective({a_.adversarial}, std::move(loss)));
}

LoopHooks Schedules::Hooks(const train::Dataset& val) {
  LoopHooks h;
  h.val = &val;
  if (plan_) h.before_step = [this](train::Trainer& t) { MaybeGrow(t); };
  return h;
}

void Schedules::MeasureOriginal(const train::TrainModel& m, const train::TrainOptions& opt, bool after) {
  if (!original_) return;
  (after ? forgetting_.after : forgetting_.before) =
      train::ValidationLoss(m, *original_, opt.batch, opt.eval_batches, opt.threads);
}

nlohmann::json Schedules::Json() const {
  nlohmann::json j;
  j["init_from_teacher"] = a_.init_from_teacher.empty() ? nlohmann::json(nullptr) : nlohmann::json(a_.init_from_teacher);
  j["student_blocks"] = map_.empty() ? nlohmann::json(nullptr) : nlohmann::json(map_);
  j["grow_at"] = a_.grow_at;
  j["curriculum"] = a_.curriculum;
  j["pacing"] = a_.pacing.empty() ? nlohmann::json(nullptr)
                                  : nlohmann::json({{"c0", pacing_.c0}, {"steps", pacing_.steps}});
  j["adversarial"] = a_.adversarial;
  if (original_)
    j["replay"] = {{"text", a_.replay},
                   {"share", a_.replay_share},
                   {"original_val_loss_before", forgetting_.before},
                   {"original_val_loss_after", forgetting_.after},
                   {"forgetting", forgetting_.increase()}};
  else
    j["replay"] = nullptr;
  return j;
}

std::string Schedules::Summary() const {
  std::string s;
  if (!map_.empty()) s += fmt::format("student blocks from the teacher: {}\n", fmt::join(map_, ","));
  if (original_)
    s += fmt::format("forgetting of {} ({:.0f} % replayed): validation loss {:.4f} before, {:.4f} after ({:+.4f})\n",
                     a_.replay, 100 * a_.replay_share, forgetting_.before, forgetting_.after, forgetting_.increase());
  return s;
}

}  // namespace smelt::cli
