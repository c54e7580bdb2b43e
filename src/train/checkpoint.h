#pragma once
// Training checkpoints and the trained model's export.
//
// A checkpoint is one GGUF file: the model exactly as SaveGgufModel writes it in f32 (config,
// vocabulary, weights; `smelt run` loads it like any model), plus
//   train.* keys: the run's options, the step, the data position (micro-batches consumed), the
//     training data's fingerprint, each step's loss, and an FNV-1a checksum of all of it and
//     every weight and moment;
//   tensors train.adam_m.NAME / train.adam_v.NAME: AdamW's moments of each trained tensor.
// It is written atomically (temp file + rename), so a crash leaves the previous checkpoint; a
// truncated or altered file fails to load with one line naming it, before anything is changed.
#include <cstdint>
#include <string>

#include "train/trainer.h"

namespace smelt::train {

void SaveCheckpoint(const Trainer& trainer, uint64_t data_fingerprint, const std::string& path);

struct Checkpoint {
  Trainer trainer;
  uint64_t data_fingerprint = 0;
};
// The trainer as saved, running on `threads` threads. Throws Error("PATH: ...").
Checkpoint LoadCheckpoint(const std::string& path, int threads);

// The model's current weights as an f32 GGUF model file (atomically).
void ExportGguf(const TrainModel& model, const std::string& path);

}  // namespace smelt::train
