#include "train/recover.h"

#include <string_view>

namespace smelt::train {
namespace {

// The projections the pruning passes sparsify (compress/prune.h: the block matrices).
bool IsBlockMatrix(const ParamSlice& s) {
  if (s.n_dims != 2 || s.name.rfind("blk.", 0) != 0) return false;
  for (std::string_view m : {"attn_q.", "attn_k.", "attn_v.", "attn_output.", "ffn_gate.", "ffn_up.", "ffn_down."})
    if (s.name.find(m) != std::string::npos) return true;
  return false;
}

}  // namespace

std::vector<size_t> PrunedOffsets(const TrainModel& m) {
  std::vector<size_t> out;
  for (const ParamSlice& s : m.slices()) {
    if (!IsBlockMatrix(s)) continue;
    for (size_t i = s.offset; i < s.offset + s.size; ++i)
      if (m.params()[i] == 0.0f) out.push_back(i);
  }
  return out;
}

RecoveryResult RecoverPruned(const Model& pruned, const Dataset& data, const TrainOptions& opt,
                             const Objective& objective) {
  Trainer t(TrainModel::FromModel(pruned), opt);
  if (objective) t.set_objective(objective);
  const std::vector<size_t> mask = PrunedOffsets(t.model());
  RecoveryResult r;
  r.masked = (int64_t)mask.size();
  const bool has_val = data.val_sequences() > 0;
  if (has_val) r.val_before = t.ValLoss(data);
  while (t.step() < opt.steps) {
    t.Step(data);
    std::vector<float>& p = t.model().params();
    for (size_t i : mask) p[i] = 0.0f;
  }
  if (has_val) r.val_after = t.ValLoss(data);
  r.model = t.model().ToModel();
  r.model.source = pruned.source;
  r.model.format = pruned.format;
  r.model.info = pruned.info;
  return r;
}

}  // namespace smelt::train
