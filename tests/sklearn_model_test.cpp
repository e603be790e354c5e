// make_sklearn_model (modelreg/sklearn.hpp) without Python: scikit-learn's float32 tree decisions,
// the links, archive round trips of every family, the checks of a spec, and damaged payloads (each
// an Error with the right code, never a crash). Parity with scikit-learn itself is tested from
// Python (tests/python/test_sklearn_parity.py), where the estimators are.
#include <cmath>
#include <limits>
#include <random>

#include <doctest/doctest.h>

#include "model_test_support.hpp"
#include "models/archive_header.hpp"
#include "modelreg/model_archive.hpp"
#include "modelreg/sklearn.hpp"

using namespace modelreg;
using test::code_of;
using test::contains;
using test::message_of;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Node 0 tests feature `feature` at `threshold`; leaves 1 (left) and 2 (right) hold `left`/`right`
// (k values each).
SklearnTree stump(std::int64_t feature, double threshold, std::vector<double> left, std::vector<double> right) {
  SklearnTree t;
  t.left = {1, -1, -1};
  t.right = {2, -1, -1};
  t.feature = {feature, -2, -2};
  t.threshold = {threshold, -2, -2};
  t.values.assign(left.size(), 0.0);  // node 0's row is ignored
  t.values.insert(t.values.end(), left.begin(), left.end());
  t.values.insert(t.values.end(), right.begin(), right.end());
  return t;
}

SklearnModelSpec regression_tree(double threshold) {
  SklearnModelSpec s;
  s.estimator = SklearnEstimator::decision_tree_regressor;
  s.n_features = 2;
  s.trees = {stump(0, threshold, {1.0}, {2.0})};
  return s;
}

SklearnModelSpec multiclass_forest() {
  SklearnModelSpec s;
  s.estimator = SklearnEstimator::random_forest_classifier;
  s.n_features = 3;
  s.classes = ClassLabels::strings({"a", "b", "c"});
  s.trees = {stump(0, 0.5, {1, 0, 0}, {0, 0.5, 0.5}), stump(2, -1.0, {0, 0, 1}, {0.25, 0.75, 0})};
  s.scalers = {{SklearnScaler::Kind::standard, {1, 0, 0}, {2, 1, 4}}};
  s.params = {{"n_estimators", "2"}};
  return s;
}

SklearnModelSpec hist_binary() {
  SklearnModelSpec s;
  s.estimator = SklearnEstimator::hist_gradient_boosting_classifier;
  s.n_features = 2;
  s.classes = ClassLabels::integers({3, 7});
  s.link = SklearnLink::expit;
  s.init = {-0.25};
  SklearnTree a = stump(1, std::numeric_limits<double>::infinity(), {0.5}, {-0.5});
  a.missing_go_to_left = {0, 0, 0};
  SklearnTree b = stump(0, 0.0, {0.125}, {-1.0});
  b.missing_go_to_left = {1, 0, 0};
  s.trees = {a, b};
  return s;
}

SklearnModelSpec logistic_ovr() {
  SklearnModelSpec s;
  s.estimator = SklearnEstimator::logistic_regression;
  s.n_features = 2;
  s.classes = ClassLabels::integers({0, 1, 2});
  s.link = SklearnLink::ovr;
  s.coef = {1, -1, 0.5, 0.25, -2, 0};
  s.intercept = {0.1, 0.2, 0.3};
  s.scalers = {{SklearnScaler::Kind::min_max, {-1, 0}, {0.5, 2}, true, -1, 1}};
  return s;
}

double expit(double x) { return 1.0 / (1.0 + std::exp(-x)); }

}  // namespace

TEST_CASE("a tree compares the input cast to float32 with its threshold, as scikit-learn does") {
  // float32(0.1) is above 0.1: scikit-learn sends 0.1 right of a 0.1 threshold, and so does the
  // model, although the threshold is stored as the float32 just below 0.1. The double just below
  // 0.1 goes right too (it rounds up to float32(0.1)); the float32 just below goes left.
  const auto model = make_sklearn_model(regression_tree(0.1));
  const double double_below = std::nextafter(0.1, 0.0);
  const double float_below = std::nextafter(0.1f, 0.0f);
  const std::vector<double> rows = {0.1, 0, double_below, 0, float_below, 0, 0.0999999, 0};
  CHECK(model->predict_values(MatrixView(rows, 2)) == std::vector<double>{2.0, 2.0, 1.0, 1.0});
  CHECK(model->type_name() == "sklearn.DecisionTreeRegressor");
  CHECK_FALSE(model->handles_missing());
}

TEST_CASE("tree models refuse a value beyond float32, which scikit-learn refuses too") {
  const auto model = make_sklearn_model(regression_tree(0.5));
  const std::vector<double> rows = {1e39, 0};
  CHECK(code_of([&] { (void)model->predict_values(MatrixView(rows, 2)); }) == Errc::invalid_argument);
}

TEST_CASE("a forest scales its rows, averages its trees' class probabilities and keeps string labels") {
  const auto model = make_sklearn_model(multiclass_forest());
  CHECK(model->task() == Task::multiclass);
  CHECK(model->classes() == ClassLabels::strings({"a", "b", "c"}));
  // Row 1: (1-1)/2 = 0 <= 0.5 → left; 0/4 = 0 > -1 → right. Row 2: (5-1)/2 = 2 → right; -8/4 = -2 → left.
  const std::vector<double> rows = {1, 9, 0, 5, 9, -8};
  const auto p = model->predict_proba(MatrixView(rows, 3));
  CHECK(p == std::vector<double>{(1 + 0.25) / 2, (0 + 0.75) / 2, 0.0, 0.0, 0.5 / 2, (0.5 + 1) / 2});
  CHECK(model->hyperparameters().at("n_estimators") == "2");
}

TEST_CASE("histogram boosting routes missing values by each split's direction and adds to its baseline") {
  const auto model = make_sklearn_model(hist_binary());
  CHECK(model->handles_missing());
  CHECK(model->task() == Task::binary);
  // Tree a: x1 <= inf → left (0.5), NaN → right (-0.5). Tree b: x0 <= 0 → left (0.125), NaN → left.
  const std::vector<double> rows = {-1, 3, kNaN, kNaN, 1, kNaN};
  const auto p = model->predict_proba(MatrixView(rows, 2));
  CHECK(p[0] == expit(-0.25 + 0.5 + 0.125));
  CHECK(p[1] == expit(-0.25 - 0.5 + 0.125));
  CHECK(p[2] == expit(-0.25 - 0.5 - 1.0));
}

TEST_CASE("one-vs-rest logistic regression normalizes the expit of each score") {
  const auto model = make_sklearn_model(logistic_ovr());
  const std::vector<double> rows = {4, 1};  // min-max: 4*0.5-1 = 1 (clipped to 1), 1*2+0 = 2 → clipped to 1
  const auto p = model->predict_proba(MatrixView(rows, 2));
  const double s0 = expit(1 - 1 + 0.1), s1 = expit(0.5 + 0.25 + 0.2), s2 = expit(-2 + 0 + 0.3);
  const double sum = s0 + s1 + s2;
  CHECK(p == std::vector<double>{s0 / sum, s1 / sum, s2 / sum});
}

TEST_CASE("every family round-trips through its archive and predicts the same numbers") {
  const std::vector<double> rows = {1, 9, 0, 5, 9, -8, -3, 0.5, 0.25, 0.125, -1, 2};
  for (const auto& spec : {multiclass_forest(), hist_binary(), logistic_ovr(), regression_tree(0.3)}) {
    const auto model = make_sklearn_model(spec);
    const MatrixView x(rows.data(), rows.size() / model->n_features(), model->n_features());
    const std::string bytes = serialize_model(*model);
    const auto loaded = deserialize_model(bytes, model->type_name());
    CAPTURE(model->type_name());
    CHECK(loaded->type_name() == model->type_name());
    CHECK(loaded->classes() == model->classes());
    CHECK(loaded->hyperparameters() == model->hyperparameters());
    CHECK(loaded->predict_outputs(x) == model->predict_outputs(x));
    CHECK(serialize_model(*loaded) == bytes);
  }
}

TEST_CASE("a spec that does not make a model is refused, naming the problem") {
  auto refused = [](SklearnModelSpec s, const std::string& words) {
    CAPTURE(words);
    CHECK(code_of([&] { (void)make_sklearn_model(s); }) == Errc::validation_failed);
    CHECK(contains(message_of([&] { (void)make_sklearn_model(s); }), words));
  };
  auto s = regression_tree(0.5);
  s.trees[0].left[0] = 5;
  refused(s, "node 0 has children 5 and 2");
  s = regression_tree(0.5);
  s.trees[0].right[0] = 0;
  refused(s, "reached twice");
  s = regression_tree(0.5);
  s.trees[0].feature[0] = 2;
  refused(s, "tests feature 2, but the model has 2 features");
  s = regression_tree(kNaN);
  refused(s, "threshold nan");
  s = multiclass_forest();
  s.trees[1].values[4] = 1.5;
  refused(s, "not a probability");
  s = multiclass_forest();
  s.classes = ClassLabels::strings({"a", "b", "c", "d"});
  refused(s, "9 leaf values for 3 nodes of 4 values");
  s = hist_binary();
  s.init = {};
  refused(s, "0 initial scores for 1 outputs");
  s = hist_binary();
  s.trees[0].missing_go_to_left.clear();
  refused(s, "0 missing-value directions");
  s = logistic_ovr();
  s.link = SklearnLink::expit;
  refused(s, "link expit for a multiclass model");
  s = logistic_ovr();
  s.scalers[0].scale[1] = std::numeric_limits<double>::infinity();
  refused(s, "non-finite");
  s = regression_tree(0.5);
  s.estimator = static_cast<SklearnEstimator>(99);
  CHECK(code_of([&] { (void)make_sklearn_model(s); }) == Errc::validation_failed);
}

TEST_CASE("a damaged payload is an error with a code, never a crash") {
  std::mt19937 rng(12);
  const std::vector<double> rows = {1, 9, 0, 5, 9, -8};
  for (const auto& spec : {multiclass_forest(), hist_binary(), logistic_ovr()}) {
    const auto model = make_sklearn_model(spec);
    const std::string bytes = serialize_model(*model);
    const ArchiveInfo info = inspect_model_archive(bytes);
    const std::string payload = bytes.substr(info.header_size);
    for (int round = 0; round < 400; ++round) {
      std::string mutated = payload;
      const std::size_t i = rng() % mutated.size();
      switch (round % 3) {
        case 0: mutated[i] = static_cast<char>(rng()); break;
        case 1: mutated.resize(i); break;
        default: mutated.insert(i, 1 + rng() % 5, static_cast<char>(rng())); break;
      }
      CAPTURE(round);
      std::unique_ptr<Model> loaded;
      try {
        loaded = deserialize_model(detail::encode_archive(detail::native_header(info.type_name), mutated));
      } catch (const Error& e) {
        CHECK((e.code() == Errc::corruption || e.code() == Errc::incompatible || e.code() == Errc::validation_failed));
        continue;
      }
      // An undetectable change (a threshold, a leaf value, a scale) still gives a usable model,
      // which may refuse these rows (a scaled value beyond float32) but nothing worse.
      const MatrixView x(rows.data(), rows.size() / loaded->n_features(), loaded->n_features());
      try {
        const std::vector<double> out = loaded->predict_outputs(x);
        CHECK(out.size() == x.rows() * loaded->n_outputs());
      } catch (const Error& e) {
        CHECK(e.code() == Errc::invalid_argument);
      }
    }
  }
}

TEST_CASE("the estimator names, type names and the list of what is supported agree") {
  CHECK(sklearn_type_name(SklearnEstimator::random_forest_classifier) == "sklearn.RandomForestClassifier");
  CHECK(parse_sklearn_estimator("HistGradientBoostingRegressor") == SklearnEstimator::hist_gradient_boosting_regressor);
  CHECK_FALSE(parse_sklearn_estimator("SVC").has_value());
  CHECK(contains(supported_sklearn_estimators(), "ExtraTreesRegressor"));
  CHECK(contains(supported_sklearn_estimators(), "Pipeline of StandardScaler or MinMaxScaler"));
  CHECK(is_sklearn_classifier(SklearnEstimator::logistic_regression));
  CHECK_FALSE(is_sklearn_classifier(SklearnEstimator::ridge));
}
