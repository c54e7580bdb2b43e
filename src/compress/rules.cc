#include "compress/rules.h"

#include "core/error.h"
#include "formats/types.h"

namespace smelt {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::vector<TypeRule> ParseTypeRules(std::string_view spec) {
  std::vector<TypeRule> rules;
  while (!spec.empty()) {
    const size_t end = spec.find_first_of(";,");
    const std::string_view rule = Trim(spec.substr(0, end));
    spec = end == std::string_view::npos ? std::string_view() : spec.substr(end + 1);
    if (rule.empty()) continue;
    const size_t eq = rule.find('=');
    if (eq == std::string_view::npos) Fail("--rules: '{}' has no '=' (expected GLOB=TYPE)", rule);
    const std::string_view glob = Trim(rule.substr(0, eq)), type = Trim(rule.substr(eq + 1));
    if (glob.empty()) Fail("--rules: '{}' has an empty name pattern", rule);
    TypeRule r{std::string(glob), std::nullopt};
    if (type != "keep") {
      r.type = ParseDType(type);
      if (!r.type) Fail("--rules: '{}': unknown type '{}'", rule, type);
      if (!Traits(*r.type).from_float) Fail("--rules: '{}': smelt cannot write {} tensors", rule, type);
      if (*r.type == DType::kQ8_K || *r.type == DType::kQ8_1)
        Fail("--rules: '{}': {} is an activation format, not a weight type", rule, type);
    }
    rules.push_back(std::move(r));
  }
  if (rules.empty()) Fail("--rules: no rules given");
  return rules;
}

bool GlobMatch(std::string_view glob, std::string_view name) {
  // Iterative wildcard matching with one backtrack point (the last '*'): linear in practice.
  size_t g = 0, n = 0, star = std::string_view::npos, mark = 0;
  while (n < name.size()) {
    if (g < glob.size() && (glob[g] == '?' || glob[g] == name[n])) {
      ++g, ++n;
    } else if (g < glob.size() && glob[g] == '*') {
      star = g++, mark = n;
    } else if (star != std::string_view::npos) {
      g = star + 1, n = ++mark;
    } else {
      return false;
    }
  }
  while (g < glob.size() && glob[g] == '*') ++g;
  return g == glob.size();
}

const TypeRule* MatchTypeRule(const std::vector<TypeRule>& rules, std::string_view name) {
  for (const TypeRule& r : rules)
    if (GlobMatch(r.glob, name)) return &r;
  return nullptr;
}

DType FallbackType(DType want, int64_t row_length) {
  if (row_length % Traits(want).block_size == 0) return want;
  DType alt = want;
  switch (want) {
    case DType::kQ2_K:
    case DType::kQ3_K: alt = DType::kIQ4_NL; break;
    case DType::kQ4_K: alt = DType::kQ5_0; break;
    case DType::kQ5_K: alt = DType::kQ5_1; break;
    case DType::kQ6_K: alt = DType::kQ8_0; break;
    default: break;
  }
  if (row_length % Traits(alt).block_size == 0) return alt;
  return DType::kF16;
}

}  // namespace smelt
