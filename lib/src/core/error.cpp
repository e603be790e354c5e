#include "modelreg/error.hpp"

namespace modelreg {

std::string_view to_string(Errc code) noexcept {
  switch (code) {
    case Errc::not_found: return "not_found";
    case Errc::already_exists: return "already_exists";
    case Errc::invalid_argument: return "invalid_argument";
    case Errc::corruption: return "corruption";
    case Errc::validation_failed: return "validation_failed";
    case Errc::conflict: return "conflict";
    case Errc::busy: return "busy";
    case Errc::io_error: return "io_error";
    case Errc::incompatible: return "incompatible";
  }
  return "unknown";
}

}  // namespace modelreg
