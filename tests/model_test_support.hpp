// Helpers shared by the model, data and archive tests: small generated data sets and error
// capture.
#pragma once

#include <functional>
#include <string>

#include <doctest/doctest.h>

#include "modelreg/error.hpp"
#include "modelreg/labeled_data.hpp"

namespace test {

// A small fraud-like problem that every model type should learn well: 2,000 rows, 10 features,
// 20% positives, held-out 25% (stratified).
inline modelreg::TrainTestSplit small_fraud(std::uint64_t seed = 7, std::size_t rows = 2000) {
  modelreg::ClassificationSpec spec;
  spec.rows = rows;
  spec.features = 10;
  spec.informative = 4;
  spec.redundant = 2;
  spec.positive_fraction = 0.2;
  spec.class_sep = 1.5;
  spec.seed = seed;
  return modelreg::stratified_split(modelreg::make_classification(spec), 0.25, seed);
}

// Four classes, 1,200 rows, 10 features, held-out 25% (stratified): what multiclass models learn.
inline modelreg::TrainTestSplit small_multiclass(std::uint64_t seed = 7, std::size_t rows = 1200) {
  modelreg::ClassificationSpec spec;
  spec.rows = rows;
  spec.features = 10;
  spec.informative = 5;
  spec.redundant = 2;
  spec.classes = 4;
  spec.clusters_per_class = 1;
  spec.class_sep = 1.5;
  spec.seed = seed;
  return modelreg::stratified_split(modelreg::make_classification(spec), 0.25, seed);
}

// A linear target of 10 features plus noise, 1,000 rows, held-out 25%.
inline modelreg::TrainTestSplit small_regression(std::uint64_t seed = 7, std::size_t rows = 1000) {
  return modelreg::stratified_split(
      modelreg::make_regression({.rows = rows, .features = 10, .informative = 6, .noise = 5.0, .seed = seed}), 0.25, seed);
}

// The training rows a built-in type learns from in tests that cover every type: binary fraud rows,
// regression rows for the regression-only types.
inline const modelreg::TrainTestSplit& rows_for(const std::string& type) {
  static const auto fraud = small_fraud();
  static const auto regression = small_regression();
  return type == "linear_regression" ? regression : fraud;
}

// Rows the models never saw (another seed), for round-trip checks.
inline modelreg::LabeledData fresh_rows(std::size_t rows = 500) {
  return small_fraud(991, rows * 4).test;
}

inline modelreg::Errc code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const modelreg::Error& e) {
    return e.code();
  }
  FAIL("expected a modelreg::Error");
  return modelreg::Errc::io_error;
}

inline std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const modelreg::Error& e) {
    return e.what();
  }
  FAIL("expected a modelreg::Error");
  return {};
}

inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace test
