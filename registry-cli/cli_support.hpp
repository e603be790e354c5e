// Helpers of the modelreg command: argument parsing, aligned tables, a progress bar, and the
// JSON shapes documented in README.md ("JSON output").
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "modelreg/registry.hpp"

namespace modelreg::cli {

// A mistake in how the command was called (exit status 2), as opposed to an error while doing it.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "k=v" -> {k, v}; `what` names the option in the message ("--metric").
std::pair<std::string, std::string> split_assignment(std::string_view what, std::string_view text);
double parse_number(std::string_view what, std::string_view text);
ModelRef parse_ref(std::string_view text);
Feature parse_feature(std::string_view text);               // name[:dtype]
std::vector<Feature> read_features_file(const std::string& path);
Parent parse_parent(std::string_view text);                 // REF[:relation]
Dataset parse_dataset(std::string_view text);               // URI[:role]; sha256 filled for local files

// Columns padded to their widest cell; the first row is the header.
class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::size_t size() const { return rows_.size() - 1; }
  void print() const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

std::string human_bytes(std::uint64_t bytes);
std::string format_number(double value);  // shortest text that reads back as the same double

// A progress bar on stderr, drawn only when stderr is a terminal, at most 10 times a second.
class ProgressBar {
 public:
  explicit ProgressBar(std::string label);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;
  ProgressFn callback();

 private:
  void draw(std::uint64_t done, std::optional<std::uint64_t> total, bool final);
  std::string label_;
  bool enabled_;
  bool drawn_ = false;
  std::int64_t last_draw_ms_ = 0;
};

nlohmann::json to_json(const ModelVersion& v);
nlohmann::json to_json(const ModelSummary& m);
nlohmann::json to_json(const Event& e);
nlohmann::json to_json(const LineageEdge& e);
nlohmann::json to_json(const Transition& t);
nlohmann::json to_json(const SqlValue& v);

}  // namespace modelreg::cli
