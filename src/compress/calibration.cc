#include "compress/calibration.h"

#include "core/error.h"
#include "core/mapped_file.h"
#include "io/tokenizer.h"

namespace smelt {

std::vector<std::vector<int32_t>> CalibrationSamplesFromText(const Model& model, const std::string& text,
                                                             const std::string& source, const CalibOptions& opt) {
  if (opt.samples < 1) Fail("{}: the number of calibration samples must be at least 1, not {}", source, opt.samples);
  if (opt.tokens < 2) Fail("{}: calibration samples need at least 2 tokens, not {}", source, opt.tokens);
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) Fail("{}: the calibration text is empty", source);
  if (model.vocab.tokens.empty()) Fail("{}: the model has no tokenizer to read calibration text with", model.source);
  const Tokenizer tok(model.vocab);
  const std::vector<int32_t> ids = tok.Encode(text, /*add_special=*/true);
  const int64_t L = opt.tokens, windows = (int64_t)ids.size() / L;
  if (windows < 1)
    Fail("{}: the calibration text has {} tokens, fewer than one sample of {}", source, ids.size(), opt.tokens);
  const int64_t n = std::min<int64_t>(windows, opt.samples);
  std::vector<std::vector<int32_t>> out;
  out.reserve(n);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t w = i * windows / n;
    std::vector<int32_t> s(ids.begin() + w * L, ids.begin() + (w + 1) * L);
    if (model.vocab.add_bos && model.vocab.bos >= 0) s[0] = model.vocab.bos;
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<std::vector<int32_t>> CalibrationSamples(const Model& model, const std::string& path,
                                                     const CalibOptions& opt) {
  return CalibrationSamplesFromText(model, ReadFileToString(path), path, opt);
}

}  // namespace smelt
