// XGBoostModel: XGBoost's gbtree prediction, reproduced in float32 step for step (see xgboost.hpp),
// over flat node arrays in blocks of rows.
#include "modelreg/xgboost.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include <fmt/format.h>

#include "core/parallel.hpp"
#include "modelreg/error.hpp"
#include "models/model_io.hpp"

BOOST_CLASS_VERSION(modelreg::XGBoostModel, 1)
BOOST_CLASS_EXPORT_KEY2(modelreg::XGBoostModel, modelreg::XGBoostModel::kTypeName)

namespace modelreg {

namespace {

constexpr std::string_view kType = XGBoostModel::kTypeName;

struct ObjectiveName {
  XGBoostObjective objective;
  std::string_view name;
};

constexpr ObjectiveName kObjectives[] = {
    {XGBoostObjective::binary_logistic, "binary:logistic"},
    {XGBoostObjective::binary_logitraw, "binary:logitraw"},
    {XGBoostObjective::multi_softprob, "multi:softprob"},
    {XGBoostObjective::multi_softmax, "multi:softmax"},
    {XGBoostObjective::reg_squarederror, "reg:squarederror"},
    {XGBoostObjective::reg_logistic, "reg:logistic"},
    {XGBoostObjective::reg_absoluteerror, "reg:absoluteerror"},
    {XGBoostObjective::reg_squaredlogerror, "reg:squaredlogerror"},
    {XGBoostObjective::reg_pseudohubererror, "reg:pseudohubererror"},
    {XGBoostObjective::count_poisson, "count:poisson"},
    {XGBoostObjective::reg_gamma, "reg:gamma"},
    {XGBoostObjective::reg_tweedie, "reg:tweedie"},
};

// How XGBoost turns margins into outputs, and base_score into a margin (ObjFunction::ProbToMargin).
enum class Transform { sigmoid, softmax, identity, exp };

Transform transform_of(XGBoostObjective o) noexcept {
  switch (o) {
    case XGBoostObjective::binary_logistic:
    case XGBoostObjective::binary_logitraw:  // see xgboost.hpp: a probability, the margin's sigmoid
    case XGBoostObjective::reg_logistic: return Transform::sigmoid;
    case XGBoostObjective::multi_softprob:
    case XGBoostObjective::multi_softmax: return Transform::softmax;
    case XGBoostObjective::count_poisson:
    case XGBoostObjective::reg_gamma:
    case XGBoostObjective::reg_tweedie: return Transform::exp;
    default: return Transform::identity;
  }
}

// 1.0f / (1.0f + expf(-x)), as XGBoost's common::Sigmoid, in float32.
float sigmoid(float x) noexcept { return 1.0f / (1.0f + std::exp(-x)); }

// XGBoost's common::Softmax: float exponentials after subtracting the max, summed in double,
// divided by the sum rounded to float.
void softmax(float* v, std::size_t k) noexcept {
  float max = v[0];
  for (std::size_t i = 1; i < k; ++i) max = std::fmax(v[i], max);
  double sum = 0;
  for (std::size_t i = 0; i < k; ++i) {
    v[i] = std::exp(v[i] - max);
    sum += v[i];
  }
  const auto total = static_cast<float>(sum);
  for (std::size_t i = 0; i < k; ++i) v[i] /= total;
}

bool is_multi(XGBoostObjective o) noexcept { return transform_of(o) == Transform::softmax; }

[[noreturn]] void invalid(const std::string& what) {
  throw Error(Errc::validation_failed, fmt::format("XGBoost model: {}", what));
}

// base_score in margin space, as XGBoost's ProbToMargin computes it in float32. Empty when the
// objective cannot take this base_score. (binary:logitraw adds base_score to the margin as it is:
// its ProbToMargin is the identity, though its outputs go through the sigmoid here.)
std::optional<float> base_margin_of(XGBoostObjective o, float base_score) noexcept {
  if (!std::isfinite(base_score)) return std::nullopt;
  if (o == XGBoostObjective::binary_logitraw) return base_score;
  switch (transform_of(o)) {
    case Transform::sigmoid:
      if (!(base_score > 0.0f && base_score < 1.0f)) return std::nullopt;
      return -std::log(1.0f / base_score - 1.0f);
    case Transform::exp:
      if (!(base_score > 0.0f)) return std::nullopt;
      return std::log(base_score);
    default: return base_score;
  }
}

// Rows per block: each block's rows are converted to float once and walked through every tree.
constexpr std::size_t kBlockRows = 64;
// Rows per parallel task (a run of blocks).
constexpr std::size_t kTaskRows = 1024;
// Below this, threads cost more than they save.
constexpr std::size_t kParallelRows = 2048;

// Set by predict_outputs_on for the compute() call below it on the same thread: the one way to
// pass a thread count through Model::predict_outputs without repeating its input checks.
thread_local unsigned requested_threads = 0;
thread_local bool threads_requested = false;

}  // namespace

std::string_view to_string(XGBoostObjective objective) noexcept {
  for (const auto& o : kObjectives) {
    if (o.objective == objective) return o.name;
  }
  return "unknown";
}

std::optional<XGBoostObjective> parse_xgboost_objective(std::string_view name) noexcept {
  for (const auto& o : kObjectives) {
    if (o.name == name) return o.objective;
  }
  return std::nullopt;
}

std::string supported_xgboost_objectives() {
  std::string out;
  for (const auto& o : kObjectives) {
    if (!out.empty()) out += ", ";
    out += o.name;
  }
  return out;
}

XGBoostModel::XGBoostModel(XGBoostTrees trees) : trees_(std::move(trees)) { build(); }

// The one check of a model's trees, for models read from XGBoost files and from archives alike.
void XGBoostModel::build() {
  const XGBoostTrees& t = trees_;
  if (!parse_xgboost_objective(to_string(t.objective))) {
    invalid(fmt::format("objective code {}", static_cast<int>(t.objective)));
  }
  if (t.n_features == 0 || t.n_features >= static_cast<std::size_t>(XGBoostTrees::kFeatureMask)) {
    invalid(fmt::format("{} features (1 to {} are possible)", t.n_features, XGBoostTrees::kFeatureMask - 1));
  }
  if (is_multi(t.objective) ? !(t.n_groups >= 2 && t.n_groups <= 65'536) : t.n_groups != 1) {
    invalid(fmt::format("{} output groups for objective {}", t.n_groups, to_string(t.objective)));
  }
  const auto margin = base_margin_of(t.objective, t.base_score);
  if (!margin || !std::isfinite(*margin)) {
    invalid(fmt::format("base_score {} is not possible for objective {}", t.base_score, to_string(t.objective)));
  }
  if (t.tree_sizes.empty()) invalid("the model has no trees");
  if (t.tree_groups.size() != t.tree_sizes.size()) {
    invalid(fmt::format("{} trees but {} tree groups", t.tree_sizes.size(), t.tree_groups.size()));
  }
  if (t.splits.size() != t.values.size()) {
    invalid(fmt::format("{} split entries but {} values", t.splits.size(), t.values.size()));
  }
  if (t.splits.size() > std::numeric_limits<std::uint32_t>::max()) invalid("more than 2^32 nodes");
  std::uint64_t total = 0;
  for (std::uint32_t size : t.tree_sizes) total += size;
  if (total != t.splits.size()) invalid(fmt::format("the trees have {} nodes in all but {} are stored", total, t.splits.size()));

  std::vector<NodeView> nodes(t.splits.size());
  std::vector<std::uint32_t> begin(t.tree_sizes.size()), depths(t.tree_sizes.size()), depth;
  std::size_t base = 0;
  for (std::size_t tree = 0; tree < t.tree_sizes.size(); ++tree) {
    const std::uint32_t size = t.tree_sizes[tree];
    if (t.tree_groups[tree] >= t.n_groups) {
      invalid(fmt::format("tree {} adds to output group {} of {}", tree, t.tree_groups[tree], t.n_groups));
    }
    // The k-th internal node's children are 2k+1 and 2k+2: a complete description of the shape,
    // so the last internal node's right child must be the last node.
    std::uint32_t internal = 0, max_depth = 0;
    depth.assign(size, 0);
    for (std::uint32_t i = 0; i < size; ++i) {
      const std::uint32_t split = t.splits[base + i];
      const float value = t.values[base + i];
      if (!std::isfinite(value)) invalid(fmt::format("tree {} node {} holds a non-finite value", tree, i));
      NodeView& n = nodes[base + i];
      n.value = value;
      if (split == XGBoostTrees::kLeaf) {
        // A leaf is its own child through the always-missing column n_features (see margins).
        n.left = i;
        n.split = static_cast<std::uint32_t>(t.n_features) | XGBoostTrees::kDefaultLeft;
        continue;
      }
      n.split = split;
      if ((split & XGBoostTrees::kFeatureMask) >= t.n_features) {
        invalid(fmt::format("tree {} node {} tests feature {}, but the model has {} features", tree, i,
                            split & XGBoostTrees::kFeatureMask, t.n_features));
      }
      const std::uint64_t left = 2 * std::uint64_t{internal} + 1;
      if (left + 1 >= size) {
        invalid(fmt::format("tree {} of {} nodes: node {} would have children {} and {}", tree, size, i, left, left + 1));
      }
      n.left = static_cast<std::uint32_t>(left);
      depth[left] = depth[left + 1] = depth[i] + 1;
      max_depth = std::max(max_depth, depth[i] + 1);
      ++internal;
    }
    if (size != 2 * std::uint64_t{internal} + 1) {
      invalid(fmt::format("tree {} has {} nodes, {} of them internal: not a binary tree", tree, size, internal));
    }
    begin[tree] = static_cast<std::uint32_t>(base);
    depths[tree] = max_depth;
    base += size;
  }
  base_margin_ = *margin;
  nodes_ = std::move(nodes);
  tree_begin_ = std::move(begin);
  tree_depth_ = std::move(depths);
}

std::map<std::string, std::string> XGBoostModel::hyperparameters() const {
  return {
      {"objective", std::string(to_string(trees_.objective))},
      {"num_class", std::to_string(is_multi(trees_.objective) ? trees_.n_groups : 0)},
      {"base_score", fmt::format("{}", trees_.base_score)},
      {"num_trees", std::to_string(tree_count())},
      {"num_parallel_tree", std::to_string(trees_.num_parallel_tree)},
  };
}

Task XGBoostModel::task() const {
  switch (trees_.objective) {
    case XGBoostObjective::binary_logistic:
    case XGBoostObjective::binary_logitraw: return Task::binary;
    case XGBoostObjective::multi_softprob:
    case XGBoostObjective::multi_softmax: return trees_.n_groups == 2 ? Task::binary : Task::multiclass;
    default: return Task::regression;
  }
}

ClassLabels XGBoostModel::classes() const {
  switch (task()) {
    case Task::binary: return ClassLabels::zero_one();
    case Task::multiclass: {
      std::vector<std::int64_t> labels(trees_.n_groups);
      for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<std::int64_t>(i);
      return ClassLabels::integers(std::move(labels));
    }
    case Task::regression: break;
  }
  return {};
}

namespace {

// Walks `lanes` rows (features `stride` floats apart, each row with the always-missing column at
// the end) through one tree for exactly `depth` steps, adding each leaf to its row's margin. The
// rows advance in lockstep, so their independent chains of loads overlap; a row that reached its
// leaf stays there (a leaf is its own child).
template <std::size_t Lanes>
void walk(const XGBoostModel::NodeView* root, std::uint32_t depth, const float* rows, std::size_t stride,
          float* margins, std::size_t margin_stride) noexcept {
  std::uint32_t at[Lanes] = {};
  for (std::uint32_t step = 0; step < depth; ++step) {
    for (std::size_t k = 0; k < Lanes; ++k) {
      const auto& node = root[at[k]];
      const float v = rows[k * stride + (node.split & XGBoostTrees::kFeatureMask)];
      const bool right = std::isnan(v) ? (node.split & XGBoostTrees::kDefaultLeft) == 0 : !(v < node.value);
      at[k] = node.left + static_cast<std::uint32_t>(right);
    }
  }
  for (std::size_t k = 0; k < Lanes; ++k) margins[k * margin_stride] += root[at[k]].value;
}

constexpr std::size_t kLanes = 8;

}  // namespace

void XGBoostModel::margins(MatrixView x, std::span<float> out, unsigned threads) const {
  const std::size_t rows = x.rows(), cols = x.cols(), groups = trees_.n_groups;
  const std::size_t stride = cols + 1;  // the last column is always missing: leaves' own column
  const std::size_t tasks = (rows + kTaskRows - 1) / kTaskRows;
  const unsigned workers = rows < kParallelRows ? 1u : detail::thread_count(threads, tasks);
  const NodeView* nodes = nodes_.data();
  detail::parallel_for(tasks, workers, [&](std::size_t task, unsigned) {
    std::vector<float> features(kBlockRows * stride, std::numeric_limits<float>::quiet_NaN());
    const std::size_t task_end = std::min(rows, (task + 1) * kTaskRows);
    for (std::size_t first = task * kTaskRows; first < task_end; first += kBlockRows) {
      const std::size_t n = std::min(kBlockRows, task_end - first);
      // XGBoost holds features as float32: convert once per block.
      for (std::size_t r = 0; r < n; ++r) {
        const double* source = x.data() + (first + r) * cols;
        float* target = features.data() + r * stride;
        for (std::size_t c = 0; c < cols; ++c) target[c] = static_cast<float>(source[c]);
      }
      float* margin = out.data() + first * groups;
      std::fill(margin, margin + n * groups, base_margin_);
      for (std::size_t tree = 0; tree < tree_begin_.size(); ++tree) {
        const NodeView* root = nodes + tree_begin_[tree];
        const std::uint32_t depth = tree_depth_[tree];
        float* m = margin + trees_.tree_groups[tree];
        std::size_t r = 0;
        for (; r + kLanes <= n; r += kLanes) {
          walk<kLanes>(root, depth, features.data() + r * stride, stride, m + r * groups, groups);
        }
        for (; r < n; ++r) walk<1>(root, depth, features.data() + r * stride, stride, m + r * groups, groups);
      }
    }
  });
}

void XGBoostModel::compute(MatrixView x, std::span<double> out) const {
  const std::size_t rows = x.rows(), groups = trees_.n_groups;
  std::vector<float> m(rows * groups);
  margins(x, m, threads_requested ? requested_threads : 0);
  const Transform transform = transform_of(trees_.objective);
  for (std::size_t r = 0; r < rows; ++r) {
    float* v = m.data() + r * groups;
    switch (transform) {
      case Transform::sigmoid: out[r] = sigmoid(v[0]); break;
      case Transform::exp: out[r] = std::exp(v[0]); break;
      case Transform::identity: out[r] = v[0]; break;
      case Transform::softmax:
        softmax(v, groups);
        if (groups == 2) {
          out[r] = v[1];  // binary: P(class 1)
        } else {
          std::copy(v, v + groups, out.data() + r * groups);
        }
        break;
    }
  }
}

void XGBoostModel::predict_outputs_on(MatrixView x, std::span<double> out, unsigned threads) const {
  struct Scope {
    explicit Scope(unsigned n) {
      requested_threads = n;
      threads_requested = true;
    }
    ~Scope() { threads_requested = false; }
  } scope(threads);
  predict_outputs(x, out);
}

std::vector<float> XGBoostModel::predict_margins(MatrixView x, unsigned threads) const {
  if (n_features() == 0) throw Error(Errc::invalid_argument, fmt::format("the {} model is not trained", kType));
  if (x.cols() != n_features()) {
    throw Error(Errc::invalid_argument, fmt::format("the {} model expects {} features per row, the batch has {} columns",
                                                    kType, n_features(), x.cols()));
  }
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (std::isinf(x.data()[i])) {
      throw Error(Errc::invalid_argument, fmt::format("row {} column {} is {}; features must be finite numbers",
                                                      i / x.cols(), i % x.cols(), x.data()[i]));
    }
  }
  std::vector<float> out(x.rows() * trees_.n_groups);
  if (x.rows() > 0) margins(x, out, threads);
  return out;
}

// Version 1 (docs/model_format.md): n_features, objective, n_groups, base_score,
// num_parallel_tree, tree sizes, tree groups, splits, values. Loading checks everything through
// the same build() as an import.
template <class Archive>
void XGBoostModel::serialize(Archive& archive, unsigned version) {
  check_class_version<XGBoostModel>(version, kType);
  archive & boost::serialization::base_object<Model>(*this);
  detail::serialize_size(archive, trees_.n_features);
  auto objective = static_cast<std::uint8_t>(trees_.objective);
  archive & objective;
  detail::serialize_size(archive, trees_.n_groups);
  archive & trees_.base_score;
  detail::serialize_size(archive, trees_.num_parallel_tree);
  serialize_vector(archive, trees_.tree_sizes);
  serialize_vector(archive, trees_.tree_groups);
  serialize_vector(archive, trees_.splits);
  serialize_vector(archive, trees_.values);
  if constexpr (Archive::is_loading::value) {
    trees_.objective = static_cast<XGBoostObjective>(objective);
    try {
      build();
    } catch (const Error& e) {
      detail::corrupt(kType, e.what());
    }
  }
}

}  // namespace modelreg

BOOST_CLASS_EXPORT_IMPLEMENT(modelreg::XGBoostModel)
