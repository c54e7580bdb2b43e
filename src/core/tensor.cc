#include "core/tensor.h"

#include <fmt/format.h>

#include "core/error.h"

namespace smelt {

Tensor MakeF32Tensor(std::string name, std::vector<int64_t> shape_ne, std::vector<float> values) {
  SMELT_ASSERT(!shape_ne.empty() && shape_ne.size() <= 4);
  Tensor t;
  t.name = std::move(name);
  t.type = DType::kF32;
  t.n_dims = (int)shape_ne.size();
  for (size_t i = 0; i < shape_ne.size(); ++i) t.ne[i] = shape_ne[i];
  SMELT_ASSERT((size_t)t.nelements() == values.size());
  auto buf = std::make_shared<std::vector<float>>(std::move(values));
  t.data = buf->data();
  t.nbytes = buf->size() * sizeof(float);
  t.owner = std::shared_ptr<const void>(buf, buf->data());
  return t;
}

Tensor TensorFromBytes(const Tensor& like, DType type, std::vector<uint8_t> bytes) {
  auto buf = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
  Tensor out = like;
  out.type = type;
  out.data = buf->data();
  out.nbytes = buf->size();
  out.owner = std::shared_ptr<const void>(buf, buf->data());
  out.mapping = nullptr;
  out.mapping_size = 0;
  return out;
}

std::string ShapeString(const Tensor& t) {
  std::string s = "[";
  for (int i = 0; i < t.n_dims; ++i) s += fmt::format("{}{}", i ? ", " : "", t.ne[i]);
  return s + "]";
}

}  // namespace smelt
