#pragma once
// Hyper-parameters of a Llama-family decoder (Llama 1/2/3, Mistral, Qwen2, llama2.c models).
#include <cstdint>
#include <string>
#include <vector>

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
  int ff = 0;            // n_ff (SwiGLU hidden size); with layer_ff, the largest layer's
  // Per-layer feed-forward sizes, where they differ (a structured pruning result may keep a
  // different number of channels in each block): n_layers entries, ff their maximum. Empty when
  // every block has `ff`; SetFeedForwardSizes keeps it so.
  std::vector<int> layer_ff;
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
  // The feed-forward size of block `layer`.
  int ff_of(int layer) const { return layer_ff.empty() ? ff : layer_ff[(size_t)layer]; }
};

// Sets the feed-forward size of every block (`sizes`: n_layers entries): one `ff` where they
// are all equal, else layer_ff with ff their maximum. Throws Error naming `source` for a count
// other than n_layers.
void SetFeedForwardSizes(ModelConfig& c, std::vector<int> sizes, const std::string& source);

// Checks that the numbers are positive and consistent (heads divide, kv heads divide heads);
// throws Error naming `source` otherwise.
void ValidateConfig(const ModelConfig& c, const std::string& source);

}  // namespace smelt
