// modelreg/gradient_boosted_trees.hpp — gradient boosting, as scikit-learn's
// GradientBoostingClassifier (log loss) and GradientBoostingRegressor (squared error).
//
// Binary: starts from the training log-odds; each round fits a regression tree (least squares,
// which is Friedman's criterion) to the residuals y − p, sets each leaf to the Newton step
// Σ(y − p) / Σ p(1 − p) times the learning rate, and adds it to the raw score.
// predict_proba = sigmoid(initial log-odds + Σ leaf values).
// Multiclass (k classes): starts from the log of each class's training share; each round fits k
// trees, tree c to the residuals [y = c] − p_c with leaves (k − 1)/k · Σ(y_c − p_c) / Σ p_c(1 − p_c)
// times the learning rate; predict_proba = softmax of the k raw scores. trees() holds the rounds
// one after the other, k trees a round in class order.
// Regression: starts from the training mean; each round fits a tree to the residuals y − F with
// leaves the mean residual times the learning rate; the prediction is the raw score.
// With subsample < 1 each round fits on a random fraction of the rows (stochastic gradient
// boosting; the k trees of a round share it). Training is sequential.
//
// Thread-safety: as Model (immutable after training; predict from any thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "modelreg/export.hpp"
#include "modelreg/hyperparameters.hpp"
#include "modelreg/model.hpp"
#include "modelreg/tree.hpp"

namespace modelreg {

struct LabeledData;

struct MODELREG_API GradientBoostedTreesParams {
  std::size_t n_estimators = 100;          // boosting rounds, >= 1
  double learning_rate = 0.1;              // > 0
  std::optional<int> max_depth = 3;        // >= 1; none: unlimited
  std::size_t min_samples_split = 2;       // >= 2
  std::size_t min_samples_leaf = 1;        // >= 1
  double subsample = 1.0;                  // fraction of rows per round, in (0, 1]
  FeatureSubset max_features = FeatureSubset::all_features();
  std::uint64_t seed = 0;                  // row subsampling and feature order

  // Every hyperparameter once: f(name, field, rule) (see modelreg/hyperparameters.hpp).
  template <class Self, class F>
  static void fields(Self& p, F&& f) {
    f("n_estimators", p.n_estimators, rule::AtLeast{1});
    f("learning_rate", p.learning_rate, rule::Positive{});
    f("max_depth", p.max_depth, rule::AtLeast{1});
    f("min_samples_split", p.min_samples_split, rule::AtLeast{2});
    f("min_samples_leaf", p.min_samples_leaf, rule::AtLeast{1});
    f("subsample", p.subsample, rule::Fraction{});
    f("max_features", p.max_features, rule::FeatureCount{});
    f("seed", p.seed, rule::Any{});
  }
};

class MODELREG_API GradientBoostedTrees final : public Model {
 public:
  using Params = GradientBoostedTreesParams;

  // An untrained model (n_features() == 0); the target of deserialization.
  GradientBoostedTrees() = default;

  // Binary, labels 0/1 (classes {0, 1}). Throws Error(invalid_argument) for bad parameters, a size
  // mismatch, non-finite or missing values, labels other than 0/1, or a single class.
  static GradientBoostedTrees train(MatrixView x, std::span<const int> y, const Params& params = {});
  // The task of `data` (its classes kept). Throws as above, and for a target that does not suit
  // its task (LabeledData::check).
  static GradientBoostedTrees train(const LabeledData& data, const Params& params = {});

  // The type's one name: archives, the registry's type_name and train_model() use it.
  static constexpr char kTypeName[] = "gradient_boosted_trees";
  std::string type_name() const override { return kTypeName; }
  std::size_t n_features() const override { return n_features_; }
  std::map<std::string, std::string> hyperparameters() const override;
  Task task() const override { return task_; }
  ClassLabels classes() const override { return classes_; }

  const Params& params() const noexcept { return params_; }
  // Binary: the initial log-odds; regression: the initial value (the training mean); multiclass:
  // 0 (see initial_scores).
  double initial_log_odds() const noexcept { return init_; }
  // Multiclass: the initial raw score of each class (log of its training share); else empty.
  const std::vector<double>& initial_scores() const noexcept { return class_init_; }
  const std::vector<Tree>& trees() const noexcept { return trees_; }
  std::size_t node_count() const noexcept;

  template <class Archive>
  void serialize(Archive& archive, unsigned version);

 protected:
  void compute(MatrixView x, std::span<double> out) const override;

 private:
  Params params_;
  std::size_t n_features_ = 0;
  double init_ = 0;
  std::vector<Tree> trees_;
  Task task_ = Task::binary;
  ClassLabels classes_ = ClassLabels::zero_one();
  std::vector<double> class_init_;
};

}  // namespace modelreg
