// modelreg/xgboost.hpp — gradient-boosted tree models trained by XGBoost, imported into a native
// model type (XGBoostModel, type name "xgboost_gbtree") that predicts what XGBoost predicts.
//
// read_xgboost_model() reads the bytes of a file written by XGBoost's `Booster.save_model` in JSON
// or UBJSON (detected from the content) and converts the `gbtree` booster. To register one, see
// xgboost_import.hpp (import_xgboost) or `modelreg import-model NAME --xgboost FILE`.
//
// Supported objectives and what the model outputs (Model::predict_outputs):
//   binary:logistic                 binary      P(class 1) = sigmoid(margin)
//   binary:logitraw                 binary      P(class 1) = sigmoid(margin); XGBoost's own predict
//                                               gives the margin itself, whose sign is the label
//   multi:softprob, multi:softmax   multiclass  softmax of the num_class margins (classes 0..k-1);
//                                               softmax's predicted label is the argmax; with
//                                               num_class 2 the model is binary, P(class 1)
//   reg:squarederror, reg:absoluteerror, reg:squaredlogerror, reg:pseudohubererror
//                                   regression  the margin
//   reg:logistic                    regression  sigmoid(margin)
//   count:poisson, reg:gamma, reg:tweedie
//                                   regression  exp(margin)
// Refused, with an error naming the thing: other boosters (dart, gblinear), other objectives
// (ranking, survival, hinge, anything unknown), categorical features or splits, vector-leaf
// (multi-target) trees, files of XGBoost before 1.0 (no JSON model) or of a major version after 2.
//
// Prediction follows XGBoost exactly: a feature value is converted to float32 and compared with
// the float32 split condition, `value < condition` going left; a missing value (NaN) goes to the
// node's default child; the margin of each output group starts at base_score (transformed to
// margin space as XGBoost does: logit for binary:logistic and reg:logistic, log for
// poisson/gamma/tweedie, as it is for the others, binary:logitraw included)
// and adds each tree's leaf in float32, in tree order; the transform is computed in float32. So
// the outputs are XGBoost's own float32 outputs (Booster.predict), widened to double. Every tree of
// the file is used, as Booster.predict does by default (no best_iteration cut-off).
//
// Thread-safety: as Model (immutable; predict from any thread). read_xgboost_model has no shared
// state.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "modelreg/export.hpp"
#include "modelreg/matrix.hpp"
#include "modelreg/model.hpp"

namespace modelreg {

enum class XGBoostObjective : std::uint8_t {
  binary_logistic = 1,
  binary_logitraw = 2,
  multi_softprob = 3,
  multi_softmax = 4,
  reg_squarederror = 5,
  reg_logistic = 6,
  reg_absoluteerror = 7,
  reg_squaredlogerror = 8,
  reg_pseudohubererror = 9,
  count_poisson = 10,
  reg_gamma = 11,
  reg_tweedie = 12,
};

// XGBoost's name: "binary:logistic", ...
MODELREG_API std::string_view to_string(XGBoostObjective objective) noexcept;
// The objective XGBoost calls `name`; nullopt for one this library does not support.
MODELREG_API std::optional<XGBoostObjective> parse_xgboost_objective(std::string_view name) noexcept;
// The names of the supported objectives, comma-separated (for messages).
MODELREG_API std::string supported_xgboost_objectives();

// The trees of an XGBoost model in compact form, as XGBoostModel stores them.
//
// Each tree is breadth-first with the children of a node next to each other: node 0 is the root
// and the children of the k-th internal node (counting internal nodes from 0 in that order) are
// nodes 2k+1 (left) and 2k+2 (right). So the layout itself says where every child is, and a tree
// of n nodes has (n - 1) / 2 internal nodes.
struct MODELREG_API XGBoostTrees {
  static constexpr std::uint32_t kLeaf = 0xFFFF'FFFFu;         // splits[i] of a leaf
  static constexpr std::uint32_t kDefaultLeft = 0x8000'0000u;  // missing values go left
  static constexpr std::uint32_t kFeatureMask = 0x7FFF'FFFFu;

  XGBoostObjective objective = XGBoostObjective::binary_logistic;
  std::size_t n_features = 0;          // learner_model_param.num_feature
  std::size_t n_groups = 1;            // outputs summed separately: num_class for multi:*, else 1
  float base_score = 0.5f;             // as the file stores it (probability or value space)
  std::size_t num_parallel_tree = 1;   // informational: trees per group per boosting round
  std::vector<std::uint32_t> tree_sizes;   // nodes of each tree (odd, >= 1)
  std::vector<std::uint32_t> tree_groups;  // the output group each tree adds to (< n_groups)
  std::vector<std::uint32_t> splits;  // every node of every tree: kLeaf, or the feature index (with
                                      // kDefaultLeft set when missing values go left)
  std::vector<float> values;          // internal: split condition; leaf: the leaf value

  friend bool operator==(const XGBoostTrees&, const XGBoostTrees&) = default;
};

class MODELREG_API XGBoostModel final : public Model {
 public:
  // An empty model (n_features() == 0); the target of deserialization.
  XGBoostModel() = default;

  // Checks `trees` and builds the model: Error(validation_failed) naming the first problem —
  // sizes that disagree, a tree that does not follow the layout, a feature index >= n_features, a
  // group >= n_groups, a non-finite value, a base_score the objective cannot take (outside (0, 1)
  // for binary:logistic and reg:logistic, <= 0 for poisson/gamma/tweedie), n_groups other than 1 for a
  // non-multi objective or below 2 for a multi one, no trees, more than 2^31 - 2 features.
  explicit XGBoostModel(XGBoostTrees trees);

  static constexpr char kTypeName[] = "xgboost_gbtree";
  std::string type_name() const override { return kTypeName; }
  std::size_t n_features() const override { return trees_.n_features; }
  // objective, num_class (0 unless multi:*), base_score, num_trees, num_parallel_tree.
  std::map<std::string, std::string> hyperparameters() const override;
  Task task() const override;
  // Integers 0 .. num_class-1 for multiclass; {0, 1} for binary; none for regression.
  ClassLabels classes() const override;
  bool handles_missing() const override { return true; }

  const XGBoostTrees& trees() const noexcept { return trees_; }
  XGBoostObjective objective() const noexcept { return trees_.objective; }
  std::size_t tree_count() const noexcept { return trees_.tree_sizes.size(); }
  std::size_t node_count() const noexcept { return trees_.splits.size(); }
  // base_score in margin space, as XGBoost adds it to every group's margin.
  float base_margin() const noexcept { return base_margin_; }

  // predict_outputs on `threads` threads (0: one per core; batches of fewer than 2,048 rows
  // always use one). predict_outputs itself uses one per core for large batches.
  void predict_outputs_on(MatrixView x, std::span<double> out, unsigned threads) const;
  // XGBoost's margins (output_margin=True): rows × n_groups float32 values. Same checks as
  // predict_outputs.
  std::vector<float> predict_margins(MatrixView x, unsigned threads = 1) const;

  template <class Archive>
  void serialize(Archive& archive, unsigned version);

 protected:
  void compute(MatrixView x, std::span<double> out) const override;

 public:
  // A node as prediction walks it (an implementation detail, public only for the prediction
  // kernel): children at left and left + 1 within the tree; a leaf is its own left child, testing
  // a column that is always missing.
  struct NodeView {
    std::uint32_t left;
    std::uint32_t split;
    float value;
  };

 private:
  void build();
  void margins(MatrixView x, std::span<float> out, unsigned threads) const;

  XGBoostTrees trees_;
  float base_margin_ = 0;
  std::vector<NodeView> nodes_;            // all trees, concatenated
  std::vector<std::uint32_t> tree_begin_;  // index of each tree's root in nodes_
  std::vector<std::uint32_t> tree_depth_;  // edges on each tree's longest path
};

// What read_xgboost_model found in a file.
struct MODELREG_API XGBoostFile {
  XGBoostModel model;
  std::string format;                      // "json" or "ubjson"
  std::array<int, 3> version{};            // XGBoost's version that wrote it: major, minor, patch
  std::string objective;                   // as the file names it
  std::vector<std::string> feature_names;  // empty when the file has none
  std::vector<std::string> feature_types;  // empty when the file has none ("q", "float", "int", "i")
};

// The largest file read_xgboost_model reads: 256 MiB.
inline constexpr std::size_t kMaxXGBoostModelBytes = std::size_t{256} << 20;

// Parses an XGBoost model file (the whole file in `bytes`): JSON if the first byte after any
// whitespace is '{' followed by whitespace, '"' or '}', UBJSON if '{' is followed by a UBJSON
// marker. The work is bounded by the size: at most one value per byte, nesting at most 64 deep,
// at most kMaxXGBoostModelBytes. Throws Error(validation_failed) for a file that is not a valid
// XGBoost model (truncated, garbage, missing or mistyped fields, arrays of one tree whose lengths
// disagree, a child index out of range, a node reached twice — a cycle —, a feature index out of
// range, a non-finite number), naming what and where (tree and node); Error(invalid_argument) for
// a valid model this library does not support (see the top of this file), naming it and saying
// what is supported.
MODELREG_API XGBoostFile read_xgboost_model(std::string_view bytes);

}  // namespace modelreg
