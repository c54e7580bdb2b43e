#include "train/recover.h"

#include "core/error.h"

namespace smelt::train {

std::vector<size_t> PrunedOffsets(const TrainModel& m, std::span<const std::string> matrices) {
  std::vector<size_t> out;
  for (const std::string& name : matrices) {
    if (!m.Has(name)) Fail("pruning recovery: the model has no tensor {}", name);
    const ParamSlice& s = m.Slice(name);
    for (size_t i = s.offset; i < s.offset + s.size; ++i)
      if (m.params()[i] == 0.0f) out.push_back(i);
  }
  return out;
}

RecoveryResult RecoverPruned(const Model& pruned, const Dataset& data, const TrainOptions& opt,
                             const Objective& objective, std::span<const std::string> matrices,
                             const MaskOffsets& also_masked) {
  Trainer t(TrainModel::FromModel(pruned), opt);
  if (objective) t.set_objective(objective);
  std::vector<size_t> mask = PrunedOffsets(t.model(), matrices);
  if (also_masked) {
    const std::vector<size_t> more = also_masked(t.model());
    mask.insert(mask.end(), more.begin(), more.end());
  }
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
