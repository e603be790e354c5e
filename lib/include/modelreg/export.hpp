// modelreg/export.hpp — what the shared library exports.
//
// The library is compiled with hidden visibility: only declarations marked MODELREG_API (the
// public API in these headers) are part of its ABI. Internals (namespace detail, lib/src/) are
// not, and may change in any release.
#pragma once

#define MODELREG_API __attribute__((visibility("default")))
