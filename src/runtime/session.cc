#include "runtime/session.h"

#include <algorithm>
#include <thread>

#include "core/error.h"
#include "model/kv_cache.h"
#include "model/kv_state.h"
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
  forward_ = std::make_unique<LlamaForward>(model, opt.activations, opt.repack);
  if (context_ <= 0) Fail("{}: context length {} must be positive", model.source, context_);
  if (opt.sequences < 1) Fail("{}: {} sequences (need at least 1)", model.source, opt.sequences);
  const ModelConfig& c = model.config;
  std::vector<int> kv_heads(c.n_layers);
  for (int l = 0; l < c.n_layers; ++l) kv_heads[l] = c.block(l).n_kv_heads;
  for (int s = 0; s < opt.sequences; ++s) {
    caches_.push_back(std::make_unique<KvCache>(kv_heads, c.head_dim, context_, opt.kv));
    cache_ptrs_.push_back(caches_.back().get());
  }
  positions_.assign(opt.sequences, 0);
}

Session::~Session() = default;

std::span<const float> Session::Eval(std::span<const int32_t> tokens, bool all_logits, ResumeAt from) {
  const int64_t n = (int64_t)tokens.size(), V = model_.config.vocab;
  if (n == 0) Fail("Eval: no tokens to evaluate");
  if (positions_[0] + n > context_)
    Fail("context of {} tokens is full: {} tokens at position {} do not fit", context_, n, positions_[0]);
  for (int32_t id : tokens)
    if (id < 0 || id >= V) Fail("token id {} is outside the vocabulary (size {})", id, V);

  caches_[0]->Reserve(positions_[0] + n);
  logits_.resize((all_logits ? n : 1) * V);
  for (int64_t done = 0; done < n; done += kMaxBatch) {
    const int64_t m = std::min(kMaxBatch, n - done);
    // Without all_logits every chunk writes its last position's logits over the previous ones.
    float* out = all_logits ? logits_.data() + done * V : logits_.data();
    ResumeAt chunk = from;
    if (chunk.x) chunk.x += done * model_.config.dim;
    forward_->Forward(tokens.subspan(done, m), positions_[0], *caches_[0], all_logits, threads_, out, chunk);
    positions_[0] += m;
  }
  return logits_;
}

std::span<const float> Session::Decode(std::span<const SeqToken> batch) {
  const int64_t n = (int64_t)batch.size(), V = model_.config.vocab, S = sequences();
  if (n == 0) Fail("Decode: no tokens to evaluate");
  std::vector<int64_t>& next = next_;
  next = positions_;  // within its capacity after the first call
  batch_.resize(n);
  int64_t n_out = 0;
  for (int64_t i = 0; i < n; ++i) {
    const SeqToken& e = batch[i];
    CheckSequence("Decode", e.seq);
    if (e.token < 0 || e.token >= V) Fail("token id {} is outside the vocabulary (size {})", e.token, V);
    if (next[e.seq] >= context_)
      Fail("context of {} tokens is full: sequence {} has no room at position {}", context_, e.seq, next[e.seq]);
    batch_[i] = {e.token, e.seq, next[e.seq]++};
    n_out += e.logits;
  }
  for (int64_t s = 0; s < S; ++s) caches_[s]->Reserve(next[s]);
  logits_.resize(n_out * V);
  float* out = logits_.data();
  for (int64_t done = 0; done < n; done += kMaxBatch) {
    const int64_t m = std::min(kMaxBatch, n - done);
    outputs_.clear();
    for (int64_t i = 0; i < m; ++i)
      if (batch[done + i].logits) outputs_.push_back((int32_t)i);
    forward_->ForwardBatch(std::span(batch_).subspan(done, m), cache_ptrs_, outputs_, threads_, out);
    out += outputs_.size() * V;
  }
  positions_.swap(next);
  return logits_;
}

void Session::CheckSequence(const char* what, int64_t seq) const {
  if (seq < 0 || seq >= sequences()) Fail("{}: sequence {} does not exist (the session has {})", what, seq, sequences());
}

void Session::Truncate(int seq, int n) {
  CheckSequence("Truncate", seq);
  if (n < 0 || n > positions_[seq])
    Fail("Truncate: sequence {} holds {} positions, cannot keep {}", seq, positions_[seq], n);
  positions_[seq] = n;
}

void Session::SaveState(const std::string& path, std::span<const int32_t> tokens, int seq) const {
  CheckSequence("SaveState", seq);
  if ((int64_t)tokens.size() != positions_[seq])
    Fail("{}: {} tokens given for a sequence at position {}", path, tokens.size(), positions_[seq]);
  SaveKvState(path, model_, *caches_[seq], tokens);
}

std::vector<int32_t> Session::LoadState(const std::string& path, int seq) {
  CheckSequence("LoadState", seq);
  std::vector<int32_t> tokens = LoadKvState(path, model_, *caches_[seq]);
  positions_[seq] = (int64_t)tokens.size();
  return tokens;
}

void Session::set_observer(ForwardObserver* o) { forward_->set_observer(o); }

void Session::Reset() { std::fill(positions_.begin(), positions_.end(), 0); }

}  // namespace smelt
