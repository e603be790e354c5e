// modelreg/matrix.hpp — dense row-major batches of double features: Matrix owns, MatrixView borrows.
//
// A model's input is a MatrixView: `rows()` rows of `cols()` doubles each, row after row
// (row r, column c is data()[r * cols() + c]). Any contiguous buffer can be viewed without a copy.
//
// Thread-safety: plain values. A MatrixView does not own its data; the buffer must outlive it
// and must not change while a model reads it.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "modelreg/export.hpp"

namespace modelreg {

class MODELREG_API MatrixView {
 public:
  MatrixView() = default;
  // `rows * cols` doubles starting at `data` (which may be null when rows * cols == 0).
  MatrixView(const double* data, std::size_t rows, std::size_t cols) noexcept
      : data_(data), rows_(rows), cols_(cols) {}
  // Rows of `cols` values each. Throws Error(invalid_argument) when data.size() is not a multiple
  // of cols, or cols is 0 and data is not empty.
  MatrixView(std::span<const double> data, std::size_t cols);

  const double* data() const noexcept { return data_; }
  std::size_t rows() const noexcept { return rows_; }
  std::size_t cols() const noexcept { return cols_; }
  std::size_t size() const noexcept { return rows_ * cols_; }
  bool empty() const noexcept { return rows_ == 0; }

  std::span<const double> row(std::size_t r) const noexcept { return {data_ + r * cols_, cols_}; }
  double operator()(std::size_t r, std::size_t c) const noexcept { return data_[r * cols_ + c]; }
  // Rows [first, first + count) as a view of the same buffer.
  MatrixView slice(std::size_t first, std::size_t count) const noexcept {
    return {data_ + first * cols_, count, cols_};
  }

 private:
  const double* data_ = nullptr;
  std::size_t rows_ = 0;
  std::size_t cols_ = 0;
};

class MODELREG_API Matrix {
 public:
  Matrix() = default;
  // rows × cols zeros.
  Matrix(std::size_t rows, std::size_t cols) : data_(rows * cols, 0.0), rows_(rows), cols_(cols) {}
  // Takes row-major values; throws Error(invalid_argument) as MatrixView(span, cols) does.
  Matrix(std::vector<double> data, std::size_t cols);

  std::size_t rows() const noexcept { return rows_; }
  std::size_t cols() const noexcept { return cols_; }
  bool empty() const noexcept { return rows_ == 0; }
  double* data() noexcept { return data_.data(); }
  const double* data() const noexcept { return data_.data(); }
  const std::vector<double>& values() const noexcept { return data_; }

  std::span<double> row(std::size_t r) noexcept { return {data_.data() + r * cols_, cols_}; }
  std::span<const double> row(std::size_t r) const noexcept { return {data_.data() + r * cols_, cols_}; }
  double& operator()(std::size_t r, std::size_t c) noexcept { return data_[r * cols_ + c]; }
  double operator()(std::size_t r, std::size_t c) const noexcept { return data_[r * cols_ + c]; }

  // Appends one row; throws Error(invalid_argument) unless it has cols() values (the first row
  // appended to an empty 0-column matrix sets cols()).
  void append_row(std::span<const double> values);
  void reserve_rows(std::size_t rows) { data_.reserve(rows * cols_); }

  MatrixView view() const noexcept { return {data_.data(), rows_, cols_}; }
  operator MatrixView() const noexcept { return view(); }  // NOLINT: a Matrix is usable wherever a view is

  friend bool operator==(const Matrix&, const Matrix&) = default;

 private:
  std::vector<double> data_;
  std::size_t rows_ = 0;
  std::size_t cols_ = 0;
};

}  // namespace modelreg
