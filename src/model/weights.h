#pragma once
// The weights of a model, by canonical name. Canonical names and layouts are GGUF's
// (llama.cpp's): token_embd.weight, blk.N.attn_q.weight, ..., output_norm.weight, output.weight;
// Q/K rows in llama.cpp's order for the model's RopeLayout. Importers (HF, llama2.c) convert to
// this on load and exporters convert back, so everything between speaks one dialect.
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace smelt {

class Weights {
 public:
  // Adds a tensor; throws Error if the name is already present.
  void Add(Tensor t);
  const Tensor* Find(const std::string& name) const;
  // Throws Error("missing tensor NAME") if absent.
  const Tensor& Get(const std::string& name) const;
  // Replaces (or adds) a tensor with the same name, keeping its position.
  void Set(Tensor t);
  bool Contains(const std::string& name) const { return index_.count(name) != 0; }
  // Tensors in insertion order (the order they are written in).
  const std::vector<Tensor>& all() const { return tensors_; }
  size_t size() const { return tensors_.size(); }

 private:
  std::vector<Tensor> tensors_;
  std::map<std::string, size_t> index_;
};

// Canonical tensor names.
std::string BlockTensorName(int layer, const char* suffix);  // ("attn_q.weight", 3) -> "blk.3.attn_q.weight"

}  // namespace smelt
