#pragma once
// A Llama-family model being trained: every trainable tensor in f32 in one flat parameter
// vector, its gradient in another of the same layout, and the forward/backward pass over a batch
// of token sequences (train/ops.h).
//
// The tensors are the canonical set of model/ (model/weights.h names, GGUF shapes, Q/K rows in
// the order of the config's RopeLayout), so a TrainModel converts to and from a Model without
// renaming or permuting. RoPE frequencies (including rope_freqs.weight or the config's scaling)
// are fixed, not trained.
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "model/model.h"

namespace smelt::train {

// Where one tensor lives in the flat vectors.
struct ParamSlice {
  std::string name;
  int n_dims = 0;
  std::array<int64_t, 4> ne{1, 1, 1, 1};
  size_t offset = 0;
  size_t size = 0;
  bool decay = false;  // weight decay applies (matrices; not norms or biases)
  bool auxiliary = false;  // trained alongside the model (a loss's own parameters), not part of it
};

// B sequences of T tokens: inputs[b·T + t] predicts targets[b·T + t] (kIgnoreIndex: not scored).
struct Batch {
  int64_t B = 0, T = 0;
  std::vector<int32_t> inputs, targets;
};

class TrainModel {
 public:
  // Every tensor of `m` dequantized to f32 (any weight type). Throws Error for a family the
  // training pass does not cover (architectures other than llama/qwen2).
  static TrainModel FromModel(const Model& m);
  // Deterministic scaled-normal initialisation: matrices N(0, 0.02²), the residual outputs
  // (attn_output, ffn_down) scaled by 1/sqrt(2·layers), norms 1, biases 0. The same seed gives
  // the same bits. `vocab` may be empty (no tokenizer); otherwise its size must be c.vocab.
  static TrainModel FromScratch(const ModelConfig& c, const Vocab& vocab, uint64_t seed);

  const ModelConfig& config() const { return config_; }
  const Vocab& vocab() const { return vocab_; }
  const std::vector<ParamSlice>& slices() const { return slices_; }
  std::vector<float>& params() { return params_; }
  const std::vector<float>& params() const { return params_; }
  std::vector<float>& grads() { return grads_; }
  const std::vector<float>& grads() const { return grads_; }
  const std::vector<float>& inv_freq() const { return inv_freq_; }

  // The slice called `name`; throws Error if there is none.
  const ParamSlice& Slice(const std::string& name) const;
  float* Param(const std::string& name) { return params_.data() + Slice(name).offset; }
  const float* Param(const std::string& name) const { return params_.data() + Slice(name).offset; }
  float* Grad(const std::string& name) { return grads_.data() + Slice(name).offset; }
  bool Has(const std::string& name) const;

  // Appends a trained tensor that is not part of the model (a distillation projection, say):
  // the optimizer and checkpoints carry it, ToModel and the forward pass ignore it. Its values
  // start as `init` (its element count must match ne). Throws Error for a name already taken.
  void AddAuxiliary(const std::string& name, std::vector<int64_t> ne, const std::vector<float>& init);

  void ZeroGrad();
  // A Model with copies of the current parameters as f32 tensors, the config and the
  // vocabulary (what the GGUF writer and the runtime take). Keeps rope_freqs.weight when the
  // source had it; auxiliary tensors are left out.
  Model ToModel() const;

 private:
  TrainModel(const ModelConfig& c, const Vocab& v);

  ModelConfig config_;
  Vocab vocab_;
  std::vector<ParamSlice> slices_;
  std::vector<float> params_, grads_;
  std::vector<float> inv_freq_;
  std::vector<float> rope_factors_;  // rope_freqs.weight of the source model, if any
};

// The activations one transformer block keeps for its backward pass (N = B·T rows).
struct BlockActivations {
  std::vector<float> x;             // (N, C) input of the block
  std::vector<float> rstd1, h1;     // attention RMSNorm: 1/rms per row, normed rows
  std::vector<float> q, k, v;       // after bias and RoPE
  std::vector<float> probs;         // (B, H, T, T) attention softmax
  std::vector<float> att;           // (N, H·hd) attention output before attn_output
  std::vector<float> x_mid;         // (N, C) after the attention residual
  std::vector<float> rstd2, h2;     // ffn RMSNorm
  std::vector<float> gate, up, act; // (N, F): gate/up projections and silu(gate)·up
};

// Gradients a loss adds inside the backward pass, per block (null or missing: none): at the
// block's output hidden state (N, C), at its attention probabilities (B, H, T, T; before the
// softmax backward) and at its values v (N, KVH·hd). Distillation losses on a model's
// internals use them (train/distill.h); the buffers belong to the caller.
struct Taps {
  std::vector<const float*> hidden, probs, v;
};

// Buffers of a forward/backward pass, reused across steps (sized on first use per shape).
struct Workspace {
  Taps taps;  // read by Backward; Forward leaves it alone
  std::vector<BlockActivations> blocks;
  std::vector<float> x_final, rstd_final, h_final, logits;  // logits (N, V)
  std::vector<float> dx, dtmp, dh, dq, dk, dv, datt, dgate, dup, dact;
  std::vector<int32_t> positions;
};

// One block: y = x + attn(norm(x)); out = y + ffn(norm(y)). `out` may not alias `x`.
void BlockForward(const TrainModel& m, int layer, const float* x, int64_t B, int64_t T, BlockActivations& a,
                  float* out, std::span<const int32_t> positions, int threads);
// dx (in/out): the gradient at the block's output on entry, at its input on return; adds the
// block's parameter gradients to m's grads.
void BlockBackward(TrainModel& m, int layer, const BlockActivations& a, int64_t B, int64_t T, float* dx,
                   std::span<const int32_t> positions, Workspace& ws, int threads);

// Runs the embeddings, every block, the final norm and the head on a batch's inputs (each
// sequence starting at position 0): leaves every block's activations in ws.blocks, the last
// block's output in ws.x_final and the logits (B·T, vocab) in ws.logits.
void Forward(const TrainModel& m, const Batch& batch, Workspace& ws, int threads);
// Forward with `delta` (B·T, dim) added to the token embeddings before the first block
// (adversarial training, train/adversarial.h); a Backward after it treats delta as a constant.
void ForwardPerturbed(const TrainModel& m, const Batch& batch, const float* delta, Workspace& ws, int threads);
// The backward pass of the Forward just run on `batch`, from ws.logits holding ∂loss/∂logits
// (overwritten by callers after Forward) plus the gradients in ws.taps: adds every parameter
// gradient to m's grads and leaves ∂loss/∂(embedding output) (B·T, dim) in ws.dx.
void Backward(TrainModel& m, const Batch& batch, Workspace& ws, int threads);
// Logits (B·T, vocab) of a batch's inputs (each sequence starting at position 0).
std::vector<float> Logits(const TrainModel& m, const Batch& batch, Workspace& ws, int threads);
// Σ over scored targets of -log softmax(logits)[target], no gradients.
double Loss(const TrainModel& m, const Batch& batch, Workspace& ws, int threads);
// The same sum, and adds grad_scale · ∂(sum)/∂params to m's grads (pass 1 / scored targets for
// the mean loss; several calls accumulate micro-batches).
double ForwardBackward(TrainModel& m, const Batch& batch, float grad_scale, Workspace& ws, int threads);
// Targets of a batch that are scored (not kIgnoreIndex).
int64_t ScoredTargets(const Batch& batch);

}  // namespace smelt::train
