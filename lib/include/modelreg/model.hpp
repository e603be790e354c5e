// modelreg/model.hpp — the interface of a predictive model on dense double features, for one of
// three tasks: binary classification, multiclass classification (k >= 3 classes) and regression.
//
// Built-in types: LogisticRegression, DecisionTree, RandomForest, GradientBoostedTrees (one header
// each; train_model() in training.hpp builds any of them by name), LinearRegression, and models
// imported from XGBoost (xgboost.hpp). Save and load any Model, built-in or your own, through its
// base pointer with serialize_model / deserialize_model (model_archive.hpp). To write your own
// type, derive from Model and see model_serialization.hpp.
//
// Outputs (predict_outputs), fixed for every type so that every client can rely on them:
//   binary      1 value per row: the probability of the second class (classes()[1], "positive")
//   multiclass  k values per row: the probability of each class in classes() order, summing to 1
//   regression  1 value per row: the predicted value
//
// Missing values: a NaN input means "missing". A model whose handles_missing() is true routes it
// (XGBoost's default directions); any other model refuses a batch holding one with
// Error(invalid_argument) naming the row and column. Infinite inputs are always refused.
//
// Thread-safety: a trained model is immutable. Every predict function is const and may be called
// from any number of threads at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "modelreg/export.hpp"
#include "modelreg/matrix.hpp"

namespace modelreg {

enum class Task : std::uint8_t {
  binary = 1,      // two classes
  multiclass = 2,  // three or more classes
  regression = 3,  // one real value
};

// "binary", "multiclass", "regression".
MODELREG_API std::string_view to_string(Task task) noexcept;
// The task named `text` (as to_string writes it); Error(invalid_argument) naming the choices.
MODELREG_API Task parse_task(std::string_view text);

// The class labels of a classifier, in output order: all integers or all strings, distinct.
// Empty for a regression model.
class MODELREG_API ClassLabels {
 public:
  ClassLabels() = default;
  // Error(invalid_argument) on a repeated label, an empty string or one longer than 256 bytes.
  static ClassLabels integers(std::vector<std::int64_t> labels);
  static ClassLabels strings(std::vector<std::string> labels);
  // {0, 1}: the labels of a binary classifier trained on a 0/1 target.
  static ClassLabels zero_one() { return integers({0, 1}); }

  std::size_t size() const noexcept { return are_integers_ ? integers_.size() : strings_.size(); }
  bool empty() const noexcept { return size() == 0; }
  bool are_integers() const noexcept { return are_integers_; }
  // Label i as an integer (Error(invalid_argument) for string labels) or as text (integers in
  // decimal).
  std::int64_t integer(std::size_t i) const;
  std::string text(std::size_t i) const;
  std::vector<std::string> texts() const;
  const std::vector<std::int64_t>& integer_values() const noexcept { return integers_; }
  const std::vector<std::string>& string_values() const noexcept { return strings_; }
  // The index of the label written `text` (an integer label matches its decimal form).
  std::optional<std::size_t> find(std::string_view text) const;

  friend bool operator==(const ClassLabels&, const ClassLabels&) = default;

  template <class Archive>
  void serialize(Archive& archive, unsigned version);

 private:
  bool are_integers_ = true;
  std::vector<std::int64_t> integers_;
  std::vector<std::string> strings_;
};

// The decision threshold of the binary classifiers: the second class where its probability is
// above it, else the first (scikit-learn's rule). Every binary label the library gives comes from
// here.
inline constexpr double kDecisionThreshold = 0.5;

// The class index (0 or 1) of each binary probability at kDecisionThreshold.
MODELREG_API std::vector<int> labels_of(std::span<const double> probabilities);
// The class index of each row of `outputs` (n_outputs values a row, as predict_outputs gives for
// `task`): the threshold for binary, the first highest probability for multiclass.
// Error(invalid_argument) for regression.
MODELREG_API std::vector<std::size_t> class_indexes_of(Task task, std::span<const double> outputs,
                                                       std::size_t n_outputs);

// The names of a task's outputs as every client shows them (the columns of `modelreg predict`,
// the fields of its --json): binary {"probability", "label"}; multiclass {"probability_<class>"
// for each class in order, "label"}; regression {"prediction"}.
MODELREG_API std::vector<std::string> output_columns(Task task, const ClassLabels& classes);

class MODELREG_API Model {
 public:
  virtual ~Model();

  // The type's stable name, e.g. "random_forest". It is written into every archive and must equal
  // the name the type is exported under (BOOST_CLASS_EXPORT_GUID, see model_serialization.hpp).
  virtual std::string type_name() const = 0;
  // The number of columns every input row must have. 0 for an untrained (default-made) model.
  virtual std::size_t n_features() const = 0;
  // The settings the model was trained with, as text (`max_depth` → `none`, `C` → `1`); the
  // registry stores them with the version. Values parse back with train_model().
  virtual std::map<std::string, std::string> hyperparameters() const = 0;

  // What the model predicts. Binary unless the type says otherwise.
  virtual Task task() const { return Task::binary; }
  // The classes in output order: 2 for binary (default {0, 1}), k >= 3 for multiclass, none for
  // regression.
  virtual ClassLabels classes() const;
  // Whether a NaN input is a missing value the model routes (true) or refused (false, default).
  virtual bool handles_missing() const { return false; }
  // Values per row of predict_outputs: 1 for binary and regression, k for multiclass.
  std::size_t n_outputs() const;

  // The outputs for each row of `x` (see the top of this file): x.rows() × n_outputs() values,
  // row after row. Throws Error(invalid_argument) when x.cols() != n_features() (naming both
  // numbers), when the model is untrained, or on a refused input value (naming row and column).
  std::vector<double> predict_outputs(MatrixView x) const;
  // The same, into `out` (out.size() must equal x.rows() × n_outputs(), else invalid_argument).
  void predict_outputs(MatrixView x, std::span<double> out) const;

  // Classifiers: binary — the probability of the second class, one per row; multiclass — the k
  // class probabilities of each row, row after row. Error(invalid_argument) for regression.
  std::vector<double> predict_proba(MatrixView x) const;
  void predict_proba(MatrixView x, std::span<double> out) const;
  // Classifiers: the index into classes() of each row's predicted class (class_indexes_of).
  // For a binary model trained on 0/1 this is the 0/1 label. Error(invalid_argument) for
  // regression.
  std::vector<int> predict(MatrixView x) const;
  // Regression: the predicted values. Error(invalid_argument) for classifiers.
  std::vector<double> predict_values(MatrixView x) const;

  // For Boost.Serialization; defined in model_serialization.hpp (the base has no state).
  template <class Archive>
  void serialize(Archive& archive, unsigned version);

 protected:
  // (Out of line: while deserialize_model loads a model, the constructor tells it which object
  // is being loaded, so that a load failing half-way can destroy it.)
  Model() noexcept;
  Model(const Model&) = default;
  Model& operator=(const Model&) = default;
  Model(Model&&) = default;
  Model& operator=(Model&&) = default;

  // Implements predict_outputs: `x` has already been checked (x.cols() == n_features(), rows > 0,
  // values finite or — when handles_missing() — NaN), out.size() == x.rows() × n_outputs().
  // Must fill every element of `out`.
  virtual void compute(MatrixView x, std::span<double> out) const = 0;
};

}  // namespace modelreg
