// The Model interface: input checks, the 0.5 threshold, and training any built-in type by name.
#include <cmath>
#include <set>

#include <doctest/doctest.h>

#include "model_test_support.hpp"
#include "modelreg/decision_tree.hpp"
#include "modelreg/gradient_boosted_trees.hpp"
#include "modelreg/linear_regression.hpp"
#include "modelreg/logistic_regression.hpp"
#include "modelreg/model.hpp"
#include "modelreg/random_forest.hpp"
#include "modelreg/training.hpp"

using namespace modelreg;
using test::code_of;
using test::contains;
using test::message_of;

namespace {

// Returns the first feature of each row as the probability.
class FirstColumn final : public Model {
 public:
  std::string type_name() const override { return "first_column"; }
  std::size_t n_features() const override { return 2; }
  std::map<std::string, std::string> hyperparameters() const override { return {}; }

 protected:
  void compute(MatrixView x, std::span<double> out) const override {
    for (std::size_t r = 0; r < x.rows(); ++r) out[r] = x(r, 0);
  }
};

}  // namespace

TEST_CASE("predict labels a row 1 only when its probability is above 0.5") {
  const Matrix x({0.2, 9, 0.5, 9, 0.500001, 9, 1.0, 9}, 2);
  FirstColumn model;
  CHECK(model.predict_proba(x) == std::vector<double>{0.2, 0.5, 0.500001, 1.0});
  CHECK(model.predict(x) == std::vector<int>{0, 0, 1, 1});
}

TEST_CASE("a batch with the wrong number of columns is refused, naming both numbers") {
  const Matrix x({1, 2, 3, 4, 5, 6}, 3);
  FirstColumn model;
  CHECK(code_of([&] { (void)model.predict_proba(x); }) == Errc::invalid_argument);
  const std::string message = message_of([&] { (void)model.predict(x); });
  CHECK(contains(message, "expects 2 features"));
  CHECK(contains(message, "3 columns"));

  auto split = test::small_fraud();
  const auto forest = RandomForest::train(split.train, {.n_estimators = 3});
  const Matrix narrow({1, 2, 3}, 3);
  CHECK(contains(message_of([&] { (void)forest.predict(narrow); }), "expects 10 features"));
}

TEST_CASE("an empty batch gives no predictions and an output of the wrong size is refused") {
  FirstColumn model;
  CHECK(model.predict_proba(MatrixView(nullptr, 0, 2)).empty());
  const Matrix x({0.1, 0, 0.9, 0}, 2);
  std::vector<double> out(3);
  CHECK(code_of([&] { model.predict_proba(x, out); }) == Errc::invalid_argument);
}

TEST_CASE("an untrained model refuses to predict") {
  const RandomForest untrained;
  CHECK(untrained.n_features() == 0);
  CHECK(contains(message_of([&] { (void)untrained.predict_proba(Matrix(1, 0)); }), "not trained"));
}

TEST_CASE("a matrix view must be made of whole rows") {
  const std::vector<double> seven(7, 1.0);
  CHECK(code_of([&] { (void)MatrixView(seven, 2); }) == Errc::invalid_argument);
  CHECK(code_of([&] { (void)MatrixView(seven, 0); }) == Errc::invalid_argument);
  const MatrixView view(seven, 7);
  CHECK(view.rows() == 1);
  Matrix m;
  m.append_row(std::vector<double>{1, 2});
  m.append_row(std::vector<double>{3, 4});
  CHECK(m.rows() == 2);
  CHECK(m(1, 0) == 3);
  CHECK(code_of([&] { m.append_row(std::vector<double>{1}); }) == Errc::invalid_argument);
}

TEST_CASE("train_model builds every built-in type by name") {
  for (const auto& type : built_in_model_types()) {
    CAPTURE(type);
    const auto& split = test::rows_for(type);
    const std::map<std::string, std::string> params =
        type == "random_forest" || type == "gradient_boosted_trees" ? std::map<std::string, std::string>{{"n_estimators", "5"}, {"seed", "3"}}
                                                                   : std::map<std::string, std::string>{{"seed", "3"}};
    const auto model = train_model(type, split.train, params);
    CHECK(model->type_name() == type);
    CHECK(model->n_features() == 10);
    CHECK(model->task() == split.train.task);
    CHECK(model->predict_outputs(split.test.x).size() == split.test.rows());
  }
}

TEST_CASE("a model's hyperparameters train the same model again") {
  auto split = test::small_fraud();
  const auto first = train_model("random_forest", split.train,
                                 {{"n_estimators", "7"}, {"max_depth", "6"}, {"max_features", "log2"}, {"seed", "11"}});
  const auto params = first->hyperparameters();
  CHECK(params.at("n_estimators") == "7");
  CHECK(params.at("max_depth") == "6");
  CHECK(params.at("max_features") == "log2");
  CHECK(params.at("bootstrap") == "true");
  const auto again = train_model("random_forest", split.train, params);
  CHECK(again->predict_proba(split.test.x) == first->predict_proba(split.test.x));

  const auto lr = train_model("logistic_regression", split.train, {{"C", "0.5"}});
  CHECK(lr->hyperparameters() == std::map<std::string, std::string>{{"C", "0.5"}, {"max_iter", "100"}, {"tol", "1e-10"}});
  const auto gbt = train_model("gradient_boosted_trees", split.train, {{"n_estimators", "3"}, {"max_depth", "none"}});
  CHECK(gbt->hyperparameters().at("max_depth") == "none");
  CHECK(gbt->hyperparameters().at("learning_rate") == "0.1");
}

TEST_CASE("train_model names an unknown type, an unknown parameter and a value that does not parse") {
  auto split = test::small_fraud();
  const std::string unknown_type = message_of([&] { (void)train_model("svm", split.train); });
  CHECK(contains(unknown_type, "unknown model type 'svm'"));
  CHECK(contains(unknown_type, "random_forest"));
  const std::string unknown_param = message_of([&] { (void)train_model("decision_tree", split.train, {{"depth", "3"}}); });
  CHECK(contains(unknown_param, "no parameter 'depth'"));
  CHECK(contains(unknown_param, "max_depth"));
  CHECK(contains(message_of([&] { (void)train_model("random_forest", split.train, {{"n_estimators", "ten"}}); }),
                 "n_estimators='ten' is not a whole number"));
  CHECK(contains(message_of([&] { (void)train_model("random_forest", split.train, {{"n_estimators", "0"}}); }),
                 "n_estimators must be >= 1"));
  CHECK(contains(message_of([&] { (void)train_model("random_forest", split.train, {{"bootstrap", "maybe"}}); }),
                 "true or false"));
  CHECK(contains(message_of([&] { (void)train_model("logistic_regression", split.train, {{"C", "-1"}}); }),
                 "C must be > 0"));
  CHECK(contains(message_of([&] { (void)train_model("decision_tree", split.train, {{"max_features", "half"}}); }),
                 "max_features 'half'"));
  LabeledData unlabeled = split.train;
  unlabeled.y.clear();
  CHECK(code_of([&] { (void)train_model("decision_tree", unlabeled); }) == Errc::invalid_argument);
}

TEST_CASE("max_features resolves like scikit-learn's") {
  CHECK(FeatureSubset::square_root().resolve(20) == 4);
  CHECK(FeatureSubset::parse("log2").resolve(20) == 4);
  CHECK(FeatureSubset::all_features().resolve(20) == 20);
  CHECK(FeatureSubset::fixed(30).resolve(20) == 20);
  CHECK(FeatureSubset::square_root().resolve(1) == 1);
  CHECK(FeatureSubset::parse("7") == FeatureSubset::fixed(7));
  CHECK(FeatureSubset::parse("7").to_string() == "7");
  CHECK(code_of([] { (void)FeatureSubset::parse("0"); }) == Errc::invalid_argument);
}

TEST_CASE("every built-in type lists each hyperparameter once: trained, checked and written back by that list") {
  auto split = test::small_fraud();
  auto names_of = [](const auto& params) {
    std::set<std::string> names;
    std::remove_cvref_t<decltype(params)>::fields(params, [&](std::string_view name, const auto&, auto) {
      CHECK(names.emplace(name).second);  // no name twice
    });
    return names;
  };
  const std::map<std::string, std::set<std::string>> listed{
      {LogisticRegression::kTypeName, names_of(LogisticRegression::Params{})},
      {DecisionTree::kTypeName, names_of(DecisionTree::Params{})},
      {RandomForest::kTypeName, names_of(RandomForest::Params{})},
      {GradientBoostedTrees::kTypeName, names_of(GradientBoostedTrees::Params{})},
      {LinearRegression::kTypeName, names_of(LinearRegression::Params{})},
  };
  CHECK(listed.size() == built_in_model_types().size());
  for (const auto& type : built_in_model_types()) {
    CAPTURE(type);
    const auto& rows = test::rows_for(type);
    const bool ensemble = type == RandomForest::kTypeName || type == GradientBoostedTrees::kTypeName;
    const auto model = train_model(type, rows.train,
                                   ensemble ? std::map<std::string, std::string>{{"n_estimators", "3"}}
                                            : std::map<std::string, std::string>{});
    CHECK(model->type_name() == type);
    std::set<std::string> written;
    for (const auto& [name, value] : model->hyperparameters()) written.insert(name);
    CHECK(written == listed.at(type));
    // Every listed name is accepted by train_model (an unknown one is refused).
    CHECK_NOTHROW((void)train_model(type, rows.train, model->hyperparameters()));
  }
  // The rules come from the same list: a value below a rule is refused with the rule's text.
  CHECK(contains(message_of([&] { (void)train_model("decision_tree", split.train, {{"min_samples_split", "1"}}); }),
                 "decision_tree: min_samples_split must be >= 2 (got 1)"));
  CHECK(contains(message_of([&] { (void)train_model("gradient_boosted_trees", split.train, {{"subsample", "1.5"}}); }),
                 "subsample must be in (0, 1] (got 1.5)"));
  CHECK(contains(message_of([&] { (void)train_model("random_forest", split.train, {{"max_depth", "0"}}); }),
                 "max_depth must be none or >= 1 (got 0)"));
}

TEST_CASE("labels come from one threshold: above kDecisionThreshold is 1, at or below it 0") {
  const std::vector<double> p{0.0, kDecisionThreshold, std::nextafter(kDecisionThreshold, 1.0), 1.0};
  CHECK(labels_of(p) == std::vector<int>{0, 0, 1, 1});
  CHECK(labels_of(std::vector<double>{}).empty());
}
