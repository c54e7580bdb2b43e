#include "kernels/prefetch.h"

#include <cstdlib>
#include <cstring>

#include "core/cpu.h"

namespace smelt {

size_t ChoosePrefetchDistance(const std::string& cpu_model, const char* env_override) {
  if (env_override && *env_override) {
    char* end = nullptr;
    const unsigned long long v = std::strtoull(env_override, &end, 10);
    if (*end == '\0' && v % 64 == 0 && v <= 65536) return (size_t)v;
  }
  return cpu_model.find("Intel") != std::string::npos ? kPrefetchDistanceIntel : kPrefetchDistanceAmd;
}

const size_t kPrefetchDistance = ChoosePrefetchDistance(CpuModelName(), std::getenv("SMELT_PREFETCH_DISTANCE"));

}  // namespace smelt
