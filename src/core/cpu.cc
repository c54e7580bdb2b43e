#include "core/cpu.h"

#include <cstdint>
#include <cstdlib>
#include <fstream>

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define SMELT_X86_CPUID 1
#endif

namespace smelt {
namespace {

#ifdef SMELT_X86_CPUID
struct Regs {
  uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};

// CPUID leaf/subleaf; all zero when the leaf is beyond the CPU's maximum.
Regs Cpuid(uint32_t leaf, uint32_t subleaf = 0) {
  Regs r;
  if (!__get_cpuid_count(leaf, subleaf, &r.eax, &r.ebx, &r.ecx, &r.edx)) return Regs{};
  return r;
}

// XCR0: which register states the operating system saves (only valid when OSXSAVE is set).
uint64_t Xcr0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((uint64_t)hi << 32) | lo;
}

bool Bit(uint32_t reg, int bit) { return (reg >> bit) & 1u; }

CpuFeatures Detect() {
  CpuFeatures f;
  const Regs l1 = Cpuid(1);
  if (!Bit(l1.ecx, 27)) return f;  // no OSXSAVE: the OS does not save AVX state
  const uint64_t xcr0 = Xcr0();
  const bool ymm = (xcr0 & 0x6) == 0x6;    // XMM and YMM state
  const bool zmm = (xcr0 & 0xe0) == 0xe0;  // opmask, ZMM0-15 upper halves, ZMM16-31
  if (!ymm || !Bit(l1.ecx, 28)) return f;  // AVX itself is needed by everything below
  const Regs l7 = Cpuid(7, 0), l7s1 = Cpuid(7, 1);
  f.fma = Bit(l1.ecx, 12);
  f.f16c = Bit(l1.ecx, 29);
  f.avx2 = Bit(l7.ebx, 5);
  f.avx_vnni = Bit(l7s1.eax, 4);
  // AMX: TILECFG and TILEDATA state (XCR0 bits 17, 18), AMX-TILE and AMX-INT8 (leaf 7 EDX 24, 25).
  f.amx_int8 = (xcr0 & 0x60000) == 0x60000 && Bit(l7.edx, 24) && Bit(l7.edx, 25);
  f.amx_bf16 = (xcr0 & 0x60000) == 0x60000 && Bit(l7.edx, 24) && Bit(l7.edx, 22);
  if (zmm) {
    f.avx512f = Bit(l7.ebx, 16);
    f.avx512bw = f.avx512f && Bit(l7.ebx, 30);
    f.avx512dq = f.avx512f && Bit(l7.ebx, 17);
    f.avx512vl = f.avx512f && Bit(l7.ebx, 31);
    f.avx512_vnni = f.avx512f && Bit(l7.ecx, 11);
    f.avx512_bf16 = f.avx512f && Bit(l7s1.eax, 5);
    f.avx512_vbmi = f.avx512f && Bit(l7.ecx, 1);
    f.gfni = f.avx512f && Bit(l7.ecx, 8);  // only the 512-bit encoding is used
    f.avx512_vbmi2 = f.avx512f && Bit(l7.ecx, 6);
  }
  return f;
}

std::string Brand() {
  if (Cpuid(0x80000000).eax < 0x80000004) return {};
  std::string s;
  for (uint32_t leaf = 0x80000002; leaf <= 0x80000004; ++leaf) {
    const Regs r = Cpuid(leaf);
    for (uint32_t v : {r.eax, r.ebx, r.ecx, r.edx})
      for (int i = 0; i < 4; ++i) s.push_back((char)((v >> (8 * i)) & 0xff));
  }
  return s;
}
#else
CpuFeatures Detect() { return {}; }
std::string Brand() { return {}; }
#endif

std::string Trim(std::string s) {
  const auto keep = [](char c) { return c != ' ' && c != '\t' && c != '\0'; };
  while (!s.empty() && !keep(s.back())) s.pop_back();
  size_t b = 0;
  while (b < s.size() && !keep(s[b])) ++b;
  return s.substr(b);
}

std::string ModelName() {
  std::string name = Trim(Brand());
  if (!name.empty()) return name;
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) != 0) continue;
    const size_t colon = line.find(':');
    if (colon != std::string::npos) return Trim(line.substr(colon + 1));
  }
  return "unknown";
}

// Linux keeps the AMX tile data state off until a process asks for it (since 5.16).
bool RequestTileData() {
#if defined(__linux__) && defined(SYS_arch_prctl)
  constexpr long kReqXcompPerm = 0x1023, kXfeatureTileData = 18;
  return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureTileData) == 0;
#else
  return false;
#endif
}

// The features the dispatch may use: what Detect() found, capped by SMELT_MAX_ISA where it is set
// (read once).
CpuFeatures Capped(CpuFeatures f) {
  const char* cap = std::getenv("SMELT_MAX_ISA");
  const IsaCap level = cap ? ParseIsaCap(cap) : IsaCap::kAll;
  if (level < IsaCap::kAll) f.amx_int8 = f.amx_bf16 = false;
  if (level < IsaCap::kAvx512) {
    f.avx512f = f.avx512bw = f.avx512dq = f.avx512vl = false;
    f.avx512_vnni = f.avx512_bf16 = f.avx512_vbmi = f.avx512_vbmi2 = f.gfni = false;
    f.avx_vnni = false;
  }
  if (level < IsaCap::kAvx2) f = CpuFeatures{};
  return f;
}

// Whether Linux granted this process the tile data state (asked once, on the first call).
bool TileDataGranted() {
  static const bool granted = RequestTileData();
  return granted;
}

}  // namespace

bool CpuHasAmxInt8() {
  static const bool usable =
      CpuHasAvx512Vnni() && GetCpuFeatures().avx512dq && GetCpuFeatures().amx_int8 && TileDataGranted();
  return usable;
}

bool CpuHasAmxBf16() {
  const CpuFeatures& f = GetCpuFeatures();
  static const bool usable = CpuHasAvx512F() && f.avx512_bf16 && f.amx_bf16 && TileDataGranted();
  return usable;
}

IsaCap ParseIsaCap(const std::string& s) {
  if (s == "scalar") return IsaCap::kScalar;
  if (s == "avx2") return IsaCap::kAvx2;
  if (s == "avx512") return IsaCap::kAvx512;
  return IsaCap::kAll;  // "all", or a value smelt does not know: nothing is capped
}

const CpuFeatures& GetCpuFeatures() {
  static const CpuFeatures f = Capped(Detect());
  return f;
}

const std::string& CpuModelName() {
  static const std::string name = ModelName();
  return name;
}

}  // namespace smelt

namespace smelt {

const char* KernelPath() {
  if (!CpuHasAvx2FmaF16c()) return "scalar";
  if (CpuHasAmxInt8()) return "avx2+avx512vnni+amx";
  if (CpuHasAvx512Vnni()) return "avx2+avx512vnni";
  return CpuHasAvxVnni() ? "avx2+avxvnni" : "avx2";
}

}  // namespace smelt
