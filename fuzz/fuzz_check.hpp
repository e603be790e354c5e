// fuzz_check.hpp — how the fuzz targets state a property: a violated one prints what was expected
// and aborts, which libFuzzer reports as a crash and saves the input that caused it.
//
// Exceptions follow the same rule: each target catches only the exception types its API
// documents (modelreg::Error with the documented codes); anything else escapes
// LLVMFuzzerTestOneInput, reaches std::terminate and aborts.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "modelreg/error.hpp"

namespace modelreg::fuzz {

[[noreturn]] inline void fail(std::string_view what, std::string_view detail = {}) {
  std::fprintf(stderr, "fuzz property violated: %.*s%s%.*s\n", static_cast<int>(what.size()), what.data(),
               detail.empty() ? "" : ": ", static_cast<int>(detail.size()), detail.data());
  std::abort();
}

inline void check(bool ok, std::string_view what, std::string_view detail = {}) {
  if (!ok) fail(what, detail);
}

// An Error is allowed only with one of the codes listed.
template <class... Codes>
void check_code(const Error& e, Codes... allowed) {
  if (((e.code() == allowed) || ...)) return;
  fail(std::string("unexpected Error code ") + std::string(to_string(e.code())), e.what());
}

}  // namespace modelreg::fuzz
