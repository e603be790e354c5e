#include "modelreg/model_ref.hpp"

#include <algorithm>
#include <charconv>
#include <optional>

#include <fmt/format.h>

#include "modelreg/error.hpp"
#include "modelreg/metadata.hpp"

namespace modelreg {
namespace {

bool is_alnum(char c) noexcept {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

constexpr std::string_view kForms =
    "expected NAME, NAME@active, NAME@latest, NAME@<number>, NAME@<label> or NAME@<alias> "
    "(e.g. fraud@7, fraud@v1.2.0, fraud@champion)";

// The reserved selectors, whatever their case: "Active" or "LATEST" can never be a label, and
// NAME@ACTIVE means NAME@active.
std::optional<ModelRef::Kind> reserved_kind(std::string_view word) noexcept {
  auto same = [&](std::string_view reserved) {
    return word.size() == reserved.size() &&
           std::equal(word.begin(), word.end(), reserved.begin(),
                      [](char a, char b) { return (a >= 'A' && a <= 'Z' ? a - 'A' + 'a' : a) == b; });
  };
  if (same("active")) return ModelRef::Kind::active;
  if (same("latest")) return ModelRef::Kind::latest;
  return std::nullopt;
}

}  // namespace

bool is_valid_model_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > 128 || !is_alnum(name.front())) return false;
  for (char c : name) {
    if (!is_alnum(c) && c != '_' && c != '.' && c != '-') return false;
  }
  return true;
}

bool is_valid_label(std::string_view label) noexcept {
  if (label.empty() || label.size() > 64) return false;
  char first = label.front();
  if (!((first >= 'A' && first <= 'Z') || (first >= 'a' && first <= 'z'))) return false;
  for (char c : label) {
    if (!is_alnum(c) && c != '_' && c != '.' && c != '+' && c != '-') return false;
  }
  return !reserved_kind(label);
}

bool is_active_alias(std::string_view alias) noexcept {
  return reserved_kind(alias) == ModelRef::Kind::active;
}

bool is_valid_alias(std::string_view alias) noexcept { return is_active_alias(alias) || is_valid_label(alias); }

ModelRef::ModelRef(std::string model, Kind kind, std::int64_t number, std::string label)
    : model_(std::move(model)), kind_(kind), number_(number), label_(std::move(label)) {}

ModelRef ModelRef::parse(std::string_view text) {
  if (text.empty()) {
    throw Error(Errc::invalid_argument, fmt::format("empty model reference; {}", kForms));
  }
  auto at = text.find('@');
  std::string_view name = text.substr(0, at);
  if (!is_valid_model_name(name)) {
    throw Error(Errc::invalid_argument,
                fmt::format("'{}' is not a valid model reference: model name '{}' must match "
                            "[A-Za-z0-9][A-Za-z0-9_.-]{{0,127}}; {}",
                            text, name, kForms));
  }
  if (at == std::string_view::npos) return active(name);
  std::string_view selector = text.substr(at + 1);
  if (selector.empty()) {
    throw Error(Errc::invalid_argument,
                fmt::format("'{}' is not a valid model reference: nothing after '@'; {}", text, kForms));
  }
  if (const auto kind = reserved_kind(selector)) return *kind == Kind::active ? active(name) : latest(name);
  if (selector.front() >= '0' && selector.front() <= '9') {
    std::int64_t n = 0;
    auto [end, ec] = std::from_chars(selector.data(), selector.data() + selector.size(), n);
    if (ec != std::errc() || end != selector.data() + selector.size() || n < 1) {
      throw Error(Errc::invalid_argument,
                  fmt::format("'{}' is not a valid model reference: version '{}' must be a whole "
                              "number from 1 (labels start with a letter); {}",
                              text, selector, kForms));
    }
    return number(name, n);
  }
  if (!is_valid_label(selector)) {
    throw Error(Errc::invalid_argument,
                fmt::format("'{}' is not a valid model reference: label or alias '{}' must match "
                            "[A-Za-z][A-Za-z0-9_.+-]{{0,63}}; {}",
                            text, selector, kForms));
  }
  return label(name, selector);
}

ModelRef ModelRef::active(std::string_view model) { return {std::string(model), Kind::active, 0, {}}; }
ModelRef ModelRef::latest(std::string_view model) { return {std::string(model), Kind::latest, 0, {}}; }
ModelRef ModelRef::number(std::string_view model, std::int64_t version) {
  return {std::string(model), Kind::number, version, {}};
}
ModelRef ModelRef::label(std::string_view model, std::string_view label) {
  return {std::string(model), Kind::label, 0, std::string(label)};
}

ModelRef ModelRef::alias(std::string_view model, std::string_view alias) {
  if (!is_valid_alias(alias)) {
    throw Error(Errc::invalid_argument,
                fmt::format("alias '{}' is invalid: it must match [A-Za-z][A-Za-z0-9_.+-]{{0,63}} and not be "
                            "'latest' ('active' is the reserved default alias)",
                            alias));
  }
  if (is_active_alias(alias)) return active(model);
  return label(model, alias);
}

std::string ModelRef::to_string() const {
  switch (kind_) {
    case Kind::active: return model_ + "@active";
    case Kind::latest: return model_ + "@latest";
    case Kind::number: return fmt::format("{}@{}", model_, number_);
    case Kind::label: return model_ + "@" + label_;
  }
  return model_;
}

std::string VersionId::to_string() const { return fmt::format("{}@{}", model, number); }

double BlobInfo::ratio() const noexcept {
  if (stored_size == 0) return 1.0;
  return static_cast<double>(raw_size) / static_cast<double>(stored_size);
}

}  // namespace modelreg
