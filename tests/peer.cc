#include "peer.h"

#include <nlohmann/json.hpp>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>
#include <stdexcept>
#include <sys/wait.h>

#include "shared_assets.h"

namespace smelt::peer {
namespace {

// The peer's logprobs.mjs with the KV cache in f32 and flash attention off, importing
// node-llama-cpp from the peer's install folder.
constexpr const char* kF32Script = R"(
const dir = process.env.SMELT_PEER_DIR || "/tmp/smelt-peer";
const {getLlama, LlamaLogLevel} = await import(dir + "/node_modules/node-llama-cpp/dist/index.js");
const [modelPath, toks, thr = "1", k = "5"] = process.argv.slice(2);
const tokens = toks.split(",").map(Number);
const llama = await getLlama({gpu: false, build: "never", skipDownload: true, maxThreads: +thr, logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath, gpuLayers: 0});
const ctx = await model.createContext({contextSize: tokens.length + 16, threads: +thr, flashAttention: false,
  experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32"});
const out = await ctx.getSequence().controlledEvaluate(tokens.map(t => [t, {generateNext: {probabilities: true}}]));
console.log(JSON.stringify(out.map((o, i) => { const p = o.next.probabilities;
  return {top: [...p.entries()].slice(0, +k).map(([t, v]) => [t, Math.log(v)]),
          next_true: tokens[i + 1] !== undefined ? [tokens[i + 1], Math.log(p.get(tokens[i + 1]))] : null}; })));
await llama.dispose();
)";

}  // namespace

std::string Script() { return assets::kShared + "/peer/llamacpp"; }

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
                                       int threads, int topk, KvPrecision kv) {
  std::string ids;
  for (size_t i = 0; i < tokens.size(); ++i) ids += (i ? "," : "") + std::to_string(tokens[i]);
  const std::string args = " '" + gguf + "' '" + ids + "' " + std::to_string(threads) + " " + std::to_string(topk);
  std::string out;
  if (kv == KvPrecision::kDefault) {
    out = RunCommand(Script() + " logprobs" + args + " 2>/dev/null");
  } else {
    // Written next to nothing of the repo: a temp script importing the peer's node package.
    const std::string script =
        (std::filesystem::temp_directory_path() / ("smelt_peer_f32_" + std::to_string(::getpid()) + ".mjs")).string();
    { std::ofstream(script) << kF32Script; }
    try {
      out = RunCommand("node '" + script + "'" + args + " 2>/dev/null");
    } catch (...) {
      std::filesystem::remove(script);
      throw;
    }
    std::filesystem::remove(script);
  }
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
