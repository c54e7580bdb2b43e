// Fuzz target: GGUF parsing from memory, then every metadata value and every tensor byte is
// read, and the file is offered to the model and vocabulary loaders. Any input must either
// parse or throw smelt::Error; crashes, leaks and sanitizer reports are bugs.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "io/gguf.h"
#include "io/gguf_model.h"

namespace {

// Reads every part of a value through its typed accessors.
size_t TouchValue(const smelt::GgufValue& v) {
  using smelt::GgufType;
  size_t sum = v.ToString(4).size();
  if (!v.is_array()) {
    if (v.type() == GgufType::kString) return sum + v.AsString().size();
    if (v.type() == GgufType::kBool) return sum + v.AsBool();
    return sum + (v.AsFloat() > 0);
  }
  switch (v.elem_type()) {
    case GgufType::kString:
      for (const auto& s : v.AsStrings()) sum += s.size();
      return sum;
    case GgufType::kArray:
      for (const auto& a : v.AsArrays()) sum += TouchValue(a);
      return sum;
    case GgufType::kBool:
      for (uint8_t b : v.raw()) sum += b;
      return sum;
    case GgufType::kF32:
    case GgufType::kF64:
      for (float f : v.AsFloats()) sum += f > 0;
      return sum;
    default:
      try {
        for (int64_t i : v.AsInts()) sum += (size_t)i;
      } catch (const smelt::Error&) {  // a u64 above INT64_MAX
      }
      return sum;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    smelt::GgufFile f = smelt::GgufFile::Parse(data, size, "fuzz.gguf");
    volatile size_t sink = 0;
    for (const auto& kv : f.kvs()) sink = sink + kv.key.size() + TouchValue(kv.value);
    for (const auto& t : f.tensors()) {
      const uint8_t* p = static_cast<const uint8_t*>(t.data);
      size_t sum = 0;
      for (size_t i = 0; i < t.nbytes; ++i) sum += p[i];
      sink = sink + sum;
    }
    try {
      smelt::Model m = smelt::GgufToModel(f);
      sink = sink + m.weights.size();
    } catch (const smelt::Error&) {
    }
    try {
      smelt::Vocab v = smelt::GgufToVocab(f);
      sink = sink + (size_t)v.size();
    } catch (const smelt::Error&) {
    }
  } catch (const smelt::Error&) {
  }
  return 0;
}
