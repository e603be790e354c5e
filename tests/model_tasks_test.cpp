// The built-in types on the three tasks: multiclass and regression training, the output shapes,
// labels kept through archives and the registry, missing values refused, and archives written
// before tasks existed still loading as binary models.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>

#include <doctest/doctest.h>

#include "model_test_support.hpp"
#include "modelreg/decision_tree.hpp"
#include "modelreg/gradient_boosted_trees.hpp"
#include "modelreg/linear_regression.hpp"
#include "modelreg/logistic_regression.hpp"
#include "modelreg/metrics.hpp"
#include "modelreg/model_archive.hpp"
#include "modelreg/random_forest.hpp"
#include "modelreg/registry.hpp"
#include "modelreg/training.hpp"
#include "models/task_io.hpp"
#include "test_support.hpp"

using namespace modelreg;
using test::code_of;
using test::contains;
using test::message_of;

namespace {

const std::vector<std::string> kClassifiers{"logistic_regression", "decision_tree", "random_forest",
                                            "gradient_boosted_trees"};
const std::vector<std::string> kRegressors{"linear_regression", "decision_tree", "random_forest",
                                           "gradient_boosted_trees"};

std::map<std::string, std::string> small_params(const std::string& type) {
  if (type == "random_forest") return {{"n_estimators", "25"}, {"seed", "1"}};
  if (type == "gradient_boosted_trees") return {{"n_estimators", "30"}, {"seed", "1"}};
  if (type == "decision_tree") return {{"max_depth", "8"}, {"seed", "1"}};
  return {};
}

// The multiclass rows with string labels instead of 0..3.
TrainTestSplit named_classes() {
  TrainTestSplit split = test::small_multiclass();
  for (LabeledData* part : {&split.train, &split.test}) {
    part->classes = ClassLabels::strings({"bird", "cat", "dog", "fish, tropical"});
  }
  return split;
}

void check_rows_sum_to_one(const std::vector<double>& p, std::size_t k) {
  REQUIRE(p.size() % k == 0);
  for (std::size_t r = 0; r < p.size() / k; ++r) {
    double sum = 0;
    for (std::size_t c = 0; c < k; ++c) {
      CHECK(p[r * k + c] >= 0);
      CHECK(p[r * k + c] <= 1);
      sum += p[r * k + c];
    }
    CHECK(sum == doctest::Approx(1.0).epsilon(1e-12));
  }
}

std::vector<double> read_numbers(const std::filesystem::path& file) {
  std::ifstream in(file);
  REQUIRE(in);
  std::vector<double> out;
  for (double v = 0; in >> v;) out.push_back(v);
  return out;
}

std::filesystem::path source_root() {
  const char* root = std::getenv("MODELREG_SOURCE_ROOT");
  REQUIRE(root != nullptr);
  return root;
}

}  // namespace

TEST_CASE("every classifier learns four named classes: k probabilities summing to 1, labels kept") {
  const TrainTestSplit split = named_classes();
  for (const auto& type : kClassifiers) {
    CAPTURE(type);
    const auto model = train_model(type, split.train, small_params(type));
    CHECK(model->task() == Task::multiclass);
    CHECK(model->classes() == split.train.classes);
    CHECK(model->n_outputs() == 4);
    const auto p = model->predict_proba(split.test.x);
    CHECK(p.size() == split.test.rows() * 4);
    check_rows_sum_to_one(p, 4);
    const Evaluation e = evaluate(*model, split.test);
    REQUIRE(e.multiclass.has_value());
    CHECK(e.metrics.at("accuracy") > 0.6);
    CHECK(e.metrics.at("f1_macro") > 0.6);
    CHECK(e.metrics.at("log_loss") > 0);
    // Labels are not valid metric names ("fish, tropical"): the counts are named by class index.
    CHECK(e.metrics.at("count_0") + e.metrics.at("count_1") + e.metrics.at("count_2") + e.metrics.at("count_3") ==
          static_cast<double>(split.test.rows()));
    const auto predicted = model->predict(split.test.x);
    CHECK(*std::max_element(predicted.begin(), predicted.end()) <= 3);
    CHECK_THROWS_AS((void)model->predict_values(split.test.x), Error);

    // Through an archive: the same classes, bit-identical probabilities, the same bytes again.
    const std::string bytes = serialize_model(*model);
    const auto loaded = deserialize_model(bytes, type);
    CHECK(loaded->task() == Task::multiclass);
    CHECK(loaded->classes() == split.train.classes);
    CHECK(loaded->predict_proba(split.test.x) == p);
    CHECK(serialize_model(*loaded) == bytes);
  }
}

TEST_CASE("every regressor learns a linear target: R² high, values out, round trip exact") {
  const TrainTestSplit split = test::small_regression();
  for (const auto& type : kRegressors) {
    CAPTURE(type);
    const auto model = train_model(type, split.train, small_params(type));
    CHECK(model->task() == Task::regression);
    CHECK(model->classes().empty());
    CHECK(model->n_outputs() == 1);
    const auto values = model->predict_values(split.test.x);
    CHECK(values.size() == split.test.rows());
    const Evaluation e = evaluate(*model, split.test);
    REQUIRE(e.regression.has_value());
    CHECK(e.metrics.size() == 3);
    CHECK(e.metrics.at("r2") > (type == "linear_regression" ? 0.99 : 0.5));
    CHECK(e.metrics.at("rmse") >= e.metrics.at("mae"));
    CHECK_THROWS_AS((void)model->predict_proba(split.test.x), Error);
    CHECK_THROWS_AS((void)model->predict(split.test.x), Error);
    const std::string bytes = serialize_model(*model);
    const auto loaded = deserialize_model(bytes, type);
    CHECK(loaded->task() == Task::regression);
    CHECK(loaded->predict_values(split.test.x) == values);
    CHECK(serialize_model(*loaded) == bytes);
  }
}

TEST_CASE("a binary target with its own labels keeps them, and trains the same model as 0/1") {
  TrainTestSplit split = test::small_fraud();
  const auto zero_one = train_model("random_forest", split.train, {{"n_estimators", "10"}});
  for (LabeledData* part : {&split.train, &split.test}) part->classes = ClassLabels::strings({"legit", "fraud"});
  const auto named = train_model("random_forest", split.train, {{"n_estimators", "10"}});
  CHECK(named->task() == Task::binary);
  CHECK(named->classes() == ClassLabels::strings({"legit", "fraud"}));
  CHECK(named->predict_proba(split.test.x) == zero_one->predict_proba(split.test.x));
  const auto loaded = deserialize_model(serialize_model(*named));
  CHECK(loaded->classes() == named->classes());
  CHECK(evaluate(*loaded, split.test).metrics.count("roc_auc") == 1);
}

TEST_CASE("a type refuses a task it cannot learn, naming what it can") {
  CHECK(contains(message_of([] { (void)train_model("logistic_regression", test::small_regression().train); }),
                 "logistic_regression cannot be trained for regression"));
  CHECK(contains(message_of([] { (void)train_model("linear_regression", test::small_fraud().train); }),
                 "linear_regression cannot be trained for binary: it does regression"));
  CHECK(contains(message_of([] { (void)train_model("linear_regression", test::small_multiclass().train); }),
                 "cannot be trained for multiclass"));
}

TEST_CASE("missing values are refused by every trainer, naming the row and column and saying to impute") {
  const TrainTestSplit classes = test::small_multiclass(7, 200);
  const TrainTestSplit values = test::small_regression(7, 200);
  for (const auto& type : built_in_model_types()) {
    CAPTURE(type);
    LabeledData rows = type == "linear_regression" ? values.train : classes.train;
    rows.x(17, 3) = std::nan("");
    const std::string message = message_of([&] { (void)train_model(type, rows, small_params(type)); });
    CHECK(contains(message, "training row 17 column 3 is missing (NaN)"));
    CHECK(contains(message, "impute"));
  }
  // And at prediction, by the Model base class.
  const auto model = train_model("decision_tree", classes.train, {{"max_depth", "3"}});
  Matrix x = classes.test.x;
  x(2, 5) = std::nan("");
  CHECK(contains(message_of([&] { (void)model->predict_proba(x); }), "row 2 column 5 is missing (NaN)"));
}

TEST_CASE("a multiclass leaf table that is not probabilities, or does not fit the tree, is corruption") {
  const TrainTestSplit split = test::small_multiclass(7, 200);
  const auto model = DecisionTree::train(split.train, {.max_depth = 2});
  const Tree& tree = model.tree();
  const std::vector<float>& table = model.leaf_probabilities();
  CHECK(table.size() == tree.leaf_count() * 4);
  CHECK_NOTHROW(detail::check_class_leaves(tree, table, 4, "decision_tree"));
  auto verdict = [&](std::vector<float> bad) {
    return message_of([&] { detail::check_class_leaves(tree, bad, 4, "decision_tree"); });
  };
  std::vector<float> over = table;
  over[1] = 1.5f;
  CHECK(contains(verdict(over), "holds 1.5 for class 1, not a probability"));
  std::vector<float> short_sum = table;
  short_sum[0] = short_sum[0] > 0.5f ? short_sum[0] - 0.25f : short_sum[0] + 0.25f;
  CHECK(contains(verdict(short_sum), "sum to"));
  CHECK(contains(verdict(std::vector<float>(table.begin(), table.end() - 4)), "class probabilities for"));
  std::vector<float> nan = table;
  nan[2] = std::nanf("");
  CHECK(code_of([&] { detail::check_class_leaves(tree, nan, 4, "decision_tree"); }) == Errc::corruption);
  // Classes that do not suit the task.
  CHECK(code_of([] { detail::check_task_classes("m", Task::multiclass, ClassLabels::zero_one()); }) == Errc::corruption);
  CHECK(code_of([] { detail::check_task_classes("m", Task::regression, ClassLabels::zero_one()); }) == Errc::corruption);
  CHECK(code_of([] { detail::check_task_classes("m", Task::binary, ClassLabels::integers({1, 2, 3})); }) == Errc::corruption);
}

TEST_CASE("multinomial logistic regression matches its own optimum: the gradient vanishes") {
  const TrainTestSplit split = test::small_multiclass(3, 600);
  const auto model = LogisticRegression::train(split.train, {.C = 0.5});
  CHECK(model.converged());
  CHECK(model.iterations() < 40);
  CHECK(model.coefficients().size() == 4 * 10);
  CHECK(model.intercepts().size() == 4);
  // At the optimum Σ_r (p_rc − y_rc) = 0 for each class (the unpenalized intercepts).
  const auto p = model.predict_proba(split.train.x);
  for (std::size_t c = 0; c < 4; ++c) {
    double g = 0;
    for (std::size_t r = 0; r < split.train.rows(); ++r) g += p[r * 4 + c] - (split.train.y[r] == static_cast<int>(c) ? 1 : 0);
    CHECK(std::fabs(g) < 1e-6);
  }
}

TEST_CASE("ridge regression solves the normal equations, also for wide data") {
  // y = 3·a − 2·b + 1 exactly: a tiny alpha recovers it.
  Matrix x(6, 2);
  std::vector<double> y;
  for (std::size_t r = 0; r < 6; ++r) {
    x(r, 0) = static_cast<double>(r);
    x(r, 1) = static_cast<double>(r * r % 5);
    y.push_back(3 * x(r, 0) - 2 * x(r, 1) + 1);
  }
  const auto exact = LinearRegression::train(x, y, {.alpha = 1e-10});
  CHECK(exact.coefficients()[0] == doctest::Approx(3).epsilon(1e-8));
  CHECK(exact.coefficients()[1] == doctest::Approx(-2).epsilon(1e-8));
  CHECK(exact.intercept() == doctest::Approx(1).epsilon(1e-8));
  // 20 rows × 500 columns: the dual (rows × rows) system; the result satisfies the ridge optimum
  // Xcᵀ(y − Xc·w) = alpha·w.
  const auto wide = make_regression({.rows = 20, .features = 500, .informative = 10, .seed = 4});
  const auto model = LinearRegression::train(wide, {.alpha = 2.0});
  const auto& w = model.coefficients();
  const auto fitted = model.predict_values(wide.x);
  for (std::size_t j = 0; j < 500; j += 50) {
    double mean = 0, g = 0;
    for (std::size_t r = 0; r < 20; ++r) mean += wide.x(r, j) / 20;
    for (std::size_t r = 0; r < 20; ++r) g += (wide.x(r, j) - mean) * (wide.values[r] - fitted[r]);
    CHECK(g == doctest::Approx(2.0 * w[j]).epsilon(1e-6).scale(1e-6));
  }
}

TEST_CASE("archives written before tasks existed load as binary models with classes 0/1 and predict as before") {
  const auto dir = source_root() / "tests" / "data" / "archives_v1";
  const std::vector<double> numbers = read_numbers(dir / "v1_rows.txt");
  const Matrix rows(numbers, 4);
  for (const std::string type : {"logistic_regression", "decision_tree", "random_forest", "gradient_boosted_trees"}) {
    CAPTURE(type);
    std::ifstream in(dir / ("v1_" + type + ".mrm"), std::ios::binary);
    const std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    REQUIRE(!bytes.empty());
    const auto model = deserialize_model(bytes, type);
    CHECK(model->task() == Task::binary);
    CHECK(model->classes() == ClassLabels::zero_one());
    const std::vector<double> expected = read_numbers(dir / ("v1_" + type + ".expected.txt"));
    const std::vector<double> got = model->predict_proba(rows);
    REQUIRE(got.size() == expected.size());
    for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == expected[i]);  // printed round-trip exact
  }
}

TEST_CASE("the registry keeps string labels and the regression task, and validates the probe on load") {
  test::TempDir dir;
  Registry reg(dir / "r.db");
  const TrainTestSplit named = named_classes();
  const TrainTestSplit values = test::small_regression();
  struct Case {
    std::string type;
    const TrainTestSplit* rows;
  };
  for (const Case& c : {Case{"random_forest", &named}, Case{"logistic_regression", &named},
                        Case{"gradient_boosted_trees", &values}, Case{"linear_regression", &values}}) {
    CAPTURE(c.type);
    const auto model = train_model(c.type, c.rows->train, small_params(c.type));
    NewVersion spec;
    spec.model = "m_" + c.type;
    for (const auto& f : c.rows->train.feature_names) spec.features.push_back({f, "float64"});
    const ModelVersion v = reg.save_model(*model, spec, c.rows->test.x);
    const LoadedModel loaded = reg.load_model(ModelRef::latest(spec.model));
    CHECK(loaded.model->task() == model->task());
    CHECK(loaded.model->classes() == model->classes());
    CHECK(loaded.model->predict_outputs(c.rows->test.x) == model->predict_outputs(c.rows->test.x));
    REQUIRE(loaded.version.task.has_value());
    CHECK(loaded.version.task->task == model->task());
    CHECK(loaded.version.task->classes == model->classes());
    (void)v;
  }
}

TEST_CASE("metric directions: losses and errors lower, scores higher, anything else unknown") {
  for (const char* lower : {"rmse", "mae", "mse", "log_loss", "loss", "val_loss", "mean_squared_error", "error", "RMSE"}) {
    CAPTURE(lower);
    CHECK(known_direction(lower) == MetricDirection::lower_is_better);
  }
  for (const char* higher : {"accuracy", "f1", "f1_macro", "auc", "roc_auc", "pr_auc", "r2", "precision", "recall", "F1"}) {
    CAPTURE(higher);
    CHECK(known_direction(higher) == MetricDirection::higher_is_better);
  }
  for (const char* unknown : {"train_seconds", "count_yes", "latency_ms", "", "test_rows"}) {
    CAPTURE(unknown);
    CHECK_FALSE(known_direction(unknown).has_value());
  }
}
