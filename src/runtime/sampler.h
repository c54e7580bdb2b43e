#pragma once
// Picking the next token from logits. With temperature 0 the choice is greedy (argmax, lowest id
// on ties). Otherwise, in llama.cpp's order: repetition penalty, top-k, top-p (nucleus), min-p,
// temperature, then a draw from a seeded RNG (splitmix64): the same seed and inputs give the
// same tokens on any machine.
//
// llama2c_compat follows llama2.c run.c's sampler exactly instead (softmax of logits /
// temperature in f32, its xorshift64* coin, sample_topp with the (1 - top_p) / (n - 1) cutoff),
// so `run -t T -p P -s SEED` samples can be reproduced. It uses only temperature, top_p and seed.
#include <cstdint>
#include <span>
#include <vector>

namespace smelt {

struct SamplerOptions {
  float temperature = 0;     // 0: greedy
  int top_k = 0;             // keep the k most likely tokens; 0: all
  float top_p = 1;           // keep the smallest set whose probability reaches top_p; 1: all
  float min_p = 0;           // keep tokens with p >= min_p · p_max; 0: all
  float repeat_penalty = 1;  // llama.cpp style: logit > 0 ? logit / p : logit · p; 1: off
  int repeat_last_n = 64;    // window of history the penalty looks at; 0: off, < 0: all
  uint64_t seed = 0;
  bool llama2c_compat = false;  // reproduce llama2.c run.c's sampler (see above)
};

class Sampler {
 public:
  explicit Sampler(SamplerOptions o);

  // Next token given the logits (vocab values) and the tokens so far (for the penalty).
  int32_t Sample(std::span<const float> logits, std::span<const int32_t> history);

  const SamplerOptions& options() const { return opt_; }

 private:
  struct Candidate {
    int32_t id;
    float logit;
  };
  int32_t SampleLlama2c(std::span<const float> logits);
  double NextUniform();  // [0, 1), 53 bits

  SamplerOptions opt_;
  uint64_t state_;                     // splitmix64 counter, or llama2.c's xorshift state
  std::vector<Candidate> candidates_;  // scratch
  std::vector<float> probs_;           // scratch
};

}  // namespace smelt
