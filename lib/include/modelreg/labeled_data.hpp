// modelreg/labeled_data.hpp — a table of training or test rows: named double features and a 0/1
// label per row; the synthetic fraud-like generator, CSV reading and writing, and the stratified
// train/test split.
//
// (Not to be confused with modelreg::Dataset in metadata.hpp, which is a *reference* to a data set
// recorded with a version: a URI, its SHA-256 and its role.)
//
// Thread-safety: plain values and free functions without shared state.
#pragma once

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "modelreg/export.hpp"
#include "modelreg/matrix.hpp"

namespace modelreg {

// How a table's columns meet a wanted list of names (a model's features): the one matching rule
// behind LabeledData::with_features, for callers that word their own message.
struct MODELREG_API ColumnMatch {
  std::vector<std::size_t> source;   // for each wanted name found, its column
  std::vector<std::string> missing;  // wanted names no column has
  std::vector<std::string> extra;    // columns neither wanted nor ignored
  bool ok() const noexcept { return missing.empty() && extra.empty(); }
};

// Matches `columns` (a table's names) to `wanted`; names in `ignored` may be present or not.
MODELREG_API ColumnMatch match_columns(std::span<const std::string> columns, std::span<const std::string> wanted,
                                       std::span<const std::string> ignored = {});

struct MODELREG_API LabeledData {
  std::vector<std::string> feature_names;  // one per column of x
  Matrix x;                                // rows × features, row-major
  std::vector<int> y;                      // 0 or 1 per row; empty when the rows have no labels
  std::string target_name = "label";       // the label column's name in CSV files

  std::size_t rows() const noexcept { return x.rows(); }
  std::size_t n_features() const noexcept { return x.cols(); }
  bool has_labels() const noexcept { return !y.empty(); }
  // Rows with label 1 / all rows (0 for no rows).
  double positive_fraction() const noexcept;
  // The given rows (indices into this table, in the order given), with names and target name.
  LabeledData subset(std::span<const std::size_t> rows) const;
  // The same rows with exactly the columns `names`, in that order (e.g. a model's registered
  // feature list, to score a CSV whose columns come in another order); columns in `ignored` (a
  // target column) are dropped. Throws Error(invalid_argument) naming every missing column and
  // every column neither in `names` nor in `ignored` (match_columns).
  LabeledData with_features(std::span<const std::string> names, std::span<const std::string> ignored = {}) const;
  // Throws Error(invalid_argument) unless names, x and y agree in size, y holds only 0/1 and every
  // value is finite.
  void check() const;

  friend bool operator==(const LabeledData&, const LabeledData&) = default;
};

// ---- synthetic data ------------------------------------------------------------------------------

// Like scikit-learn's make_classification (binary): each class is a few Gaussian clusters placed
// on the vertices of a hypercube in the informative subspace (with a random linear mix per
// cluster), plus redundant features (linear combinations of the informative ones) and pure noise
// features; then a fraction of labels is replaced by coin flips; then rows and columns are
// shuffled. The same spec gives the same table on every run and platform with IEEE doubles.
struct MODELREG_API ClassificationSpec {
  std::size_t rows = 10'000;
  std::size_t features = 20;
  std::size_t informative = 6;         // features that carry the signal
  std::size_t redundant = 2;           // linear combinations of informative features
  std::size_t clusters_per_class = 2;
  double positive_fraction = 0.05;     // class weights 0.95 / 0.05: 5% "fraud" before label noise
  double flip_y = 0.01;                // fraction of rows whose label is re-drawn at random
  double class_sep = 1.0;              // half the hypercube's side; larger is easier
  std::uint64_t seed = 42;
  std::string target_name = "is_fraud";
  // Feature names are `v1`…`vN` (anonymized, as in public card-fraud data sets).
};

// Throws Error(invalid_argument) for impossible specs (informative + redundant > features,
// 2^informative < 2 * clusters_per_class, fractions outside [0, 1], zero rows or features).
MODELREG_API LabeledData make_classification(const ClassificationSpec& spec = {});

// ---- CSV ------------------------------------------------------------------------------------------

struct MODELREG_API CsvReadOptions {
  // The label column (by header name). Empty: every column is a feature and y stays empty.
  std::string target{};
  // When false, a missing target column is not an error: the rows are read unlabeled (for
  // prediction on files that may or may not carry the label).
  bool target_required = true;
};

// Reads comma-separated values with a header row (names, optionally "double-quoted"); every other
// cell is a decimal number (surrounding spaces allowed); blank lines and a final newline or CRLF
// are fine. Label cells must be 0 or 1. Throws Error(not_found) when the file does not exist,
// Error(io_error) when it cannot be read, and Error(invalid_argument) naming the file, line and
// column for: an empty file or header, a duplicate or empty column name, a missing target
// column, a row with too few or too many cells, a non-numeric or non-finite cell, a label other
// than 0/1.
MODELREG_API LabeledData read_csv(const std::filesystem::path& file, const CsvReadOptions& options);
// The same from a stream; `source` names it in error messages.
MODELREG_API LabeledData read_csv(std::istream& in, std::string_view source, const CsvReadOptions& options);

// Writes the header (features, then target_name when data has labels) and one line per row.
// Numbers are written in the shortest form that reads back to the identical double, so another
// tool (scikit-learn) trains on exactly the same rows. Throws Error(invalid_argument) when data
// fails check(), Error(io_error) when the file cannot be written.
MODELREG_API void write_csv(const LabeledData& data, const std::filesystem::path& file);
MODELREG_API void write_csv(const LabeledData& data, std::ostream& out);

// ---- splitting -----------------------------------------------------------------------------------

struct MODELREG_API TrainTestSplit {
  LabeledData train;
  LabeledData test;
};

// Puts round(test_fraction × n_c) rows of each class c into `test`, chosen at random by `seed`, the
// rest into `train`; each part keeps the original row order. Throws Error(invalid_argument) when
// data has no labels or test_fraction is outside (0, 1).
MODELREG_API TrainTestSplit stratified_split(const LabeledData& data, double test_fraction, std::uint64_t seed);

}  // namespace modelreg
