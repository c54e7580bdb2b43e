#pragma once
// Knowledge distillation: the training objective (train/trainer.h's Objective) of a student
// that learns from one or more frozen f32 teachers run on the same batch.
//
// The loss of a micro-batch, summed over its scored tokens (targets not kIgnoreIndex), is
//   α · CE(student, targets) + (1 - α) · soft(student, teachers)          (Hinton et al.)
//   + w_feature · Σ_pairs feature + w_attention · Σ_pairs attention
//   + w_value · Σ_pairs value relation + w_relation · Σ_pairs relation
// where `soft` is a soft-label divergence of train/soft_label.h (forward, reverse or skew KL at
// temperature τ, τ² scaled) and the other terms compare the student's internals with a
// teacher's at the (student layer, teacher, teacher layer) pairs of the layer map. Each term is
// per token (a mean over its elements), so the weights are comparable:
//   feature    hidden states (a block's output): (1/C_t)‖W h_s − h_t‖² (MSE) or 1 − cos(W h_s, h_t);
//              W (C_t, C_s) is a learned projection, an auxiliary parameter of the student
//              (TrainModel::AddAuxiliary), present only when the widths differ (identity start);
//   attention  (1/G) Σ_g KL(P_t,g ‖ P_s,g) over each query row's causal attention distribution;
//              heads are compared in G = gcd(H_s, H_t) groups, each the mean distribution of its
//              H/G consecutive heads (equal head counts: head by head; otherwise the finest
//              grouping both models share);
//   value      MiniLM's value relation: per relation head r (R of them, splitting the KV width
//              of each model into R slices), KL(softmax_t ‖ softmax_s) of each row of
//              softmax(V_r V_rᵀ / sqrt(d_r)), causally masked as attention is, averaged over r;
//   relation   token-similarity (Gram) matrices of hidden states per sequence (Tung & Mori's
//              similarity-preserving loss with cosine similarities, so widths need not match):
//              G = Ĥ Ĥᵀ with unit rows, (1/T²) ‖G_s − G_t‖²_F per sequence, times its scored tokens.
// Several teachers: the soft target is Σ_k w_k softmax(z_k / τ) with weights per micro-batch
// (equal; teacher confidence, the mean max probability over the scored rows, normalised to sum
// 1; or teacher loss, softmax(−CE_k) of each teacher's mean CE on the batch). Layer-wise terms
// use the teacher their pair names (per-layer teacher assignment). Gradients reach the student's
// internals through the training pass's taps (model.h: Taps).
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "train/adversarial.h"
#include "train/data.h"
#include "train/model.h"
#include "train/soft_label.h"
#include "train/trainer.h"

namespace smelt::train {

enum class FeatureLoss { kMse, kCosine };
enum class TeacherWeighting { kAverage, kConfidence, kLoss };
// "mse" | "cosine"; "avg" | "confidence" | "loss". Parse throws Error for another name.
FeatureLoss ParseFeatureLoss(const std::string& name);
TeacherWeighting ParseTeacherWeighting(const std::string& name);

struct DistillOptions {
  float alpha = 0.0f;  // weight of the hard-label cross-entropy; 1 − α weighs the soft labels
  SoftLabelOptions soft = {};
  float feature_weight = 0.0f, attention_weight = 0.0f, value_weight = 0.0f, relation_weight = 0.0f;
  FeatureLoss feature_loss = FeatureLoss::kMse;
  // "uniform": every student block s ↔ teacher block ⌊(s+1)·L_t/L_s⌋ − 1 of teacher 0; "last":
  // the last blocks only; or explicit pairs "s:t,s:t@k" (@k: teacher k, default 0).
  std::string layer_map = "uniform";
  TeacherWeighting weighting = TeacherWeighting::kAverage;
  int value_relation_heads = 0;  // R (0: the student's KV head count)
};

// One layer-wise comparison: student block `student` against block `layer` of teacher `teacher`.
struct LayerPair {
  int student = 0, teacher = 0, layer = 0;
};
// Throws Error for a malformed spec or a block or teacher out of range.
std::vector<LayerPair> ParseLayerMap(const std::string& spec, int student_layers,
                                     const std::vector<int>& teacher_layers);

// ---- the terms, each on plain arrays with its exact gradient (distill_test.cc checks them
// against finite differences of the definitions above). Rows whose target is kIgnoreIndex do not
// count. Each returns the term's sum and ADDS scale · ∂sum/∂(student input) to the gradient
// arrays (when not null).
// Feature: hs (N, Cs), ht (N, Ct), W (Ct, Cs) or null (then Cs == Ct); dW (Ct, Cs).
double FeatureTerm(const float* hs, int64_t Cs, const float* ht, int64_t Ct, const float* W,
                   std::span<const int32_t> targets, FeatureLoss kind, float scale, float* dhs, float* dW,
                   int threads);
// Attention: ps (B, Hs, T, T) and pt (B, Ht, T, T) causal softmax rows.
double AttentionTerm(const float* ps, int Hs, const float* pt, int Ht, int64_t B, int64_t T,
                     std::span<const int32_t> targets, float scale, float* dps);
// Value relation: vs (B·T, Ws), vt (B·T, Wt) split into R relation heads each.
double ValueRelationTerm(const float* vs, int64_t Ws, const float* vt, int64_t Wt, int R, int64_t B, int64_t T,
                         std::span<const int32_t> targets, float scale, float* dvs);
// Relation: hs (B·T, Cs), ht (B·T, Ct).
double RelationTerm(const float* hs, int64_t Cs, const float* ht, int64_t Ct, int64_t B, int64_t T,
                    std::span<const int32_t> targets, float scale, float* dhs);

// The per-term sums of the last micro-batch (unweighted) and the teacher weights used.
struct DistillTerms {
  double ce = 0, soft = 0, feature = 0, attention = 0, value = 0, relation = 0;
  std::vector<double> teacher_weights;
};

class Distiller {
 public:
  // The teachers are frozen: their parameters never change and they get no gradients.
  // Throws Error when there is no teacher or an option is out of range.
  Distiller(std::vector<TrainModel> teachers, const DistillOptions& opt);

  // Checks the student against every teacher (same vocabulary; layer map in range; value
  // relation heads dividing both KV widths) and adds the feature projections the student
  // lacks (auxiliary parameters "distill.proj.S.K.T"; a resumed student already has them).
  // Call before the Trainer is made, so the optimizer covers them.
  void Prepare(TrainModel& student) const;

  // The objective: the loss above on one micro-batch (see Objective).
  double operator()(TrainModel& student, const Batch& b, float grad_scale, Workspace& ws, int threads) {
    return Run(student, b, nullptr, grad_scale, ws, threads);
  }
  // The same with `delta` (B·T, dim) added to the student's input embeddings (null: none; see
  // train/adversarial.h's PerturbableLoss); the teachers always see the clean batch. Teachers are
  // frozen, so a batch of the same tokens as the last one reuses their pass. last_terms() keeps
  // the clean pass's terms.
  double Run(TrainModel& student, const Batch& b, const float* delta, float grad_scale, Workspace& ws, int threads);

  const std::vector<TrainModel>& teachers() const { return teachers_; }
  const DistillOptions& options() const { return opt_; }
  const std::vector<LayerPair>& pairs() const { return pairs_; }
  const DistillTerms& last_terms() const { return terms_; }

 private:
  std::vector<TrainModel> teachers_;
  DistillOptions opt_;
  std::vector<LayerPair> pairs_;
  int pairs_for_layers_ = -1;           // the student depth pairs_ was made for (it may grow)
  std::vector<int32_t> teacher_inputs_;  // the batch the teachers' workspaces hold
  int64_t teacher_B_ = 0, teacher_T_ = 0;
  std::vector<Workspace> tws_;  // one per teacher
  std::vector<std::vector<float>> d_hidden_, d_probs_, d_v_;
  std::vector<float> soft_target_, dlogits_;
  DistillTerms terms_;
};

// The distiller as a Trainer objective (shared: the trainer's copy and the caller's are one).
Objective DistillObjective(std::shared_ptr<Distiller> d);
// The distiller as the loss of adversarial training (AdversarialObjective).
PerturbableLoss DistillLoss(std::shared_ptr<Distiller> d);

// Mean KL(teacher ‖ model) per scored target and mean cross-entropy over `batches`, forward
// only (τ = 1). Throws Error when the vocabularies differ.
struct KlCe {
  double kl = 0, ce = 0;
  int64_t scored = 0;
};
KlCe MeasureKlCe(const TrainModel& m, const TrainModel& teacher, const std::vector<Batch>& batches, int threads);

// MeasureKlCe's KL over the validation batches (how far the student's next-token distribution
// is from the teacher's), with OpenBLAS on one thread.
double ValidationKld(const TrainModel& student, const TrainModel& teacher, const Dataset& data, int64_t batch,
                     int64_t max_batches, int threads);

}  // namespace smelt::train
