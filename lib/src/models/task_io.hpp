// The task and classes of a built-in model in its archive, and the checks of what a tree model's
// leaves may hold for each task (see docs/model_format.md).
#pragma once

#include <cmath>
#include <cstdint>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "modelreg/labeled_data.hpp"
#include "modelreg/model.hpp"
#include "modelreg/tree.hpp"
#include "models/model_io.hpp"

namespace modelreg::detail {

// Error(corruption) unless `classes` suits `task`: 2 for binary, 3 to kMaxClasses for multiclass,
// none for regression.
inline void check_task_classes(std::string_view type, Task task, const ClassLabels& classes) {
  const std::size_t k = classes.size();
  const bool ok = task == Task::binary       ? k == 2
                  : task == Task::multiclass ? k >= 3 && k <= kMaxClasses
                                             : k == 0;
  if (!ok) corrupt(type, fmt::format("a {} model with {} class labels", to_string(task), k));
}

// The task as uint8, then the class labels (ClassLabels::serialize); checked on load.
template <class Archive>
void serialize_task(Archive& archive, Task& task, ClassLabels& classes, std::string_view type) {
  auto code = static_cast<std::uint8_t>(task);
  archive & code;
  if constexpr (Archive::is_loading::value) {
    if (code < static_cast<std::uint8_t>(Task::binary) || code > static_cast<std::uint8_t>(Task::regression)) {
      corrupt(type, fmt::format("task code {}", code));
    }
    task = static_cast<Task>(code);
  }
  archive & classes;
  if constexpr (Archive::is_loading::value) check_task_classes(type, task, classes);
}

// A multiclass tree's leaves hold 0, 1, 2, ... in pre-order: each an index into `distributions`,
// k floats per leaf, each finite in [0, 1] and summing to 1 (within float rounding).
inline void check_class_leaves(const Tree& tree, const std::vector<float>& distributions, std::size_t k,
                               std::string_view type) {
  std::size_t leaves = 0;
  for (const TreeNode& node : tree.nodes()) {
    if (!node.is_leaf()) continue;
    if (node.value != static_cast<float>(leaves)) {
      corrupt(type, fmt::format("leaf {} of a multiclass tree holds {}, not its index", leaves, node.value));
    }
    ++leaves;
  }
  if (distributions.size() != leaves * k) {
    corrupt(type, fmt::format("{} class probabilities for {} leaves of {} classes", distributions.size(), leaves, k));
  }
  for (std::size_t leaf = 0; leaf < leaves; ++leaf) {
    double sum = 0;
    for (std::size_t c = 0; c < k; ++c) {
      const float p = distributions[leaf * k + c];
      if (!(p >= 0 && p <= 1)) corrupt(type, fmt::format("leaf {} holds {} for class {}, not a probability", leaf, p, c));
      sum += p;
    }
    if (!(std::fabs(sum - 1) <= 1e-4)) {
      corrupt(type, fmt::format("the class probabilities of leaf {} sum to {}, not 1", leaf, sum));
    }
  }
}

// Adds leaf `leaf`'s k probabilities to `out`.
inline void add_distribution(const std::vector<float>& distributions, std::size_t k, double leaf, double* out) noexcept {
  const float* p = distributions.data() + static_cast<std::size_t>(leaf) * k;
  for (std::size_t c = 0; c < k; ++c) out[c] += static_cast<double>(p[c]);
}

// Scales k values to sum to 1 (float leaves sum to 1 only within rounding).
inline void normalize(double* p, std::size_t k) noexcept {
  double sum = 0;
  for (std::size_t c = 0; c < k; ++c) sum += p[c];
  if (sum > 0) {
    for (std::size_t c = 0; c < k; ++c) p[c] /= sum;
  }
}

}  // namespace modelreg::detail
