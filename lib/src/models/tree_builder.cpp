#include "models/tree_builder.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/parallel.hpp"

namespace modelreg::detail {

SortedColumns::SortedColumns(MatrixView x, unsigned threads)
    : rows_(x.rows()), features_(x.cols()), values_(x.rows() * x.cols()), order_(x.rows() * x.cols()) {
  for (std::size_t r = 0; r < rows_; ++r) {
    for (std::size_t f = 0; f < features_; ++f) values_[f * rows_ + r] = x(r, f);
  }
  parallel_for(features_, thread_count(threads, features_), [&](std::size_t f, unsigned) {
    std::int32_t* order = order_.data() + f * rows_;
    const double* column = values_.data() + f * rows_;
    std::iota(order, order + rows_, 0);
    // Ties by row index, so the order (and everything trained from it) is fully determined.
    std::sort(order, order + rows_, [column](std::int32_t a, std::int32_t b) {
      return column[a] < column[b] || (column[a] == column[b] && a < b);
    });
  });
}

float float_threshold(double lo, double hi) noexcept {
  constexpr double kMaxFloat = std::numeric_limits<float>::max();
  const double mid = lo / 2 + hi / 2;
  if (!(std::fabs(mid) <= kMaxFloat)) return std::numeric_limits<float>::quiet_NaN();
  // The multiple of the largest power of two that fits in the middle half of the gap, nearest to
  // the midpoint: it keeps at least a quarter of the gap as margin on each side, and has few
  // significant bits, so the stored thresholds compress well.
  const double half_gap = (hi - lo) / 2;
  if (half_gap > 0 && std::isfinite(half_gap)) {
    const double step = std::ldexp(1.0, std::ilogb(half_gap));
    const double t = std::nearbyint(mid / step) * step;
    if (t >= lo + half_gap / 2 && t <= hi - half_gap / 2 && static_cast<double>(static_cast<float>(t)) == t) {
      return static_cast<float>(t);
    }
  }
  // Otherwise (the gap is below float resolution at this magnitude): the float nearest the
  // midpoint that still separates lo from hi.
  float t = static_cast<float>(mid);
  if (t < lo) {
    t = std::nextafter(t, std::numeric_limits<float>::infinity());
  } else if (!(t < hi)) {
    t = std::nextafter(t, -std::numeric_limits<float>::infinity());
  }
  return (t >= lo && t < hi) ? t : std::numeric_limits<float>::quiet_NaN();
}

TreeBuilder::TreeBuilder(const SortedColumns& columns)
    : columns_(columns), goes_left_(columns.rows(), 0), feature_order_(columns.features()) {}

void TreeBuilder::prepare(std::span<const double> weights) {
  const std::size_t n = columns_.rows();
  const std::size_t n_features = columns_.features();
  const double* weight = weights.data();
  // Start every tree from the same feature order: a tree must not depend on what the builder
  // grew before (with several threads, which trees a builder grows varies from run to run).
  std::iota(feature_order_.begin(), feature_order_.end(), std::size_t{0});
  sample_rows_ = 0;
  for (std::size_t r = 0; r < n; ++r) sample_rows_ += weight[r] > 0 ? 1 : 0;
  const std::size_t m = sample_rows_;
  rows_.resize(n_features * m + 1);  // + 1: the branch-free filter below may write one past a list
  scratch_.resize(m);
  for (std::size_t f = 0; f < n_features; ++f) {
    std::int32_t* out = rows_.data() + f * m;
    const std::int32_t* order = columns_.order(f);
    std::size_t k = 0;
    for (std::size_t i = 0; i < n; ++i) {  // branch-free: about a third of the rows are out of the bag
      const std::int32_t r = order[i];
      out[k] = r;
      k += weight[r] > 0 ? 1 : 0;
    }
  }
}

Tree TreeBuilder::grow(const GrowTargets& targets, const GrowLimits& limits, Rng& rng) {
  const std::size_t n_features = columns_.features();
  const double* weight = targets.weight.data();
  const double* target = targets.target.data();
  const double* hessian = targets.hessian.empty() ? nullptr : targets.hessian.data();
  prepare(targets.weight);
  const std::size_t m = sample_rows_;

  struct Pending {
    std::size_t begin, end;
    int depth;
    std::int32_t parent;  // for a right child: the index of its parent; -1 otherwise
  };
  std::vector<TreeNode> nodes;
  std::vector<Pending> pending;
  if (m > 0) pending.push_back({0, m, 0, -1});
  // Depth first, left child first: nodes come out in pre-order, a left child right after its parent.
  while (!pending.empty()) {
    const Pending p = pending.back();
    pending.pop_back();
    const auto index = static_cast<std::int32_t>(nodes.size());
    nodes.emplace_back();
    if (p.parent >= 0) nodes[static_cast<std::size_t>(p.parent)].right = index;

    double w_sum = 0, t_sum = 0, t2_sum = 0, h_sum = 0;
    const std::int32_t* segment = rows_.data() + p.begin;  // feature 0's rows for this node
    for (std::size_t i = 0; i < p.end - p.begin; ++i) {
      const auto r = static_cast<std::size_t>(segment[i]);
      const double w = weight[r];
      const double wt = w * target[r];
      w_sum += w;
      t_sum += wt;
      t2_sum += wt * target[r];
      h_sum += hessian ? w * hessian[r] : w;
    }
    const std::size_t count = p.end - p.begin;
    const double mean_square = t2_sum / w_sum;
    const double mean = t_sum / w_sum;
    const bool pure = mean_square - mean * mean <= 1e-12 * mean_square;
    const bool leaf = pure || (limits.max_depth && p.depth >= *limits.max_depth) ||
                      count < limits.min_samples_split || count < 2 * limits.min_samples_leaf;
    Split split;
    if (!leaf) split = find_split(p.begin, p.end, w_sum, t_sum, targets, limits, rng);
    if (leaf || split.feature < 0) {
      // Newton's guard, as scikit-learn's: a vanishing denominator gives a zero step.
      const double value = std::fabs(h_sum) < 1e-150 ? 0.0 : t_sum / h_sum;
      nodes[static_cast<std::size_t>(index)].value = static_cast<float>(value * limits.leaf_scale);
      continue;
    }
    partition(split, p.begin, p.end);
    TreeNode& node = nodes[static_cast<std::size_t>(index)];
    node.feature = split.feature;
    node.value = split.threshold;
    node.left = index + 1;
    const std::size_t middle = p.begin + split.left_rows;
    pending.push_back({middle, p.end, p.depth + 1, index});
    pending.push_back({p.begin, middle, p.depth + 1, -1});
  }
  if (nodes.empty()) nodes.emplace_back();  // no rows at all: a single leaf predicting 0
  return Tree(std::move(nodes), n_features);
}

TreeBuilder::Split TreeBuilder::find_split(std::size_t begin, std::size_t end, double weight_sum, double target_sum,
                                           const GrowTargets& targets, const GrowLimits& limits, Rng& rng) {
  const std::size_t m = sample_rows_;
  const std::size_t count = end - begin;
  const std::size_t n_features = columns_.features();
  const std::size_t min_leaf = limits.min_samples_leaf;
  const double* weight = targets.weight.data();
  const double* target = targets.target.data();

  Split best;
  best.score = -std::numeric_limits<double>::infinity();
  std::size_t tried = 0;
  // Draw features without replacement (a partial Fisher–Yates shuffle) until max_features
  // features that are not constant in this node have been tried, as scikit-learn does.
  for (std::size_t j = 0; j < n_features && tried < limits.max_features; ++j) {
    const std::size_t pick = j + static_cast<std::size_t>(rng.below(n_features - j));
    std::swap(feature_order_[j], feature_order_[pick]);
    const std::size_t f = feature_order_[j];
    const std::int32_t* segment = rows_.data() + f * m + begin;
    const double* column = columns_.column(f);
    if (column[segment[0]] == column[segment[count - 1]]) continue;  // constant here
    ++tried;

    double w_left = 0, t_left = 0;
    double next_value = column[segment[0]];
    for (std::size_t i = 0; i + 1 < count; ++i) {
      const auto r = static_cast<std::size_t>(segment[i]);
      w_left += weight[r];
      t_left += weight[r] * target[r];
      const double value = next_value;
      next_value = column[segment[i + 1]];
      if (next_value <= value) continue;  // equal values cannot be separated
      const std::size_t left_rows = i + 1;
      if (left_rows < min_leaf) continue;
      if (count - left_rows < min_leaf) break;
      const double w_right = weight_sum - w_left;
      const double t_right = target_sum - t_left;
      const double score = t_left * t_left / w_left + t_right * t_right / w_right;
      if (score > best.score) {
        const float threshold = float_threshold(value, next_value);
        if (std::isnan(threshold)) continue;
        best = {score, static_cast<std::int32_t>(f), threshold, left_rows};
      }
    }
  }
  return best;
}

Tree TreeBuilder::grow_classifier(const GrowClasses& targets, const GrowLimits& limits, Rng& rng,
                                  std::vector<float>& distributions) {
  const std::size_t n_features = columns_.features();
  const std::size_t k = targets.n_classes;
  const double* weight = targets.weight.data();
  const int* label = targets.label.data();
  prepare(targets.weight);
  const std::size_t m = sample_rows_;
  class_total_.assign(k, 0.0);
  class_left_.assign(k, 0.0);
  distributions.clear();

  struct Pending {
    std::size_t begin, end;
    int depth;
    std::int32_t parent;
  };
  std::vector<TreeNode> nodes;
  std::vector<Pending> pending;
  std::size_t leaves = 0;
  if (m > 0) pending.push_back({0, m, 0, -1});
  while (!pending.empty()) {
    const Pending p = pending.back();
    pending.pop_back();
    const auto index = static_cast<std::int32_t>(nodes.size());
    nodes.emplace_back();
    if (p.parent >= 0) nodes[static_cast<std::size_t>(p.parent)].right = index;

    std::fill(class_total_.begin(), class_total_.end(), 0.0);
    double w_sum = 0;
    const std::int32_t* segment = rows_.data() + p.begin;
    for (std::size_t i = 0; i < p.end - p.begin; ++i) {
      const auto r = static_cast<std::size_t>(segment[i]);
      class_total_[static_cast<std::size_t>(label[r])] += weight[r];
      w_sum += weight[r];
    }
    const std::size_t count = p.end - p.begin;
    const double largest = *std::max_element(class_total_.begin(), class_total_.end());
    const bool pure = largest >= w_sum * (1 - 1e-12);
    const bool leaf = pure || (limits.max_depth && p.depth >= *limits.max_depth) ||
                      count < limits.min_samples_split || count < 2 * limits.min_samples_leaf;
    Split split;
    if (!leaf) split = find_class_split(p.begin, p.end, w_sum, targets, limits, rng);
    if (leaf || split.feature < 0) {
      nodes[static_cast<std::size_t>(index)].value = static_cast<float>(leaves++);
      for (double c : class_total_) distributions.push_back(static_cast<float>(c / w_sum));
      continue;
    }
    partition(split, p.begin, p.end);
    TreeNode& node = nodes[static_cast<std::size_t>(index)];
    node.feature = split.feature;
    node.value = split.threshold;
    node.left = index + 1;
    const std::size_t middle = p.begin + split.left_rows;
    pending.push_back({middle, p.end, p.depth + 1, index});
    pending.push_back({p.begin, middle, p.depth + 1, -1});
  }
  if (nodes.empty()) {  // no rows at all: a single leaf, every class equally likely
    nodes.emplace_back();
    distributions.assign(k, static_cast<float>(1.0 / static_cast<double>(k)));
  }
  return Tree(std::move(nodes), n_features);
}

TreeBuilder::Split TreeBuilder::find_class_split(std::size_t begin, std::size_t end, double weight_sum,
                                                 const GrowClasses& targets, const GrowLimits& limits, Rng& rng) {
  const std::size_t m = sample_rows_;
  const std::size_t count = end - begin;
  const std::size_t n_features = columns_.features();
  const std::size_t min_leaf = limits.min_samples_leaf;
  const double* weight = targets.weight.data();
  const int* label = targets.label.data();
  double total_square = 0;
  for (double c : class_total_) total_square += c * c;

  Split best;
  best.score = -std::numeric_limits<double>::infinity();
  std::size_t tried = 0;
  for (std::size_t j = 0; j < n_features && tried < limits.max_features; ++j) {
    const std::size_t pick = j + static_cast<std::size_t>(rng.below(n_features - j));
    std::swap(feature_order_[j], feature_order_[pick]);
    const std::size_t f = feature_order_[j];
    const std::int32_t* segment = rows_.data() + f * m + begin;
    const double* column = columns_.column(f);
    if (column[segment[0]] == column[segment[count - 1]]) continue;  // constant here
    ++tried;

    std::fill(class_left_.begin(), class_left_.end(), 0.0);
    // Σ_c L_c² and Σ_c R_c², kept up to date as one row at a time moves from right to left.
    double left_square = 0, right_square = total_square, w_left = 0;
    double next_value = column[segment[0]];
    for (std::size_t i = 0; i + 1 < count; ++i) {
      const auto r = static_cast<std::size_t>(segment[i]);
      const double w = weight[r];
      const auto c = static_cast<std::size_t>(label[r]);
      const double right_c = class_total_[c] - class_left_[c];
      left_square += w * (2 * class_left_[c] + w);
      right_square += w * (w - 2 * right_c);
      class_left_[c] += w;
      w_left += w;
      const double value = next_value;
      next_value = column[segment[i + 1]];
      if (next_value <= value) continue;
      const std::size_t left_rows = i + 1;
      if (left_rows < min_leaf) continue;
      if (count - left_rows < min_leaf) break;
      const double score = left_square / w_left + right_square / (weight_sum - w_left);
      if (score > best.score) {
        const float threshold = float_threshold(value, next_value);
        if (std::isnan(threshold)) continue;
        best = {score, static_cast<std::int32_t>(f), threshold, left_rows};
      }
    }
  }
  return best;
}

void TreeBuilder::partition(const Split& split, std::size_t begin, std::size_t end) {
  const std::size_t m = sample_rows_;
  const std::size_t count = end - begin;
  const auto split_feature = static_cast<std::size_t>(split.feature);
  const std::int32_t* sorted = rows_.data() + split_feature * m + begin;
  for (std::size_t i = 0; i < count; ++i) goes_left_[static_cast<std::size_t>(sorted[i])] = i < split.left_rows ? 1 : 0;
  for (std::size_t f = 0; f < columns_.features(); ++f) {
    if (f == split_feature) continue;  // already in order: its first left_rows rows go left
    std::int32_t* segment = rows_.data() + f * m + begin;
    std::size_t left = 0, right = 0;
    // Stable and branch-free: each row is written to both sides, only one cursor advances.
    for (std::size_t i = 0; i < count; ++i) {
      const std::int32_t r = segment[i];
      const std::size_t to_left = goes_left_[static_cast<std::size_t>(r)];
      segment[left] = r;
      scratch_[right] = r;
      left += to_left;
      right += 1 - to_left;
    }
    std::copy(scratch_.begin(), scratch_.begin() + static_cast<std::ptrdiff_t>(right), segment + left);
  }
}

}  // namespace modelreg::detail
