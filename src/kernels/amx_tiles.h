#pragma once
// What the AMX twins (kernels/packed_amx.cc, kernels/half_gemm_amx.cc, kernels/kquant_amx.cc,
// kernels/w8a8_amx.cc) share: ldtilecfg's operand, the compiler barrier between stores and tile
// loads, and a call's tile shape. Plain code, no target attribute.
#include <cstdint>

namespace smelt {

// ldtilecfg's 64-byte operand (palette 1): bytes per row and rows of each tile register.
struct TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};
static_assert(sizeof(TileConfig) == 64, "ldtilecfg reads 64 bytes");

// ldtilecfg of the whole 64 bytes. The compilers' _tile_loadconfig names only the first 8 bytes as
// its operand, so stores to the rest of a local config may be dropped or moved past it (seen with
// GCC 12); this asm reads the whole struct.
inline void LoadTileConfig(const TileConfig& cfg) { __asm__ volatile("ldtilecfg %0" ::"m"(cfg)); }

// Tells the compiler that memory written before this point may be read by the tile loads after
// it (the tile intrinsics are asm statements that do not say they read memory).
inline void TileMemoryBarrier() { __asm__ volatile("" ::: "memory"); }

// The tile shape of one kernel call that walks its tokens in groups of up to 16: Use(nt, configure)
// loads a configuration, configure(nt), only where nt differs from the loaded one (the first group
// and a shorter last; ldtilecfg costs: loaded per group of 16 it took 9.9 % of a q4_K prompt), and
// the tiles are released once, when the call's TileShape goes.
class TileShape {
 public:
  TileShape() = default;
  TileShape(const TileShape&) = delete;
  TileShape& operator=(const TileShape&) = delete;
  ~TileShape() {
    if (rows_) __asm__ volatile("tilerelease");
  }
  void Use(int nt, void (*configure)(int)) {
    if (nt != rows_) configure(rows_ = nt);
  }

 private:
  int rows_ = 0;  // the token rows of the loaded configuration, 0: none loaded
};

}  // namespace smelt
