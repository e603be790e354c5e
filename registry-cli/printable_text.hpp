// Text as modelreg prints it for people: never a raw control character. A registry may hold text
// that input checks never saw (written by an older modelreg, by the sqlite3 shell, or returned
// by `sql`), and an escape sequence printed raw would drive the reader's terminal (retitle it,
// clear it, rewrite lines of a report). Every human-readable line the commands print goes
// through print_text or Table (render.hpp), which escape what they print; --json output is
// escaped by the JSON writer instead.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>
#include <type_traits>

#include <fmt/format.h>

namespace modelreg::cli {

// `text` with every control character escaped: C0 and DEL as \xNN (tab, line feed and carriage
// return as \t, \n, \r), C1 (U+0080..U+009F) as \u00NN, and each byte that is not part of valid
// UTF-8 as \xNN (a lone 0x9b is CSI to an 8-bit terminal). Everything else is kept as it is.
std::string printable(std::string_view text);

// The same, keeping line feeds: for our own multi-line messages (CLI11's usage errors).
std::string printable_lines(std::string_view text);

// Whether `file` (stdout, stderr) is a terminal.
bool is_terminal(std::FILE* file);

namespace detail {

template <class T>
decltype(auto) printable_arg(const T& value) {
  if constexpr (std::is_convertible_v<const T&, std::string_view>) {
    return printable(std::string_view(value));
  } else {
    return (value);
  }
}

}  // namespace detail

// fmt::print for people: each text argument is escaped as printable() does (line breaks inside a
// value included), and then the whole line once more keeping only the format's own line feeds, so
// that nothing formatted from a value (a joined list, a number) can carry a control character.
template <class... Args>
void print_text(std::FILE* file, fmt::format_string<Args...> format, const Args&... args) {
  const std::string line = fmt::format(fmt::runtime(fmt::string_view(format)), detail::printable_arg(args)...);
  std::fputs(printable_lines(line).c_str(), file);
}

template <class... Args>
void print_text(fmt::format_string<Args...> format, const Args&... args) {
  print_text(stdout, format, args...);
}

}  // namespace modelreg::cli
