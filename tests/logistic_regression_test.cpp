// LogisticRegression: quality, optimality, standardization, input checks, wide data.
#include <sys/resource.h>

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
  const auto m = *evaluate(model, split.test).binary;
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

namespace {

// The penalized gradient of the objective at the model's weights (features standardized as the
// model does); zero at the optimum. The same check as "stops at the optimum", for any data.
std::vector<double> penalized_gradient(const LogisticRegression& model, MatrixView x, std::span<const int> y,
                                       double c) {
  const std::size_t d = x.cols();
  std::vector<double> gradient(d + 1, 0.0), z(d);
  for (std::size_t r = 0; r < x.rows(); ++r) {
    double s = model.intercept();
    for (std::size_t j = 0; j < d; ++j) {
      z[j] = (x(r, j) - model.feature_means()[j]) / model.feature_scales()[j];
      s += model.coefficients()[j] * z[j];
    }
    const double residual = 1 / (1 + std::exp(-s)) - y[r];
    for (std::size_t j = 0; j < d; ++j) gradient[j] += c * residual * z[j];
    gradient[d] += c * residual;
  }
  for (std::size_t j = 0; j < d; ++j) gradient[j] += model.coefficients()[j];
  return gradient;
}

// Deterministic pseudo-random values in [-1, 1).
double noise(std::size_t i) {
  std::uint64_t v = (i + 1) * 0x9E3779B97F4A7C15ull;
  v ^= v >> 31;
  v *= 0xBF58476D1CE4E5B9ull;
  v ^= v >> 29;
  return static_cast<double>(v >> 11) / static_cast<double>(1ull << 52) - 1.0;
}

// Peak resident memory of this process so far, in MiB.
[[maybe_unused]] double peak_rss_mib() {  // unused where sanitizers skip the check
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

}  // namespace

TEST_CASE("wide data (20 rows x 10,000 columns) trains to the optimum in memory linear in the columns") {
  constexpr std::size_t kRows = 20, kCols = 10'000;
  std::vector<double> values(kRows * kCols);
  std::vector<int> y(kRows);
  for (std::size_t r = 0; r < kRows; ++r) {
    y[r] = r % 2 == 0 ? 1 : 0;
    for (std::size_t j = 0; j < kCols; ++j) {
      values[r * kCols + j] = noise(r * kCols + j) + (j < 10 && y[r] == 1 ? 0.5 : 0.0);
    }
  }
  const Matrix x(values, kCols);
  const auto model = LogisticRegression::train(x, y);
  CHECK(model.n_features() == kCols);
  CHECK(model.converged());
  CHECK(model.iterations() < 30);
  double largest = 0;
  for (double g : penalized_gradient(model, x, y, 1.0)) largest = std::max(largest, std::fabs(g));
  CHECK(largest < 1e-6);
  CHECK(model.predict(x) == y);  // more columns than rows: the training rows are separable
  // The exact Newton solve would hold a 10,001 x 10,001 Hessian (763 MiB); this stays near the
  // data (1.5 MiB) plus the standardized copy. Sanitizers keep freed memory, so skip it there.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  MESSAGE("peak RSS not checked under a sanitizer");
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
  MESSAGE("peak RSS not checked under a sanitizer");
#else
  CHECK(peak_rss_mib() < 300);
#endif
#else
  CHECK(peak_rss_mib() < 300);
#endif
}

TEST_CASE("above 256 features (Newton-CG) the optimum equals the exact Newton solver's") {
  // 200 informative features train by the exact solver; the same data with 100 constant columns
  // appended (their weights stay 0) trains by Newton-CG. The optimum is the same point.
  constexpr std::size_t kRows = 400, kInformative = 200, kWide = 300;
  std::vector<double> narrow(kRows * kInformative), wide(kRows * kWide);
  std::vector<int> y(kRows);
  for (std::size_t r = 0; r < kRows; ++r) {
    double s = 0;
    for (std::size_t j = 0; j < kInformative; ++j) {
      const double v = noise(r * kInformative + j) * (1.0 + static_cast<double>(j % 5));
      narrow[r * kInformative + j] = v;
      wide[r * kWide + j] = v;
      if (j < 20) s += v / (1.0 + static_cast<double>(j % 5));
    }
    for (std::size_t j = kInformative; j < kWide; ++j) wide[r * kWide + j] = 3.0;
    y[r] = s + noise(1'000'000 + r) > 0 ? 1 : 0;
  }
  for (const double c : {0.01, 1.0, 100.0}) {
    CAPTURE(c);
    const auto exact = LogisticRegression::train(Matrix(narrow, kInformative), y, {.C = c});
    const auto cg = LogisticRegression::train(Matrix(wide, kWide), y, {.C = c});
    CHECK(exact.converged());
    CHECK(cg.converged());
    CHECK(cg.intercept() == doctest::Approx(exact.intercept()).epsilon(1e-6));
    for (std::size_t j = 0; j < kInformative; ++j) {
      CHECK(cg.coefficients()[j] == doctest::Approx(exact.coefficients()[j]).epsilon(1e-6));
    }
    for (std::size_t j = kInformative; j < kWide; ++j) CHECK(cg.coefficients()[j] == 0.0);
    double largest = 0;
    for (double g : penalized_gradient(cg, Matrix(wide, kWide), y, c)) largest = std::max(largest, std::fabs(g));
    CHECK(largest < 1e-6 * std::max(1.0, c * kRows));
  }
}
