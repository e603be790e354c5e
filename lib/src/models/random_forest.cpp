#include "modelreg/random_forest.hpp"

#include <algorithm>
#include <memory>
#include <vector>

#include "modelreg/labeled_data.hpp"
#include "models/hyperparameter_fields.hpp"
#include "models/model_io.hpp"
#include "core/parallel.hpp"
#include "models/task_io.hpp"
#include "models/training_input.hpp"
#include "models/tree_builder.hpp"

// Version 2 adds the task, the classes and the multiclass leaf tables; version 1 archives load
// as binary models with classes {0, 1}.
BOOST_CLASS_VERSION(modelreg::RandomForest, 2)
BOOST_CLASS_EXPORT_KEY2(modelreg::RandomForest, modelreg::RandomForest::kTypeName)

namespace modelreg {

namespace {

constexpr std::string_view kType = RandomForest::kTypeName;

void check_params(const RandomForestParams& p) { detail::check_hyperparameters(kType, p); }

// Rows per prediction task: the trees are walked block by block so each tree's nodes stay in
// cache while it scores a block.
constexpr std::size_t kBlockRows = 256;
// Below this many (rows × trees) a batch is scored on the calling thread: starting threads
// would cost more than it saves.
constexpr std::size_t kParallelWork = 1u << 16;

}  // namespace

// The rows' targets of one forest: binary 0/1 or regression values (as doubles), or class indexes.
struct RandomForest::ForestTargets {
  std::span<const double> target;
  std::span<const int> label;
  std::size_t n_classes = 0;  // > 0: multiclass (label is used)
};

void RandomForest::grow_forest(MatrixView x, const ForestTargets& targets) {
  const Params& params = params_;
  const std::size_t n = x.rows();
  const unsigned threads = detail::thread_count(params.threads, params.n_estimators);
  const detail::SortedColumns columns(x, threads);
  const detail::GrowLimits limits{params.max_depth, params.min_samples_split, params.min_samples_leaf,
                                  params.max_features.resolve(x.cols()), 1.0};

  struct Workspace {
    explicit Workspace(const detail::SortedColumns& c) : builder(c), weight(c.rows()) {}
    detail::TreeBuilder builder;
    std::vector<double> weight;
  };
  std::vector<std::unique_ptr<Workspace>> workspaces(threads);
  n_features_ = x.cols();
  trees_.resize(params.n_estimators);
  if (targets.n_classes > 0) leaf_proba_.resize(params.n_estimators);
  detail::parallel_for(params.n_estimators, threads, [&](std::size_t t, unsigned worker) {
    auto& ws = workspaces[worker];
    if (!ws) ws = std::make_unique<Workspace>(columns);
    // Tree t's randomness comes from stream t of the seed alone: the same tree whichever thread
    // grows it, and in whatever order.
    detail::Rng rng(params.seed, t);
    if (params.bootstrap) {
      std::fill(ws->weight.begin(), ws->weight.end(), 0.0);
      for (std::size_t i = 0; i < n; ++i) ws->weight[rng.below(n)] += 1.0;
    } else {
      std::fill(ws->weight.begin(), ws->weight.end(), 1.0);
    }
    if (targets.n_classes > 0) {
      trees_[t] = ws->builder.grow_classifier({ws->weight, targets.label, targets.n_classes}, limits, rng, leaf_proba_[t]);
    } else {
      trees_[t] = ws->builder.grow({ws->weight, targets.target, {}}, limits, rng);
    }
  });
}

RandomForest RandomForest::train(MatrixView x, std::span<const int> y, const Params& params) {
  check_params(params);
  detail::check_training_input(kType, x, y, false);
  const std::vector<double> target(y.begin(), y.end());
  RandomForest model;
  model.params_ = params;
  model.grow_forest(x, {target, {}, 0});
  return model;
}

RandomForest RandomForest::train(const LabeledData& data, const Params& params) {
  data.check();
  if (data.task == Task::binary) {
    RandomForest model = train(data.x, data.y, params);
    model.classes_ = data.classes;
    return model;
  }
  check_params(params);
  RandomForest model;
  model.params_ = params;
  model.task_ = data.task;
  model.classes_ = data.classes;
  if (data.task == Task::multiclass) {
    detail::check_class_targets(kType, data.x, data.y, data.n_classes());
    model.grow_forest(data.x, {{}, data.y, data.n_classes()});
  } else {
    detail::check_value_targets(kType, data.x, data.values);
    model.grow_forest(data.x, {data.values, {}, 0});
  }
  return model;
}

std::map<std::string, std::string> RandomForest::hyperparameters() const { return detail::hyperparameter_texts(params_); }

std::size_t RandomForest::node_count() const noexcept {
  std::size_t nodes = 0;
  for (const auto& tree : trees_) nodes += tree.node_count();
  return nodes;
}

void RandomForest::compute(MatrixView x, std::span<double> out) const {
  const std::size_t blocks = (x.rows() + kBlockRows - 1) / kBlockRows;
  const unsigned threads =
      x.rows() * trees_.size() < kParallelWork ? 1u : detail::thread_count(params_.threads, blocks);
  const auto n_trees = static_cast<double>(trees_.size());
  if (task_ == Task::multiclass) {
    const std::size_t k = classes_.size();
    std::fill(out.begin(), out.end(), 0.0);
    detail::parallel_for(blocks, threads, [&](std::size_t block, unsigned) {
      const std::size_t first = block * kBlockRows;
      const std::size_t last = std::min(first + kBlockRows, x.rows());
      // Each row's sums are taken in tree order, so the result does not depend on the blocking.
      for (std::size_t t = 0; t < trees_.size(); ++t) {
        for (std::size_t r = first; r < last; ++r) {
          detail::add_distribution(leaf_proba_[t], k, trees_[t].predict(x.row(r).data()), out.data() + r * k);
        }
      }
      for (std::size_t r = first; r < last; ++r) detail::normalize(out.data() + r * k, k);
    });
    return;
  }
  detail::parallel_for(blocks, threads, [&](std::size_t block, unsigned) {
    const std::size_t first = block * kBlockRows;
    const std::size_t last = std::min(first + kBlockRows, x.rows());
    double sum[kBlockRows] = {};
    // Each row's sum is taken in tree order, so the result does not depend on the blocking.
    for (const auto& tree : trees_) {
      for (std::size_t r = first; r < last; ++r) sum[r - first] += tree.predict(x.row(r).data());
    }
    for (std::size_t r = first; r < last; ++r) out[r] = sum[r - first] / n_trees;
  });
}

// Version 1: params (without threads), n_features, the trees. Version 2 adds the task, the
// classes and (multiclass) each tree's leaf probability table.
template <class Archive>
void RandomForest::serialize(Archive& archive, unsigned version) {
  check_class_version<RandomForest>(version, kType);
  archive & boost::serialization::base_object<Model>(*this);
  detail::serialize_size(archive, params_.n_estimators);
  detail::serialize_depth(archive, params_.max_depth);
  detail::serialize_size(archive, params_.min_samples_split);
  detail::serialize_size(archive, params_.min_samples_leaf);
  detail::serialize_feature_subset(archive, params_.max_features);
  detail::serialize_flag(archive, params_.bootstrap);
  archive & params_.seed;
  detail::serialize_size(archive, n_features_);
  if constexpr (Archive::is_loading::value) detail::check_feature_count(kType, n_features_);
  detail::serialize_trees(archive, trees_, n_features_, kType);
  if (version >= 2) {
    detail::serialize_task(archive, task_, classes_, kType);
    if (task_ == Task::multiclass) {
      if constexpr (Archive::is_loading::value) leaf_proba_.assign(trees_.size(), {});
      for (auto& table : leaf_proba_) serialize_vector(archive, table);
    }
  }
  if constexpr (Archive::is_loading::value) {
    if (trees_.size() != params_.n_estimators) {
      detail::corrupt(kType, fmt::format("{} trees, n_estimators says {}", trees_.size(), params_.n_estimators));
    }
    for (std::size_t t = 0; t < trees_.size(); ++t) {
      if (task_ == Task::binary) detail::check_probability_leaves(trees_[t], kType);
      if (task_ == Task::multiclass) detail::check_class_leaves(trees_[t], leaf_proba_[t], classes_.size(), kType);
    }
  }
}

}  // namespace modelreg

BOOST_CLASS_EXPORT_IMPLEMENT(modelreg::RandomForest)
