#pragma once
// Calibration data for the data-aware quantization methods (importance matrix, GPTQ, AWQ,
// SmoothQuant): N samples of L tokens cut from a text file, deterministically.
//
// The text is tokenized once (BOS first when the vocabulary adds one) and cut into consecutive
// windows of L tokens, each starting with BOS (as llama-perplexity's windows do). When the text
// holds more than N windows, N are taken evenly spread over it (window i·W/N); with fewer, all of
// them are used. The same file and options always give the same samples.
#include <cstdint>
#include <string>
#include <vector>

#include "model/model.h"

namespace smelt {

struct CalibOptions {
  int samples = 128;  // N
  int tokens = 512;   // L, including the leading BOS
};

// Throws Error("FILE: ...") for an unreadable or empty file, or a text shorter than one window.
std::vector<std::vector<int32_t>> CalibrationSamples(const Model& model, const std::string& path,
                                                     const CalibOptions& opt);

// The same from text already in memory; `source` names it in errors.
std::vector<std::vector<int32_t>> CalibrationSamplesFromText(const Model& model, const std::string& text,
                                                             const std::string& source, const CalibOptions& opt);

}  // namespace smelt
