#include "peer.h"

#include <nlohmann/json.hpp>

#include <array>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <sys/wait.h>

namespace smelt::peer {

std::string Script() { return std::string(SMELT_SHARED_DIR) + "/peer/llamacpp"; }

std::string RunCommand(const std::string& cmd) {
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("cannot run: " + cmd);
  std::string out;
  std::array<char, 65536> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int rc = pclose(p);
  if (rc != 0) throw std::runtime_error("command failed (" + std::to_string(rc) + "): " + cmd);
  return out;
}

bool Available() {
  static const bool ok = [] {
    if (!std::filesystem::exists(Script())) return false;
    try {
      RunCommand(Script() + " setup >/dev/null 2>&1");
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }();
  return ok;
}

std::vector<PositionLogprobs> Logprobs(const std::string& gguf, const std::vector<int32_t>& tokens,
                                       int threads, int topk) {
  std::string ids;
  for (size_t i = 0; i < tokens.size(); ++i) ids += (i ? "," : "") + std::to_string(tokens[i]);
  std::string out = RunCommand(Script() + " logprobs '" + gguf + "' '" + ids + "' " + std::to_string(threads) +
                               " " + std::to_string(topk) + " 2>/dev/null");
  auto j = nlohmann::json::parse(out);
  std::vector<PositionLogprobs> res;
  for (const auto& pos : j) {
    PositionLogprobs p;
    for (const auto& t : pos.at("top")) p.top.emplace_back(t.at(0).get<int32_t>(), t.at(1).get<double>());
    if (!pos.at("next_true").is_null())
      p.next_true = std::make_pair(pos["next_true"][0].get<int32_t>(), pos["next_true"][1].get<double>());
    res.push_back(std::move(p));
  }
  return res;
}

}  // namespace smelt::peer
