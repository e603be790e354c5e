// modelreg/sklearn.hpp — native model types that reproduce fitted scikit-learn (1.2) estimators:
// their fitted arrays go in (no pickle), and the model predicts what the estimator predicts, in
// scikit-learn's own arithmetic. The Python package converts estimators
// (`modelreg.sklearn.convert`, called by `Registry.save_model`); C++ callers fill a SklearnModelSpec
// themselves.
//
// Supported estimators (type name "sklearn.<class>", e.g. "sklearn.RandomForestClassifier"):
//   LogisticRegression                       binary (ovr: expit; multinomial: softmax of [-d, d]),
//                                            multiclass (multinomial softmax, or ovr: expit of each
//                                            score divided by their sum)
//   LinearRegression, Ridge                  one target
//   DecisionTree{Classifier,Regressor}       single-output
//   RandomForest{Classifier,Regressor}, ExtraTrees{Classifier,Regressor}
//   GradientBoosting{Classifier,Regressor}   init estimator prior / constant, or init="zero"
//   HistGradientBoosting{Classifier,Regressor}  numerical splits (categorical ones refused),
//                                            missing values routed; regressor losses squared_error,
//                                            absolute_error, quantile (identity) and poisson (exp)
// each alone or after any number of StandardScaler / MinMaxScaler steps (a Pipeline): the steps
// are part of the model and run first, as scikit-learn computes them.
//
// Arithmetic, as scikit-learn 1.2 does it:
//   linear     raw_k = Σ_j x_j coef_kj + intercept_k in float64 (ordinary summation; numpy's BLAS
//              sums in another order, so outputs agree to ~1e-15, not bit for bit)
//   trees      x is cast to float32 and compared with the float64 threshold, x <= t going left
//              (stored as the largest float32 <= t: the same decision for every float32 x);
//              classifier leaves hold value / value.sum() (predict_proba of one tree); a forest
//              adds its trees' leaves in tree order and divides by the number of trees
//   boosting   raw_k = init_k, then raw_k += learning_rate × leaf for every tree of output k in
//              stage order (GradientBoosting); HistGradientBoosting: raw_k = baseline_k + Σ leaf,
//              with x in float64 compared `x <= num_threshold` and NaN sent left iff
//              missing_go_to_left
//   links      SklearnLink below
// So trees, forests and boosting reproduce scikit-learn bit for bit up to the final exp/log
// (libm against numpy's, within an ulp or two); parity is tested within 1e-9.
//
// Missing values: only the HistGradientBoosting types route NaN (handles_missing() is true);
// every other type refuses it as model.hpp says, as scikit-learn 1.2 does.
//
// Thread-safety: as Model (immutable; predict from any thread). make_sklearn_model has no shared
// state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "modelreg/export.hpp"
#include "modelreg/model.hpp"

namespace modelreg {

enum class SklearnEstimator : std::uint8_t {
  logistic_regression = 1,
  linear_regression = 2,
  ridge = 3,
  decision_tree_classifier = 4,
  decision_tree_regressor = 5,
  random_forest_classifier = 6,
  random_forest_regressor = 7,
  extra_trees_classifier = 8,
  extra_trees_regressor = 9,
  gradient_boosting_classifier = 10,
  gradient_boosting_regressor = 11,
  hist_gradient_boosting_classifier = 12,
  hist_gradient_boosting_regressor = 13,
};

// scikit-learn's class name: "RandomForestClassifier".
MODELREG_API std::string_view sklearn_class_name(SklearnEstimator estimator) noexcept;
// The model type name: "sklearn.RandomForestClassifier".
MODELREG_API std::string sklearn_type_name(SklearnEstimator estimator);
// The estimator scikit-learn calls `class_name`; nullopt for one this library does not support.
MODELREG_API std::optional<SklearnEstimator> parse_sklearn_estimator(std::string_view class_name) noexcept;
// What is supported, for messages: "LogisticRegression, LinearRegression, ..., and a Pipeline of
// StandardScaler or MinMaxScaler steps followed by one of them".
MODELREG_API std::string supported_sklearn_estimators();
// Whether the estimator is a classifier (else a regressor).
MODELREG_API bool is_sklearn_classifier(SklearnEstimator estimator) noexcept;

// How raw scores become the model's outputs.
enum class SklearnLink : std::uint8_t {
  identity = 1,        // the raw value (regressors; forests and single trees, whose averaged
                       // leaves are already the outputs)
  exp = 2,             // exp(raw): HistGradientBoostingRegressor(loss="poisson")
  expit = 3,           // binary: 1 / (1 + exp(-raw))
  expit_twice = 4,     // binary: expit(2 raw): GradientBoostingClassifier(loss="exponential")
  softmax_binary = 5,  // binary: softmax([-raw, raw])[1]: LogisticRegression multinomial, 2 classes
  softmax = 6,         // multiclass: exp(raw_k - max) / Σ exp(raw_j - max)
  ovr = 7,             // multiclass: expit(raw_k) / Σ expit(raw_j) (LogisticRegression one-vs-rest)
};

// A preprocessing step applied to every row before the estimator (a Pipeline's scaler).
struct MODELREG_API SklearnScaler {
  enum class Kind : std::uint8_t {
    standard = 1,  // StandardScaler: (x - offset) / scale   (offset = mean_ or 0, scale = scale_ or 1)
    min_max = 2,   // MinMaxScaler: x * scale + offset       (scale = scale_, offset = min_), then
                   // clipped to [clip_min, clip_max] when clip
  };
  Kind kind = Kind::standard;
  std::vector<double> offset;  // one per feature, finite
  std::vector<double> scale;   // one per feature, finite (non-zero for standard)
  bool clip = false;
  double clip_min = 0;
  double clip_max = 1;

  friend bool operator==(const SklearnScaler&, const SklearnScaler&) = default;
};

// One fitted decision tree as scikit-learn holds it: arrays indexed by node id, node 0 the root.
struct MODELREG_API SklearnTree {
  std::vector<std::int64_t> left;      // child ids; -1 in both for a leaf
  std::vector<std::int64_t> right;
  std::vector<std::int64_t> feature;   // the feature an internal node tests (ignored in leaves)
  std::vector<double> threshold;       // x[feature] <= threshold goes left (ignored in leaves)
  // HistGradientBoosting only: 1 when a missing value goes left (one per node); empty otherwise.
  std::vector<std::uint8_t> missing_go_to_left;
  // node count × width leaf outputs, node after node (internal nodes' rows are ignored):
  // classifier trees and forests hold value / value.sum() — width k, or 1 (P(classes[1])) for a
  // binary model; regressors and boosting the value itself (width 1).
  std::vector<double> values;
};

// Everything a converted estimator is made of. Which fields are used depends on the family of the
// estimator; the others must be empty.
struct MODELREG_API SklearnModelSpec {
  SklearnEstimator estimator = SklearnEstimator::logistic_regression;
  std::size_t n_features = 0;
  ClassLabels classes;                           // classes_; empty for regressors
  std::vector<SklearnScaler> scalers;            // applied in order before the estimator
  std::map<std::string, std::string> params;     // the hyperparameters, as hyperparameters() reports them
  SklearnLink link = SklearnLink::identity;

  // Linear models: coef_ as k rows of n_features (k = 1 for binary and regression, else the
  // class count) and the k intercepts.
  std::vector<double> coef;
  std::vector<double> intercept;

  // Tree models. Single trees and forests: their trees, averaged. Boosting: the trees in stage
  // order, k per stage for k outputs (estimators_[i, k] / _predictors[i][k]), added to `init`.
  std::vector<SklearnTree> trees;
  std::vector<double> init;    // boosting: the raw score each output starts from (k values)
  double learning_rate = 1;    // GradientBoosting: each leaf is multiplied by it; 1 for the others

  friend bool operator==(const SklearnModelSpec&, const SklearnModelSpec&) = default;
};

// The model of `spec`, of type sklearn_type_name(spec.estimator). Throws Error(validation_failed)
// naming the first problem: no features; classes that do not suit the estimator (none for a
// regressor, 2 or more for a classifier); a link the estimator cannot have; coef / intercept / init
// sizes that disagree with the features and outputs; fields the family does not use; no trees (or
// a count that is not a multiple of k for boosting); a tree whose arrays differ in length, whose
// child id is out of range, which reaches a node twice (a cycle or shared node) or leaves one
// unreached, whose internal node tests a feature >= n_features, whose threshold is NaN (or
// infinite, except for HistGradientBoosting), or whose leaf value is not finite (classifier
// leaves: not a probability, or not summing to 1); a scaler of another width, non-finite, or
// dividing by 0.
MODELREG_API std::unique_ptr<Model> make_sklearn_model(SklearnModelSpec spec);

}  // namespace modelreg
