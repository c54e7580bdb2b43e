#pragma once
// A decoding session: one model, one KV cache per sequence and each sequence's position. Eval()
// feeds tokens to sequence 0 (a whole prompt at once or one at a time) and returns logits;
// Decode() runs tokens of several sequences in one forward pass, so the weights are read once
// for all of them (batched decoding); Truncate() takes back positions (speculative decoding).
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kernels/matmul.h"
#include "model/kv_cache.h"
#include "model/llama.h"
#include "model/model.h"

namespace smelt {

class LlamaForward;
class ForwardObserver;
struct BatchToken;

struct SessionOptions {
  int threads = 1;  // OpenMP threads for the forward pass (< 1: all hardware threads)
  int context = 0;  // 0: model's config.context
  // kGgml: quantized and f16/bf16 projections see their input rounded as llama.cpp's CPU backend
  // rounds it (formats/activation.h), so log-probs match llama.cpp's on the same file; kExact:
  // the f32 activations as computed.
  Activations activations = Activations::kGgml;
  KvType kv = KvType::kF32;  // element type of the KV cache (model/kv_cache.h)
  int sequences = 1;         // independent sequences, each with its own cache of `context` positions
  // Copy the weights that have a packed kernel on this CPU into its layout at start-up
  // (kernels/packed.h; model/llama.h): faster products for their bytes in memory.
  bool repack = true;
};

// One entry of Session::Decode: a token, the sequence it extends, and whether its logits are wanted.
struct SeqToken {
  int32_t token = 0;
  int32_t seq = 0;
  bool logits = true;
};

class Session {
 public:
  // Keeps a reference to `model`. Checks every weight (shape, readable type) and throws Error
  // naming the model and the offending tensor.
  Session(const Model& model, SessionOptions opt);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Runs `tokens` at the current position and appends them to the KV cache. Returns n·vocab
  // logits (row i: the distribution after tokens[i]) when all_logits, else the last position's
  // vocab logits. The span stays valid until the next Eval/Reset. Throws Error (and changes
  // nothing) for an empty batch, a token id outside the vocabulary or a batch that would run
  // past the context.
  // With `from`, the pass starts at block from.block with its input rows from.x (tokens.size()
  // rows of dim values; model/llama.h ResumeAt).
  std::span<const float> Eval(std::span<const int32_t> tokens, bool all_logits = false, ResumeAt from = {});

  // Appends each entry's token to its sequence, entries of one sequence taking consecutive
  // positions from the sequence's current one in batch order, all in one forward pass (in
  // chunks of at most 512 entries). Returns the logits of the entries with `logits` set, in batch
  // order, as (count, vocab) rows; a token's logits are those Eval would give it alone (bit for
  // bit for the quantized types and, up to 16 entries, for every type: kernels/matmul.h). Valid
  // until the next Eval/Decode/Reset. Throws Error (and changes nothing) for an empty batch, a
  // sequence outside [0, sequences()), a token id outside the vocabulary or a sequence that would
  // run past the context.
  std::span<const float> Decode(std::span<const SeqToken> batch);

  // Forgets positions [n, position(seq)) of sequence `seq`: its next token goes at position n.
  // Throws Error unless 0 <= n <= position(seq).
  void Truncate(int seq, int n);

  // Forgets every position of every sequence (the cache memory is kept).
  void Reset();

  // Saves sequence `seq`'s KV state to `path` (model/kv_state.h): `tokens` are the tokens at its
  // positions, tokens.size() == position(seq). Throws Error naming the path.
  void SaveState(const std::string& path, std::span<const int32_t> tokens, int seq = 0) const;
  // Loads a state saved by a session on the same model and KV cache type into sequence `seq`,
  // which then continues after the saved tokens (returned). Throws Error naming the path, and
  // changes nothing, when the file does not fit.
  std::vector<int32_t> LoadState(const std::string& path, int seq = 0);

  // Reports the activations of later Eval calls (model/llama.h); nullptr: none. Not owned.
  void set_observer(ForwardObserver* o);

  int position(int seq = 0) const { return (int)positions_.at(seq); }
  int sequences() const { return (int)caches_.size(); }
  int context() const { return context_; }
  int vocab() const { return model_.config.vocab; }
  int threads() const { return threads_; }
  const Model& model() const { return model_; }

 private:
  const Model& model_;
  int threads_;
  int context_;
  // Throws Error("WHAT: sequence SEQ does not exist ...") unless 0 <= seq < sequences().
  void CheckSequence(const char* what, int64_t seq) const;

  std::vector<int64_t> positions_;  // per sequence
  std::unique_ptr<LlamaForward> forward_;
  std::vector<std::unique_ptr<KvCache>> caches_;
  std::vector<KvCache*> cache_ptrs_;
  std::vector<float> logits_;
  std::vector<BatchToken> batch_;  // scratch of Decode
  std::vector<int64_t> next_;      // Decode's positions after the batch
  std::vector<int32_t> outputs_;
};

}  // namespace smelt
