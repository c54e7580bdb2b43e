#pragma once
// Declarative per-tensor type rules instead of name if-ladders:
//   "output.weight=q6_K; blk.*.attn_v.*=q5_K; *=q4_K"
// Rules are tried in order; the first whose glob matches a tensor's full name decides its type
// ("*" matches any run of characters, "?" one character; everything else literally). A type of
// "keep" leaves the tensor as it is. Only 2-D weight matrices are ever quantized: norms and
// biases stay f32 whatever the rules say.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace smelt {

struct TypeRule {
  std::string glob;
  std::optional<DType> type;  // nullopt: keep
};

// Parses "GLOB=TYPE[; GLOB=TYPE ...]" (';' or ',' between rules, spaces ignored). Throws Error
// ("--rules: ...") naming the bad rule for a missing '=', an empty glob or an unknown type.
std::vector<TypeRule> ParseTypeRules(std::string_view spec);

// The first rule matching `name`, or nullptr.
const TypeRule* MatchTypeRule(const std::vector<TypeRule>& rules, std::string_view name);

// Glob match of the whole name: '*' any run (also empty), '?' exactly one character.
bool GlobMatch(std::string_view glob, std::string_view name);

// The type a row of `row_length` values gets when `want`'s block does not divide it: llama.cpp's
// choice for k-quants (Q2_K/Q3_K → IQ4_NL, Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0), and F16 when no
// 32-value block fits either. Returns `want` itself when it fits.
DType FallbackType(DType want, int64_t row_length);

}  // namespace smelt
