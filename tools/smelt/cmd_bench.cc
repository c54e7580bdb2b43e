// smelt bench MODEL -t 1,2 -p 128 -n 64 -r 5: prompt processing and text generation speed in
// llama-bench's terms (runtime/bench.h), with the ceiling memory bandwidth puts on tg.
#include <fmt/format.h>

#include <algorithm>

#include "cli_util.h"
#include "runtime/bench.h"

namespace smelt::cli {
namespace {

struct BenchArgs {
  std::string model;
  LoadOptions load;
  BenchOptions opt;
  bool json = false, markdown = false;
};

// The tg ceiling at a thread count, if it was measured.
const TgCeiling* CeilingOf(const BenchReport& r, int threads) {
  for (const TgCeiling& c : r.ceilings)
    if (c.threads == threads) return &c;
  return nullptr;
}

// One sequence's decoding from an empty cache ("tg64", not "tg64x8"): what the bandwidth ceiling
// bounds.
// At a depth (" @ d1024") a token also reads the cache, which the ceiling leaves out: no share.
bool IsSingleTg(const BenchResult& b) {
  return b.test.rfind("tg", 0) == 0 && b.test.find('x') == std::string::npos && b.test.find(" @ ") == std::string::npos;
}

// A tg result as a share of its ceiling, in percent ("" without one).
std::string PercentOfCeiling(const BenchReport& r, const BenchResult& b) {
  const TgCeiling* c = CeilingOf(r, b.threads);
  if (!IsSingleTg(b) || !c || c->tokens_per_s <= 0) return "";
  return fmt::format("{:.1f} %", 100.0 * b.stats.mean / c->tokens_per_s);
}

// Rows padded to their columns' widths, between pipes, with markdown's alignment row
// (numbers right-aligned), as llama-bench prints them.
void PrintTable(const std::vector<std::string>& head, const std::vector<bool>& right,
                const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> w(head.size());
  for (size_t c = 0; c < head.size(); ++c) {
    w[c] = std::max<size_t>(3, head[c].size());
    for (const auto& row : rows) w[c] = std::max(w[c], row[c].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s = "|";
    for (size_t c = 0; c < cells.size(); ++c)
      s += right[c] ? fmt::format(" {:>{}} |", cells[c], w[c]) : fmt::format(" {:<{}} |", cells[c], w[c]);
    fmt::print("{}\n", s);
  };
  line(head);
  std::string align = "|";
  for (size_t c = 0; c < head.size(); ++c)
    align += " " + (right[c] ? std::string(w[c] - 1, '-') + ":" : std::string(w[c], '-')) + " |";
  fmt::print("{}\n", align);
  for (const auto& row : rows) line(row);
}

void PrintJsonReport(const BenchArgs& a, const BenchReport& r) {
  nlohmann::json results = nlohmann::json::array();
  for (const BenchResult& b : r.results) {
    nlohmann::json j = {{"test", b.test},
                        {"threads", b.threads},
                        {"tokens", b.tokens},
                        {"samples_ts", b.tokens_per_s},
                        {"avg_ts", b.stats.mean},
                        {"stddev_ts", b.stats.sd}};
    if (const TgCeiling* c = CeilingOf(r, b.threads); c && IsSingleTg(b) && c->tokens_per_s > 0) {
      j["ceiling_ts"] = c->tokens_per_s;
      j["percent_of_ceiling"] = 100.0 * b.stats.mean / c->tokens_per_s;
    }
    results.push_back(std::move(j));
  }
  nlohmann::json ceilings = nlohmann::json::array();
  for (const TgCeiling& c : r.ceilings)
    ceilings.push_back({{"threads", c.threads}, {"bandwidth_gb_s", c.gb_per_s}, {"tg_ceiling_ts", c.tokens_per_s}});
  PrintJson({{"file", a.model},
             {"model", r.model},
             {"size_bytes", r.bytes},
             {"parameters", r.parameters},
             {"bytes_per_token", r.bytes_per_token},
             {"backend", r.backend},
             {"n_prompt", a.opt.prompt},
             {"n_gen", a.opt.gen},
             {"n_depth", a.opt.depth},
             {"parallel", a.opt.parallel},
             {"repetitions", a.opt.repetitions},
             {"kv", KvTypeName(a.opt.kv)},
             {"activations", ActivationsName(a.opt.activations)},
             {"system", SystemJson(GetSystemInfo())},
             {"results", results},
             {"ceilings", ceilings}});
}

int RunBenchCmd(const BenchArgs& a) {
  Model m = LoadModel(a.model, a.load);
  const BenchReport r = RunBench(m, a.opt);
  if (a.json) {
    PrintJsonReport(a, r);
    return 0;
  }
  std::vector<std::string> head = {"model", "size", "params", "backend", "threads", "test", "t/s"};
  std::vector<bool> right = {false, true, true, false, true, true, true};
  if (a.markdown && !r.ceilings.empty()) {
    head.push_back("of tg ceiling");
    right.push_back(true);
  }
  std::vector<std::vector<std::string>> rows;
  for (const BenchResult& b : r.results) {
    rows.push_back({r.model, fmt::format("{:.2f} MiB", r.bytes / 1048576.0), fmt::format("{:.2f} M", r.parameters / 1e6),
                    r.backend, std::to_string(b.threads), b.test,
                    fmt::format("{:.2f} ± {:.2f}", b.stats.mean, b.stats.sd)});
    if (head.size() > rows.back().size()) rows.back().push_back(PercentOfCeiling(r, b));
  }
  PrintTable(head, right, rows);
  if (a.markdown) return 0;
  if (!r.ceilings.empty()) fmt::print("\n");
  for (const TgCeiling& c : r.ceilings) {
    std::string reached;
    for (const BenchResult& b : r.results)
      if (b.threads == c.threads && !PercentOfCeiling(r, b).empty())
        reached = fmt::format("; {} reaches {}", b.test, PercentOfCeiling(r, b));
    fmt::print("tg ceiling, {} thread{}: {:.1f} GB/s read / {:.2f} MB per token = {:.1f} t/s{}\n", c.threads,
               c.threads == 1 ? "" : "s", c.gb_per_s, r.bytes_per_token / 1e6, c.tokens_per_s, reached);
  }
  const uint64_t llc = GetSystemInfo().llc_bytes;
  if (!r.ceilings.empty() && llc > r.bytes_per_token)
    fmt::print("note: the {:.2f} MB read per token fit in this CPU's {} MiB cache, so part of them can stay cached "
               "between tokens; the ceiling (memory read past the cache) is then no bound\n",
               r.bytes_per_token / 1e6, llc >> 20);
  return 0;
}

}  // namespace

Command AddBench(CLI::App& root) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* app = root.add_subcommand(
      "bench", "prompt processing (pp) and text generation (tg) speed, llama-bench style, with tg's bandwidth ceiling");
  app->add_option("model", a->model, "GGUF file, Hugging Face folder or llama2.c checkpoint")->required();
  a->opt.threads = {DefaultThreads()};
  app->add_option("-t,--threads", a->opt.threads, "thread counts, comma-separated (e.g. 1,2)")
      ->delimiter(',')
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app->add_option("-p,--n-prompt", a->opt.prompt, "pp: tokens in one batch from an empty cache (0: skip)")
      ->check(CLI::Range(0, 1 << 20))
      ->capture_default_str();
  app->add_option("-n,--n-gen", a->opt.gen, "tg: tokens decoded one at a time after a 1-token start (0: skip)")
      ->check(CLI::Range(0, 1 << 20))
      ->capture_default_str();
  app->add_option("-d,--n-depth", a->opt.depth,
                  "tokens already in the KV cache when each test starts (untimed), as llama-bench's -d: tests "
                  "'tg64 @ d1024'")
      ->check(CLI::Range(0, 1 << 20))
      ->capture_default_str();
  app->add_option("--parallel", a->opt.parallel,
                  "also decode N sequences together, comma-separated counts (e.g. 8): test tgNxS, t/s of all sequences")
      ->delimiter(',')
      ->check(CLI::Range(1, 256));
  app->add_option("-r,--repetitions", a->opt.repetitions, "timed runs of each test, after one warm-up run")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app->add_option("--mib", a->opt.bandwidth_mib, "buffer of the bandwidth measurement behind tg's ceiling (0: skip)")
      ->capture_default_str();
  AddKvOption(app, a->opt.kv);
  AddActivationsOption(app, a->opt.activations);
  AddLoadOptions(app, a->load);
  auto* json = app->add_flag("--json", a->json, "print JSON");
  app->add_flag("--markdown", a->markdown, "print only a markdown table (tg rows: share of the ceiling)")->excludes(json);
  return {app, [a] { return RunBenchCmd(*a); }};
}

}  // namespace smelt::cli
