// What the built-in types do with their Params::fields lists (modelreg/hyperparameters.hpp):
// check every value against its rule, and write every value as text.
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include <fmt/format.h>

#include "modelreg/hyperparameters.hpp"
#include "modelreg/tree.hpp"
#include "models/training_input.hpp"

namespace modelreg::detail {

// The text of a value, as hyperparameters() stores it and train_model() parses it back.
inline std::string param_text(const std::optional<int>& depth) { return depth_text(depth); }
inline std::string param_text(double value) { return number_text(value); }
inline std::string param_text(bool flag) { return flag ? "true" : "false"; }
inline std::string param_text(const FeatureSubset& subset) { return subset.to_string(); }
template <class Integer>
  requires(std::is_integral_v<Integer> && !std::is_same_v<Integer, bool>)
std::string param_text(Integer value) {
  return std::to_string(value);
}

// Whether a value keeps its rule, and the rule as text for the error message.
template <class Integer>
  requires std::is_integral_v<Integer>
bool keeps(rule::AtLeast r, Integer v) {
  return static_cast<long long>(v) >= r.min;
}
inline bool keeps(rule::AtLeast r, const std::optional<int>& v) { return !v || *v >= r.min; }
inline bool keeps(rule::Positive, double v) { return std::isfinite(v) && v > 0; }
inline bool keeps(rule::Fraction, double v) { return v > 0 && v <= 1; }
inline bool keeps(rule::FeatureCount, const FeatureSubset& v) {
  return v.rule != FeatureSubset::Rule::fixed || v.count >= 1;
}
template <class T>
bool keeps(rule::Any, const T&) {
  return true;
}

inline std::string rule_text(rule::AtLeast r, const std::optional<int>&) { return fmt::format("none or >= {}", r.min); }
template <class T>
std::string rule_text(rule::AtLeast r, const T&) {
  return fmt::format(">= {}", r.min);
}
template <class T>
std::string rule_text(rule::Positive, const T&) {
  return "> 0";
}
template <class T>
std::string rule_text(rule::Fraction, const T&) {
  return "in (0, 1]";
}
template <class T>
std::string rule_text(rule::FeatureCount, const T&) {
  return "all, sqrt, log2 or >= 1";
}
template <class T>
std::string rule_text(rule::Any, const T&) {
  return "any value";
}

// Error(invalid_argument) "<type>: <name> must be <rule> (got <value>)" for the first field that
// breaks its rule.
template <class Params>
void check_hyperparameters(std::string_view type, const Params& params) {
  Params::fields(params, [&](std::string_view name, const auto& value, auto rule) {
    check_param(keeps(rule, value), type, name, param_text(value), rule_text(rule, value));
  });
}

// Every field as name → text (Model::hyperparameters()).
template <class Params>
std::map<std::string, std::string> hyperparameter_texts(const Params& params) {
  std::map<std::string, std::string> out;
  Params::fields(params, [&](std::string_view name, const auto& value, auto) { out.emplace(name, param_text(value)); });
  return out;
}

}  // namespace modelreg::detail
