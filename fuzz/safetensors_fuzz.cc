// libFuzzer target: safetensors parsing from memory. Any input must either parse into tensors
// whose bytes lie inside the input (or a private copy) or throw smelt::Error; never crash.
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/error.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    smelt::SafetensorsFile f = smelt::ParseSafetensors(std::span<const uint8_t>(data, size), "fuzz.safetensors", nullptr);
    uint64_t total = 0;
    volatile uint8_t sink = 0;
    for (const smelt::Tensor& t : f.tensors) {
      const uint8_t* p = static_cast<const uint8_t*>(t.data);
      for (size_t i = 0; i < t.nbytes; ++i) sink = sink ^ p[i];  // every byte must be readable
      total += t.nbytes;
    }
    SMELT_ASSERT(total <= size);  // the tensors tile the data, which lies inside the input
  } catch (const smelt::Error&) {
  }
  return 0;
}
