// libFuzzer target: llama2.c checkpoint parsing from memory (legacy and version-1 headers).
// Any input must either give a model whose tensors lie inside the input or throw smelt::Error.
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/error.h"
#include "io/llama2c.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    smelt::Model m = smelt::ParseLlama2cCheckpoint(std::span<const uint8_t>(data, size), "fuzz.bin", nullptr);
    for (const smelt::Tensor& t : m.weights.all()) {
      const uint8_t* p = static_cast<const uint8_t*>(t.data);
      SMELT_ASSERT(p >= data && p + t.nbytes <= data + size);
      SMELT_ASSERT(t.nbytes == (size_t)t.nelements() * 4);
      volatile float first = t.as<float>()[0], last = t.as<float>()[t.nelements() - 1];
      (void)first;
      (void)last;
    }
  } catch (const smelt::Error&) {
  }
  return 0;
}
