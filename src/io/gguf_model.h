#pragma once
// GGUF <-> smelt::Model for the llama.cpp architectures smelt runs: "llama" (Llama 1/2/3,
// Mistral, llama2.c conversions) and "qwen2" (NeoX RoPE, q/k/v biases).
//
// Loading reads the hyper-parameters from `{arch}.*` keys, the vocabulary from
// `tokenizer.ggml.*` (with llama.cpp's defaults for missing keys), and every tensor zero-copy
// from the mapping; it checks that each tensor the architecture needs is present with the right
// shape. Model::info receives the descriptive string keys: `general.*` (under the same key),
// `tokenizer.chat_template`, and `smelt.*` (under the key without "smelt.").
//
// Saving writes what llama.cpp's converters write (same keys, key types and tensor layout), so
// llama.cpp loads the result; 2-D weights are converted row by row while writing.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "io/gguf.h"
#include "model/model.h"

namespace smelt {

Model LoadGgufModel(const std::string& path);
// The tokenizer of a GGUF file (model or vocabulary-only file).
Vocab LoadGgufVocab(const std::string& path);

struct GgufSaveOptions {
  // Convert 2-D weight matrices to `type`; 1-D tensors (norms, biases) are always written as
  // F32, as llama.cpp expects. nullopt keeps each matrix's type. A matrix whose rows do not
  // split into whole blocks of `type` is written as F16 instead; the fallback is recorded in the
  // file as `smelt.type_fallback` ("name=f16, ..."). general.file_type names the most common
  // matrix type actually written.
  std::optional<DType> type;
};
void SaveGgufModel(const Model& m, const std::string& path, const GgufSaveOptions& opt);
// The writer SaveGgufModel fills (keys and tensors, nothing written yet), for files that add
// their own keys and tensors beside a model's (training checkpoints). `path` names errors.
GgufWriter GgufModelWriter(const Model& m, const std::string& path, const GgufSaveOptions& opt);

// --- lower-level pieces ---------------------------------------------------------------------

// Model / vocabulary from an already parsed file (tensors share the file's mapping).
Model GgufToModel(const GgufFile& f);
Vocab GgufToVocab(const GgufFile& f);

// llama.cpp's `general.file_type` (enum llama_ftype) for a file mostly of type t: ALL_F32 = 0,
// MOSTLY_F16 = 1, MOSTLY_Q4_0 = 2, ... MOSTLY_BF16 = 32; nullopt for types with no such value.
std::optional<uint32_t> LlamaFileType(DType t);

// A tensor of the canonical (GGUF) set for a config: name, shape in ggml order, and whether a
// model must have it (output.weight of a tied model, biases without qkv_bias and Llama 3's
// rope_freqs.weight are optional, but checked when present).
struct ModelTensorSpec {
  std::string name;
  std::vector<int64_t> ne;
  bool required;
};
std::vector<ModelTensorSpec> ModelTensorSpecs(const ModelConfig& c);

// Throws Error("SOURCE: missing tensor NAME" / "SOURCE: tensor NAME has shape [..], expected
// [..]") unless `w` holds every tensor config `c` needs with the right shape, and each tensor's
// byte count matches its type and shape.
void CheckModelTensors(const ModelConfig& c, const Weights& w, const std::string& source);

}  // namespace smelt
