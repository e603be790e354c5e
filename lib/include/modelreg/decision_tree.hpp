// modelreg/decision_tree.hpp — a CART tree for the three tasks, as scikit-learn's
// DecisionTreeClassifier (Gini impurity) and DecisionTreeRegressor (squared error).
//
// Splits are found exactly, by scanning each candidate feature's rows in pre-sorted order (the
// sort is done once per training run, not per node). Binary: predict_proba is the fraction of
// positive training rows in the row's leaf. Multiclass: each leaf holds the fraction of each
// class (the tree's leaf value is an index into a table of k floats per leaf). Regression: the
// leaf holds the mean target of its training rows (as a float). The tree is stored flat (see
// tree.hpp).
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

struct MODELREG_API DecisionTreeParams {
  std::optional<int> max_depth{};          // edges from root to deepest leaf, >= 1; none: unlimited
  std::size_t min_samples_split = 2;       // a node with fewer rows is a leaf, >= 2
  std::size_t min_samples_leaf = 1;        // every leaf keeps at least this many rows, >= 1
  FeatureSubset max_features = FeatureSubset::all_features();  // features tried per split
  std::uint64_t seed = 0;                  // feature order at each split (breaks ties)

  // Every hyperparameter once: f(name, field, rule) (see modelreg/hyperparameters.hpp).
  template <class Self, class F>
  static void fields(Self& p, F&& f) {
    f("max_depth", p.max_depth, rule::AtLeast{1});
    f("min_samples_split", p.min_samples_split, rule::AtLeast{2});
    f("min_samples_leaf", p.min_samples_leaf, rule::AtLeast{1});
    f("max_features", p.max_features, rule::FeatureCount{});
    f("seed", p.seed, rule::Any{});
  }
};

class MODELREG_API DecisionTree final : public Model {
 public:
  using Params = DecisionTreeParams;

  // An untrained model (n_features() == 0); the target of deserialization.
  DecisionTree() = default;

  // Binary, labels 0/1 (classes {0, 1}). Throws Error(invalid_argument) for bad parameters, a size
  // mismatch, non-finite or missing values or labels other than 0/1 (a single class is fine: the
  // tree is one leaf).
  static DecisionTree train(MatrixView x, std::span<const int> y, const Params& params = {});
  // The task of `data` (its classes kept). Throws as above, and for a target that does not suit
  // its task (LabeledData::check).
  static DecisionTree train(const LabeledData& data, const Params& params = {});

  // The type's one name: archives, the registry's type_name and train_model() use it.
  static constexpr char kTypeName[] = "decision_tree";
  std::string type_name() const override { return kTypeName; }
  std::size_t n_features() const override { return n_features_; }
  std::map<std::string, std::string> hyperparameters() const override;
  Task task() const override { return task_; }
  ClassLabels classes() const override { return classes_; }

  const Params& params() const noexcept { return params_; }
  const Tree& tree() const noexcept { return tree_; }
  // Multiclass: k class probabilities per leaf, leaf after leaf (pre-order); else empty.
  const std::vector<float>& leaf_probabilities() const noexcept { return leaf_proba_; }

  template <class Archive>
  void serialize(Archive& archive, unsigned version);

 protected:
  void compute(MatrixView x, std::span<double> out) const override;

 private:
  Params params_;
  std::size_t n_features_ = 0;
  Tree tree_;
  Task task_ = Task::binary;
  ClassLabels classes_ = ClassLabels::zero_one();
  std::vector<float> leaf_proba_;
};

}  // namespace modelreg
