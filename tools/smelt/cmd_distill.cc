// smelt distill: trains a student model on a text file with one or more frozen teachers
// (train/distill.h: soft labels, hidden-state, attention, value-relation and Gram losses,
// several teachers), with `smelt train`'s loop, checkpoints and output.
#include <fmt/format.h>

#include <memory>
#include <optional>

#include "cli_util.h"
#include "data_parallel.h"
#include "schedule_flags.h"
#include "train/data.h"
#include "train/distill.h"
#include "train/trainer.h"
#include "train_run.h"

namespace smelt::cli {
namespace {

// Every option of the command in one place (the distillation schedule's options join here).
struct DistillArgs {
  TrainRunArgs run;
  std::vector<std::string> teachers;
  std::string student, student_config;
  train::DistillOptions distill;
  std::string divergence = "kl", feature_loss = "mse", weighting = "avg";
  bool allow_wider = false;
  ScheduleArgs sched;  // the first teacher is the schedules' teacher
};

int RunDistill(DistillArgs& a, DataParallel& dp) {
  TrainRunArgs& r = a.run;
  if (a.teachers.empty()) Fail("distill needs --teacher MODEL");
  const int starts =
      (int)!a.student.empty() + (int)!a.student_config.empty() + (int)!a.sched.init_from_teacher.empty();
  if (starts != 1)
    Fail("distill needs one of --student MODEL, --student-config dim=..,layers=..,..., or --init-from-teacher ...");
  const train::DistillOptions& w = a.distill;
  // A growing student's layer map is remade at each depth from "uniform" or "last"; explicit
  // pairs name blocks of one depth.
  if (!a.sched.grow_at.empty() && w.layer_map != "uniform" && w.layer_map != "last" &&
      (w.feature_weight > 0 || w.attention_weight > 0 || w.value_weight > 0 || w.relation_weight > 0))
    Fail("--grow-at with --layer-map {}: a growing student takes the uniform or last map (explicit pairs name "
         "blocks of one depth)",
         w.layer_map);
  a.sched.teacher = a.teachers[0];
  Schedules sched(a.sched);
  if (r.resume && r.ckpt.empty()) Fail("--resume needs --ckpt FILE");
  r.data_opt.seed = r.seed;
  a.distill.soft.divergence = train::ParseDivergence(a.divergence);
  a.distill.feature_loss = train::ParseFeatureLoss(a.feature_loss);
  a.distill.weighting = train::ParseTeacherWeighting(a.weighting);

  // Teachers: one vocabulary for all of them and the student.
  std::vector<train::TrainModel> teachers;
  for (const std::string& path : a.teachers) {
    const Model t = LoadModel(path);
    if (t.vocab.tokens.empty()) Fail("{}: the teacher has no tokenizer", path);
    if (!teachers.empty() && t.vocab.tokens != teachers[0].vocab().tokens)
      Fail("{} and {}: the teachers' vocabularies differ ({} and {} tokens)", a.teachers[0], path,
           teachers[0].vocab().size(), t.vocab.size());
    teachers.push_back(train::TrainModel::FromModel(t));
  }
  const Vocab vocab = teachers[0].vocab();  // (the teachers move into the distiller)
  std::optional<Model> student;
  std::optional<train::TrainModel> from_teacher;
  ModelConfig sc;
  if (sched.starts_from_teacher()) {
    from_teacher = sched.Student();
    sc = from_teacher->config();
  } else if (!a.student.empty()) {
    student = LoadModel(a.student);
    if (student->vocab.tokens != vocab.tokens)
      Fail("{} and {}: the student's vocabulary ({} tokens) differs from the teacher's ({} tokens)", a.student,
           a.teachers[0], student->vocab.size(), vocab.size());
    sc = student->config;
  } else {
    sc = ParseModelConfig(a.student_config, vocab.size(), "--student-config");
  }
  for (size_t k = 0; k < teachers.size() && !a.allow_wider; ++k) {
    const ModelConfig& tc = teachers[k].config();
    if (sc.dim > tc.dim || sc.ff > tc.ff)
      Fail("{}: the student (dim {}, ff {}) is wider than the teacher (dim {}, ff {}); distillation compresses "
           "(--allow-wider to do it anyway)",
           a.teachers[k], sc.dim, sc.ff, tc.dim, tc.ff);
  }
  // Validation stays on --data's own split; the steps may draw from a curriculum or replay mix.
  const train::Dataset val_data = train::Dataset::FromFile(vocab, r.data, r.data_opt);
  const train::Dataset data = sched.TrainData(val_data, vocab, r.data_opt, r.opt);
  auto distiller = std::make_shared<train::Distiller>(std::move(teachers), a.distill);

  std::optional<train::Trainer> trainer = ResumeTrainer(r, data, vocab.size(), dp);
  const int64_t resumed_from = trainer ? trainer->step() : 0;
  if (trainer) {
    const size_t n = trainer->model().params().size();
    distiller->Prepare(trainer->model());
    if (trainer->model().params().size() != n)
      Fail("{}: the checkpoint lacks the feature projections of these distillation options", r.ckpt);
    sched.Resumed(*trainer, r.ckpt);
  }
  train::TrainModel first = from_teacher ? std::move(*from_teacher)
                            : student    ? train::TrainModel::FromModel(*student)
                                         : train::TrainModel::FromScratch(sc, vocab, r.seed);
  sched.MeasureOriginal(first, r.opt, /*after=*/false);
  if (!trainer) {
    distiller->Prepare(first);
    trainer.emplace(std::move(first), r.opt);
  }
  student.reset();
  trainer->set_objective(train::DistillObjective(distiller));
  sched.SetObjective(*trainer, train::DistillLoss(distiller));  // with --adversarial
  const TrainRunResult res = RunTrainingLoop(*trainer, data, r, resumed_from, dp, sched.Hooks(val_data));
  if (!dp.root()) return 0;  // rank 0 measures and prints
  sched.MeasureOriginal(trainer->model(), r.opt, /*after=*/true);
  // On the validation batches the loss used: the global batch of all ranks.
  const double kld = res.has_val ? train::ValidationKld(trainer->model(), distiller->teachers()[0], val_data,
                                                        r.opt.batch * dp.ranks(), r.opt.eval_batches, r.opt.threads)
                                 : 0.0;
  const train::DistillOptions& o = distiller->options();
  if (r.json) {
    nlohmann::json j = TrainRunJson(*trainer, val_data, r, res, dp.ranks());
    j["blocks"] = trainer->model().config().n_layers;
    j["schedule"] = sched.Json();
    j["teachers"] = a.teachers;
    j["val_kld_teacher0"] = res.has_val ? nlohmann::json(kld) : nlohmann::json(nullptr);
    j["distill"] = {{"alpha", o.alpha},
                    {"temperature", o.soft.temperature},
                    {"divergence", train::DivergenceName(o.soft.divergence)},
                    {"feature_weight", o.feature_weight},
                    {"feature_loss", a.feature_loss},
                    {"layer_map", o.layer_map},
                    {"attention_weight", o.attention_weight},
                    {"value_weight", o.value_weight},
                    {"relation_weight", o.relation_weight},
                    {"teacher_weighting", a.weighting}};
    PrintJson(j);
    return 0;
  }
  PrintTrainRun("distilled", *trainer, val_data, r, res);
  fmt::print("{}", sched.Summary());
  if (res.has_val) fmt::print("validation KL-divergence to {}: {:.4f}\n", a.teachers[0], kld);
  return 0;
}

}  // namespace

Command AddDistill(CLI::App& root) {
  auto a = std::make_shared<DistillArgs>();
  CLI::App* app = root.add_subcommand("distill", "train a smaller student from one or more teachers, write GGUF");
  app->add_option("--teacher", a->teachers, "teacher model (repeat for several teachers; frozen, run in f32)");
  app->add_option("--student", a->student, "start the student from this model");
  app->add_option("--student-config", a->student_config,
                  "a new student: dim=..,layers=..,heads=..,kv-heads=..,ff=..[,ctx=..,theta=..,eps=..,tied=1] "
                  "(the teacher's vocabulary)");
  app->add_flag("--allow-wider", a->allow_wider, "accept a student wider (dim or ff) than a teacher");
  train::DistillOptions& d = a->distill;
  app->add_option("--alpha", d.alpha, "weight of the hard-label cross-entropy (1 - alpha: soft labels)")
      ->capture_default_str();
  app->add_option("--temperature", d.soft.temperature, "softmax temperature of the soft labels (tau^2 scaled)")
      ->capture_default_str();
  app->add_option("--divergence", a->divergence, "kl | reverse-kl | skew-kl | skew-reverse-kl")->capture_default_str();
  app->add_option("--skew", d.soft.skew, "lambda of the skew divergences")->capture_default_str();
  app->add_option("--feature-weight", d.feature_weight, "weight of the hidden-state loss")->capture_default_str();
  app->add_option("--feature-loss", a->feature_loss, "mse | cosine (through a learned projection when widths differ)")
      ->capture_default_str();
  app->add_option("--layer-map", d.layer_map, "uniform | last | S:T[@K],... (student block : teacher block @ teacher)")
      ->capture_default_str();
  app->add_option("--attention-weight", d.attention_weight, "weight of the per-head attention KL")
      ->capture_default_str();
  app->add_option("--value-weight", d.value_weight, "weight of MiniLM's value-relation KL")->capture_default_str();
  app->add_option("--value-heads", d.value_relation_heads, "value-relation heads (0: the student's KV heads)")
      ->capture_default_str();
  app->add_option("--relation-weight", d.relation_weight, "weight of the token-similarity (Gram) loss")
      ->capture_default_str();
  app->add_option("--teacher-weighting", a->weighting, "avg | confidence | loss (several teachers)")
      ->capture_default_str();
  AddTrainRunOptions(app, a->run);
  AddScheduleFlags(app, a->sched, /*teacher_flag=*/false);
  return {app, [a] { return RunDataParallel([&](DataParallel& dp) { return RunDistill(*a, dp); }); }};
}

}  // namespace smelt::cli
