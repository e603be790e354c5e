// modelreg/checksum.hpp — SHA-256 of files and bytes, as the registry computes it (lower-case hex).
//
// Thread-safety: free functions without shared state.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "modelreg/export.hpp"

namespace modelreg {

// Throws Error(not_found) for a missing file, Error(io_error) when it cannot be read.
MODELREG_API std::string sha256_file(const std::filesystem::path& file);
MODELREG_API std::string sha256_bytes(std::string_view bytes);

}  // namespace modelreg
