// LogisticRegression: quality, optimality, standardization, input checks.
#include <cmath>

#include <doctest/doctest.h>

#include "model_test_support.hpp"
#include "modelreg/logistic_regression.hpp"
#include "modelreg/metrics.hpp"

using namespace modelreg;
using test::code_of;
using test::contains;
using test::message_of;

TEST_CASE("logistic regression ranks held-out fraud well (AUC above 0.85)") {
  auto split = test::small_fraud();
  const auto model = LogisticRegression::train(split.train);
  CHECK(model.converged());
  CHECK(model.iterations() < 30);
  const auto m = evaluate(model, split.test);
  CHECK(m.roc_auc > 0.85);
  CHECK(m.accuracy > 0.85);
}

TEST_CASE("logistic regression stops at the optimum: the penalized gradient vanishes") {
  auto split = test::small_fraud();
  const LogisticRegression::Params params{.C = 0.3};
  const auto model = LogisticRegression::train(split.train, params);
  const auto& x = split.train.x;
  const std::size_t d = x.cols();
  std::vector<double> gradient(d + 1, 0.0);
  for (std::size_t r = 0; r < x.rows(); ++r) {
    double s = model.intercept();
    std::vector<double> z(d);
    for (std::size_t j = 0; j < d; ++j) {
      z[j] = (x(r, j) - model.feature_means()[j]) / model.feature_scales()[j];
      s += model.coefficients()[j] * z[j];
    }
    const double residual = 1 / (1 + std::exp(-s)) - split.train.y[r];
    for (std::size_t j = 0; j < d; ++j) gradient[j] += params.C * residual * z[j];
    gradient[d] += params.C * residual;
  }
  for (std::size_t j = 0; j < d; ++j) gradient[j] += model.coefficients()[j];
  for (double g : gradient) CHECK(std::fabs(g) < 1e-6);
}

TEST_CASE("features are standardized with the training mean and deviation") {
  // y depends on x0 only; x1 is constant. Scaling x0 by 1000 must not change the predictions.
  std::vector<double> small, large;
  std::vector<int> y;
  for (int i = 0; i < 200; ++i) {
    const double v = (i % 50) / 10.0 - 2.5 + (i % 7) * 0.01;
    small.insert(small.end(), {v, 4.0});
    large.insert(large.end(), {v * 1000, 4.0});
    y.push_back(v + ((i * 37) % 11 - 5) * 0.2 > 0 ? 1 : 0);
  }
  const auto a = LogisticRegression::train(Matrix(small, 2), y);
  const auto b = LogisticRegression::train(Matrix(large, 2), y);
  CHECK(a.feature_scales()[1] == 1.0);  // constant feature: unscaled
  CHECK(a.coefficients()[1] == doctest::Approx(0.0).epsilon(1e-12));
  CHECK(b.feature_means()[0] == doctest::Approx(a.feature_means()[0] * 1000));
  const auto pa = a.predict_proba(Matrix(small, 2));
  const auto pb = b.predict_proba(Matrix(large, 2));
  for (std::size_t i = 0; i < pa.size(); ++i) CHECK(pa[i] == doctest::Approx(pb[i]).epsilon(1e-9));
}

TEST_CASE("stronger regularization shrinks the weights") {
  auto split = test::small_fraud();
  const auto loose = LogisticRegression::train(split.train, {.C = 100});
  const auto tight = LogisticRegression::train(split.train, {.C = 0.001});
  double loose_norm = 0, tight_norm = 0;
  for (double w : loose.coefficients()) loose_norm += w * w;
  for (double w : tight.coefficients()) tight_norm += w * w;
  CHECK(tight_norm < loose_norm / 10);
}

TEST_CASE("logistic regression training is deterministic") {
  auto split = test::small_fraud();
  const auto a = LogisticRegression::train(split.train);
  const auto b = LogisticRegression::train(split.train);
  CHECK(a.coefficients() == b.coefficients());
  CHECK(a.predict_proba(split.test.x) == b.predict_proba(split.test.x));
}

TEST_CASE("logistic regression refuses unusable training input") {
  const Matrix x({0, 1, 2, 3}, 1);
  CHECK(contains(message_of([&] { (void)LogisticRegression::train(x, std::vector<int>{0, 0, 0, 0}); }), "both classes"));
  CHECK(contains(message_of([&] { (void)LogisticRegression::train(x, std::vector<int>{0, 1, 2, 0}); }), "not 0 or 1"));
  CHECK(contains(message_of([&] { (void)LogisticRegression::train(x, std::vector<int>{0, 1}); }), "4 training rows but 2 labels"));
  const Matrix with_nan({0, NAN, 2, 3}, 1);
  CHECK(contains(message_of([&] { (void)LogisticRegression::train(with_nan, std::vector<int>{0, 1, 0, 1}); }), "row 1 column 0"));
  CHECK(code_of([&] { (void)LogisticRegression::train(x, std::vector<int>{0, 1, 0, 1}, {.C = 0}); }) == Errc::invalid_argument);
  CHECK(code_of([&] { (void)LogisticRegression::train(x, std::vector<int>{0, 1, 0, 1}, {.max_iter = 0}); }) == Errc::invalid_argument);
}

TEST_CASE("perfectly separable data still converges to finite weights") {
  const Matrix x({-2, -1, 1, 2}, 1);
  const auto model = LogisticRegression::train(x, std::vector<int>{0, 0, 1, 1}, {.C = 1e4});
  CHECK(std::isfinite(model.coefficients()[0]));
  CHECK(model.predict(x) == std::vector<int>{0, 0, 1, 1});
}
