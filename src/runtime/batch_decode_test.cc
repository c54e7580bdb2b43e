// Session::Decode (several sequences in one forward pass) and Session::Truncate against separate
// single-sequence sessions: the same tokens must give the same logits, bit for bit where
// kernels/matmul.h promises batch invariance, for every KV cache type and weight type.
#include <gtest/gtest.h>

#include <vector>

#include "core/error.h"
#include "formats/types.h"
#include "kernels/qdot.h"
#include "runtime/session.h"
#include "tiny_models.h"

namespace smelt {
namespace {

std::vector<int32_t> Tokens(int n, int vocab, uint32_t seed) {
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; ++i) t[i] = (int32_t)((seed * 13u + 31u * i * i + 7u * i) % vocab);
  return t;
}

// Every matrix in `type` (ffn_down in `down`).
Model QuantizedTiny(uint32_t seed, DType type = DType::kQ4_0, DType down = DType::kQ8_0) {
  Model m = tiny::TinyLlama({.dim = 64, .heads = 4, .kv_heads = 2, .ff = 96, .vocab = 70, .seed = seed});
  std::vector<Tensor> encoded;
  for (const Tensor& t : m.weights.all())
    if (t.n_dims == 2) encoded.push_back(tiny::EncodeTensor(t, t.name == "ffn_down.weight" ? down : type));
  for (Tensor& t : encoded) m.weights.Set(std::move(t));
  return m;
}

// S sequences with prompts of different lengths, fed together in one Decode (entries
// interleaved; for S = 4, 16 in all, so f32 products are batch invariant too: kernels/matmul.h), then `steps` rounds that decode one token of every sequence together; every
// logit row must equal what a separate session gives the same sequence.
void CheckAgainstSeparateSessions(const Model& m, KvType kv, const char* what, int S = 4) {
  const int steps = 6, V = m.config.vocab;
  std::vector<std::vector<int32_t>> seqs;
  for (int s = 0; s < S; ++s) seqs.push_back(Tokens(1 + 2 * s + steps, V, 11u + s));  // prompts of 1, 3, 5, ... tokens

  // Separate sessions: prompt in one Eval, then one token at a time.
  std::vector<std::vector<std::vector<float>>> want(S);  // [seq][step] logits after the prompt / each token
  for (int s = 0; s < S; ++s) {
    Session one(m, {.kv = kv});
    const int prompt = (int)seqs[s].size() - steps;
    auto l = one.Eval(std::span(seqs[s]).first(prompt));
    want[s].emplace_back(l.begin(), l.end());
    for (int i = prompt; i < (int)seqs[s].size(); ++i) {
      l = one.Eval(std::span(seqs[s]).subspan(i, 1));
      want[s].emplace_back(l.begin(), l.end());
    }
  }

  Session many(m, {.kv = kv, .sequences = S});
  // Prompts interleaved: entry i of every sequence, then i + 1, ...; logits of each last entry.
  std::vector<SeqToken> batch;
  std::vector<int> order;  // sequence of each logits row
  for (int i = 0; i < 2 * S; ++i)
    for (int s = S - 1; s >= 0; --s) {
      const int prompt = (int)seqs[s].size() - steps;
      if (i < prompt) {
        batch.push_back({.token = seqs[s][i], .seq = s, .logits = i == prompt - 1});
        if (i == prompt - 1) order.push_back(s);
      }
    }
  auto l = many.Decode(batch);
  ASSERT_EQ(l.size(), (size_t)S * V);
  for (int r = 0; r < S; ++r)
    EXPECT_EQ(std::vector<float>(l.begin() + r * V, l.begin() + (r + 1) * V), want[order[r]][0])
        << what << ": prompt of sequence " << order[r];
  for (int step = 0; step < steps; ++step) {
    batch.clear();
    for (int s = 0; s < S; ++s) batch.push_back({.token = seqs[s][seqs[s].size() - steps + step], .seq = s});
    l = many.Decode(batch);
    ASSERT_EQ(l.size(), (size_t)S * V);
    for (int s = 0; s < S; ++s)
      EXPECT_EQ(std::vector<float>(l.begin() + s * V, l.begin() + (s + 1) * V), want[s][step + 1])
          << what << ": sequence " << s << " step " << step;
  }
  for (int s = 0; s < S; ++s) EXPECT_EQ(many.position(s), (int)seqs[s].size());
}

TEST(BatchDecode, SequencesDecodedTogetherMatchSeparateSessions) {
  const Model f32 = tiny::TinyLlama({.qwen2 = true, .seed = 21});
  const Model quant = QuantizedTiny(22);
  for (KvType kv : {KvType::kF32, KvType::kF16, KvType::kI8}) {
    CheckAgainstSeparateSessions(f32, kv, "f32 weights");
    CheckAgainstSeparateSessions(quant, kv, "q4_0/q8_0 weights");
  }
  // 2 to 8 sequences: the packed products' block-pair tiles (kernels/packed.h) where the CPU has them.
  for (int S : {2, 3, 5, 7, 8}) CheckAgainstSeparateSessions(quant, KvType::kF32, "q4_0/q8_0 weights, more sequences", S);
  // w8a8 runs its AMX tiles from PromptGemm::from_tokens (kernels/prompt_gemm.h: they have the row
  // dots' bits), as for prompts of 17 tokens and more; around there. (Where no w8a8 kernel runs,
  // SMELT_MAX_ISA=scalar, its products are f32 ones on decoded rows: prompts of 17 tokens and more
  // sum in another order, as for the f32 model.)
  if (!FastQDot(DType::kW8A8)) return;
  const Model w8a8 = QuantizedTiny(23, DType::kW8A8, DType::kW8A8);
  for (int S : {5, 6, 7, 8, 9, 12}) CheckAgainstSeparateSessions(w8a8, KvType::kF32, "w8a8 weights", S);
}

TEST(BatchDecode, LargeInterleavedBatchIsSplitCorrectly) {
  // 3 sequences × 200 tokens = 600 entries: more than one internal chunk, so a sequence's later
  // entries attend to positions the previous chunk stored.
  Model m = tiny::TinyLlama({.dim = 16, .layers = 1, .heads = 2, .kv_heads = 1, .ff = 16, .seed = 23});
  m.config.context = 256;
  const int S = 3, n = 200, V = m.config.vocab;
  Session many(m, {.sequences = S});
  std::vector<SeqToken> batch;
  for (int i = 0; i < n; ++i)
    for (int s = 0; s < S; ++s) batch.push_back({.token = Tokens(n, V, 30u + s)[i], .seq = s, .logits = i == n - 1});
  auto l = many.Decode(batch);
  ASSERT_EQ(l.size(), (size_t)S * V);
  for (int s = 0; s < S; ++s) {
    Session one(m, {});
    auto want = one.Eval(Tokens(n, V, 30u + s));
    for (int v = 0; v < V; ++v) EXPECT_NEAR(l[s * V + v], want[v], 1e-4) << "sequence " << s;
  }
}

TEST(BatchDecode, TruncateTakesBackPositions) {
  for (const Model& m : {tiny::TinyLlama({.seed = 24}), QuantizedTiny(25)}) {
    const auto a = Tokens(7, m.config.vocab, 40), b = Tokens(3, m.config.vocab, 41);
    // a[0..4) then b, with a[4..7) evaluated first and taken back.
    Session s(m, {});
    s.Eval(a);
    s.Truncate(0, 4);
    EXPECT_EQ(s.position(), 4);
    auto got = s.Eval(b, true);
    std::vector<int32_t> joined(a.begin(), a.begin() + 4);
    joined.insert(joined.end(), b.begin(), b.end());
    Session fresh(m, {});
    fresh.Eval(std::span(joined).first(4));
    auto want = fresh.Eval(b, true);
    EXPECT_EQ(std::vector<float>(got.begin(), got.end()), std::vector<float>(want.begin(), want.end()));
  }
}

TEST(BatchDecode, RejectsBadInputWithoutChangingState) {
  Model m = tiny::TinyLlama({.seed = 26});
  m.config.context = 8;
  Session s(m, {.sequences = 2});
  s.Decode(std::vector<SeqToken>{{.token = 1, .seq = 0}, {.token = 2, .seq = 1}, {.token = 3, .seq = 1}});
  auto bad = [&](std::vector<SeqToken> batch) {
    EXPECT_THROW(s.Decode(batch), Error);
    EXPECT_EQ(s.position(0), 1);
    EXPECT_EQ(s.position(1), 2);
  };
  bad({});
  bad({{.token = 1, .seq = 0}, {.token = 1, .seq = 2}});
  bad({{.token = 1, .seq = -1}});
  bad({{.token = 1, .seq = 0}, {.token = m.config.vocab, .seq = 1}});
  bad(std::vector<SeqToken>(7, SeqToken{.token = 1, .seq = 1}));  // 2 + 7 > 8
  EXPECT_THROW(s.Truncate(1, 3), Error);
  EXPECT_THROW(s.Truncate(2, 0), Error);
  EXPECT_THROW(s.Truncate(0, -1), Error);
  EXPECT_THROW(Session(m, {.sequences = 0}), Error);
  // Sequences are independent: the full one does not stop the other.
  s.Decode(std::vector<SeqToken>(6, SeqToken{.token = 1, .seq = 1}));
  EXPECT_EQ(s.position(1), 8);
  EXPECT_NO_THROW(s.Decode(std::vector<SeqToken>{{.token = 4, .seq = 0}}));
  EXPECT_EQ(s.position(0), 2);
}

}  // namespace
}  // namespace smelt
