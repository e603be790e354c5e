// What a caller may pass to the registry: names, keys, texts and a NewVersion as a whole. Each
// check throws Error(invalid_argument) naming the field, the rule and an example.
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <set>
#include <vector>

#include <fmt/format.h>

#include "core/text_format.hpp"
#include "store/registry_impl.hpp"

namespace modelreg::detail {
bool is_identifier_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-' || c == ':' || c == '/';
}

std::string os_user() {
  if (const char* u = std::getenv("USER"); u != nullptr && *u != '\0') return u;
  // getpwuid_r, not getpwuid: registries are opened on several threads at once (a server's loaders),
  // and getpwuid returns a static buffer.
  passwd entry{};
  passwd* found = nullptr;
  std::vector<char> buffer(16384);
  if (::getpwuid_r(::geteuid(), &entry, buffer.data(), buffer.size(), &found) == 0 && found != nullptr &&
      found->pw_name != nullptr) {
    return found->pw_name;
  }
  return fmt::format("uid:{}", ::geteuid());
}

void check_key(std::string_view kind, std::string_view key) {
  if (key.empty() || key.size() > 128 || !std::all_of(key.begin(), key.end(), is_identifier_char)) {
    throw Error(Errc::invalid_argument,
                fmt::format("{} name '{}' is invalid: use 1 to 128 of A-Z a-z 0-9 _ . : / -", kind, key));
  }
}

void check_text(std::string_view what, std::string_view value, std::size_t max, bool allow_empty) {
  if ((!allow_empty && value.empty()) || value.size() > max) {
    throw Error(Errc::invalid_argument,
                fmt::format("{} must be {} to {} characters (got {})", what, allow_empty ? 0 : 1, max,
                            value.size()));
  }
  if (value.find('\0') != std::string_view::npos) {
    throw Error(Errc::invalid_argument, fmt::format("{} must not contain NUL characters", what));
  }
  for (std::size_t i = 0; i < value.size(); ++i) {
    const auto c = static_cast<unsigned char>(value[i]);
    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) {
      throw Error(Errc::invalid_argument, fmt::format("{} contains the control character 0x{:02x} at byte {}; use "
                                                      "printable text (tabs and line breaks are allowed)",
                                                      what, c, i));
    }
  }
  if (const auto bad = first_invalid_utf8(value)) {
    throw Error(Errc::invalid_argument, fmt::format("{} is not valid UTF-8 (byte {} is 0x{:02x}); store text as UTF-8",
                                                    what, *bad, static_cast<unsigned char>(value[*bad])));
  }
}

std::optional<std::size_t> first_invalid_utf8(std::string_view text) noexcept {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return i;
    }
    if (i + len > text.size()) return i;
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xc0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3f);
    }
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8.
    const std::uint32_t min = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += len;
  }
  return std::nullopt;
}

bool is_relation(std::string_view r) {
  return !r.empty() && r.size() <= 64 && std::all_of(r.begin(), r.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

void validate(const NewVersion& spec) {
  if (!is_valid_model_name(spec.model)) {
    throw Error(Errc::invalid_argument,
                fmt::format("model name '{}' is invalid: it must match [A-Za-z0-9][A-Za-z0-9_.-]{{0,127}}",
                            spec.model));
  }
  if (spec.format.empty() || spec.format.size() > 64 ||
      !std::all_of(spec.format.begin(), spec.format.end(), [](char c) { return c > ' ' && c < 127; })) {
    throw Error(Errc::invalid_argument,
                fmt::format("format '{}' is invalid: give 1 to 64 printable characters without spaces, "
                            "e.g. 'onnx' or 'bytes'",
                            spec.format));
  }
  check_text("type name", spec.type_name, 256, true);
  check_text("notes", spec.notes, 1 << 20, true);
  for (const auto& [name, value] : spec.metrics) {
    check_key("metric", name);
    if (!std::isfinite(value)) {
      throw Error(Errc::invalid_argument,
                  fmt::format("metric '{}' is {}; metrics must be finite numbers", name, value));
    }
  }
  for (const auto& [name, value] : spec.params) {
    check_key("parameter", name);
    check_text(fmt::format("parameter '{}'", name), value, 1 << 16, true);
  }
  std::set<std::string_view> feature_names;
  for (std::size_t i = 0; i < spec.features.size(); ++i) {
    const auto& f = spec.features[i];
    check_text(fmt::format("feature {} name", i), f.name, 256, false);
    check_text(fmt::format("feature '{}' dtype", f.name), f.dtype, 32, false);
    if (!feature_names.insert(f.name).second) {
      throw Error(Errc::invalid_argument,
                  fmt::format("feature '{}' appears twice; feature names must be unique", f.name));
    }
  }
  for (const auto& [key, value] : spec.tags) {
    check_text("tag key", key, 128, false);
    check_text(fmt::format("tag '{}'", key), value, 4096, true);
  }
  if (spec.label && !is_valid_label(*spec.label)) {
    throw Error(Errc::invalid_argument,
                fmt::format("label '{}' is invalid: it must match [A-Za-z][A-Za-z0-9_.+-]{{0,63}} and not be "
                            "'active' or 'latest', e.g. v1.2.0",
                            *spec.label));
  }
  if (spec.created_by) check_text("created_by", *spec.created_by, 256, false);
  for (const auto& p : spec.parents) {
    if (!is_relation(p.relation)) {
      throw Error(Errc::invalid_argument,
                  fmt::format("lineage relation '{}' is invalid: use [a-z0-9_], e.g. retrained_from", p.relation));
    }
  }
  for (const auto& d : spec.datasets) {
    check_text("dataset uri", d.uri, 4096, false);
    check_text(fmt::format("dataset '{}' role", d.uri), d.role, 32, false);
    if (d.sha256 && !detail::is_lower_hex(*d.sha256, 64)) {
      throw Error(Errc::invalid_argument,
                  fmt::format("dataset '{}' sha256 '{}' is invalid: give 64 lower-case hex digits", d.uri, *d.sha256));
    }
  }
  if (spec.level < 0 || spec.level > 19) {
    throw Error(Errc::invalid_argument,
                fmt::format("compression level {} is out of range: use 0 (store raw) to 19", spec.level));
  }
}

}  // namespace modelreg::detail
