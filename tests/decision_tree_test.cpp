// DecisionTree and the flat Tree it is stored as: quality, limits, float thresholds, structure checks.
#include <cmath>
#include <limits>
#include <map>

#include <doctest/doctest.h>

#include "model_test_support.hpp"
#include "modelreg/decision_tree.hpp"
#include "modelreg/metrics.hpp"
#include "models/tree_builder.hpp"

using namespace modelreg;
using test::code_of;
using test::contains;
using test::message_of;

TEST_CASE("a decision tree ranks held-out fraud well (AUC above 0.8)") {
  auto split = test::small_fraud();
  const auto model = DecisionTree::train(split.train, {.max_depth = 6, .min_samples_leaf = 5});
  CHECK(evaluate(model, split.test).metrics.at("roc_auc") > 0.8);
}

TEST_CASE("a fully grown tree reproduces its training labels") {
  auto split = test::small_fraud();
  const auto model = DecisionTree::train(split.train);
  // Generated features are continuous, so no two training rows are identical: every leaf is pure.
  CHECK(model.predict(split.train.x) == split.train.y);
  CHECK(model.tree().leaf_count() == (model.tree().node_count() + 1) / 2);
}

TEST_CASE("max_depth and min_samples_leaf bound the tree") {
  auto split = test::small_fraud();
  const auto shallow = DecisionTree::train(split.train, {.max_depth = 3});
  CHECK(shallow.tree().depth() == 3);
  CHECK(shallow.tree().leaf_count() <= 8);

  const auto coarse = DecisionTree::train(split.train, {.min_samples_leaf = 40});
  // Count the training rows that land in each leaf.
  std::map<const TreeNode*, int> rows_per_leaf;
  const auto& nodes = coarse.tree().nodes();
  for (std::size_t r = 0; r < split.train.rows(); ++r) {
    std::int32_t i = 0;
    const auto row = split.train.x.row(r);
    while (!nodes[i].is_leaf()) i = row[nodes[i].feature] <= nodes[i].value ? nodes[i].left : nodes[i].right;
    ++rows_per_leaf[&nodes[i]];
  }
  CHECK(rows_per_leaf.size() == coarse.tree().leaf_count());
  for (const auto& [leaf, count] : rows_per_leaf) CHECK(count >= 40);
}

TEST_CASE("the same seed grows the same tree") {
  auto split = test::small_fraud();
  const DecisionTree::Params params{.max_features = FeatureSubset::fixed(3), .seed = 5};
  const auto a = DecisionTree::train(split.train, params);
  const auto b = DecisionTree::train(split.train, params);
  CHECK(a.tree() == b.tree());
  const auto c = DecisionTree::train(split.train, {.max_features = FeatureSubset::fixed(3), .seed = 6});
  CHECK_FALSE(a.tree() == c.tree());
}

TEST_CASE("single-class training data gives a single leaf") {
  const Matrix x({1, 2, 3}, 1);
  const auto model = DecisionTree::train(x, std::vector<int>{1, 1, 1});
  CHECK(model.tree().node_count() == 1);
  CHECK(model.predict_proba(x) == std::vector<double>{1, 1, 1});
}

TEST_CASE("thresholds are floats placed inside the gap between neighbouring training values") {
  using detail::float_threshold;
  for (auto [lo, hi] : {std::pair{0.1, 0.2}, {1.0, 1.0000001}, {-3.75, -3.5}, {1e-30, 2e-30}, {-1.0, 1.0}}) {
    CAPTURE(lo);
    CAPTURE(hi);
    const float t = float_threshold(lo, hi);
    REQUIRE_FALSE(std::isnan(t));
    CHECK(lo <= t);
    CHECK(t < hi);
  }
  // A wide gap gets a short threshold in its middle half: 0.3 .. 0.9 gives 0.5.
  CHECK(float_threshold(0.3, 0.9) == 0.5f);
  // No float lies in [1 + 2^-40, 1 + 2^-39): such a pair cannot be split.
  CHECK(std::isnan(float_threshold(1 + std::ldexp(1.0, -40), 1 + std::ldexp(1.0, -39))));
  CHECK(std::isnan(float_threshold(1e300, 2e300)));
}

TEST_CASE("a tree whose nodes are not in pre-order or test a missing feature is refused") {
  // root: x0 <= 0.5 ? leaf 0 : leaf 1
  std::vector<TreeNode> good{{0, 0.5f, 1, 2}, {-1, 0.0f, -1, -1}, {-1, 1.0f, -1, -1}};
  const Tree tree(good, 1);
  const double left[] = {0.2}, right[] = {0.7};
  CHECK(tree.predict(left) == 0.0);
  CHECK(tree.predict(right) == 1.0);

  auto cycle = good;
  cycle[0].right = 0;
  CHECK(code_of([&] { (void)Tree(cycle, 1); }) == Errc::corruption);
  auto out_of_range = good;
  out_of_range[0].right = 7;
  CHECK(code_of([&] { (void)Tree(out_of_range, 1); }) == Errc::corruption);
  auto missing_child = good;
  missing_child.pop_back();
  CHECK(code_of([&] { (void)Tree(missing_child, 1); }) == Errc::corruption);
  CHECK(contains(message_of([&] { (void)Tree(good, 0); }), "feature 0 of a model with 0 features"));
  auto nan_value = good;
  nan_value[1].value = std::numeric_limits<float>::quiet_NaN();
  CHECK(code_of([&] { (void)Tree(nan_value, 1); }) == Errc::corruption);
  CHECK(code_of([&] { (void)Tree({}, 1); }) == Errc::corruption);
}

TEST_CASE("decision tree parameters are checked") {
  const Matrix x({1, 2}, 1);
  const std::vector<int> y{0, 1};
  CHECK(code_of([&] { (void)DecisionTree::train(x, y, {.max_depth = 0}); }) == Errc::invalid_argument);
  CHECK(code_of([&] { (void)DecisionTree::train(x, y, {.min_samples_split = 1}); }) == Errc::invalid_argument);
  CHECK(code_of([&] { (void)DecisionTree::train(x, y, {.min_samples_leaf = 0}); }) == Errc::invalid_argument);
}
