#include "model/weights.h"

#include <fmt/format.h>

#include "core/error.h"

namespace smelt {

void Weights::Add(Tensor t) {
  if (index_.count(t.name)) Fail("duplicate tensor {}", t.name);
  index_[t.name] = tensors_.size();
  tensors_.push_back(std::move(t));
}

const Tensor* Weights::Find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const Tensor& Weights::Get(const std::string& name) const {
  const Tensor* t = Find(name);
  if (!t) Fail("missing tensor {}", name);
  return *t;
}

void Weights::Set(Tensor t) {
  auto it = index_.find(t.name);
  if (it == index_.end()) {
    Add(std::move(t));
  } else {
    tensors_[it->second] = std::move(t);
  }
}

std::string BlockTensorName(int layer, const char* suffix) { return fmt::format("blk.{}.{}", layer, suffix); }

}  // namespace smelt
