// smelt: the command-line front end. Each subcommand lives in its own file (cmd_*.cc) and
// registers itself in commands.h; this file only parses, dispatches and reports errors.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "core/error.h"
#include "smelt/version.h"

int main(int argc, char** argv) {
  CLI::App app{"smelt: distil, quantize and prune language models, measure the cost, run the result"};
  app.set_version_flag("--version", std::string("smelt ") + smelt::kVersion);
  app.require_subcommand(0, 1);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (app.get_subcommands().empty()) {
      std::fputs(app.help().c_str(), stdout);
    }
  } catch (const smelt::Error& e) {
    std::fprintf(stderr, "smelt: %s\n", e.what());
    return 1;
  }
  return 0;
}
