// modelreg/time_format.hpp — how modelreg writes a point in time.
#pragma once

#include <chrono>
#include <string>

#include "modelreg/export.hpp"

namespace modelreg {

// UTC ISO 8601 with milliseconds, e.g. 2026-11-29T06:07:15.123Z: every created_at and event time
// in the registry, and the server's log lines. Sorts as text in time order.
MODELREG_API std::string format_utc(std::chrono::system_clock::time_point t);

}  // namespace modelreg
