// A tiny model stored in each smelt-native type survives a GGUF write/read bit for bit, runs
// through the reference forward pass (MatMul dequantizes through the format table's to_float)
// in agreement with the naive whole-sequence forward pass, and the file's tensor types say
// llama.cpp cannot load it.
#include <gtest/gtest.h>

#include <cstring>

#include "formats/types.h"
#include "io/gguf_model.h"
#include "io/io_test_util.h"
#include "model/llama_naive.h"
#include "runtime/session.h"
#include "tiny_models.h"

namespace smelt {
namespace {

double MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, (double)std::fabs(a[i] - b[i]));
  return m;
}

TEST(NativeFormatsModel, GgufRoundTripAndForwardPassInEveryNativeType) {
  testing_util::ScratchDir dir("native_gguf");
  // dim and ff multiples of 256, so every group size (and sp70_w4a8's 256) divides every row.
  const Model f32 = tiny::TinyLlama({.dim = 256, .heads = 4, .kv_heads = 2, .ff = 256, .vocab = 64, .seed = 9});
  std::vector<int32_t> tokens;
  for (int i = 0; i < 12; ++i) tokens.push_back((7 * i * i + 3 * i + 1) % f32.config.vocab);
  int checked = 0;
  for (uint32_t id = kFirstNativeTypeId; id < kFirstNativeTypeId + 64; ++id) {
    const TypeTraits* tr = FindTraits(id);
    if (!tr) continue;
    SCOPED_TRACE(std::string(tr->name));
    ++checked;
    EXPECT_FALSE(tr->llama_cpp);
    const std::string path = dir.Path(std::string(tr->name) + ".gguf");
    SaveGgufModel(f32, path, {.type = tr->type});
    const Model m = LoadGgufModel(path);
    // Every matrix is stored in the type, with exactly the bytes of the table's encoder.
    for (const Tensor& t : f32.weights.all()) {
      const Tensor& got = m.weights.Get(t.name);
      if (t.n_dims != 2) {
        EXPECT_EQ(got.type, DType::kF32) << t.name;
        continue;
      }
      ASSERT_EQ(got.type, tr->type) << t.name;
      const Tensor want = tiny::EncodeTensor(t, tr->type);
      ASSERT_EQ(got.nbytes, want.nbytes) << t.name;
      EXPECT_EQ(std::memcmp(got.data, want.data, want.nbytes), 0) << t.name;
    }
    // The reference forward pass on the stored weights matches the naive one on the same model.
    Session s(m, {.threads = 1, .activations = Activations::kExact});
    const auto logits = s.Eval(tokens, true);
    const std::vector<float> got(logits.begin(), logits.end());
    const std::vector<float> naive = NaiveLlamaLogits(m, tokens);
    EXPECT_LT(MaxAbsDiff(got, naive), 1e-4);
    // And it is the quantized model that ran: its logits differ from the f32 model's.
    EXPECT_GT(MaxAbsDiff(naive, NaiveLlamaLogits(f32, tokens)), 1e-4);
  }
  EXPECT_EQ(checked, 45);  // 24 block types, 11 per-channel types, 2 outlier-aware types, 7 bitmask types, s24_w4a8
}

}  // namespace
}  // namespace smelt
