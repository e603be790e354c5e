#include "modelreg/metrics.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

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

// ---- multiclass ------------------------------------------------------------------------------------

namespace {

void check_class_labels(std::span<const int> labels, std::size_t n_classes, std::string_view what) {
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0 || static_cast<std::size_t>(labels[i]) >= n_classes) {
      throw Error(Errc::invalid_argument, fmt::format("{}[{}] is {}, not a class index below {}", what, i, labels[i], n_classes));
    }
  }
}

void check_class_proba(std::span<const int> y_true, std::span<const double> proba, std::size_t n_classes) {
  if (n_classes == 0) throw Error(Errc::invalid_argument, "metrics need at least one class");
  check_sizes(y_true.size(), proba.size() / n_classes);
  if (proba.size() % n_classes != 0) {
    throw Error(Errc::invalid_argument, fmt::format("{} probabilities do not make rows of {}", proba.size(), n_classes));
  }
  check_class_labels(y_true, n_classes, "y_true");
  check_probabilities(proba);
}

}  // namespace

double macro_f1_score(std::span<const int> y_true, std::span<const int> y_pred, std::size_t n_classes) {
  check_sizes(y_true.size(), y_pred.size());
  check_class_labels(y_true, n_classes, "y_true");
  check_class_labels(y_pred, n_classes, "y_pred");
  std::vector<std::size_t> tp(n_classes, 0), true_count(n_classes, 0), pred_count(n_classes, 0);
  for (std::size_t i = 0; i < y_true.size(); ++i) {
    const auto t = static_cast<std::size_t>(y_true[i]);
    const auto p = static_cast<std::size_t>(y_pred[i]);
    ++true_count[t];
    ++pred_count[p];
    if (t == p) ++tp[t];
  }
  double sum = 0;
  std::size_t present = 0;
  for (std::size_t c = 0; c < n_classes; ++c) {
    if (true_count[c] == 0 && pred_count[c] == 0) continue;  // as scikit-learn: only labels that occur
    ++present;
    sum += ratio(2 * tp[c], true_count[c] + pred_count[c]);
  }
  return present == 0 ? 0.0 : sum / static_cast<double>(present);
}

double multiclass_log_loss(std::span<const int> y_true, std::span<const double> proba, std::size_t n_classes, double eps) {
  check_class_proba(y_true, proba, n_classes);
  if (!(eps > 0 && eps < 0.5)) throw Error(Errc::invalid_argument, fmt::format("log_loss eps must be in (0, 0.5) (got {})", eps));
  double sum = 0;
  for (std::size_t i = 0; i < y_true.size(); ++i) {
    sum -= std::log(std::max(proba[i * n_classes + static_cast<std::size_t>(y_true[i])], eps));
  }
  return sum / static_cast<double>(y_true.size());
}

namespace {

// A metric name takes 1 to 128 of these (the registry's rule for every key).
bool is_name_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
         c == '-' || c == ':' || c == '/';
}

}  // namespace

std::map<std::string, double> MulticlassMetrics::to_map(const ClassLabels& classes) const {
  std::map<std::string, double> m{{"accuracy", accuracy}, {"f1_macro", f1_macro}, {"log_loss", log_loss}};
  bool by_label = classes.size() == support.size();
  for (std::size_t c = 0; by_label && c < classes.size(); ++c) {
    const std::string label = classes.text(c);
    by_label = !label.empty() && label.size() <= 100 && std::all_of(label.begin(), label.end(), is_name_char);
  }
  for (std::size_t c = 0; c < support.size(); ++c) {
    m["count_" + (by_label ? classes.text(c) : std::to_string(c))] = static_cast<double>(support[c]);
  }
  return m;
}

MulticlassMetrics evaluate_multiclass(std::span<const int> y_true, std::span<const double> proba, std::size_t n_classes) {
  check_class_proba(y_true, proba, n_classes);
  const std::vector<std::size_t> indexes = class_indexes_of(Task::multiclass, proba, n_classes);
  const std::vector<int> predicted(indexes.begin(), indexes.end());
  MulticlassMetrics m;
  m.support.assign(n_classes, 0);
  std::size_t correct = 0;
  for (std::size_t i = 0; i < y_true.size(); ++i) {
    ++m.support[static_cast<std::size_t>(y_true[i])];
    correct += y_true[i] == predicted[i] ? 1 : 0;
  }
  m.accuracy = ratio(correct, y_true.size());
  m.f1_macro = macro_f1_score(y_true, predicted, n_classes);
  m.log_loss = multiclass_log_loss(y_true, proba, n_classes);
  return m;
}

// ---- regression ------------------------------------------------------------------------------------

std::map<std::string, double> RegressionMetrics::to_map() const { return {{"rmse", rmse}, {"mae", mae}, {"r2", r2}}; }

RegressionMetrics evaluate_regression(std::span<const double> y_true, std::span<const double> y_pred) {
  check_sizes(y_true.size(), y_pred.size());
  const std::size_t n = y_true.size();
  double mean = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(y_true[i]) || !std::isfinite(y_pred[i])) {
      throw Error(Errc::invalid_argument, fmt::format("row {}: a target or prediction is not finite", i));
    }
    mean += y_true[i];
  }
  mean /= static_cast<double>(n);
  double squared = 0, absolute = 0, total = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double e = y_true[i] - y_pred[i];
    squared += e * e;
    absolute += std::fabs(e);
    total += (y_true[i] - mean) * (y_true[i] - mean);
  }
  RegressionMetrics m;
  m.rmse = std::sqrt(squared / static_cast<double>(n));
  m.mae = absolute / static_cast<double>(n);
  m.r2 = total > 0 ? 1 - squared / total : (squared == 0 ? 1.0 : 0.0);
  return m;
}

// ---- a model on labelled rows ----------------------------------------------------------------------

Evaluation evaluate(const Model& model, const LabeledData& data) {
  if (!data.has_labels()) throw Error(Errc::invalid_argument, "evaluate needs labeled rows");
  const Task task = model.task();
  if (data.task != task) {
    throw Error(Errc::invalid_argument, fmt::format("the {} model cannot be scored on {} rows", to_string(task), to_string(data.task)));
  }
  if (task != Task::regression && !(data.classes == model.classes())) {
    throw Error(Errc::invalid_argument, fmt::format("the rows' classes ({}) are not the model's ({})",
                                                    fmt::join(data.classes.texts(), ", "),
                                                    fmt::join(model.classes().texts(), ", ")));
  }
  Evaluation e;
  e.task = task;
  const std::vector<double> outputs = model.predict_outputs(data.x);
  switch (task) {
    case Task::binary:
      e.binary = evaluate(data.y, outputs);
      e.metrics = e.binary->to_map();
      break;
    case Task::multiclass:
      e.multiclass = evaluate_multiclass(data.y, outputs, model.n_outputs());
      e.metrics = e.multiclass->to_map(model.classes());
      break;
    case Task::regression:
      e.regression = evaluate_regression(data.values, outputs);
      e.metrics = e.regression->to_map();
      break;
  }
  return e;
}

// ---- direction -----------------------------------------------------------------------------------

std::optional<MetricDirection> known_direction(std::string_view metric) {
  std::string name(metric);
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const std::string_view n = name;
  for (std::string_view lower : {"rmse", "mse", "mae", "log_loss", "loss"}) {
    if (n == lower) return MetricDirection::lower_is_better;
  }
  if (n.ends_with("loss") || n.ends_with("error")) return MetricDirection::lower_is_better;
  for (std::string_view higher : {"accuracy", "precision", "recall", "f1", "auc", "roc_auc", "r2"}) {
    if (n == higher) return MetricDirection::higher_is_better;
  }
  for (std::string_view prefix : {"f1_", "accuracy_", "precision_", "recall_"}) {
    if (n.starts_with(prefix)) return MetricDirection::higher_is_better;
  }
  if (n.ends_with("_auc")) return MetricDirection::higher_is_better;
  return std::nullopt;
}

}  // namespace modelreg
