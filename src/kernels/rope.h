#pragma once
// Rotary position embedding (RoPE), reference fp32. A head vector of head_dim values has its
// first rope_dim values rotated in pairs; pair i turns by the angle pos * inv_freq[i]:
//   (a, b) -> (a cos - b sin, a sin + b cos)
// Which values form pair i depends on the layout:
//   adjacent (llama.cpp ROPE_TYPE_NORM, llama2.c): (2i, 2i + 1)
//   halves   (llama.cpp ROPE_TYPE_NEOX, HF rotate_half, Qwen2): (i, i + rope_dim / 2)
// Values past rope_dim pass through.
#include <cstdint>
#include <vector>

namespace smelt {

// inv_freq[i] = base^(-2i / rope_dim) for i < rope_dim / 2 (computed in float as llama2.c does).
std::vector<float> RopeBaseFrequencies(int rope_dim, float base);

// cos/sin of pos * inv_freq[i] for i < n_pairs, the angles shared by every head at `pos`.
void RopeAngles(int64_t pos, const float* inv_freq, int n_pairs, float* cos_out, float* sin_out);

// Rotates n_heads consecutive heads of x (each head_dim values) with angles from RopeAngles
// (rope_dim / 2 of them). neox selects the "halves" pairing, else "adjacent".
void ApplyRope(float* x, int n_heads, int head_dim, int rope_dim, const float* cos, const float* sin, bool neox);

// The rotation of one position: its angles (RopeAngles) and the model's pairing.
struct RopeRotation {
  const float* cos;
  const float* sin;
  int rope_dim;
  bool neox;
};

// dst[head_dim] = src rotated (one head; dst may be src): what ApplyRope does to each head, so a
// rotated copy can be written straight to where it is kept (a KV cache row).
void RopeHead(float* dst, const float* src, int head_dim, const RopeRotation& r);

}  // namespace smelt
