#pragma once
// Small helpers shared by tests that check error messages.
#include <string>

#include "core/error.h"

namespace smelt::testing {

// The message of the Error `f` throws (empty if it throws none).
template <class F>
std::string ErrorOf(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace smelt::testing
