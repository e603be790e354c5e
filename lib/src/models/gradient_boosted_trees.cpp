#include "modelreg/gradient_boosted_trees.hpp"

#include <cmath>
#include <numeric>
#include <vector>

#include "modelreg/labeled_data.hpp"
#include "models/hyperparameter_fields.hpp"
#include "models/model_io.hpp"
#include "models/training_input.hpp"
#include "models/tree_builder.hpp"

BOOST_CLASS_VERSION(modelreg::GradientBoostedTrees, 1)
BOOST_CLASS_EXPORT_KEY2(modelreg::GradientBoostedTrees, modelreg::GradientBoostedTrees::kTypeName)

namespace modelreg {

namespace {

constexpr std::string_view kType = GradientBoostedTrees::kTypeName;

void check_params(const GradientBoostedTreesParams& p) { detail::check_hyperparameters(kType, p); }

double sigmoid(double z) noexcept {
  if (z >= 0) return 1.0 / (1.0 + std::exp(-z));
  const double e = std::exp(z);
  return e / (1.0 + e);
}

}  // namespace

GradientBoostedTrees GradientBoostedTrees::train(MatrixView x, std::span<const int> y, const Params& params) {
  check_params(params);
  detail::check_training_input(kType, x, y, true);
  const std::size_t n = x.rows();
  const detail::SortedColumns columns(x, 0);
  detail::TreeBuilder builder(columns);
  const detail::GrowLimits limits{params.max_depth, params.min_samples_split, params.min_samples_leaf,
                                  params.max_features.resolve(x.cols()), params.learning_rate};
  detail::Rng rng(params.seed);

  GradientBoostedTrees model;
  model.params_ = params;
  model.n_features_ = x.cols();
  const double positives = static_cast<double>(std::accumulate(y.begin(), y.end(), std::size_t{0}));
  const double p0 = positives / static_cast<double>(n);
  model.init_ = std::log(p0 / (1 - p0));

  std::vector<double> score(n, model.init_), residual(n), hessian(n), weight(n, 1.0);
  const auto in_sample = std::max<std::size_t>(1, static_cast<std::size_t>(params.subsample * static_cast<double>(n)));
  std::vector<std::size_t> order(n);
  model.trees_.reserve(params.n_estimators);
  for (std::size_t round = 0; round < params.n_estimators; ++round) {
    for (std::size_t r = 0; r < n; ++r) {
      const double p = sigmoid(score[r]);
      residual[r] = y[r] - p;
      hessian[r] = p * (1 - p);
    }
    if (in_sample < n) {
      // A uniform random subset of in_sample rows: the head of a partial Fisher–Yates shuffle.
      std::iota(order.begin(), order.end(), std::size_t{0});
      std::fill(weight.begin(), weight.end(), 0.0);
      for (std::size_t i = 0; i < in_sample; ++i) {
        std::swap(order[i], order[i + static_cast<std::size_t>(rng.below(n - i))]);
        weight[order[i]] = 1.0;
      }
    }
    Tree tree = builder.grow({weight, residual, hessian}, limits, rng);
    // The scores move by exactly the float leaf values the model keeps, so training sees the
    // same numbers prediction will.
    for (std::size_t r = 0; r < n; ++r) score[r] += tree.predict(x.row(r).data());
    model.trees_.push_back(std::move(tree));
  }
  return model;
}

GradientBoostedTrees GradientBoostedTrees::train(const LabeledData& data, const Params& params) {
  return train(data.x, data.y, params);
}

std::map<std::string, std::string> GradientBoostedTrees::hyperparameters() const { return detail::hyperparameter_texts(params_); }

std::size_t GradientBoostedTrees::node_count() const noexcept {
  std::size_t nodes = 0;
  for (const auto& tree : trees_) nodes += tree.node_count();
  return nodes;
}

void GradientBoostedTrees::compute(MatrixView x, std::span<double> out) const {
  for (std::size_t r = 0; r < x.rows(); ++r) {
    double score = init_;
    for (const auto& tree : trees_) score += tree.predict(x.row(r).data());
    out[r] = sigmoid(score);
  }
}

// Version 1: params, n_features, initial log-odds, the trees.
template <class Archive>
void GradientBoostedTrees::serialize(Archive& archive, unsigned version) {
  check_class_version<GradientBoostedTrees>(version, kType);
  archive & boost::serialization::base_object<Model>(*this);
  detail::serialize_size(archive, params_.n_estimators);
  archive & params_.learning_rate;
  detail::serialize_depth(archive, params_.max_depth);
  detail::serialize_size(archive, params_.min_samples_split);
  detail::serialize_size(archive, params_.min_samples_leaf);
  archive & params_.subsample;
  detail::serialize_feature_subset(archive, params_.max_features);
  archive & params_.seed;
  detail::serialize_size(archive, n_features_);
  archive & init_;
  if constexpr (Archive::is_loading::value) {
    detail::check_feature_count(kType, n_features_);
    if (!std::isfinite(init_)) detail::corrupt(kType, "the initial log-odds is not finite");
  }
  detail::serialize_trees(archive, trees_, n_features_, kType);
  if constexpr (Archive::is_loading::value) {
    if (trees_.size() != params_.n_estimators) {
      detail::corrupt(kType, fmt::format("{} trees, n_estimators says {}", trees_.size(), params_.n_estimators));
    }
  }
}

}  // namespace modelreg

BOOST_CLASS_EXPORT_IMPLEMENT(modelreg::GradientBoostedTrees)
