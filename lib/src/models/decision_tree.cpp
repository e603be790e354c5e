#include "modelreg/decision_tree.hpp"

#include <vector>

#include "modelreg/labeled_data.hpp"
#include "models/hyperparameter_fields.hpp"
#include "models/model_io.hpp"
#include "models/training_input.hpp"
#include "models/tree_builder.hpp"

BOOST_CLASS_VERSION(modelreg::DecisionTree, 1)
BOOST_CLASS_EXPORT_KEY2(modelreg::DecisionTree, modelreg::DecisionTree::kTypeName)

namespace modelreg {

namespace {

constexpr std::string_view kType = DecisionTree::kTypeName;

void check_params(const DecisionTreeParams& p) { detail::check_hyperparameters(kType, p); }

}  // namespace

DecisionTree DecisionTree::train(MatrixView x, std::span<const int> y, const Params& params) {
  check_params(params);
  detail::check_training_input(kType, x, y, false);
  const detail::SortedColumns columns(x, 0);
  detail::TreeBuilder builder(columns);
  const std::vector<double> weight(x.rows(), 1.0);
  const std::vector<double> target(y.begin(), y.end());
  detail::GrowLimits limits{params.max_depth, params.min_samples_split, params.min_samples_leaf,
                            params.max_features.resolve(x.cols()), 1.0};
  detail::Rng rng(params.seed);
  DecisionTree model;
  model.params_ = params;
  model.n_features_ = x.cols();
  model.tree_ = builder.grow({weight, target, {}}, limits, rng);
  return model;
}

DecisionTree DecisionTree::train(const LabeledData& data, const Params& params) {
  return train(data.x, data.y, params);
}

std::map<std::string, std::string> DecisionTree::hyperparameters() const { return detail::hyperparameter_texts(params_); }

void DecisionTree::compute(MatrixView x, std::span<double> out) const {
  for (std::size_t r = 0; r < x.rows(); ++r) out[r] = tree_.predict(x.row(r).data());
}

// Version 1: params, n_features, the tree.
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
  if constexpr (Archive::is_loading::value) {
    detail::check_feature_count(kType, n_features_);
    if (tree_.max_feature() >= 0 && static_cast<std::size_t>(tree_.max_feature()) >= n_features_) {
      detail::corrupt(kType, fmt::format("the tree tests feature {} of {}", tree_.max_feature(), n_features_));
    }
    detail::check_probability_leaves(tree_, kType);
  }
}

}  // namespace modelreg

BOOST_CLASS_EXPORT_IMPLEMENT(modelreg::DecisionTree)
