// RoPE frequency scaling against independent formulations: llama.cpp's converter expresses
// llama3 scaling as per-pair divisors 1 / ((1 - smooth) / factor + smooth); linear scaling is
// llama.cpp's freq_scale = 1 / factor.
#include "model/llama.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "core/error.h"

namespace smelt {
namespace {

ModelConfig RopeConfig(int rope_dim, float theta) {
  ModelConfig c;
  c.name = "cfg";
  c.rope_dim = rope_dim;
  c.rope_theta = theta;
  return c;
}

TEST(LlamaRope, NoScalingIsThePowerLaw) {
  const auto f = RopeInvFrequencies(RopeConfig(64, 10000.0f));
  ASSERT_EQ(f.size(), 32u);
  for (int i = 0; i < 32; ++i) EXPECT_NEAR(f[i] / std::pow(10000.0, -2.0 * i / 64), 1.0, 1e-6);
}

TEST(LlamaRope, LinearDividesEveryFrequency) {
  ModelConfig c = RopeConfig(16, 10000.0f);
  const auto base = RopeInvFrequencies(c);
  c.rope_scaling = {.type = "linear", .factor = 4.0f};
  const auto f = RopeInvFrequencies(c);
  for (size_t i = 0; i < f.size(); ++i) EXPECT_FLOAT_EQ(f[i], base[i] * 0.25f);
}

TEST(LlamaRope, Llama3MatchesConverterDivisors) {
  // Llama 3.1 8B: head 128, theta 500000, factor 8, low 1, high 4, original context 8192.
  ModelConfig c = RopeConfig(128, 500000.0f);
  c.rope_scaling = {
      .type = "llama3", .factor = 8.0f, .low_freq_factor = 1.0f, .high_freq_factor = 4.0f, .original_context = 8192};
  const auto f = RopeInvFrequencies(c);
  int kept = 0, divided = 0, blended = 0;
  for (int i = 0; i < 64; ++i) {
    const double base = std::pow(500000.0, -2.0 * i / 128);
    const double wavelen = 2 * std::numbers::pi / base;
    double divisor;
    if (wavelen < 8192.0 / 4) {
      divisor = 1, ++kept;
    } else if (wavelen > 8192.0 / 1) {
      divisor = 8, ++divided;
    } else {
      const double smooth = (8192.0 / wavelen - 1) / (4 - 1);
      divisor = 1 / ((1 - smooth) / 8 + smooth), ++blended;
    }
    EXPECT_NEAR(f[i] * divisor / base, 1.0, 1e-5) << i;
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(divided, 0);
  EXPECT_GT(blended, 0);
}

TEST(LlamaRope, FactorTensorOverridesConfig) {
  ModelConfig c = RopeConfig(8, 10000.0f);
  c.rope_scaling = {.type = "linear", .factor = 100.0f};
  const float factors[4] = {1, 2, 4, 8};
  const auto base = RopeInvFrequencies(RopeConfig(8, 10000.0f));
  const auto f = RopeInvFrequencies(c, factors);
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(f[i], base[i] / factors[i]);
}

TEST(LlamaRope, UnknownScalingIsAnError) {
  ModelConfig c = RopeConfig(8, 10000.0f);
  c.rope_scaling.type = "yarn";
  EXPECT_THROW(RopeInvFrequencies(c), Error);
  c.rope_scaling.type = "none";
  EXPECT_NO_THROW(RopeInvFrequencies(c));
}

}  // namespace
}  // namespace smelt
