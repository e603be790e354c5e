// modelreg/error.hpp — the one exception type of the library.
//
// Every failure that leaves the library is a modelreg::Error carrying an Errc. Errors of the
// libraries we build on (SQLite, zstd, OpenSSL, Boost) are converted where they are called and
// never escape raw. Messages name the object (`fraud@7`), the problem and, where there is one,
// the fix. Absence that is normal is expressed with std::optional, not with an error.
//
// Thread-safety: Error is an immutable value; copy it freely between threads.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

#include "modelreg/export.hpp"

namespace modelreg {

enum class Errc {
  not_found,          // the model, version, label or file does not exist
  already_exists,     // a label or name that must be unique is taken
  invalid_argument,   // the caller passed something malformed (a bad name, REF, metric value...)
  corruption,         // stored bytes fail their checksum, or the file is not a modelreg database
  validation_failed,  // a loaded model fails a validation check
  conflict,           // the request contradicts the current state (promote an archived version...)
  busy,               // the database stayed locked by another writer past the busy timeout
  io_error,           // the operating system refused a read or write (disk full, permissions...)
  incompatible,       // the database or archive was written by a newer or different build
};

// The stable lower-case name of a code, e.g. "not_found" (used in CLI and HTTP JSON output).
MODELREG_API std::string_view to_string(Errc code) noexcept;

class MODELREG_API Error : public std::runtime_error {
 public:
  Error(Errc code, const std::string& message) : std::runtime_error(message), code_(code) {}

  Errc code() const noexcept { return code_; }

 private:
  Errc code_;
};

}  // namespace modelreg
