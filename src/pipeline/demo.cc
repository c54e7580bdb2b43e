#include "pipeline/demo.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <filesystem>
#include <memory>
#include <optional>

#include "compress/calibration.h"
#include "compress/prune.h"
#include "compress/quantize.h"
#include "compress/rules.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "eval/kld.h"
#include "eval/perplexity.h"
#include "io/gguf_model.h"
#include "io/load.h"
#include "runtime/session.h"
#include "smelt/version.h"
#include "train/checkpoint.h"
#include "train/data.h"
#include "train/distill.h"
#include "train/ops.h"
#include "train/rng.h"
#include "train/vocab_train.h"

namespace smelt::pipeline {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kSeparator = "<|endoftext|>";

double SecondsSince(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

bool BlankLine(std::string_view line) { return line.find_first_not_of(" \t\r\n") == std::string_view::npos; }

ModelConfig MakeConfig(const DemoShape& s, const DemoRecipe& r, int vocab, const std::string& name) {
  ModelConfig c;
  c.arch = "llama";
  c.name = name;
  c.dim = s.dim;
  c.n_layers = s.layers;
  c.n_heads = s.heads;
  c.n_kv_heads = s.kv_heads;
  if (s.heads <= 0 || s.dim % s.heads != 0) Fail("demo recipe: the {} has {} heads, which do not divide dim {}", name, s.heads, s.dim);
  c.head_dim = c.rope_dim = s.dim / s.heads;
  c.ff = s.ff;
  c.vocab = vocab;
  c.context = (int)std::max<int64_t>(r.seq, r.eval_ctx);
  c.tied_embeddings = true;
  ValidateConfig(c, "demo recipe: " + name);
  return c;
}

// The metadata every output carries (written as smelt.demo.* keys beside smelt.version).
std::map<std::string, std::string> Info(const DemoRecipe& r, const std::string& corpus_id, const std::string& stage) {
  return {{"demo.recipe", RecipeText(r)}, {"demo.corpus", corpus_id}, {"demo.stage", stage}};
}

// Trains `init` on `data` to `steps` steps with `objective` (null: cross-entropy), resuming from
// `ckpt` when it exists and checkpointing into it; writes the f32 model to `out` and removes the
// checkpoint. A checkpoint that does not load or belongs to other data fails before anything is
// written.
void TrainStage(const std::string& stage, train::TrainModel init, const train::Dataset& data, int64_t steps, float lr,
                const DemoRecipe& r, const train::Objective& objective, const std::string& ckpt, const std::string& out,
                std::map<std::string, std::string> info, int threads, const DemoProgress& progress) {
  std::optional<train::Trainer> t;
  if (fs::exists(ckpt)) {
    train::Checkpoint c = train::LoadCheckpoint(ckpt, threads);
    if (c.data_fingerprint != data.Fingerprint())
      Fail("{}: the checkpoint was trained on other data than this run's (remove it to start the {} over)", ckpt, stage);
    if (c.trainer.options().steps != steps || c.trainer.options().batch != r.batch)
      Fail("{}: the checkpoint was made with {} steps of batch {}, not {} of {}", ckpt, c.trainer.options().steps,
           c.trainer.options().batch, steps, r.batch);
    t.emplace(std::move(c.trainer));
    if (progress.note) progress.note(fmt::format("{}: resuming from step {} of {}", stage, t->step(), steps));
  } else {
    train::TrainOptions o;
    o.steps = steps;
    o.batch = r.batch;
    o.lr = lr;
    o.warmup = r.warmup;
    o.threads = threads;
    t.emplace(std::move(init), o);
  }
  t->set_threads(threads);
  if (objective) t->set_objective(objective);
  while (t->step() < steps) {
    const train::StepStats s = t->Step(data);
    if (r.ckpt_every > 0 && s.step % r.ckpt_every == 0 && s.step < steps)
      train::SaveCheckpoint(*t, data.Fingerprint(), ckpt);
    if (progress.step) progress.step(stage, s.step, steps, s.loss);
  }
  Model m = t->model().ToModel();
  info["demo.final_train_loss"] = t->losses().empty() ? "" : fmt::format("{}", t->losses().back());
  m.info = std::move(info);
  GgufSaveOptions so;
  so.type = DType::kF32;
  SaveGgufModel(m, out, so);
  std::error_code ec;
  fs::remove(ckpt, ec);
}

Model Quantized(const Model& m, const std::string& rules, QuantMethod method,
                const std::vector<std::vector<int32_t>>* samples, int threads) {
  QuantizeOptions q;
  q.rules = ParseTypeRules(rules);
  q.method = method;
  q.samples = samples;
  q.threads = threads;
  Model out = QuantizeModel(m, q);
  return out;
}

}  // namespace

DemoRecipe DefaultRecipe() { return DemoRecipe{}; }

DemoRecipe QuickRecipe() {
  DemoRecipe r;
  r.section_bytes = 1024;
  r.held_out_every = 8;
  r.vocab_size = 320;
  r.vocab_text_bytes = 64 << 10;
  r.teacher = {64, 2, 2, 2, 128};
  r.student = {32, 1, 2, 2, 64};
  r.seq = 32;
  r.batch = 4;
  r.teacher_steps = 40;
  r.student_steps = 20;
  r.teacher_lr = r.student_lr = 1e-2f;
  r.warmup = 4;
  r.ckpt_every = 10;
  r.calib_samples = 8;
  r.calib_tokens = 32;
  r.eval_ctx = 32;
  r.eval_chunks = 24;
  r.decode_tokens = 8;
  return r;
}

std::string RecipeText(const DemoRecipe& r) {
  auto shape = [](const DemoShape& s) {
    return fmt::format("dim={},layers={},heads={},kv_heads={},ff={},tied=1", s.dim, s.layers, s.heads, s.kv_heads, s.ff);
  };
  return fmt::format(
      "split=section:{},held_out_every:{} vocab={} (bpe from {} bytes) teacher={} student={} seq={} batch={} "
      "teacher_steps={} student_steps={} teacher_lr={} student_lr={} warmup={} distill=forward_kl,tau:{},alpha:{} "
      "quant=q8_0:rtn,q4_0:gptq (token_embd q8_0) prune=wanda:2:4,s24_q8 calib={}x{} eval=ctx:{},chunks:{} seed={}",
      r.section_bytes, r.held_out_every, r.vocab_size, r.vocab_text_bytes, shape(r.teacher), shape(r.student), r.seq,
      r.batch, r.teacher_steps, r.student_steps, r.teacher_lr, r.student_lr, r.warmup, r.tau, r.alpha, r.calib_samples,
      r.calib_tokens, r.eval_ctx, r.eval_chunks, r.seed);
}

CorpusSplit SplitCorpus(const std::string& text, const DemoRecipe& r, const std::string& source) {
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) Fail("{}: the corpus is empty", source);
  if (r.section_bytes < 1 || r.held_out_every < 2)
    Fail("demo recipe: sections of {} bytes, every {}-th held out: need >= 1 byte and k >= 2", r.section_bytes,
         r.held_out_every);
  CorpusSplit s;
  std::string section;
  auto flush = [&] {
    if (section.find_first_not_of(" \t\r\n") == std::string::npos) {
      section.clear();
      return;
    }
    const bool held = s.sections % r.held_out_every == r.held_out_every - 1;
    ++s.sections;
    if (held) {
      ++s.held_out_sections;
      s.held_out += section;
    } else {
      if (!s.train.empty()) s.train_documents += fmt::format("\n{}\n", kSeparator);
      s.train += section;
      s.train_documents += section;
    }
    section.clear();
  };
  // A section ends at a blank line once it is long enough, or at any line when no blank line
  // comes for 16 sections' worth of text.
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    const size_t end = nl == std::string::npos ? text.size() : nl + 1;
    const std::string_view line(text.data() + pos, end - pos);
    section.append(line);
    pos = end;
    const auto n = (int64_t)section.size();
    if ((n >= r.section_bytes && BlankLine(line)) || n >= 16 * r.section_bytes) flush();
  }
  flush();
  if (s.held_out_sections == 0 || s.train.find_first_not_of(" \t\r\n") == std::string::npos)
    Fail("{}: the corpus is too short: {} bytes make {} sections of about {} bytes, and every {}-th is held out", source,
         text.size(), s.sections, r.section_bytes, r.held_out_every);
  return s;
}

std::string CacheKey(const DemoRecipe& r, const std::string& corpus) {
  train::Fnv1a h;
  const std::string head = fmt::format("smelt {}\n{}\n", kVersion, RecipeText(r));
  h.Mix(head.data(), head.size());
  h.Mix(corpus.data(), corpus.size());
  return fmt::format("{:016x}", h.value());
}

train::Objective SoftLabelDistillObjective(const train::TrainModel& teacher, float alpha,
                                           const train::SoftLabelOptions& soft) {
  if (!(alpha >= 0.0f && alpha <= 1.0f)) Fail("distillation: alpha {} is outside [0, 1]", alpha);
  train::DistillOptions o;
  o.alpha = 1.0f - alpha;  // the distiller's alpha weighs the hard labels
  o.soft = soft;
  std::vector<train::TrainModel> teachers;
  teachers.push_back(teacher);
  return train::DistillObjective(std::make_shared<train::Distiller>(std::move(teachers), o));
}

double DecodeTokensPerSecond(const Model& m, int n, int threads) {
  SessionOptions so;
  so.threads = threads;
  so.context = n + 2;
  Session s(m, so);
  int32_t tok = m.vocab.bos >= 0 ? m.vocab.bos : 0;
  auto logits = s.Eval(std::span<const int32_t>(&tok, 1));
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    tok = (int32_t)(std::max_element(logits.begin(), logits.end()) - logits.begin());
    logits = s.Eval(std::span<const int32_t>(&tok, 1));
  }
  return n / SecondsSince(t0);
}

DemoRow MeasureStage(const std::string& stage, const std::string& file, const Model& m, const Model& base,
                     const std::string& base_logprobs, bool write_base,
                     const std::string& text, int ctx, int chunks, int decode_tokens, int threads) {
  DemoRow row;
  row.stage = stage;
  row.file = file;
  row.bytes = fs::file_size(file);
  for (const Tensor& t : m.weights.all()) {
    row.parameters += t.nelements();
    row.bits_per_weight += 8.0 * (double)t.nbytes;
  }
  row.bits_per_weight = row.parameters ? row.bits_per_weight / (double)row.parameters : 0.0;
  KldOptions ko;
  ko.ppl.ctx = ctx;
  ko.ppl.threads = threads;
  ko.ppl.max_chunks = chunks;
  if (!base_logprobs.empty()) (write_base ? ko.base_logits_out : ko.base_logits_in) = base_logprobs;
  const KldResult k = KlDivergence(m, &base, text, ko);
  row.ppl = k.ppl_model;
  row.kld = k.kld_mean;
  row.same_top = k.same_top;
  row.decode_tok_s = DecodeTokensPerSecond(m, decode_tokens, threads);
  return row;
}

DemoResult RunDemoPipeline(const std::string& corpus, const std::string& corpus_name, const DemoRecipe& r,
                           const std::string& workdir, int threads, const DemoProgress& progress) {
  const auto t0 = Clock::now();
  DemoResult res;
  res.split = SplitCorpus(corpus, r, corpus_name);
  const CorpusSplit& split = res.split;
  const std::string key = CacheKey(r, corpus);
  const fs::path dir = fs::path(workdir) / key;
  fs::create_directories(dir);
  res.folder = dir.string();
  train::Fnv1a corpus_hash;
  corpus_hash.Mix(corpus.data(), corpus.size());
  const std::string corpus_id =
      fmt::format("{} ({} bytes, fnv1a {:016x})", fs::path(corpus_name).filename().string(), corpus.size(), corpus_hash.value());
  auto note = [&](const std::string& s) {
    if (progress.note) progress.note(s);
  };
  auto path = [&](const char* name) { return (dir / name).string(); };
  // The split itself, for measuring the stages' models (or one's own) on the same texts:
  // held_out.txt is what every row is scored on, train.txt what trained and calibrated them.
  for (const auto& [name, text] : {std::pair{"held_out.txt", &split.held_out}, std::pair{"train.txt", &split.train}}) {
    if (!fs::exists(path(name))) WriteFileAtomic(path(name), text->data(), text->size());
  }

  // A stage runs when its file is missing or an earlier stage ran in this call.
  bool rebuild = false;
  std::map<std::string, double> made;  // stage -> seconds spent making it
  auto stage = [&](const std::string& name, const std::string& file, const std::function<void()>& make) {
    if (!rebuild && fs::exists(file)) {
      note(fmt::format("{}: cached ({})", name, file));
      return;
    }
    rebuild = true;
    note(fmt::format("{}: making {}", name, file));
    const auto s0 = Clock::now();
    make();
    made[name] = SecondsSince(s0);
  };

  // (a) The vocabulary, stored with the teacher's initial weights (the teacher stage starts from them).
  const ModelConfig probe = MakeConfig(r.teacher, r, r.vocab_size, "teacher");  // a bad shape fails here, early
  (void)probe;
  const std::string vocab_file = path("vocab.gguf");
  stage("vocabulary", vocab_file, [&] {
    std::string text = split.train.substr(0, (size_t)std::min<int64_t>(r.vocab_text_bytes, (int64_t)split.train.size()));
    const Vocab v = train::TrainBpeVocab(text, {.vocab_size = r.vocab_size, .min_char_count = 2}, corpus_name);
    const ModelConfig c = MakeConfig(r.teacher, r, v.size(), fmt::format("smelt-demo teacher d{} l{}", r.teacher.dim, r.teacher.layers));
    Model m = train::TrainModel::FromScratch(c, v, r.seed).ToModel();
    m.info = Info(r, corpus_id, "vocabulary");
    GgufSaveOptions so;
    so.type = DType::kF32;
    SaveGgufModel(m, vocab_file, so);
  });
  const Model init = LoadModel(vocab_file);
  res.vocab = init.vocab.size();
  // The tokenized training part, made only when a training stage runs.
  std::optional<train::Dataset> data;
  auto dataset = [&]() -> const train::Dataset& {
    if (!data) {
      train::DataOptions dopt;
      dopt.seq = r.seq;
      dopt.val_frac = 0.0;  // validation is the held-out sections, measured below
      dopt.seed = r.seed;
      dopt.separator = kSeparator;
      data = train::Dataset::FromText(init.vocab, split.train_documents, corpus_name, dopt);
    }
    return *data;
  };

  // (b) The teacher.
  const std::string teacher_file = path("teacher.gguf"), teacher_ckpt = path("teacher.ckpt");
  if (rebuild) fs::remove(teacher_ckpt);
  stage("teacher", teacher_file, [&] {
    TrainStage("teacher", train::TrainModel::FromModel(init), dataset(), r.teacher_steps, r.teacher_lr, r, nullptr,
               teacher_ckpt, teacher_file, Info(r, corpus_id, "teacher"), threads, progress);
  });
  const Model teacher = LoadModel(teacher_file);

  // (c) The student, distilled from the frozen teacher.
  const std::string student_file = path("student.gguf"), student_ckpt = path("student.ckpt");
  if (rebuild) fs::remove(student_ckpt);
  stage("student", student_file, [&] {
    const train::TrainModel t = train::TrainModel::FromModel(teacher);
    const ModelConfig c = MakeConfig(r.student, r, teacher.config.vocab,
                                     fmt::format("smelt-demo student d{} l{}", r.student.dim, r.student.layers));
    train::SoftLabelOptions soft;
    soft.temperature = r.tau;
    TrainStage("student", train::TrainModel::FromScratch(c, teacher.vocab, r.seed + 1), dataset(), r.student_steps,
               r.student_lr, r, SoftLabelDistillObjective(t, r.alpha, soft), student_ckpt, student_file,
               Info(r, corpus_id, "student"), threads, progress);
  });
  const Model student = LoadModel(student_file);
  const ModelConfig student_config = MakeConfig(r.student, r, teacher.config.vocab,
                                                fmt::format("smelt-demo student d{} l{}", r.student.dim, r.student.layers));

  // (d), (e) The student quantized and pruned; calibration windows come from the training part.
  std::optional<std::vector<std::vector<int32_t>>> samples;
  auto calib = [&]() -> const std::vector<std::vector<int32_t>>* {
    if (!samples) {
      const std::string text =
          split.train.substr(0, (size_t)std::min<int64_t>(r.vocab_text_bytes, (int64_t)split.train.size()));
      samples = CalibrationSamplesFromText(student, text, corpus_name,
                                           CalibOptions{.samples = r.calib_samples, .tokens = r.calib_tokens});
    }
    return &*samples;
  };
  auto save = [&](Model m, const std::string& file, const std::string& stage_name, const std::string& recipe) {
    m.info = Info(r, corpus_id, stage_name);
    m.info["quantize.recipe"] = recipe;
    SaveGgufModel(m, file, GgufSaveOptions{});
  };
  struct Compressed {
    std::string stage, file;
  };
  const std::vector<Compressed> compressed = {{"student q8_0", path("student-q8_0.gguf")},
                                              {"student q4_0 (gptq)", path("student-q4_0.gguf")},
                                              {"student 2:4 (wanda)", path("student-2of4.gguf")},
                                              {"student 2:4 s24_q8", path("student-2of4-s24_q8.gguf")}};
  stage(compressed[0].stage, compressed[0].file, [&] {
    save(Quantized(student, "*=q8_0", QuantMethod::kRtn, nullptr, threads), compressed[0].file, compressed[0].stage,
         "method=rtn rules='*=q8_0'");
  });
  stage(compressed[1].stage, compressed[1].file, [&] {
    save(Quantized(student, "token_embd.weight=q8_0; *=q4_0", QuantMethod::kGptq, calib(), threads),
         compressed[1].file, compressed[1].stage,
         fmt::format("method=gptq rules='token_embd.weight=q8_0; *=q4_0' calib={}x{}", r.calib_samples, r.calib_tokens));
  });
  stage(compressed[2].stage, compressed[2].file, [&] {
    PruneOptions o;
    o.method = PruneMethod::kWanda;
    o.pattern = NmPattern{2, 4};
    o.samples = calib();
    o.threads = threads;
    Model m = PruneModel(student, o);
    m.info = Info(r, corpus_id, compressed[2].stage);
    m.info["prune.recipe"] = fmt::format("method=wanda pattern=2:4 calib={}x{}", r.calib_samples, r.calib_tokens);
    SaveGgufModel(m, compressed[2].file, GgufSaveOptions{});
  });
  stage(compressed[3].stage, compressed[3].file, [&] {
    // The pruned matrices' zeros sit in s24_q8's 2:4 positions exactly; the embedding (not pruned) is q8_0.
    const Model pruned = LoadModel(compressed[2].file);
    save(Quantized(pruned, "token_embd.weight=q8_0; *=s24_q8", QuantMethod::kRtn, nullptr, threads),
         compressed[3].file, compressed[3].stage, "method=rtn rules='token_embd.weight=q8_0; *=s24_q8' (of the 2:4 model)");
  });

  // (c') With r.baseline: the student's twin trained without a teacher, made last so that making
  // it never remakes the stages above.
  const std::string baseline_file = path("student-no-teacher.gguf"), baseline_ckpt = path("student-no-teacher.ckpt");
  if (r.baseline) {
    stage("student, no teacher", baseline_file, [&] {
      TrainStage("student, no teacher", train::TrainModel::FromScratch(student_config, teacher.vocab, r.seed + 1),
                 dataset(), r.student_steps, r.student_lr, r, nullptr, baseline_ckpt, baseline_file,
                 Info(r, corpus_id, "student, no teacher"), threads, progress);
    });
  }

  // Measurements, every run. The teacher's log-probs on the held-out text are computed once (with
  // its own row) and read back for every other row.
  const std::string base_logprobs = (dir / fmt::format("teacher-logprobs.{}.tmp", ::getpid())).string();
  auto measure = [&](const std::string& name, const std::string& file, const Model& m) {
    note(fmt::format("measuring {}", name));
    DemoRow row = MeasureStage(name, file, m, teacher, base_logprobs, res.rows.empty(), split.held_out, r.eval_ctx,
                               r.eval_chunks, r.decode_tokens, threads);
    const auto it = made.find(name);
    row.cached = it == made.end();
    row.stage_seconds = row.cached ? 0.0 : it->second;
    res.rows.push_back(std::move(row));
  };
  measure("teacher", teacher_file, teacher);
  measure("student", student_file, student);
  if (r.baseline) measure("student, no teacher", baseline_file, LoadModel(baseline_file));
  for (const Compressed& c : compressed) measure(c.stage, c.file, LoadModel(c.file));
  fs::remove(base_logprobs);
  res.seconds = SecondsSince(t0);
  return res;
}

}  // namespace smelt::pipeline
