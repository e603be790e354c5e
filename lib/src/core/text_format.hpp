// The library's one definition of lower-case hex (UTC times: modelreg/time_format.hpp).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace modelreg::detail {

// Lower-case hex of `size` bytes, two digits a byte.
std::string to_hex(const unsigned char* data, std::size_t size);

// True for exactly `digits` lower-case hex digits.
bool is_lower_hex(std::string_view text, std::size_t digits) noexcept;

}  // namespace modelreg::detail
