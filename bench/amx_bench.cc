// What the AMX-INT8 tile instructions cost on this CPU, alone and beside AVX-512 work: the facts
// behind the speed of the eight-token Q4_0 step (kernels/packed_amx.cc, 8 sequences decoded
// together), where per block of 32 columns one tile product runs (A: 8 tokens × 32 codes, B: 8
// groups of 4 codes × 16 rows, C: 8 × 16 int32), C is stored, and the vector units unpack codes
// and take the per-token f32 steps.
//
// One iteration of Amx/<work> does the named parts, each independent of the others (no value
// flows between them, so an out-of-order core may overlap them freely):
//   tile       tilezero, two tile loads (A 8 × 32 B, B 8 × 64 B, from L1) and one tdpbssd;
//   +store     then one tilestored of the 8 × 64-byte C tile (to L1);
//   fma32      32 fused multiply-adds on 512-bit registers, 8 independent chains;
//   load32     32 loads of 64 bytes from L1, each added (int32) into one of 8 independent
//              accumulators: bound by the load ports, not by the adds' latency.
// If the parts overlapped, a combined case would take the longest of its parts; where it takes
// their sum, they do not. Counter: ns per iteration.
//   build/smelt_bench --benchmark_filter=Amx
#include <benchmark/benchmark.h>

#include "core/cpu.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#include <cstdint>
#include <memory>

#include "kernels/amx_tiles.h"

#define SMELT_AMX_BENCH __attribute__((target("avx2,fma,avx512f,avx512bw,amx-tile,amx-int8")))

namespace smelt {
namespace {

enum Part : int { kTile = 1, kStore = 2, kFma = 4, kLoads = 8 };

struct alignas(64) Buffers {
  int8_t a[8][32] = {};
  int8_t b[8][64] = {};
  int32_t c[8][16] = {};
  int32_t v[32][16] = {};
};

template <int kParts>
SMELT_AMX_BENCH void Run(benchmark::State& state, Buffers& buf) {
  TileConfig cfg;
  cfg.rows[0] = 8, cfg.colsb[0] = 64;  // C: 8 tokens × 16 rows' int32
  cfg.rows[1] = 8, cfg.colsb[1] = 32;  // A: 8 tokens × 32 codes
  cfg.rows[2] = 8, cfg.colsb[2] = 64;  // B: 8 groups of 4 codes × 16 rows
  LoadTileConfig(cfg);
  const __m512 m = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(0.001f);
  __m512 r0 = m, r1 = m, r2 = m, r3 = m, r4 = m, r5 = m, r6 = m, r7 = m;
  __m512i i0 = _mm512_setzero_si512(), i1 = i0, i2 = i0, i3 = i0, i4 = i0, i5 = i0, i6 = i0, i7 = i0;
  for (auto _ : state) {
    TileMemoryBarrier();  // every case reads its buffers anew each iteration
    if constexpr ((kParts & kTile) != 0) {
      _tile_zero(0);
      _tile_loadd(1, buf.a, 32);
      _tile_loadd(2, buf.b, 64);
      _tile_dpbssd(0, 1, 2);
      if constexpr ((kParts & kStore) != 0) _tile_stored(0, buf.c, 64);
      TileMemoryBarrier();
    }
    if constexpr ((kParts & kFma) != 0) {
      for (int i = 0; i < 4; ++i) {
        r0 = _mm512_fmadd_ps(r0, m, c), r1 = _mm512_fmadd_ps(r1, m, c), r2 = _mm512_fmadd_ps(r2, m, c);
        r3 = _mm512_fmadd_ps(r3, m, c), r4 = _mm512_fmadd_ps(r4, m, c), r5 = _mm512_fmadd_ps(r5, m, c);
        r6 = _mm512_fmadd_ps(r6, m, c), r7 = _mm512_fmadd_ps(r7, m, c);
      }
    }
    if constexpr ((kParts & kLoads) != 0) {
      for (int i = 0; i < 32; i += 8) {
        i0 = _mm512_add_epi32(i0, _mm512_load_si512(buf.v[i])), i1 = _mm512_add_epi32(i1, _mm512_load_si512(buf.v[i + 1]));
        i2 = _mm512_add_epi32(i2, _mm512_load_si512(buf.v[i + 2])), i3 = _mm512_add_epi32(i3, _mm512_load_si512(buf.v[i + 3]));
        i4 = _mm512_add_epi32(i4, _mm512_load_si512(buf.v[i + 4])), i5 = _mm512_add_epi32(i5, _mm512_load_si512(buf.v[i + 5]));
        i6 = _mm512_add_epi32(i6, _mm512_load_si512(buf.v[i + 6])), i7 = _mm512_add_epi32(i7, _mm512_load_si512(buf.v[i + 7]));
      }
    }
  }
  _tile_release();
  const __m512 sum = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(r0, r1), _mm512_add_ps(r2, r3)),
                                   _mm512_add_ps(_mm512_add_ps(r4, r5), _mm512_add_ps(r6, r7)));
  float out[16];
  _mm512_storeu_ps(out, sum);
  int32_t ints[16];
  _mm512_storeu_si512(ints, _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(i0, i1), _mm512_add_epi32(i2, i3)),
                                             _mm512_add_epi32(_mm512_add_epi32(i4, i5), _mm512_add_epi32(i6, i7))));
  benchmark::DoNotOptimize(ints);
  benchmark::DoNotOptimize(out);
  benchmark::DoNotOptimize(buf.c);
}

template <int kParts>
void BM_Amx(benchmark::State& state) {
  if (!CpuHasAmxInt8()) {
    state.SkipWithError("no AMX-INT8 on this CPU");
    return;
  }
  const auto buf = std::make_unique<Buffers>();  // 64-byte aligned
  Run<kParts>(state, *buf);
  state.counters["ns/iter"] =
      benchmark::Counter((double)state.iterations() * 1e-9, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

BENCHMARK(BM_Amx<kTile>)->Name("Amx/tile");
BENCHMARK(BM_Amx<kTile | kStore>)->Name("Amx/tile+store");
BENCHMARK(BM_Amx<kFma>)->Name("Amx/fma32");
BENCHMARK(BM_Amx<kFma | kTile>)->Name("Amx/fma32+tile");
BENCHMARK(BM_Amx<kFma | kTile | kStore>)->Name("Amx/fma32+tile+store");
BENCHMARK(BM_Amx<kLoads>)->Name("Amx/load32");
BENCHMARK(BM_Amx<kLoads | kTile>)->Name("Amx/load32+tile");
BENCHMARK(BM_Amx<kLoads | kTile | kStore>)->Name("Amx/load32+tile+store");

}  // namespace
}  // namespace smelt

#endif
