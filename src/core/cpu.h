#pragma once
// Run-time CPU feature detection for the few kernels that have a SIMD twin of a scalar
// reference, and for reports (`smelt sysinfo`). Every answer is computed once (function-local
// static const) and never changes.
#include <string>

namespace smelt {

// SIMD extensions the CPU has and the operating system saves across context switches (a
// feature whose register state XCR0 does not enable counts as absent). All false off x86-64.
struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512dq = false;
  bool avx512vl = false;
  bool avx512_vnni = false;
  bool avx512_bf16 = false;
  bool avx512_vbmi = false;   // byte permutes across a register (vpermb, vpmultishiftqb)
  bool gfni = false;          // Galois-field byte affine transforms (vgf2p8affineqb)
  bool avx512_vbmi2 = false;  // byte expand/compress (vpexpandb)
  bool avx_vnni = false;  // the VEX-encoded VNNI of Alder Lake / Zen 5 (no AVX-512 needed)
  bool amx_int8 = false;  // AMX tiles with int8 dot products, state enabled in XCR0 (Sapphire Rapids on)
  bool amx_bf16 = false;  // AMX tiles with bf16 dot products into f32, the same state
};

// Read from CPUID and XGETBV directly (not through the compiler's runtime), once, then capped by
// the environment variable SMELT_MAX_ISA where it is set: "scalar" (no SIMD twin runs), "avx2"
// (no AVX-512, VNNI or AMX twin), "avx512" (no AMX), "all" (the default). The cap lets one machine
// run, test and time the narrower twins.
const CpuFeatures& GetCpuFeatures();

enum class IsaCap { kScalar, kAvx2, kAvx512, kAll };
// SMELT_MAX_ISA's values; anything else reads as kAll.
IsaCap ParseIsaCap(const std::string& s);

// True when the CPU executing this process supports AVX2 (x86-64 only) and SMELT_MAX_ISA allows it.
inline bool CpuHasAvx2() { return GetCpuFeatures().avx2; }

// The processor's brand string (CPUID leaves 0x80000002..4, trimmed); off x86-64 the first
// "model name" of /proc/cpuinfo; "unknown" when neither says.
const std::string& CpuModelName();

// Which of smelt's kernel twins this CPU runs: "avx2" where CpuHasAvx2FmaF16c() (declared below), else
// "scalar"; with "+avx512vnni" or "+avxvnni" appended where the kernels that have a VNNI twin
// (the packed products, kernels/packed.h) run it, and "+amx" where those
// products run on AMX tiles from 16 tokens on.
const char* KernelPath();

// True when the CPU supports AVX2 together with FMA and F16C (every AVX2 CPU of Intel and AMD
// has all three, but they are separate CPUID bits): what the AVX2 kernels need.
inline bool CpuHasAvx2FmaF16c() {
  const CpuFeatures& f = GetCpuFeatures();
  return f.avx2 && f.fma && f.f16c;
}

// AVX-512 F, DQ, VL and BW besides AVX2/FMA/F16C: what the 512-bit f32 kernels use.
inline bool CpuHasAvx512F() {
  const CpuFeatures& f = GetCpuFeatures();
  return CpuHasAvx2FmaF16c() && f.avx512f && f.avx512dq && f.avx512vl && f.avx512bw;
}

// AVX-512 VBMI2 (vpexpandb) and VNNI besides CpuHasAvx512F(): the sparse-row twins.
inline bool CpuHasAvx512Vbmi2() {
  const CpuFeatures& f = GetCpuFeatures();
  return CpuHasAvx512F() && f.avx512_vbmi2 && f.avx512_vnni;
}

// AVX-512 VBMI (vpermb, vpmultishiftqb), VNNI and GFNI besides CpuHasAvx512F(): the 2:4 int4 twin.
inline bool CpuHasAvx512Vbmi() {
  const CpuFeatures& f = GetCpuFeatures();
  return CpuHasAvx512F() && f.avx512_vbmi && f.avx512_vnni && f.gfni;
}

// AVX-512 VNNI on 256-bit registers (vpdpbusd with AVX512VL and AVX512BW) besides AVX2/FMA/F16C.
inline bool CpuHasAvx512Vnni() {
  const CpuFeatures& f = GetCpuFeatures();
  return CpuHasAvx2FmaF16c() && f.avx512f && f.avx512bw && f.avx512vl && f.avx512_vnni;
}

// GFNI (vgf2p8affineqb on 512-bit registers) besides CpuHasAvx512Vnni() and AVX512DQ: the packed k-quant
// twins that take codes out of their bytes by GF(2) affine maps.
inline bool CpuHasAvx512VnniGfni() { return CpuHasAvx512Vnni() && GetCpuFeatures().avx512dq && GetCpuFeatures().gfni; }

// AMX-INT8 usable by this process, besides AVX-512 VNNI and DQ: the CPU has it, XCR0 enables the tile
// state, and Linux granted the process the tile data state (arch_prctl ARCH_REQ_XCOMP_PERM,
// asked once, on the first call; without it the first tile instruction faults).
bool CpuHasAmxInt8();

// AMX-BF16 usable by this process, besides AVX-512 BF16 and DQ (the half-precision prompt kernel's
// conversions): the same tile state and permission as CpuHasAmxInt8().
bool CpuHasAmxBf16();

// AVX-VNNI (the VEX-encoded vpdpbusd) besides AVX2/FMA/F16C.
inline bool CpuHasAvxVnni() { return CpuHasAvx2FmaF16c() && GetCpuFeatures().avx_vnni; }

}  // namespace smelt
