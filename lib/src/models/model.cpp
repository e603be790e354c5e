#include "modelreg/model.hpp"

#include <fmt/format.h>

#include "modelreg/error.hpp"
#include "modelreg/matrix.hpp"
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

void Model::predict_proba(MatrixView x, std::span<double> out) const {
  const std::size_t expected = n_features();
  if (expected == 0) {
    throw Error(Errc::invalid_argument, fmt::format("the {} model is not trained", type_name()));
  }
  if (x.cols() != expected) {
    throw Error(Errc::invalid_argument, fmt::format("the {} model expects {} features per row, the batch has {} columns",
                                                    type_name(), expected, x.cols()));
  }
  if (out.size() != x.rows()) {
    throw Error(Errc::invalid_argument,
                fmt::format("the output has room for {} probabilities, the batch has {} rows", out.size(), x.rows()));
  }
  if (x.rows() == 0) return;
  compute_proba(x, out);
}

std::vector<double> Model::predict_proba(MatrixView x) const {
  std::vector<double> out(x.rows());
  predict_proba(x, out);
  return out;
}

std::vector<int> labels_of(std::span<const double> probabilities) {
  std::vector<int> labels(probabilities.size());
  for (std::size_t i = 0; i < probabilities.size(); ++i) labels[i] = probabilities[i] > kDecisionThreshold ? 1 : 0;
  return labels;
}

std::vector<int> Model::predict(MatrixView x) const { return labels_of(predict_proba(x)); }

}  // namespace modelreg
