#include "train/data.h"

#include <cmath>
#include <numeric>
#include <string_view>

#include "core/error.h"
#include "core/mapped_file.h"
#include "io/tokenizer.h"
#include "train/rng.h"

namespace smelt::train {

Dataset Dataset::FromText(const Vocab& vocab, const std::string& text, const std::string& source,
                          const DataOptions& opt) {
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) Fail("{}: the training text is empty", source);
  if (vocab.tokens.empty()) Fail("{}: no tokenizer to read the training text with", source);
  const Tokenizer tok(vocab);
  std::vector<int32_t> ids;
  std::string_view rest(text);
  while (!rest.empty()) {
    size_t cut = opt.separator.empty() ? std::string_view::npos : rest.find(opt.separator);
    std::string_view doc = rest.substr(0, cut);
    rest = cut == std::string_view::npos ? std::string_view() : rest.substr(cut + opt.separator.size());
    const size_t first = doc.find_first_not_of(" \t\r\n"), last = doc.find_last_not_of(" \t\r\n");
    if (first == std::string_view::npos) continue;
    const std::vector<int32_t> d = tok.Encode(doc.substr(first, last - first + 1), /*add_special=*/true);
    ids.insert(ids.end(), d.begin(), d.end());
  }
  if (ids.empty()) Fail("{}: the training text is empty (no document between separators)", source);
  return FromTokens(std::move(ids), source, opt);
}

Dataset Dataset::FromFile(const Vocab& vocab, const std::string& path, const DataOptions& opt) {
  return FromText(vocab, ReadFileToString(path), path, opt);
}

Dataset Dataset::FromTokens(std::vector<int32_t> tokens, const std::string& source, const DataOptions& opt) {
  if (opt.seq < 1) Fail("{}: the sequence length must be at least 1, not {}", source, opt.seq);
  if (!(opt.val_frac >= 0.0 && opt.val_frac < 1.0))
    Fail("{}: the validation fraction must be in [0, 1), not {}", source, opt.val_frac);
  if (opt.val_every < 0 || opt.val_every == 1)
    Fail("{}: every k-th sequence for validation needs k >= 2, not {}", source, opt.val_every);
  Dataset d;
  d.opt_ = opt;
  d.tokens_ = std::move(tokens);
  const int64_t L = opt.seq + 1, n = (int64_t)d.tokens_.size() / L;
  const bool want_val = opt.val_every > 0 || opt.val_frac > 0.0;
  const int64_t need = want_val ? 2 : 1;
  if (n < need)
    Fail("{}: {} tokens make {} sequences of {} (+1) tokens, need at least {}{}", source, d.tokens_.size(), n,
         opt.seq, need, want_val ? " (one to train, one to validate)" : "");
  const int64_t n_val_tail = opt.val_every > 0 ? 0 : (int64_t)std::ceil(opt.val_frac * (double)n);
  for (int64_t i = 0; i < n; ++i) {
    const bool val = opt.val_every > 0 ? (i + 1) % opt.val_every == 0 : i >= n - n_val_tail;
    (val ? d.val_ : d.train_).push_back(i * L);
  }
  if (d.train_.empty()) Fail("{}: the validation split leaves no training sequence", source);
  return d;
}

uint64_t Dataset::Fingerprint() const {
  Fnv1a h;
  h.MixValue(opt_.seq);
  h.Mix(tokens_.data(), tokens_.size() * sizeof(int32_t));
  h.Mix(val_.data(), val_.size() * sizeof(int64_t));
  return h.value();
}

Batch Dataset::Gather(const std::vector<int64_t>& starts) const {
  Batch b;
  b.B = (int64_t)starts.size();
  b.T = opt_.seq;
  b.inputs.reserve(b.B * b.T);
  b.targets.reserve(b.B * b.T);
  for (int64_t s : starts) {
    b.inputs.insert(b.inputs.end(), tokens_.begin() + s, tokens_.begin() + s + b.T);
    b.targets.insert(b.targets.end(), tokens_.begin() + s + 1, tokens_.begin() + s + b.T + 1);
  }
  return b;
}

Batch Dataset::TrainBatch(int64_t index, int64_t B) const { return TrainBatch(index, B, 0, 1); }

Batch Dataset::TrainBatch(int64_t index, int64_t B, int rank, int ranks) const {
  SMELT_ASSERT(ranks >= 1 && rank >= 0 && rank < ranks);
  const int64_t n = (int64_t)train_.size();
  std::vector<int64_t> order;
  int64_t order_epoch = -1;
  std::vector<int64_t> starts;
  for (int64_t j = 0; j < B; ++j) {
    const int64_t p = (index * ranks + rank) * B + j, epoch = p / n;
    if (order_) {
      const int64_t i = order_(p);
      SMELT_ASSERT(i >= 0 && i < n);
      starts.push_back(train_[i]);
      continue;
    }
    if (epoch != order_epoch) {
      order.resize(n);
      std::iota(order.begin(), order.end(), 0);
      Shuffle(order, Rng(opt_.seed ^ (0x5851f42d4c957f2dull * (uint64_t)(epoch + 1))).Next());
      order_epoch = epoch;
    }
    starts.push_back(train_[order[p % n]]);
  }
  return Gather(starts);
}

std::vector<Batch> Dataset::ValBatches(int64_t B, int64_t max_batches) const {
  return ValBatches(B, max_batches, 0, 1);
}

std::vector<Batch> Dataset::ValBatches(int64_t B, int64_t max_batches, int rank, int ranks) const {
  SMELT_ASSERT(ranks >= 1 && rank >= 0 && rank < ranks);
  const size_t global = (size_t)(B * ranks);
  std::vector<Batch> out;
  for (size_t i = 0, k = 0; i < val_.size() && (max_batches <= 0 || (int64_t)k < max_batches); i += global, ++k) {
    const size_t lo = std::min(val_.size(), i + (size_t)(rank * B)), hi = std::min(val_.size(), lo + (size_t)B);
    if (lo < hi) out.push_back(Gather(std::vector<int64_t>(val_.begin() + lo, val_.begin() + hi)));
  }
  return out;
}

}  // namespace smelt::train
