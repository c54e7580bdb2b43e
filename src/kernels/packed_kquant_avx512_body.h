// The body of the AVX-512 twins of the packed super-block types (kernels/packed_kquant_avx512.cc),
// included there once per instruction set: SMELT_K512 is the target attribute every function
// carries, and SMELT_K512_GFNI (0 or 1) whether codes are taken out of their bytes by GF(2) affine
// maps (vgf2p8affineqb: any bits of a byte to any places, the rest cleared, in one instruction)
// instead of shifts and masks. Included inside the copy's own namespace. No include guard: it is
// meant to be read twice.

#if SMELT_K512_GFNI
// The matrix of a GF(2) affine map that moves bits from .. from + n − 1 of each byte to bits to ..
// to + n − 1 and clears the others (matrix byte 7 − o selects the input bits of output bit o).
constexpr uint64_t MoveBits(int from, int to, int n) {
  uint64_t m = 0;
  for (int i = 0; i < n; ++i) m |= (uint64_t)(1u << (from + i)) << (8 * (7 - (to + i)));
  return m;
}
SMELT_K512 inline __m512i Gf(__m512i x, uint64_t map) {
  return _mm512_gf2p8affine_epi64_epi8(x, _mm512_set1_epi64((long long)map), 0);
}
#endif

// 32 bytes at lo, then 32 at hi.
SMELT_K512 inline __m512i Both32(const void* lo, const void* hi) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(static_cast<const __m256i*>(lo))),
                            _mm256_loadu_si256(static_cast<const __m256i*>(hi)), 1);
}
// Two panels' 8 fp16 values each as 16 floats, panel 0's first.
SMELT_K512 inline __m512 BothHalves(const fp16_t* lo, const fp16_t* hi) {
  return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(lo)))),
                            _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(hi))), 1);
}
SMELT_K512 inline __m512i Broadcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return _mm512_set1_epi32(v);
}

// The signed scale bytes of sub-blocks 2p and 2p + 1 (bytes 2(p % 2), 2(p % 2) + 1 of each row's
// 32-bit lane of `chunk`, which holds sub-blocks 4·(p / 2) .. +3) as two int16 per lane: vpshufb
// puts them in the high bytes of the int16, an arithmetic shift brings them down with their sign.
SMELT_K512 inline __m512i SignedScalePair(__m512i chunk, int p) {
  const int first = 2 * (p % 2);
  const __m512i quarter = _mm512_set4_epi32(12, 8, 4, 0);  // row lane q of each 128-bit quarter
  const __m512i take = _mm512_add_epi32(_mm512_set1_epi32(0x80 | first << 8 | 0x80 << 16 | (first + 1) << 24),
                                        _mm512_or_si512(_mm512_slli_epi32(quarter, 8), _mm512_slli_epi32(quarter, 24)));
  return _mm512_srai_epi16(_mm512_shuffle_epi8(chunk, take), 8);
}

// Sub-blocks 2p and 2p + 1 of 16 weights each (codes c[half][i]: weights 16·half + 4i .. +3 of the
// 32 from the activation codes at `first`) against kNt tokens: their two sums (each within an
// int16) side by side in each row's lane, one vpdpwssd with the pair's scales into isum and one of
// `min` with the pair's bsums into msum.
template <int kNt>
SMELT_K512 inline void SubBlockPair(const __m512i (&c)[2][4], const BlockQ8_K* const* act, int first, int p,
                                    __m512i scale, __m512i min, __m512i* isum, __m512i* msum) {
  for (int t = 0; t < kNt; ++t) {
    __m512i s[2];
    for (int half = 0; half < 2; ++half) {
      const int8_t* qa = act[t]->qs + first + 16 * half;
      __m512i v = _mm512_dpbusd_epi32(_mm512_setzero_si512(), c[half][0], Broadcast4(qa));
      v = _mm512_dpbusd_epi32(v, c[half][1], Broadcast4(qa + 4));
      v = _mm512_dpbusd_epi32(v, c[half][2], Broadcast4(qa + 8));
      s[half] = _mm512_dpbusd_epi32(v, c[half][3], Broadcast4(qa + 12));
    }
    const __m512i pair = _mm512_mask_blend_epi16(0xAAAAAAAA, s[0], _mm512_slli_epi32(s[1], 16));
    isum[t] = _mm512_dpwssd_epi32(isum[t], pair, scale);
    int32_t bsums;  // bsums[2p] and bsums[2p + 1]
    std::memcpy(&bsums, act[t]->bsums + 2 * p, sizeof bsums);
    msum[t] = _mm512_dpwssd_epi32(msum[t], min, _mm512_set1_epi32(bsums));
  }
}

// Q2_K: one super-block of two panels against kNt tokens' Q8_K blocks, added to isum and msum. The
// 8 chunks of a half super-block are loaded once; shifted by 2k they hold sub-blocks 2p and 2p + 1
// (p = 4h + k), whose two sums (|Σ q·a| ≤ 16·3·128, an int16) sit side by side in each row's lane
// for one vpdpwssd with the pair's scales and one with its minimums.
template <int kNt>
SMELT_K512 inline void SuperBlockSums(const BlockQ2_Kx8& w0, const BlockQ2_Kx8& w1, const BlockQ8_K* const* act,
                                      __m512i* isum, __m512i* msum) {
  const __m512i three = _mm512_set1_epi8(3), low_nibbles = _mm512_set1_epi16(0x0F);
  for (int h = 0; h < 2; ++h) {
    __m512i chunk[8];  // ggml's bytes 32h + 4c .. +3 of the 16 rows
    for (int c = 0; c < 8; ++c) chunk[c] = Both32(w0.qs[8 * h + c], w1.qs[8 * h + c]);
    for (int k = 0; k < 4; ++k) {  // sub-blocks 2p and 2p + 1: weights 128h + 32k + 0..31
      const int p = 4 * h + k;
      // Row r's lane: the scale bytes of sub-blocks 2p and 2p + 1 as two int16.
      const __m512i bytes = _mm512_cvtepu8_epi16(_mm256_inserti128_si256(
          _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w0.scales[p]))),
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(w1.scales[p])), 1));
      const __m512i sc = _mm512_and_si512(bytes, low_nibbles), m = _mm512_srli_epi16(bytes, 4);
      __m512i c[2][4];
      for (int half = 0; half < 2; ++half)
        for (int i = 0; i < 4; ++i) {
#if SMELT_K512_GFNI
          c[half][i] = k == 0 ? _mm512_and_si512(chunk[4 * half + i], three) : Gf(chunk[4 * half + i], MoveBits(2 * k, 0, 2));
#else
          c[half][i] = _mm512_and_si512(_mm512_srli_epi16(chunk[4 * half + i], 2 * k), three);
#endif
        }
      SubBlockPair<kNt>(c, act, 128 * h + 32 * k, p, sc, m, isum, msum);
    }
  }
}

// Q3_K: as Q2_K, each code's third bit shifted in from the hmask chunks (code + 4 ∈ 0..7, the
// unsigned operand), the 16 signed 6-bit scales of the 16 rows decoded four per row lane, and per
// pair of sub-blocks one vpdpwssd of their scales with their sums and one with their bsums: isum =
// Σ sc_j·(Σ (q + 4)·a − 4·bsums_j), the reference's exact integer.
template <int kNt>
SMELT_K512 inline void SuperBlockSums(const BlockQ3_Kx8& w0, const BlockQ3_Kx8& w1, const BlockQ8_K* const* act,
                                      __m512i* isum, __m512i*) {
  const __m512i three = _mm512_set1_epi8(3), four = _mm512_set1_epi8(4), nibble = _mm512_set1_epi8(0x0F),
                top = _mm512_set1_epi8(0x30);
  // Q3KScale of sub-blocks 4q .. 4q + 3 in bytes 0..3 of each row's lane of sc[q], as signed bytes.
  const __m512i s0 = Both32(w0.scales[0], w1.scales[0]), s1 = Both32(w0.scales[1], w1.scales[1]),
                s2 = Both32(w0.scales[2], w1.scales[2]);
  const __m512i low[4] = {_mm512_and_si512(s0, nibble), _mm512_and_si512(s1, nibble),
                          _mm512_and_si512(_mm512_srli_epi16(s0, 4), nibble),
                          _mm512_and_si512(_mm512_srli_epi16(s1, 4), nibble)};
  const __m512i high[4] = {_mm512_slli_epi16(s2, 4), _mm512_slli_epi16(s2, 2), s2, _mm512_srli_epi16(s2, 2)};
  __m512i sc[4];
  for (int q = 0; q < 4; ++q)
    sc[q] = _mm512_sub_epi8(_mm512_or_si512(low[q], _mm512_and_si512(high[q], top)), _mm512_set1_epi8(32));
  __m512i hm[8];
  for (int c = 0; c < 8; ++c) hm[c] = Both32(w0.hmask[c], w1.hmask[c]);
  __m512i msum[kNt];  // Σ sc_j·bsums_j
  for (int t = 0; t < kNt; ++t) msum[t] = _mm512_setzero_si512();
  for (int h = 0; h < 2; ++h) {
    __m512i chunk[8];  // ggml's bytes 32h + 4c .. +3 of the 16 rows
    for (int c = 0; c < 8; ++c) chunk[c] = Both32(w0.qs[8 * h + c], w1.qs[8 * h + c]);
    for (int k = 0; k < 4; ++k) {  // sub-blocks 2p and 2p + 1: weights 128h + 32k + 0..31
      const int p = 4 * h + k, bit = 4 * h + k;
      const __m512i scale = SignedScalePair(sc[p / 2], p);
      __m512i c[2][4];
      for (int half = 0; half < 2; ++half)
        for (int i = 0; i < 4; ++i) {
#if SMELT_K512_GFNI
          const __m512i low = k == 0 ? _mm512_and_si512(chunk[4 * half + i], three) : Gf(chunk[4 * half + i], MoveBits(2 * k, 0, 2));
          c[half][i] = _mm512_or_si512(low, bit == 2 ? _mm512_and_si512(hm[4 * half + i], four) : Gf(hm[4 * half + i], MoveBits(bit, 2, 1)));
#else
          const __m512i third = bit >= 2 ? _mm512_srli_epi16(hm[4 * half + i], bit - 2) : _mm512_slli_epi16(hm[4 * half + i], 2 - bit);
          c[half][i] = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(chunk[4 * half + i], 2 * k), three), third,
                                                 four, 0xF8);  // a | (b & c)
#endif
        }
      SubBlockPair<kNt>(c, act, 128 * h + 32 * k, p, scale, scale, isum, msum);
    }
  }
  for (int t = 0; t < kNt; ++t) isum[t] = _mm512_sub_epi32(isum[t], _mm512_slli_epi32(msum[t], 2));
}

// Q6_K: each code (0..63: ggml's stored q + 32) the unsigned operand of vpdpbusd. Per half h and
// quarter of its runs of 32 weights, 4 chunks of ql (two registers) and qh give the 4 codes of every
// run; the sums of its four sub-blocks of 16 (up to 16·63·128, int32) take their signed scales by
// vpmulld into isum, and per pair of sub-blocks one vpdpwssd of −32 times their scales with their
// bsums takes the offsets off: isum = Σ sc_j·Σ (q − 32)·a, the reference's exact integer.
template <int kNt>
SMELT_K512 inline void SuperBlockSums(const BlockQ6_Kx8& w0, const BlockQ6_Kx8& w1, const BlockQ8_K* const* act,
                                      __m512i* isum, __m512i*) {
  const __m512i nibble = _mm512_set1_epi8(0x0F);
#if !SMELT_K512_GFNI
  const __m512i top = _mm512_set1_epi8(0x30);
#endif
  // sc[s]: the signed scale bytes of sub-blocks 4s .. 4s + 3 in each row's lane.
  __m512i sc[4];
  for (int s = 0; s < 4; ++s) sc[s] = Both32(w0.scales[s], w1.scales[s]);
  const __m512i quarter = _mm512_set4_epi32(12, 8, 4, 0);
  // Byte b of each row's lane of sc[s] as an int32: vpshufb moves it to the lane's top byte, an
  // arithmetic shift brings it down with its sign.
  auto scale32 = [&](int j) SMELT_K512 {
    const __m512i take = _mm512_add_epi32(_mm512_set1_epi32((j % 4) << 24 | 0x808080), _mm512_slli_epi32(quarter, 24));
    return _mm512_srai_epi32(_mm512_shuffle_epi8(sc[j / 4], take), 24);
  };
  // The offsets first: −32·sc_j (within an int16) against bsums_j, two sub-blocks per vpdpwssd.
  for (int p = 0; p < 8; ++p) {  // sub-blocks 2p and 2p + 1
    const __m512i offset = _mm512_sub_epi16(_mm512_setzero_si512(), _mm512_slli_epi16(SignedScalePair(sc[p / 2], p), 5));
    for (int t = 0; t < kNt; ++t) {
      int32_t bsums;  // bsums[2p] and bsums[2p + 1]
      std::memcpy(&bsums, act[t]->bsums + 2 * p, sizeof bsums);
      isum[t] = _mm512_dpwssd_epi32(isum[t], offset, _mm512_set1_epi32(bsums));
    }
  }
  for (int h = 0; h < 2; ++h)
    for (int q = 0; q < 2; ++q) {  // chunks c = 4q .. 4q + 3 of the half: sub-blocks 8h + 2k + q
      __m512i sum[4][kNt];
      for (int k = 0; k < 4; ++k)
        for (int t = 0; t < kNt; ++t) sum[k][t] = _mm512_setzero_si512();
      for (int c = 4 * q; c < 4 * q + 4; ++c) {
        const __m512i a = Both32(w0.ql[16 * h + c], w1.ql[16 * h + c]);          // runs 0 (low), 2 (high)
        const __m512i b = Both32(w0.ql[16 * h + 8 + c], w1.ql[16 * h + 8 + c]);  // runs 1 (low), 3 (high)
        const __m512i hb = Both32(w0.qh[8 * h + c], w1.qh[8 * h + c]);
        __m512i code[4];
#if SMELT_K512_GFNI
        code[0] = _mm512_ternarylogic_epi32(a, Gf(hb, MoveBits(0, 4, 2)), nibble, 0xEC);  // (a & c) | b
        code[1] = _mm512_ternarylogic_epi32(b, Gf(hb, MoveBits(2, 4, 2)), nibble, 0xEC);
        code[2] = _mm512_or_si512(Gf(a, MoveBits(4, 0, 4)), Gf(hb, MoveBits(4, 4, 2)));
        code[3] = _mm512_or_si512(Gf(b, MoveBits(4, 0, 4)), Gf(hb, MoveBits(6, 4, 2)));
#else
        code[0] = _mm512_ternarylogic_epi32(_mm512_and_si512(a, nibble), _mm512_slli_epi16(hb, 4), top, 0xF8);  // a | (b & c)
        code[1] = _mm512_ternarylogic_epi32(_mm512_and_si512(b, nibble), _mm512_slli_epi16(hb, 2), top, 0xF8);
        code[2] = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(a, 4), nibble), hb, top, 0xF8);
        code[3] = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(b, 4), nibble), _mm512_srli_epi16(hb, 2), top, 0xF8);
#endif
        for (int k = 0; k < 4; ++k)
          for (int t = 0; t < kNt; ++t)
            sum[k][t] = _mm512_dpbusd_epi32(sum[k][t], code[k], Broadcast4(act[t]->qs + 128 * h + 32 * k + 4 * c));
      }
      for (int k = 0; k < 4; ++k) {
        const __m512i scale = scale32(8 * h + 2 * k + q);
        for (int t = 0; t < kNt; ++t) isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(sum[k][t], scale));
      }
    }
}

// Q4_K and Q5_K: per super-block the 16 rows' 12 scale bytes (3 chunks) give the 6-bit scales and
// minimums of sub-blocks 0..3 and 4..7, 4 per row lane; per 64 weights (g) 8 code chunks, each one
// vpdpbusd of its low nibbles (sub-block 2g) and one of its high nibbles (2g + 1) per token; a
// sub-block's sum (up to 32·31·128, an int32) times its scale by vpmulld, its minimum times the
// pair of bsums of its 32 weights by vpdpwssd.
template <int kNt, class Packed>
  requires(!std::is_same_v<Packed, BlockQ2_Kx8> && !std::is_same_v<Packed, BlockQ3_Kx8> && !std::is_same_v<Packed, BlockQ6_Kx8>)
SMELT_K512 inline void SuperBlockSums(const Packed& w0, const Packed& w1, const BlockQ8_K* const* act, __m512i* isum,
                                      __m512i* msum) {
  const __m512i nibble = _mm512_set1_epi8(0x0F);
  // The scales and minimums of all 8 sub-blocks of the 16 rows (kernels/kquant_scales_avx512.h).
  __m512i sc[2], m[2];
  ScalesMinsK4x16(Both32(w0.scales[0], w1.scales[0]), Both32(w0.scales[1], w1.scales[1]),
                  Both32(w0.scales[2], w1.scales[2]), sc, m);
  for (int g = 0; g < 4; ++g) {
    __m512i sum[2][kNt];
    for (int t = 0; t < kNt; ++t) sum[0][t] = sum[1][t] = _mm512_setzero_si512();
    for (int c = 0; c < 8; ++c) {
      const __m512i q = Both32(w0.qs[8 * g + c], w1.qs[8 * g + c]);
#if SMELT_K512_GFNI
      __m512i lo, hi = Gf(q, MoveBits(4, 0, 4));
      if constexpr (requires { w0.qh; }) {  // Q5_K: bits 2g and 2g + 1 of the qh bytes to bit 4
        const __m512i fifth = Both32(w0.qh[c], w1.qh[c]);
        lo = _mm512_ternarylogic_epi32(q, Gf(fifth, MoveBits(2 * g, 4, 1)), nibble, 0xEC);  // (a & c) | b
        hi = _mm512_or_si512(hi, Gf(fifth, MoveBits(2 * g + 1, 4, 1)));
      } else {
        lo = _mm512_and_si512(q, nibble);
      }
#else
      __m512i lo = _mm512_and_si512(q, nibble), hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), nibble);
      if constexpr (requires { w0.qh; }) {  // Q5_K: bits 2g and 2g + 1 of the qh bytes to bit 4
        const __m512i fifth = Both32(w0.qh[c], w1.qh[c]);
        const __m512i sixteen = _mm512_set1_epi8(0x10);
        const __m512i bit_lo = 2 * g <= 4 ? _mm512_slli_epi16(fifth, 4 - 2 * g) : _mm512_srli_epi16(fifth, 2 * g - 4);
        const __m512i bit_hi = 2 * g + 1 <= 4 ? _mm512_slli_epi16(fifth, 3 - 2 * g) : _mm512_srli_epi16(fifth, 2 * g - 3);
        lo = _mm512_or_si512(lo, _mm512_and_si512(bit_lo, sixteen));
        hi = _mm512_or_si512(hi, _mm512_and_si512(bit_hi, sixteen));
      }
#endif
      for (int t = 0; t < kNt; ++t) {
        const int8_t* qa = act[t]->qs + 64 * g + 4 * c;
        sum[0][t] = _mm512_dpbusd_epi32(sum[0][t], lo, Broadcast4(qa));
        sum[1][t] = _mm512_dpbusd_epi32(sum[1][t], hi, Broadcast4(qa + 32));
      }
    }
    for (int h = 0; h < 2; ++h) {
      const int j = 2 * g + h;  // the sub-block: byte j % 4 of sc[j / 4], m[j / 4] in every lane
      const int k = j % 4;
      // vpshufb indexes within 128 bits: row lane q of each 128-bit quarter reads its byte 4q + k,
      // zero-extended (the scale) or twice as two int16 (the minimum).
      const __m512i quarter = _mm512_set4_epi32(12, 8, 4, 0);
      const __m512i take = _mm512_add_epi32(_mm512_set1_epi32(k | (int)0x80808000), quarter);
      const __m512i take_pair = _mm512_add_epi32(_mm512_set1_epi32(k | 0x80 << 8 | k << 16 | (int)(0x80u << 24)),
                                                 _mm512_or_si512(quarter, _mm512_slli_epi32(quarter, 16)));
      const __m512i scale = _mm512_shuffle_epi8(sc[j / 4], take), min = _mm512_shuffle_epi8(m[j / 4], take_pair);
      for (int t = 0; t < kNt; ++t) {
        isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(sum[h][t], scale));
        int32_t bsums;  // the bsums of sub-block j's two halves
        std::memcpy(&bsums, act[t]->bsums + 2 * j, sizeof bsums);
        msum[t] = _mm512_dpwssd_epi32(msum[t], min, _mm512_set1_epi32(bsums));
      }
    }
  }
}

// Tokens 0..kNt-1 (row t at a + t·a_stride, Q8_K blocks) against two panels of nb super-blocks:
// y[t·y_stride + r] for the 16 rows (panel 0's, then panel 1's).
template <class Packed, int kNt>
SMELT_K512 void Tokens(const Packed* p0, const Packed* p1, int64_t nb, const uint8_t* a, size_t a_stride, float* y,
                       int64_t y_stride) {
  __m512 acc[kNt];
  for (__m512& v : acc) v = _mm512_setzero_ps();
  // Each panel's lines are asked for where the next call (the next two panels) will read.
  const size_t ahead = 2 * nb * sizeof(Packed);
  for (int64_t b = 0; b < nb; ++b) {
    PrefetchAhead<sizeof(Packed)>(p0 + b, ahead);
    PrefetchAhead<sizeof(Packed)>(p1 + b, ahead);
    const BlockQ8_K* act[kNt];
    for (int t = 0; t < kNt; ++t) act[t] = reinterpret_cast<const BlockQ8_K*>(a + t * a_stride) + b;
    __m512i isum[kNt], msum[kNt];
    for (int t = 0; t < kNt; ++t) isum[t] = msum[t] = _mm512_setzero_si512();
    SuperBlockSums<kNt>(p0[b], p1[b], act, isum, msum);
    const __m512 d_w = BothHalves(p0[b].d, p1[b].d);
    for (int t = 0; t < kNt; ++t) {
      const __m512 d_a = _mm512_set1_ps(act[t]->d);
      acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(d_w, d_a), _mm512_cvtepi32_ps(isum[t]), acc[t]);
      if constexpr (requires { p0->dmin; }) {
        const __m512 dmin_w = BothHalves(p0[b].dmin, p1[b].dmin);
        acc[t] = _mm512_fnmadd_ps(_mm512_mul_ps(dmin_w, d_a), _mm512_cvtepi32_ps(msum[t]), acc[t]);
      }
    }
  }
  for (int t = 0; t < kNt; ++t) _mm512_storeu_ps(y + t * y_stride, acc[t]);
}

// The two-panel kernel of a super-block type: 4 tokens at a time, then the rest.
template <class Packed>
SMELT_K512 void TwoPanels(const void* panel0, const void* panel1, int64_t nb, const uint8_t* a, size_t a_stride,
                          const int32_t*, const TileActivations&, int64_t T, float* y, int64_t y_stride) {
  const auto* p0 = static_cast<const Packed*>(panel0);
  const auto* p1 = static_cast<const Packed*>(panel1);
  int64_t t = 0;
  for (; t + 4 <= T; t += 4) Tokens<Packed, 4>(p0, p1, nb, a + t * a_stride, a_stride, y + t * y_stride, y_stride);
  switch (T - t) {
    case 3: return Tokens<Packed, 3>(p0, p1, nb, a + t * a_stride, a_stride, y + t * y_stride, y_stride);
    case 2: return Tokens<Packed, 2>(p0, p1, nb, a + t * a_stride, a_stride, y + t * y_stride, y_stride);
    case 1: return Tokens<Packed, 1>(p0, p1, nb, a + t * a_stride, a_stride, y + t * y_stride, y_stride);
    default: return;
  }
}

// One panel: the two-panel kernel on the panel twice, 16 tokens at a time, its first 8 lanes kept.
template <class Packed>
SMELT_K512 void OnePanel(const void* panel, int64_t nb, const uint8_t* a, size_t a_stride, const int32_t* a_sums,
                         int64_t T, float* y, int64_t y_stride) {
  constexpr int64_t kChunk = 16;
  alignas(64) float both[kChunk * 2 * kPackRows];
  for (int64_t t0 = 0; t0 < T; t0 += kChunk) {
    const int64_t n = std::min(kChunk, T - t0);
    TwoPanels<Packed>(panel, panel, nb, a + t0 * a_stride, a_stride, a_sums, TileActivations{}, n, both, 2 * kPackRows);
    for (int64_t t = 0; t < n; ++t)
      std::memcpy(y + (t0 + t) * y_stride, both + t * 2 * kPackRows, kPackRows * sizeof(float));
  }
}

