#pragma once
// Adversarial training on the input embeddings (the fast gradient method of Miyato et al. 2017,
// "Adversarial Training Methods for Semi-Supervised Text Classification"): each micro-batch
// runs once on its embeddings x and once on x + δ, δ = ε·g/‖g‖ with g = ∂loss/∂x from the first
// pass (normalised per sequence or per token), and minimises loss(x) + w·loss(x + δ). δ is held
// constant in the second backward pass, as in the method.
#include <cstdint>
#include <functional>

#include "train/model.h"
#include "train/trainer.h"

namespace smelt::train {

enum class PerturbNorm { kSequence, kToken };

struct AdversarialOptions {
  float epsilon = 0.0f;  // ‖δ‖ of each sequence (or token)
  PerturbNorm norm = PerturbNorm::kSequence;
  float weight = 1.0f;   // w, the adversarial term's weight
};

// δ (B·T, C) = ε·g/‖g‖ over each sequence's T·C values (kSequence) or each row's C (kToken); zero
// where g is zero. Norms are accumulated in double.
void FgmPerturbation(const float* g, int64_t B, int64_t T, int64_t C, const AdversarialOptions& opt, float* delta);

// A loss on a micro-batch's logits (N, V): returns the sum of its terms and overwrites the
// logits with scale · ∂(sum)/∂logits.
using LogitLoss = std::function<double(const Batch& b, float* logits, float scale, int threads)>;
// Next-token cross-entropy (CrossEntropyForwardBackward).
LogitLoss CrossEntropyLogitLoss(int64_t vocab);

// A whole micro-batch objective (forward, loss, backward: see Objective) whose student input
// embeddings get `delta` (B·T, dim) added, or nothing when delta is null; ws.dx ends holding
// scale · ∂loss/∂(embeddings). The adversarial objective calls it clean, then perturbed, on the
// same batch. A LogitLoss becomes one through Perturbable; distillation (train/distill.h) is one.
using PerturbableLoss =
    std::function<double(TrainModel& m, const Batch& b, const float* delta, float scale, Workspace& ws, int threads)>;
PerturbableLoss Perturbable(LogitLoss loss);

// The objective loss(x) + w·loss(x + δ) (see above) for Trainer::set_objective. Throws Error for
// ε < 0 or w < 0.
Objective AdversarialObjective(const AdversarialOptions& opt, PerturbableLoss loss);

}  // namespace smelt::train
