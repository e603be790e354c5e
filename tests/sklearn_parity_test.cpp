// Quality against scikit-learn on data this library was not tuned on: multiclass data sets
// (generated with several classes, and iris, wine and digits, which ship with scikit-learn) and
// regression data sets (a linear target, Friedman #1, diabetes). tests/sklearn_parity.py splits
// each, writes the CSV files and fits scikit-learn's estimators with the same hyperparameters; our
// trainers then train on the same training rows and are scored on the same test rows. The margin
// is the issue's: accuracy and macro-F1 (multiclass) and R² (regression) at most 0.03 below
// scikit-learn's. Skipped (with a message) only when /usr/bin/python3 cannot import sklearn.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "model_test_support.hpp"
#include "modelreg/labeled_data.hpp"
#include "modelreg/metrics.hpp"
#include "modelreg/training.hpp"
#include "test_support.hpp"

using namespace modelreg;

namespace {

constexpr double kMargin = 0.03;

// The same hyperparameters as the estimators in sklearn_parity.py.
std::map<std::string, std::string> params_for(Task task, const std::string& type) {
  if (task == Task::regression) {
    if (type == "linear_regression") return {{"alpha", "1"}};
    if (type == "decision_tree") return {{"max_depth", "6"}, {"min_samples_leaf", "5"}, {"seed", "0"}};
    if (type == "random_forest") return {{"n_estimators", "100"}, {"max_features", "all"}, {"seed", "0"}};
    return {{"n_estimators", "100"}, {"learning_rate", "0.1"}, {"max_depth", "3"}, {"seed", "0"}};
  }
  if (type == "logistic_regression") return {{"C", "1"}};
  if (type == "decision_tree") return {{"max_depth", "8"}, {"seed", "0"}};
  if (type == "random_forest") return {{"n_estimators", "100"}, {"max_features", "sqrt"}, {"seed", "0"}};
  return {{"n_estimators", "50"}, {"learning_rate", "0.1"}, {"max_depth", "3"}, {"seed", "0"}};
}

bool sklearn_available() { return std::system("/usr/bin/python3 -c 'import sklearn, numpy' >/dev/null 2>&1") == 0; }

struct Score {
  std::string dataset, task, type, metric;
  double sklearn = 0;
};

}  // namespace

TEST_CASE("multiclass and regression trainers score within 0.03 of scikit-learn on data sets they were not tuned on") {
  if (!sklearn_available()) {
    if (test::python_deps_required()) FAIL("/usr/bin/python3 cannot import sklearn and numpy");
    MESSAGE("skipped: /usr/bin/python3 cannot import sklearn and numpy (apt install python3-sklearn)");
    return;
  }
  const char* root = std::getenv("MODELREG_SOURCE_ROOT");
  REQUIRE(root != nullptr);
  test::TempDir dir;
  const std::string command =
      fmt::format("/usr/bin/python3 '{}/tests/sklearn_parity.py' '{}'", root, dir.path().string());
  REQUIRE(std::system(command.c_str()) == 0);

  std::vector<Score> scores;
  {
    std::ifstream in(dir / "scores.tsv");
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      Score s;
      fields >> s.dataset >> s.task >> s.type >> s.metric >> s.sklearn;
      if (!s.dataset.empty()) scores.push_back(s);
    }
  }
  REQUIRE(scores.size() == 5 * 4 * 2 + 3 * 4);

  std::map<std::string, TrainTestSplit> data;
  std::map<std::pair<std::string, std::string>, Evaluation> ours;
  std::string table = fmt::format("{:<10} {:<23} {:<9} {:>8} {:>8} {:>7}\n", "data set", "model", "metric", "ours",
                                  "sklearn", "diff");
  for (const Score& s : scores) {
    CAPTURE(s.dataset);
    CAPTURE(s.type);
    CAPTURE(s.metric);
    const Task task = parse_task(s.task);
    auto [it, fresh] = data.try_emplace(s.dataset);
    if (fresh) {
      // Regression targets are read as such even when they are whole numbers (diabetes).
      CsvReadOptions options{.target = "target"};
      if (task == Task::regression) options.task = Task::regression;
      it->second.train = read_csv(dir / s.dataset / "train.csv", options);
      options.task = it->second.train.task;
      options.classes = it->second.train.classes;
      it->second.test = read_csv(dir / s.dataset / "test.csv", options);
      CHECK(it->second.train.task == task);
    }
    const auto key = std::pair{s.dataset, s.type};
    if (!ours.contains(key)) {
      const auto model = train_model(s.type, it->second.train, params_for(task, s.type));
      ours.emplace(key, evaluate(*model, it->second.test));
    }
    const double value = ours.at(key).metrics.at(s.metric);
    table += fmt::format("{:<10} {:<23} {:<9} {:>8.4f} {:>8.4f} {:>+7.4f}\n", s.dataset, s.type, s.metric, value,
                         s.sklearn, value - s.sklearn);
    CHECK(value >= s.sklearn - kMargin);
  }
  MESSAGE(table);
}
