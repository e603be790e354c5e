// modelreg/metrics.hpp — the metrics of the three tasks, as scikit-learn computes them, the metric
// set of a model on labelled rows (evaluate), and which way each known metric improves.
//
// Binary: labels are 0/1 (1 is the positive class). Where a ratio is 0/0 (precision with no predicted
// positives, recall with no actual positives, F1 when both are 0) the result is 0, as
// scikit-learn's zero_division=0. Every function throws Error(invalid_argument) when its inputs
// differ in length, are empty, or hold a label other than 0/1 (or a probability outside [0, 1] /
// NaN).
//
// Thread-safety: pure functions.
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
#include "modelreg/model.hpp"

namespace modelreg {

struct LabeledData;

struct MODELREG_API ConfusionMatrix {
  std::size_t true_negatives = 0;
  std::size_t false_positives = 0;
  std::size_t false_negatives = 0;
  std::size_t true_positives = 0;

  std::size_t total() const noexcept { return true_negatives + false_positives + false_negatives + true_positives; }
  friend bool operator==(const ConfusionMatrix&, const ConfusionMatrix&) = default;
};

MODELREG_API ConfusionMatrix confusion_matrix(std::span<const int> y_true, std::span<const int> y_pred);
MODELREG_API double accuracy(std::span<const int> y_true, std::span<const int> y_pred);
MODELREG_API double precision(std::span<const int> y_true, std::span<const int> y_pred);
MODELREG_API double recall(std::span<const int> y_true, std::span<const int> y_pred);
MODELREG_API double f1_score(std::span<const int> y_true, std::span<const int> y_pred);

// Area under the ROC curve from scores (any order-preserving score works, e.g. probabilities):
// the probability that a random positive scores above a random negative, ties counting one half
// (the Mann–Whitney statistic with average ranks). Throws Error(invalid_argument) when y_true has
// only one class (the AUC is undefined).
MODELREG_API double roc_auc(std::span<const int> y_true, std::span<const double> score);

// Mean negative log-likelihood, probabilities clipped to [eps, 1 − eps].
MODELREG_API double log_loss(std::span<const int> y_true, std::span<const double> proba, double eps = 1e-15);

// All of the above for a model on labeled rows (predict at threshold 0.5).
struct MODELREG_API BinaryMetrics {
  double accuracy = 0;
  double precision = 0;
  double recall = 0;
  double f1 = 0;
  double roc_auc = 0;   // NaN when the rows have only one class
  double log_loss = 0;
  ConfusionMatrix confusion;

  // {"accuracy", "precision", "recall", "f1", "roc_auc" (only when defined), "log_loss"}: the
  // shape NewVersion::metrics takes.
  std::map<std::string, double> to_map() const;
};

MODELREG_API BinaryMetrics evaluate(std::span<const int> y_true, std::span<const double> proba);

// ---- multiclass ------------------------------------------------------------------------------------
// Labels are class indexes below n_classes; probabilities are n_classes per row, row after row.
// Every function throws Error(invalid_argument) on a length mismatch, no rows, a label out of
// range or a probability outside [0, 1].

// The unweighted mean of the per-class F1 over the classes present in y_true or y_pred
// (scikit-learn's f1_score(average="macro") with zero_division=0).
MODELREG_API double macro_f1_score(std::span<const int> y_true, std::span<const int> y_pred, std::size_t n_classes);
// Mean of −log p(true class), each probability clipped to [eps, 1].
MODELREG_API double multiclass_log_loss(std::span<const int> y_true, std::span<const double> proba,
                                        std::size_t n_classes, double eps = 1e-15);

struct MODELREG_API MulticlassMetrics {
  double accuracy = 0;
  double f1_macro = 0;
  double log_loss = 0;
  std::vector<std::size_t> support;  // rows of each class in y_true, in class order

  // {"accuracy", "f1_macro", "log_loss", "count_<label>" per class}: the per-class counts are
  // named by the label when every label is a valid metric name fragment (A-Z a-z 0-9 _ . : / -,
  // at most 100 bytes), else by the class index in `classes` order ("count_0", "count_1", ...).
  std::map<std::string, double> to_map(const ClassLabels& classes) const;
};

// The class of each row is the most probable one (the first on ties).
MODELREG_API MulticlassMetrics evaluate_multiclass(std::span<const int> y_true, std::span<const double> proba,
                                                   std::size_t n_classes);

// ---- regression ------------------------------------------------------------------------------------

struct MODELREG_API RegressionMetrics {
  double rmse = 0;  // sqrt(mean squared error)
  double mae = 0;   // mean absolute error
  // 1 − Σ(y − ŷ)² / Σ(y − ȳ)²; when the targets are all equal: 1 for a perfect prediction, else 0
  // (scikit-learn's force_finite).
  double r2 = 0;

  // {"rmse", "mae", "r2"}.
  std::map<std::string, double> to_map() const;
};

// Throws Error(invalid_argument) on a length mismatch, no rows or a non-finite value.
MODELREG_API RegressionMetrics evaluate_regression(std::span<const double> y_true, std::span<const double> y_pred);

// ---- a model on labelled rows ----------------------------------------------------------------------

// The metric set of the model's task. `metrics` is what NewVersion::metrics takes: binary
// BinaryMetrics::to_map, multiclass MulticlassMetrics::to_map (with the model's classes),
// regression RegressionMetrics::to_map. The struct of the task is set, the others are empty.
struct MODELREG_API Evaluation {
  Task task = Task::binary;
  std::map<std::string, double> metrics;
  std::optional<BinaryMetrics> binary;
  std::optional<MulticlassMetrics> multiclass;
  std::optional<RegressionMetrics> regression;
};

// Scores `model` on `data`. Throws Error(invalid_argument) when data has no target, its task
// differs from the model's (binary rows for a multiclass model, ...), its classes differ from the
// model's, or its feature count differs from the model's.
MODELREG_API Evaluation evaluate(const Model& model, const LabeledData& data);

// ---- direction -----------------------------------------------------------------------------------

enum class MetricDirection : std::uint8_t { higher_is_better, lower_is_better };

// Which way a metric improves, by its name (any case):
//   lower is better:  rmse, mse, mae, log_loss, loss, and names ending in "_loss", "loss" or
//                     "error" (mean_squared_error, error);
//   higher is better: accuracy, precision, recall, f1, auc, roc_auc, r2, and names starting with
//                     "f1_" (f1_macro), "accuracy_", "precision_", "recall_", or ending in "_auc".
// Anything else (train_seconds, count_yes, a custom metric) is std::nullopt: a caller that
// compares such a metric must be told its direction explicitly.
MODELREG_API std::optional<MetricDirection> known_direction(std::string_view metric);

}  // namespace modelreg
