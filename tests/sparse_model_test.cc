// A model pruned in f32 (2:4 in every group of four, or 50 % / 70 % of each row), its block
// matrices then stored in a sparse type, runs through the sparse kernels (Activations::kGgml)
// with logits close to the pruned f32 model's: at most 1.5 times as far as the same pruned model
// stored in the dense type of the same precision (q8_0 for the int8 types, q4_0 for s24_q4), and
// within a fraction of the logits' own spread.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "formats/types.h"
#include "runtime/session.h"
#include "tiny_models.h"

namespace smelt {
namespace {

bool IsBlockMatrix(const Tensor& t) { return t.n_dims == 2 && t.name.rfind("blk.", 0) == 0; }

// Keeps the two largest magnitudes of every group of 4 (ties: the lower position).
void Prune24(std::vector<float>& v) {
  for (size_t g = 0; g + 4 <= v.size(); g += 4) {
    int order[4] = {0, 1, 2, 3};
    float* x = v.data() + g;
    std::stable_sort(order, order + 4, [x](int a, int b) { return std::fabs(x[a]) > std::fabs(x[b]); });
    x[order[2]] = x[order[3]] = 0.0f;
  }
}

// Zeroes the `sparsity` fraction of smallest magnitudes of every row of `cols` values.
void PruneRows(std::vector<float>& v, int64_t cols, double sparsity) {
  std::vector<int64_t> order((size_t)cols);
  for (size_t r = 0; r < v.size() / (size_t)cols; ++r) {
    float* x = v.data() + r * (size_t)cols;
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [x](int64_t a, int64_t b) { return std::fabs(x[a]) < std::fabs(x[b]); });
    for (int64_t i = 0; i < (int64_t)std::llround(sparsity * (double)cols); ++i) x[order[(size_t)i]] = 0.0f;
  }
}

// `m` with its block matrices pruned (sparsity 0: 2:4) in f32.
Model Pruned(const Model& m, double sparsity) {
  Model out = m;
  for (const Tensor& t : m.weights.all()) {
    if (!IsBlockMatrix(t)) continue;
    std::vector<float> v(t.as<float>(), t.as<float>() + t.nelements());
    if (sparsity == 0.0) {
      Prune24(v);
    } else {
      PruneRows(v, t.ne[0], sparsity);
    }
    out.weights.Set(MakeF32Tensor(t.name, {t.ne[0], t.ne[1]}, std::move(v)));
  }
  return out;
}

// `m` with its block matrices in `block_type` and the other matrices (embeddings, head) in `other`.
Model Encoded(const Model& m, DType block_type, DType other) {
  Model out = m;
  for (const Tensor& t : m.weights.all())
    if (t.n_dims == 2) out.weights.Set(tiny::EncodeTensor(t, IsBlockMatrix(t) ? block_type : other));
  return out;
}

std::vector<float> DefaultLogits(const Model& m, const std::vector<int32_t>& tokens) {
  Session s(m, {.threads = 1});
  const auto l = s.Eval(tokens, true);
  return {l.begin(), l.end()};
}

double Rms(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += std::pow((double)a[i] - (b.empty() ? 0.0 : b[i]), 2);
  return std::sqrt(s / (double)a.size());
}

TEST(SparseModel, SparseTypesRunCloseToThePrunedModel) {
  const Model f32 = tiny::TinyLlama({.dim = 128, .layers = 2, .heads = 4, .kv_heads = 2, .ff = 256, .vocab = 64, .seed = 5});
  std::vector<int32_t> tokens;
  for (int i = 0; i < 16; ++i) tokens.push_back((11 * i * i + 5 * i + 2) % f32.config.vocab);
  struct Case {
    DType sparse, dense;
    double sparsity;  // 0: 2:4
    double rel;       // rms(logit error) / rms(logits) within which the model still predicts
  };
  const Case cases[] = {{DType::kS24_Q8, DType::kQ8_0, 0.0, 0.1},
                        {DType::kS24_Q4, DType::kQ4_0, 0.0, 0.5},
                        {DType::kS24_W4A8, DType::kQ4_0, 0.0, 0.5},
                        {DType::kSP50_Q8, DType::kQ8_0, 0.5, 0.1},
                        {DType::kSP70_Q8, DType::kQ8_0, 0.7, 0.1},
                        {DType::kSP50_W8A8, DType::kW8A8, 0.0, 0.1},
                        {DType::kSP70_W8A8, DType::kW8A8, 0.7, 0.1},
                        {DType::kSP50_F16, DType::kF16, 0.0, 0.1},
                        {DType::kSP70_F16, DType::kF16, 0.7, 0.1}};
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(DTypeName(c.sparse)));
    const Model pruned = Pruned(f32, c.sparsity);
    const std::vector<float> want = DefaultLogits(pruned, tokens);
    const Model sparse_model = Encoded(pruned, c.sparse, c.dense);
    const std::vector<float> sparse = DefaultLogits(sparse_model, tokens);
    const std::vector<float> dense = DefaultLogits(Encoded(pruned, c.dense, c.dense), tokens);
    const double err = Rms(sparse, want), dense_err = Rms(dense, want);
    std::printf("%s: rms logit error %.3g (dense %s %.3g), rms logits %.3g\n", std::string(DTypeName(c.sparse)).c_str(),
                err, std::string(DTypeName(c.dense)).c_str(), dense_err, Rms(want, {}));
    EXPECT_GT(err, 0.0);  // the encoded model ran, not the f32 one
    // Storing only the non-zeros costs no more than a little accuracy over the dense type (the
    // bitmask types' per-row scale is coarser than q8_0's per-32 one).
    EXPECT_LT(err, 1.5 * dense_err);
    EXPECT_LT(err, c.rel * Rms(want, {}));
    // The w8a8 bitmask rows keep w8a8's row scale and codes and sum the same integers: on a
    // pruned input the model gives the dense w8a8 model's logits, bit for bit.
    if (c.dense == DType::kW8A8) {
      EXPECT_EQ(sparse, dense);
    }
    // On a 2:4 input s24_q8 keeps q8_0's scale and codes: the same weights, bit for bit.
    if (c.sparse == DType::kS24_Q8) {
      for (const Tensor& t : pruned.weights.all()) {
        if (!IsBlockMatrix(t)) continue;
        EXPECT_EQ(DequantizeAll(sparse_model.weights.Get(t.name)), DequantizeAll(tiny::EncodeTensor(t, DType::kQ8_0)))
            << t.name;
      }
    }
  }
}

}  // namespace
}  // namespace smelt
