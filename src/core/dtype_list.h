#pragma once
// A runtime DType mapped onto a template instantiated once per type of a constexpr list: the
// kernels' dispatch tables over a family of types (kernels/qdot_table4.h's table-4 types,
// formats/group_int.h's group types) find their entry with one fold instead of a switch per family.
#include <cstddef>
#include <iterator>
#include <utility>

#include "core/tensor.h"

namespace smelt {

// Fn<kList[i]>::kFn for the entry of kList equal to `type`, nullptr where `type` is not listed.
template <const auto& kList, template <DType> class Fn, class R>
R FindInTypeList(DType type) {
  return [type]<size_t... I>(std::index_sequence<I...>) {
    R found = nullptr;
    (void)((type == kList[I] ? (found = Fn<kList[I]>::kFn, true) : false) || ...);
    return found;
  }(std::make_index_sequence<std::size(kList)>{});
}

}  // namespace smelt
