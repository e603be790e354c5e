// The model type behind make_sklearn_model (modelreg/sklearn.hpp): one class holds every family
// (linear, averaged trees, boosted trees, histogram-boosted trees); a final class per estimator
// gives it its type name, since each name is exported as its own class.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "modelreg/matrix.hpp"
#include "modelreg/model.hpp"
#include "modelreg/sklearn.hpp"

namespace modelreg::detail {

class SklearnModel : public Model {
 public:
  // Flags of Node::bits; the rest is the feature index.
  static constexpr std::uint32_t kLeaf = 0x8000'0000u;
  static constexpr std::uint32_t kMissingLeft = 0x4000'0000u;
  static constexpr std::uint32_t kFeatureMask = 0x3FFF'FFFFu;

  // A tree node as prediction walks it, all trees' nodes in one array, each tree in pre-order:
  // the left child is the next node, the right child `next` nodes into the tree; a leaf's `next`
  // is its first value in leaf_values_.
  struct Node {
    std::uint32_t bits;
    std::uint32_t next;
    double threshold;
  };

  SklearnModel() = default;
  explicit SklearnModel(SklearnModelSpec spec);

  std::size_t n_features() const override { return spec_.n_features; }
  std::map<std::string, std::string> hyperparameters() const override;
  Task task() const override;
  ClassLabels classes() const override { return spec_.classes; }
  bool handles_missing() const override;

  SklearnEstimator estimator() const noexcept { return spec_.estimator; }

  template <class Archive>
  void serialize(Archive& archive, unsigned version);

 protected:
  void compute(MatrixView x, std::span<double> out) const override;

 private:
  enum class Family : std::uint8_t { linear, averaged_trees, boosted_trees, hist_trees };
  Family family() const noexcept;
  std::size_t raw_width() const noexcept;   // raw scores per row before the link
  std::size_t leaf_width() const noexcept;  // values per leaf
  void check_spec() const;
  void compile_tree(const SklearnTree& tree, std::size_t index);
  void check_compiled() const;
  void compute_block(const double* rows, std::size_t n, double* out, std::vector<double>& scratch) const;

  SklearnModelSpec spec_;  // without trees: they live compiled below
  std::vector<Node> nodes_;
  std::vector<std::uint32_t> tree_begin_;
  std::vector<double> leaf_values_;
};

template <SklearnEstimator E>
class SklearnModelOf final : public SklearnModel {
 public:
  SklearnModelOf() = default;
  explicit SklearnModelOf(SklearnModelSpec spec) : SklearnModel(std::move(spec)) {}
  std::string type_name() const override { return sklearn_type_name(E); }

  template <class Archive>
  void serialize(Archive& archive, unsigned version);
};

}  // namespace modelreg::detail
