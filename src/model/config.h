#pragma once
// Hyper-parameters of a Llama-family decoder (Llama 1/2/3, Mistral, Qwen2, llama2.c models).
#include <cstdint>
#include <string>

namespace smelt {

enum class RopeLayout {
  kNormal,  // pairs (2i, 2i+1) rotate together: llama.cpp LLAMA_ROPE_TYPE_NORM, llama2.c
  kNeox,    // pairs (i, i + d/2): HF rotate_half, llama.cpp LLAMA_ROPE_TYPE_NEOX (Qwen2)
};

struct RopeScaling {
  std::string type;  // "" (none), "llama3", "linear"
  float factor = 1.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int original_context = 8192;
};

struct ModelConfig {
  std::string arch = "llama";  // GGUF general.architecture: "llama", "qwen2"
  std::string name;
  int dim = 0;           // n_embd
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;      // usually dim / n_heads
  int ff = 0;            // n_ff (SwiGLU hidden size)
  int vocab = 0;
  int context = 2048;    // trained context length
  float norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  int rope_dim = 0;      // rotated dims per head (== head_dim for all supported families)
  RopeLayout rope_layout = RopeLayout::kNormal;
  RopeScaling rope_scaling;
  bool tied_embeddings = false;  // no output.weight: the head reuses token_embd
  bool qkv_bias = false;         // Qwen2

  int kv_dim() const { return n_kv_heads * head_dim; }
  int q_dim() const { return n_heads * head_dim; }
};

// Checks that the numbers are positive and consistent (heads divide, kv heads divide heads);
// throws Error naming `source` otherwise.
void ValidateConfig(const ModelConfig& c, const std::string& source);

}  // namespace smelt
