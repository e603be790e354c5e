// Growing one CART tree from pre-sorted columns: the engine behind DecisionTree, RandomForest and
// GradientBoostedTrees.
//
// One criterion serves classification and boosting: a split minimizes the weighted squared error
// of a per-row target t, i.e. maximizes S_L²/W_L + S_R²/W_R (S = Σ w·t, W = Σ w). For 0/1 targets
// the squared error is half the Gini impurity, so this is exactly CART's Gini split; for residuals
// it is least squares (the same split as Friedman's criterion). A leaf's value is
// Σ w·t / Σ w·h (h = 1: the positive fraction; h = p(1 − p): the Newton step of logistic loss),
// times a scale (the learning rate), rounded to float.
//
// Split finding is exact: every feature's in-sample rows are kept sorted by value for every node,
// so finding a node's best split on a feature is one linear scan, and splitting a node is a stable
// partition of each feature's row list (no sorting after the initial one per training run).
//
// Thread-safety: SortedColumns is immutable and shared by all threads; a TreeBuilder is one
// thread's workspace.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "modelreg/matrix.hpp"
#include "modelreg/tree.hpp"
#include "core/random.hpp"

namespace modelreg::detail {

// The training features column by column, and each column's rows sorted by value (ties by row).
class SortedColumns {
 public:
  // x must be finite (checked by the caller). Sorts the columns on up to `threads` threads.
  SortedColumns(MatrixView x, unsigned threads);

  std::size_t rows() const noexcept { return rows_; }
  std::size_t features() const noexcept { return features_; }
  const double* column(std::size_t f) const noexcept { return values_.data() + f * rows_; }
  const std::int32_t* order(std::size_t f) const noexcept { return order_.data() + f * rows_; }

 private:
  std::size_t rows_;
  std::size_t features_;
  std::vector<double> values_;       // column-major copy of x
  std::vector<std::int32_t> order_;  // per column: row indices by ascending value
};

struct GrowLimits {
  std::optional<int> max_depth;       // none: unlimited
  std::size_t min_samples_split = 2;  // rows (not weights), as scikit-learn counts
  std::size_t min_samples_leaf = 1;
  std::size_t max_features = 1;       // non-constant features to try per split (resolved count)
  double leaf_scale = 1.0;            // multiplies every leaf value
};

// Per-row inputs of one tree, indexed by row of the SortedColumns.
struct GrowTargets {
  std::span<const double> weight;   // >= 0; rows with weight 0 are left out of this tree
  std::span<const double> target;   // t
  std::span<const double> hessian;  // h; empty means 1 for every row
};

// Per-row inputs of one multiclass classification tree (Gini over k classes).
struct GrowClasses {
  std::span<const double> weight;   // >= 0; rows with weight 0 are left out of this tree
  std::span<const int> label;       // class index per row, below n_classes
  std::size_t n_classes = 0;
};

// A split point between neighbouring feature values lo < hi that is exactly a float: a value with
// few significant bits in the middle half of [lo, hi) (so it compresses well and keeps a margin
// to both sides), else the float nearest the midpoint with lo <= t < hi, else NaN (no float
// separates them).
float float_threshold(double lo, double hi) noexcept;

class TreeBuilder {
 public:
  explicit TreeBuilder(const SortedColumns& columns);

  // Grows one tree. Deterministic given (columns, targets, limits, rng state).
  Tree grow(const GrowTargets& targets, const GrowLimits& limits, Rng& rng);

  // Grows one multiclass classification tree whose split criterion is Gini impurity over k
  // classes (maximizes Σ_c L_c²/W_L + Σ_c R_c²/W_R with L_c, R_c the class weights of each side).
  // Leaf i (in pre-order) holds the value i; its class distribution (k floats, the class weights
  // over the leaf's weight) is appended to `distributions`, which is cleared first.
  // limits.leaf_scale is not used.
  Tree grow_classifier(const GrowClasses& targets, const GrowLimits& limits, Rng& rng, std::vector<float>& distributions);

 private:
  struct Split {
    double score = 0;
    std::int32_t feature = -1;
    float threshold = 0;
    std::size_t left_rows = 0;
  };
  Split find_split(std::size_t begin, std::size_t end, double weight_sum, double target_sum,
                   const GrowTargets& targets, const GrowLimits& limits, Rng& rng);
  Split find_class_split(std::size_t begin, std::size_t end, double weight_sum, const GrowClasses& targets,
                         const GrowLimits& limits, Rng& rng);
  // Fills rows_ with each feature's in-sample rows (weight > 0), sorted; sets sample_rows_.
  void prepare(std::span<const double> weight);
  void partition(const Split& split, std::size_t begin, std::size_t end);

  const SortedColumns& columns_;
  std::size_t sample_rows_ = 0;        // rows with weight > 0 in the current tree
  std::vector<std::int32_t> rows_;     // features × sample_rows_: each feature's rows, sorted
                                       // by that feature within every node's [begin, end)
  std::vector<std::int32_t> scratch_;  // right-hand rows during a partition
  std::vector<std::uint8_t> goes_left_;  // per row of the data, for the split being applied
  std::vector<std::size_t> feature_order_;
  std::vector<double> class_total_;    // per class: the weight of the node being split
  std::vector<double> class_left_;     // per class: the weight left of the candidate split
};

}  // namespace modelreg::detail
