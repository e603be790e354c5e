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
#include "modelreg/linear_regression.hpp"
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

// Reads every field a Params struct lists (modelreg/hyperparameters.hpp) out of the text map.
template <class Params>
void read_fields(ParamReader& in, Params& p) {
  Params::fields(p, [&](const char* name, auto& value, auto) { in.read(name, value); });
}

template <class M>
std::unique_ptr<Model> train_type(ParamReader& in, const LabeledData& data, const std::function<void(typename M::Params&)>& extra = {}) {
  typename M::Params p;
  read_fields(in, p);
  if (extra) extra(p);
  in.finish();
  return std::make_unique<M>(M::train(data, p));
}

}  // namespace

std::vector<std::string> built_in_model_types() {
  return {LogisticRegression::kTypeName, DecisionTree::kTypeName, RandomForest::kTypeName,
          GradientBoostedTrees::kTypeName, LinearRegression::kTypeName};
}

std::unique_ptr<Model> train_model(std::string_view type, const LabeledData& data,
                                   const std::map<std::string, std::string>& params) {
  if (!data.has_labels()) throw Error(Errc::invalid_argument, fmt::format("{}: the training rows have no labels", type));
  ParamReader in(type, params);
  if (type == LogisticRegression::kTypeName) {
    in.ignore("seed");  // the solver is deterministic; a seed given to every type is harmless
    return train_type<LogisticRegression>(in, data);
  }
  if (type == DecisionTree::kTypeName) return train_type<DecisionTree>(in, data);
  if (type == RandomForest::kTypeName) {
    return train_type<RandomForest>(in, data, [&](RandomForest::Params& p) {
      std::size_t threads = 0;  // not a hyperparameter: it never changes the result
      in.read("threads", threads);
      p.threads = static_cast<unsigned>(threads);
    });
  }
  if (type == GradientBoostedTrees::kTypeName) return train_type<GradientBoostedTrees>(in, data);
  if (type == LinearRegression::kTypeName) {
    in.ignore("seed");  // closed form: deterministic
    return train_type<LinearRegression>(in, data);
  }
  std::string names;
  for (const auto& t : built_in_model_types()) names += (names.empty() ? "" : ", ") + t;
  throw Error(Errc::invalid_argument, fmt::format("unknown model type '{}' (built in: {})", type, names));
}

}  // namespace modelreg
