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

// The sizes of one block where they may differ per block (ModelConfig::block).
struct BlockShape {
  int n_heads = 0, n_kv_heads = 0, ff = 0;
  int64_t q_dim = 0, kv_dim = 0;
};

struct ModelConfig {
  std::string arch = "llama";  // GGUF general.architecture: "llama", "qwen2"
  std::string name;
  int dim = 0;           // n_embd
  int n_layers = 0;
  int n_heads = 0;        // with layer_kv_heads: the widest block's
  int n_kv_heads = 0;     // with layer_kv_heads: the widest block's
  int head_dim = 0;      // usually dim / n_heads
  int ff = 0;            // n_ff (SwiGLU hidden size); with layer_ff, the largest layer's
  // Per-layer feed-forward sizes, where they differ (a structured pruning result may keep a
  // different number of channels in each block): n_layers entries, ff their maximum. Empty when
  // every block has `ff`; SetFeedForwardSizes keeps it so.
  std::vector<int> layer_ff;
  // Per-layer kv head counts, where they differ (structured head pruning may keep a different
  // number of KV groups in each block): n_layers entries, n_kv_heads their maximum. Every block
  // has n_heads / n_kv_heads query heads per kv head. Empty when uniform; SetKvHeadCounts keeps it so.
  std::vector<int> layer_kv_heads;
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
  // The head counts and widths of block `layer`.
  BlockShape block(int layer) const {
    const int kv = layer_kv_heads.empty() ? n_kv_heads : layer_kv_heads[(size_t)layer];
    const int heads = kv * (n_heads / n_kv_heads);
    return {heads, kv, ff_of(layer), (int64_t)heads * head_dim, (int64_t)kv * head_dim};
  }
  // Whether every block has the same sizes (what llama.cpp, Hugging Face configs and training need).
  bool uniform_blocks() const { return layer_ff.empty() && layer_kv_heads.empty(); }
};

// Sets the feed-forward size of every block (`sizes`: n_layers entries): one `ff` where they
// are all equal, else layer_ff with ff their maximum. Throws Error naming `source` for a count
// other than n_layers.
void SetFeedForwardSizes(ModelConfig& c, std::vector<int> sizes, const std::string& source);

// Sets the kv head count of every block (`kv_heads`: n_layers entries), keeping the query heads
// per kv head: one n_kv_heads where they are all equal, else layer_kv_heads with n_kv_heads their
// maximum; n_heads follows. Throws Error naming `source` for a count other than n_layers.
void SetKvHeadCounts(ModelConfig& c, std::vector<int> kv_heads, const std::string& source);

// Checks that the numbers are positive and consistent (heads divide, kv heads divide heads);
// throws Error naming `source` otherwise.
void ValidateConfig(const ModelConfig& c, const std::string& source);

}  // namespace smelt
