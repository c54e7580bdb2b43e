// The forward pass against llama.cpp (the peer) on a real model: stories260K.gguf over 320
// positions of TinyStories text (BOS + the tokens of the first paragraphs of the dev sample).
//
// Two llama.cpp configurations:
//  - full precision (f32 KV cache, flash attention off): llama.cpp then computes what smelt's
//    fp32 reference computes, so every top-k log-prob and the true next token's log-prob agree
//    within 1e-3 and the most likely token is the same at every position;
//  - the peer's defaults (node-llama-cpp: f16 KV cache, flash attention "auto", which runs on
//    CPU and accumulates attention in f16): llama.cpp's own rounding then moves log-probs by up
//    to a few hundredths, so the bound is 0.1 and a top-1 disagreement is allowed only where
//    the two best tokens are within that of each other.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/mapped_file.h"
#include "io/gguf_model.h"
#include "io/tokenizer.h"
#include "peer.h"
#include "runtime/session.h"

namespace smelt {
namespace {

const std::string kGguf = std::string(SMELT_SHARED_DIR) + "/assets/stories260K/stories260K.gguf";


std::vector<peer::PositionLogprobs> FullPrecisionLogprobs(const std::vector<int32_t>& tokens) {
  return peer::Logprobs(kGguf, tokens, 1, 5, peer::KvPrecision::kF32);
}

struct SmeltRun {
  std::vector<int32_t> tokens;
  std::vector<double> logprobs;  // (T, V) log-softmax of smelt's logits
  int vocab = 0;
};

SmeltRun SmeltLogprobs() {
  const Model m = LoadGgufModel(kGguf);
  Tokenizer tok(m.vocab);
  const std::string text =
      ReadFileToString(std::string(SMELT_SHARED_DIR) + "/assets/tinystories_valid_sample/tinystories_val_dev.txt");
  SmeltRun r;
  r.tokens = {m.vocab.bos};
  for (int32_t t : tok.Encode(text.substr(0, 3000), false)) r.tokens.push_back(t);
  SMELT_ASSERT(r.tokens.size() >= 320);
  r.tokens.resize(320);
  Session s(m, {.threads = 2});
  const auto logits = s.Eval(r.tokens, true);
  r.vocab = s.vocab();
  r.logprobs.resize(logits.size());
  for (size_t i = 0; i < r.tokens.size(); ++i) {
    const float* row = logits.data() + i * r.vocab;
    double mx = row[0], z = 0;
    for (int v = 1; v < r.vocab; ++v) mx = std::max(mx, (double)row[v]);
    for (int v = 0; v < r.vocab; ++v) z += std::exp(row[v] - mx);
    for (int v = 0; v < r.vocab; ++v) r.logprobs[i * r.vocab + v] = row[v] - mx - std::log(z);
  }
  return r;
}

void Compare(const SmeltRun& mine, const std::vector<peer::PositionLogprobs>& theirs, double tol, const char* what) {
  ASSERT_EQ(theirs.size(), mine.tokens.size());
  double max_diff = 0;
  int checked = 0, top1_same = 0;
  for (size_t i = 0; i < mine.tokens.size(); ++i) {
    const double* lp = &mine.logprobs[i * mine.vocab];
    int32_t best = 0, second = -1;
    for (int v = 1; v < mine.vocab; ++v) {
      if (lp[v] > lp[best]) {
        second = best, best = v;
      } else if (second < 0 || lp[v] > lp[second]) {
        second = v;
      }
    }
    ASSERT_FALSE(theirs[i].top.empty());
    if (best == theirs[i].top[0].first) {
      ++top1_same;
    } else {
      EXPECT_LT(lp[best] - lp[second], tol) << what << ": top-1 differs at position " << i << " by a clear margin";
    }
    auto entries = theirs[i].top;
    if (theirs[i].next_true) entries.push_back(*theirs[i].next_true);
    for (const auto& [id, want] : entries) {
      const double d = std::abs(lp[id] - want);
      max_diff = std::max(max_diff, d);
      EXPECT_LE(d, tol) << what << ": position " << i << " token " << id;
      ++checked;
    }
  }
  std::printf("  stories260K vs llama.cpp (%s): %d log-probs over %zu positions, max |diff| %.3g, same top-1 at %d\n",
              what, checked, mine.tokens.size(), max_diff, top1_same);
}

TEST(SessionPeer, Stories260KLogprobsMatchLlamaCppFullPrecision) {
  if (!peer::Available()) GTEST_SKIP() << "llama.cpp peer not available";
  const SmeltRun mine = SmeltLogprobs();
  const auto theirs = FullPrecisionLogprobs(mine.tokens);
  Compare(mine, theirs, 1e-3, "f32 KV cache");
  // At 1e-3 a top-1 difference would need a near tie; demand the same token everywhere.
  for (size_t i = 0; i < mine.tokens.size(); ++i) {
    const double* lp = &mine.logprobs[i * mine.vocab];
    EXPECT_EQ(std::max_element(lp, lp + mine.vocab) - lp, theirs[i].top[0].first) << "position " << i;
  }
}

TEST(SessionPeer, Stories260KLogprobsNearLlamaCppDefaults) {
  if (!peer::Available()) GTEST_SKIP() << "llama.cpp peer not available";
  const SmeltRun mine = SmeltLogprobs();
  Compare(mine, peer::Logprobs(kGguf, mine.tokens, 1, 5), 0.1, "f16 KV cache, flash attention");
}

}  // namespace
}  // namespace smelt
