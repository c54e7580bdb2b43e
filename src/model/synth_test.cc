// smelt synth's --sparsity: against the dense model of the same seed, every row of a block
// matrix has exactly round(S · cols) zeros, where its smallest magnitudes were, and everything
// else (kept weights, embeddings, head, norms) is unchanged.
#include "model/synth.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"

namespace smelt {
namespace {

TEST(Synth, SparsityZeroesTheSmallestMagnitudesOfEachBlockMatrixRow) {
  const SynthOptions dense_opt{.dim = 64, .layers = 2, .heads = 4, .kv_heads = 2, .ff = 96, .vocab = 300};
  SynthOptions sparse_opt = dense_opt;
  sparse_opt.sparsity = 0.7;
  const Model dense = SynthesizeModel(dense_opt), sparse = SynthesizeModel(sparse_opt);
  int block_matrices = 0;
  for (const Tensor& d : dense.weights.all()) {
    const Tensor& s = sparse.weights.Get(d.name);
    ASSERT_EQ(s.nelements(), d.nelements());
    const bool block = d.n_dims == 2 && d.name.rfind("blk.", 0) == 0;
    block_matrices += block;
    const int64_t cols = d.ne[0];
    for (int64_t r = 0; r < d.nrows(); ++r) {
      const float* dr = d.as<float>() + r * cols;
      const float* sr = s.as<float>() + r * cols;
      float largest_zeroed = 0.0f, smallest_kept = INFINITY;
      int64_t zeros = 0;
      for (int64_t c = 0; c < cols; ++c) {
        if (sr[c] == 0.0f && dr[c] != 0.0f) {
          ++zeros;
          largest_zeroed = std::max(largest_zeroed, std::fabs(dr[c]));
        } else {
          EXPECT_EQ(sr[c], dr[c]) << d.name << " row " << r << " col " << c;
          smallest_kept = std::min(smallest_kept, std::fabs(dr[c]));
        }
      }
      EXPECT_EQ(zeros, block ? std::llround(0.7 * (double)cols) : 0) << d.name << " row " << r;
      if (block) {
        EXPECT_LE(largest_zeroed, smallest_kept) << d.name << " row " << r;
      }
    }
  }
  EXPECT_EQ(block_matrices, 2 * 7);
  sparse_opt.sparsity = 1.0;
  EXPECT_THROW(SynthesizeModel(sparse_opt), Error);
}

}  // namespace
}  // namespace smelt
