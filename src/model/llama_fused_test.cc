// LlamaForward's fused path (ForwardOptions, kernels/fused.h) against its plain twin on tiny
// models of every weight type the fused products take (packed, quantized dot kernels, f16) and
// of types they decline (f32, exact activations), for every KV cache type: the fused steps give
// the same logits bit for bit; online-softmax attention stays within rounding of the two-pass
// one; and with the activation arena warm, decoding steps allocate nothing (counted by a
// replacement of operator new in this test file).
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "formats/types.h"
#include "model/kv_cache.h"
#include "model/llama.h"
#include "tiny_models.h"

namespace {
// Allocations through operator new while counting is on (any thread).
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocations{0};
}  // namespace

// Every non-aligned form of operator new and delete is replaced, all on malloc/free, so no
// pointer crosses between these and the runtime's (or a sanitizer's) own allocator; the aligned
// forms stay the runtime's, in pairs. GCC cannot see that every pointer freed here came from a
// replacement above.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
namespace {
void* CountedAlloc(std::size_t n) noexcept {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n ? n : 1);
}
}  // namespace
void* operator new(std::size_t n) {
  if (void* p = CountedAlloc(n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  if (void* p = CountedAlloc(n)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return CountedAlloc(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return CountedAlloc(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace smelt {
namespace {

// Weight types for q/k/v, wo, gate/up, down, the head (the embedding stays f32).
struct Types {
  const char* name;
  DType qk, v, wo, gate_up, down, head;
};

Model Tiny(const Types& types, bool qwen2, uint32_t seed) {
  Model m =
      tiny::TinyLlama({.dim = 64, .heads = 4, .kv_heads = 2, .ff = 96, .vocab = 70, .qwen2 = qwen2, .seed = seed});
  m.config.context = 256;
  std::vector<Tensor> encoded;
  for (const Tensor& t : m.weights.all()) {
    if (t.n_dims != 2 || t.name == "token_embd.weight") continue;
    const std::string& n = t.name;
    auto has = [&](const char* s) { return n.find(s) != std::string::npos; };
    const DType type = has("attn_q.") || has("attn_k.") ? types.qk
                       : has("attn_v.")                 ? types.v
                       : has("attn_output")             ? types.wo
                       : has("ffn_down")                ? types.down
                       : has("ffn_")                    ? types.gate_up
                                                        : types.head;
    if (type != DType::kF32) encoded.push_back(tiny::EncodeTensor(t, type));
  }
  for (Tensor& t : encoded) m.weights.Set(std::move(t));
  return m;
}

KvCache CacheFor(const Model& m, KvType kv) {
  KvCache cache(m.config.n_layers, m.config.n_kv_heads, m.config.head_dim, m.config.context, kv);
  cache.Reserve(m.config.context);
  return cache;
}

// Two sequences: a prompt of `prompt` tokens each (interleaved in one batch), then `steps` steps
// of one token per sequence in one batch. Returns every logit row.
std::vector<float> RunTwoSequences(LlamaForward& fwd, const Model& m, KvType kv, int prompt, int steps, int threads) {
  KvCache c0 = CacheFor(m, kv), c1 = CacheFor(m, kv);
  KvCache* caches[] = {&c0, &c1};
  const int V = m.config.vocab;
  std::vector<float> all;
  std::vector<BatchToken> batch;
  std::vector<int32_t> outputs;
  for (int i = 0; i < prompt; ++i)
    for (int s = 0; s < 2; ++s) {
      outputs.push_back((int32_t)batch.size());
      batch.push_back({(int32_t)((7 * i + 3 * s + 1) % V), s, i});
    }
  for (int step = 0; step <= steps; ++step) {
    std::vector<float> logits(outputs.size() * V);
    fwd.ForwardBatch(batch, caches, outputs, threads, logits.data());
    all.insert(all.end(), logits.begin(), logits.end());
    batch = {{(int32_t)((5 * step + 2) % V), 0, prompt + step}, {(int32_t)((11 * step + 4) % V), 1, prompt + step}};
    outputs = {0, 1};
  }
  return all;
}

const Types kTypeSets[] = {
    {"q4_0", DType::kQ4_0, DType::kQ4_0, DType::kQ4_0, DType::kQ4_0, DType::kQ4_0, DType::kQ4_0},
    {"q8_0", DType::kQ8_0, DType::kQ8_0, DType::kQ8_0, DType::kQ8_0, DType::kQ8_0, DType::kQ8_0},
    // The packed types on Q8_1 rows (with their minimum term) and Q5_0's fifth-bit plane.
    {"q4_1 q5_1 q5_0", DType::kQ4_1, DType::kQ4_1, DType::kQ5_1, DType::kQ5_1, DType::kQ5_0, DType::kQ4_1},
    {"f16", DType::kF16, DType::kF16, DType::kF16, DType::kF16, DType::kF16, DType::kF16},
    // Mixed: packed Q4_0 beside Q5_0's dot kernel (one activation type); v in f16, another
    // activation type, so q/k/v run unfused.
    {"mixed", DType::kQ4_0, DType::kF16, DType::kQ5_0, DType::kQ4_0, DType::kQ8_0, DType::kQ8_0},
    {"f32", DType::kF32, DType::kF32, DType::kF32, DType::kF32, DType::kF32, DType::kF32},
};

TEST(LlamaFused, FusedStepsGiveThePlainLogitsBitForBit) {
  for (const Types& types : kTypeSets)
    for (bool qwen2 : {false, true})
      for (KvType kv : {KvType::kF32, KvType::kF16, KvType::kI8})
        for (bool repack : {true, false}) {
          const Model m = Tiny(types, qwen2, 3);
          ForwardOptions plain;
          plain.fuse = false;
          LlamaForward fused_fwd(m, Activations::kGgml, repack), plain_fwd(m, Activations::kGgml, repack, plain);
          const std::string what = std::string(types.name) + (qwen2 ? " qwen2" : "") + " kv " +
                                   std::string(KvTypeName(kv)) + (repack ? " packed" : "");
          const std::vector<float> fused = RunTwoSequences(fused_fwd, m, kv, 9, 3, 2);
          EXPECT_EQ(fused, RunTwoSequences(plain_fwd, m, kv, 9, 3, 2)) << what;
          EXPECT_EQ(fused, RunTwoSequences(fused_fwd, m, kv, 9, 3, 1)) << what << ": threads change bits";
        }
}

// Online against two-pass softmax over more keys than a tile. Each attention output moves by a
// few f32 roundings of its value rows' size; through two layers and the head the logits move by a
// small multiple of 2^-24 times their sizes (the weights and activations are O(1)): 2^-12 of
// the largest logit leaves a wide margin while a wrong tile or a missed key moves them by O(1).
// F32 weights, so no product rounds its input to 8-bit codes: there a rounding-sized change can
// move a code by one step, and the bound would not hold for a reason that has nothing to do with
// attention.
TEST(LlamaFused, OnlineAttentionStaysWithinRoundingOfTwoPass) {
  const Types& f32 = kTypeSets[std::size(kTypeSets) - 1];
  ASSERT_EQ(std::string(f32.name), "f32");
  for (KvType kv : {KvType::kF32, KvType::kF16, KvType::kI8}) {
    const Model m = Tiny(f32, false, 5);
    ForwardOptions two_pass;
    two_pass.online_attention = false;
    LlamaForward online_fwd(m), two_pass_fwd(m, Activations::kGgml, false, two_pass);
    const std::vector<float> a = RunTwoSequences(online_fwd, m, kv, 150, 2, 2);
    const std::vector<float> b = RunTwoSequences(two_pass_fwd, m, kv, 150, 2, 2);
    ASSERT_EQ(a.size(), b.size());
    double max_diff = 0, max_abs = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      max_diff = std::max(max_diff, (double)std::fabs(a[i] - b[i]));
      max_abs = std::max(max_abs, (double)std::fabs(b[i]));
    }
    EXPECT_GT(max_abs, 1.0);
    EXPECT_LE(max_diff, std::ldexp(max_abs, -12)) << KvTypeName(kv);
  }
}

// Allocations of `steps` one-token decoding steps after a first (warming) step.
long DecodeAllocations(LlamaForward& fwd, const Model& m, KvType kv, int threads) {
  KvCache cache = CacheFor(m, kv);
  std::vector<float> logits(m.config.vocab);
  const int32_t prompt[] = {1, 2, 3, 4, 5};
  fwd.Forward(prompt, 0, cache, false, threads, logits.data());
  g_allocations = 0;
  g_counting = true;
  for (int pos = 5; pos < 90; ++pos) {  // past a tile of keys
    const int32_t token = pos % m.config.vocab;
    fwd.Forward(std::span(&token, 1), pos, cache, false, threads, logits.data());
  }
  g_counting = false;
  return g_allocations;
}

TEST(LlamaFused, WarmDecodingStepsAllocateNothing) {
  if (!CpuHasAvx2FmaF16c()) GTEST_SKIP() << "the fused products need the fast kernels";
  for (const Types& types : kTypeSets)
    for (KvType kv : {KvType::kF32, KvType::kF16})
      for (int threads : {1, 2}) {
        const Model m = Tiny(types, false, 7);
        LlamaForward fwd(m, Activations::kGgml, true);
        EXPECT_EQ(DecodeAllocations(fwd, m, kv, threads), 0)
            << types.name << " kv " << KvTypeName(kv) << " threads " << threads;
      }
  // The counter sees the plain path's per-call scratch (MatMulPacked's encoded rows).
  const Model m = Tiny(kTypeSets[0], false, 7);
  ForwardOptions plain;
  plain.fuse = false;
  plain.online_attention = false;
  LlamaForward fwd(m, Activations::kGgml, true, plain);
  EXPECT_GT(DecodeAllocations(fwd, m, KvType::kF16, 1), 0);
}

}  // namespace
}  // namespace smelt
