#include "modelreg/random_forest.hpp"

#include <algorithm>
#include <memory>
#include <vector>

#include "modelreg/labeled_data.hpp"
#include "models/hyperparameter_fields.hpp"
#include "models/model_io.hpp"
#include "core/parallel.hpp"
#include "models/training_input.hpp"
#include "models/tree_builder.hpp"

BOOST_CLASS_VERSION(modelreg::RandomForest, 1)
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

RandomForest RandomForest::train(MatrixView x, std::span<const int> y, const Params& params) {
  check_params(params);
  detail::check_training_input(kType, x, y, false);
  const std::size_t n = x.rows();
  const unsigned threads = detail::thread_count(params.threads, params.n_estimators);
  const detail::SortedColumns columns(x, threads);
  const std::vector<double> target(y.begin(), y.end());
  const detail::GrowLimits limits{params.max_depth, params.min_samples_split, params.min_samples_leaf,
                                  params.max_features.resolve(x.cols()), 1.0};

  struct Workspace {
    explicit Workspace(const detail::SortedColumns& c) : builder(c), weight(c.rows()) {}
    detail::TreeBuilder builder;
    std::vector<double> weight;
  };
  std::vector<std::unique_ptr<Workspace>> workspaces(threads);
  RandomForest model;
  model.params_ = params;
  model.n_features_ = x.cols();
  model.trees_.resize(params.n_estimators);
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
    model.trees_[t] = ws->builder.grow({ws->weight, target, {}}, limits, rng);
  });
  return model;
}

RandomForest RandomForest::train(const LabeledData& data, const Params& params) {
  return train(data.x, data.y, params);
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

// Version 1: params (without threads), n_features, the trees.
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
  if constexpr (Archive::is_loading::value) {
    if (trees_.size() != params_.n_estimators) {
      detail::corrupt(kType, fmt::format("{} trees, n_estimators says {}", trees_.size(), params_.n_estimators));
    }
    for (const auto& tree : trees_) detail::check_probability_leaves(tree, kType);
  }
}

}  // namespace modelreg

BOOST_CLASS_EXPORT_IMPLEMENT(modelreg::RandomForest)
