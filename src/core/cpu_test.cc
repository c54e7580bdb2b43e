// CPU feature detection (CPUID + XGETBV, read directly) against what the kernel reports in
// /proc/cpuinfo and against the compiler runtime's answer for AVX2; the SMELT_MAX_ISA cap.
#include "core/cpu.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace smelt {
namespace {

// The flags of the first processor in /proc/cpuinfo (empty where there is none).
std::set<std::string> ProcCpuFlags() {
  std::ifstream in("/proc/cpuinfo");
  std::set<std::string> flags;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    for (std::string w; words >> w;) flags.insert(w);
    break;
  }
  return flags;
}

TEST(Cpu, FeaturesMatchTheKernelsFlags) {
  const std::set<std::string> flags = ProcCpuFlags();
  if (flags.empty()) GTEST_SKIP() << "no /proc/cpuinfo flags";
  if (std::getenv("SMELT_MAX_ISA")) GTEST_SKIP() << "SMELT_MAX_ISA caps the features";
#if !defined(__x86_64__)
  GTEST_SKIP() << "x86-64 only";
#endif
  const CpuFeatures& f = GetCpuFeatures();
  // Linux clears a flag whose register state it does not save, as our XCR0 check does.
  EXPECT_EQ(f.avx2, flags.count("avx2") == 1);
  EXPECT_EQ(f.fma, flags.count("fma") == 1);
  EXPECT_EQ(f.f16c, flags.count("f16c") == 1);
  EXPECT_EQ(f.avx512f, flags.count("avx512f") == 1);
  EXPECT_EQ(f.avx512bw, flags.count("avx512bw") == 1);
  EXPECT_EQ(f.avx512dq, flags.count("avx512dq") == 1);
  EXPECT_EQ(f.avx512vl, flags.count("avx512vl") == 1);
  EXPECT_EQ(f.avx512_vnni, flags.count("avx512_vnni") == 1);
  EXPECT_EQ(f.avx512_bf16, flags.count("avx512_bf16") == 1);
  EXPECT_EQ(f.avx512_vbmi, flags.count("avx512vbmi") == 1);
  if (f.avx512f) {
    EXPECT_EQ(f.gfni, flags.count("gfni") == 1);
  }
  EXPECT_EQ(f.avx512_vbmi2, flags.count("avx512_vbmi2") == 1);
  EXPECT_EQ(f.avx_vnni, flags.count("avx_vnni") == 1);
  EXPECT_EQ(f.amx_int8, flags.count("amx_tile") == 1 && flags.count("amx_int8") == 1);
  EXPECT_EQ(f.amx_bf16, flags.count("amx_tile") == 1 && flags.count("amx_bf16") == 1);
}

TEST(Cpu, Avx2AgreesWithTheCompilerRuntimeAndKernelPath) {
  EXPECT_EQ(GetCpuFeatures().avx2, CpuHasAvx2());
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (!std::getenv("SMELT_MAX_ISA")) {
    EXPECT_EQ(CpuHasAvx2(), __builtin_cpu_supports("avx2") != 0);
  }
#endif
  const std::string path = KernelPath();
  if (!CpuHasAvx2FmaF16c()) {
    EXPECT_EQ(path, "scalar");
  } else {
    const std::string vnni = CpuHasAmxInt8()      ? "+avx512vnni+amx"
                             : CpuHasAvx512Vnni() ? "+avx512vnni"
                             : CpuHasAvxVnni()    ? "+avxvnni"
                                                  : "";
    EXPECT_EQ(path, "avx2" + vnni);
  }
}

TEST(Cpu, MaxIsaNamesAreOrdered) {
  EXPECT_EQ(ParseIsaCap("scalar"), IsaCap::kScalar);
  EXPECT_EQ(ParseIsaCap("avx2"), IsaCap::kAvx2);
  EXPECT_EQ(ParseIsaCap("avx512"), IsaCap::kAvx512);
  EXPECT_EQ(ParseIsaCap("all"), IsaCap::kAll);
  EXPECT_EQ(ParseIsaCap("sse9"), IsaCap::kAll);
  EXPECT_LT(IsaCap::kAvx2, IsaCap::kAvx512);
  // Under a cap, nothing above it is reported (the cap is read once, at the first question).
  if (const char* cap = std::getenv("SMELT_MAX_ISA")) {
    const CpuFeatures& f = GetCpuFeatures();
    const IsaCap level = ParseIsaCap(cap);
    EXPECT_TRUE(level == IsaCap::kAll || !(f.amx_int8 || f.amx_bf16));
    EXPECT_TRUE(level >= IsaCap::kAvx512 || !(f.avx512f || f.avx512_vnni || f.avx_vnni));
    EXPECT_TRUE(level >= IsaCap::kAvx2 || !(f.avx2 || f.fma || f.f16c));
  }
}

TEST(Cpu, ModelNameIsOneTrimmedLine) {
  const std::string& name = CpuModelName();
  ASSERT_FALSE(name.empty());
  EXPECT_EQ(name.find('\n'), std::string::npos);
  EXPECT_EQ(name.find('\0'), std::string::npos);
  EXPECT_NE(name.front(), ' ');
  EXPECT_NE(name.back(), ' ');
}

}  // namespace
}  // namespace smelt
