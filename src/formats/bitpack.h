#pragma once
// Dense little-endian packing of b-bit codes (b <= 8) for the smelt-native formats: code j
// occupies bits [j·b, (j+1)·b) of the byte array, bit 0 being the lowest bit of byte 0. For
// b = 4 that is two codes per byte, code 2i in the low nibble; for b = 3 codes straddle bytes,
// so a group of 32 three-bit codes takes exactly 12 bytes (no padding per code).
#include <cstdint>

namespace smelt {

// Writes codes[0..n) into bytes[0..(n·b + 7) / 8), which must be zeroed by the caller or is
// overwritten here (the whole range is cleared first).
inline void PackCodes(const uint8_t* codes, int n, int bits, uint8_t* bytes) {
  const int nbytes = (n * bits + 7) / 8;
  for (int i = 0; i < nbytes; ++i) bytes[i] = 0;
  for (int j = 0; j < n; ++j) {
    const int p = j * bits;
    const unsigned v = (unsigned)(codes[j] & ((1u << bits) - 1)) << (p % 8);
    bytes[p / 8] |= (uint8_t)v;
    if (p % 8 + bits > 8) bytes[p / 8 + 1] |= (uint8_t)(v >> 8);
  }
}

// Code j of a packed array of b-bit codes.
inline uint8_t UnpackCode(const uint8_t* bytes, int j, int bits) {
  const int p = j * bits;
  unsigned v = bytes[p / 8];
  if (p % 8 + bits > 8) v |= (unsigned)bytes[p / 8 + 1] << 8;
  return (uint8_t)((v >> (p % 8)) & ((1u << bits) - 1));
}

}  // namespace smelt
