// The training loop: accumulation, determinism, learning, checkpoints (resume, corruption) and
// export to a model the runtime loads.
#include "train/trainer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <barrier>
#include <limits>
#include <thread>

#include "core/mapped_file.h"
#include "error_of.h"
#include "io/gguf_model.h"
#include "model/llama_naive.h"
#include "shared_assets.h"
#include "train/checkpoint.h"
#include "train/ops.h"

namespace smelt::train {
namespace {

namespace fs = std::filesystem;
using smelt::testing::ErrorOf;

// A small model on the stories260K tokenizer and the first 40 kB of the training text.
struct Fixture {
  Vocab vocab = LoadGgufVocab(assets::kStoriesGguf);
  Dataset data = MakeData(vocab);
  ModelConfig config = Config();

  static Dataset MakeData(const Vocab& v) {
    DataOptions o;
    o.seq = 32, o.val_frac = 0.1, o.seed = 3;
    return Dataset::FromText(v, ReadFileToString(assets::kTrainText).substr(0, 40000), "train-prefix", o);
  }
  static ModelConfig Config() {
    ModelConfig c;
    c.name = "tiny-train";
    c.dim = 32, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.head_dim = 8, c.rope_dim = 8, c.ff = 64;
    c.vocab = 512, c.context = 32;
    return c;
  }
  TrainOptions Options(int64_t steps, int threads = 1) const {
    TrainOptions o;
    o.steps = steps, o.batch = 4, o.lr = 3e-3f, o.warmup = 2, o.threads = threads, o.eval_batches = 4;
    return o;
  }
  Trainer Make(int64_t steps, uint64_t seed = 11, int threads = 1) const {
    return Trainer(TrainModel::FromScratch(config, vocab, seed), Options(steps, threads));
  }
};

fs::path TempDir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("smelt-train-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

TEST(TrainLoop, TwoMicroBatchesOfBEqualOneBatchOf2B) {
  const Fixture fx;
  TrainModel a = TrainModel::FromScratch(fx.config, fx.vocab, 1), b = a;
  const Batch whole = fx.data.TrainBatch(0, 8), half0 = fx.data.TrainBatch(0, 4), half1 = fx.data.TrainBatch(1, 4);
  const float scale = 1.0f / (float)ScoredTargets(whole);
  Workspace ws;
  a.ZeroGrad();
  const double la = ForwardBackward(a, whole, scale, ws, 2);
  b.ZeroGrad();
  const double lb = ForwardBackward(b, half0, scale, ws, 2) + ForwardBackward(b, half1, scale, ws, 2);
  EXPECT_NEAR(la, lb, 1e-6 * la);
  double norm = 0, diff = 0;
  for (size_t i = 0; i < a.grads().size(); ++i) {
    norm += (double)a.grads()[i] * a.grads()[i];
    diff += ((double)a.grads()[i] - b.grads()[i]) * ((double)a.grads()[i] - b.grads()[i]);
  }
  // Two sums of the same terms in another order: fp32 rounding relative to the norm, a few
  // hundred operations deep (the products are K = 64..512 long).
  EXPECT_LE(std::sqrt(diff), 512 * std::numeric_limits<float>::epsilon() * std::sqrt(norm));
  EXPECT_GT(norm, 0.0);

  // The trainer's accumulation: the same data, the same losses.
  TrainOptions o = fx.Options(3);
  o.batch = 8;
  Trainer one(TrainModel::FromScratch(fx.config, fx.vocab, 1), o);
  o.batch = 4, o.accum = 2;
  Trainer two(TrainModel::FromScratch(fx.config, fx.vocab, 1), o);
  const StepStats s1 = one.Step(fx.data), s2 = two.Step(fx.data);
  EXPECT_NEAR(s1.loss, s2.loss, 1e-6 * s1.loss);
  EXPECT_NEAR(s1.grad_norm, s2.grad_norm, 1e-4 * s1.grad_norm);
  EXPECT_EQ(s1.tokens, s2.tokens);
  EXPECT_EQ(two.micro_batches(), 2);
}

// A reducer over worker threads of one process, standing in for MPI: each sum waits for every
// worker's value and adds them in rank order, so all workers get the same bits.
class ThreadReducer final : public GradientReducer {
 public:
  struct Shared {
    explicit Shared(int n) : barrier(n), values(n) {}
    std::barrier<> barrier;
    std::vector<std::vector<double>> values;
  };
  ThreadReducer(Shared& s, int rank) : s_(s), rank_(rank) {}
  int rank() const override { return rank_; }
  int ranks() const override { return (int)s_.values.size(); }
  int64_t SumCount(int64_t local) override { return (int64_t)Sum(std::vector<double>{(double)local})[0]; }
  double SumValue(double local) override { return Sum({local})[0]; }
  void SumInPlace(std::span<float> v) override {
    const std::vector<double> sum = Sum(std::vector<double>(v.begin(), v.end()));
    for (size_t i = 0; i < v.size(); ++i) v[i] = (float)sum[i];
  }

 private:
  std::vector<double> Sum(std::vector<double> local) {
    s_.values[rank_] = std::move(local);
    s_.barrier.arrive_and_wait();
    std::vector<double> sum(s_.values[0].size(), 0.0);
    for (const auto& v : s_.values)
      for (size_t i = 0; i < sum.size(); ++i) sum[i] += v[i];
    s_.barrier.arrive_and_wait();  // everyone has read before anyone writes again
    return sum;
  }
  Shared& s_;
  int rank_;
};

// Data parallelism: two workers with batch B, summing through a reducer, take the steps of one
// worker with batch 2B (losses, validation loss and weights equal up to the order of the sums),
// and stay identical to each other.
TEST(TrainLoop, TwoWorkersOfBatchBEqualOneOfBatch2B) {
  const Fixture fx;
  const int steps = 6;
  TrainOptions o = fx.Options(steps);
  o.batch = 8;
  Trainer one(TrainModel::FromScratch(fx.config, fx.vocab, 1), o);
  for (int i = 0; i < steps; ++i) one.Step(fx.data);
  const double val_one = one.ValLoss(fx.data);

  o.batch = 4;
  ThreadReducer::Shared shared(2);
  std::vector<Trainer> workers;
  for (int r = 0; r < 2; ++r) workers.emplace_back(TrainModel::FromScratch(fx.config, fx.vocab, 1), o);
  std::vector<ThreadReducer> reducers{{shared, 0}, {shared, 1}};
  double val[2] = {0, 0};
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r)
    threads.emplace_back([&, r] {
      workers[r].set_reducer(&reducers[r]);
      for (int i = 0; i < steps; ++i) workers[r].Step(fx.data);
      val[r] = workers[r].ValLoss(fx.data);
    });
  for (auto& t : threads) t.join();

  EXPECT_EQ(workers[0].model().params(), workers[1].model().params());
  EXPECT_EQ(workers[0].losses(), workers[1].losses());
  EXPECT_EQ(val[0], val[1]);
  ASSERT_EQ(workers[0].losses().size(), one.losses().size());
  for (int i = 0; i < steps; ++i) EXPECT_NEAR(workers[0].losses()[i], one.losses()[i], 1e-5 * one.losses()[i]);
  EXPECT_NEAR(val[0], val_one, 1e-5 * val_one);
  // Weights: the same sums in another order, carried through a few AdamW steps; AdamW divides by
  // sqrt(v), so a gradient's rounding moves a weight by at most about lr · (its relative error).
  double norm = 0, diff = 0;
  const std::vector<float>&a = one.model().params(), &b = workers[0].model().params();
  for (size_t i = 0; i < a.size(); ++i) {
    norm += (double)a[i] * a[i];
    diff += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
  }
  EXPECT_LE(std::sqrt(diff), 1e-4 * std::sqrt(norm));
  EXPECT_GT(std::sqrt(diff), 0.0);  // the two runs did sum in different orders
}

TEST(TrainLoop, SameSeedSameBitsAndTheLossFalls) {
  const Fixture fx;
  Trainer a = fx.Make(40), b = fx.Make(40), c = fx.Make(40, 12);
  const double val0 = a.ValLoss(fx.data);
  for (int i = 0; i < 40; ++i) a.Step(fx.data), b.Step(fx.data);
  c.Step(fx.data);
  EXPECT_EQ(a.losses(), b.losses());
  EXPECT_EQ(a.model().params(), b.model().params());
  EXPECT_NE(a.losses()[0], c.losses()[0]);
  // The initial loss is that of a near-uniform guess, log(512) = 6.24; 40 steps learn the
  // token statistics of the text.
  EXPECT_NEAR(a.losses()[0], std::log(512.0), 0.1);
  const double val = a.ValLoss(fx.data);
  EXPECT_LT(val, val0 - 1.0) << "validation loss " << val0 << " -> " << val;
  EXPECT_LT(a.losses().back(), a.losses()[0] - 1.0);
}

TEST(TrainLoop, ResumeFromACheckpointRepeatsTheStraightRun) {
  const Fixture fx;
  const fs::path dir = TempDir("resume");
  const std::string ckpt = (dir / "run.ckpt").string();
  // Two threads: the ops' thread split is part of what must repeat.
  Trainer straight = fx.Make(12, 11, 2);
  for (int i = 0; i < 12; ++i) straight.Step(fx.data);

  Trainer first = fx.Make(12, 11, 2);
  for (int i = 0; i < 6; ++i) first.Step(fx.data);
  SaveCheckpoint(first, fx.data.Fingerprint(), ckpt);
  Checkpoint c = LoadCheckpoint(ckpt, 2);  // the same threads: the same bits
  EXPECT_EQ(c.data_fingerprint, fx.data.Fingerprint());
  EXPECT_EQ(c.trainer.step(), 6);
  EXPECT_EQ(c.trainer.micro_batches(), 6);
  EXPECT_EQ(c.trainer.model().params(), first.model().params());
  for (int i = 0; i < 6; ++i) c.trainer.Step(fx.data);
  EXPECT_EQ(c.trainer.losses(), straight.losses());
  EXPECT_EQ(c.trainer.model().params(), straight.model().params());
  EXPECT_EQ(c.trainer.optimizer().m(), straight.optimizer().m());
  EXPECT_EQ(c.trainer.optimizer().v(), straight.optimizer().v());
  // The checkpoint is a model file too.
  const Model m = LoadGgufModel(ckpt);
  EXPECT_EQ(m.config.dim, fx.config.dim);
  fs::remove_all(dir);
}

TEST(TrainLoop, CorruptCheckpointIsOneClearErrorAndChangesNothing) {
  const Fixture fx;
  const fs::path dir = TempDir("corrupt");
  const std::string good = (dir / "good.ckpt").string();
  Trainer t = fx.Make(4);
  t.Step(fx.data);
  SaveCheckpoint(t, fx.data.Fingerprint(), good);
  const std::string bytes = ReadFileToString(good);
  auto write = [&](const std::string& name, const std::string& b) {
    const std::string p = (dir / name).string();
    std::ofstream(p, std::ios::binary) << b;
    return p;
  };
  std::string flipped = bytes;
  flipped[bytes.size() - 100] ^= 0x10;  // inside the last tensor's data
  const std::vector<std::pair<std::string, std::string>> cases = {
      {write("truncated.ckpt", bytes.substr(0, bytes.size() / 2)), "truncated.ckpt"},
      {write("flipped.ckpt", flipped), "checksum mismatch"},
      {write("empty.ckpt", ""), "empty.ckpt"},
      {assets::kStoriesGguf, "not a smelt training checkpoint"},
  };
  for (const auto& c : cases) {
    const std::string& path = c.first;
    const std::string& want = c.second;
    const std::string before = ReadFileToString(path);
    const std::string e = ErrorOf([&] { LoadCheckpoint(path, 1); });
    EXPECT_NE(e.find(want), std::string::npos) << path << ": " << e;
    EXPECT_NE(e.find(fs::path(path).filename().string()), std::string::npos) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
    EXPECT_EQ(ReadFileToString(path), before);
  }
  // The good one still loads; saving over it again is atomic (no temporary left behind).
  EXPECT_EQ(LoadCheckpoint(good, 1).trainer.step(), 1);
  SaveCheckpoint(t, fx.data.Fingerprint(), good);
  for (const auto& e : fs::directory_iterator(dir)) EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos);
  fs::remove_all(dir);
}

TEST(TrainLoop, ExportedGgufRunsInTheReferenceForward) {
  const Fixture fx;
  const fs::path dir = TempDir("export");
  Trainer t = fx.Make(3);
  for (int i = 0; i < 3; ++i) t.Step(fx.data);
  const std::string out = (dir / "out.gguf").string();
  ExportGguf(t.model(), out);
  const Model m = LoadGgufModel(out);
  EXPECT_EQ(m.vocab.tokens, fx.vocab.tokens);
  const Batch b = fx.data.TrainBatch(0, 1);
  Workspace ws;
  const std::vector<float> got = Logits(t.model(), b, ws, 1);
  const std::vector<float> want = NaiveLlamaLogits(m, b.inputs);
  double norm = 0;
  for (float v : want) norm = std::max(norm, (double)std::fabs(v));
  for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-4 * norm) << i;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace smelt::train
