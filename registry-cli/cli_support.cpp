#include "cli_support.hpp"

#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>

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

void Table::print() const {
  std::vector<std::size_t> widths;
  for (const auto& row : rows_) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  // A header of empty cells is not printed (tables used only for alignment).
  const bool headless = std::all_of(rows_[0].begin(), rows_[0].end(), [](const std::string& c) { return c.empty(); });
  for (std::size_t r = headless ? 1 : 0; r < rows_.size(); ++r) {
    const auto& row = rows_[r];
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    fmt::print("{}\n", line);
  }
}

std::string human_bytes(std::uint64_t bytes) {
  if (bytes < 1024) return fmt::format("{} B", bytes);
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes) / 1024.0;
  int u = 0;
  while (v >= 1024.0 && u < 3) {
    v /= 1024.0;
    ++u;
  }
  return fmt::format("{:.1f} {}", v, units[u]);
}

std::string format_number(double value) { return fmt::format("{}", value); }

ProgressBar::ProgressBar(std::string label) : label_(std::move(label)), enabled_(::isatty(STDERR_FILENO) == 1) {}

ProgressBar::~ProgressBar() {
  if (drawn_) std::fputs("\n", stderr);
}

ProgressFn ProgressBar::callback() {
  if (!enabled_) return {};
  return [this](std::uint64_t done, std::optional<std::uint64_t> total) { draw(done, total, false); };
}

void ProgressBar::draw(std::uint64_t done, std::optional<std::uint64_t> total, bool final) {
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now().time_since_epoch())
                       .count();
  const bool complete = total && done >= *total;
  if (!final && !complete && now - last_draw_ms_ < 100) return;
  last_draw_ms_ = now;
  drawn_ = true;
  if (total && *total > 0) {
    const double f = std::min(1.0, static_cast<double>(done) / static_cast<double>(*total));
    const int filled = static_cast<int>(f * 30);
    fmt::print(stderr, "\r{} [{}{}] {:3.0f}% {} / {}  ", label_, std::string(static_cast<std::size_t>(filled), '#'),
               std::string(static_cast<std::size_t>(30 - filled), '.'), f * 100, human_bytes(done), human_bytes(*total));
  } else {
    fmt::print(stderr, "\r{} {}  ", label_, human_bytes(done));
  }
  std::fflush(stderr);
}

nlohmann::json to_json(const ModelVersion& v) {
  using nlohmann::json;
  json features = json::array();
  for (const auto& f : v.features) features.push_back({{"name", f.name}, {"dtype", f.dtype}});
  json datasets = json::array();
  for (const auto& d : v.datasets) {
    datasets.push_back({{"uri", d.uri}, {"sha256", d.sha256 ? json(*d.sha256) : json(nullptr)}, {"role", d.role}});
  }
  json parents = json::array();
  for (const auto& [id, relation] : v.parents) {
    parents.push_back({{"ref", id.to_string()}, {"model", id.model}, {"version", id.number}, {"relation", relation}});
  }
  return json{{"ref", v.ref_string()},
              {"model", v.id.model},
              {"version", v.id.number},
              {"label", v.label ? json(*v.label) : json(nullptr)},
              {"status", v.status == VersionStatus::archived ? "archived" : "ready"},
              {"active", v.active},
              {"format", v.format},
              {"type_name", v.type_name},
              {"notes", v.notes},
              {"created_at", v.created_at},
              {"created_by", v.created_by},
              {"blob",
               {{"sha256", v.blob.sha256},
                {"raw_size", v.blob.raw_size},
                {"stored_size", v.blob.stored_size},
                {"ratio", v.blob.ratio()},
                {"codec", v.blob.codec},
                {"level", v.blob.level},
                {"chunk_count", v.blob.chunk_count}}},
              {"metrics", v.metrics},
              {"params", v.params},
              {"features", features},
              {"tags", v.tags},
              {"datasets", datasets},
              {"parents", parents},
              {"signature", v.signature ? json{{"algorithm", v.signature->algorithm},
                                               {"key_id", v.signature->key_id},
                                               {"signed_at", v.signature->signed_at},
                                               {"signed_by", v.signature->signed_by}}
                                        : json(nullptr)}};
}

nlohmann::json to_json(const ModelSummary& m) {
  using nlohmann::json;
  return json{{"model", m.name},
              {"versions", m.version_count},
              {"active_version", m.active_version ? json(*m.active_version) : json(nullptr)},
              {"latest_version", m.latest_version ? json(*m.latest_version) : json(nullptr)},
              {"created_at", m.created_at}};
}

nlohmann::json to_json(const Event& e) {
  using nlohmann::json;
  auto opt = [](const std::optional<std::int64_t>& v) { return v ? json(*v) : json(nullptr); };
  return json{{"id", e.id},           {"model", e.model},        {"kind", e.kind},   {"version", opt(e.version)},
              {"from_version", opt(e.from_version)}, {"to_version", opt(e.to_version)}, {"actor", e.actor},
              {"reason", e.reason},   {"at", e.at},              {"details", e.details}};
}

nlohmann::json to_json(const LineageEdge& e) {
  return nlohmann::json{
      {"child", e.child.to_string()}, {"parent", e.parent.to_string()}, {"relation", e.relation}, {"depth", e.depth}};
}

nlohmann::json to_json(const Transition& t) {
  using nlohmann::json;
  return json{{"model", t.model},
              {"from_version", t.from_version ? json(*t.from_version) : json(nullptr)},
              {"to_version", t.to_version}};
}

nlohmann::json to_json(const SqlValue& v) {
  using nlohmann::json;
  if (std::holds_alternative<std::int64_t>(v)) return std::get<std::int64_t>(v);
  if (std::holds_alternative<double>(v)) return std::get<double>(v);
  if (std::holds_alternative<std::string>(v)) return std::get<std::string>(v);
  if (std::holds_alternative<SqlBlob>(v)) return json{{"blob_bytes", std::get<SqlBlob>(v).size}};
  return nullptr;
}

}  // namespace modelreg::cli
