#include "runtime/session.h"

#include <algorithm>
#include <thread>

#include "core/error.h"
#include "model/kv_cache.h"
#include "model/llama.h"

namespace smelt {
namespace {

// Tokens run through the forward pass together: bounds the scratch memory of a long prompt.
constexpr int64_t kMaxBatch = 512;

}  // namespace

Session::Session(const Model& model, SessionOptions opt)
    : model_(model),
      threads_(opt.threads >= 1 ? opt.threads : (int)std::max(1u, std::thread::hardware_concurrency())),
      context_(opt.context > 0 ? opt.context : model.config.context) {
  forward_ = std::make_unique<LlamaForward>(model, opt.activations);
  if (context_ <= 0) Fail("{}: context length {} must be positive", model.source, context_);
  cache_ = std::make_unique<KvCache>(model.config.n_layers, model.config.n_kv_heads, model.config.head_dim, context_,
                                     opt.kv);
}

Session::~Session() = default;

std::span<const float> Session::Eval(std::span<const int32_t> tokens, bool all_logits) {
  const int64_t n = (int64_t)tokens.size(), V = model_.config.vocab;
  if (n == 0) Fail("Eval: no tokens to evaluate");
  if (position_ + n > context_)
    Fail("context of {} tokens is full: {} tokens at position {} do not fit", context_, n, position_);
  for (int32_t id : tokens)
    if (id < 0 || id >= V) Fail("token id {} is outside the vocabulary (size {})", id, V);

  cache_->Reserve(position_ + n);
  logits_.resize((all_logits ? n : 1) * V);
  for (int64_t done = 0; done < n; done += kMaxBatch) {
    const int64_t m = std::min(kMaxBatch, n - done);
    // Without all_logits every chunk writes its last position's logits over the previous ones.
    float* out = all_logits ? logits_.data() + done * V : logits_.data();
    forward_->Forward(tokens.subspan(done, m), position_, *cache_, all_logits, threads_, out);
    position_ += m;
  }
  return logits_;
}

void Session::set_observer(ForwardObserver* o) { forward_->set_observer(o); }

void Session::Reset() { position_ = 0; }

}  // namespace smelt
