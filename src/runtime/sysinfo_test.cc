// The memory bandwidth probe: its checksum against a brute-force sum, its passes and their
// summary, the same sum from any number of threads, and errors for impossible requests.
#include "runtime/sysinfo.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "core/error.h"

namespace smelt {
namespace {

TEST(Sysinfo, ChecksumIsTheSumOfTheWords) {
  for (size_t words : {0, 1, 2, 3, 7, 8, 1000, 1001, 65537}) {
    uint64_t naive = 0;
    for (size_t i = 0; i < words; ++i) naive += i;
    EXPECT_EQ(ReadBandwidthChecksum(words), naive) << words;
  }
  // Past 2^32 words n(n-1) overflows 64 bits before the halving; the sum must still be exact
  // mod 2^64, as a 128-bit product says.
  for (uint64_t n : {(uint64_t{1} << 33) + 1, (uint64_t{1} << 33) + 2}) {
    const unsigned __int128 exact = (unsigned __int128)n * (n - 1) / 2;
    EXPECT_EQ(ReadBandwidthChecksum(n), (uint64_t)exact) << n;
  }
}

TEST(Sysinfo, BandwidthPassesAndSummary) {
  for (int threads : {1, 2}) {
    const Bandwidth b = MeasureReadBandwidth({.mib = 8, .repetitions = 3, .threads = threads});
    EXPECT_EQ(b.threads, threads);
    EXPECT_EQ(b.bytes, size_t{8} << 20);
    EXPECT_EQ(b.checksum, ReadBandwidthChecksum(b.bytes / 8));
    ASSERT_EQ(b.gb_per_s.size(), 3u);
    for (double g : b.gb_per_s) EXPECT_GT(g, 0);
    EXPECT_EQ(b.best, *std::max_element(b.gb_per_s.begin(), b.gb_per_s.end()));
    EXPECT_NEAR(b.mean, std::accumulate(b.gb_per_s.begin(), b.gb_per_s.end(), 0.0) / 3, 1e-12 * b.best);
    EXPECT_LE(b.mean, b.best);
  }
}

TEST(Sysinfo, BandwidthRejectsEmptyRequests) {
  EXPECT_THROW(MeasureReadBandwidth({.mib = 0, .repetitions = 1, .threads = 1}), Error);
  EXPECT_THROW(MeasureReadBandwidth({.mib = 1, .repetitions = 0, .threads = 1}), Error);
  EXPECT_THROW(MeasureReadBandwidth({.mib = 1, .repetitions = 1, .threads = 0}), Error);
}

TEST(Sysinfo, SystemInfoIsFilledIn) {
  const SystemInfo s = GetSystemInfo();
  EXPECT_FALSE(s.cpu.empty());
  EXPECT_GE(s.logical_cores, 1);
  EXPECT_EQ(s.kernel_path, KernelPath());
  EXPECT_FALSE(s.blas_core.empty());
  EXPECT_GE(s.blas_threads, 1);
  EXPECT_GE(s.omp_max_threads, 1);
}

// Cache sizes as sysfs writes them; anything else reads as unknown (0).
TEST(Sysinfo, CacheSizesParseAsSysfsWritesThem) {
  EXPECT_EQ(ParseCacheSize("491520K"), 491520ull * 1024);
  EXPECT_EQ(ParseCacheSize("32M"), 32ull << 20);
  EXPECT_EQ(ParseCacheSize("2G"), 2ull << 30);
  EXPECT_EQ(ParseCacheSize("1024"), 1024u);
  for (const char* bad : {"", "K", "-5K", "12X", "12KB", "99999999999999999999K"}) EXPECT_EQ(ParseCacheSize(bad), 0u) << bad;
}

// The transparent huge page mode is the bracketed word of sysfs's line; without one it is unknown.
TEST(Sysinfo, HugePageModeIsTheBracketedWord) {
  EXPECT_EQ(ParseThpMode("always [madvise] never"), "madvise");
  EXPECT_EQ(ParseThpMode("[always] madvise never\n"), "always");
  EXPECT_EQ(ParseThpMode("always madvise [never]"), "never");
  for (const char* bad : {"", "always madvise never", "[madvise", "madvise]"}) EXPECT_EQ(ParseThpMode(bad), "") << bad;
}

}  // namespace
}  // namespace smelt
