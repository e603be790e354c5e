// The library's one definition of the text forms it writes: lower-case hex and UTC timestamps.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

namespace modelreg::detail {

// Lower-case hex of `size` bytes, two digits a byte.
std::string to_hex(const unsigned char* data, std::size_t size);

// True for exactly `digits` lower-case hex digits.
bool is_lower_hex(std::string_view text, std::size_t digits) noexcept;

// A time as UTC ISO 8601 with milliseconds: 2026-11-29T06:07:15.123Z. Sorts as text in time order.
std::string format_utc(std::chrono::system_clock::time_point t);

}  // namespace modelreg::detail
