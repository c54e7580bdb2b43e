// The fused forward steps (kernels/fused.h) against the plain steps they replace: RmsNorm then
// QuantizeActivationRow gives the same bytes as RmsNormEncode; one ProjectGroup gives each
// MatMul/MatMulPacked output (and output + residual) bit for bit; ProjectSwiGlu gives SwiGlu of
// the two products bit for bit. Online-softmax attention (kernels/attention.h) against the
// two-pass AttendHead and a double-precision sum, within bounds derived from the values' norms.
#include "kernels/fused.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "formats/activation.h"
#include "formats/types.h"
#include "kernels/attention.h"
#include "kernels/ops.h"
#include "tiny_models.h"

namespace smelt {
namespace {

using tiny::RandomVector;

// rows × cols f32 weights encoded as `type` (an f32 tensor for kF32).
Tensor Weight(DType type, int64_t rows, int64_t cols, uint32_t seed) {
  const Tensor f32 = MakeF32Tensor("w" + std::to_string(seed), {cols, rows}, RandomVector(rows * cols, seed, 0.1f));
  return type == DType::kF32 ? f32 : tiny::EncodeTensor(f32, type);
}

struct FusedEncoded {
  std::vector<uint8_t> bytes;
  std::vector<int32_t> sums;
  std::vector<uint8_t> prompt_tokens;
  EncodedRows rows;
  FusedEncoded(DType type, int64_t T, int64_t C)
      : bytes(EncodedRowBytes(type, C) * T + 1), sums(EncodedRowSums(type, C) * T + 1),
        prompt_tokens(PromptTokensBytes(T, C)) {
    rows.type = type;
    rows.data = bytes.data();
    rows.sums = sums.data();
    rows.prompt_tokens = prompt_tokens.data();
  }
};

TEST(FusedKernels, RmsNormEncodeIsRmsNormThenEncodeByteForByte) {
  for (DType act : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ8_1, DType::kQ8_K, DType::kI8_PC})
    for (int64_t C : {256, 512, 96})
      for (int64_t T : {3, 80}) {  // 80 rows of 256 or more are split across 2 threads
        if (C % Traits(act).block_size) continue;
        std::vector<float> x = RandomVector(T * C, 1 + C), w = RandomVector(C, 2, 0.3f);
        x[5] *= 40.0f;  // an outlier: codes at ±127 in its block
        FusedEncoded fused(act, T, C);
        std::vector<float> scratch(2 * C);
        RmsNormEncode(x.data(), w.data(), 1e-5f, T, C, fused.rows, scratch.data(), 2);
        // The plain steps, and each Q8_0 block's code sum counted here.
        const size_t row_bytes = RowBytes(act, C);
        std::vector<uint8_t> want(row_bytes * T);
        std::vector<float> h(C);
        for (int64_t t = 0; t < T; ++t) {
          RmsNorm(h.data(), x.data() + t * C, w.data(), C, 1e-5f);
          QuantizeActivationRow(act, h.data(), want.data() + t * row_bytes, C);
          if (act != DType::kQ8_0) continue;
          for (int64_t b = 0; b < C / 32; ++b) {
            int32_t s = 0;
            for (int j = 0; j < 32; ++j) s += (int8_t)want[t * row_bytes + b * 34 + 2 + j];
            EXPECT_EQ(fused.sums[t * (C / 32) + b], s) << "row " << t << " block " << b;
          }
        }
        EXPECT_EQ(fused.rows.row_bytes, row_bytes);
        EXPECT_EQ(0, std::memcmp(fused.bytes.data(), want.data(), want.size())) << Traits(act).name << " C=" << C;
        // EncodeRows on 2 threads: QuantizeActivationRow of each row.
        FusedEncoded plain(act, T, C);
        EncodeRows(x.data(), T, C, plain.rows, 2);
        for (int64_t t = 0; t < T; ++t) QuantizeActivationRow(act, x.data() + t * C, want.data() + t * row_bytes, C);
        EXPECT_EQ(0, std::memcmp(plain.bytes.data(), want.data(), want.size())) << Traits(act).name << " C=" << C;
      }
}

// The plain product of one weight: MatMulPacked for a packed copy, else MatMul.
std::vector<float> Plain(const Tensor& w, const PackedMatrix* packed, const std::vector<float>& x, int64_t T,
                         int threads) {
  std::vector<float> y(T * w.nrows());
  if (packed) {
    MatMulPacked(*packed, x.data(), T, y.data(), threads);
  } else {
    MatMul(w, x.data(), T, y.data(), threads, Activations::kGgml);
  }
  return y;
}

struct FusedCase {
  DType type;
  bool pack;
};

TEST(FusedKernels, GroupedProjectionsEqualSeparateProductsBitForBit) {
  if (!CpuHasAvx2FmaF16c()) GTEST_SKIP() << "no fast kernels on this CPU";
  const int64_t C = 256;
  for (FusedCase k : {FusedCase{DType::kQ4_0, true}, FusedCase{DType::kQ8_0, true}, FusedCase{DType::kIQ4_NL, true},
                 FusedCase{DType::kQ2_K, true}, FusedCase{DType::kQ4_0, false}, FusedCase{DType::kQ5_0, false},
                 FusedCase{DType::kQ4_K, false},
                 FusedCase{DType::kF16, false}, FusedCase{DType::kBF16, false}}) {
    if (k.pack && !FastPackedGemm(k.type)) continue;  // Q2_K packs only on AVX-512
    // Row counts that leave a partial block and a padded packed panel.
    const Tensor wq = Weight(k.type, 40, C, 11), wk = Weight(k.type, 20, C, 12), wv = Weight(k.type, 24, C, 13);
    std::vector<PackedMatrix> packs;
    if (k.pack)
      for (const Tensor* w : {&wq, &wk, &wv}) packs.push_back(PackWeights(*w));
    EncodedWeight e[3];
    const Tensor* ws[3] = {&wq, &wk, &wv};
    for (int i = 0; i < 3; ++i)
      ASSERT_TRUE(FindEncodedWeight(*ws[i], k.pack ? &packs[i] : nullptr, Activations::kGgml, e[i]));
    for (int64_t T : {1, 3, 4, 7, 20})
      for (int threads : {1, 2}) {
        const std::vector<float> x = RandomVector(T * C, 100 + T);
        FusedEncoded a(e[0].act, T, C);
        EncodeRows(x.data(), T, C, a.rows);
        std::vector<float> yq(T * 40), yk(T * 20), yv = RandomVector(T * 24, 7);  // v: a residual to add to
        const std::vector<float> residual = yv;
        const Projection group[] = {{&e[0], yq.data(), Write::kStore},
                                    {&e[1], yk.data(), Write::kStore},
                                    {&e[2], yv.data(), Write::kAdd}};
        std::vector<float> scratch(ProjectScratchFloats(T, C) * threads);
        ProjectGroup(group, a.rows, threads, scratch.data());
        const std::string what = std::string(Traits(k.type).name) + (k.pack ? " packed" : "") +
                                 " T=" + std::to_string(T) + " threads=" + std::to_string(threads);
        EXPECT_EQ(yq, Plain(wq, k.pack ? &packs[0] : nullptr, x, T, 1)) << what;
        EXPECT_EQ(yk, Plain(wk, k.pack ? &packs[1] : nullptr, x, T, 1)) << what;
        std::vector<float> want_v = Plain(wv, k.pack ? &packs[2] : nullptr, x, T, 1);
        std::vector<float> sum = residual;
        AddInPlace(sum.data(), want_v.data(), (int64_t)sum.size());
        EXPECT_EQ(yv, sum) << what;
      }
  }
}

TEST(FusedKernels, SwiGluProjectionIsSwiGluOfTheTwoProductsBitForBit) {
  if (!CpuHasAvx2FmaF16c()) GTEST_SKIP() << "no fast kernels on this CPU";
  const int64_t C = 256, F = 72;
  for (FusedCase k : {FusedCase{DType::kQ4_0, true}, FusedCase{DType::kQ8_0, true}, FusedCase{DType::kQ2_K, true},
                 FusedCase{DType::kQ4_K, false}, FusedCase{DType::kF16, false}, FusedCase{DType::kBF16, false}}) {
    if (k.pack && !FastPackedGemm(k.type)) continue;
    const Tensor gate = Weight(k.type, F, C, 21), up = Weight(k.type, F, C, 22);
    std::vector<PackedMatrix> packs;
    if (k.pack) packs = {PackWeights(gate), PackWeights(up)};
    EncodedWeight eg, eu;
    ASSERT_TRUE(FindEncodedWeight(gate, k.pack ? &packs[0] : nullptr, Activations::kGgml, eg));
    ASSERT_TRUE(FindEncodedWeight(up, k.pack ? &packs[1] : nullptr, Activations::kGgml, eu));
    for (int64_t T : {1, 5, 20})
      for (int threads : {1, 2}) {
        const std::vector<float> x = RandomVector(T * C, 200 + T, 3.0f);
        FusedEncoded a(eg.act, T, C);
        EncodeRows(x.data(), T, C, a.rows);
        std::vector<float> y(T * F), scratch(ProjectScratchFloats(T, C) * threads);
        ProjectSwiGlu(eg, eu, a.rows, y.data(), threads, scratch.data());
        std::vector<float> g = Plain(gate, k.pack ? &packs[0] : nullptr, x, T, 1);
        const std::vector<float> u = Plain(up, k.pack ? &packs[1] : nullptr, x, T, 1);
        SwiGlu(g.data(), g.data(), u.data(), T * F);
        EXPECT_EQ(y, g) << Traits(k.type).name << " T=" << T << " threads=" << threads;
      }
  }
}

TEST(FusedKernels, WeightsWithoutAnEncodedKernelAreDeclined) {
  const Tensor f32 = Weight(DType::kF32, 8, 64, 31), q8 = Weight(DType::kQ8_0, 8, 64, 32);
  EncodedWeight e;
  EXPECT_FALSE(FindEncodedWeight(f32, nullptr, Activations::kGgml, e));  // f32: MatMul reads it in place
  EXPECT_FALSE(FindEncodedWeight(q8, nullptr, Activations::kExact, e));  // exact activations: no encoding
  if (CpuHasAvx2FmaF16c()) {
    EXPECT_TRUE(FindEncodedWeight(q8, nullptr, Activations::kGgml, e));
  }
}

// One head's attention over n keys in a strided cache, with the double-precision result and the
// error bound an f32 computation must meet. Every method is a convex combination of the value
// rows; each weight carries a few f32 roundings (exp, the running rescale once per tile, the
// normalization), so |error| ≤ c·2^-24·max_j |v_j| with c growing with the number of keys summed in
// f32 and the tiles, plus the scores' own rounding (hd terms of |q|·|k|) amplified by exp.
struct AttentionCase {
  static constexpr int hd = 32;
  int64_t n, stride;  // stride: 3·hd, a head inside a wider cache row; hd, a decoded tile
  float scale = 1.0f / std::sqrt((float)hd);
  std::vector<float> q, k, v;
  std::vector<double> want;
  double tol = 0;

  AttentionCase(int64_t n_keys, float logit_scale, int64_t row_stride = 3 * hd)
      : n(n_keys),
        stride(row_stride),
        q(RandomVector(hd, 1 + n_keys, logit_scale)),
        k(RandomVector(n_keys * row_stride, 2 + n_keys)),
        v(RandomVector(n_keys * row_stride, 3 + n_keys)),
        want(hd) {
    std::vector<double> s(n);
    double mx = -INFINITY, vmax = 0, qk_mass = 0;
    for (int64_t j = 0; j < n; ++j) {
      double d = 0, m = 0;
      for (int i = 0; i < hd; ++i) {
        d += (double)q[i] * k[j * stride + i];
        m += std::fabs((double)q[i] * k[j * stride + i]);
        vmax = std::max(vmax, (double)std::fabs(v[j * stride + i]));
      }
      s[j] = d * scale;
      mx = std::max(mx, s[j]);
      qk_mass = std::max(qk_mass, m * scale);
    }
    double sum = 0;
    for (double& e : s) sum += (e = std::exp(e - mx));
    for (int i = 0; i < hd; ++i)
      for (int64_t j = 0; j < n; ++j) want[i] += s[j] / sum * v[j * stride + i];
    tol = vmax * std::ldexp(1.0, -24) * (4.0 * hd * qk_mass + 8.0 * (double)(n / kAttnTile + 8));
  }
};

constexpr int64_t kKeyCounts[] = {1, 2, 17, 63, 64, 65, 130, 300};

// Online softmax over tiles against the two-pass AttendHead and the double sum.
TEST(FusedKernels, OnlineAttentionMatchesTwoPassSoftmax) {
  for (int64_t n : kKeyCounts)
    for (float logit_scale : {1.0f, 30.0f}) {
      const AttentionCase c(n, logit_scale);
      std::vector<float> online(c.hd), two_pass(c.hd), scores(n);
      AttendHeadOnline(c.q.data(), c.k.data(), c.v.data(), n, c.stride, c.hd, c.scale, online.data());
      AttendHead(c.q.data(), c.k.data(), c.v.data(), n, c.stride, c.hd, c.scale, two_pass.data(), scores.data());
      for (int i = 0; i < c.hd; ++i) {
        EXPECT_NEAR(online[i], c.want[i], c.tol) << "n=" << n << " scale=" << logit_scale << " dim " << i;
        EXPECT_NEAR(online[i], two_pass[i], 2 * c.tol) << "n=" << n << " scale=" << logit_scale << " dim " << i;
      }
    }
}

// Each twin of the tile step, run through the whole recurrence on its own, against the double sum
// (and so against each other), at head sizes with and without a partial register.
TEST(FusedKernels, AttendTileTwinsMatchTheDoubleSum) {
  std::vector<std::pair<const char*, AttendTileFn>> twins = {{"reference", ReferenceAttendTile}};
  if (CpuHasAvx512F() && Avx512AttendTile()) twins.push_back({"avx512", Avx512AttendTile()});
  for (const auto& [name, tile] : twins)
    for (int64_t n : kKeyCounts)
      for (float logit_scale : {1.0f, 30.0f})
        for (int64_t stride : {(int64_t)3 * AttentionCase::hd, (int64_t)AttentionCase::hd}) {
        const AttentionCase c(n, logit_scale, stride);
        // hd 32 as in the case, and the first 24 dimensions of it (a masked register), whose
        // double result is recomputed here.
        for (int hd : {32, 24}) {
          std::vector<float> out(hd);
          OnlineSoftmax s = OnlineSoftmax::Start(out.data(), hd);
          for (int64_t j0 = 0; j0 < n; j0 += kAttnTile)
            tile(c.q.data(), c.k.data() + j0 * c.stride, c.v.data() + j0 * c.stride, std::min(kAttnTile, n - j0),
                 c.stride, hd, c.scale, s, out.data());
          FinishAttend(s, out.data(), hd);
          std::vector<double> want(c.want.begin(), c.want.begin() + hd);
          if (hd != c.hd) {
            std::vector<double> e(n);
            double mx = -INFINITY, sum = 0;
            for (int64_t j = 0; j < n; ++j) {
              double d = 0;
              for (int i = 0; i < hd; ++i) d += (double)c.q[i] * c.k[j * c.stride + i];
              mx = std::max(mx, e[j] = d * c.scale);
            }
            for (double& x : e) sum += (x = std::exp(x - mx));
            std::fill(want.begin(), want.end(), 0.0);
            for (int i = 0; i < hd; ++i)
              for (int64_t j = 0; j < n; ++j) want[i] += e[j] / sum * c.v[j * c.stride + i];
          }
          for (int i = 0; i < hd; ++i)
            EXPECT_NEAR(out[i], want[i], c.tol) << name << " n=" << n << " scale=" << logit_scale << " hd " << hd
                                                << " dim " << i;
        }
      }
  if (twins.size() == 1) GTEST_SKIP() << "no AVX-512 on this CPU: only the reference was checked";
}

}  // namespace
}  // namespace smelt
