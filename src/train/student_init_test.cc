// A student's start from its teacher and progressive growth: the initialised student against
// the teacher with the same blocks removed by compress/structured and run by the reference
// forward pass; growth against the same construction and against a block that adds nothing.
#include "train/student_init.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include "compress/structured.h"
#include "error_of.h"
#include "io/gguf_model.h"
#include "model/llama_naive.h"
#include "shared_assets.h"
#include "tiny_models.h"
#include "train/data.h"
#include "train/ops.h"
#include "train/tiny_model_test_util.h"

namespace smelt::train {
namespace {

using smelt::testing::ErrorOf;
using testing::RandomBatch;

// The training forward's logits of `m` against NaiveLlamaLogits of `ref` (double arithmetic),
// within 1e-4 of each row's largest logit (fp32 rounding through a few blocks).
void ExpectLogitsOf(const TrainModel& m, const Model& ref, const std::string& what) {
  const Batch b = RandomBatch(2, 20, ref.config.vocab, 7);
  Workspace ws;
  const std::vector<float> got = Logits(m, b, ws, 2);
  const int64_t V = ref.config.vocab;
  for (int64_t s = 0; s < b.B; ++s) {
    const std::vector<float> want = NaiveLlamaLogits(ref, std::span(b.inputs).subspan(s * b.T, b.T));
    for (int64_t t = 0; t < b.T; ++t) {
      const float* w = &want[t * V];
      double norm = 0;
      for (int64_t v = 0; v < V; ++v) norm = std::max(norm, (double)std::fabs(w[v]));
      for (int64_t v = 0; v < V; ++v)
        ASSERT_NEAR(got[(s * b.T + t) * V + v], w[v], 1e-4 * norm) << what << ": sequence " << s << " position " << t;
    }
  }
}

std::vector<int> Complement(const std::vector<int>& kept, int layers) {
  std::vector<int> out;
  for (int l = 0; l < layers; ++l)
    if (std::find(kept.begin(), kept.end(), l) == kept.end()) out.push_back(l);
  return out;
}

TEST(StudentInit, LayerMaps) {
  EXPECT_EQ(EveryKthLayer(5, 2), (std::vector<int>{0, 2, 4}));
  EXPECT_EQ(EveryKthLayer(6, 2), (std::vector<int>{0, 2, 4}));
  EXPECT_EQ(EveryKthLayer(5, 1), (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ(ParseTeacherBlocks("every:3", 7), (std::vector<int>{0, 3, 6}));
  EXPECT_EQ(ParseTeacherBlocks("layers:1,4", 5), (std::vector<int>{1, 4}));
  EXPECT_NE(ErrorOf([] { ParseTeacherBlocks("layers:2,1", 5); }).find("increasing"), std::string::npos);
  EXPECT_NE(ErrorOf([] { ParseTeacherBlocks("layers:0,5", 5); }).find("outside"), std::string::npos);
  EXPECT_NE(ErrorOf([] { ParseTeacherBlocks("every:0", 5); }).find("at least 1"), std::string::npos);
  EXPECT_NE(ErrorOf([] { ParseTeacherBlocks("every:x", 5); }).find("whole number"), std::string::npos);
  EXPECT_NE(ErrorOf([] { ParseTeacherBlocks("half", 5); }).find("every:K"), std::string::npos);
}

TEST(StudentInit, StudentIsTheTeacherWithTheOtherBlocksRemoved) {
  const Model ref = LoadGgufModel(assets::kStoriesGguf);
  const TrainModel teacher = TrainModel::FromModel(ref);
  for (const std::vector<int>& kept : {std::vector<int>{0, 2, 4}, std::vector<int>{1, 4}, std::vector<int>{3}}) {
    const TrainModel student = StudentFromTeacher(teacher, kept);
    EXPECT_EQ(student.config().n_layers, (int)kept.size());
    const Model pruned = RemoveUnits(ref, StructuredTarget::kLayers, {Complement(kept, ref.config.n_layers)});
    ExpectLogitsOf(student, pruned, "stories260K blocks " + std::to_string(kept.size()));
  }
}

TEST(StudentInit, TiedQwenStyleStudent) {
  tiny::TinyOptions o;
  o.layers = 4, o.qwen2 = true, o.tied = true, o.seed = 5;
  const Model ref = tiny::TinyLlama(o);
  const TrainModel student = StudentFromTeacher(TrainModel::FromModel(ref), EveryKthLayer(4, 2));
  ExpectLogitsOf(student, RemoveUnits(ref, StructuredTarget::kLayers, {{1, 3}}), "tiny qwen2");
}

TEST(StudentInit, PrunedTeacherIsAStartAndAWiderStudentIsNot) {
  const Model ref = LoadGgufModel(assets::kStoriesGguf);
  StructuredOptions so;
  so.target = StructuredTarget::kChannels, so.ratio = 0.25;
  const std::vector<std::vector<int32_t>> samples = {{1, 20, 30, 40, 50, 60, 70, 80}};
  const Model pruned = PruneStructured(ref, samples, so);
  EXPECT_NO_THROW(CheckWithinTeacher(pruned.config, ref.config, "pruned"));
  // The pruned model starts training as itself.
  ExpectLogitsOf(TrainModel::FromModel(pruned), pruned, "pruned start");
  ModelConfig wide = ref.config;
  wide.ff = ref.config.ff * 2;
  EXPECT_NE(ErrorOf([&] { CheckWithinTeacher(wide, ref.config, "wide.gguf"); }).find("exceed"), std::string::npos);
  ModelConfig other = ref.config;
  other.vocab = 1000;
  EXPECT_NE(ErrorOf([&] { CheckWithinTeacher(other, ref.config, "v.gguf"); }).find("vocabulary"), std::string::npos);
  EXPECT_NE(ErrorOf([&] { CheckSameBlockShape(pruned.config, ref.config, "p.gguf"); }).find("cannot take"),
            std::string::npos);
}

TEST(StudentInit, GrowthPlanDealsTheBlocksOverTheStages) {
  const std::vector<int> final_map = {0, 1, 2, 3, 4};
  const GrowthPlan p = PlanGrowth(final_map, {10, 20});
  EXPECT_EQ(p.initial, (std::vector<int>{0, 3}));
  ASSERT_EQ(p.add.size(), 2u);
  EXPECT_EQ(p.add[0], (std::vector<int>{1, 4}));
  EXPECT_EQ(p.add[1], (std::vector<int>{2}));
  // Every block exactly once, group sizes within one of each other.
  std::multiset<int> all(p.initial.begin(), p.initial.end());
  size_t lo = p.initial.size(), hi = lo;
  for (const auto& a : p.add) {
    all.insert(a.begin(), a.end());
    lo = std::min(lo, a.size()), hi = std::max(hi, a.size());
  }
  EXPECT_EQ(all, std::multiset<int>(final_map.begin(), final_map.end()));
  EXPECT_LE(hi - lo, 1u);
  EXPECT_NE(ErrorOf([&] { PlanGrowth(final_map, {20, 10}); }).find("increasing"), std::string::npos);
  EXPECT_NE(ErrorOf([&] { PlanGrowth(std::vector<int>{0, 1}, {5, 6}); }).find("at least 3"), std::string::npos);
}

TEST(StudentInit, GrowingAnUntrainedStudentGivesTheTeacherWithFewerBlocksRemoved) {
  const Model ref = LoadGgufModel(assets::kStoriesGguf);
  const TrainModel teacher = TrainModel::FromModel(ref);
  const std::vector<int> map = {0, 4};
  std::vector<int> grown_map;
  const TrainModel grown = GrowStudent(StudentFromTeacher(teacher, map), map, teacher, std::vector<int>{2, 1}, &grown_map);
  EXPECT_EQ(grown_map, (std::vector<int>{0, 1, 2, 4}));
  ExpectLogitsOf(grown, RemoveUnits(ref, StructuredTarget::kLayers, {{3}}), "grown");
  EXPECT_NE(ErrorOf([&] { GrowStudent(grown, grown_map, teacher, std::vector<int>{1}, nullptr); }).find("already"),
            std::string::npos);
}

// A trained student grows by a teacher block whose output projections are zero: the block adds
// nothing to the residual stream, so the logits stay the same bits; the trained parameters and
// their AdamW moments are carried, the new block's moments start at zero, and the counters stay.
TEST(StudentInit, GrowingATrainedStudentKeepsItsFunctionAndMoments) {
  const Model ref = LoadGgufModel(assets::kStoriesGguf);
  TrainModel teacher = TrainModel::FromModel(ref);
  for (const char* name : {"blk.2.attn_output.weight", "blk.2.ffn_down.weight"})
    std::fill_n(teacher.Param(name), teacher.Slice(name).size, 0.0f);
  std::mt19937 gen(3);
  std::uniform_int_distribution<int> tok(0, ref.config.vocab - 1);
  std::vector<int32_t> tokens(40 * 17);
  for (int32_t& t : tokens) t = tok(gen);
  DataOptions dopt;
  dopt.seq = 16, dopt.val_frac = 0.1;
  const Dataset data = Dataset::FromTokens(tokens, "random", dopt);
  TrainOptions opt;
  opt.steps = 10, opt.batch = 4, opt.lr = 3e-3f;
  const std::vector<int> map = {0, 4};
  Trainer t(StudentFromTeacher(teacher, map), opt);
  for (int i = 0; i < 3; ++i) t.Step(data);
  // A one-worker reducer and a cross-entropy objective that count their calls: the grown trainer
  // must keep both (a data-parallel run that lost its reducer would go on unsynchronised).
  struct CountingReducer : GradientReducer {
    int calls = 0;
    int64_t SumCount(int64_t local) override { return ++calls, local; }
    double SumValue(double local) override { return local; }
    void SumInPlace(std::span<float>) override {}
  } reducer;
  int objective_calls = 0;
  t.set_reducer(&reducer);
  t.set_objective([&objective_calls](TrainModel& m, const Batch& b, float scale, Workspace& ws, int threads) {
    ++objective_calls;
    Forward(m, b, ws, threads);
    const double loss = CrossEntropyForwardBackward(ws.logits.data(), b.targets, m.config().vocab, scale, threads);
    Backward(m, b, ws, threads);
    return loss;
  });

  std::vector<int> grown_map;
  Trainer g = GrowTrainer(t, map, teacher, std::vector<int>{2}, &grown_map);
  EXPECT_EQ(g.reducer(), &reducer);
  EXPECT_EQ(grown_map, (std::vector<int>{0, 2, 4}));
  EXPECT_EQ(g.step(), t.step());
  EXPECT_EQ(g.micro_batches(), t.micro_batches());
  EXPECT_EQ(g.losses(), t.losses());
  EXPECT_EQ(g.optimizer().step(), t.optimizer().step());

  const Batch b = RandomBatch(2, 16, ref.config.vocab, 9);
  Workspace ws;
  EXPECT_EQ(Logits(g.model(), b, ws, 1), Logits(t.model(), b, ws, 1));

  // Old block i of the student is block 2i of the grown one; block 1 is the teacher's block 2.
  const TrainModel &om = t.model(), &gm = g.model();
  for (const ParamSlice& p : gm.slices()) {
    std::string from = p.name;
    bool fresh = false;
    if (p.name.starts_with("blk.")) {
      const int l = p.name[4] - '0';
      fresh = l == 1;
      from = "blk." + std::to_string(l / 2) + p.name.substr(5);
    }
    const float* gp = gm.params().data() + p.offset;
    const float* gmom = g.optimizer().m().data() + p.offset;
    const float* gvar = g.optimizer().v().data() + p.offset;
    if (fresh) {
      const std::string tname = "blk.2" + p.name.substr(5);
      EXPECT_TRUE(std::equal(gp, gp + p.size, teacher.Param(tname))) << p.name;
      EXPECT_TRUE(std::all_of(gmom, gmom + p.size, [](float x) { return x == 0.0f; })) << p.name;
      EXPECT_TRUE(std::all_of(gvar, gvar + p.size, [](float x) { return x == 0.0f; })) << p.name;
      continue;
    }
    const ParamSlice& q = om.Slice(from);
    EXPECT_TRUE(std::equal(gp, gp + p.size, om.params().data() + q.offset)) << p.name;
    EXPECT_TRUE(std::equal(gmom, gmom + p.size, t.optimizer().m().data() + q.offset)) << p.name;
    EXPECT_TRUE(std::equal(gvar, gvar + p.size, t.optimizer().v().data() + q.offset)) << p.name;
  }
  // Training goes on from there, through the same objective and reducer.
  const StepStats s = g.Step(data);
  EXPECT_EQ(s.step, 4);
  EXPECT_TRUE(std::isfinite(s.loss));
  EXPECT_EQ(objective_calls, (int)opt.accum);
  EXPECT_GT(reducer.calls, 0);
}

}  // namespace
}  // namespace smelt::train
