#pragma once
// When the kernels split work over OpenMP threads.
#include <cstdint>

namespace smelt {

// Below this many multiply-adds a product runs on one thread: waking the others costs more.
inline constexpr int64_t kMinParallelWork = 1 << 16;

}  // namespace smelt
