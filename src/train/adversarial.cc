#include "train/adversarial.h"

#include <cmath>
#include <memory>
#include <vector>

#include "core/error.h"
#include "train/ops.h"

namespace smelt::train {

void FgmPerturbation(const float* g, int64_t B, int64_t T, int64_t C, const AdversarialOptions& opt, float* delta) {
  // One group of values shares a norm: a whole sequence or one token's row.
  const int64_t group = opt.norm == PerturbNorm::kSequence ? T * C : C;
  const int64_t groups = B * T * C / group;
  for (int64_t k = 0; k < groups; ++k) {
    const float* gk = g + k * group;
    double ss = 0.0;
    for (int64_t i = 0; i < group; ++i) ss += (double)gk[i] * gk[i];
    const double f = ss > 0.0 ? opt.epsilon / std::sqrt(ss) : 0.0;
    for (int64_t i = 0; i < group; ++i) delta[k * group + i] = (float)(f * gk[i]);
  }
}

LogitLoss CrossEntropyLogitLoss(int64_t vocab) {
  return [vocab](const Batch& b, float* logits, float scale, int threads) {
    return CrossEntropyForwardBackward(logits, b.targets, vocab, scale, threads);
  };
}

PerturbableLoss Perturbable(LogitLoss loss) {
  return [loss = std::move(loss)](TrainModel& m, const Batch& b, const float* delta, float scale, Workspace& ws,
                                  int threads) {
    if (delta) {
      ForwardPerturbed(m, b, delta, ws, threads);
    } else {
      Forward(m, b, ws, threads);
    }
    const double sum = loss(b, ws.logits.data(), scale, threads);
    Backward(m, b, ws, threads);
    return sum;
  };
}

Objective AdversarialObjective(const AdversarialOptions& opt, PerturbableLoss loss) {
  if (!(opt.epsilon >= 0.0f) || !(opt.weight >= 0.0f))
    Fail("adversarial training: epsilon {} and weight {} must not be negative", opt.epsilon, opt.weight);
  auto delta = std::make_shared<std::vector<float>>();  // the objective's own buffer
  return [opt, loss = std::move(loss), delta](TrainModel& m, const Batch& b, float scale, Workspace& ws,
                                              int threads) {
    const double clean = loss(m, b, nullptr, scale, ws, threads);
    // ws.dx = scale · ∂loss/∂x; scale > 0 does not change the direction.
    const int64_t C = m.config().dim;
    delta->resize((size_t)(b.B * b.T * C));
    FgmPerturbation(ws.dx.data(), b.B, b.T, C, opt, delta->data());
    const double adv = loss(m, b, delta->data(), scale * opt.weight, ws, threads);
    return clean + (double)opt.weight * adv;
  };
}

}  // namespace smelt::train
