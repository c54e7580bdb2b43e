// The nibble unpacking of the 256-bit packed products (kernels/packed.h), shared by the AVX2 twin
// (packed_avx2.cc) and the VNNI twins (packed_vnni_body.h): included inside each twin's own
// namespace, where SMELT_PACKED_TARGET is the target attribute its functions carry (after
// kernels/bits_avx2.h). No include guard: it is meant to be read more than once.

// A packed block's nibbles (and, where it has a plane, fifth bits) as 8 registers of unsigned
// codes: c[j] meets activation bytes 4j .. 4j+3 (chunk j's low nibbles for j < 4, chunk j − 4's
// high nibbles after; plane bit j moved to bit 4, packed.h).
template <class Packed>
SMELT_PACKED_TARGET inline void UnsignedCodes(const Packed& w, __m256i* c) {
  const __m256i mask = _mm256_set1_epi8(0x0F);
  for (int k = 0; k < 4; ++k) {
    const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qs[k]));
    c[k] = _mm256_and_si256(bytes, mask);
    c[4 + k] = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), mask);
  }
  if constexpr (requires { w.qh; }) {
    const __m256i plane = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qh));
    for (int j = 0; j < 8; ++j) c[j] = _mm256_or_si256(c[j], BitToBit4(plane, j));
  }
}

// A 16-entry codebook of signed bytes (IQ4_NL's values, a byte of NF4's levels) in both 128-bit
// lanes, each entry + add (mod 256), and a Q4_0-shaped block's nibbles n[j] (UnsignedCodes)
// looked up in it: c[j] = book[n[j]] (c may be n).
SMELT_PACKED_TARGET inline __m256i NibbleCodebook(const int8_t* table, char add = 0) {
  return _mm256_add_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(table))),
                         _mm256_set1_epi8(add));
}
SMELT_PACKED_TARGET inline void LookUpNibbles(__m256i book, const __m256i* n, __m256i* c) {
  for (int j = 0; j < 8; ++j) c[j] = _mm256_shuffle_epi8(book, n[j]);
}
