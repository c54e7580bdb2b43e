#pragma once
// The reference twin of LlamaForward: a deliberately naive whole-sequence forward pass. No KV
// cache (every position recomputed from the embeddings), an explicit (T, T) causal attention
// matrix, RoPE written as a complex rotation, every weight dequantized up front, all arithmetic
// in double. Slow and simple on purpose: tests compare the fast path against it.
#include <cstdint>
#include <span>
#include <vector>

#include "model/model.h"

namespace smelt {

// Logits (T, vocab) after each of `tokens`, as if they sat at positions 0..T-1.
std::vector<float> NaiveLlamaLogits(const Model& model, std::span<const int32_t> tokens);

}  // namespace smelt
