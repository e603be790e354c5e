// Rebuilding a flat tree's child indices from its pre-order layout.
#pragma once

#include <span>

#include "modelreg/tree.hpp"

namespace modelreg::detail {

// Sets left/right of every node from the pre-order sequence of leaf/internal nodes. Returns false
// when the sequence is not exactly one complete binary tree (empty, a node after the tree is
// complete, an internal node missing a child, a feature below -1, more than INT32_MAX nodes).
bool link_preorder(std::span<TreeNode> nodes) noexcept;

}  // namespace modelreg::detail
