// Serialization helpers shared by the built-in model types (see docs/model_format.md).
//
// Everything is written with fixed-width types so an archive does not depend on the platform's
// `long` or `size_t`; everything read is checked before use and a bad value is Error(corruption).
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "modelreg/error.hpp"
#include "modelreg/model_serialization.hpp"
#include "modelreg/tree.hpp"

namespace modelreg::detail {

[[noreturn]] inline void corrupt(std::string_view type, std::string_view what) {
  throw Error(Errc::corruption, fmt::format("{} archive: {}", type, what));
}

// A std::size_t as uint64, checked to fit on load.
template <class Archive>
void serialize_size(Archive& archive, std::size_t& value) {
  std::uint64_t v = value;
  archive & v;
  if constexpr (Archive::is_loading::value) {
    if (v > std::numeric_limits<std::size_t>::max()) corrupt("model", "a size does not fit this platform");
    value = static_cast<std::size_t>(v);
  }
}

// max_depth as int32, -1 for none.
template <class Archive>
void serialize_depth(Archive& archive, std::optional<int>& depth) {
  std::int32_t v = depth ? *depth : -1;
  archive & v;
  if constexpr (Archive::is_loading::value) {
    if (v == -1) {
      depth.reset();
    } else if (v >= 1) {
      depth = v;
    } else {
      corrupt("model", fmt::format("max_depth {}", v));
    }
  }
}

// Rule as uint8 and count as uint64.
template <class Archive>
void serialize_feature_subset(Archive& archive, FeatureSubset& subset) {
  auto rule = static_cast<std::uint8_t>(subset.rule);
  std::uint64_t count = subset.count;
  archive & rule & count;
  if constexpr (Archive::is_loading::value) {
    if (rule > static_cast<std::uint8_t>(FeatureSubset::Rule::fixed)) corrupt("model", fmt::format("max_features rule {}", rule));
    subset.rule = static_cast<FeatureSubset::Rule>(rule);
    subset.count = static_cast<std::size_t>(count);
    if (subset.rule == FeatureSubset::Rule::fixed && count == 0) corrupt("model", "max_features 0");
  }
}

// A bool as one byte, 0 or 1.
template <class Archive>
void serialize_flag(Archive& archive, bool& flag) {
  std::uint8_t v = flag ? 1 : 0;
  archive & v;
  if constexpr (Archive::is_loading::value) {
    if (v > 1) corrupt("model", fmt::format("a flag holds {}", v));
    flag = v == 1;
  }
}

// The number of trees as uint64, then each tree (see Tree::serialize). On load each tree must test
// only features below n_features.
template <class Archive>
void serialize_trees(Archive& archive, std::vector<Tree>& trees, std::size_t n_features, std::string_view type) {
  std::uint64_t count = trees.size();
  archive & count;
  if constexpr (Archive::is_loading::value) {
    // Every stored tree takes well over one byte: a count beyond the bytes left is a lie.
    if (count == 0 || count > archive.bytes_left()) corrupt(type, fmt::format("{} trees in {} bytes", count, archive.bytes_left()));
    trees.assign(static_cast<std::size_t>(count), Tree());
  }
  for (auto& tree : trees) archive & tree;
  if constexpr (Archive::is_loading::value) {
    for (const auto& tree : trees) {
      if (tree.max_feature() >= 0 && static_cast<std::size_t>(tree.max_feature()) >= n_features) {
        corrupt(type, fmt::format("a tree tests feature {} of {}", tree.max_feature(), n_features));
      }
    }
  }
}

// The leaves of a classification tree (DecisionTree, RandomForest) hold P(label 1): each must be
// in [0, 1], or predict_proba would answer outside it. (Gradient-boosted trees hold log-odds.)
inline void check_probability_leaves(const Tree& tree, std::string_view type) {
  for (const TreeNode& node : tree.nodes()) {
    if (node.feature < 0 && !(node.value >= 0 && node.value <= 1)) {
      corrupt(type, fmt::format("a leaf holds {}, not a probability in [0, 1]", node.value));
    }
  }
}

// n_features must be at least 1 and fit the int32 feature index of the trees.
inline void check_feature_count(std::string_view type, std::size_t n_features) {
  if (n_features == 0 || n_features > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) {
    corrupt(type, fmt::format("{} features", n_features));
  }
}

}  // namespace modelreg::detail
