// RandomForest: quality, determinism whatever the thread count, parameters.
#include <doctest/doctest.h>

#include "model_test_support.hpp"
#include "modelreg/decision_tree.hpp"
#include "modelreg/metrics.hpp"
#include "modelreg/random_forest.hpp"

using namespace modelreg;
using test::code_of;

TEST_CASE("a random forest ranks held-out fraud well (AUC above 0.9) and beats a single tree") {
  auto split = test::small_fraud();
  const auto forest = RandomForest::train(split.train, {.n_estimators = 50, .seed = 1});
  const auto m = *evaluate(forest, split.test).binary;
  CHECK(m.roc_auc > 0.9);
  CHECK(m.f1 > 0.6);
  const auto tree = DecisionTree::train(split.train);
  CHECK(m.roc_auc > evaluate(tree, split.test).binary->roc_auc);
  CHECK(forest.trees().size() == 50);
  CHECK(forest.node_count() > 50);
}

TEST_CASE("a forest is bit-identical whether trained on 1 thread or 4") {
  auto split = test::small_fraud();
  const auto one = RandomForest::train(split.train, {.n_estimators = 24, .seed = 9, .threads = 1});
  const auto four = RandomForest::train(split.train, {.n_estimators = 24, .seed = 9, .threads = 4});
  CHECK(one.trees() == four.trees());
  CHECK(one.predict_proba(split.test.x) == four.predict_proba(split.test.x));
}

TEST_CASE("forest predictions do not depend on the number of prediction threads") {
  auto split = test::small_fraud(3, 8000);  // 2,000 test rows: enough to be split into blocks
  auto forest = RandomForest::train(split.train, {.n_estimators = 40, .max_depth = 8});
  forest.set_threads(1);
  const auto serial = forest.predict_proba(split.test.x);
  forest.set_threads(3);
  CHECK(forest.predict_proba(split.test.x) == serial);
}

TEST_CASE("the same seed gives the same forest and another seed another") {
  auto split = test::small_fraud();
  const auto a = RandomForest::train(split.train, {.n_estimators = 10, .seed = 4});
  const auto b = RandomForest::train(split.train, {.n_estimators = 10, .seed = 4});
  const auto c = RandomForest::train(split.train, {.n_estimators = 10, .seed = 5});
  CHECK(a.trees() == b.trees());
  CHECK_FALSE(a.trees() == c.trees());
}

TEST_CASE("max_depth, min_samples_leaf and bootstrap are honored") {
  auto split = test::small_fraud();
  const auto shallow = RandomForest::train(split.train, {.n_estimators = 8, .max_depth = 4});
  for (const auto& tree : shallow.trees()) CHECK(tree.depth() <= 4);

  // Without bootstrap and with all features, every tree sees the same rows and candidates: the
  // trees differ only by tie-breaking, and all reproduce the training labels.
  const auto all_rows = RandomForest::train(split.train, {.n_estimators = 3, .max_features = FeatureSubset::all_features(),
                                                         .bootstrap = false});
  CHECK(all_rows.predict(split.train.x) == split.train.y);
  CHECK(all_rows.hyperparameters().at("bootstrap") == "false");
  CHECK(all_rows.hyperparameters().at("max_features") == "all");

  const auto leafy = RandomForest::train(split.train, {.n_estimators = 4, .min_samples_leaf = 30});
  const auto bushy = RandomForest::train(split.train, {.n_estimators = 4});
  CHECK(leafy.node_count() * 2 < bushy.node_count());
}

TEST_CASE("random forest parameters are checked") {
  auto split = test::small_fraud();
  CHECK(code_of([&] { (void)RandomForest::train(split.train, {.n_estimators = 0}); }) == Errc::invalid_argument);
  CHECK(code_of([&] { (void)RandomForest::train(split.train, {.max_depth = -2}); }) == Errc::invalid_argument);
  CHECK(code_of([&] { (void)RandomForest::train(split.train, {.min_samples_split = 0}); }) == Errc::invalid_argument);
}
