#include "modelreg/model.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "modelreg/error.hpp"
#include "modelreg/matrix.hpp"
#include "modelreg/model_serialization.hpp"
#include "models/loading_root.hpp"

namespace modelreg {

MatrixView::MatrixView(std::span<const double> data, std::size_t cols)
    : data_(data.data()), rows_(cols == 0 ? 0 : data.size() / cols), cols_(cols) {
  if ((cols == 0 && !data.empty()) || (cols != 0 && data.size() % cols != 0)) {
    throw Error(Errc::invalid_argument,
                fmt::format("{} values do not make rows of {} columns", data.size(), cols));
  }
}

Matrix::Matrix(std::vector<double> data, std::size_t cols) {
  const MatrixView checked(data, cols);
  rows_ = checked.rows();
  cols_ = cols;
  data_ = std::move(data);
}

void Matrix::append_row(std::span<const double> values) {
  if (rows_ == 0 && cols_ == 0) cols_ = values.size();
  if (values.size() != cols_) {
    throw Error(Errc::invalid_argument,
                fmt::format("a row of {} values cannot be added to a matrix of {} columns", values.size(), cols_));
  }
  data_.insert(data_.end(), values.begin(), values.end());
  ++rows_;
}

namespace detail {

LoadingRoot*& current_loading_root() noexcept {
  thread_local LoadingRoot* current = nullptr;
  return current;
}

LoadingRoot::LoadingRoot() noexcept : outer(current_loading_root()) { current_loading_root() = this; }
LoadingRoot::~LoadingRoot() { current_loading_root() = outer; }

}  // namespace detail

Model::Model() noexcept {
  if (detail::LoadingRoot* load = detail::current_loading_root(); load != nullptr && load->root == nullptr) load->root = this;
}

Model::~Model() {
  if (detail::LoadingRoot* load = detail::current_loading_root(); load != nullptr && load->root == this) load->root = nullptr;
}

namespace {

[[noreturn]] void bad_labels(const std::string& what) { throw Error(Errc::invalid_argument, "class labels: " + what); }

}  // namespace

std::string_view to_string(Task task) noexcept {
  switch (task) {
    case Task::binary: return "binary";
    case Task::multiclass: return "multiclass";
    case Task::regression: return "regression";
  }
  return "unknown";
}

Task parse_task(std::string_view text) {
  for (Task t : {Task::binary, Task::multiclass, Task::regression}) {
    if (text == to_string(t)) return t;
  }
  throw Error(Errc::invalid_argument,
              fmt::format("unknown task '{}'; the tasks are binary, multiclass and regression", text));
}

ClassLabels ClassLabels::integers(std::vector<std::int64_t> labels) {
  std::vector<std::int64_t> sorted = labels;
  std::sort(sorted.begin(), sorted.end());
  if (auto it = std::adjacent_find(sorted.begin(), sorted.end()); it != sorted.end()) {
    bad_labels(fmt::format("{} appears twice; every class needs its own label", *it));
  }
  ClassLabels out;
  out.are_integers_ = true;
  out.integers_ = std::move(labels);
  return out;
}

ClassLabels ClassLabels::strings(std::vector<std::string> labels) {
  std::vector<std::string> sorted = labels;
  std::sort(sorted.begin(), sorted.end());
  for (const auto& l : sorted) {
    if (l.empty()) bad_labels("a label is empty; give every class a name");
    if (l.size() > 256) bad_labels(fmt::format("a label of {} bytes is longer than the limit of 256", l.size()));
  }
  if (auto it = std::adjacent_find(sorted.begin(), sorted.end()); it != sorted.end()) {
    bad_labels(fmt::format("'{}' appears twice; every class needs its own label", *it));
  }
  ClassLabels out;
  out.are_integers_ = false;
  out.strings_ = std::move(labels);
  return out;
}

std::int64_t ClassLabels::integer(std::size_t i) const {
  if (!are_integers_) bad_labels("the labels are strings, not integers");
  return integers_.at(i);
}

std::string ClassLabels::text(std::size_t i) const {
  return are_integers_ ? std::to_string(integers_.at(i)) : strings_.at(i);
}

std::vector<std::string> ClassLabels::texts() const {
  std::vector<std::string> out;
  out.reserve(size());
  for (std::size_t i = 0; i < size(); ++i) out.push_back(text(i));
  return out;
}

std::optional<std::size_t> ClassLabels::find(std::string_view t) const {
  for (std::size_t i = 0; i < size(); ++i) {
    if (text(i) == t) return i;
  }
  return std::nullopt;
}

void check_loaded_labels(const ClassLabels& labels) {
  try {
    if (labels.are_integers()) {
      if (!labels.string_values().empty()) bad_labels("integer labels with strings");
      (void)ClassLabels::integers(labels.integer_values());
    } else {
      if (!labels.integer_values().empty()) bad_labels("string labels with integers");
      (void)ClassLabels::strings(labels.string_values());
    }
  } catch (const Error& e) {
    throw Error(Errc::corruption, fmt::format("model archive: {}", e.what()));
  }
}

ClassLabels Model::classes() const {
  if (task() == Task::binary) return ClassLabels::zero_one();
  return {};
}

std::size_t Model::n_outputs() const { return task() == Task::multiclass ? classes().size() : 1; }

void Model::predict_outputs(MatrixView x, std::span<double> out) const {
  const std::size_t expected = n_features();
  if (expected == 0) {
    throw Error(Errc::invalid_argument, fmt::format("the {} model is not trained", type_name()));
  }
  if (x.cols() != expected) {
    throw Error(Errc::invalid_argument, fmt::format("the {} model expects {} features per row, the batch has {} columns",
                                                    type_name(), expected, x.cols()));
  }
  const std::size_t per_row = n_outputs();
  if (out.size() != x.rows() * per_row) {
    throw Error(Errc::invalid_argument, fmt::format("the output has room for {} values, the batch needs {} ({} rows × {})",
                                                    out.size(), x.rows() * per_row, x.rows(), per_row));
  }
  if (x.rows() == 0) return;
  const bool missing_ok = handles_missing();
  const double* data = x.data();
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double v = data[i];
    if (std::isfinite(v)) continue;
    const std::size_t row = i / expected, col = i % expected;
    if (std::isnan(v)) {
      if (missing_ok) continue;
      throw Error(Errc::invalid_argument,
                  fmt::format("row {} column {} is missing (NaN); the {} model cannot use missing values — fill them "
                              "in first, or use a model that routes them (an imported XGBoost model)",
                              row, col, type_name()));
    }
    throw Error(Errc::invalid_argument,
                fmt::format("row {} column {} is {}; features must be finite numbers", row, col, v));
  }
  compute(x, out);
}

std::vector<double> Model::predict_outputs(MatrixView x) const {
  std::vector<double> out(x.rows() * n_outputs());
  predict_outputs(x, out);
  return out;
}

void Model::predict_proba(MatrixView x, std::span<double> out) const {
  if (task() == Task::regression) {
    throw Error(Errc::invalid_argument,
                fmt::format("the {} model is a regression model: it predicts values (predict_values), not "
                            "probabilities",
                            type_name()));
  }
  predict_outputs(x, out);
}

std::vector<double> Model::predict_proba(MatrixView x) const {
  std::vector<double> out(x.rows() * n_outputs());
  predict_proba(x, out);
  return out;
}

std::vector<double> Model::predict_values(MatrixView x) const {
  if (task() != Task::regression) {
    throw Error(Errc::invalid_argument,
                fmt::format("the {} model is a {} classifier: it predicts classes (predict) and probabilities "
                            "(predict_proba), not values",
                            type_name(), to_string(task())));
  }
  return predict_outputs(x);
}

std::vector<int> labels_of(std::span<const double> probabilities) {
  std::vector<int> labels(probabilities.size());
  for (std::size_t i = 0; i < probabilities.size(); ++i) labels[i] = probabilities[i] > kDecisionThreshold ? 1 : 0;
  return labels;
}

std::vector<std::size_t> class_indexes_of(Task task, std::span<const double> outputs, std::size_t n_outputs) {
  if (task == Task::regression) {
    throw Error(Errc::invalid_argument, "a regression model's outputs are values, not classes");
  }
  if (n_outputs == 0 || outputs.size() % n_outputs != 0) {
    throw Error(Errc::invalid_argument, fmt::format("{} outputs do not make rows of {}", outputs.size(), n_outputs));
  }
  std::vector<std::size_t> out(outputs.size() / n_outputs);
  for (std::size_t r = 0; r < out.size(); ++r) {
    const double* row = outputs.data() + r * n_outputs;
    if (task == Task::binary) {
      out[r] = row[0] > kDecisionThreshold ? 1 : 0;
    } else {
      out[r] = static_cast<std::size_t>(std::max_element(row, row + n_outputs) - row);
    }
  }
  return out;
}

std::vector<std::string> output_columns(Task task, const ClassLabels& classes) {
  switch (task) {
    case Task::binary: return {"probability", "label"};
    case Task::regression: return {"prediction"};
    case Task::multiclass: break;
  }
  std::vector<std::string> out;
  for (std::size_t i = 0; i < classes.size(); ++i) out.push_back("probability_" + classes.text(i));
  out.push_back("label");
  return out;
}

std::vector<int> Model::predict(MatrixView x) const {
  const std::vector<double> p = predict_proba(x);
  const auto indexes = class_indexes_of(task(), p, n_outputs());
  return std::vector<int>(indexes.begin(), indexes.end());
}

}  // namespace modelreg
