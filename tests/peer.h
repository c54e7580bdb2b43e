#pragma once
// Test helper: runs the llama.cpp peer (shared/peer/llamacpp) and parses its JSON.
// Tests that use it have "Peer" in their name and GTEST_SKIP() when Available() is false.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace smelt::peer {

struct PositionLogprobs {
  std::vector<std::pair<int32_t, double>> top;  // best first: (token, log-prob)
  std::optional<std::pair<int32_t, double>> next_true;  // log-prob of the next given token
};

// True if the peer script exists and its node package is installed (or installs).
bool Available();
// How llama.cpp keeps its KV cache: the peer's defaults (f16 cache, flash attention "auto", which
// on CPU accumulates attention in f16), or full precision (f32 cache, flash attention off), in
// which llama.cpp computes what smelt's fp32 reference computes.
enum class KvPrecision { kDefault, kF32 };

// Log-probs llama.cpp computes for every position of `tokens` (no BOS added).
// Throws std::runtime_error if the peer fails.
std::vector<PositionLogprobs> Logprobs(const std::string& gguf, const std::vector<int32_t>& tokens,
                                       int threads = 1, int topk = 5, KvPrecision kv = KvPrecision::kDefault);
// Runs a shell command, returns stdout; throws std::runtime_error on non-zero exit.
std::string RunCommand(const std::string& cmd);
// Path of the peer script.
std::string Script();

}  // namespace smelt::peer
