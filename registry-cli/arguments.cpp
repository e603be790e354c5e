#include "arguments.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "modelreg/checksum.hpp"

namespace modelreg::cli {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool is_role(std::string_view s) {
  return !s.empty() && s.size() <= 32 &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= 'a' && c <= 'z') || c == '_'; });
}

// Only plain local paths (no scheme) that exist are hashed; remote URIs are recorded as given.
std::optional<std::string> sha256_of_file(const std::string& path) {
  if (path.find("://") != std::string::npos) return std::nullopt;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return std::nullopt;
  return sha256_file(path);
}

}  // namespace

std::pair<std::string, std::string> split_assignment(std::string_view what, std::string_view text) {
  const auto eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    throw UsageError(fmt::format("{} {}: expected NAME=VALUE, e.g. {} f1=0.86", what, text, what));
  }
  return {std::string(text.substr(0, eq)), std::string(text.substr(eq + 1))};
}

double parse_number(std::string_view what, std::string_view text) {
  const std::string_view t = trim(text);
  double value = 0;
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), value);
  if (t.empty() || ec != std::errc() || end != t.data() + t.size() || !std::isfinite(value)) {
    throw UsageError(fmt::format("{}: '{}' is not a finite number", what, text));
  }
  return value;
}

ModelRef parse_ref(std::string_view text) {
  try {
    return ModelRef::parse(text);
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
}

Feature parse_feature(std::string_view text) {
  const auto colon = text.find(':');
  Feature f;
  f.name = std::string(trim(text.substr(0, colon)));
  if (colon != std::string_view::npos) f.dtype = std::string(trim(text.substr(colon + 1)));
  if (f.name.empty() || f.dtype.empty()) {
    throw UsageError(fmt::format("--feature '{}': expected NAME or NAME:DTYPE, e.g. amount:float64", text));
  }
  return f;
}

std::vector<Feature> read_features_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(Errc::not_found, fmt::format("cannot read features file '{}'", path));
  std::vector<Feature> features;
  std::string line;
  bool first = true;
  while (std::getline(in, line)) {
    std::string_view l = trim(line);
    if (first && l.find(',') != std::string_view::npos) {
      // A CSV header: every column is a feature.
      std::size_t start = 0;
      while (start <= l.size()) {
        auto comma = l.find(',', start);
        auto cell = trim(l.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
        features.push_back(parse_feature(cell));
        if (comma == std::string_view::npos) break;
        start = comma + 1;
      }
      return features;
    }
    first = false;
    if (l.empty() || l.front() == '#') continue;
    features.push_back(parse_feature(l));
  }
  if (features.empty()) throw UsageError(fmt::format("features file '{}' names no features", path));
  return features;
}

Parent parse_parent(std::string_view text) {
  const auto colon = text.find(':');
  Parent p{parse_ref(text.substr(0, colon)), "derived_from"};
  if (colon != std::string_view::npos) p.relation = std::string(text.substr(colon + 1));
  return p;
}

Dataset parse_dataset(std::string_view text) {
  Dataset d;
  d.uri = std::string(text);
  const auto colon = text.rfind(':');
  if (colon != std::string_view::npos && colon > 0 && is_role(text.substr(colon + 1))) {
    d.uri = std::string(text.substr(0, colon));
    d.role = std::string(text.substr(colon + 1));
  }
  if (d.uri.empty()) throw UsageError(fmt::format("--dataset '{}': expected URI or URI:ROLE", text));
  d.sha256 = sha256_of_file(d.uri);
  return d;
}

void add_version_metadata_options(CLI::App* cmd, VersionMetadataArgs& a, const std::string& param_help,
                                  const std::string& dataset_help, const std::string& parent_example) {
  cmd->add_option("--metric", a.metrics, "Metric NAME=NUMBER (repeatable)");
  cmd->add_option("--param", a.params, param_help);
  cmd->add_option("--tag", a.tags, "Tag KEY=VALUE (repeatable)");
  cmd->add_option("--label", a.label, "Label unique within the model, e.g. v1.2.0");
  cmd->add_option("--notes", a.notes, "Free text");
  cmd->add_option("--parent", a.parents, fmt::format("Lineage REF[:RELATION], e.g. {} (repeatable)", parent_example));
  cmd->add_option("--dataset", a.datasets, dataset_help);
  cmd->add_option("--level", a.level, "zstd level 0-19 (0 stores raw; default 3)");
}

NewVersion version_spec(const std::string& model, const VersionMetadataArgs& a, const std::optional<std::string>& actor) {
  NewVersion spec;
  spec.model = model;
  spec.notes = a.notes;
  spec.level = a.level;
  if (!a.label.empty()) spec.label = a.label;
  for (const auto& m : a.metrics) {
    auto [k, v] = split_assignment("--metric", m);
    spec.metrics[k] = parse_number(fmt::format("--metric {}", m), v);
  }
  for (const auto& p : a.params) {
    auto [k, v] = split_assignment("--param", p);
    spec.params[k] = v;
  }
  for (const auto& t : a.tags) {
    auto [k, v] = split_assignment("--tag", t);
    spec.tags[k] = v;
  }
  for (const auto& p : a.parents) spec.parents.push_back(parse_parent(p));
  for (const auto& d : a.datasets) spec.datasets.push_back(parse_dataset(d));
  if (actor) spec.created_by = actor;
  return spec;
}

}  // namespace modelreg::cli
