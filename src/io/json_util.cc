#include "io/json_util.h"

#include <set>
#include <vector>

#include "core/error.h"

namespace smelt {

std::string Printable(std::string_view s, size_t max) {
  std::string out;
  for (unsigned char c : s) {
    if (out.size() >= max) {
      out += "...";
      break;
    }
    if (c >= 0x20 && c < 0x7f) {
      out += (char)c;
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  return out;
}

nlohmann::json ParseJsonStrict(std::string_view text, const std::string& source) {
  using json = nlohmann::json;
  std::vector<std::set<std::string>> open;  // keys seen in each open object
  std::string duplicate;
  int duplicate_depth = 0;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start: open.emplace_back(); break;
      case json::parse_event_t::object_end:
        if (!open.empty()) open.pop_back();
        break;
      case json::parse_event_t::key:
        if (!open.empty() && !open.back().insert(parsed.get<std::string>()).second && duplicate.empty()) {
          duplicate = parsed.get<std::string>();
          duplicate_depth = depth;
        }
        break;
      default: break;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text.begin(), text.end(), cb);
  } catch (const json::exception& e) {
    std::string_view what = e.what();
    size_t p = what.find("] ");  // drop nlohmann's "[json.exception.parse_error.101] " tag
    if (p != std::string_view::npos) what.remove_prefix(p + 2);
    Fail("{}: invalid JSON: {}", source, Printable(what, 200));
  }
  if (!duplicate.empty()) {
    Fail("{}: duplicate key \"{}\" {}", source, Printable(duplicate),
         duplicate_depth <= 1 ? "at the top level" : "in a nested object");
  }
  return j;
}

}  // namespace smelt
