// The token loop of the 256-bit packed products (kernels/packed.h), shared by the AVX2 twin
// (packed_avx2.cc) and the VNNI twins (packed_vnni_body.h): included inside each twin's own
// namespace, where SMELT_PACKED_TARGET is the target attribute its functions carry and
// PackedRowSums(codes, activation block, its code sum) gives the 8 rows' exact integer sums of one
// block in a register's lanes. Per row and block: acc = fma(d_w·d_a, (float) sum, acc) (then
// acc = fma(m_w, s_a, acc) for Q4_1/Q5_1), blocks in column order, the reference's f32 steps. No include guard: it is meant to be read more than once.

// Tokens t0 .. t0+NT-1 against the whole panel, accumulators in registers.
template <class Packed, class Codes, int NT>
SMELT_PACKED_TARGET inline void Tokens(const Packed* panel, int64_t nb, const uint8_t* a, size_t a_stride,
                                       const int32_t* a_sums, int64_t t0, float* y, int64_t y_stride) {
  __m256 acc[NT];
  for (int k = 0; k < NT; ++k) acc[k] = _mm256_setzero_ps();
  const size_t ahead = PanelPrefetchDistance<Packed>();
  using Act = PackedActivation<Packed>;
  for (int64_t b = 0; b < nb; ++b) {
    // Decoding streams the panel once: every line of the block is asked for ahead (prefetch.h;
    // Q8_0 decode 63 -> 79 t/s against one line per block).
    PrefetchAhead<sizeof(Packed)>(panel + b, ahead);
    const Codes codes(panel[b]);
    const __m256 d_w = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(panel[b].d)));
    __m256 m_w = _mm256_setzero_ps();
    if constexpr (kPackedHasMin<Packed>) m_w = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(panel[b].m)));
    for (int k = 0; k < NT; ++k) {
      const Act& act = reinterpret_cast<const Act*>(a + (t0 + k) * a_stride)[b];
      // The types with a minimum have no offset: their activation rows come without code sums.
      const __m256i sums = PackedRowSums(codes, act, kPackedHasMin<Packed> ? 0 : a_sums[(t0 + k) * nb + b]);
      const __m256 d = _mm256_mul_ps(d_w, _mm256_set1_ps(_cvtsh_ss(act.d)));
      acc[k] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sums), acc[k]);
      if constexpr (kPackedHasMin<Packed>) acc[k] = _mm256_fmadd_ps(m_w, _mm256_set1_ps(_cvtsh_ss(act.s)), acc[k]);
    }
  }
  for (int k = 0; k < NT; ++k) {
    if constexpr (requires { Codes::kResultScale; })  // NF4's fixed-point levels (PackedResultScale)
      acc[k] = _mm256_mul_ps(acc[k], _mm256_set1_ps(Codes::kResultScale));
    _mm256_storeu_ps(y + (t0 + k) * y_stride, acc[k]);
  }
}

// Every token, four at a time, then one at a time.
template <class Packed, class Codes>
SMELT_PACKED_TARGET void Gemm(const void* panel_bytes, int64_t nb, const uint8_t* a, size_t a_stride,
                              const int32_t* a_sums, int64_t T, float* y, int64_t y_stride) {
  const auto* panel = static_cast<const Packed*>(panel_bytes);
  int64_t t = 0;
  for (; t + 4 <= T; t += 4) Tokens<Packed, Codes, 4>(panel, nb, a, a_stride, a_sums, t, y, y_stride);
  for (; t < T; ++t) Tokens<Packed, Codes, 1>(panel, nb, a, a_stride, a_sums, t, y, y_stride);
}
