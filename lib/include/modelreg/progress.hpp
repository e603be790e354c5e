// modelreg/progress.hpp — how long-running calls report progress.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>

namespace modelreg {

// Called while bytes stream in or out: bytes done so far and, when known, the total.
using ProgressFn = std::function<void(std::uint64_t done, std::optional<std::uint64_t> total)>;

}  // namespace modelreg
