#pragma once
// The Llama-family forward pass (model/llama.h) run over a whole set of sequences one projection
// group at a time, in f32 with BLAS GEMMs: the order layer-by-layer calibration needs
// (compress/activation_stats.h). Each block is run in four stages, each over every sequence:
//
//   1. h = rmsnorm(x)·attn_norm                        -> inputs of attn_q, attn_k, attn_v
//   2. q, k, v = h·W{q,k,v}ᵀ (+b), RoPE, causal GQA attention -> input of attn_output (kept)
//   3. x += att·Woᵀ;  h = rmsnorm(x)·ffn_norm          -> inputs of ffn_gate, ffn_up
//   4. g = silu(h·W_gateᵀ) ⊙ h·W_upᵀ                   -> input of ffn_down (kept);  x += g·W_downᵀ
//
// and after the last block the head's input rmsnorm(x)·output_norm. After a stage has reported
// every sequence's input of a group, the observer may replace the group's tensors in the model
// (quantize them); the next stage reads them from the model after that call. So each projection
// is fitted to inputs that already went through every quantized projection before it ("true
// sequential" GPTQ), and the pass costs one forward pass.
//
// Memory: the residual stream of every sequence (N·L·dim floats), one block's attention outputs
// (N·L·q_dim) and FFN activations (N·L·ff), and one block's weights in f32; nothing grows with
// depth. Each sequence starts at position 0 with an empty cache; the output logits are not
// computed. Up to GEMM summation order this is LlamaForward with Activations::kExact.
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "model/model.h"

namespace smelt {

class StagedObserver {
 public:
  virtual ~StagedObserver() = default;
  // The rows x: (T, columns) that every weight of `weights` (one input shared by all of them)
  // reads, for one sequence of block `layer` (layer == n_layers: the output head). Called
  // concurrently for different sequences from up to StagedOptions::threads workers; `slot`
  // (< threads) tells them apart, so an observer keeps one accumulator per slot. Must not throw.
  virtual void OnGroupInput(int slot, int layer, std::span<const std::string> weights, const float* x, int64_t T,
                            int64_t columns) = 0;
  // Every sequence's input of the group has been reported (called on the calling thread). The
  // observer may replace the group's tensors in the model given to RunStaged (same names and
  // shapes, any readable type).
  virtual void OnGroupDone(int layer, std::span<const std::string> weights) = 0;
};

struct StagedOptions {
  int threads = 1;  // workers, each running whole sequences with single-threaded GEMMs
  std::function<void(int done, int total)> progress;  // per block (and the head), optional
};

// Runs `sequences` (token ids < vocab, each non-empty) through `model` as above. `model` is read
// again after every OnGroupDone, so the observer may change the tensors of the group it was told
// about (the caller owns the model; RunStaged does not modify it). Throws Error for a model the
// reference forward pass would reject.
void RunStaged(const Model& model, const std::vector<std::vector<int32_t>>& sequences, StagedObserver& observer,
               const StagedOptions& opt);

}  // namespace smelt
