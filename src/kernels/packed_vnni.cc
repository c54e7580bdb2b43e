// The VNNI twins of PackedGemmReference (kernels/packed.h): the body in packed_vnni_body.h,
// compiled once for AVX-512 VNNI (EVEX vpdpbusd on 256-bit registers, which needs AVX512VL) and
// once for AVX-VNNI (the VEX form of the same instruction on CPUs without AVX-512). Only these
// functions carry the target attributes (dispatch: packed.cc).
#include "kernels/packed.h"
#include "kernels/prefetch.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#include "kernels/bits_avx2.h"

#include <cstring>

#include "formats/iq4_nl.h"
#include "formats/nf4.h"
#include "formats/q8_0.h"

namespace smelt {
namespace {

#define SMELT_VNNI_NS avx512_vnni
#define SMELT_VNNI_TARGET __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#define SMELT_DPBUSD _mm256_dpbusd_epi32
#include "kernels/packed_vnni_body.h"
#undef SMELT_VNNI_NS
#undef SMELT_VNNI_TARGET
#undef SMELT_DPBUSD

#define SMELT_VNNI_NS avx_vnni
#define SMELT_VNNI_TARGET __attribute__((target("avx2,fma,f16c,avxvnni")))
#define SMELT_DPBUSD _mm256_dpbusd_avx_epi32
#include "kernels/packed_vnni_body.h"
#undef SMELT_VNNI_NS
#undef SMELT_VNNI_TARGET
#undef SMELT_DPBUSD

}  // namespace

PackedGemmFn Avx512VnniPackedGemm(DType type) { return avx512_vnni::Select(type); }
PackedGemmFn AvxVnniPackedGemm(DType type) { return avx_vnni::Select(type); }

}  // namespace smelt

#else

namespace smelt {
PackedGemmFn Avx512VnniPackedGemm(DType) { return nullptr; }
PackedGemmFn AvxVnniPackedGemm(DType) { return nullptr; }
}  // namespace smelt

#endif
