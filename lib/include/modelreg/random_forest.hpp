// modelreg/random_forest.hpp — a random forest of CART trees, as scikit-learn's
// RandomForestClassifier and RandomForestRegressor: each tree sees a bootstrap sample of the rows
// and tries max_features features per split (default sqrt(features) for every task — scikit-learn's
// regressor defaults to all; pass max_features=all for the same forest). Classification:
// predict_proba is the mean of the trees' leaf fractions (multiclass: of each class, as
// DecisionTree). Regression: the mean of the trees' leaf means.
//
// Training and prediction use all cores (std::thread). Each tree draws its randomness from its own
// generator seeded by (seed, tree index), and probabilities are summed in tree order, so the model
// and its predictions are bit-identical whatever the number of threads.
//
// Thread-safety: as Model (immutable after training; predict from any thread — each call may start
// its own worker threads for large batches).
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

struct MODELREG_API RandomForestParams {
  std::size_t n_estimators = 100;          // trees, >= 1
  std::optional<int> max_depth{};          // >= 1; none: grow until leaves are pure (default)
  std::size_t min_samples_split = 2;       // >= 2
  std::size_t min_samples_leaf = 1;        // >= 1
  FeatureSubset max_features = FeatureSubset::square_root();
  bool bootstrap = true;                   // false: every tree sees every row once
  std::uint64_t seed = 0;
  // Worker threads for training and prediction; 0: one per core. Not a hyperparameter: it never
  // changes the result, and it is not saved.
  unsigned threads = 0;

  // Every hyperparameter once: f(name, field, rule) (see modelreg/hyperparameters.hpp).
  template <class Self, class F>
  static void fields(Self& p, F&& f) {
    f("n_estimators", p.n_estimators, rule::AtLeast{1});
    f("max_depth", p.max_depth, rule::AtLeast{1});
    f("min_samples_split", p.min_samples_split, rule::AtLeast{2});
    f("min_samples_leaf", p.min_samples_leaf, rule::AtLeast{1});
    f("max_features", p.max_features, rule::FeatureCount{});
    f("bootstrap", p.bootstrap, rule::Any{});
    f("seed", p.seed, rule::Any{});
  }
};

class MODELREG_API RandomForest final : public Model {
 public:
  using Params = RandomForestParams;

  // An untrained model (n_features() == 0); the target of deserialization.
  RandomForest() = default;

  // Binary, labels 0/1 (classes {0, 1}). Throws Error(invalid_argument) for bad parameters, a size
  // mismatch, non-finite or missing values or labels other than 0/1.
  static RandomForest train(MatrixView x, std::span<const int> y, const Params& params = {});
  // The task of `data` (its classes kept). Throws as above, and for a target that does not suit
  // its task (LabeledData::check).
  static RandomForest train(const LabeledData& data, const Params& params = {});

  // The type's one name: archives, the registry's type_name and train_model() use it.
  static constexpr char kTypeName[] = "random_forest";
  std::string type_name() const override { return kTypeName; }
  std::size_t n_features() const override { return n_features_; }
  std::map<std::string, std::string> hyperparameters() const override;
  Task task() const override { return task_; }
  ClassLabels classes() const override { return classes_; }

  const Params& params() const noexcept { return params_; }
  const std::vector<Tree>& trees() const noexcept { return trees_; }
  // Multiclass: per tree, k class probabilities per leaf (as DecisionTree); else empty.
  const std::vector<std::vector<float>>& leaf_probabilities() const noexcept { return leaf_proba_; }
  std::size_t node_count() const noexcept;
  // Threads used by predict_proba (0: one per core). Does not change results.
  void set_threads(unsigned threads) noexcept { params_.threads = threads; }

  template <class Archive>
  void serialize(Archive& archive, unsigned version);

 protected:
  void compute(MatrixView x, std::span<double> out) const override;

 private:
  struct ForestTargets;
  void grow_forest(MatrixView x, const ForestTargets& targets);

  Params params_;
  std::size_t n_features_ = 0;
  std::vector<Tree> trees_;
  Task task_ = Task::binary;
  ClassLabels classes_ = ClassLabels::zero_one();
  std::vector<std::vector<float>> leaf_proba_;
};

}  // namespace modelreg
