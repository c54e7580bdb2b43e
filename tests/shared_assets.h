#pragma once
// The shared assets the tests read in place (never copied into the repository); SMELT_SHARED_DIR
// is the shared folder beside the checkout, set by CMake.
#include <string>

namespace smelt::assets {

inline const std::string kShared = SMELT_SHARED_DIR;
// stories260K: the GGUF, the llama2c checkpoints (legacy and v1) and tokenizer, and the HF folder.
inline const std::string kStoriesDir = kShared + "/assets/stories260K";
inline const std::string kStoriesGguf = kStoriesDir + "/stories260K.gguf";
// llama.cpp's vocabulary test files (ggml-vocab-*.gguf with their .inp/.out cases); ends in '/'.
inline const std::string kVocabDir = kShared + "/assets/llamacpp_vocab_tests/";
// Calibration text (TinyStories training prefix): for statistics only, never for evaluation.
inline const std::string kTrainText =
    kShared + "/assets/tinystories_train_prefix/tinystories_train_prefix_2MiB.txt";
// Held-out evaluation text.
inline const std::string kDevText =
    kShared + "/assets/tinystories_valid_sample/tinystories_val_dev.txt";

}  // namespace smelt::assets
