#pragma once
// Hugging Face model folders: config.json + model.safetensors (or shards with
// model.safetensors.index.json) + tokenizer.json / tokenizer.model.
//
// Architectures: LlamaForCausalLM, MistralForCausalLM (loaded as llama), Qwen2ForCausalLM.
// Tensors are renamed to smelt's canonical (GGUF) names. HF Llama/Mistral checkpoints keep Q/K
// rows in the rotate_half (NeoX) order; llama.cpp's converter permutes them into its interleaved
// order (RopeLayout::kNormal), and so does LoadHfModel (SaveHfModel undoes it). Qwen2 keeps HF
// order and runs with RopeLayout::kNeox, as in llama.cpp.
#include <cstdint>
#include <string>

#include "core/tensor.h"
#include "model/config.h"
#include "model/model.h"

namespace smelt {

// Loads a model folder. F32/F16/BF16 matrices stay zero-copy views of the mapped shards, except
// the permuted Q/K (heap copies); 1-D tensors (norms, biases) are converted to F32 as llama.cpp
// stores them. Throws Error naming the folder/file and the problem.
Model LoadHfModel(const std::string& dir);

struct HfSaveOptions {
  DType type = DType::kF32;    // F32, F16 or BF16 for every tensor
  uint64_t max_shard_bytes = 0;  // 0 = one model.safetensors
};

// Writes config.json, generation_config.json, model.safetensors (or model-0000i-of-0000n shards
// + model.safetensors.index.json), tokenizer.json and tokenizer_config.json. Quantized tensors
// are dequantized. The folder is built beside `dir` and renamed into place at the end; `dir`
// must not exist or be empty.
void SaveHfModel(const Model& m, const std::string& dir, const HfSaveOptions& opt);

// ---- pieces, exposed for tests and other importers ----------------------------------------

// Parses config.json text into a ModelConfig (validated). `source` names the file in errors.
// Unknown architectures are refused by name.
ModelConfig ParseHfConfig(const std::string& json_text, const std::string& source);
// config.json text for `c` (LlamaForCausalLM or Qwen2ForCausalLM), weights stored as `type`.
std::string HfConfigJson(const ModelConfig& c, DType type, int32_t bos, int32_t eos);

// Row permutation of a Q or K projection (rows = n_head * head_dim, any row-based type) or its
// bias, llama.cpp convert_hf_to_gguf.py permute(): within each head, HF row s*head_dim/2 + j
// (s in {0,1}) becomes row 2j + s. n_head: attention heads for Q, kv heads for K.
// Returns a heap copy with the same name.
Tensor PermuteQkHfToGguf(const Tensor& t, int n_head);
// The inverse (GGUF interleaved order -> HF rotate_half order).
Tensor PermuteQkGgufToHf(const Tensor& t, int n_head);

// Canonical name for an HF tensor name ("model.layers.3.mlp.up_proj.weight" ->
// "blk.3.ffn_up.weight"); empty if the name is not a known Llama-family tensor.
std::string HfToCanonicalName(const std::string& hf_name);
// HF name for a canonical name; empty if unknown.
std::string CanonicalToHfName(const std::string& name);

}  // namespace smelt
