// GradientBoostedTrees: quality, the boosting mechanics, determinism, input checks.
#include <cmath>

#include <doctest/doctest.h>

#include "model_test_support.hpp"
#include "modelreg/gradient_boosted_trees.hpp"
#include "modelreg/metrics.hpp"

using namespace modelreg;
using test::code_of;

TEST_CASE("gradient boosting ranks held-out fraud well (AUC above 0.9)") {
  auto split = test::small_fraud();
  const auto model = GradientBoostedTrees::train(split.train, {.n_estimators = 60});
  const auto m = *evaluate(model, split.test).binary;
  CHECK(m.roc_auc > 0.9);
  CHECK(m.log_loss < 0.35);
}

TEST_CASE("boosting starts from the training log-odds and adds shallow trees") {
  auto split = test::small_fraud();
  const auto model = GradientBoostedTrees::train(split.train, {.n_estimators = 20, .max_depth = 2});
  const double p = split.train.positive_fraction();
  CHECK(model.initial_log_odds() == doctest::Approx(std::log(p / (1 - p))));
  CHECK(model.trees().size() == 20);
  for (const auto& tree : model.trees()) CHECK(tree.depth() <= 2);
}

TEST_CASE("more boosting rounds fit the training rows better") {
  auto split = test::small_fraud();
  double previous = 1e9;
  for (std::size_t rounds : {1u, 10u, 50u}) {
    const auto model = GradientBoostedTrees::train(split.train, {.n_estimators = rounds});
    const double loss = log_loss(split.train.y, model.predict_proba(split.train.x));
    CHECK(loss < previous);
    previous = loss;
  }
}

TEST_CASE("stochastic boosting is deterministic for a seed") {
  auto split = test::small_fraud();
  const GradientBoostedTrees::Params params{.n_estimators = 15, .subsample = 0.5, .seed = 8};
  const auto a = GradientBoostedTrees::train(split.train, params);
  const auto b = GradientBoostedTrees::train(split.train, params);
  CHECK(a.trees() == b.trees());
  CHECK(a.predict_proba(split.test.x) == b.predict_proba(split.test.x));
  auto other = params;
  other.seed = 9;
  CHECK_FALSE(GradientBoostedTrees::train(split.train, other).trees() == a.trees());
}

TEST_CASE("gradient boosting refuses a single class and bad parameters") {
  const Matrix x({1, 2, 3}, 1);
  CHECK(code_of([&] { (void)GradientBoostedTrees::train(x, std::vector<int>{0, 0, 0}); }) == Errc::invalid_argument);
  const std::vector<int> y{0, 1, 0};
  CHECK(code_of([&] { (void)GradientBoostedTrees::train(x, y, {.learning_rate = 0}); }) == Errc::invalid_argument);
  CHECK(code_of([&] { (void)GradientBoostedTrees::train(x, y, {.subsample = 1.5}); }) == Errc::invalid_argument);
  CHECK(code_of([&] { (void)GradientBoostedTrees::train(x, y, {.subsample = 0}); }) == Errc::invalid_argument);
}
