// Sessions on repacked weights (kernels/packed.h, SessionOptions.repack) against the unpacked
// kernels, on stories260K's matrices in Q4_0/Q8_0: from a GGUF file (whose mapped pages packing
// drops and a later reader must still see) and from tensors encoded in memory (which packing
// must leave alone).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "formats/types.h"
#include "io/gguf_model.h"
#include "kernels/packed.h"
#include "runtime/session.h"
#include "tiny_models.h"
#include "shared_assets.h"

namespace smelt {
namespace {


// stories260K with every matrix whose rows hold whole blocks in Q4_0 (attention), Q5_0 (the
// feed-forward matrices) or Q8_0 (the rest).
Model Quantized() {
  const Model f32 = LoadGgufModel(assets::kStoriesGguf);
  Model q = f32;
  for (const Tensor& t : f32.weights.all())
    if (t.n_dims == 2 && t.ne[0] % 32 == 0)
      q.weights.Set(tiny::EncodeTensor(t, t.name.find("attn") != std::string::npos  ? DType::kQ4_0
                                          : t.name.find("ffn") != std::string::npos ? DType::kQ5_0
                                                                                     : DType::kQ8_0));
  return q;
}

std::vector<float> Logits(const Model& m, bool repack) {
  Session s(m, {.repack = repack});
  std::vector<int32_t> tokens;
  for (int i = 0; i < 24; ++i) tokens.push_back((int32_t)((7 + 31 * i * i) % m.config.vocab));
  auto l = s.Eval(tokens, true);
  return {l.begin(), l.end()};
}

// The packed kernels sum the same block terms in another order: logits agree to f32 rounding.
void ExpectRepackClose(const std::vector<float>& a, const std::vector<float>& b) {
  ASSERT_EQ(a.size(), b.size());
  double max_diff = 0;
  for (size_t i = 0; i < a.size(); ++i) max_diff = std::max(max_diff, (double)std::fabs(a[i] - b[i]));
  EXPECT_LT(max_diff, 1e-3);
  std::printf("  packed vs unpacked: max |logit diff| %.3g\n", max_diff);
}

TEST(Repack, InMemoryWeightsAreLeftIntact) {
  if (!FastPackedGemm(DType::kQ4_0)) GTEST_SKIP() << "no packed kernels on this CPU";
  const Model q = Quantized();
  std::vector<std::vector<uint8_t>> before;
  for (const Tensor& t : q.weights.all()) before.emplace_back((const uint8_t*)t.data, (const uint8_t*)t.data + t.nbytes);
  const std::vector<float> unpacked = Logits(q, false), packed = Logits(q, true);
  ExpectRepackClose(packed, unpacked);
  size_t i = 0;
  for (const Tensor& t : q.weights.all()) {
    EXPECT_FALSE(t.InFileMapping() && (t.type == DType::kQ4_0 || t.type == DType::kQ5_0 || t.type == DType::kQ8_0))
        << t.name;
    EXPECT_EQ(std::memcmp(t.data, before[i++].data(), t.nbytes), 0) << t.name << " changed";
  }
  EXPECT_EQ(Logits(q, false), unpacked);
}

TEST(Repack, MappedPagesDroppedByPackingAreReadAgain) {
  if (!FastPackedGemm(DType::kQ4_0)) GTEST_SKIP() << "no packed kernels on this CPU";
  const std::string path = ::testing::TempDir() + "/repack_stories_q.gguf";
  SaveGgufModel(Quantized(), path, {});
  const Model mapped = LoadGgufModel(path);
  int in_mapping = 0;
  for (const Tensor& t : mapped.weights.all()) in_mapping += t.InFileMapping();
  EXPECT_EQ(in_mapping, (int)mapped.weights.all().size());
  const std::vector<float> packed = Logits(mapped, true);  // drops the pages of the packed matrices
  const std::vector<float> unpacked = Logits(mapped, false);  // reads them from the file again
  ExpectRepackClose(packed, unpacked);
  EXPECT_EQ(unpacked, Logits(Quantized(), false));
  std::remove(path.c_str());
}

}  // namespace
}  // namespace smelt
