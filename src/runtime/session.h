#pragma once
// A decoding session: one model, its KV cache and the current position. Eval() feeds tokens
// (a whole prompt at once or one at a time) and returns logits.
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "kernels/matmul.h"
#include "model/kv_cache.h"
#include "model/model.h"

namespace smelt {

class LlamaForward;
class ForwardObserver;

struct SessionOptions {
  int threads = 1;  // OpenMP threads for the forward pass (< 1: all hardware threads)
  int context = 0;  // 0: model's config.context
  // kGgml: quantized and f16/bf16 projections see their input rounded as llama.cpp's CPU backend
  // rounds it (formats/activation.h), so log-probs match llama.cpp's on the same file; kExact:
  // the f32 activations as computed.
  Activations activations = Activations::kGgml;
  KvType kv = KvType::kF32;  // element type of the KV cache (model/kv_cache.h)
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
  std::span<const float> Eval(std::span<const int32_t> tokens, bool all_logits = false);

  // Forgets every position (the cache memory is kept).
  void Reset();

  // Reports the activations of later Eval calls (model/llama.h); nullptr: none. Not owned.
  void set_observer(ForwardObserver* o);

  int position() const { return (int)position_; }
  int context() const { return context_; }
  int vocab() const { return model_.config.vocab; }
  int threads() const { return threads_; }
  const Model& model() const { return model_; }

 private:
  const Model& model_;
  int threads_;
  int context_;
  int64_t position_ = 0;
  std::unique_ptr<LlamaForward> forward_;
  std::unique_ptr<KvCache> cache_;
  std::vector<float> logits_;
};

}  // namespace smelt
