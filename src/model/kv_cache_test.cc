// The KV cache's element types against independent roundings: f32 is exact, f16 equals the IEEE
// half of each value (core/half.h), i8 is within half a scale step with the scale max|x| / 127 of
// each (position, head); and end to end on stories260K, the log-probs with an f16 or i8 cache
// stay close to the f32 cache's, f16 closer than i8 (the order of their precisions).
#include "model/kv_cache.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "core/half.h"
#include "core/mapped_file.h"
#include "io/tokenizer.h"
#include "io/load.h"
#include "eval/perplexity.h"
#include "runtime/session.h"
#include "shared_assets.h"

namespace smelt {
namespace {

TEST(KvCache, TypesRoundAsDocumented) {
  const int layers = 2, heads = 3, hd = 16;
  std::mt19937 rng(5);
  std::normal_distribution<float> dist(0.0f, 2.0f);
  for (KvType type : {KvType::kF32, KvType::kF16, KvType::kI8}) {
    SCOPED_TRACE(std::string(KvTypeName(type)));
    KvCache cache(layers, heads, hd, 200, type);
    cache.Reserve(7);  // room for 64 positions (the least it holds)
    ASSERT_EQ(cache.reserved(), 64);
    std::vector<float> k(7 * heads * hd), v(7 * heads * hd);
    for (float& x : k) x = dist(rng);
    for (float& x : v) x = dist(rng) * 1e-3f;
    std::fill(k.begin() + 2 * heads * hd, k.begin() + 2 * heads * hd + hd, 0.0f);  // an all-zero head
    for (int p = 0; p < 7; ++p) cache.Store(1, p, &k[p * heads * hd], &v[p * heads * hd]);
    std::vector<float> got(7 * hd);
    // Before and after the storage grows (each head's positions move to their new place).
    for (int grown : {0, 1}) {
    SCOPED_TRACE(grown ? "grown" : "as reserved");
    if (grown) {
      cache.Reserve(100);  // twice as many
      ASSERT_EQ(cache.reserved(), 128);
    }
    for (bool values : {false, true}) {
      const std::vector<float>& src = values ? v : k;
      for (int h = 0; h < heads; ++h) {
        cache.LoadHead(1, values, h, 7, got.data());
        for (int p = 0; p < 7; ++p) {
          const float* x = &src[(p * heads + h) * hd];
          float amax = 0;
          for (int i = 0; i < hd; ++i) amax = std::max(amax, std::abs(x[i]));
          for (int i = 0; i < hd; ++i) {
            const float y = got[p * hd + i];
            if (type == KvType::kF32) {
              ASSERT_EQ(y, x[i]);
            } else if (type == KvType::kF16) {
              ASSERT_EQ(y, Fp16ToFloat(FloatToFp16(x[i])));
            } else {
              ASSERT_LE(std::abs(y - x[i]), amax / 127.0f * 0.5f * (1 + 1e-5f)) << p << " " << i;
            }
          }
        }
      }
    }
    }
    EXPECT_EQ(cache.BytesFor(10), 2u * layers * heads * 10 *
                                      (type == KvType::kF32 ? 4 * hd : type == KvType::kF16 ? 2 * hd : hd + 4));
  }
}

// Keys rotated on their way in (the fused forward step) are the bytes of ApplyRope, then Store;
// a tile of positions reads back what the whole-prefix LoadHead reads at those positions.
TEST(KvCache, StoreRopedIsApplyRopeThenStoreAndRangesMatchLoadHead) {
  const int heads = 2, hd = 16, n_pairs = 6;  // rope_dim 12 < head_dim: the last 4 values pass through
  std::mt19937 rng(9);
  std::normal_distribution<float> dist(0.0f, 1.5f);
  std::vector<float> k(heads * hd), v(heads * hd), cos(n_pairs), sin(n_pairs);
  for (float& x : k) x = dist(rng);
  for (float& x : v) x = dist(rng);
  for (int i = 0; i < n_pairs; ++i) cos[i] = std::cos(0.3f * (i + 1)), sin[i] = std::sin(0.3f * (i + 1));
  for (KvType type : {KvType::kF32, KvType::kF16, KvType::kI8})
    for (bool neox : {false, true}) {
      SCOPED_TRACE(std::string(KvTypeName(type)) + (neox ? " neox" : ""));
      KvCache fused(1, heads, hd, 8, type), plain(1, heads, hd, 8, type);
      fused.Reserve(8), plain.Reserve(8);
      for (int p = 0; p < 8; ++p) {
        const std::vector<float> kept = k;
        fused.StoreRoped(0, p, k.data(), v.data(), RopeRotation{cos.data(), sin.data(), 2 * n_pairs, neox});
        EXPECT_EQ(k, kept) << "the input row is left as given";
        std::vector<float> rotated = k;
        ApplyRope(rotated.data(), heads, hd, 2 * n_pairs, cos.data(), sin.data(), neox);
        plain.Store(0, p, rotated.data(), v.data());
        for (bool values : {false, true})
          for (int h = 0; h < heads; ++h)
            EXPECT_EQ(0, std::memcmp(fused.RawHead(0, values, h, p), plain.RawHead(0, values, h, p),
                                     fused.RowBytes() / heads));
        for (float& x : k) x = dist(rng);
      }
      std::vector<float> all(8 * hd), tile(3 * hd);
      fused.LoadHead(0, false, 1, 8, all.data());
      fused.LoadHeadRange(0, false, 1, 4, 3, tile.data());
      EXPECT_EQ(tile, std::vector<float>(all.begin() + 4 * hd, all.begin() + 7 * hd));
    }
}

TEST(KvCache, ParsesItsNames) {
  for (KvType t : {KvType::kF32, KvType::kF16, KvType::kI8}) EXPECT_EQ(ParseKvType(KvTypeName(t)), t);
  EXPECT_FALSE(ParseKvType("q8_0"));
}

// Mean and max |Δ log p| of the true next tokens against the f32 cache over 256 tokens of
// held-out text.
TEST(KvCache, RoundedCachesStayCloseToF32OnStories260K) {
  const Model m = LoadModel(assets::kStoriesGguf);
  std::vector<int32_t> tokens = Tokenizer(m.vocab).Encode(ReadFileToString(assets::kDevText), true);
  tokens.resize(256);
  auto logprobs = [&](KvType kv) {
    Session s(m, {.threads = 2, .context = 256, .kv = kv});
    const std::span<const float> logits = s.Eval(tokens, true);
    std::vector<float> lp(m.config.vocab), out;
    for (size_t i = 0; i + 1 < tokens.size(); ++i) {
      LogSoftmax(logits.subspan(i * m.config.vocab, m.config.vocab), lp);
      out.push_back(lp[tokens[i + 1]]);
    }
    return out;
  };
  const std::vector<float> base = logprobs(KvType::kF32), f16 = logprobs(KvType::kF16), i8 = logprobs(KvType::kI8);
  double d16 = 0, d8 = 0, m16 = 0, m8 = 0;
  for (size_t i = 0; i < base.size(); ++i) {
    d16 += std::abs(f16[i] - base[i]), d8 += std::abs(i8[i] - base[i]);
    m16 = std::max(m16, (double)std::abs(f16[i] - base[i])), m8 = std::max(m8, (double)std::abs(i8[i] - base[i]));
  }
  d16 /= base.size(), d8 /= base.size();
  std::printf("  mean |dlogp| f16 %.2e (max %.2e), i8 %.2e (max %.2e)\n", d16, m16, d8, m8);
  EXPECT_EQ(d16 > 0, true);  // the cache is rounded (the comparison is not f32 against itself)
  // f16 keeps 11 significant bits, i8 about 8 of the largest value in a head: the damage follows.
  EXPECT_LT(d16, 3e-3);
  EXPECT_LT(d8, 5e-2);
  EXPECT_LT(4 * d16, d8);
}

}  // namespace
}  // namespace smelt
