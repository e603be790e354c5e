#include "modelreg/gradient_boosted_trees.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "modelreg/labeled_data.hpp"
#include "models/hyperparameter_fields.hpp"
#include "models/model_io.hpp"
#include "models/task_io.hpp"
#include "models/training_input.hpp"
#include "models/tree_builder.hpp"

// Version 2 adds the task, the classes and the multiclass initial scores; version 1 archives load
// as binary models with classes {0, 1}.
BOOST_CLASS_VERSION(modelreg::GradientBoostedTrees, 2)
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

// In place: k raw scores to probabilities.
void softmax(double* z, std::size_t k) noexcept {
  const double top = *std::max_element(z, z + k);
  double sum = 0;
  for (std::size_t c = 0; c < k; ++c) sum += (z[c] = std::exp(z[c] - top));
  for (std::size_t c = 0; c < k; ++c) z[c] /= sum;
}

// The rows of a round: all, or a uniform random subset of in_sample rows (the head of a partial
// Fisher–Yates shuffle).
void draw_rows(std::vector<double>& weight, std::vector<std::size_t>& order, std::size_t in_sample, detail::Rng& rng) {
  const std::size_t n = weight.size();
  if (in_sample >= n) return;
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::fill(weight.begin(), weight.end(), 0.0);
  for (std::size_t i = 0; i < in_sample; ++i) {
    std::swap(order[i], order[i + static_cast<std::size_t>(rng.below(n - i))]);
    weight[order[i]] = 1.0;
  }
}

// scikit-learn's clip of the class priors (float32 epsilon): a class without training rows starts
// from a finite score.
constexpr double kPriorClip = 1.1920928955078125e-07;

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
  data.check();
  if (data.task == Task::binary) {
    GradientBoostedTrees model = train(data.x, data.y, params);
    model.classes_ = data.classes;
    return model;
  }
  check_params(params);
  const MatrixView x = data.x;
  const std::size_t n = x.rows();
  const bool multiclass = data.task == Task::multiclass;
  if (multiclass) {
    detail::check_class_targets(kType, x, data.y, data.n_classes());
  } else {
    detail::check_value_targets(kType, x, data.values);
  }
  const std::size_t k = multiclass ? data.n_classes() : 1;
  const detail::SortedColumns columns(x, 0);
  detail::TreeBuilder builder(columns);
  // Multiclass leaves are scaled by (k − 1)/k, as scikit-learn's multinomial deviance does.
  const double scale = multiclass ? params.learning_rate * static_cast<double>(k - 1) / static_cast<double>(k)
                                  : params.learning_rate;
  const detail::GrowLimits limits{params.max_depth, params.min_samples_split, params.min_samples_leaf,
                                  params.max_features.resolve(x.cols()), scale};
  detail::Rng rng(params.seed);

  GradientBoostedTrees model;
  model.params_ = params;
  model.n_features_ = x.cols();
  model.task_ = data.task;
  model.classes_ = data.classes;
  std::vector<double> score(n * k);
  if (multiclass) {
    const std::vector<std::size_t> counts = data.class_counts();
    model.class_init_.resize(k);
    for (std::size_t c = 0; c < k; ++c) {
      const double share = static_cast<double>(counts[c]) / static_cast<double>(n);
      model.class_init_[c] = std::log(std::clamp(share, kPriorClip, 1 - kPriorClip));
    }
    for (std::size_t r = 0; r < n; ++r) std::copy(model.class_init_.begin(), model.class_init_.end(), score.begin() + static_cast<std::ptrdiff_t>(r * k));
  } else {
    double sum = 0;
    for (double v : data.values) sum += v;
    model.init_ = sum / static_cast<double>(n);
    std::fill(score.begin(), score.end(), model.init_);
  }

  std::vector<double> residual(n), hessian(multiclass ? n : 0), weight(n, 1.0), proba(n * k);
  const auto in_sample = std::max<std::size_t>(1, static_cast<std::size_t>(params.subsample * static_cast<double>(n)));
  std::vector<std::size_t> order(n);
  model.trees_.reserve(params.n_estimators * k);
  for (std::size_t round = 0; round < params.n_estimators; ++round) {
    if (multiclass) {
      proba = score;
      for (std::size_t r = 0; r < n; ++r) softmax(proba.data() + r * k, k);
    }
    draw_rows(weight, order, in_sample, rng);
    // Every tree of a round fits the residuals of the scores before the round.
    const std::size_t first = model.trees_.size();
    for (std::size_t c = 0; c < k; ++c) {
      for (std::size_t r = 0; r < n; ++r) {
        if (multiclass) {
          const double p = proba[r * k + c];
          residual[r] = (data.y[r] == static_cast<int>(c) ? 1.0 : 0.0) - p;
          hessian[r] = p * (1 - p);
        } else {
          residual[r] = data.values[r] - score[r];
        }
      }
      model.trees_.push_back(builder.grow({weight, residual, hessian}, limits, rng));
    }
    // The scores move by exactly the float leaf values the model keeps.
    for (std::size_t r = 0; r < n; ++r) {
      for (std::size_t c = 0; c < k; ++c) score[r * k + c] += model.trees_[first + c].predict(x.row(r).data());
    }
  }
  return model;
}

std::map<std::string, std::string> GradientBoostedTrees::hyperparameters() const { return detail::hyperparameter_texts(params_); }

std::size_t GradientBoostedTrees::node_count() const noexcept {
  std::size_t nodes = 0;
  for (const auto& tree : trees_) nodes += tree.node_count();
  return nodes;
}

void GradientBoostedTrees::compute(MatrixView x, std::span<double> out) const {
  if (task_ == Task::multiclass) {
    const std::size_t k = classes_.size();
    for (std::size_t r = 0; r < x.rows(); ++r) {
      double* z = out.data() + r * k;
      std::copy(class_init_.begin(), class_init_.end(), z);
      for (std::size_t t = 0; t < trees_.size(); ++t) z[t % k] += trees_[t].predict(x.row(r).data());
      softmax(z, k);
    }
    return;
  }
  if (task_ == Task::regression) {
    for (std::size_t r = 0; r < x.rows(); ++r) {
      double score = init_;
      for (const auto& tree : trees_) score += tree.predict(x.row(r).data());
      out[r] = score;
    }
    return;
  }
  for (std::size_t r = 0; r < x.rows(); ++r) {
    double score = init_;
    for (const auto& tree : trees_) score += tree.predict(x.row(r).data());
    out[r] = sigmoid(score);
  }
}

// Version 1: params, n_features, initial log-odds, the trees. Version 2 adds the task, the classes
// and (multiclass) the initial score of each class.
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
  if (version >= 2) {
    detail::serialize_task(archive, task_, classes_, kType);
    if (task_ == Task::multiclass) serialize_vector(archive, class_init_);
  }
  if constexpr (Archive::is_loading::value) {
    const std::size_t per_round = task_ == Task::multiclass ? classes_.size() : 1;
    if (trees_.size() != params_.n_estimators * per_round) {
      detail::corrupt(kType, fmt::format("{} trees, n_estimators says {} rounds of {}", trees_.size(),
                                         params_.n_estimators, per_round));
    }
    if (task_ == Task::multiclass) {
      if (class_init_.size() != per_round ||
          !std::all_of(class_init_.begin(), class_init_.end(), [](double v) { return std::isfinite(v); })) {
        detail::corrupt(kType, fmt::format("{} initial scores for {} classes, or one not finite", class_init_.size(), per_round));
      }
    }
  }
}

}  // namespace modelreg

BOOST_CLASS_EXPORT_IMPLEMENT(modelreg::GradientBoostedTrees)
