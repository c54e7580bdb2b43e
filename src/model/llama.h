#pragma once
// The Llama-family decoder forward pass (Llama 1/2/3, Mistral, llama2.c models and Qwen2, which
// is this with Q/K/V biases and the NeoX RoPE layout), reference fp32:
//   x = token_embd[token]
//   per layer:  h = rmsnorm(x) · attn_norm
//               q, k, v = h·Wqᵀ (+bq), h·Wkᵀ (+bk), h·Wvᵀ (+bv);  RoPE(q, k) at the position
//               append k, v to the KV cache
//               x += Wo · attention(q, cached k, v)   (causal, GQA: head h reads kv head
//                                                       h / (n_heads / n_kv_heads), scale 1/√head_dim)
//               h = rmsnorm(x) · ffn_norm
//               x += W_down · (silu(W_gate·h) ⊙ W_up·h)
//   logits = rmsnorm(x) · output_norm · Wₒᵤₜᵀ   (output.weight, or token_embd.weight when absent)
// Legend: T tokens in a batch, C = dim, Q = n_heads·head_dim, KV = n_kv_heads·head_dim,
// F = ff, V = vocab.
#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/huge_pages.h"
#include "kernels/attention.h"
#include "kernels/fused.h"
#include "kernels/matmul.h"
#include "kernels/packed.h"
#include "model/config.h"
#include "model/kv_cache.h"
#include "model/model.h"

namespace smelt {

// Per-pair RoPE inverse frequencies (rope_dim / 2 values): base^(-2i/rope_dim) with the model's
// frequency scaling applied. `freq_factors` (rope_dim / 2 values, llama.cpp's rope_freqs.weight)
// divides the frequencies when given; otherwise config.rope_scaling decides: "linear" divides
// by factor, "llama3" applies Meta's rule (wavelengths above original_context / low_freq_factor
// divided by factor, below original_context / high_freq_factor kept, a smooth blend between).
// Throws Error for a scaling type smelt does not implement.
std::vector<float> RopeInvFrequencies(const ModelConfig& c, const float* freq_factors = nullptr);

// Sees the activations of a forward pass (calibration, error reports): called synchronously from
// Forward on the calling thread; pointers are valid only during the call.
class ForwardObserver {
 public:
  virtual ~ForwardObserver() = default;
  // The input rows x: (T, w.ne[0]) of the projection by weight `w` of block `layer` (the output
  // head has layer == n_layers), before any activation rounding. Called once per weight, so
  // wq/wk/wv (and gate/up) report the same rows.
  virtual void OnLinearInput(int layer, const Tensor& w, const float* x, int64_t T) {}
  // The residual stream x: (T, dim) after block `layer`.
  virtual void OnBlockOutput(int layer, const float* x, int64_t T) {}
};

// One token of a batch that may mix sequences: its id, the sequence it extends (an index into the
// caches handed to ForwardBatch) and its position in that sequence.
struct BatchToken {
  int32_t token;
  int32_t seq;
  int64_t pos;
};

// Where a pass starts: at block `block` with that block's input rows `x` (T, dim) given, instead
// of at block 0 with the tokens' embeddings. The blocks before it neither run nor write the cache,
// so a caller that kept their outputs (ForwardObserver::OnBlockOutput) for the same tokens gets
// the full pass's results without recomputing them.
struct ResumeAt {
  int block = 0;
  const float* x = nullptr;  // required where block > 0
};

// How LlamaForward computes; the defaults are the fast path, the alternatives its plain twins
// (tests compare them).
struct ForwardOptions {
  // The fused steps of kernels/fused.h where the weights allow (a packed copy or a quantized dot
  // kernel; q/k/v and gate/up each need one activation type): rmsnorm encoded in the weights'
  // activation type in one pass, q/k/v (and gate/up with SiLU·mul) in one parallel region, the
  // residual adds folded into the attn_output and ffn_down writes; and keys rotated by RoPE as
  // they are written to the cache. The same bits as the plain steps. An observer (which sees
  // f32 inputs) turns the fused products off.
  bool fuse = true;
  // Attention by the online softmax over tiles of keys (kernels/attention.h AttendHeadOnline)
  // instead of the two-pass AttendHead over every key's score.
  bool online_attention = true;
};

class LlamaForward {
 public:
  // Resolves the weights of `model` (kept by reference) and checks that every tensor exists with
  // the expected shape and a readable type; throws Error naming the model and the tensor.
  // `act`: how each projection treats its input (kernels/matmul.h): kGgml rounds it to the weight
  // type's activation type as llama.cpp does; kExact keeps f32.
  // `repack`: with kGgml activations, matrices of a type with a packed kernel on this CPU
  // (kernels/packed.h: Q4_0, IQ4_NL, NF4, Q4_1, Q5_0, Q5_1, Q8_0, the group types and the k-quants but Q6_K, with AVX2) are copied at construction into the packed layout, which
  // every later product uses (the copy costs their bytes in memory and the time of one pass).
  // `opt`: ForwardOptions above.
  explicit LlamaForward(const Model& model, Activations act = Activations::kGgml, bool repack = false,
                        ForwardOptions opt = ForwardOptions());
  ~LlamaForward();

  const ModelConfig& config() const { return model_.config; }
  // RoPE inverse frequencies (rope_dim / 2), the model's rope_freqs.weight or scaling applied.
  const std::vector<float>& rope_inv_freq() const { return inv_freq_; }

  // Runs `tokens` (ids already checked < vocab) at positions pos .. pos+T-1, writing their keys
  // and values into `cache` (which must hold pos+T positions). Writes the logits of every
  // position, (T, V), when all_logits, else of the last one, (V), into `logits`.
  void Forward(std::span<const int32_t> tokens, int64_t pos, KvCache& cache, bool all_logits, int threads,
               float* logits, ResumeAt from = {});

  // Runs a batch of tokens from several sequences in one pass, so each weight is read once for
  // all of them. Every entry's key and value go into caches[seq] at pos (< reserved()); then the
  // entry attends to positions [0, pos] of its sequence: those cached before and those of this
  // batch. So the entries of one sequence need distinct positions, and each position below an
  // entry's must be cached or in the batch (nothing checks what the cache holds). Writes the
  // logits of the entries listed in `outputs` (indices into batch, in that order) as
  // (outputs.size(), V) rows. A token's result does not depend on what else is in the batch.
  void ForwardBatch(std::span<const BatchToken> batch, std::span<KvCache* const> caches,
                    std::span<const int32_t> outputs, int threads, float* logits, ResumeAt from = {});

  // Reports activations of later Forward calls to `o` (nullptr: none). Not owned.
  void set_observer(ForwardObserver* o) { observer_ = o; }

 private:
  struct Layer {
    std::vector<float> attn_norm, ffn_norm;  // (C)
    std::vector<float> bq, bk, bv;           // (Q), (KV), (KV); empty without biases
    const Tensor *wq, *wk, *wv, *wo, *gate, *up, *down;
    // The weights as the fused products read them (w == nullptr: no encoded kernel, the plain
    // MatMul), and whether q/k/v and gate/up can run as one group (one activation type).
    EncodedWeight eq, ek, ev, eo, egate, eup, edown;
    bool qkv_fused = false, ffn_fused = false;
  };

  const Model& model_;
  Activations act_;
  ForwardOptions opt_;
  ForwardObserver* observer_ = nullptr;
  std::vector<Layer> layers_;
  const Tensor* token_embd_;
  const Tensor* output_;
  std::vector<float> output_norm_;  // (C)
  std::vector<float> inv_freq_;     // (rope_dim / 2)
  std::unordered_map<const Tensor*, PackedMatrix> packed_;  // repacked copies of the weights
  EncodedWeight eout_;                                      // the output head for the fused path
  size_t encoded_row_bytes_ = 0;  // the longest encoded input row of any fused product
  int64_t encoded_row_sums_ = 0;  // and its Q8_0 block sums
  int64_t tile_blocks_ = 0, tile_scale_floats_ = 0;  // and its blocks and scales for the AMX tiles (kernels/packed.h)
  int64_t prompt_tokens_cols_ = 0;  // the longest input of a blocked prompt kernel with its own token layout

  // The activation arena: every buffer of a forward pass, sized for the largest batch and thread
  // count seen so far (Fit) and reused, so decoding steps allocate nothing. x, h: (T, C);
  // q, att: (T, Q); k, v: (T, KV); g, u: (T, F); rope_cos/sin: (T, rope_dim / 2); encoded, sums:
  // one encoded input (kernels/fused.h); scratch: per thread, the fused products' tiles or the
  // attention's key/value tiles; online: per (token, head) online-softmax state; seqs: the
  // sequences of a batch with the keys their latest entry reads.
  struct Arena {
    int64_t tokens = 0;
    int threads = 0;
    int64_t thread_floats = 0;
    std::vector<float> x, h, q, k, v, att, g, u, rope_cos, rope_sin, scratch;
    std::vector<uint8_t> encoded;
    std::vector<int32_t> sums;
    std::vector<float> scales;  // the encoded rows' block scales as the AMX tiles read them
    HugePageBuffer pairs;       // and, decoding a few sequences, their block pairs (64-byte aligned)
    std::vector<uint8_t> prompt_tokens;  // PromptTokensBytes(tokens, prompt_tokens_cols_)
    std::vector<OnlineSoftmax> online;
    std::vector<std::pair<int32_t, int64_t>> seqs;
  } arena_;
  std::vector<BatchToken> batch_;  // Forward's tokens as one sequence
  std::vector<int32_t> outputs_;   // Forward's output rows

  // Grows the arena to hold a batch of T tokens run by `threads` threads.
  void Fit(int64_t T, int threads);
  // The distinct sequences of `batch` in order of first appearance, each with the keys its latest
  // entry reads, into arena_.seqs.
  void FindSequences(std::span<const BatchToken> batch);

  // Attention of every entry of `batch` over its sequence's cache: q (T, Q) -> att (T, Q), by the
  // online softmax over key tiles or, with online_attention off, the two-pass one.
  void Attend(int layer, std::span<const BatchToken> batch, std::span<KvCache* const> caches, const float* q,
              float* att, int threads);
  // Online attention of the entries of sequence `seq` among batch entries [first, end) over kv
  // head `kv_head`, a tile of keys and values at a time (up to the latest of those entries'
  // positions): read in place from an f32 cache, decoded into tile_k, tile_v (kAttnTile × head_dim
  // each) from a rounded one; state in the arena.
  void AttendTiles(int layer, std::span<const BatchToken> batch, int64_t first, int64_t end, const KvCache& cache,
                   int32_t seq, int kv_head, const float* q, float* att, float* tile_k, float* tile_v);

  // MatMul of block `layer`'s weight w, reporting its input to the observer first.
  void Project(int layer, const Tensor& w, const float* x, int64_t T, float* y, int threads);
};

}  // namespace smelt
