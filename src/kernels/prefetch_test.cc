// The prefetch distance: chosen from the CPU's model name, overridden only by a well-formed
// SMELT_PREFETCH_DISTANCE, and the process's own distance is the choice for this CPU.
#include "kernels/prefetch.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "core/cpu.h"

namespace smelt {
namespace {

TEST(Prefetch, DistanceFollowsTheCpuAndAWellFormedOverride) {
  EXPECT_EQ(ChoosePrefetchDistance("Intel(R) Xeon(R) Processor", nullptr), kPrefetchDistanceIntel);
  EXPECT_EQ(ChoosePrefetchDistance("AMD EPYC 7B13 64-Core Processor", nullptr), kPrefetchDistanceAmd);
  EXPECT_EQ(ChoosePrefetchDistance("unknown", ""), kPrefetchDistanceAmd);
  EXPECT_EQ(ChoosePrefetchDistance("AMD EPYC", "3072"), 3072u);
  EXPECT_EQ(ChoosePrefetchDistance("Intel(R) Xeon(R)", "0"), 0u);
  for (const char* bad : {"100", "-64", "64k", "131072", "abc"})
    EXPECT_EQ(ChoosePrefetchDistance("Intel(R) Xeon(R)", bad), kPrefetchDistanceIntel) << bad;
  EXPECT_EQ(kPrefetchDistance, ChoosePrefetchDistance(CpuModelName(), std::getenv("SMELT_PREFETCH_DISTANCE")));
  EXPECT_EQ(MaskPrefetchDistance() % 64, 0u);
}

}  // namespace
}  // namespace smelt
