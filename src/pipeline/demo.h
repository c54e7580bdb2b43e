#pragma once
// The main job (`smelt demo`): from a plain-text corpus to a small compressed model, every stage
// measured on held-out text of the same corpus.
//
//   (a) vocabulary  a BPE vocabulary learned from the training part (train/vocab_train.h)
//   (b) teacher     a Llama model trained from scratch on the training part (checkpointed, resumable)
//   (c) student     a smaller model distilled from the frozen teacher: α·τ²·KL(teacher ‖ student)
//                   on temperature-softened distributions plus (1-α)·cross-entropy on the text
//   (d) quantized   the student as q8_0 (round to nearest) and q4_0 (GPTQ, calibrated on training text)
//   (e) pruned      the student with 2:4 sparsity chosen by Wanda, kept f32 and stored as s24_q8
//
// Every stage's output is a GGUF file in one cache folder per recipe: the folder's name is a hash
// of the recipe, the corpus bytes and the smelt version, so rerunning the same job finds every
// file and only measures. A stage runs when its file is missing, and then every later stage runs
// again too (a stale file of a later stage is never trusted). Files are written atomically, and
// training stages checkpoint, so an interrupted run resumes where it stopped.
//
// The corpus is split into sections of about `section_bytes`, cut at blank lines (a chapter or
// two of the King James Bible); every `held_out_every`-th section is held out and never trained
// on. Perplexity, KL-divergence to the teacher and same-top are measured on those sections. The
// cache folder keeps the split as held_out.txt and train.txt, to measure other recipes on it.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/model.h"
#include "train/model.h"
#include "train/soft_label.h"
#include "train/trainer.h"

namespace smelt::pipeline {

// The shape of one trained model (vocab comes from the learned vocabulary).
struct DemoShape {
  int dim = 0, layers = 0, heads = 0, kv_heads = 0, ff = 0;
};

struct DemoRecipe {
  // Corpus split.
  int64_t section_bytes = 4096;
  int held_out_every = 20;
  // Vocabulary: learned from (at most) the first vocab_text_bytes of the training part.
  int vocab_size = 1024;
  int64_t vocab_text_bytes = 1 << 20;
  // Models and their training.
  DemoShape teacher{128, 4, 4, 4, 352};
  DemoShape student{64, 4, 4, 4, 192};  // ff a multiple of 32: every block format fits
  int64_t seq = 128, batch = 16;
  int64_t teacher_steps = 300, student_steps = 300;
  float teacher_lr = 3e-3f, student_lr = 3e-3f;
  int64_t warmup = 20;
  int64_t ckpt_every = 25;
  // Distillation: forward KL at temperature tau, weight alpha (1 - alpha on cross-entropy).
  float alpha = 0.5f, tau = 2.0f;
  // Calibration of GPTQ and Wanda (windows of the training part).
  int calib_samples = 32, calib_tokens = 128;
  // Evaluation on the held-out part: windows of eval_ctx tokens, at most eval_chunks of them.
  int eval_ctx = 128, eval_chunks = 160;
  int decode_tokens = 64;  // tokens generated for the decode speed figure
  uint64_t seed = 1;
  // Also train the student without a teacher (cross-entropy only, same initialisation, batches and
  // steps) and measure it beside the distilled one. Not part of the cache key: the extra file sits
  // beside the others and is made once.
  bool baseline = false;
};

// The full job's recipe (what `smelt demo` runs) and a tiny one for tests (seconds).
DemoRecipe DefaultRecipe();
DemoRecipe QuickRecipe();
// One line naming every field of the recipe: the cache key's input and the outputs' metadata.
std::string RecipeText(const DemoRecipe& r);

// The corpus cut into sections (see above), in order: `train` and `held_out` the sections of
// each part, `train_documents` the training sections joined by "<|endoftext|>" lines (each one
// a document of its own for train::Dataset). Throws Error naming `source` for an empty corpus or one too short to hold out anything.
struct CorpusSplit {
  std::string train, held_out;  // the sections of each part, concatenated
  std::string train_documents;  // the training sections joined by separator lines
  int sections = 0, held_out_sections = 0;
};
CorpusSplit SplitCorpus(const std::string& text, const DemoRecipe& r, const std::string& source);

// The cache folder's name: a 16-hex-digit FNV-1a hash of the version, recipe and corpus bytes.
std::string CacheKey(const DemoRecipe& r, const std::string& corpus);

// The distillation objective of stage (c) (a train::Objective): runs the frozen teacher's
// forward pass on the micro-batch, then the student's, and minimises
//   alpha · Σ τ²·KL(softmax(t/τ) ‖ softmax(s/τ)) + (1 - alpha) · Σ -log softmax(s)[target]
// over the scored positions (teacher and student must share the vocabulary; Error otherwise).
train::Objective SoftLabelDistillObjective(const train::TrainModel& teacher, float alpha,
                                           const train::SoftLabelOptions& soft);

// One measured stage.
struct DemoRow {
  std::string stage;    // "teacher", "student", "student q8_0", ...
  std::string file;
  uint64_t bytes = 0;   // file size
  int64_t parameters = 0;
  double bits_per_weight = 0;
  double ppl = 0, kld = 0, same_top = 0;  // on held-out text; KLD and same_top against the base
  double decode_tok_s = 0;
  bool cached = false;  // the file was found, not made, in this run
  double stage_seconds = 0;  // time spent making the file (0 when cached)
};

// Measures `m` against `base` on `text`: size from the file, ppl, KLD, same-top, decode speed.
// base_logprobs: a file of base's log-probs on `text`, written by this call when write_base is
// set and read instead of running base otherwise ("": base runs).
DemoRow MeasureStage(const std::string& stage, const std::string& file, const Model& m, const Model& base,
                     const std::string& base_logprobs, bool write_base, const std::string& text, int ctx, int chunks, int decode_tokens, int threads);

// Greedy decoding of n tokens after BOS: tokens/s of the decode steps.
double DecodeTokensPerSecond(const Model& m, int n, int threads);

struct DemoProgress {
  std::function<void(const std::string& line)> note;  // a stage starts or is found in the cache
  // A training step: stage, step, steps, mean training loss.
  std::function<void(const std::string& stage, int64_t step, int64_t steps, double loss)> step;
};

struct DemoResult {
  std::string folder;  // the cache folder used
  CorpusSplit split;   // sizes only are of interest; the texts are kept for callers
  int vocab = 0;
  std::vector<DemoRow> rows;  // teacher, student, then the compressed students
  double seconds = 0;
};

// Runs (or finds) every stage in `workdir`/CacheKey(...) and measures them. `corpus_name` names
// the corpus in errors and metadata.
DemoResult RunDemoPipeline(const std::string& corpus, const std::string& corpus_name, const DemoRecipe& r,
                           const std::string& workdir, int threads, const DemoProgress& progress);

}  // namespace smelt::pipeline
