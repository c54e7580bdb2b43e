#pragma once
// Recovery training of a pruned model: a short run of the trainer (train/trainer.h) on a text,
// usually distilling from the unpruned model, that keeps every pruned weight at zero. It is the
// step between rounds of gradual pruning (compress/prune.h: PruneOptions::recovery).
//
// The mask is read from the model itself: every weight of the pruned matrices (the names that
// compress/prune.h's PruneTargets gives: the block projections, and the head when it is pruned)
// that is exactly zero on entry is pruned, and is set back to zero after every optimizer step
// (AdamW's moments may move it; the model it returns never has it non-zero).
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "model/model.h"
#include "train/data.h"
#include "train/trainer.h"

namespace smelt::train {

struct RecoveryResult {
  Model model;            // every tensor f32 (a later pruning round or the writer re-encodes them)
  double val_before = 0;  // mean validation loss of the data's held-out sequences, before and after
  double val_after = 0;   // (0 when the data has no validation split)
  int64_t masked = 0;     // weights kept at zero
};

// Further parameters held at zero, as offsets into the model's flat parameter vector.
using MaskOffsets = std::function<std::vector<size_t>(const TrainModel&)>;

// Trains `pruned` for opt.steps steps on `data` with `objective` (an empty one: next-token
// cross-entropy), keeping the zeros of `matrices` and the offsets `also_masked` gives (if any).
// Throws Error for a model the trainer does not cover or a name it lacks.
RecoveryResult RecoverPruned(const Model& pruned, const Dataset& data, const TrainOptions& opt,
                             const Objective& objective, std::span<const std::string> matrices,
                             const MaskOffsets& also_masked = {});

// The zeros of `matrices` in `m` as offsets into its flat parameter vector.
std::vector<size_t> PrunedOffsets(const TrainModel& m, std::span<const std::string> matrices);

}  // namespace smelt::train
