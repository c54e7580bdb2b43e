// Sensitivity analysis against direct recomputation, and mixed precision against uniform types
// on a real model (the mixed-precision papers' ordering: at the same size, spending bits where
// the damage is, lowers the KL-divergence).
#include "core/mapped_file.h"
#include "compress/sensitivity.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "compress/allocate.h"
#include "compress/calibration.h"
#include "compress/quantize.h"
#include "compress/rules.h"
#include "core/error.h"
#include "eval/kld.h"
#include "io/load.h"
#include "runtime/session.h"
#include "tiny_models.h"
#include "shared_assets.h"

namespace smelt {
namespace {

const std::string kTrain = assets::kShared + "/assets/tinystories_train_prefix/tinystories_train_prefix_2MiB.txt";
const std::string kHeldOut = assets::kShared + "/assets/tinystories_valid_sample/tinystories_val_dev.txt";

const std::vector<std::vector<int32_t>> kSamples = {{1, 4, 9, 16, 25, 36, 49, 4, 4}, {2, 3, 5, 7, 11, 13}};

TEST(CompressSensitivity, ProxyIsTheImportanceWeightedErrorRecomputedNaively) {
  const Model m = tiny::TinyLlama({.dim = 64, .ff = 48, .seed = 5});  // ffn_down rows of 48: fallbacks
  const ActivationStats stats = CollectActivationStats(m, kSamples, {});
  SensitivityOptions o;
  o.candidates = {DType::kQ4_0, DType::kQ4_K, DType::kQ8_0};
  o.stats = &stats;
  o.samples = &kSamples;
  const std::vector<MatrixSensitivity> table = AnalyzeSensitivity(m, o);
  ASSERT_EQ(table.size(), 2u + 7u * m.config.n_layers);
  // Token shares of the embedding, counted here.
  std::vector<double> share(m.config.vocab, 0.0);
  double n = 0;
  for (const auto& s : kSamples)
    for (int32_t t : s) share[t] += 1, n += 1;
  for (const MatrixSensitivity& ms : table) {
    const Tensor& t = m.weights.Get(ms.name);
    const InputStats* s = stats.Find(ms.name);
    EXPECT_EQ(ms.has_stats, s != nullptr) << ms.name;
    EXPECT_EQ(s == nullptr, ms.name == "token_embd.weight");
    ASSERT_EQ(ms.candidates.size(), 3u);
    for (const CandidateDamage& c : ms.candidates) {
      const DType type = t.ne[0] % Traits(c.wanted).block_size == 0 ? c.wanted : FallbackType(c.wanted, t.ne[0]);
      EXPECT_EQ(c.type, type) << ms.name;
      const Tensor q = tiny::EncodeTensor(t, type);
      EXPECT_EQ(c.bytes, q.nbytes);
      const std::vector<float> w = DequantizeAll(t), wq = DequantizeAll(q);
      double want = 0, sig = 0, err = 0;
      for (int64_t r = 0; r < t.nrows(); ++r)
        for (int64_t col = 0; col < t.ne[0]; ++col) {
          const double d = (double)wq[r * t.ne[0] + col] - w[r * t.ne[0] + col];
          const double weight = s ? s->sum_sq[col] / (double)s->rows : share[r] / n;
          want += weight * d * d;
          sig += (double)w[r * t.ne[0] + col] * w[r * t.ne[0] + col];
          err += d * d;
        }
      // The library weighs by MeanSquare()'s floats: each weight within a float's rounding.
      EXPECT_NEAR(c.damage, want, std::ldexp(want, -22)) << ms.name << " " << DTypeName(c.wanted);
      EXPECT_NEAR(c.sqnr_db, 10 * std::log10(sig / err), 1e-6) << ms.name;
    }
    if (ms.candidates[2].type != ms.candidates[0].type) {  // ffn_down: both fall back to f16
      EXPECT_LT(ms.candidates[2].damage, ms.candidates[0].damage) << ms.name << ": q8_0 below q4_0";
    }
  }
  // Without statistics the proxy has nothing to weight a projection by.
  o.stats = nullptr;
  EXPECT_THROW(AnalyzeSensitivity(m, o), Error);
}

// Mean KL(base || model) over every position of the samples, recomputed with a plain softmax.
double NaiveKl(const Model& base, const Model& quant, const std::vector<std::vector<int32_t>>& samples) {
  double sum = 0;
  int64_t n = 0;
  const int64_t V = base.config.vocab;
  for (const auto& s : samples) {
    Session a(base, {}), b(quant, {});
    const std::span<const float> sa = a.Eval(s, true);
    const std::vector<float> la(sa.begin(), sa.end());
    const std::span<const float> lb = b.Eval(s, true);
    for (size_t p = 0; p < s.size(); ++p) {
      double za = 0, zb = 0;
      for (int64_t i = 0; i < V; ++i) za += std::exp((double)la[p * V + i]), zb += std::exp((double)lb[p * V + i]);
      double k = 0;
      for (int64_t i = 0; i < V; ++i) {
        const double pa = std::exp((double)la[p * V + i]) / za, pb = std::exp((double)lb[p * V + i]) / zb;
        k += pa * std::log(pa / pb);
      }
      sum += k, ++n;
    }
  }
  return sum / (double)n;
}

TEST(CompressSensitivity, KlIsTheDivergenceWithOneMatrixQuantized) {
  const Model m = tiny::TinyLlama({.dim = 64, .ff = 64, .seed = 6});
  SensitivityOptions o;
  o.kind = SensitivityKind::kKl;
  o.candidates = {DType::kF32, DType::kQ8_0, DType::kQ4_0, DType::kI2S_G32};
  o.samples = &kSamples;
  o.only = {"blk.0.attn_v.weight", "output.weight"};
  const std::vector<MatrixSensitivity> table = AnalyzeSensitivity(m, o);
  ASSERT_EQ(table.size(), 2u);
  for (const MatrixSensitivity& ms : table) {
    EXPECT_EQ(ms.candidates[0].damage, 0.0) << ms.name << ": f32 is the model itself";
    for (size_t k = 1; k < 4; ++k) {
      Model q = m;
      q.weights.Set(tiny::EncodeTensor(m.weights.Get(ms.name), ms.candidates[k].type));
      const double want = NaiveKl(m, q, kSamples);
      EXPECT_NEAR(ms.candidates[k].damage, want, 1e-4 * want + 1e-9) << ms.name << " " << k;
    }
    EXPECT_LT(ms.candidates[1].damage, ms.candidates[2].damage) << ms.name;
    EXPECT_LT(ms.candidates[2].damage, ms.candidates[3].damage) << ms.name;
  }
  o.samples = nullptr;
  EXPECT_THROW(AnalyzeSensitivity(m, o), Error);
}

// stories260K: with candidates of block 32 (ffn_down's rows of 172 fall back to f16 in every
// model alike), the allocator at uniform q4_0's bits per weight beats uniform q4_0 on held-out
// text, with either measure of damage.
TEST(CompressSensitivitySlow, Stories260KMixedBeatsUniformAtTheSameBits) {
  const Model m = LoadModel(assets::kStoriesGguf);
  const auto samples = CalibrationSamples(m, kTrain, {.samples = 4, .tokens = 128});
  const ActivationStats stats = CollectActivationStats(m, samples, {});
  const std::string text = ReadFileToString(kHeldOut);
  KldOptions ko;
  ko.ppl.ctx = 128;
  ko.ppl.max_chunks = 12;

  QuantizeOptions uniform;
  uniform.rules = ParseTypeRules("*=q4_0");
  const Model u = QuantizeModel(m, uniform);
  double matrix_bytes = 0, elements = 0;
  for (const Tensor& t : u.weights.all())
    if (t.n_dims == 2) matrix_bytes += (double)t.nbytes, elements += (double)t.nelements();
  const double uniform_bpw = 8 * matrix_bytes / elements;
  const double kld_uniform = KlDivergence(u, &m, text, ko).kld_mean;

  for (SensitivityKind kind : {SensitivityKind::kProxy, SensitivityKind::kKl}) {
    SensitivityOptions so;
    so.kind = kind;
    so.candidates = {DType::kI3S_G32, DType::kQ4_0, DType::kQ5_0, DType::kQ8_0};
    so.stats = &stats;
    so.samples = &samples;
    const std::vector<MatrixSensitivity> table = AnalyzeSensitivity(m, so);
    const MixedPlan plan = PlanMixedPrecision(table, BudgetForBitsPerWeight(table, uniform_bpw));
    EXPECT_LE(plan.bits_per_weight(), uniform_bpw);
    QuantizeOptions mixed;
    mixed.rules = plan.Rules();
    const Model q = QuantizeModel(m, mixed);
    double bytes = 0;
    for (const Tensor& t : q.weights.all())
      if (t.n_dims == 2) bytes += (double)t.nbytes;
    EXPECT_LE(bytes, matrix_bytes) << "the allocation is what QuantizeModel writes";
    const double kld_mixed = KlDivergence(q, &m, text, ko).kld_mean;
    std::printf("%s: mixed %.3f bpw KLD %.5f, uniform q4_0 %.3f bpw KLD %.5f\n",
                std::string(SensitivityKindName(kind)).c_str(), plan.bits_per_weight(), kld_mixed, uniform_bpw,
                kld_uniform);
    EXPECT_LT(kld_mixed, kld_uniform) << SensitivityKindName(kind);
  }
}

}  // namespace
}  // namespace smelt
