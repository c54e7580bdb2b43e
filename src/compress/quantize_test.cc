// Whole-model quantization, calibration samples and activation statistics, each against an
// independent computation (the format's own encoder, a direct recomputation of the inputs).
#include "compress/quantize.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "compress/activation_stats.h"
#include "compress/calibration.h"
#include "compress/gptq.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "eval/kld.h"
#include "formats/types.h"
#include "io/gguf_model.h"
#include "shared_assets.h"
#include "io/tokenizer.h"
#include "kernels/ops.h"
#include "tiny_models.h"

namespace smelt {
namespace {

using assets::kStoriesGguf;
using assets::kTrainText;

StatsOptions WithHessians() {
  StatsOptions o;
  o.hessian = true;
  return o;
}

double SquaredError(const Tensor& a, const Tensor& b, const std::vector<float>* w = nullptr) {
  const auto x = DequantizeAll(a), y = DequantizeAll(b);
  const int64_t C = a.ne[0];
  double s = 0;
  for (size_t i = 0; i < x.size(); ++i) s += (w ? (*w)[i % C] : 1.0) * ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
  return s;
}

TEST(CompressQuantize, RtnWritesTheFormatsOwnBytesAndFallsBack) {
  const Model m = tiny::TinyLlama({.ff = 48, .seed = 3});  // ffn_down rows of 48 values
  QuantizeOptions o;
  o.rules = ParseTypeRules("output.weight=q8_0; blk.*.ffn_down.*=q4_K; token_embd.weight=keep; *=q4_0");
  QuantizeSummary sum;
  const Model q = QuantizeModel(m, o, &sum);
  ASSERT_EQ(sum.tensors.size(), 2u + 7u * m.config.n_layers);
  for (const TensorChoice& c : sum.tensors) {
    const Tensor& in = m.weights.Get(c.name);
    const Tensor& out = q.weights.Get(c.name);
    EXPECT_EQ(out.type, c.to) << c.name;
    if (c.name == "token_embd.weight") {
      EXPECT_EQ(out.data, in.data);  // kept, shared
      continue;
    }
    if (c.name.find("ffn_down") != std::string::npos) {
      EXPECT_EQ(c.wanted, DType::kQ4_K);
      EXPECT_EQ(c.to, DType::kF16) << "48 values: neither Q4_K's 256 nor Q5_0's 32 divide";
    }
    // rtn: exactly the bytes of the format's reference encoder.
    const Tensor ref = tiny::EncodeTensor(in, c.to);
    ASSERT_EQ(out.nbytes, ref.nbytes);
    EXPECT_EQ(std::memcmp(out.data, ref.data, ref.nbytes), 0) << c.name;
  }
  EXPECT_NE(sum.Fallbacks().find("blk.0.ffn_down.weight=f16"), std::string::npos) << sum.Fallbacks();
  // 1-D tensors untouched.
  EXPECT_EQ(q.weights.Get("blk.0.attn_norm.weight").data, m.weights.Get("blk.0.attn_norm.weight").data);
}

// A sparse type prunes a denser matrix by magnitude to fit, and the summary says so: the stored
// share is what the decoded tensor holds where the input was non-zero; an input already sparse
// enough is stored whole (non-zero shares counted on the input, positions on the output).
TEST(CompressQuantize, SparseTypesReportWhatTheyPrunedToFit) {
  const Model m = tiny::TinyLlama({.dim = 64, .heads = 4, .kv_heads = 2, .ff = 128, .vocab = 64, .seed = 8});
  Model pruned = m;
  for (const Tensor& t : m.weights.all()) {
    if (t.n_dims != 2) continue;
    std::vector<float> v = DequantizeAll(t);
    for (size_t i = 0; i < v.size(); ++i)
      if (i % 4 >= 2 || (i / 32) % 2 == 1) v[i] = 0.0f;  // 2:4 and at most 8 of 32: fits sp70 and s24
    pruned.weights.Set(MakeF32Tensor(t.name, {t.ne[0], t.ne[1]}, std::move(v)));
  }
  for (const char* type : {"sp70_f16", "s24_q8"}) {
    QuantizeOptions o;
    o.rules = ParseTypeRules(std::string("*=") + type);
    for (const Model* model : {&m, static_cast<const Model*>(&pruned)}) {
      QuantizeSummary sum;
      const Model q = QuantizeModel(*model, o, &sum);
      for (const TensorChoice& c : sum.tensors) {
        const std::vector<float> in = DequantizeAll(model->weights.Get(c.name)), out = DequantizeAll(q.weights.Get(c.name));
        int64_t nonzero = 0, kept = 0;
        for (size_t i = 0; i < in.size(); ++i) nonzero += in[i] != 0.0f, kept += in[i] != 0.0f && out[i] != 0.0f;
        EXPECT_DOUBLE_EQ(c.nonzero_before, (double)nonzero / (double)in.size()) << type << " " << c.name;
        // fp16 values stay non-zero; s24_q8's int8 codes may round a kept value to 0.
        EXPECT_NEAR(c.nonzero_stored, (double)kept / (double)in.size(), std::string(type) == "s24_q8" ? 0.02 : 0.0)
            << type << " " << c.name;
        EXPECT_EQ(c.Pruned(), model == &m) << type << " " << c.name;
      }
    }
  }
  // A dense type reports nothing pruned.
  QuantizeOptions o;
  o.rules = ParseTypeRules("*=q8_0");
  QuantizeSummary dense;
  QuantizeModel(m, o, &dense);
  for (const TensorChoice& c : dense.tensors) EXPECT_FALSE(c.Pruned()) << c.name;
}

TEST(CompressQuantize, MseSearchLowersEveryTensorsError) {
  const Model m = tiny::TinyLlama({.dim = 64, .ff = 128, .seed = 4});
  for (const char* type : {"q4_0", "q4_1", "q5_0", "iq4_nl"}) {
    QuantizeOptions rtn, mse;
    rtn.rules = mse.rules = ParseTypeRules(std::string("*=") + type);
    mse.method = QuantMethod::kMse;
    const Model a = QuantizeModel(m, rtn), b = QuantizeModel(m, mse);
    double ea = 0, eb = 0;
    for (const Tensor& t : m.weights.all()) {
      if (t.n_dims != 2) continue;
      ea += SquaredError(t, a.weights.Get(t.name));
      eb += SquaredError(t, b.weights.Get(t.name));
    }
    EXPECT_LT(eb, ea) << type;
  }
}

TEST(CompressCalibration, SamplesAreDeterministicWindowsStartingWithBos) {
  const Model m = LoadGgufModel(kStoriesGguf);
  CalibOptions o{.samples = 8, .tokens = 64};
  const auto a = CalibrationSamples(m, kTrainText, o), b = CalibrationSamples(m, kTrainText, o);
  ASSERT_EQ(a.size(), 8u);
  EXPECT_EQ(a, b);
  const Tokenizer tok(m.vocab);
  const std::string text = "Once upon a time there was a cat. It liked the sun and slept all day long.";
  const auto ids = tok.Encode(text, true);
  const auto few = CalibrationSamplesFromText(m, text, "t.txt", {.samples = 100, .tokens = 8});
  ASSERT_EQ(few.size(), ids.size() / 8);  // fewer windows than samples: all of them
  for (size_t i = 0; i < few.size(); ++i) {
    ASSERT_EQ(few[i].size(), 8u);
    EXPECT_EQ(few[i][0], m.vocab.bos);
    EXPECT_TRUE(std::equal(few[i].begin() + 1, few[i].end(), ids.begin() + i * 8 + 1));
  }
  for (const std::string& bad : {std::string(""), std::string("  \n"), std::string("a cat")}) {
    try {
      CalibrationSamplesFromText(m, bad, "calib.txt", {.samples = 4, .tokens = 64});
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("calib.txt: ", 0), 0u) << e.what();
    }
  }
}

// The statistics of blk.0's attention input are those of rmsnorm(embedding) · attn_norm,
// recomputed here directly from the weights: Σ x_c², Σ |x_c|, and Σ x xᵀ whose diagonal is the same.
TEST(CompressActivationStats, MatchADirectRecomputationOfTheFirstInputs) {
  const Model m = tiny::TinyLlama({.seed = 6});
  const std::vector<std::vector<int32_t>> samples = {{1, 4, 9, 16}, {2, 3, 5}};
  const ActivationStats s = CollectActivationStats(m, samples, WithHessians());
  EXPECT_EQ(s.tokens, 7);
  const InputStats* q = s.Find("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q, s.Find("blk.0.attn_k.weight"));
  EXPECT_EQ(q, s.Find("blk.0.attn_v.weight"));
  EXPECT_NE(q, s.Find("blk.0.attn_output.weight"));
  EXPECT_EQ(s.Find("blk.1.ffn_gate.weight"), s.Find("blk.1.ffn_up.weight"));
  EXPECT_NE(s.Find("output.weight"), nullptr);
  EXPECT_EQ(s.Find("token_embd.weight"), nullptr);  // an untied embedding is looked up, not multiplied
  EXPECT_EQ(q->rows, 7);
  const int C = m.config.dim;
  const auto embd = DequantizeAll(m.weights.Get("token_embd.weight"));
  const auto norm = DequantizeAll(m.weights.Get("blk.0.attn_norm.weight"));
  std::vector<double> sum_sq(C, 0.0), sum_abs(C, 0.0), hess(C * C, 0.0);
  for (const auto& sample : samples)
    for (int32_t t : sample) {
      std::vector<float> h(C);
      RmsNorm(h.data(), &embd[t * C], norm.data(), C, m.config.norm_eps);
      for (int i = 0; i < C; ++i) {
        sum_sq[i] += (double)h[i] * h[i];
        sum_abs[i] += std::abs((double)h[i]);
        for (int j = 0; j < C; ++j) hess[i * C + j] += (double)h[i] * h[j];
      }
    }
  for (int i = 0; i < C; ++i) {
    EXPECT_NEAR(q->sum_sq[i], sum_sq[i], 1e-4 * sum_sq[i] + 1e-6);
    EXPECT_NEAR(q->sum_abs[i], sum_abs[i], 1e-4 * sum_abs[i] + 1e-6);
    for (int j = 0; j < C; ++j) ASSERT_NEAR(q->hessian[i * C + j], hess[i * C + j], 1e-4 * std::sqrt(sum_sq[i] * sum_sq[j]) + 1e-6);
  }
  const auto ms = q->MeanSquare();
  EXPECT_NEAR(ms[0], sum_sq[0] / 7, 1e-5 * sum_sq[0]);
  EXPECT_NEAR(q->MeanAbs()[0], sum_abs[0] / 7, 1e-5 * sum_abs[0]);
}

// Quantization weighted by calibration importance lowers the importance-weighted error of the
// projections below the importance-blind search, on the real stories260K model.
TEST(CompressQuantize, ImportanceLowersTheWeightedErrorOnStories260K) {
  const Model m = LoadGgufModel(kStoriesGguf);
  const auto samples = CalibrationSamples(m, kTrainText, {.samples = 8, .tokens = 128});
  const ActivationStats stats = CollectActivationStats(m, samples, {});
  QuantizeOptions blind, aware;
  blind.rules = aware.rules = ParseTypeRules("*=q4_0");
  blind.method = aware.method = QuantMethod::kMse;
  aware.stats = &stats;
  QuantizeSummary sum;
  const Model a = QuantizeModel(m, blind), b = QuantizeModel(m, aware, &sum);
  double ea = 0, eb = 0;
  int with_importance = 0;
  for (const TensorChoice& c : sum.tensors) {
    if (!c.importance) continue;
    ++with_importance;
    const auto w = stats.Find(c.name)->MeanSquare();
    const Tensor& t = m.weights.Get(c.name);
    ea += SquaredError(t, a.weights.Get(c.name), &w);
    eb += SquaredError(t, b.weights.Get(c.name), &w);
  }
  EXPECT_GT(with_importance, 20);
  EXPECT_LT(eb, ea);
}

// GPTQ minimises each projection's output error on the calibration inputs, tr(ΔW H ΔWᵀ) with
// H = Σ x xᵀ: summed over the model's projections it is below round-to-nearest's, for a 4-bit
// and a 3-bit format (the GPTQ paper's ordering), on the real stories260K model.
TEST(CompressQuantize, GptqLowersTheOutputErrorOnStories260K) {
  const Model m = LoadGgufModel(kStoriesGguf);
  const auto samples = CalibrationSamples(m, kTrainText, {.samples = 8, .tokens = 128});
  const ActivationStats stats = CollectActivationStats(m, samples, WithHessians());
  for (const char* type : {"q4_0", "iq4_nl"}) {
    QuantizeOptions rtn, gptq;
    rtn.rules = gptq.rules = ParseTypeRules(std::string("*=") + type);
    gptq.method = QuantMethod::kGptq;
    gptq.stats = &stats;
    QuantizeSummary sum;
    const Model a = QuantizeModel(m, rtn), b = QuantizeModel(m, gptq, &sum);
    double ea = 0, eb = 0;
    int n = 0;
    for (const TensorChoice& c : sum.tensors) {
      if (!c.gptq) continue;
      ++n;
      const InputStats* s = stats.Find(c.name);
      const Tensor& t = m.weights.Get(c.name);
      const auto w = DequantizeAll(t), wa = DequantizeAll(a.weights.Get(c.name)), wb = DequantizeAll(b.weights.Get(c.name));
      const int64_t C = t.ne[0];
      auto output_error = [&](const std::vector<float>& q) {
        double e = 0;
        std::vector<double> d(C);
        for (int64_t r = 0; r < t.nrows(); ++r) {
          for (int64_t i = 0; i < C; ++i) d[i] = (double)w[r * C + i] - q[r * C + i];
          for (int64_t i = 0; i < C; ++i)
            for (int64_t j = 0; j < C; ++j) e += d[i] * s->hessian[i * C + j] * d[j];
        }
        return e;
      };
      ea += output_error(wa), eb += output_error(wb);
    }
    EXPECT_GT(n, 20) << type;
    EXPECT_LT(eb, 0.9 * ea) << type;
    std::printf("  %s: output error gptq / rtn = %.3f over %d projections\n", type, eb / ea, n);
  }
  QuantizeOptions no_stats;
  no_stats.rules = ParseTypeRules("*=q4_0");
  no_stats.method = QuantMethod::kGptq;
  EXPECT_THROW(QuantizeModel(m, no_stats), Error);
}

// Staged GPTQ (samples instead of stats): each group is GPTQ with the Hessian of its inputs on
// the model whose earlier groups are already quantized. Recomputed independently here group by
// group with the reference statistics pass on such a partially quantized model (the staged
// output's own earlier tensors, so the comparison isolates one group at a time); the codes agree
// except where the two passes' summation orders tip a rounding.
TEST(CompressQuantize, StagedGptqFitsEachGroupToItsQuantizedPredecessors) {
  const Model m = tiny::TinyLlama({.layers = 2, .ff = 96, .seed = 21});
  std::vector<std::vector<int32_t>> samples(4, std::vector<int32_t>(33));
  for (size_t i = 0; i < samples.size(); ++i)
    for (size_t t = 0; t < samples[i].size(); ++t) samples[i][t] = (int32_t)((i * 7 + t * 13 + t * t) % 49 + 1);
  QuantizeOptions o;
  o.rules = ParseTypeRules("*=q4_0");
  o.method = QuantMethod::kGptq;
  o.samples = &samples;
  QuantizeSummary sum;
  const Model q = QuantizeModel(m, o, &sum);
  // Forward order of the groups, as the pass visits them.
  std::vector<std::string> order;
  for (int l = 0; l < 2; ++l)
    for (const char* w : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"})
      order.push_back(BlockTensorName(l, (std::string(w) + ".weight").c_str()));
  order.push_back("output.weight");
  size_t same = 0, total = 0;
  for (size_t k = 0; k < order.size(); ++k) {
    Model partial = m;
    for (size_t j = 0; j < k; ++j) partial.weights.Set(q.weights.Get(order[j]));
    const ActivationStats st = CollectActivationStats(partial, samples, WithHessians());
    const Tensor& t = m.weights.Get(order[k]);
    const std::vector<float> w = DequantizeAll(t);
    const GptqResult r = GptqQuantize(w.data(), t.nrows(), t.ne[0], st.Find(order[k])->hessian.data(), DType::kQ4_0, {});
    const Tensor& got = q.weights.Get(order[k]);
    ASSERT_EQ(got.nbytes, r.data.size()) << order[k];
    for (size_t i = 0; i < r.data.size(); ++i) same += got.as<uint8_t>()[i] == r.data[i];
    total += r.data.size();
  }
  EXPECT_GT((double)same / total, 0.98);
  int gptq = 0;
  for (const TensorChoice& c : sum.tensors) gptq += c.gptq;
  EXPECT_EQ(gptq, 15);  // every matrix but the (untied) token embedding, which no projection reads
  EXPECT_EQ(sum.tensors.size(), 16u);
  EXPECT_EQ(sum.tensors.front().name, "token_embd.weight");
}

// End to end on stories260K: staged GPTQ at 4 and 3 bits has a lower KL-divergence to the f32
// model than round-to-nearest on held-out text (the GPTQ paper's ordering).
TEST(CompressQuantizeSlow, StagedGptqLowersKlDivergenceOnStories260K) {
  const Model m = LoadGgufModel(kStoriesGguf);
  const auto samples = CalibrationSamples(m, kTrainText, {.samples = 16, .tokens = 128});
  const std::string text = ReadFileToString(assets::kDevText);
  KldOptions ko;
  ko.ppl.ctx = 128;
  ko.ppl.max_chunks = 12;
  ko.ppl.threads = 2;
  for (const char* type : {"q4_0", "i3s_g32"}) {
    QuantizeOptions rtn, gptq;
    rtn.rules = gptq.rules = ParseTypeRules(std::string("*=") + type);
    rtn.threads = gptq.threads = 2;
    gptq.method = QuantMethod::kGptq;
    gptq.samples = &samples;
    const Model a = QuantizeModel(m, rtn), b = QuantizeModel(m, gptq);
    const double ka = KlDivergence(a, &m, text, ko).kld_mean, kb = KlDivergence(b, &m, text, ko).kld_mean;
    EXPECT_LT(kb, 0.9 * ka) << type;
    std::printf("  %s: KLD rtn %.5f, staged gptq %.5f\n", type, ka, kb);
  }
}

}  // namespace
}  // namespace smelt
