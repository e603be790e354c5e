// modelreg/metrics.hpp — binary classification metrics, as scikit-learn computes them.
//
// Labels are 0/1 (1 is the positive class). Where a ratio is 0/0 (precision with no predicted
// positives, recall with no actual positives, F1 when both are 0) the result is 0, as
// scikit-learn's zero_division=0. Every function throws Error(invalid_argument) when its inputs
// differ in length, are empty, or hold a label other than 0/1 (or a probability outside [0, 1] /
// NaN).
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <map>
#include <span>
#include <string>

#include "modelreg/export.hpp"

namespace modelreg {

class Model;
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
// Throws Error(invalid_argument) when data has no labels or its feature count differs from the
// model's.
MODELREG_API BinaryMetrics evaluate(const Model& model, const LabeledData& data);

}  // namespace modelreg
