#include "modelreg/decision_tree.hpp"

#include <vector>

#include "modelreg/labeled_data.hpp"
#include "models/hyperparameter_fields.hpp"
#include "models/model_io.hpp"
#include "models/task_io.hpp"
#include "models/training_input.hpp"
#include "models/tree_builder.hpp"

// Version 2 adds the task, the classes and the multiclass leaf table; version 1 archives load
// as binary models with classes {0, 1}.
BOOST_CLASS_VERSION(modelreg::DecisionTree, 2)
BOOST_CLASS_EXPORT_KEY2(modelreg::DecisionTree, modelreg::DecisionTree::kTypeName)

namespace modelreg {

namespace {

constexpr std::string_view kType = DecisionTree::kTypeName;

void check_params(const DecisionTreeParams& p) { detail::check_hyperparameters(kType, p); }

detail::GrowLimits limits_of(const DecisionTreeParams& params, std::size_t n_features) {
  return {params.max_depth, params.min_samples_split, params.min_samples_leaf, params.max_features.resolve(n_features), 1.0};
}

}  // namespace

DecisionTree DecisionTree::train(MatrixView x, std::span<const int> y, const Params& params) {
  check_params(params);
  detail::check_training_input(kType, x, y, false);
  const detail::SortedColumns columns(x, 0);
  detail::TreeBuilder builder(columns);
  const std::vector<double> weight(x.rows(), 1.0);
  const std::vector<double> target(y.begin(), y.end());
  detail::Rng rng(params.seed);
  DecisionTree model;
  model.params_ = params;
  model.n_features_ = x.cols();
  model.tree_ = builder.grow({weight, target, {}}, limits_of(params, x.cols()), rng);
  return model;
}

DecisionTree DecisionTree::train(const LabeledData& data, const Params& params) {
  data.check();
  if (data.task == Task::binary) {
    DecisionTree model = train(data.x, data.y, params);
    model.classes_ = data.classes;
    return model;
  }
  check_params(params);
  const MatrixView x = data.x;
  if (data.task == Task::multiclass) {
    detail::check_class_targets(kType, x, data.y, data.n_classes());
  } else {
    detail::check_value_targets(kType, x, data.values);
  }
  const detail::SortedColumns columns(x, 0);
  detail::TreeBuilder builder(columns);
  const std::vector<double> weight(x.rows(), 1.0);
  detail::Rng rng(params.seed);
  DecisionTree model;
  model.params_ = params;
  model.n_features_ = x.cols();
  model.task_ = data.task;
  model.classes_ = data.classes;
  if (data.task == Task::multiclass) {
    model.tree_ = builder.grow_classifier({weight, data.y, data.n_classes()}, limits_of(params, x.cols()), rng,
                                          model.leaf_proba_);
  } else {
    model.tree_ = builder.grow({weight, data.values, {}}, limits_of(params, x.cols()), rng);
  }
  return model;
}

std::map<std::string, std::string> DecisionTree::hyperparameters() const { return detail::hyperparameter_texts(params_); }

void DecisionTree::compute(MatrixView x, std::span<double> out) const {
  if (task_ != Task::multiclass) {
    for (std::size_t r = 0; r < x.rows(); ++r) out[r] = tree_.predict(x.row(r).data());
    return;
  }
  const std::size_t k = classes_.size();
  std::fill(out.begin(), out.end(), 0.0);
  for (std::size_t r = 0; r < x.rows(); ++r) {
    double* p = out.data() + r * k;
    detail::add_distribution(leaf_proba_, k, tree_.predict(x.row(r).data()), p);
    detail::normalize(p, k);
  }
}

// Version 1: params, n_features, the tree. Version 2 adds the task, the classes and (multiclass)
// the leaf probability table.
template <class Archive>
void DecisionTree::serialize(Archive& archive, unsigned version) {
  check_class_version<DecisionTree>(version, kType);
  archive & boost::serialization::base_object<Model>(*this);
  detail::serialize_depth(archive, params_.max_depth);
  detail::serialize_size(archive, params_.min_samples_split);
  detail::serialize_size(archive, params_.min_samples_leaf);
  detail::serialize_feature_subset(archive, params_.max_features);
  archive & params_.seed;
  detail::serialize_size(archive, n_features_);
  archive & tree_;
  if (version >= 2) {
    detail::serialize_task(archive, task_, classes_, kType);
    if (task_ == Task::multiclass) serialize_vector(archive, leaf_proba_);
  }
  if constexpr (Archive::is_loading::value) {
    detail::check_feature_count(kType, n_features_);
    if (tree_.max_feature() >= 0 && static_cast<std::size_t>(tree_.max_feature()) >= n_features_) {
      detail::corrupt(kType, fmt::format("the tree tests feature {} of {}", tree_.max_feature(), n_features_));
    }
    if (task_ == Task::binary) detail::check_probability_leaves(tree_, kType);
    if (task_ == Task::multiclass) detail::check_class_leaves(tree_, leaf_proba_, classes_.size(), kType);
  }
}

}  // namespace modelreg

BOOST_CLASS_EXPORT_IMPLEMENT(modelreg::DecisionTree)
