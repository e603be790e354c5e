#include "modelreg/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include <fmt/format.h>

#include "modelreg/error.hpp"
#include "modelreg/labeled_data.hpp"
#include "modelreg/model.hpp"

namespace modelreg {

namespace {

void check_labels(std::span<const int> labels, std::string_view what) {
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] != 0 && labels[i] != 1) {
      throw Error(Errc::invalid_argument, fmt::format("{}[{}] is {}, not 0 or 1", what, i, labels[i]));
    }
  }
}

void check_sizes(std::size_t a, std::size_t b) {
  if (a == 0) throw Error(Errc::invalid_argument, "metrics need at least one row");
  if (a != b) throw Error(Errc::invalid_argument, fmt::format("{} true labels but {} predictions", a, b));
}

void check_probabilities(std::span<const double> p) {
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (!(p[i] >= 0 && p[i] <= 1)) {
      throw Error(Errc::invalid_argument, fmt::format("probability [{}] is {}, not in [0, 1]", i, p[i]));
    }
  }
}

double ratio(std::size_t num, std::size_t den) {
  return den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den);
}

}  // namespace

ConfusionMatrix confusion_matrix(std::span<const int> y_true, std::span<const int> y_pred) {
  check_sizes(y_true.size(), y_pred.size());
  check_labels(y_true, "y_true");
  check_labels(y_pred, "y_pred");
  ConfusionMatrix m;
  for (std::size_t i = 0; i < y_true.size(); ++i) {
    if (y_true[i] == 1) {
      (y_pred[i] == 1 ? m.true_positives : m.false_negatives) += 1;
    } else {
      (y_pred[i] == 1 ? m.false_positives : m.true_negatives) += 1;
    }
  }
  return m;
}

double accuracy(std::span<const int> y_true, std::span<const int> y_pred) {
  const auto m = confusion_matrix(y_true, y_pred);
  return ratio(m.true_positives + m.true_negatives, m.total());
}

double precision(std::span<const int> y_true, std::span<const int> y_pred) {
  const auto m = confusion_matrix(y_true, y_pred);
  return ratio(m.true_positives, m.true_positives + m.false_positives);
}

double recall(std::span<const int> y_true, std::span<const int> y_pred) {
  const auto m = confusion_matrix(y_true, y_pred);
  return ratio(m.true_positives, m.true_positives + m.false_negatives);
}

double f1_score(std::span<const int> y_true, std::span<const int> y_pred) {
  const auto m = confusion_matrix(y_true, y_pred);
  // 2TP / (2TP + FP + FN): the harmonic mean of precision and recall, 0 when there is no TP.
  return ratio(2 * m.true_positives, 2 * m.true_positives + m.false_positives + m.false_negatives);
}

double roc_auc(std::span<const int> y_true, std::span<const double> score) {
  check_sizes(y_true.size(), score.size());
  check_labels(y_true, "y_true");
  for (std::size_t i = 0; i < score.size(); ++i) {
    if (std::isnan(score[i])) throw Error(Errc::invalid_argument, fmt::format("score [{}] is NaN", i));
  }
  const std::size_t n = y_true.size();
  const auto positives = static_cast<std::size_t>(std::count(y_true.begin(), y_true.end(), 1));
  const std::size_t negatives = n - positives;
  if (positives == 0 || negatives == 0) {
    throw Error(Errc::invalid_argument, "ROC AUC is undefined when only one class is present");
  }
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return score[a] < score[b]; });
  // Mann–Whitney: the sum of the positives' ranks, tied scores sharing their average rank.
  double positive_rank_sum = 0;
  for (std::size_t i = 0; i < n;) {
    std::size_t j = i;
    while (j < n && score[order[j]] == score[order[i]]) ++j;
    const double average_rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2;
    for (std::size_t t = i; t < j; ++t) {
      if (y_true[order[t]] == 1) positive_rank_sum += average_rank;
    }
    i = j;
  }
  const double p = static_cast<double>(positives);
  return (positive_rank_sum - p * (p + 1) / 2) / (p * static_cast<double>(negatives));
}

double log_loss(std::span<const int> y_true, std::span<const double> proba, double eps) {
  check_sizes(y_true.size(), proba.size());
  check_labels(y_true, "y_true");
  check_probabilities(proba);
  if (!(eps > 0 && eps < 0.5)) throw Error(Errc::invalid_argument, fmt::format("log_loss eps must be in (0, 0.5) (got {})", eps));
  double sum = 0;
  for (std::size_t i = 0; i < y_true.size(); ++i) {
    const double p = std::clamp(proba[i], eps, 1 - eps);
    sum -= y_true[i] == 1 ? std::log(p) : std::log(1 - p);
  }
  return sum / static_cast<double>(y_true.size());
}

std::map<std::string, double> BinaryMetrics::to_map() const {
  std::map<std::string, double> m{{"accuracy", accuracy}, {"precision", precision}, {"recall", recall},
                                  {"f1", f1},             {"log_loss", log_loss}};
  if (!std::isnan(roc_auc)) m["roc_auc"] = roc_auc;
  return m;
}

BinaryMetrics evaluate(std::span<const int> y_true, std::span<const double> proba) {
  check_sizes(y_true.size(), proba.size());
  check_probabilities(proba);
  const std::vector<int> predicted = labels_of(proba);
  BinaryMetrics m;
  m.confusion = confusion_matrix(y_true, predicted);
  const auto& c = m.confusion;
  m.accuracy = ratio(c.true_positives + c.true_negatives, c.total());
  m.precision = ratio(c.true_positives, c.true_positives + c.false_positives);
  m.recall = ratio(c.true_positives, c.true_positives + c.false_negatives);
  m.f1 = ratio(2 * c.true_positives, 2 * c.true_positives + c.false_positives + c.false_negatives);
  const bool both = c.true_positives + c.false_negatives > 0 && c.true_negatives + c.false_positives > 0;
  m.roc_auc = both ? roc_auc(y_true, proba) : std::numeric_limits<double>::quiet_NaN();
  m.log_loss = log_loss(y_true, proba);
  return m;
}

BinaryMetrics evaluate(const Model& model, const LabeledData& data) {
  if (!data.has_labels()) throw Error(Errc::invalid_argument, "evaluate needs labeled rows");
  const std::vector<double> proba = model.predict_proba(data.x);
  return evaluate(data.y, proba);
}

}  // namespace modelreg
