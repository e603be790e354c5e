// modelreg/labeled_data.hpp — a table of training or test rows: named double features and a
// target per row for one of the three tasks (a class of a binary or multiclass problem, or a real
// value); the synthetic generators, CSV reading (with the task inferred from the target column)
// and writing, and the stratified train/test split.
//
// Missing values: a NaN feature (an empty CSV cell) means *missing*. A table may hold them; the
// built-in trainers refuse them (impute first), as Model refuses them at prediction for every
// type whose handles_missing() is false.
//
// (Not to be confused with modelreg::Dataset in metadata.hpp, which is a *reference* to a data set
// recorded with a version: a URI, its SHA-256 and its role.)
//
// Thread-safety: plain values and free functions without shared state.
#pragma once

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "modelreg/export.hpp"
#include "modelreg/matrix.hpp"
#include "modelreg/model.hpp"

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

// The most classes a classification target may have (CSV reading and every trainer refuse more).
inline constexpr std::size_t kMaxClasses = 1000;
// Inferring the task, a target of more distinct whole numbers than this is not taken for classes
// (nor for a quantity): read_csv asks for the task to be given.
inline constexpr std::size_t kMaxInferredIntegerClasses = 50;

struct MODELREG_API LabeledData {
  std::vector<std::string> feature_names;  // one per column of x
  Matrix x;                                // rows × features, row-major; NaN = missing
  // The task of the target. Classification (binary, multiclass): `y` holds each row's class as an
  // index into `classes` (0/1 for binary; the positive class is classes[1]). Regression: `values`
  // holds each row's target and `classes` is empty. Both are empty when the rows have no target.
  Task task = Task::binary;
  ClassLabels classes = ClassLabels::zero_one();
  std::vector<int> y;                      // classification: class index per row
  std::vector<double> values;              // regression: target per row
  std::string target_name = "label";       // the target column's name in CSV files

  std::size_t rows() const noexcept { return x.rows(); }
  std::size_t n_features() const noexcept { return x.cols(); }
  // Whether the rows carry a target (class indexes or values).
  bool has_labels() const noexcept { return !y.empty() || !values.empty(); }
  bool is_classification() const noexcept { return task != Task::regression; }
  // Classification: the number of classes (classes.size()); 0 for regression.
  std::size_t n_classes() const noexcept { return is_classification() ? classes.size() : 0; }
  // Binary: rows with class index 1 / all rows (0 for no rows).
  double positive_fraction() const noexcept;
  // Rows per class, in classes order (classification; empty for regression).
  std::vector<std::size_t> class_counts() const;
  // Whether any feature value is missing (NaN); the first such cell as (row, column).
  std::optional<std::pair<std::size_t, std::size_t>> first_missing() const noexcept;
  // The given rows (indices into this table, in the order given), with names, task, classes and
  // target name.
  LabeledData subset(std::span<const std::size_t> rows) const;
  // The same rows with exactly the columns `names`, in that order (e.g. a model's registered
  // feature list, to score a CSV whose columns come in another order); columns in `ignored` (a
  // target column) are dropped. Throws Error(invalid_argument) naming every missing column and
  // every column neither in `names` nor in `ignored` (match_columns).
  LabeledData with_features(std::span<const std::string> names, std::span<const std::string> ignored = {}) const;
  // Throws Error(invalid_argument) unless names, x and the target agree in size, the target
  // matches the task (class indexes below classes.size(), 2 classes for binary, 3 to kMaxClasses
  // for multiclass, finite values and no classes for regression; not both y and values) and no
  // feature is infinite (NaN, missing, is allowed).
  void check() const;

  // Equal names, task, classes, targets and features (a NaN equals a NaN: missing in both).
  friend MODELREG_API bool operator==(const LabeledData&, const LabeledData&);
};

// ---- synthetic data ------------------------------------------------------------------------------

// Like scikit-learn's make_classification: each class is a few Gaussian clusters placed
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
  std::size_t classes = 2;             // 2: binary (labels 0/1); 3 or more: multiclass (0..k-1)
  double positive_fraction = 0.05;     // binary class weights 0.95 / 0.05: 5% "fraud" before
                                       // label noise; multiclass classes are equally likely
  double flip_y = 0.01;                // fraction of rows whose label is re-drawn at random
  double class_sep = 1.0;              // half the hypercube's side; larger is easier
  std::uint64_t seed = 42;
  std::string target_name = "is_fraud";
  // Feature names are `v1`…`vN` (anonymized, as in public card-fraud data sets).
};

// Throws Error(invalid_argument) for impossible specs (informative + redundant > features,
// 2^informative < classes * clusters_per_class, fractions outside [0, 1], zero rows or features,
// classes outside [2, kMaxClasses]).
MODELREG_API LabeledData make_classification(const ClassificationSpec& spec = {});

// Like scikit-learn's make_regression: standard normal features; the target is a random linear
// function (weights uniform in [0, 100)) of the `informative` first features, plus Gaussian noise
// of standard deviation `noise`; then columns are shuffled. Task regression.
struct MODELREG_API RegressionSpec {
  std::size_t rows = 1'000;
  std::size_t features = 10;
  std::size_t informative = 5;
  double noise = 1.0;
  double bias = 0.0;
  std::uint64_t seed = 42;
  std::string target_name = "target";
};

// Throws Error(invalid_argument) for zero rows, features or informative features, informative >
// features, or negative or non-finite noise or bias.
MODELREG_API LabeledData make_regression(const RegressionSpec& spec = {});

// ---- CSV ------------------------------------------------------------------------------------------

struct MODELREG_API CsvReadOptions {
  // The target column (by header name). Empty: every column is a feature and there is no target.
  std::string target{};
  // When false, a missing target column is not an error: the rows are read without a target (for
  // prediction on files that may or may not carry it).
  bool target_required = true;
  // The task of the target; none: inferred from its cells (below).
  std::optional<Task> task{};
  // The classes the target's labels must come from, in this order (e.g. a model's classes, to read
  // its test rows, which may lack a class); empty: the labels found, sorted.
  ClassLabels classes{};
};

// Reads comma-separated values with a header row (names, optionally "double-quoted"); every other
// feature cell is a decimal number (surrounding spaces allowed) or empty (missing: NaN); blank
// lines and a final newline or CRLF are fine.
//
// The target column. Labels are integers or text; the classes are the distinct labels, sorted
// (integers by value, text by bytes). Without options.task the task is inferred: every cell a
// finite number with a fraction → regression; else 2 distinct labels → binary, 3 to kMaxClasses
// → multiclass, except more than kMaxInferredIntegerClasses distinct whole numbers, which is an
// error asking for the task (a count or a price is not a class). A single label is binary when it is 0 or 1 (rows of one class of a 0/1 target),
// else an error. With options.task the cells must suit it: regression needs numbers (integers
// too), binary exactly 2 labels (or only 0 or only 1), multiclass 3 to kMaxClasses. A cell is an
// integer label when it is a whole number below 2^53 in magnitude ("2.0" is the label 2), and
// text when any cell is not a finite number (then every label is text: "1" and "a").
//
// Throws Error(not_found) when the file does not exist, Error(io_error) when it cannot be read, and
// Error(invalid_argument) naming the file, line and column for: an empty file or header, a
// duplicate or empty column name, a missing target column, a row with too few or too many cells,
// a feature cell that is not a number or is infinite, an empty target cell, a target that does not
// suit the task (one class, too many classes, a fraction for classification, text for regression)
// or a label not among options.classes.
MODELREG_API LabeledData read_csv(const std::filesystem::path& file, const CsvReadOptions& options);
// The same from a stream; `source` names it in error messages.
MODELREG_API LabeledData read_csv(std::istream& in, std::string_view source, const CsvReadOptions& options);

// Writes the header (features, then target_name when data has a target) and one line per row:
// missing values as empty cells, class labels as their text, numbers in the shortest form that
// reads back to the identical double, so another tool (scikit-learn) trains on exactly the same
// rows. Throws Error(invalid_argument) when data
// fails check(), Error(io_error) when the file cannot be written.
MODELREG_API void write_csv(const LabeledData& data, const std::filesystem::path& file);
MODELREG_API void write_csv(const LabeledData& data, std::ostream& out);

// ---- splitting -----------------------------------------------------------------------------------

struct MODELREG_API TrainTestSplit {
  LabeledData train;
  LabeledData test;
};

// Puts round(test_fraction × n_c) rows of each class c into `test`, chosen at random by `seed`, the
// rest into `train`; each part keeps the original row order. Regression has no classes: then
// round(test_fraction × rows) rows at random. Throws Error(invalid_argument) when data has no
// target or test_fraction is outside (0, 1).
MODELREG_API TrainTestSplit stratified_split(const LabeledData& data, double test_fraction, std::uint64_t seed);

}  // namespace modelreg
