// The walk over a sp70_w4a8 row that kernels/sparse_w4.h describes, shared by the AVX2 and AVX-512
// twins (qdot_avx2.cc, qdot_avx512.cc): included inside each twin's own namespace, where
// SMELT_SPARSE_W4_TARGET is the target attribute its functions carry, so that the twin's pack and
// step functions inline into it. No include guard: it is meant to be read more than once.
//
// Per window of kWindowGroups groups: pack(g, m, at) packs group g's activations (mask m) at
// packed index `at`; then step(j, lanes) for each whole step of kStep packed activations from
// index j on (and, after the row's last group, for the rest); then window_end(j) with j the
// packed activations taken (the twin sums its lanes and moves the rest, fewer than kStep, to the
// buffers' front).
template <int kStep, class Pack, class Step, class WindowEnd>
SMELT_SPARSE_W4_TARGET inline void WalkRow(const SparseMaskW4RowView& r, Pack pack, Step step, WindowEnd window_end) {
  int64_t have = 0;  // packed activations waiting
  for (int64_t g0 = 0; g0 < r.groups; g0 += sparse_w4::kWindowGroups) {
    const int64_t g1 = std::min(r.groups, g0 + sparse_w4::kWindowGroups);
    for (int64_t g = g0; g < g1; ++g) {
      const uint64_t m = sparse_w4::GroupMask(r.masks, g);
      pack(g, m, have);
      have += __builtin_popcountll(m);
    }
    int64_t j = 0;
    for (; j + kStep <= have; j += kStep) step(j, (int64_t)kStep);
    if (g1 == r.groups && j < have) step(j, have - j), j = have;  // the row's last packed activations
    window_end(j, have);
    have -= j;
  }
}
