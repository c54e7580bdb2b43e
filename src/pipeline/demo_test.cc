#include "pipeline/demo.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "train/grad_check_test_util.h"
#include "train/ops.h"
#include "train/rng.h"

namespace smelt::pipeline {
namespace {

// Paragraphs "paragraph I ..." of about 40 bytes, separated by blank lines.
std::string Paragraphs(int n) {
  std::string t;
  for (int i = 0; i < n; ++i) t += "paragraph " + std::to_string(i) + " and some words after it\n\n";
  return t;
}

TEST(DemoSplit, HoldsOutEveryKthSectionAndKeepsTheRestInOrder) {
  DemoRecipe r;
  r.section_bytes = 30;  // every paragraph is long enough to end a section at its blank line
  r.held_out_every = 4;
  const std::string text = Paragraphs(22);
  const CorpusSplit s = SplitCorpus(text, r, "t");
  EXPECT_EQ(s.sections, 22);
  EXPECT_EQ(s.held_out_sections, 5);  // sections 3, 7, 11, 15, 19
  std::string want_train, want_held, want_docs;
  for (int i = 0; i < 22; ++i) {
    const std::string p = "paragraph " + std::to_string(i) + " and some words after it\n\n";
    if (i % 4 == 3) {
      want_held += p;
    } else {
      if (!want_docs.empty()) want_docs += "\n<|endoftext|>\n";
      want_train += p;
      want_docs += p;
    }
  }
  EXPECT_EQ(s.train, want_train);
  EXPECT_EQ(s.held_out, want_held);
  EXPECT_EQ(s.train_documents, want_docs);
  EXPECT_EQ(s.train.size() + s.held_out.size(), text.size());
}

TEST(DemoSplit, CutsLongTextWithoutBlankLinesAtLineEnds) {
  DemoRecipe r;
  r.section_bytes = 10;
  r.held_out_every = 2;
  // Lines of 51-52 bytes and no blank line: a section ends at the first line end past 16 × 10
  // bytes, so every section is 4 lines (3 lines stay under 160 bytes).
  std::vector<std::string> lines;
  std::string text;
  for (int i = 0; i < 40; ++i) {
    lines.push_back("line " + std::to_string(i) + " xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n");
    text += lines.back();
  }
  const CorpusSplit s = SplitCorpus(text, r, "t");
  EXPECT_EQ(s.sections, 10);
  EXPECT_EQ(s.held_out_sections, 5);
  std::string want_held;
  for (int i = 0; i < 40; ++i)
    if ((i / 4) % 2 == 1) want_held += lines[i];
  EXPECT_EQ(s.held_out, want_held);
  EXPECT_EQ(s.train.size() + s.held_out.size(), text.size());
}

TEST(DemoSplit, EmptyOrTooShortCorpusThrowsNamingIt) {
  DemoRecipe r;
  for (const std::string& text : {std::string(), std::string(" \n\n\t\n"), Paragraphs(3)}) {
    try {
      SplitCorpus(text, r, "corpus.txt");
      ADD_FAILURE() << "no error for a corpus of " << text.size() << " bytes";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_EQ(what.rfind("corpus.txt: ", 0), 0u) << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    }
  }
}

TEST(DemoCache, KeyDependsOnRecipeAndCorpusOnly) {
  const DemoRecipe a = DefaultRecipe();
  DemoRecipe b = a;
  b.student_steps += 1;
  EXPECT_EQ(CacheKey(a, "text"), CacheKey(a, "text"));
  EXPECT_NE(CacheKey(a, "text"), CacheKey(a, "text!"));
  EXPECT_NE(CacheKey(a, "text"), CacheKey(b, "text"));
  EXPECT_NE(RecipeText(a), RecipeText(QuickRecipe()));
  EXPECT_EQ(CacheKey(a, "text").size(), 16u);
}

ModelConfig TinyConfig(int dim, int ff, int vocab) {
  ModelConfig c;
  c.arch = "llama";
  c.dim = dim;
  c.n_layers = 1;
  c.n_heads = 2;
  c.n_kv_heads = 2;
  c.head_dim = c.rope_dim = dim / 2;
  c.ff = ff;
  c.vocab = vocab;
  c.context = 16;
  c.tied_embeddings = true;
  return c;
}

// The objective's definition, computed naively in double from the two models' logits.
double ReferenceObjective(const train::TrainModel& student, const train::TrainModel& teacher, const train::Batch& b,
                          float alpha, float tau) {
  train::Workspace ws_s, ws_t;
  const std::vector<float> s = train::Logits(student, b, ws_s, 1), t = train::Logits(teacher, b, ws_t, 1);
  const int64_t V = student.config().vocab;
  double kl = 0, ce = 0;
  for (int64_t row = 0; row < b.B * b.T; ++row) {
    if (b.targets[row] == train::kIgnoreIndex) continue;
    auto log_softmax = [&](const float* x, double temp) {
      std::vector<double> y(V);
      double mx = -1e300, sum = 0;
      for (int64_t v = 0; v < V; ++v) mx = std::max(mx, x[v] / temp);
      for (int64_t v = 0; v < V; ++v) sum += std::exp(x[v] / temp - mx);
      for (int64_t v = 0; v < V; ++v) y[v] = x[v] / temp - mx - std::log(sum);
      return y;
    };
    const std::vector<double> lp = log_softmax(&t[row * V], tau), lq = log_softmax(&s[row * V], tau);
    for (int64_t v = 0; v < V; ++v) kl += std::exp(lp[v]) * (lp[v] - lq[v]);
    ce -= log_softmax(&s[row * V], 1.0)[b.targets[row]];
  }
  return alpha * (double)tau * tau * kl + (1.0 - alpha) * ce;
}

struct DistillFixture {
  train::TrainModel teacher = train::TrainModel::FromScratch(TinyConfig(16, 32, 24), Vocab{}, 7);
  train::TrainModel student = train::TrainModel::FromScratch(TinyConfig(8, 16, 24), Vocab{}, 8);
  train::Batch batch;
  DistillFixture() {
    // Larger teacher weights give a peaked teacher distribution, far from the student's.
    for (float& p : teacher.params()) p *= 20.0f;
    batch.B = 2;
    batch.T = 5;
    train::Rng rng(3);
    for (int i = 0; i < 10; ++i) {
      batch.inputs.push_back((int32_t)rng.Below(24));
      batch.targets.push_back((int32_t)rng.Below(24));
    }
    batch.targets[4] = train::kIgnoreIndex;
  }
};

TEST(DemoDistill, ObjectiveIsTheMixOfSoftKlAndCrossEntropyWithItsGradient) {
  DistillFixture f;
  const float alpha = 0.5f, tau = 2.0f;
  train::SoftLabelOptions soft;
  soft.temperature = tau;
  const train::Objective obj = SoftLabelDistillObjective(f.teacher, alpha, soft);
  train::Workspace ws;
  f.student.ZeroGrad();
  const double loss = obj(f.student, f.batch, 1.0f, ws, 1);
  const double ref = ReferenceObjective(f.student, f.teacher, f.batch, alpha, tau);
  // f32 logits over V = 24 tokens and 9 scored rows: relative error a few hundred ulps at most.
  EXPECT_NEAR(loss, ref, 1e-4 * std::fabs(ref) + 1e-5);
  EXPECT_GT(loss, 0.0);

  const std::vector<float> grads = f.student.grads();
  std::vector<size_t> idx;
  for (size_t i = 0; i < grads.size(); i += grads.size() / 40) idx.push_back(i);
  train::testing::ExpectGradient([&] { return ReferenceObjective(f.student, f.teacher, f.batch, alpha, tau); },
                                 f.student.params().data(), f.student.params().size(), grads.data(),
                                 1e3 * train::testing::kF32Eps * (std::fabs(ref) + 1.0), "distill objective", idx);
}

TEST(DemoDistill, AlphaZeroIsPlainCrossEntropy) {
  DistillFixture f;
  train::SoftLabelOptions soft;
  soft.temperature = 2.0f;
  train::Workspace ws;
  f.student.ZeroGrad();
  const double loss = SoftLabelDistillObjective(f.teacher, 0.0f, soft)(f.student, f.batch, 0.25f, ws, 1);
  const std::vector<float> g = f.student.grads();
  f.student.ZeroGrad();
  const double ce = train::ForwardBackward(f.student, f.batch, 0.25f, ws, 1);
  EXPECT_EQ(loss, ce);
  ASSERT_EQ(g.size(), f.student.grads().size());
  for (size_t i = 0; i < g.size(); ++i) ASSERT_EQ(g[i], f.student.grads()[i]) << i;
}

TEST(DemoDistill, MismatchedVocabulariesThrow) {
  DistillFixture f;
  train::TrainModel other = train::TrainModel::FromScratch(TinyConfig(8, 16, 30), Vocab{}, 9);
  train::Workspace ws;
  EXPECT_THROW(SoftLabelDistillObjective(f.teacher, 0.5f, {})(other, f.batch, 1.0f, ws, 1), Error);
  EXPECT_THROW(SoftLabelDistillObjective(f.teacher, 1.5f, {}), Error);
}

}  // namespace
}  // namespace smelt::pipeline
