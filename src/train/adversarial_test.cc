// Adversarial training on the embeddings: the gradient at the embedding output against finite
// differences, the perturbation's size and first-order effect, and the combined objective's
// parameter gradient against finite differences (δ held fixed).
#include "train/adversarial.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "error_of.h"
#include "tiny_models.h"
#include "train/tiny_model_test_util.h"
#include "train/ops.h"

namespace smelt::train {
namespace {

using smelt::testing::ErrorOf;
using testing::ExpectGradient;
using testing::kF32Eps;
using testing::LossNoise;
using testing::RandomBatch;

// A random model whose nonlinearities matter (tiny_models.h: large weights).
TrainModel RoughModel(bool qwen) {
  tiny::TinyOptions o;
  o.dim = 16, o.layers = 2, o.heads = 4, o.kv_heads = 2, o.ff = 24, o.vocab = 20, o.seed = 3;
  o.qwen2 = qwen, o.tied = qwen;
  return TrainModel::FromModel(tiny::TinyLlama(o));
}

// Cross-entropy sum of the batch with `delta` added to the embeddings.
double PerturbedLoss(const TrainModel& m, const Batch& b, const float* delta, Workspace& ws) {
  ForwardPerturbed(m, b, delta, ws, 1);
  return CrossEntropyLoss(ws.logits.data(), b.targets, m.config().vocab, 1);
}

// ∂loss/∂(embedding output) from Backward, for the mean loss.
std::vector<float> EmbeddingGradient(TrainModel& m, const Batch& b, Workspace& ws) {
  Forward(m, b, ws, 1);
  CrossEntropyForwardBackward(ws.logits.data(), b.targets, m.config().vocab, 1.0f / (float)ScoredTargets(b), 1);
  m.ZeroGrad();
  Backward(m, b, ws, 1);
  return ws.dx;
}

TEST(Adversarial, PerturbationHasNormEpsilonAlongTheGradient) {
  const int64_t B = 2, T = 3, C = 4;
  std::vector<float> g = tiny::RandomVector(B * T * C, 1);
  std::fill(g.begin() + T * C, g.begin() + T * C + C, 0.0f);  // a zero token in sequence 1
  std::vector<float> d(g.size());
  for (PerturbNorm norm : {PerturbNorm::kSequence, PerturbNorm::kToken}) {
    FgmPerturbation(g.data(), B, T, C, {0.5f, norm, 1.0f}, d.data());
    const int64_t group = norm == PerturbNorm::kSequence ? T * C : C;
    for (int64_t k = 0; k < B * T * C / group; ++k) {
      double dd = 0, gg = 0, dg = 0;
      for (int64_t i = k * group; i < (k + 1) * group; ++i) dd += d[i] * d[i], gg += g[i] * g[i], dg += d[i] * g[i];
      if (gg == 0) {
        EXPECT_EQ(dd, 0.0) << k;
        continue;
      }
      EXPECT_NEAR(std::sqrt(dd), 0.5, 4 * kF32Eps) << k;
      EXPECT_NEAR(dg / std::sqrt(dd * gg), 1.0, 4 * kF32Eps) << k;  // cosine 1: the same direction
    }
  }
}

TEST(Adversarial, EmbeddingGradientMatchesFiniteDifferences) {
  for (bool qwen : {false, true}) {
    TrainModel m = RoughModel(qwen);
    const Batch b = RandomBatch(2, 5, m.config().vocab, 4);
    Workspace ws;
    const std::vector<float> g = EmbeddingGradient(m, b, ws);
    std::vector<float> delta(g.size(), 0.0f);
    const double scored = (double)ScoredTargets(b);
    auto f = [&] { return PerturbedLoss(m, b, delta.data(), ws) / scored; };
    ExpectGradient(f, delta.data(), delta.size(), g.data(), LossNoise(f(), m.config()), qwen ? "dx qwen" : "dx llama");
  }
}

TEST(Adversarial, PerturbationRaisesTheLossToFirstOrder) {
  TrainModel m = RoughModel(false);
  const Batch b = RandomBatch(3, 6, m.config().vocab, 5);
  Workspace ws;
  const std::vector<float> g = EmbeddingGradient(m, b, ws);
  const double scored = (double)ScoredTargets(b);
  const double clean = PerturbedLoss(m, b, nullptr, ws) / scored;
  for (PerturbNorm norm : {PerturbNorm::kSequence, PerturbNorm::kToken}) {
    for (float eps : {1e-2f, 3e-3f}) {
      std::vector<float> d(g.size());
      FgmPerturbation(g.data(), b.B, b.T, m.config().dim, {eps, norm, 1.0f}, d.data());
      // First order: loss(x + δ) - loss(x) ≈ g·δ = ε Σ_groups ‖g_group‖ > 0.
      double predicted = 0;
      for (size_t i = 0; i < g.size(); ++i) predicted += (double)g[i] * d[i];
      const double rise = PerturbedLoss(m, b, d.data(), ws) / scored - clean;
      EXPECT_GT(predicted, 0.0);
      EXPECT_GT(rise, 0.0) << "eps " << eps;
      // The second-order rest shrinks with ε²: within 10 % of the prediction at these sizes.
      EXPECT_NEAR(rise, predicted, 0.1 * predicted) << "eps " << eps;
    }
  }
}

// The objective's gradient is that of f(θ) = loss(θ; x) + w·loss(θ; x + δ) with δ as the
// objective computed it, held fixed. (Slow: not in the sanitizer build, where
// Distiller.AdversarialObjectiveGradientMatchesFiniteDifferences runs the same objective.)
TEST(Adversarial, CombinedObjectiveGradientMatchesFiniteDifferencesSlow) {
  for (bool qwen : {false, true}) {
    TrainModel m = RoughModel(qwen);
    Batch b = RandomBatch(2, 5, m.config().vocab, 6);
    b.targets[3] = kIgnoreIndex;
    const double scored = (double)ScoredTargets(b);
    const AdversarialOptions opt{0.3f, PerturbNorm::kToken, 0.7f};
    Workspace ws;
    std::vector<float> delta(b.B * b.T * m.config().dim);
    FgmPerturbation(EmbeddingGradient(m, b, ws).data(), b.B, b.T, m.config().dim, opt, delta.data());

    const Objective obj = AdversarialObjective(opt, Perturbable(CrossEntropyLogitLoss(m.config().vocab)));
    m.ZeroGrad();
    const double loss = obj(m, b, (float)(1.0 / scored), ws, 2) / scored;
    Workspace ws2;
    auto f = [&] {
      return (PerturbedLoss(m, b, nullptr, ws2) + opt.weight * PerturbedLoss(m, b, delta.data(), ws2)) / scored;
    };
    EXPECT_NEAR(f(), loss, 1e-6 * loss);
    // The adversarial term is larger than the clean one (it was built to be).
    EXPECT_GT(PerturbedLoss(m, b, delta.data(), ws2), PerturbedLoss(m, b, nullptr, ws2));
    for (const ParamSlice& p : m.slices())
      ExpectGradient(f, m.params().data() + p.offset, p.size, m.grads().data() + p.offset, LossNoise(loss, m.config()),
                     p.name);
  }
  EXPECT_NE(ErrorOf([] { AdversarialObjective({-1.0f, PerturbNorm::kSequence, 1.0f}, nullptr); }).find("epsilon"),
            std::string::npos);
}

TEST(Adversarial, TrainerRunsTheObjective) {
  TrainModel m = RoughModel(false);
  std::mt19937 gen(1);
  std::vector<int32_t> tokens(20 * 9);
  for (int32_t& t : tokens) t = (int32_t)(gen() % 20);
  DataOptions dopt;
  dopt.seq = 8, dopt.val_frac = 0.1;
  const Dataset data = Dataset::FromTokens(tokens, "random", dopt);
  TrainOptions o;
  o.steps = 3, o.batch = 2;
  Trainer plain(m, o), adv(m, o);
  adv.set_objective(AdversarialObjective({0.0f, PerturbNorm::kSequence, 1.0f}, Perturbable(CrossEntropyLogitLoss(20))));
  // ε = 0: the adversarial term repeats the clean one, so the loss doubles and the gradient
  // doubles (AdamW's update is unchanged up to eps: the same parameters after a step).
  const StepStats a = plain.Step(data), c = adv.Step(data);
  EXPECT_NEAR(c.loss, 2 * a.loss, 1e-6 * a.loss);
  EXPECT_NEAR(c.grad_norm, 2 * a.grad_norm, 1e-5 * a.grad_norm);
}

}  // namespace
}  // namespace smelt::train
