#pragma once
// Machinery shared by the two merge tokenizers (tokenizer_spm.cc, tokenizer_bpe.cc): UTF-8
// symbols in a linked list, greedy pairwise merging with a priority queue, and a memo of the
// tokens of pieces (words, chunks) already seen within one Encode call.
#include <algorithm>
#include <cstdint>
#include <optional>
#include <queue>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "io/utf8.h"

namespace smelt {

struct MergeSymbol {
  int prev, next;  // neighbours (-1: none)
  size_t off, n;   // bytes of the text; n == 0 once merged into its left neighbour
};

// One symbol per UTF-8 character of `text` (length from the lead byte, clipped at the end).
inline std::vector<MergeSymbol> Utf8Symbols(std::string_view text) {
  std::vector<MergeSymbol> sym;
  sym.reserve(text.size());
  for (size_t off = 0; off < text.size();) {
    const size_t len = std::min(Utf8SeqLen(static_cast<uint8_t>(text[off])), text.size() - off);
    const int idx = static_cast<int>(sym.size());
    sym.push_back({idx - 1, off + len == text.size() ? -1 : idx + 1, off, len});
    off += len;
  }
  return sym;
}

// Greedy merging: every adjacent pair with a priority (`priority_of(left, right)` returns
// std::optional<P>) is a candidate; the best one (`better(a, b)`: a goes first; ties: leftmost)
// is merged into its left symbol and the new neighbours become candidates. Candidates made stale
// by an earlier merge (a side merged away or grown) are recognised by their length and skipped.
// O(n log n) in the number of symbols.
template <class P, class PriorityOf, class Better>
void MergeSymbols(std::string_view text, std::vector<MergeSymbol>& sym, PriorityOf priority_of, Better better) {
  struct Candidate {
    P priority;
    int left, right;
    size_t size;  // bytes of left + right when queued
  };
  auto after = [&](const Candidate& a, const Candidate& b) {  // a is merged after b
    return better(b.priority, a.priority) || (!better(a.priority, b.priority) && a.left > b.left);
  };
  std::vector<Candidate> storage;
  storage.reserve(sym.size() * 2);
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(after)> queue(after, std::move(storage));
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const MergeSymbol& l = sym[left];
    const MergeSymbol& r = sym[right];
    if (std::optional<P> p = priority_of(text.substr(l.off, l.n), text.substr(r.off, r.n))) {
      queue.push({*p, left, right, l.n + r.n});
    }
  };
  for (int i = 1; i < static_cast<int>(sym.size()); ++i) try_add(i - 1, i);
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    MergeSymbol& l = sym[c.left];
    MergeSymbol& r = sym[c.right];
    if (l.n == 0 || r.n == 0 || l.n + r.n != c.size) continue;  // stale
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = c.left;
    try_add(l.prev, c.left);
    try_add(c.left, l.next);
  }
}

// Pieces of running text repeat a lot: remembers where each distinct piece's tokens went in
// `out` and copies them the next time instead of encoding again.
class PieceMemo {
 public:
  template <class Encode>
  void Emit(std::string_view piece, std::vector<int32_t>& out, Encode encode) {
    if (auto it = seen_.find(piece); it != seen_.end()) {
      const auto [begin, count] = it->second;
      for (size_t i = 0; i < count; ++i) {
        const int32_t id = out[begin + i];
        out.push_back(id);
      }
      return;
    }
    const size_t begin = out.size();
    encode(piece, out);
    seen_.emplace(piece, std::make_pair(begin, out.size() - begin));
  }

 private:
  std::unordered_map<std::string_view, std::pair<size_t, size_t>> seen_;  // piece -> range in `out`
};

}  // namespace smelt
