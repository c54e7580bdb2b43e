#pragma once
// JSON helpers for the file readers: parsing with one-line errors and duplicate-key detection
// (nlohmann keeps the last of two equal keys silently; a file with two tensors of one name must
// be refused, not half-read).
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace smelt {

// Parses `text` as JSON. Throws Error "SOURCE: invalid JSON: ..." (one line) on a syntax error
// and "SOURCE: duplicate key "K" in ..." when any object holds a key twice.
nlohmann::json ParseJsonStrict(std::string_view text, const std::string& source);

// `s` made safe for a one-line message: control and non-ASCII bytes as \xNN, cut to `max` bytes.
std::string Printable(std::string_view s, size_t max = 120);

}  // namespace smelt
