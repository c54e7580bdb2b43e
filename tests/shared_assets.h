#pragma once
// The shared assets the tests read in place (never copied into the repository); SMELT_SHARED_DIR
// is the shared folder beside the checkout, set by CMake.
#include <string>

namespace smelt::assets {

inline const std::string kStoriesGguf = std::string(SMELT_SHARED_DIR) + "/assets/stories260K/stories260K.gguf";
// Calibration text (TinyStories training prefix): for statistics only, never for evaluation.
inline const std::string kTrainText =
    std::string(SMELT_SHARED_DIR) + "/assets/tinystories_train_prefix/tinystories_train_prefix_2MiB.txt";
// Held-out evaluation text.
inline const std::string kDevText =
    std::string(SMELT_SHARED_DIR) + "/assets/tinystories_valid_sample/tinystories_val_dev.txt";

}  // namespace smelt::assets
