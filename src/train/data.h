#pragma once
// Training data: a text file tokenized with the model's tokenizer, packed into sequences of
// T + 1 tokens (T inputs, each predicting the next), split into training and validation
// sequences that never overlap, and served as batches in a seeded per-epoch shuffle.
//
// Documents: the text is cut at `separator` lines (TinyStories' "<|endoftext|>"); each
// non-empty document is encoded on its own with the vocabulary's specials (BOS first when it
// adds one), and the documents are concatenated into one token stream. The stream is cut into
// consecutive, disjoint sequences of T + 1 tokens (the tail shorter than that is dropped).
// Validation takes either the last ceil(val_frac · n) sequences, or with val_every = k every
// k-th sequence (k-1, 2k-1, ...); the rest train.
//
// Batches are a function of (seed, micro-batch index) only: micro-batch k holds training
// sequences k·B ... k·B + B - 1 of the endless list formed by epoch 0's shuffle, then epoch 1's,
// and so on (epoch e shuffled with seed mixed with e), so a resumed run that knows its index
// continues exactly where it stopped.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/vocab.h"
#include "train/model.h"

namespace smelt::train {

struct DataOptions {
  int64_t seq = 256;          // T
  double val_frac = 0.05;     // fraction of sequences held out at the end (when val_every == 0)
  int64_t val_every = 0;      // > 0: every k-th sequence is held out instead
  uint64_t seed = 1;
  std::string separator = "<|endoftext|>";  // document separator ("" : the text is one document)
};

class Dataset {
 public:
  // Throws Error("SOURCE: ...") for empty text, no tokenizer, or fewer than one training
  // sequence (and one validation sequence when val_frac > 0 or val_every > 0).
  static Dataset FromText(const Vocab& vocab, const std::string& text, const std::string& source,
                          const DataOptions& opt);
  static Dataset FromFile(const Vocab& vocab, const std::string& path, const DataOptions& opt);
  // From a token stream already made (tests).
  static Dataset FromTokens(std::vector<int32_t> tokens, const std::string& source, const DataOptions& opt);

  int64_t seq() const { return opt_.seq; }
  int64_t tokens() const { return (int64_t)tokens_.size(); }
  const std::vector<int32_t>& stream() const { return tokens_; }  // the packed token stream
  int64_t train_sequences() const { return (int64_t)train_.size(); }
  int64_t val_sequences() const { return (int64_t)val_.size(); }
  // Start offsets (in the token stream) of the sequences of each split.
  const std::vector<int64_t>& train_starts() const { return train_; }
  const std::vector<int64_t>& val_starts() const { return val_; }

  // A hash of the token stream, the sequence length and the split (FNV-1a): a checkpoint keeps
  // it so that resuming on other data is caught.
  uint64_t Fingerprint() const;

  // Training micro-batch `index` of B sequences (see above).
  Batch TrainBatch(int64_t index, int64_t B) const;
  // Data parallelism: worker `rank` of `ranks`, each with B sequences per micro-batch, takes
  // slice `rank` (sequences rank·B ... rank·B + B - 1) of TrainBatch(index, ranks·B), so R
  // workers together see exactly what one with batch R·B sees.
  Batch TrainBatch(int64_t index, int64_t B, int rank, int ranks) const;
  // Replaces the seeded shuffle: slot j of micro-batch `index` holds training sequence
  // order(index·B + j) (an index into train_starts()). It must be a function of the position
  // only, as the shuffle is; curricula and replay mixes supply one (train/schedule.h).
  using Order = std::function<int64_t(int64_t position)>;
  void set_order(Order order) { order_ = std::move(order); }
  // The validation sequences in order, B per batch (the last one may be smaller), at most
  // max_batches of them (0: all).
  std::vector<Batch> ValBatches(int64_t B, int64_t max_batches) const;
  // Worker `rank`'s slices of ValBatches(ranks·B, max_batches), the same way (a slice past the
  // end of a short last batch is left out, so a worker may get fewer batches).
  std::vector<Batch> ValBatches(int64_t B, int64_t max_batches, int rank, int ranks) const;

 private:
  Batch Gather(const std::vector<int64_t>& starts) const;

  DataOptions opt_;
  std::vector<int32_t> tokens_;
  std::vector<int64_t> train_, val_;
  Order order_;
};

}  // namespace smelt::train
