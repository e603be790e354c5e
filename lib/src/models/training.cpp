#include "modelreg/training.hpp"

#include <charconv>
#include <cmath>
#include <functional>
#include <set>
#include <type_traits>

#include <fmt/format.h>

#include "modelreg/decision_tree.hpp"
#include "modelreg/error.hpp"
#include "modelreg/gradient_boosted_trees.hpp"
#include "modelreg/labeled_data.hpp"
#include "modelreg/logistic_regression.hpp"
#include "modelreg/random_forest.hpp"

namespace modelreg {

namespace {

// Reads one type's parameters out of the text map, refusing keys the type does not know.
class ParamReader {
 public:
  ParamReader(std::string_view type, const std::map<std::string, std::string>& params) : type_(type), params_(params) {}

  template <class T>
  void read(const std::string& key, T& value) {
    known_.insert(key);
    const auto it = params_.find(key);
    if (it != params_.end()) parse(key, it->second, value);
  }
  void ignore(const std::string& key) { known_.insert(key); }

  void finish() const {
    for (const auto& [key, value] : params_) {
      if (known_.count(key) == 0) {
        std::string names;
        for (const auto& k : known_) names += (names.empty() ? "" : ", ") + k;
        throw Error(Errc::invalid_argument,
                    fmt::format("{} has no parameter '{}' (its parameters: {})", type_, key, names));
      }
    }
  }

 private:
  [[noreturn]] void bad(const std::string& key, const std::string& text, std::string_view expected) const {
    throw Error(Errc::invalid_argument, fmt::format("{}: {}='{}' is not {}", type_, key, text, expected));
  }

  template <class Integer>
  bool parse_integer(const std::string& text, Integer& out) const {
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && end == text.data() + text.size();
  }

  template <class Integer>
    requires(std::is_integral_v<Integer> && !std::is_same_v<Integer, bool>)
  void parse(const std::string& key, const std::string& text, Integer& out) const {
    if (!parse_integer(text, out)) bad(key, text, "a whole number");
  }
  void parse(const std::string& key, const std::string& text, double& out) const {
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(out)) bad(key, text, "a number");
  }
  void parse(const std::string& key, const std::string& text, bool& out) const {
    if (text == "true" || text == "1") {
      out = true;
    } else if (text == "false" || text == "0") {
      out = false;
    } else {
      bad(key, text, "true or false");
    }
  }
  void parse(const std::string& key, const std::string& text, std::optional<int>& out) const {
    int depth = 0;
    if (text == "none" || text == "None" || text == "null") {
      out.reset();
    } else if (parse_integer(text, depth)) {
      out = depth;
    } else {
      bad(key, text, "none or a whole number");
    }
  }
  void parse(const std::string&, const std::string& text, FeatureSubset& out) const {
    try {
      out = FeatureSubset::parse(text);
    } catch (const Error& e) {
      throw Error(Errc::invalid_argument, fmt::format("{}: {}", type_, e.what()));
    }
  }

  std::string_view type_;
  const std::map<std::string, std::string>& params_;
  std::set<std::string> known_;
};

}  // namespace

std::vector<std::string> built_in_model_types() {
  return {"logistic_regression", "decision_tree", "random_forest", "gradient_boosted_trees"};
}

std::unique_ptr<Model> train_model(std::string_view type, const LabeledData& data,
                                   const std::map<std::string, std::string>& params) {
  if (!data.has_labels()) throw Error(Errc::invalid_argument, fmt::format("{}: the training rows have no labels", type));
  ParamReader in(type, params);
  if (type == "logistic_regression") {
    LogisticRegression::Params p;
    in.read("C", p.C);
    in.read("max_iter", p.max_iter);
    in.read("tol", p.tol);
    in.ignore("seed");
    in.finish();
    return std::make_unique<LogisticRegression>(LogisticRegression::train(data, p));
  }
  if (type == "decision_tree") {
    DecisionTree::Params p;
    in.read("max_depth", p.max_depth);
    in.read("min_samples_split", p.min_samples_split);
    in.read("min_samples_leaf", p.min_samples_leaf);
    in.read("max_features", p.max_features);
    in.read("seed", p.seed);
    in.finish();
    return std::make_unique<DecisionTree>(DecisionTree::train(data, p));
  }
  if (type == "random_forest") {
    RandomForest::Params p;
    in.read("n_estimators", p.n_estimators);
    in.read("max_depth", p.max_depth);
    in.read("min_samples_split", p.min_samples_split);
    in.read("min_samples_leaf", p.min_samples_leaf);
    in.read("max_features", p.max_features);
    in.read("bootstrap", p.bootstrap);
    in.read("seed", p.seed);
    std::size_t threads = 0;
    in.read("threads", threads);
    p.threads = static_cast<unsigned>(threads);
    in.finish();
    return std::make_unique<RandomForest>(RandomForest::train(data, p));
  }
  if (type == "gradient_boosted_trees") {
    GradientBoostedTrees::Params p;
    in.read("n_estimators", p.n_estimators);
    in.read("learning_rate", p.learning_rate);
    in.read("max_depth", p.max_depth);
    in.read("min_samples_split", p.min_samples_split);
    in.read("min_samples_leaf", p.min_samples_leaf);
    in.read("subsample", p.subsample);
    in.read("max_features", p.max_features);
    in.read("seed", p.seed);
    in.finish();
    return std::make_unique<GradientBoostedTrees>(GradientBoostedTrees::train(data, p));
  }
  std::string names;
  for (const auto& t : built_in_model_types()) names += (names.empty() ? "" : ", ") + t;
  throw Error(Errc::invalid_argument, fmt::format("unknown model type '{}' (built in: {})", type, names));
}

}  // namespace modelreg
