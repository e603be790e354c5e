#include "modelreg/tree.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "modelreg/error.hpp"
#include "modelreg/model_serialization.hpp"
#include "models/tree_links.hpp"

namespace modelreg {

namespace detail {

bool link_preorder(std::span<TreeNode> nodes) noexcept {
  if (nodes.empty() || nodes.size() > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) return false;
  // Internal nodes whose right child has not been seen yet. In pre-order a node's left child is
  // the next node; after a leaf comes the right child of the nearest such ancestor.
  std::vector<std::int32_t> open;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const auto index = static_cast<std::int32_t>(i);
    if (i > 0) {
      TreeNode& previous = nodes[i - 1];
      if (!previous.is_leaf()) {
        previous.left = index;
      } else {
        if (open.empty()) return false;  // a node after the tree is complete
        nodes[static_cast<std::size_t>(open.back())].right = index;
        open.pop_back();
      }
    }
    TreeNode& node = nodes[i];
    if (node.feature < -1) return false;
    if (node.is_leaf()) {
      node.left = node.right = -1;
    } else {
      open.push_back(index);
    }
  }
  return open.empty();  // otherwise an internal node lacks a child
}

}  // namespace detail

namespace {

void check_values(const std::vector<TreeNode>& nodes) {
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (!std::isfinite(nodes[i].value)) {
      throw Error(Errc::corruption, fmt::format("tree node {} holds a non-finite value", i));
    }
  }
}

}  // namespace

Tree::Tree(std::vector<TreeNode> nodes, std::size_t n_features) : nodes_(std::move(nodes)) {
  std::vector<TreeNode> relinked = nodes_;
  if (!detail::link_preorder(relinked) || relinked != nodes_) {
    throw Error(Errc::corruption, fmt::format("the {} tree nodes are not a tree in pre-order", nodes_.size()));
  }
  check_values(nodes_);
  if (max_feature() >= 0 && static_cast<std::size_t>(max_feature()) >= n_features) {
    throw Error(Errc::corruption, fmt::format("a tree node tests feature {} of a model with {} features",
                                              max_feature(), n_features));
  }
}

std::size_t Tree::leaf_count() const noexcept {
  std::size_t leaves = 0;
  for (const auto& n : nodes_) leaves += n.is_leaf() ? 1 : 0;
  return leaves;
}

std::int32_t Tree::max_feature() const noexcept {
  std::int32_t highest = -1;
  for (const auto& n : nodes_) highest = std::max(highest, n.feature);
  return highest;
}

std::size_t Tree::depth() const noexcept {
  if (nodes_.empty()) return 0;
  // Children come after their parent in pre-order, so one forward pass sees each parent first.
  std::vector<std::size_t> level(nodes_.size(), 0);
  std::size_t deepest = 0;
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    deepest = std::max(deepest, level[i]);
    if (!nodes_[i].is_leaf()) {
      level[static_cast<std::size_t>(nodes_[i].left)] = level[i] + 1;
      level[static_cast<std::size_t>(nodes_[i].right)] = level[i] + 1;
    }
  }
  return deepest;
}

// Serialized form (version 1): the features (int32, -1 for a leaf) and the values (float32) of the
// nodes in pre-order, as two arrays. Child indices are not stored: pre-order determines them, so
// they are rebuilt on load — which is also the structural check.
template <class Archive>
void Tree::serialize(Archive& archive, unsigned version) {
  check_class_version<Tree>(version, "tree");
  std::vector<std::int32_t> features;
  std::vector<float> values;
  if constexpr (Archive::is_saving::value) {
    features.reserve(nodes_.size());
    values.reserve(nodes_.size());
    for (const auto& n : nodes_) {
      features.push_back(n.feature);
      values.push_back(n.value);
    }
    serialize_vector(archive, features);
    serialize_vector(archive, values);
  } else {
    serialize_vector(archive, features);
    serialize_vector(archive, values);
    if (features.size() != values.size()) {
      throw Error(Errc::corruption, fmt::format("a tree has {} features but {} values", features.size(), values.size()));
    }
    std::vector<TreeNode> nodes(features.size());
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      nodes[i].feature = features[i];
      nodes[i].value = values[i];
    }
    if (!detail::link_preorder(nodes)) {
      throw Error(Errc::corruption, fmt::format("the {} stored tree nodes do not form a tree", nodes.size()));
    }
    check_values(nodes);
    nodes_ = std::move(nodes);
  }
}

template void Tree::serialize<ModelOutputArchive>(ModelOutputArchive&, unsigned);
template void Tree::serialize<ModelInputArchive>(ModelInputArchive&, unsigned);

FeatureSubset FeatureSubset::parse(std::string_view text) {
  if (text == "all" || text == "none") return all_features();
  if (text == "sqrt") return {Rule::sqrt, 0};
  if (text == "log2") return {Rule::log2, 0};
  std::size_t n = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size() || n == 0) {
    throw Error(Errc::invalid_argument,
                fmt::format("max_features '{}' is not one of all, sqrt, log2 or a positive number", text));
  }
  return fixed(n);
}

std::string FeatureSubset::to_string() const {
  switch (rule) {
    case Rule::all: return "all";
    case Rule::sqrt: return "sqrt";
    case Rule::log2: return "log2";
    case Rule::fixed: return std::to_string(count);
  }
  return "all";
}

std::size_t FeatureSubset::resolve(std::size_t n_features) const noexcept {
  std::size_t n = n_features;
  switch (rule) {
    case Rule::all: break;
    case Rule::sqrt: n = static_cast<std::size_t>(std::sqrt(static_cast<double>(n_features))); break;
    case Rule::log2: n = static_cast<std::size_t>(std::log2(static_cast<double>(std::max<std::size_t>(n_features, 1)))); break;
    case Rule::fixed: n = count; break;
  }
  return std::clamp<std::size_t>(n, 1, std::max<std::size_t>(n_features, 1));
}

}  // namespace modelreg
