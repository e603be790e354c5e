// Metrics on small examples computed by hand (and checked against scikit-learn).
#include <cmath>

#include <doctest/doctest.h>

#include "model_test_support.hpp"
#include "modelreg/metrics.hpp"

using namespace modelreg;
using test::code_of;

TEST_CASE("the confusion matrix and the ratios built on it") {
  //                      TP TP FN TN TN TN FP TN
  const std::vector<int> y_true{1, 1, 1, 0, 0, 0, 0, 0};
  const std::vector<int> y_pred{1, 1, 0, 0, 0, 0, 1, 0};
  const auto m = confusion_matrix(y_true, y_pred);
  CHECK(m == ConfusionMatrix{.true_negatives = 4, .false_positives = 1, .false_negatives = 1, .true_positives = 2});
  CHECK(accuracy(y_true, y_pred) == doctest::Approx(6.0 / 8));
  CHECK(precision(y_true, y_pred) == doctest::Approx(2.0 / 3));
  CHECK(recall(y_true, y_pred) == doctest::Approx(2.0 / 3));
  CHECK(f1_score(y_true, y_pred) == doctest::Approx(2.0 / 3));
}

TEST_CASE("undefined ratios are 0, as scikit-learn's zero_division=0") {
  const std::vector<int> y_true{0, 0, 1};
  const std::vector<int> none{0, 0, 0};
  CHECK(precision(y_true, none) == 0);
  CHECK(recall(y_true, none) == 0);
  CHECK(f1_score(y_true, none) == 0);
  CHECK(recall(std::vector<int>{0, 0}, std::vector<int>{1, 0}) == 0);
}

TEST_CASE("ROC AUC counts ties as one half") {
  // sklearn.metrics.roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
  CHECK(roc_auc(std::vector<int>{0, 0, 1, 1}, std::vector<double>{0.1, 0.4, 0.35, 0.8}) == doctest::Approx(0.75));
  // All scores tied: 0.5.
  CHECK(roc_auc(std::vector<int>{0, 1, 0, 1}, std::vector<double>{0.3, 0.3, 0.3, 0.3}) == doctest::Approx(0.5));
  // One tie between a positive and a negative out of 2 × 2 pairs: (3 + 0.5) / 4.
  CHECK(roc_auc(std::vector<int>{0, 0, 1, 1}, std::vector<double>{0.1, 0.5, 0.5, 0.9}) == doctest::Approx(0.875));
  CHECK(roc_auc(std::vector<int>{1, 0}, std::vector<double>{0.9, 0.1}) == 1.0);
  CHECK(roc_auc(std::vector<int>{1, 0}, std::vector<double>{0.1, 0.9}) == 0.0);
  CHECK(code_of([] { (void)roc_auc(std::vector<int>{1, 1}, std::vector<double>{0.1, 0.9}); }) == Errc::invalid_argument);
}

TEST_CASE("log loss is the mean negative log-likelihood, clipped") {
  // -(log 0.9 + log 0.8 + log 0.7) / 3
  const double expected = -(std::log(0.9) + std::log(0.8) + std::log(0.7)) / 3;
  CHECK(log_loss(std::vector<int>{1, 0, 1}, std::vector<double>{0.9, 0.2, 0.7}) == doctest::Approx(expected));
  // A confident mistake is clipped at eps = 1e-15, not infinite.
  CHECK(log_loss(std::vector<int>{1}, std::vector<double>{0.0}) == doctest::Approx(-std::log(1e-15)));
  CHECK(code_of([] { (void)log_loss(std::vector<int>{1}, std::vector<double>{1.5}); }) == Errc::invalid_argument);
}

TEST_CASE("metrics refuse mismatched, empty or non-binary input") {
  CHECK(code_of([] { (void)accuracy(std::vector<int>{1, 0}, std::vector<int>{1}); }) == Errc::invalid_argument);
  CHECK(code_of([] { (void)accuracy(std::vector<int>{}, std::vector<int>{}); }) == Errc::invalid_argument);
  CHECK(code_of([] { (void)f1_score(std::vector<int>{2}, std::vector<int>{1}); }) == Errc::invalid_argument);
  CHECK(code_of([] { (void)roc_auc(std::vector<int>{0, 1}, std::vector<double>{NAN, 1}); }) == Errc::invalid_argument);
}

TEST_CASE("evaluate gathers every metric and leaves AUC out when it is undefined") {
  const std::vector<int> y{1, 0, 1, 0};
  const std::vector<double> p{0.9, 0.2, 0.4, 0.6};
  const auto m = evaluate(y, p);
  CHECK(m.confusion == ConfusionMatrix{1, 1, 1, 1});
  CHECK(m.accuracy == 0.5);
  CHECK(m.roc_auc == doctest::Approx(0.75));
  const auto map = m.to_map();
  CHECK(map.size() == 6);
  CHECK(map.at("f1") == 0.5);
  const auto single = evaluate(std::vector<int>{0, 0}, std::vector<double>{0.1, 0.2});
  CHECK(std::isnan(single.roc_auc));
  CHECK(single.to_map().count("roc_auc") == 0);
}

TEST_CASE("multiclass metrics agree with scikit-learn: macro-F1 over the classes that occur, log loss of the true class") {
  const std::vector<int> truth{0, 1, 2, 2, 1};
  const std::vector<int> predicted{0, 2, 2, 2, 1};
  CHECK(macro_f1_score(truth, predicted, 3) == doctest::Approx(0.8222222222222223));
  // Class 2 occurs in neither: it is left out of the mean (scikit-learn's labels=None).
  CHECK(macro_f1_score(std::vector<int>{0, 0, 1}, std::vector<int>{0, 0, 0}, 3) == doctest::Approx(0.4));
  const std::vector<double> p{0.7, 0.2, 0.1, 0.1, 0.3, 0.6, 0.2, 0.2, 0.6};
  const std::vector<int> y{0, 2, 1};
  CHECK(multiclass_log_loss(y, p, 3) == doctest::Approx(0.8256461600462744));
  const MulticlassMetrics m = evaluate_multiclass(y, p, 3);
  CHECK(m.accuracy == doctest::Approx(2.0 / 3));  // rows 0 and 1 right, row 2 predicted class 2
  CHECK(m.support == std::vector<std::size_t>{1, 1, 1});
  const auto named = m.to_map(ClassLabels::strings({"a", "b", "c"}));
  CHECK(named.at("count_b") == 1);
  CHECK(named.count("f1_macro") == 1);
  CHECK(m.to_map(ClassLabels::strings({"a", "b b", "c"})).count("count_1") == 1);  // "b b" is no metric name
  CHECK(code_of([&] { (void)macro_f1_score(truth, std::vector<int>{0, 3, 2, 2, 1}, 3); }) == Errc::invalid_argument);
  CHECK(code_of([&] { (void)multiclass_log_loss(y, std::vector<double>(8, 0.1), 3); }) == Errc::invalid_argument);
}

TEST_CASE("regression metrics agree with scikit-learn, and R² of a constant target is 1 only when perfect") {
  const RegressionMetrics m = evaluate_regression(std::vector<double>{1, 2, 3, 4}, std::vector<double>{1.5, 2, 2.5, 4.5});
  CHECK(m.r2 == doctest::Approx(0.85));
  CHECK(m.mae == doctest::Approx(0.375));
  CHECK(m.rmse == doctest::Approx(0.4330127018922193));
  CHECK(m.to_map() == std::map<std::string, double>{{"rmse", m.rmse}, {"mae", m.mae}, {"r2", m.r2}});
  CHECK(evaluate_regression(std::vector<double>{2, 2}, std::vector<double>{2, 2}).r2 == 1.0);
  CHECK(evaluate_regression(std::vector<double>{2, 2}, std::vector<double>{2, 3}).r2 == 0.0);
  CHECK(code_of([] { (void)evaluate_regression(std::vector<double>{1}, std::vector<double>{NAN}); }) == Errc::invalid_argument);
}
