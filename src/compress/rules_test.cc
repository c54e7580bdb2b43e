#include "compress/rules.h"

#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "formats/types.h"

namespace smelt {
namespace {

// A naive recursive glob matcher: the reference for GlobMatch.
bool NaiveGlob(std::string_view g, std::string_view n) {
  if (g.empty()) return n.empty();
  if (g[0] == '*') return NaiveGlob(g.substr(1), n) || (!n.empty() && NaiveGlob(g, n.substr(1)));
  return !n.empty() && (g[0] == '?' || g[0] == n[0]) && NaiveGlob(g.substr(1), n.substr(1));
}

TEST(CompressRules, GlobMatchesLikeTheNaiveMatcher) {
  const char* globs[] = {"*", "blk.*.attn_v.*", "blk.?.ffn_*", "output.weight", "*weight", "a*b*c", "", "**", "blk.1*"};
  const char* names[] = {"blk.0.attn_v.weight", "blk.12.attn_v.weight", "blk.3.ffn_down.weight", "output.weight",
                         "token_embd.weight", "abc", "aXbYc", "ab", "", "blk.1", "blk.10.attn_q.weight"};
  for (const char* g : globs)
    for (const char* n : names) EXPECT_EQ(GlobMatch(g, n), NaiveGlob(g, n)) << g << " / " << n;
}

TEST(CompressRules, FirstMatchingRuleDecides) {
  const auto rules = ParseTypeRules(" output.weight=q6_k; blk.*.attn_v.*=Q5_K , token_embd.weight=keep; *=q4_k ");
  ASSERT_EQ(rules.size(), 4u);
  EXPECT_EQ(MatchTypeRule(rules, "output.weight")->type, DType::kQ6_K);
  EXPECT_EQ(MatchTypeRule(rules, "blk.7.attn_v.weight")->type, DType::kQ5_K);
  EXPECT_FALSE(MatchTypeRule(rules, "token_embd.weight")->type.has_value());
  EXPECT_EQ(MatchTypeRule(rules, "blk.7.attn_q.weight")->type, DType::kQ4_K);
  const auto narrow = ParseTypeRules("blk.0.*=q8_0");
  EXPECT_EQ(MatchTypeRule(narrow, "blk.1.attn_q.weight"), nullptr);
}

TEST(CompressRules, BadRulesAreOneLineErrors) {
  for (const char* bad : {"blk.*", "=q4_0", "*=q9_9", "", " ; ", "*=q8_K"}) {
    try {
      ParseTypeRules(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_EQ(m.find('\n'), std::string::npos);
      EXPECT_EQ(m.rfind("--rules: ", 0), 0u) << m;
    }
  }
}

TEST(CompressRules, FallbackPicksABlockThatDividesTheRow) {
  for (DType want : {DType::kQ2_K, DType::kQ3_K, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K, DType::kQ4_0, DType::kQ8_0,
                     DType::kF16, DType::kIQ4_NL}) {
    for (int64_t n : {64, 172, 256, 288, 512, 100}) {
      const DType got = FallbackType(want, n);
      EXPECT_EQ(n % Traits(got).block_size, 0) << DTypeName(want) << " " << n;
      if (n % Traits(want).block_size == 0) {
        EXPECT_EQ(got, want);
      }
    }
  }
  EXPECT_EQ(FallbackType(DType::kQ4_K, 288), DType::kQ5_0);  // 288 = 9 * 32
  EXPECT_EQ(FallbackType(DType::kQ6_K, 288), DType::kQ8_0);
  EXPECT_EQ(FallbackType(DType::kQ4_K, 172), DType::kF16);  // stories260K's FFN rows
}

}  // namespace
}  // namespace smelt
