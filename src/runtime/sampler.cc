#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace smelt {
namespace {

// Index of the largest value, lowest index on ties.
int32_t ArgMax(std::span<const float> v) {
  int32_t best = 0;
  for (int32_t i = 1; i < (int32_t)v.size(); ++i)
    if (v[i] > v[best]) best = i;
  return best;
}

// llama2.c run.c's RNG: xorshift64* state update, top 32 bits of the product.
uint32_t Llama2cRandomU32(uint64_t& state) {
  state ^= state >> 12;
  state ^= state << 25;
  state ^= state >> 27;
  return (uint32_t)((state * 0x2545F4914F6CDD1Dull) >> 32);
}

float Llama2cRandomF32(uint64_t& state) { return (float)(Llama2cRandomU32(state) >> 8) / 16777216.0f; }

}  // namespace

Sampler::Sampler(SamplerOptions o) : opt_(o), state_(o.seed) {
  // xorshift never leaves state 0 (run.c would have used the clock there); pick a fixed one.
  if (opt_.llama2c_compat && state_ == 0) state_ = 0x853c49e6748fea9bull;
}

double Sampler::NextUniform() {
  // splitmix64 (Steele, Lea, Flood 2014): a counter through a 64-bit finalizer.
  state_ += 0x9E3779B97F4A7C15ull;
  uint64_t z = state_;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (double)(z >> 11) * 0x1.0p-53;
}

int32_t Sampler::Sample(std::span<const float> logits, std::span<const int32_t> history) {
  SMELT_ASSERT(!logits.empty());
  if (opt_.llama2c_compat) return SampleLlama2c(logits);
  const int32_t n = (int32_t)logits.size();

  probs_.assign(logits.begin(), logits.end());  // penalized logits, by id
  if (opt_.repeat_penalty != 1.0f && opt_.repeat_last_n != 0 && !history.empty()) {
    const size_t window =
        opt_.repeat_last_n < 0 ? history.size() : std::min(history.size(), (size_t)opt_.repeat_last_n);
    std::vector<int32_t> seen(history.end() - window, history.end());
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    for (int32_t id : seen) {
      if (id < 0 || id >= n) continue;
      float& l = probs_[id];
      l = l > 0.0f ? l / opt_.repeat_penalty : l * opt_.repeat_penalty;
    }
  }
  if (opt_.temperature <= 0.0f) return ArgMax(probs_);

  candidates_.resize(n);
  for (int32_t i = 0; i < n; ++i) candidates_[i] = {i, probs_[i]};
  auto better = [](const Candidate& a, const Candidate& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  };
  // top-k: the k best, sorted.
  if (opt_.top_k > 0 && opt_.top_k < n) {
    std::partial_sort(candidates_.begin(), candidates_.begin() + opt_.top_k, candidates_.end(), better);
    candidates_.resize(opt_.top_k);
  } else if (opt_.top_p < 1.0f) {
    std::sort(candidates_.begin(), candidates_.end(), better);
  }
  // top-p: the shortest best-first prefix whose probability (softmax at temperature 1) reaches top_p.
  if (opt_.top_p < 1.0f) {
    const float max = candidates_[0].logit;
    double total = 0.0;
    for (const Candidate& c : candidates_) total += std::exp((double)c.logit - max);
    double cum = 0.0;
    for (size_t i = 0; i < candidates_.size(); ++i) {
      cum += std::exp((double)candidates_[i].logit - max) / total;
      if (cum >= opt_.top_p) {
        candidates_.resize(i + 1);
        break;
      }
    }
  }
  // min-p: p >= min_p · p_max  <=>  logit >= max_logit + log(min_p).
  float max = candidates_[0].logit;
  for (const Candidate& c : candidates_) max = std::max(max, c.logit);
  if (opt_.min_p > 0.0f) {
    const double floor = max + std::log((double)opt_.min_p);
    std::erase_if(candidates_, [&](const Candidate& c) { return (double)c.logit < floor; });
  }
  // temperature, then one draw from the distribution that is left.
  std::vector<double> weight(candidates_.size());
  double total = 0.0;
  for (size_t i = 0; i < candidates_.size(); ++i)
    total += weight[i] = std::exp(((double)candidates_[i].logit - max) / opt_.temperature);
  const double r = NextUniform() * total;
  double cdf = 0.0;
  for (size_t i = 0; i < candidates_.size(); ++i) {
    cdf += weight[i];
    if (r < cdf) return candidates_[i].id;
  }
  return candidates_.back().id;
}

int32_t Sampler::SampleLlama2c(std::span<const float> logits) {
  const int32_t n = (int32_t)logits.size();
  if (opt_.temperature == 0.0f || n == 1) return ArgMax(logits);
  // softmax(logits / temperature) in f32, exactly as run.c computes it.
  probs_.resize(n);
  for (int32_t i = 0; i < n; ++i) probs_[i] = logits[i] / opt_.temperature;
  float max = probs_[0];
  for (int32_t i = 1; i < n; ++i)
    if (probs_[i] > max) max = probs_[i];
  float sum = 0.0f;
  for (int32_t i = 0; i < n; ++i) {
    probs_[i] = std::exp(probs_[i] - max);
    sum += probs_[i];
  }
  for (int32_t i = 0; i < n; ++i) probs_[i] /= sum;
  const float coin = Llama2cRandomF32(state_);

  if (opt_.top_p <= 0.0f || opt_.top_p >= 1.0f) {  // sample_mult
    float cdf = 0.0f;
    for (int32_t i = 0; i < n; ++i) {
      cdf += probs_[i];
      if (coin < cdf) return i;
    }
    return n - 1;
  }
  // sample_topp: drop tokens below (1 - top_p) / (n - 1), which cannot be in the nucleus, sort
  // the rest best first, cut after the cumulative probability exceeds top_p, draw within it.
  const float cutoff = (1.0f - opt_.top_p) / (float)(n - 1);
  candidates_.clear();  // .logit holds the probability here
  for (int32_t i = 0; i < n; ++i)
    if (probs_[i] >= cutoff) candidates_.push_back({i, probs_[i]});
  std::stable_sort(candidates_.begin(), candidates_.end(),
                   [](const Candidate& a, const Candidate& b) { return a.logit > b.logit; });
  float cumulative = 0.0f;
  size_t last = candidates_.size() - 1;
  for (size_t i = 0; i < candidates_.size(); ++i) {
    cumulative += candidates_[i].logit;
    if (cumulative > opt_.top_p) {
      last = i;
      break;
    }
  }
  const float r = coin * cumulative;
  float cdf = 0.0f;
  for (size_t i = 0; i <= last; ++i) {
    cdf += candidates_[i].logit;
    if (r < cdf) return candidates_[i].id;
  }
  return candidates_[last].id;
}

}  // namespace smelt
