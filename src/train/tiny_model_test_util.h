#pragma once
// Small training models and batches for the training tests' gradient checks.
#include <algorithm>
#include <cmath>
#include <random>

#include "train/grad_check_test_util.h"
#include "train/model.h"

namespace smelt::train::testing {

// Two blocks, grouped-query attention; qwen: NeoX RoPE, tied embeddings and q/k/v biases.
inline ModelConfig TinyConfig(bool qwen) {
  ModelConfig c;
  c.arch = qwen ? "qwen2" : "llama";
  c.name = "tiny";
  c.dim = 16, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.head_dim = 4, c.rope_dim = 4, c.ff = 24;
  c.vocab = 20, c.context = 64;
  c.rope_layout = qwen ? RopeLayout::kNeox : RopeLayout::kNormal;
  c.tied_embeddings = qwen;
  c.qkv_bias = qwen;
  return c;
}

// A model whose weights are large enough that every nonlinearity matters (the scratch
// initialisation is nearly linear): matrices N(0, 0.35²), norms 1 ± 0.2, biases N(0, 0.1²).
inline TrainModel RoughModel(const ModelConfig& c, uint32_t seed) {
  TrainModel m = TrainModel::FromScratch(c, Vocab{}, seed);
  std::mt19937 gen(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (const ParamSlice& p : m.slices()) {
    float* w = m.params().data() + p.offset;
    const bool norm = p.name.ends_with("norm.weight"), bias = p.name.ends_with(".bias");
    for (size_t i = 0; i < p.size; ++i) w[i] = norm ? 1.0f + 0.2f * d(gen) : (bias ? 0.1f : 0.35f) * d(gen);
  }
  return m;
}

inline Batch RandomBatch(int64_t B, int64_t T, int vocab, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> tok(0, vocab - 1);
  Batch b{B, T, {}, {}};
  for (int64_t i = 0; i < B * T; ++i) b.inputs.push_back(tok(gen)), b.targets.push_back(tok(gen));
  return b;
}

// The rounding noise of an fp32 loss through `layers` blocks of inner products of length K,
// relative to its size: errors add up like a random walk (sqrt of the operation count).
inline double LossNoise(double loss, const ModelConfig& c) {
  return 16 * kF32Eps * std::sqrt((double)(c.n_layers + 2) * std::max(c.dim, c.ff)) * std::fabs(loss);
}

}  // namespace smelt::train::testing
