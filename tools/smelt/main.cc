// smelt: the command-line front end. Each subcommand lives in its own file (cmd_*.cc) and is
// registered here; this file only parses, dispatches and turns errors into one line + exit 1.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <vector>

#include "cli_util.h"
#include "core/error.h"
#include "smelt/version.h"

int main(int argc, char** argv) {
  CLI::App app{
      "smelt: make language models smaller and faster, measure what it cost, run the result.\n"
      "Reads GGUF files, Hugging Face folders (config.json + safetensors) and llama2.c checkpoints.\n"
      "Run `smelt COMMAND --help` for each command's options."};
  app.set_version_flag("--version", std::string("smelt ") + smelt::kVersion);
  app.require_subcommand(1);
  std::vector<smelt::cli::Command> commands = {
      smelt::cli::AddInspect(app), smelt::cli::AddRun(app),   smelt::cli::AddEval(app),
      smelt::cli::AddConvert(app), smelt::cli::AddSynth(app), smelt::cli::AddDemo(app),
      smelt::cli::AddQuantize(app),
      smelt::cli::AddPrune(app),
      smelt::cli::AddQuantReport(app),
      smelt::cli::AddSensitivity(app),
      smelt::cli::AddSysinfo(app),
      smelt::cli::AddBench(app),
      smelt::cli::AddTrain(app),
      smelt::cli::AddDistill(app),
      smelt::cli::AddQat(app),
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (auto& c : commands)
      if (c.app->parsed()) return c.run();
  } catch (const smelt::Error& e) {
    std::fprintf(stderr, "smelt: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "smelt: out of memory\n");
    return 1;
  }
  return 0;
}
