#include "cli_util.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

namespace smelt::cli {

void AddLoadOptions(CLI::App* app, LoadOptions& opt) {
  app->add_option("--tokenizer", opt.tokenizer,
                  "tokenizer .bin of a llama2.c checkpoint (default: the one tokenizer.bin/tok*.bin beside it)");
}

int DefaultThreads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : (int)std::min(n, 8u);
}

void AddThreads(CLI::App* app, int& threads) {
  threads = DefaultThreads();
  app->add_option("-t,--threads", threads, "worker threads")->check(CLI::Range(1, 256))->capture_default_str();
}

std::function<void(int, int)> Progress(std::string label) {
  if (!isatty(fileno(stderr))) return {};
  auto start = std::make_shared<std::chrono::steady_clock::time_point>(std::chrono::steady_clock::now());
  return [label = std::move(label), start](int done, int total) {
    double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - *start).count();
    double eta = done > 0 ? el * (total - done) / done : 0;
    std::fprintf(stderr, "\r%s %d/%d  %.1fs elapsed, ETA %.1fs   ", label.c_str(), done, total, el, eta);
    if (done == total) std::fputc('\n', stderr);
    std::fflush(stderr);
  };
}

void PrintJson(const nlohmann::json& j) { std::printf("%s\n", j.dump(2).c_str()); }

SizeInfo ModelSize(const Model& m) {
  SizeInfo s;
  for (const auto& t : m.weights.all()) {
    s.parameters += t.nelements();
    s.bytes += t.nbytes;
  }
  return s;
}

}  // namespace smelt::cli
