// The quantization report against independent references: a model compared with itself loses
// nothing; the per-tensor figures equal a naive computation on whole dequantized tensors; the
// per-block figures equal those of whole-window forward passes; the summary is KlDivergence's;
// and coarser formats lose more at every depth (Q8_0 < Q4_0 < Q2_K).
#include "eval/quant_report.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "error_of.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "formats/types.h"
#include "io/gguf_model.h"
#include "model/llama.h"
#include "runtime/session.h"
#include "tiny_models.h"
#include "shared_assets.h"

namespace smelt {
namespace {


// `m` with every 2-D weight whose rows split into whole blocks re-encoded as `type` through the
// format table's reference encoder (the others stay as they are, as `smelt convert` leaves
// them at F16).
Model QuantizedCopy(const Model& m, DType type, const std::string& source) {
  Model q = m;
  q.source = source;
  for (const Tensor& t : m.weights.all())
    if (t.n_dims == 2 && t.ne[0] % Traits(type).block_size == 0) q.weights.Set(tiny::EncodeTensor(t, type));
  return q;
}

QuantReportOptions SmallRun() {
  QuantReportOptions o;
  o.ppl.ctx = 128;
  o.ppl.max_chunks = 6;
  o.ppl.threads = 2;
  o.layer_windows = 2;
  return o;
}

struct Stories {
  Model base = LoadGgufModel(assets::kStoriesGguf);
  std::string text = ReadFileToString(assets::kDevText);
};

TEST(QuantReport, ModelAgainstItselfLosesNothing) {
  Stories s;
  const QuantReport r = MakeQuantReport(s.base, s.base, s.text, SmallRun());
  ASSERT_EQ(r.tensors.size(), s.base.weights.size());
  EXPECT_TRUE(r.only_in_base.empty());
  EXPECT_TRUE(r.only_in_quant.empty());
  for (const TensorError& t : r.tensors) {
    EXPECT_TRUE(std::isinf(t.sqnr_db) && t.sqnr_db > 0) << t.name;
    EXPECT_EQ(t.rmse, 0) << t.name;
    EXPECT_EQ(t.max_abs, 0) << t.name;
    EXPECT_EQ(t.bits_per_weight, 32) << t.name;
  }
  ASSERT_EQ((int)r.layers.size(), s.base.config.n_layers);
  EXPECT_EQ(r.layer_windows, 2);
  EXPECT_EQ(r.layer_positions, 2 * 128);
  for (const LayerError& l : r.layers) {
    EXPECT_DOUBLE_EQ(l.cosine_mean, 1.0) << l.layer;
    EXPECT_DOUBLE_EQ(l.cosine_min, 1.0) << l.layer;
    EXPECT_EQ(l.rel_l2, 0) << l.layer;
  }
  EXPECT_EQ(r.kld.kld_mean, 0);
  EXPECT_EQ(r.kld.kld_max, 0);
  EXPECT_EQ(r.kld.same_top, 1.0);
  EXPECT_EQ(r.kld.dp_rms, 0);
  EXPECT_EQ(r.kld.ppl_base, r.kld.ppl_model);
  EXPECT_EQ(r.base_size.bytes, r.quant_size.bytes);
  EXPECT_EQ(r.base_size.bits_per_weight(), 32);
}

// Naive reference: both tensors dequantized whole, sums in one pass.
TEST(QuantReport, TensorFiguresEqualNaiveComputation) {
  Stories s;
  const Model q = QuantizedCopy(s.base, DType::kQ4_0, "q4_0.gguf");
  QuantReportOptions o = SmallRun();
  o.ppl.max_chunks = 1;
  const QuantReport r = MakeQuantReport(s.base, q, s.text, o);
  ASSERT_EQ(r.tensors.size(), s.base.weights.size());
  int quantized = 0;
  for (const TensorError& t : r.tensors) {
    const Tensor& tb = s.base.weights.Get(t.name);
    const Tensor& tq = q.weights.Get(t.name);
    const std::vector<float> w = DequantizeAll(tb), wq = DequantizeAll(tq);
    double signal = 0, noise = 0, peak = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      const double d = (double)w[i] - wq[i];
      signal += (double)w[i] * w[i], noise += d * d, peak = std::max(peak, std::abs(d));
    }
    EXPECT_EQ(t.quant_type, tq.type);
    EXPECT_EQ(t.n, (int64_t)w.size());
    EXPECT_DOUBLE_EQ(t.bits_per_weight, 8.0 * (double)tq.nbytes / (double)w.size());
    EXPECT_EQ(t.max_abs, peak) << t.name;
    // Tensors left as they were compare as identical; every re-encoded one lost something.
    EXPECT_EQ(noise == 0, tq.type == tb.type) << t.name;
    if (noise == 0) {
      EXPECT_TRUE(std::isinf(t.sqnr_db)) << t.name;
      continue;
    }
    ++quantized;
    EXPECT_NEAR(t.rmse, std::sqrt(noise / (double)w.size()), 1e-12 * t.rmse) << t.name;
    EXPECT_NEAR(t.sqnr_db, 10 * std::log10(signal / noise), 1e-9) << t.name;
    EXPECT_EQ(t.bits_per_weight, 4.5) << t.name;
  }
  // token_embd, output and six matrices per block; not ffn_down (rows of 172 do not split
  // into blocks of 32) nor the 1-D norms.
  EXPECT_EQ(quantized, 2 + 5 * 6);
  EXPECT_LT(r.quant_size.matrix_bits_per_weight(), r.base_size.matrix_bits_per_weight());
}

TEST(QuantReport, TensorFiguresDoNotDependOnThreads) {
  const Tensor w = MakeF32Tensor("w", {256, 64}, tiny::RandomVector(256 * 64, 7));
  const Tensor wq = tiny::EncodeTensor(w, DType::kQ4_K);
  const TensorError a = CompareTensor(w, wq, 1), b = CompareTensor(w, wq, 3);
  EXPECT_EQ(a.rmse, b.rmse);
  EXPECT_EQ(a.sqnr_db, b.sqnr_db);
  EXPECT_EQ(a.max_abs, b.max_abs);
}

TEST(QuantReport, SqnrOrdersQ8_0AboveQ4_0AboveQ2_K) {
  const Tensor w = MakeF32Tensor("w", {512, 48}, tiny::RandomVector(512 * 48, 3));
  const TensorError q8 = CompareTensor(w, tiny::EncodeTensor(w, DType::kQ8_0), 2);
  const TensorError q4 = CompareTensor(w, tiny::EncodeTensor(w, DType::kQ4_0), 2);
  const TensorError q2 = CompareTensor(w, tiny::EncodeTensor(w, DType::kQ2_K), 2);
  EXPECT_GT(q8.sqnr_db, q4.sqnr_db);
  EXPECT_GT(q4.sqnr_db, q2.sqnr_db);
  EXPECT_LT(q8.rmse, q4.rmse);
  EXPECT_LT(q4.rmse, q2.rmse);
  EXPECT_GT(q8.bits_per_weight, q4.bits_per_weight);
  EXPECT_GT(q4.bits_per_weight, q2.bits_per_weight);
}

// Reference: whole windows in one Eval each, every block output kept, figures summed naively.
class KeepBlocks : public ForwardObserver {
 public:
  std::vector<std::vector<float>> out;
  void OnBlockOutput(int layer, const float* x, int64_t T) override {
    if ((int)out.size() <= layer) out.resize(layer + 1);
    out[layer].insert(out[layer].end(), x, x + T * dim);
  }
  int64_t dim = 0;
};

TEST(QuantReport, BlockFiguresEqualWholeWindowPasses) {
  const Model base = tiny::TinyLlama({.dim = 64, .layers = 3, .heads = 4, .kv_heads = 2, .ff = 128, .vocab = 60});
  const Model q = QuantizedCopy(base, DType::kQ4_0, "q4_0");
  std::vector<ScoringWindow> windows(2);
  for (size_t w = 0; w < windows.size(); ++w)
    for (int i = 0; i < 150; ++i) windows[w].tokens.push_back((int32_t)((i * 7 + w * 13) % 60));
  int64_t positions = 0;
  const std::vector<LayerError> got = CompareLayers(base, q, windows, 2, &positions);
  EXPECT_EQ(positions, 300);

  auto run = [&](const Model& m) {
    KeepBlocks keep;
    keep.dim = m.config.dim;
    Session s(m, {.threads = 2, .context = 150});
    s.set_observer(&keep);
    for (const auto& w : windows) {
      s.Reset();
      s.Eval(w.tokens);
    }
    return keep.out;
  };
  const auto hb = run(base), hq = run(q);
  ASSERT_EQ(got.size(), 3u);
  for (int l = 0; l < 3; ++l) {
    double cos_sum = 0, cos_min = 1, diff = 0, norm = 0;
    for (int64_t t = 0; t < 300; ++t) {
      double dot = 0, bb = 0, qq = 0;
      for (int i = 0; i < 64; ++i) {
        const double b = hb[l][t * 64 + i], x = hq[l][t * 64 + i];
        dot += b * x, bb += b * b, qq += x * x, diff += (b - x) * (b - x);
      }
      norm += bb;
      cos_sum += dot / std::sqrt(bb * qq);
      cos_min = std::min(cos_min, dot / std::sqrt(bb * qq));
    }
    EXPECT_NEAR(got[l].cosine_mean, cos_sum / 300, 1e-6) << l;
    EXPECT_NEAR(got[l].cosine_min, cos_min, 1e-6) << l;
    EXPECT_NEAR(got[l].rel_l2, std::sqrt(diff / norm), 1e-5) << l;
    EXPECT_LT(got[l].cosine_mean, 1.0);
  }
}

// Coarser weights lose more at every block and at the output; the summary is KlDivergence's.
// (Slow: not in the sanitizer build, where the report's other tests run the same code.)
TEST(QuantReport, Q4_0LosesMoreThanQ8_0AtEveryDepthSlow) {
  Stories s;
  const Model q8 = QuantizedCopy(s.base, DType::kQ8_0, "q8_0.gguf");
  const Model q4 = QuantizedCopy(s.base, DType::kQ4_0, "q4_0.gguf");
  QuantReportOptions o = SmallRun();
  o.tensors = false;
  const QuantReport r8 = MakeQuantReport(s.base, q8, s.text, o);
  const QuantReport r4 = MakeQuantReport(s.base, q4, s.text, o);
  EXPECT_TRUE(r8.tensors.empty());
  ASSERT_EQ(r8.layers.size(), r4.layers.size());
  for (size_t l = 0; l < r8.layers.size(); ++l) {
    EXPECT_LT(r4.layers[l].cosine_mean, r8.layers[l].cosine_mean) << l;
    EXPECT_LT(r8.layers[l].cosine_mean, 1.0) << l;
    EXPECT_GT(r4.layers[l].rel_l2, r8.layers[l].rel_l2) << l;
  }
  EXPECT_GT(r4.kld.kld_mean, r8.kld.kld_mean);
  EXPECT_GT(r8.kld.kld_mean, 0);
  EXPECT_LT(r4.quant_size.bytes, r8.quant_size.bytes);

  KldOptions ko;
  ko.ppl = o.ppl;
  const KldResult direct = KlDivergence(q4, &s.base, s.text, ko);
  EXPECT_EQ(r4.kld.n, direct.n);
  EXPECT_EQ(r4.kld.kld_mean, direct.kld_mean);
  EXPECT_EQ(r4.kld.kld_median, direct.kld_median);
  EXPECT_EQ(r4.kld.kld_p99, direct.kld_p99);
  EXPECT_EQ(r4.kld.kld_max, direct.kld_max);
  EXPECT_EQ(r4.kld.same_top, direct.same_top);
  EXPECT_EQ(r4.kld.dp_mean, direct.dp_mean);
  EXPECT_EQ(r4.kld.ppl_base, direct.ppl_base);
  EXPECT_EQ(r4.kld.ppl_model, direct.ppl_model);
}

using testing::ErrorOf;

TEST(QuantReport, RefusesModelsThatCannotBeCompared) {
  Model a = tiny::TinyLlama({});
  a.source = "base.gguf";
  auto other = [](tiny::TinyOptions o) {
    Model m = tiny::TinyLlama(o);
    m.source = "quant.gguf";
    return m;
  };
  EXPECT_NO_THROW(CheckComparable(a, other({})));
  for (const Model& b : {other({.dim = 64}), other({.layers = 3}), other({.ff = 96}), other({.vocab = 60}),
                         other({.qwen2 = true})}) {
    const std::string e = ErrorOf([&] { CheckComparable(a, b); });
    EXPECT_NE(e.find("quant.gguf"), std::string::npos) << e;
    EXPECT_NE(e.find("base.gguf"), std::string::npos) << e;
  }
  Model b = other({});
  b.weights.Set(MakeF32Tensor("blk.1.ffn_norm.weight", {16}, std::vector<float>(16, 1.0f)));
  const std::string e = ErrorOf([&] { CheckComparable(a, b); });
  EXPECT_NE(e.find("quant.gguf: tensor blk.1.ffn_norm.weight has shape [16]"), std::string::npos) << e;
}

TEST(QuantReport, TextTooShortNamesTheText) {
  Stories s;
  QuantReportOptions o = SmallRun();
  o.text_name = "short.txt";
  const std::string e = ErrorOf([&] { MakeQuantReport(s.base, s.base, "Once upon a time.", o); });
  EXPECT_EQ(e.rfind("short.txt: ", 0), 0u) << e;
}

}  // namespace
}  // namespace smelt
