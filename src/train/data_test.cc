// Packing, splitting, shuffling and batching of training text.
#include "train/data.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>

#include "core/mapped_file.h"
#include "error_of.h"
#include "io/gguf_model.h"
#include "io/tokenizer.h"
#include "shared_assets.h"

namespace smelt::train {
namespace {

using smelt::testing::ErrorOf;

std::vector<int32_t> Iota(int n) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

TEST(TrainData, PacksDisjointSequencesAndHoldsOutTheTail) {
  DataOptions o;
  o.seq = 4, o.val_frac = 0.25;
  const Dataset d = Dataset::FromTokens(Iota(52), "toks", o);  // 10 sequences of 5, 2 tokens left over
  EXPECT_EQ(d.train_sequences(), 7);
  EXPECT_EQ(d.val_sequences(), 3);  // ceil(0.25 · 10)
  std::set<int64_t> starts;
  for (int64_t s : d.train_starts()) starts.insert(s);
  for (int64_t s : d.val_starts()) {
    EXPECT_GT(s, d.train_starts().back());  // the tail
    starts.insert(s);
  }
  EXPECT_EQ(starts.size(), 10u);  // disjoint, and together every sequence
  for (int64_t s : starts) EXPECT_EQ(s % 5, 0);
  const std::vector<Batch> val = d.ValBatches(2, 0);
  ASSERT_EQ(val.size(), 2u);
  EXPECT_EQ(val[1].B, 1);
  // Targets are the inputs shifted by one: the T + 1 tokens of a sequence.
  EXPECT_EQ(val[0].inputs, (std::vector<int32_t>{35, 36, 37, 38, 40, 41, 42, 43}));
  EXPECT_EQ(val[0].targets, (std::vector<int32_t>{36, 37, 38, 39, 41, 42, 43, 44}));
  EXPECT_EQ(d.ValBatches(2, 1).size(), 1u);
}

TEST(TrainData, EveryKthSequenceForValidation) {
  DataOptions o;
  o.seq = 3, o.val_every = 4;
  const Dataset d = Dataset::FromTokens(Iota(40), "toks", o);  // 10 sequences
  EXPECT_EQ(d.val_starts(), (std::vector<int64_t>{12, 28}));
  EXPECT_EQ(d.train_sequences(), 8);
  for (int64_t s : d.train_starts()) EXPECT_EQ(std::count(d.val_starts().begin(), d.val_starts().end(), s), 0);
}

TEST(TrainData, ShuffleIsSeededAndEachEpochCoversEverySequence) {
  DataOptions o;
  o.seq = 2, o.val_frac = 0.0;
  const Dataset a = Dataset::FromTokens(Iota(3 * 12), "toks", o);  // 12 sequences
  o.seed = 2;
  const Dataset b = Dataset::FromTokens(Iota(3 * 12), "toks", o);
  auto firsts = [](const Dataset& d, int64_t from, int64_t n) {
    std::vector<int32_t> v;
    for (int64_t k = from; k < from + n; ++k) v.push_back(d.TrainBatch(k, 3).inputs[0]);
    return v;
  };
  EXPECT_EQ(a.TrainBatch(5, 3).inputs, a.TrainBatch(5, 3).inputs);
  EXPECT_NE(firsts(a, 0, 8), firsts(b, 0, 8));
  for (int epoch = 0; epoch < 3; ++epoch) {
    std::multiset<int32_t> seen;
    for (int64_t k = epoch * 4; k < epoch * 4 + 4; ++k)
      for (int64_t s = 0; s < 3; ++s) seen.insert(a.TrainBatch(k, 3).inputs[s * 2]);
    std::multiset<int32_t> all;
    for (int64_t s : a.train_starts()) all.insert((int32_t)s);
    EXPECT_EQ(seen, all) << "epoch " << epoch;
  }
  // Epochs are shuffled differently; a batch that spans two epochs takes the end of one and the
  // start of the next: micro-batch index k of B is sequences k·B .. k·B + B - 1.
  EXPECT_NE(firsts(a, 0, 4), firsts(a, 4, 4));
  const Batch one = a.TrainBatch(1, 6);  // sequences 6..11 of epoch 0
  const Batch two = a.TrainBatch(3, 3);  // sequences 9..11
  EXPECT_TRUE(std::equal(two.inputs.begin(), two.inputs.end(), one.inputs.begin() + 6));
}

// R workers with batch B each take their slice of the global batch of R·B sequences: together,
// and in rank order, exactly what one worker with batch R·B gets, epoch boundaries included.
TEST(TrainData, RankSlicesTileTheGlobalBatch) {
  DataOptions o;
  o.seq = 2, o.val_frac = 0.3;
  const Dataset d = Dataset::FromTokens(Iota(3 * 20), "toks", o);  // 14 training, 6 validation
  for (int ranks : {1, 2, 3}) {
    for (int64_t k = 0; k < 7; ++k) {  // 7 · 3 · 2 = 42 sequences: three epochs of 14
      const Batch global = d.TrainBatch(k, 2 * ranks);
      std::vector<int32_t> joined;
      for (int r = 0; r < ranks; ++r) {
        const Batch part = d.TrainBatch(k, 2, r, ranks);
        EXPECT_EQ(part.B, 2);
        joined.insert(joined.end(), part.inputs.begin(), part.inputs.end());
      }
      EXPECT_EQ(joined, global.inputs) << "ranks " << ranks << " micro-batch " << k;
    }
    // Validation: batches of 2 · ranks, a short last one split as far as it goes.
    for (int64_t max_batches : {0, 1}) {
      const std::vector<Batch> global = d.ValBatches(2 * ranks, max_batches);
      std::vector<int32_t> want, got;
      for (const Batch& b : global) want.insert(want.end(), b.inputs.begin(), b.inputs.end());
      for (size_t i = 0; i < global.size(); ++i)
        for (int r = 0; r < ranks; ++r) {
          const std::vector<Batch> mine = d.ValBatches(2, max_batches, r, ranks);
          if (i < mine.size()) got.insert(got.end(), mine[i].inputs.begin(), mine[i].inputs.end());
        }
      EXPECT_EQ(got, want) << "ranks " << ranks << " max " << max_batches;
    }
  }
  // 6 validation sequences in global batches of 4: the second, short one is rank 0's alone.
  EXPECT_EQ(d.ValBatches(2, 0, 0, 2).size(), 2u);
  EXPECT_EQ(d.ValBatches(2, 0, 1, 2).size(), 1u);
}

TEST(TrainData, EmptyOrShortTextIsOneClearError) {
  const Vocab v = LoadGgufVocab(assets::kStoriesGguf);
  DataOptions o;
  o.seq = 64;
  for (const std::string text : {"", "  \n\n", "<|endoftext|>\n<|endoftext|>"}) {
    const std::string e = ErrorOf([&] { Dataset::FromText(v, text, "corpus.txt", o); });
    EXPECT_NE(e.find("corpus.txt: the training text is empty"), std::string::npos) << e;
  }
  const std::string e = ErrorOf([&] { Dataset::FromText(v, "Once upon a time there was a cat.", "short.txt", o); });
  EXPECT_NE(e.find("short.txt:"), std::string::npos) << e;
  EXPECT_NE(e.find("need at least 2"), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos);
  EXPECT_NE(ErrorOf([&] { Dataset::FromText(Vocab{}, "text", "x.txt", o); }).find("no tokenizer"), std::string::npos);
  o.val_every = 1;
  EXPECT_NE(ErrorOf([&] { Dataset::FromTokens(Iota(1000), "t", o); }).find("k >= 2"), std::string::npos);
}

TEST(TrainData, DocumentsAreEncodedSeparatelyWithBos) {
  const Vocab v = LoadGgufVocab(assets::kStoriesGguf);
  const Tokenizer tok(v);
  DataOptions o;
  o.seq = 4, o.val_frac = 0.0;
  const std::string a = "Once upon a time, a cat sat.", b = "The dog ran home.";
  const Dataset d = Dataset::FromText(v, a + "\n<|endoftext|>\n" + b + "\n", "two.txt", o);
  std::vector<int32_t> want = tok.Encode(a, true), second = tok.Encode(b, true);
  ASSERT_EQ(want[0], v.bos);
  want.insert(want.end(), second.begin(), second.end());
  EXPECT_EQ(d.stream(), want);
  EXPECT_EQ(d.TrainBatch(0, d.train_sequences()).inputs.size(), (size_t)(4 * d.train_sequences()));
  EXPECT_EQ(d.Fingerprint(), Dataset::FromText(v, a + "\n<|endoftext|>\n" + b + "\n", "two.txt", o).Fingerprint());
  EXPECT_NE(d.Fingerprint(), Dataset::FromText(v, a + "\n<|endoftext|>\n" + b + "!\n", "two.txt", o).Fingerprint());
}

}  // namespace
}  // namespace smelt::train
