// GPTQ against independent references: its naive twin; round-to-nearest (the formats' own
// from_float) on the layer's output error for correlated calibration inputs; RTN on the block
// grids when H is the identity (no cross-column feedback); the exact quadratic its proxy loss
// stands for; the grids of its output; dead inputs; and bad arguments.
#include "compress/gptq.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "calib_layer.h"
#include "error_of.h"
#include "core/error.h"
#include "formats/codes.h"
#include "formats/types.h"

namespace smelt {
namespace {

using Layer = testing::CalibLayer;
using testing::DampedQuadratic;

using testing::MakeCalibLayer;

std::vector<float> Decode(DType t, const std::vector<uint8_t>& data, int64_t oc, int64_t c) {
  std::vector<float> y((size_t)(oc * c));
  Traits(t).to_float(data.data(), y.data(), oc * c);
  return y;
}

std::vector<uint8_t> Encode(DType t, const std::vector<float>& w, int64_t oc, int64_t c) {
  std::vector<uint8_t> data(RowBytes(t, c) * (size_t)oc);
  Traits(t).from_float(w.data(), data.data(), oc * c);
  return data;
}

// ‖X Wᵀ − X Ŵᵀ‖², the layer's squared output error over the calibration inputs.
double OutputError(const Layer& l, const std::vector<float>& w_hat) {
  double total = 0;
  for (int64_t s = 0; s < l.n; ++s) {
    for (int64_t o = 0; o < l.oc; ++o) {
      double y = 0;
      for (int64_t j = 0; j < l.c; ++j) {
        y += (double)l.x[(size_t)(s * l.c + j)] * ((double)l.w[(size_t)(o * l.c + j)] - w_hat[(size_t)(o * l.c + j)]);
      }
      total += y * y;
    }
  }
  return total;
}

std::string Name(DType t, bool act_order) {
  return std::string(DTypeName(t)) + (act_order ? " act-order" : "");
}

// ggml's formats, and smelt's own: group-int of each width and kind (dense 3-bit codes straddle
// bytes), NF4, pow2 and FP8 (codebooks not monotone in code order, FP8's with NaN codes).
const DType kAllCodeTypes[] = {DType::kQ4_0,     DType::kQ4_1,      DType::kQ5_0,      DType::kQ5_1,
                               DType::kQ8_0,     DType::kQ2_K,      DType::kQ3_K,      DType::kQ4_K,
                               DType::kQ5_K,     DType::kQ6_K,      DType::kIQ4_NL,    DType::kI4S_G32,
                               DType::kI3S_G32,  DType::kI3A_G64,   DType::kI2A_G128,  DType::kNF4,
                               DType::kPow2_B32, DType::kF8E4M3_B32, DType::kF8E5M2_B32};

// Both compute every quantity in double and visit the same elements in the same order; they
// differ only in summation order (batched dgemm vs one update at a time, LAPACK vs the plain
// Cholesky), i.e. in the last few bits of double values. A code can only differ when a weight
// lies within ~1e-13 of a midpoint between two grid values, which for these few thousand f32
// weights has a chance of order 1e-9, so the encoded bytes must be identical; the proxy losses
// agree to the same relative precision. (Slow: not in the sanitizer build, where the other GPTQ
// tests run the fast path.)
TEST(CompressGptq, FastEqualsNaiveTwinSlow) {
  const Layer small = MakeCalibLayer(12, 256, 300, 1);
  const Layer wide = MakeCalibLayer(6, 512, 400, 2);  // two super-blocks, several batches
  for (DType t : kAllCodeTypes) {
    for (bool act_order : {false, true}) {
      for (const Layer* l : {&small, &wide}) {
        if (l == &wide && t != DType::kQ4_K && t != DType::kQ3_K) continue;
        SCOPED_TRACE(Name(t, act_order) + " C=" + std::to_string(l->c));
        GptqOptions opts;
        opts.act_order = act_order;
        opts.lazy_block = act_order ? 96 : 128;  // 96: batches that cut through blocks
        const GptqResult naive = GptqQuantizeNaive(l->w.data(), l->oc, l->c, l->h.data(), t, opts);
        for (int threads : {1, 2}) {
          opts.threads = threads;
          const GptqResult fast = GptqQuantize(l->w.data(), l->oc, l->c, l->h.data(), t, opts);
          EXPECT_EQ(fast.data, naive.data) << threads << " threads";
          EXPECT_NEAR(fast.proxy_loss, naive.proxy_loss, 1e-9 * naive.proxy_loss) << threads << " threads";
          EXPECT_EQ(fast.damp, naive.damp);
        }
      }
    }
  }
}

// The point of GPTQ: a smaller layer output error than rounding each weight to nearest.
TEST(CompressGptq, LowerLayerOutputErrorThanRtn) {
  const Layer l = MakeCalibLayer(64, 256, 512, 3);
  for (DType t : kAllCodeTypes) {
    const double rtn = OutputError(l, Decode(t, Encode(t, l.w, l.oc, l.c), l.oc, l.c));
    for (bool act_order : {false, true}) {
      GptqOptions opts;
      opts.act_order = act_order;
      const GptqResult r = GptqQuantize(l.w.data(), l.oc, l.c, l.h.data(), t, opts);
      const double gptq = OutputError(l, Decode(t, r.data, l.oc, l.c));
      std::printf("  %-18s output error GPTQ/RTN %.3f\n", Name(t, act_order).c_str(), gptq / rtn);
      EXPECT_LT(gptq, rtn) << Name(t, act_order);
    }
  }
}

// With H = I the inverse's factor is diagonal: no column feeds another, and GPTQ is rounding
// to nearest on the grids that from_float fixes from the unchanged weights.
TEST(CompressGptq, IdentityHessianIsRoundToNearestOnTheGrids) {
  const int64_t oc = 8, c = 512;
  const Layer l = MakeCalibLayer(oc, c, 1, 4);
  std::vector<double> identity((size_t)(c * c), 0.0);
  for (int64_t i = 0; i < c; ++i) identity[(size_t)(i * c + i)] = 1.0;
  for (DType t : kAllCodeTypes) {
    const TypeTraits& tr = Traits(t);
    std::vector<uint8_t> expected = Encode(t, l.w, oc, c);
    std::vector<ElementGrid> grids((size_t)tr.block_size);
    std::vector<int> codes((size_t)tr.block_size);
    for (size_t b = 0; b < expected.size() / tr.type_size; ++b) {
      uint8_t* block = &expected[b * tr.type_size];
      BlockGrids(t, block, grids.data());
      for (int64_t j = 0; j < tr.block_size; ++j) {
        codes[(size_t)j] = NearestCode(grids[(size_t)j], l.w[b * (size_t)tr.block_size + (size_t)j]);
      }
      SetBlockCodes(t, block, codes.data());
    }
    for (bool act_order : {false, true}) {
      GptqOptions opts;
      opts.act_order = act_order;
      const GptqResult r = GptqQuantize(l.w.data(), oc, c, identity.data(), t, opts);
      EXPECT_EQ(r.data, expected) << Name(t, act_order);
    }
  }
}

// Each step's (w - q)^2 / [H_F^-1]_qq is the exact increase of the quadratic (W - Ŵ) H (W - Ŵ)ᵀ
// when that weight is fixed and the later ones optimally compensate, so the proxy loss must
// equal the quadratic evaluated directly on the decoded output (with the dampened H).
TEST(CompressGptq, ProxyLossIsTheDampedQuadraticError) {
  const Layer l = MakeCalibLayer(16, 256, 512, 5);
  for (DType t : {DType::kQ4_0, DType::kQ2_K, DType::kQ6_K, DType::kIQ4_NL, DType::kI3S_G32, DType::kPow2_B32}) {
    for (bool act_order : {false, true}) {
      GptqOptions opts;
      opts.act_order = act_order;
      const GptqResult r = GptqQuantize(l.w.data(), l.oc, l.c, l.h.data(), t, opts);
      const double quadratic = DampedQuadratic(l, Decode(t, r.data, l.oc, l.c), r.damp);
      EXPECT_NEAR(r.proxy_loss, quadratic, 1e-6 * quadratic) << Name(t, act_order);
      EXPECT_EQ(r.damp, (double)opts.damp);
    }
  }
}

// GPTQ minimises the proxy quadratic greedily, so on smelt's 3-bit group-int types (where
// rounding errors are largest relative to the weights) its loss must be below that of
// round-to-nearest, the format's own from_float, measured by the same quadratic.
TEST(CompressGptq, NativeThreeBitProxyLossBelowRtn) {
  const Layer l = MakeCalibLayer(32, 256, 512, 11);
  for (DType t : {DType::kI3S_G32, DType::kI3A_G32, DType::kI3S_G128, DType::kI3A_G128}) {
    for (bool act_order : {false, true}) {
      GptqOptions opts;
      opts.act_order = act_order;
      const GptqResult r = GptqQuantize(l.w.data(), l.oc, l.c, l.h.data(), t, opts);
      const double rtn = DampedQuadratic(l, Decode(t, Encode(t, l.w, l.oc, l.c), l.oc, l.c), r.damp);
      std::printf("  %-18s proxy loss GPTQ/RTN %.3f\n", Name(t, act_order).c_str(), r.proxy_loss / rtn);
      EXPECT_LT(r.proxy_loss, rtn) << Name(t, act_order);
    }
  }
}

// The output's codes lie in each format's range (Q8_0 never uses -128), and with act-order the
// scales are exactly from_float's of the original weights (static groups).
TEST(CompressGptq, OutputCodesAreOnTheGrids) {
  const Layer l = MakeCalibLayer(8, 256, 256, 6);
  for (DType t : kAllCodeTypes) {
    const TypeTraits& tr = Traits(t);
    const std::vector<uint8_t> rtn = Encode(t, l.w, l.oc, l.c);
    for (bool act_order : {false, true}) {
      SCOPED_TRACE(Name(t, act_order));
      GptqOptions opts;
      opts.act_order = act_order;
      const GptqResult r = GptqQuantize(l.w.data(), l.oc, l.c, l.h.data(), t, opts);
      ASSERT_EQ(r.data.size(), RowBytes(t, l.c) * (size_t)l.oc);
      const std::vector<float> y = Decode(t, r.data, l.oc, l.c);
      std::vector<ElementGrid> grids((size_t)tr.block_size), rtn_grids((size_t)tr.block_size);
      std::vector<int> codes((size_t)tr.block_size);
      for (size_t b = 0; b < r.data.size() / tr.type_size; ++b) {
        BlockGrids(t, &r.data[b * tr.type_size], grids.data());
        BlockGrids(t, &rtn[b * tr.type_size], rtn_grids.data());
        GetBlockCodes(t, &r.data[b * tr.type_size], codes.data());
        for (int64_t j = 0; j < tr.block_size; ++j) {
          const ElementGrid& g = grids[(size_t)j];
          ASSERT_GE(codes[(size_t)j], g.qmin);
          ASSERT_LE(codes[(size_t)j], g.qmax);
          ASSERT_EQ(y[b * (size_t)tr.block_size + (size_t)j], GridValue(g, codes[(size_t)j]));
          if (act_order) {
            ASSERT_EQ(g.scale, rtn_grids[(size_t)j].scale);
            ASSERT_EQ(g.offset, rtn_grids[(size_t)j].offset);
          }
        }
      }
    }
  }
}

// Dead inputs (always zero in the calibration data) cannot affect the output: whatever their
// weights, the result is the same, their columns get the grid value nearest 0, and the rest
// still beats RTN.
TEST(CompressGptq, DeadInputsAreIgnored) {
  const std::vector<int64_t> dead = {0, 5, 31, 32, 100, 255};
  const Layer l = MakeCalibLayer(16, 256, 512, 7, dead);
  Layer other = l;
  std::mt19937 rng(8);
  std::normal_distribution<float> g(0.0f, 5.0f);
  for (int64_t o = 0; o < l.oc; ++o) {
    for (int64_t j : dead) other.w[(size_t)(o * l.c + j)] = g(rng);
  }
  for (DType t : {DType::kQ4_0, DType::kQ4_K, DType::kIQ4_NL}) {
    const TypeTraits& tr = Traits(t);
    for (bool act_order : {false, true}) {
      SCOPED_TRACE(Name(t, act_order));
      GptqOptions opts;
      opts.act_order = act_order;
      const GptqResult a = GptqQuantize(l.w.data(), l.oc, l.c, l.h.data(), t, opts);
      const GptqResult b = GptqQuantize(other.w.data(), l.oc, l.c, l.h.data(), t, opts);
      EXPECT_EQ(a.data, b.data);
      std::vector<ElementGrid> grids((size_t)tr.block_size);
      std::vector<int> codes((size_t)tr.block_size);
      for (int64_t o = 0; o < l.oc; ++o) {
        for (int64_t j : dead) {
          const uint8_t* block = &a.data[(size_t)o * RowBytes(t, l.c) + (size_t)(j / tr.block_size) * tr.type_size];
          BlockGrids(t, block, grids.data());
          GetBlockCodes(t, block, codes.data());
          const int64_t e = j % tr.block_size;
          EXPECT_EQ(codes[(size_t)e], NearestCode(grids[(size_t)e], 0.0)) << o << " " << j;
        }
      }
      const double rtn = OutputError(l, Decode(t, Encode(t, l.w, l.oc, l.c), l.oc, l.c));
      EXPECT_LT(OutputError(l, Decode(t, a.data, l.oc, l.c)), rtn);
    }
  }
}

// H with a negative eigenvalue beyond the default dampening: the dampening is raised until the
// factorization succeeds, and reported.
TEST(CompressGptq, IndefiniteHessianRaisesTheDampening) {
  const int64_t oc = 4, c = 64;
  const Layer l = MakeCalibLayer(oc, c, 1, 9);
  std::vector<double> h((size_t)(c * c), 0.0);
  for (int64_t i = 0; i < c; ++i) h[(size_t)(i * c + i)] = i == 7 ? -0.05 : 1.0;
  for (auto quantize : {GptqQuantize, GptqQuantizeNaive}) {
    const GptqResult r = quantize(l.w.data(), oc, c, h.data(), DType::kQ4_0, GptqOptions{});
    EXPECT_NEAR(r.damp, 0.1, 1e-6);  // 0.01 leaves H_77 < 0; 0.1 x mean(diag) ~ 0.1 suffices
    EXPECT_EQ(r.data.size(), RowBytes(DType::kQ4_0, c) * oc);
  }
}

using testing::ErrorOf;

TEST(CompressGptq, BadArgumentsAreErrors) {
  const Layer l = MakeCalibLayer(4, 288, 64, 10);  // 288 = 9 x 32: fine for Q4_0, not for Q4_K
  const GptqOptions ok;
  auto run = [&](int64_t oc, int64_t c, const double* h, DType t, const GptqOptions& o) {
    return ErrorOf([&] { GptqQuantize(l.w.data(), oc, c, h, t, o); });
  };
  EXPECT_EQ(run(4, 288, l.h.data(), DType::kQ4_0, ok), "");
  EXPECT_EQ(run(4, 288, l.h.data(), DType::kQ4_K, ok),
            "gptq: row length 288 is not a multiple of q4_K's block size 256");
  EXPECT_NE(run(4, 288, l.h.data(), DType::kF16, ok).find("no code access"), std::string::npos);
  EXPECT_NE(run(4, 288, l.h.data(), DType::kQ8_K, ok).find("no code access"), std::string::npos);
  EXPECT_NE(run(4, 0, l.h.data(), DType::kQ4_0, ok).find("bad weight shape"), std::string::npos);
  GptqOptions bad = ok;
  bad.lazy_block = 0;
  EXPECT_NE(run(4, 288, l.h.data(), DType::kQ4_0, bad).find("lazy_block"), std::string::npos);
  bad = ok;
  bad.threads = 0;
  EXPECT_NE(run(4, 288, l.h.data(), DType::kQ4_0, bad).find("threads"), std::string::npos);
  bad = ok;
  bad.damp = -1;
  EXPECT_NE(run(4, 288, l.h.data(), DType::kQ4_0, bad).find("damp"), std::string::npos);

  std::vector<double> h = l.h;
  h[3 * 288 + 9] = NAN;
  EXPECT_EQ(run(4, 288, h.data(), DType::kQ4_0, ok), "gptq: H (3, 9) is not finite");
  for (double& v : h) v = 0;
  for (int64_t i = 0; i < 288; ++i) h[(size_t)(i * 288 + i)] = -1.0;  // negative definite
  EXPECT_NE(run(4, 288, h.data(), DType::kQ4_0, ok).find("not positive definite"), std::string::npos);
  EXPECT_NE(ErrorOf([&] { GptqQuantizeNaive(l.w.data(), 4, 288, h.data(), DType::kQ4_0, ok); })
                .find("not positive definite"),
            std::string::npos);
}

}  // namespace
}  // namespace smelt
