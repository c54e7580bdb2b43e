#pragma once
// A loaded model: hyper-parameters, weights in the canonical (GGUF) naming, and its vocabulary.
#include <map>
#include <string>

#include "model/config.h"
#include "model/vocab.h"
#include "model/weights.h"

namespace smelt {

enum class ModelFormat { kGguf, kHuggingFace, kLlama2c, kSynthetic };

struct Model {
  ModelConfig config;
  Weights weights;
  Vocab vocab;
  std::string source;                       // path it was loaded from
  ModelFormat format = ModelFormat::kGguf;
  std::map<std::string, std::string> info;  // descriptive metadata (general.name, recipe, smelt version ...)
};

}  // namespace smelt
