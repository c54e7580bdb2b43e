#pragma once
// Errors. Recoverable problems (bad files, bad flags) throw smelt::Error with a one-line message
// that names the file or object and what is wrong: "model.gguf: tensor blk.3.ffn_up: offset past
// end of file". The CLI catches it at the top and prints it. Broken invariants (bugs) abort via
// SMELT_ASSERT. Library code never calls exit().
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <utility>

namespace smelt {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <class... Args>
[[noreturn]] void Fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

// Re-throws an Error with "context: " prepended (for adding the file name at an outer level).
[[noreturn]] inline void Rethrow(const std::string& context, const Error& e) {
  throw Error(context + ": " + e.what());
}

}  // namespace smelt

#define SMELT_ASSERT(cond)                                                                     \
  do {                                                                                         \
    if (!(cond)) {                                                                             \
      std::fprintf(stderr, "smelt: internal error: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                            \
    }                                                                                          \
  } while (0)
