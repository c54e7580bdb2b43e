#pragma once
// One entry point for every model format smelt reads: a GGUF file, a Hugging Face folder
// (config.json + safetensors), or a llama2.c checkpoint with its tokenizer .bin.
#include <string>

#include "model/model.h"

namespace smelt {

struct LoadOptions {
  // llama2.c checkpoints keep their vocabulary in a separate .bin; when empty, a single
  // tokenizer.bin / tok*.bin beside the checkpoint is used.
  std::string tokenizer;
};

enum class FileKind { kGguf, kHuggingFace, kLlama2c, kUnknown };

// Detects the kind by content (GGUF magic, a folder with config.json, llama2.c header).
FileKind DetectFileKind(const std::string& path);
std::string_view FileKindName(FileKind k);

// Loads any supported model; throws Error naming the path and the problem.
Model LoadModel(const std::string& path, const LoadOptions& opt = {});

}  // namespace smelt
