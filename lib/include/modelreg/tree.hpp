// modelreg/tree.hpp — a fitted binary decision tree stored as one flat array of nodes, shared by
// DecisionTree, RandomForest and GradientBoostedTrees; and FeatureSubset, the max_features rule.
//
// Layout: nodes in depth-first pre-order (node 0 is the root; an internal node's left child is
// the next node). Each node is 16 bytes, four to a cache line, so prediction walks a few lines per
// tree. Thresholds and leaf values are 32-bit floats *by construction*: the trainer only places a
// threshold on a float that separates the two neighbouring training values and rounds each leaf
// value to float before using it, so the tree in memory, the tree on disk and the tree that was
// evaluated during training are the same numbers and predict bit-identically. See
// docs/model_format.md for the serialized form.
//
// Thread-safety: an immutable value; predict from any number of threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "modelreg/export.hpp"

namespace modelreg {

struct MODELREG_API TreeNode {
  std::int32_t feature = -1;  // the column an internal node tests; -1 marks a leaf
  float value = 0;            // internal: threshold (x[feature] <= value goes left); leaf: the output
  std::int32_t left = -1;     // child indices (pre-order: left == own index + 1); -1 in a leaf
  std::int32_t right = -1;

  bool is_leaf() const noexcept { return feature < 0; }
  friend bool operator==(const TreeNode&, const TreeNode&) = default;
};

class MODELREG_API Tree {
 public:
  // An empty tree (no nodes); only useful as a target for loading.
  Tree() = default;
  // Takes pre-ordered nodes and checks them: Error(corruption) unless every child index is in
  // range and follows the pre-order layout (hence no cycles and every node reachable), leaves
  // have no children, internal nodes test a feature < n_features, and all values are finite.
  Tree(std::vector<TreeNode> nodes, std::size_t n_features);

  // The leaf value for one row of at least n_features values. The tree must not be empty.
  double predict(const double* row) const noexcept {
    const TreeNode* n = nodes_.data();
    std::int32_t i = 0;
    while (n[i].feature >= 0) i = row[n[i].feature] <= static_cast<double>(n[i].value) ? n[i].left : n[i].right;
    return n[i].value;
  }

  const std::vector<TreeNode>& nodes() const noexcept { return nodes_; }
  std::size_t node_count() const noexcept { return nodes_.size(); }
  std::size_t leaf_count() const noexcept;
  // Edges on the longest root-to-leaf path (0 for a single leaf).
  std::size_t depth() const noexcept;
  // The highest feature index an internal node tests; -1 when the tree is a single leaf.
  std::int32_t max_feature() const noexcept;
  bool empty() const noexcept { return nodes_.empty(); }

  friend bool operator==(const Tree&, const Tree&) = default;

  // For Boost.Serialization (see docs/model_format.md); instantiated in the library for the
  // archives in model_serialization.hpp. Loading validates as the constructor does.
  template <class Archive>
  void serialize(Archive& archive, unsigned version);

 private:
  std::vector<TreeNode> nodes_;
};

// How many features a split may consider: all of them, sqrt(n) or log2(n) (rounded down, at
// least 1), or a fixed number (capped at n). Text forms: `all`, `sqrt`, `log2`, `7`.
struct MODELREG_API FeatureSubset {
  enum class Rule : std::uint8_t { all, sqrt, log2, fixed };
  Rule rule = Rule::all;
  std::size_t count = 0;  // used when rule == fixed; at least 1

  static FeatureSubset all_features() { return {}; }
  static FeatureSubset square_root() { return {Rule::sqrt, 0}; }
  static FeatureSubset fixed(std::size_t n) { return {Rule::fixed, n}; }
  // Throws Error(invalid_argument) naming the text and the accepted forms.
  static FeatureSubset parse(std::string_view text);
  std::string to_string() const;
  // The number of features to draw at each split out of n_features (1..n_features).
  std::size_t resolve(std::size_t n_features) const noexcept;

  friend bool operator==(const FeatureSubset&, const FeatureSubset&) = default;
};

}  // namespace modelreg
