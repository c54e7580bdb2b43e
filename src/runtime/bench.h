#pragma once
// Forward-pass speed in llama-bench's terms: prompt processing (pp: one batch of p tokens into an
// empty cache) and text generation (tg: n tokens decoded one at a time after a 1-token start),
// tokens/s as mean ± sample standard deviation over repetitions that follow one warm-up run, and
// the ceiling memory bandwidth puts on tg (each decoded token reads every weight once).
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "model/kv_cache.h"
#include "model/model.h"
#include "runtime/sysinfo.h"

namespace smelt {

struct BenchOptions {
  std::vector<int> threads = {1};
  int prompt = 128;            // pp: tokens in the batch (0: no pp test)
  int gen = 64;                // tg: tokens decoded (0: no tg test)
  // Positions already in the cache when each test starts (llama-bench's -d): the tests read a
  // KV cache of this many positions; their names end in " @ d{depth}". Filled once, untimed.
  int depth = 0;
  // Batched decoding: for each N > 1, a test "tg{gen}x{N}" decodes gen tokens of each of N
  // sequences together (one forward pass per step serves all N); its tokens/s counts all N.
  std::vector<int> parallel = {};
  int repetitions = 5;         // timed runs of each test, after one untimed warm-up run
  uint32_t seed = 1;           // of the token ids (any valid ids: the speed does not depend on them)
  size_t bandwidth_mib = 512;  // buffer of the bandwidth measurement (0: no tg ceiling)
  int bandwidth_repetitions = 3;
  KvType kv = KvType::kF32;    // element type of the KV cache (llama-bench's -ctk/-ctv)
  Activations activations = Activations::kGgml;  // how the products see their inputs (runtime/session.h)
};

// Mean and sample standard deviation (divisor n - 1, as llama-bench reports), in one pass
// (Welford's update, stable where the naive Σx² - n·mean² cancels); sd is 0 below 2 values.
struct MeanSd {
  double mean = 0, sd = 0;
};
MeanSd MeanAndSd(std::span<const double> xs);

struct BenchResult {
  std::string test;  // "pp128", "tg64", "tg64x8" (8 sequences decoded together), "tg64 @ d1024"
  int threads = 0;
  int tokens = 0;                    // tokens timed per run (all sequences)
  std::vector<double> tokens_per_s;  // one per repetition
  MeanSd stats;                      // of tokens_per_s
};

// The most tg can reach at one thread count: read bandwidth ÷ bytes read per token.
struct TgCeiling {
  int threads = 0;
  double gb_per_s = 0;      // best of the bandwidth repetitions at that thread count
  double tokens_per_s = 0;  // gb_per_s * 1e9 / bytes_per_token
};

struct BenchReport {
  std::string model;  // "llama 220M Q4_0": architecture, parameters, most common matrix type
  uint64_t bytes = 0;             // all weights
  int64_t parameters = 0;
  uint64_t bytes_per_token = 0;   // BytesReadPerToken
  std::string backend;            // "CPU (avx2)": the kernel path
  std::vector<BenchResult> results;  // per thread count: pp, then tg
  std::vector<TgCeiling> ceilings;   // per thread count (empty without a bandwidth measurement)
};

// Weight bytes one decoded token reads: every tensor but the token embedding, plus the one
// embedding row it looks up (all of it when the output head is tied to it).
uint64_t BytesReadPerToken(const Model& m);

// `count` token ids in [0, vocab), the same for the same seed on every platform.
std::vector<int32_t> BenchTokens(int vocab, int count, uint32_t seed);

// Runs every test at every thread count (through Session), then measures the tg ceilings.
// Throws Error for a thread count, size or repetition count out of range.
BenchReport RunBench(const Model& m, const BenchOptions& opt);

}  // namespace smelt
