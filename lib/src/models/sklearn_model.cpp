// SklearnModel: scikit-learn 1.2's prediction arithmetic over converted estimators (see
// modelreg/sklearn.hpp for the contract, docs/model_format.md for the archive).
#include "models/sklearn_model.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include <fmt/format.h>

#include "core/parallel.hpp"
#include "modelreg/error.hpp"
#include "modelreg/labeled_data.hpp"
#include "models/model_io.hpp"
#include "models/task_io.hpp"

BOOST_CLASS_VERSION(modelreg::detail::SklearnModel, 1)

// Each estimator is its own exported class, keyed by its type name (implemented at the end).
#define MODELREG_SKLEARN_KEY(E, NAME) \
  BOOST_CLASS_EXPORT_KEY2(modelreg::detail::SklearnModelOf<modelreg::SklearnEstimator::E>, "sklearn." NAME)
MODELREG_SKLEARN_KEY(logistic_regression, "LogisticRegression")
MODELREG_SKLEARN_KEY(linear_regression, "LinearRegression")
MODELREG_SKLEARN_KEY(ridge, "Ridge")
MODELREG_SKLEARN_KEY(decision_tree_classifier, "DecisionTreeClassifier")
MODELREG_SKLEARN_KEY(decision_tree_regressor, "DecisionTreeRegressor")
MODELREG_SKLEARN_KEY(random_forest_classifier, "RandomForestClassifier")
MODELREG_SKLEARN_KEY(random_forest_regressor, "RandomForestRegressor")
MODELREG_SKLEARN_KEY(extra_trees_classifier, "ExtraTreesClassifier")
MODELREG_SKLEARN_KEY(extra_trees_regressor, "ExtraTreesRegressor")
MODELREG_SKLEARN_KEY(gradient_boosting_classifier, "GradientBoostingClassifier")
MODELREG_SKLEARN_KEY(gradient_boosting_regressor, "GradientBoostingRegressor")
MODELREG_SKLEARN_KEY(hist_gradient_boosting_classifier, "HistGradientBoostingClassifier")
MODELREG_SKLEARN_KEY(hist_gradient_boosting_regressor, "HistGradientBoostingRegressor")
#undef MODELREG_SKLEARN_KEY


namespace modelreg {

namespace {

using detail::SklearnModel;

struct EstimatorName {
  SklearnEstimator estimator;
  std::string_view name;
};

constexpr EstimatorName kEstimators[] = {
    {SklearnEstimator::logistic_regression, "LogisticRegression"},
    {SklearnEstimator::linear_regression, "LinearRegression"},
    {SklearnEstimator::ridge, "Ridge"},
    {SklearnEstimator::decision_tree_classifier, "DecisionTreeClassifier"},
    {SklearnEstimator::decision_tree_regressor, "DecisionTreeRegressor"},
    {SklearnEstimator::random_forest_classifier, "RandomForestClassifier"},
    {SklearnEstimator::random_forest_regressor, "RandomForestRegressor"},
    {SklearnEstimator::extra_trees_classifier, "ExtraTreesClassifier"},
    {SklearnEstimator::extra_trees_regressor, "ExtraTreesRegressor"},
    {SklearnEstimator::gradient_boosting_classifier, "GradientBoostingClassifier"},
    {SklearnEstimator::gradient_boosting_regressor, "GradientBoostingRegressor"},
    {SklearnEstimator::hist_gradient_boosting_classifier, "HistGradientBoostingClassifier"},
    {SklearnEstimator::hist_gradient_boosting_regressor, "HistGradientBoostingRegressor"},
};

std::string_view link_name(SklearnLink link) noexcept {
  switch (link) {
    case SklearnLink::identity: return "identity";
    case SklearnLink::exp: return "exp";
    case SklearnLink::expit: return "expit";
    case SklearnLink::expit_twice: return "expit_twice";
    case SklearnLink::softmax_binary: return "softmax_binary";
    case SklearnLink::softmax: return "softmax";
    case SklearnLink::ovr: return "ovr";
  }
  return "unknown";
}

[[noreturn]] void invalid(SklearnEstimator e, const std::string& what) {
  throw Error(Errc::validation_failed, fmt::format("scikit-learn {}: {}", sklearn_class_name(e), what));
}

// scipy.special.expit: 1 / (1 + exp(-x)).
double expit(double x) noexcept { return 1.0 / (1.0 + std::exp(-x)); }

// The largest float32 <= t. For every float32 x, `x <= t` (compared in double, as scikit-learn's
// trees compare their float32-cast inputs with float64 thresholds) decides exactly as
// `x <= rounded_down(t)`: so the threshold is stored in 4 bytes without changing any decision.
float rounded_down(double t) noexcept {
  constexpr double kMax = std::numeric_limits<float>::max();
  if (t >= kMax) return std::numeric_limits<float>::max();
  if (t < -kMax) return -std::numeric_limits<float>::infinity();
  float f = static_cast<float>(t);
  if (static_cast<double>(f) > t) f = std::nextafter(f, -std::numeric_limits<float>::infinity());
  return f;
}

// Rows per block: each block's rows are prepared (scaled, cast) once and walked through every tree.
constexpr std::size_t kBlockRows = 64;
// Rows per parallel task, and the batch size below which threads cost more than they save.
constexpr std::size_t kTaskRows = 1024;
constexpr std::size_t kParallelRows = 2048;

}  // namespace

std::string_view sklearn_class_name(SklearnEstimator estimator) noexcept {
  for (const auto& e : kEstimators) {
    if (e.estimator == estimator) return e.name;
  }
  return "unknown";
}

std::string sklearn_type_name(SklearnEstimator estimator) {
  return fmt::format("sklearn.{}", sklearn_class_name(estimator));
}

std::optional<SklearnEstimator> parse_sklearn_estimator(std::string_view class_name) noexcept {
  for (const auto& e : kEstimators) {
    if (e.name == class_name) return e.estimator;
  }
  return std::nullopt;
}

std::string supported_sklearn_estimators() {
  std::string out;
  for (const auto& e : kEstimators) {
    out += e.name;
    out += ", ";
  }
  return out + "and a Pipeline of StandardScaler or MinMaxScaler steps followed by one of them";
}

bool is_sklearn_classifier(SklearnEstimator estimator) noexcept {
  switch (estimator) {
    case SklearnEstimator::logistic_regression:
    case SklearnEstimator::decision_tree_classifier:
    case SklearnEstimator::random_forest_classifier:
    case SklearnEstimator::extra_trees_classifier:
    case SklearnEstimator::gradient_boosting_classifier:
    case SklearnEstimator::hist_gradient_boosting_classifier: return true;
    default: return false;
  }
}

namespace detail {

SklearnModel::Family SklearnModel::family() const noexcept {
  switch (spec_.estimator) {
    case SklearnEstimator::logistic_regression:
    case SklearnEstimator::linear_regression:
    case SklearnEstimator::ridge: return Family::linear;
    case SklearnEstimator::gradient_boosting_classifier:
    case SklearnEstimator::gradient_boosting_regressor: return Family::boosted_trees;
    case SklearnEstimator::hist_gradient_boosting_classifier:
    case SklearnEstimator::hist_gradient_boosting_regressor: return Family::hist_trees;
    default: return Family::averaged_trees;
  }
}

Task SklearnModel::task() const {
  const std::size_t k = spec_.classes.size();
  return k == 0 ? Task::regression : k == 2 ? Task::binary : Task::multiclass;
}

bool SklearnModel::handles_missing() const { return family() == Family::hist_trees; }

std::size_t SklearnModel::raw_width() const noexcept {
  return task() == Task::multiclass ? spec_.classes.size() : 1;
}

std::size_t SklearnModel::leaf_width() const noexcept {
  return family() == Family::averaged_trees ? raw_width() : 1;
}

std::map<std::string, std::string> SklearnModel::hyperparameters() const { return spec_.params; }

SklearnModel::SklearnModel(SklearnModelSpec spec) : spec_(std::move(spec)) {
  check_spec();
  std::vector<SklearnTree> trees = std::move(spec_.trees);
  spec_.trees.clear();
  if (trees.size() > std::numeric_limits<std::uint32_t>::max()) invalid(spec_.estimator, "too many trees");
  tree_begin_.reserve(trees.size());
  for (std::size_t t = 0; t < trees.size(); ++t) {
    compile_tree(trees[t], t);
    trees[t] = SklearnTree();  // free as we go: a forest's arrays are large
  }
}

// The checks of everything except the trees' nodes (compile_tree checks those).
void SklearnModel::check_spec() const {
  const SklearnModelSpec& s = spec_;
  const SklearnEstimator e = s.estimator;
  if (sklearn_class_name(e) == "unknown") {
    throw Error(Errc::validation_failed, fmt::format("scikit-learn estimator code {}", static_cast<int>(e)));
  }
  if (s.n_features == 0 || s.n_features > kFeatureMask) {
    invalid(e, fmt::format("{} features (1 to {} are possible)", s.n_features, kFeatureMask));
  }
  const std::size_t k = s.classes.size();
  if (is_sklearn_classifier(e) ? !(k >= 2 && k <= kMaxClasses) : k != 0) {
    invalid(e, fmt::format("{} class labels for a {}", k, is_sklearn_classifier(e) ? "classifier" : "regressor"));
  }
  const Task t = task();
  const SklearnLink l = s.link;
  bool link_ok = false;
  switch (family()) {
    case Family::linear:
      link_ok = e != SklearnEstimator::logistic_regression ? l == SklearnLink::identity
                : t == Task::binary ? (l == SklearnLink::expit || l == SklearnLink::softmax_binary)
                                    : (l == SklearnLink::softmax || l == SklearnLink::ovr);
      break;
    case Family::averaged_trees: link_ok = l == SklearnLink::identity; break;
    case Family::boosted_trees:
      link_ok = t == Task::regression ? l == SklearnLink::identity
                : t == Task::binary   ? (l == SklearnLink::expit || l == SklearnLink::expit_twice)
                                      : l == SklearnLink::softmax;
      break;
    case Family::hist_trees:
      link_ok = t == Task::regression ? (l == SklearnLink::identity || l == SklearnLink::exp)
                : t == Task::binary   ? l == SklearnLink::expit
                                      : l == SklearnLink::softmax;
      break;
  }
  if (!link_ok) invalid(e, fmt::format("link {} for a {} model", link_name(l), to_string(t)));

  const std::size_t width = raw_width();
  auto all_finite = [](const std::vector<double>& v) { return std::all_of(v.begin(), v.end(), [](double d) { return std::isfinite(d); }); };
  if (family() == Family::linear) {
    if (s.coef.size() != width * s.n_features) {
      invalid(e, fmt::format("{} coefficients for {} outputs of {} features", s.coef.size(), width, s.n_features));
    }
    if (s.intercept.size() != width) invalid(e, fmt::format("{} intercepts for {} outputs", s.intercept.size(), width));
    if (!all_finite(s.coef) || !all_finite(s.intercept)) invalid(e, "a coefficient or intercept is not finite");
    if (!s.trees.empty() || !s.init.empty() || s.learning_rate != 1) invalid(e, "a linear model has no trees, init or learning rate");
  } else {
    if (!s.coef.empty() || !s.intercept.empty()) invalid(e, "a tree model has no coefficients or intercepts");
    if (s.trees.empty()) invalid(e, "the model has no trees");
    const bool single = e == SklearnEstimator::decision_tree_classifier || e == SklearnEstimator::decision_tree_regressor;
    if (single && s.trees.size() != 1) invalid(e, fmt::format("{} trees for a single decision tree", s.trees.size()));
    if (family() == Family::averaged_trees) {
      if (!s.init.empty() || s.learning_rate != 1) invalid(e, "a forest has no init or learning rate");
    } else {
      if (s.trees.size() % width != 0) invalid(e, fmt::format("{} trees do not make stages of {}", s.trees.size(), width));
      if (s.init.size() != width) invalid(e, fmt::format("{} initial scores for {} outputs", s.init.size(), width));
      if (!all_finite(s.init)) invalid(e, "an initial score is not finite");
      if (family() == Family::boosted_trees ? !(std::isfinite(s.learning_rate) && s.learning_rate > 0) : s.learning_rate != 1) {
        invalid(e, fmt::format("learning rate {}", s.learning_rate));
      }
    }
  }
  for (std::size_t i = 0; i < s.scalers.size(); ++i) {
    const SklearnScaler& sc = s.scalers[i];
    if (sc.kind != SklearnScaler::Kind::standard && sc.kind != SklearnScaler::Kind::min_max) {
      invalid(e, fmt::format("scaler {} is of kind {}", i, static_cast<int>(sc.kind)));
    }
    if (sc.offset.size() != s.n_features || sc.scale.size() != s.n_features) {
      invalid(e, fmt::format("scaler {} has {} offsets and {} scales for {} features", i, sc.offset.size(), sc.scale.size(), s.n_features));
    }
    if (!all_finite(sc.offset) || !all_finite(sc.scale)) invalid(e, fmt::format("scaler {} holds a non-finite value", i));
    if (sc.kind == SklearnScaler::Kind::standard && std::find(sc.scale.begin(), sc.scale.end(), 0.0) != sc.scale.end()) {
      invalid(e, fmt::format("scaler {} divides by 0", i));
    }
    if (sc.clip && (sc.kind != SklearnScaler::Kind::min_max || !std::isfinite(sc.clip_min) || !std::isfinite(sc.clip_max) || sc.clip_min > sc.clip_max)) {
      invalid(e, fmt::format("scaler {} clips to [{}, {}]", i, sc.clip_min, sc.clip_max));
    }
  }
}

// Checks one tree and appends it in pre-order to nodes_ and leaf_values_.
void SklearnModel::compile_tree(const SklearnTree& tree, std::size_t index) {
  const SklearnEstimator e = spec_.estimator;
  const bool hist = family() == Family::hist_trees;
  const std::size_t n = tree.left.size();
  auto bad = [&](const std::string& what) { invalid(e, fmt::format("tree {}: {}", index, what)); };
  if (n == 0) bad("no nodes");
  if (tree.right.size() != n || tree.feature.size() != n || tree.threshold.size() != n) {
    bad(fmt::format("{} left, {} right, {} feature and {} threshold entries", n, tree.right.size(), tree.feature.size(), tree.threshold.size()));
  }
  if (hist ? tree.missing_go_to_left.size() != n : !tree.missing_go_to_left.empty()) {
    bad(fmt::format("{} missing-value directions for {} nodes", tree.missing_go_to_left.size(), n));
  }
  // Classifier trees arrive with k probabilities a leaf; a binary model keeps P(classes[1]).
  const bool classifier = is_sklearn_classifier(e) && family() == Family::averaged_trees;
  const std::size_t given = classifier ? spec_.classes.size() : 1;
  if (tree.values.size() != n * given) bad(fmt::format("{} leaf values for {} nodes of {} values", tree.values.size(), n, given));
  if (nodes_.size() + n > std::numeric_limits<std::uint32_t>::max()) bad("more than 2^32 nodes in all");

  const std::size_t base = nodes_.size();
  tree_begin_.push_back(static_cast<std::uint32_t>(base));
  std::vector<bool> seen(n, false);
  // Depth-first, left before right: pre-order. Each entry: node id, and the parent whose right
  // child it is (or npos).
  constexpr std::size_t npos = std::numeric_limits<std::size_t>::max();
  std::vector<std::pair<std::size_t, std::size_t>> stack{{0, npos}};
  while (!stack.empty()) {
    const auto [id, parent] = stack.back();
    stack.pop_back();
    if (seen[id]) bad(fmt::format("node {} is reached twice (a cycle or a shared node)", id));
    seen[id] = true;
    const std::size_t at = nodes_.size();
    if (parent != npos) nodes_[parent].next = static_cast<std::uint32_t>(at - tree_begin_.back());
    const std::int64_t l = tree.left[id], r = tree.right[id];
    if (l == -1 && r == -1) {
      const double* v = tree.values.data() + id * given;
      if (classifier) {
        double sum = 0;
        for (std::size_t c = 0; c < given; ++c) {
          if (!(v[c] >= 0 && v[c] <= 1)) bad(fmt::format("leaf {} holds {} for class {}, not a probability", id, v[c], c));
          sum += v[c];
        }
        if (!(std::fabs(sum - 1) <= 1e-6)) bad(fmt::format("the class probabilities of leaf {} sum to {}, not 1", id, sum));
      } else if (!std::isfinite(v[0])) {
        bad(fmt::format("leaf {} holds {}", id, v[0]));
      }
      nodes_.push_back({kLeaf, static_cast<std::uint32_t>(leaf_values_.size()), 0.0});
      if (classifier && given == 2) {
        leaf_values_.push_back(v[1]);
      } else {
        leaf_values_.insert(leaf_values_.end(), v, v + given);
      }
      continue;
    }
    auto in_range = [n](std::int64_t c) { return c >= 0 && static_cast<std::uint64_t>(c) < n; };
    if (!in_range(l) || !in_range(r)) bad(fmt::format("node {} has children {} and {} (of {} nodes)", id, l, r, n));
    const std::int64_t f = tree.feature[id];
    if (f < 0 || static_cast<std::uint64_t>(f) >= spec_.n_features) {
      bad(fmt::format("node {} tests feature {}, but the model has {} features", id, f, spec_.n_features));
    }
    const double t = tree.threshold[id];
    if (hist ? std::isnan(t) : !std::isfinite(t)) bad(fmt::format("node {} has threshold {}", id, t));
    std::uint32_t bits = static_cast<std::uint32_t>(f);
    if (hist && tree.missing_go_to_left[id] != 0) bits |= kMissingLeft;
    nodes_.push_back({bits, 0, hist ? t : static_cast<double>(rounded_down(t))});
    stack.emplace_back(static_cast<std::size_t>(r), at);
    stack.emplace_back(static_cast<std::size_t>(l), npos);
  }
  const auto unreached = std::find(seen.begin(), seen.end(), false);
  if (unreached != seen.end()) bad(fmt::format("node {} is not reachable from the root", unreached - seen.begin()));
}

namespace {

// Adds the leaf `row` reaches in the tree at `root` (width values) to `acc`, times `scale`.
inline const double* leaf_of(const SklearnModel::Node* root, const double* row, const double* leaves) noexcept {
  const SklearnModel::Node* node = root;
  while ((node->bits & SklearnModel::kLeaf) == 0) {
    const double v = row[node->bits & SklearnModel::kFeatureMask];
    const bool left = v <= node->threshold || (std::isnan(v) && (node->bits & SklearnModel::kMissingLeft) != 0);
    node = left ? node + 1 : root + node->next;
  }
  return leaves + node->next;
}

void apply_scalers(const std::vector<SklearnScaler>& scalers, double* rows, std::size_t n, std::size_t cols) noexcept {
  for (const SklearnScaler& s : scalers) {
    for (std::size_t r = 0; r < n; ++r) {
      double* x = rows + r * cols;
      if (s.kind == SklearnScaler::Kind::standard) {
        for (std::size_t c = 0; c < cols; ++c) x[c] = (x[c] - s.offset[c]) / s.scale[c];
      } else {
        for (std::size_t c = 0; c < cols; ++c) {
          x[c] = x[c] * s.scale[c] + s.offset[c];
          // np.clip: NaN stays NaN.
          if (s.clip) x[c] = x[c] < s.clip_min ? s.clip_min : x[c] > s.clip_max ? s.clip_max : x[c];
        }
      }
    }
  }
}

void apply_link(SklearnLink link, const double* raw, std::size_t width, double* out) noexcept {
  switch (link) {
    case SklearnLink::identity: std::copy(raw, raw + width, out); break;
    case SklearnLink::exp: out[0] = std::exp(raw[0]); break;
    case SklearnLink::expit: out[0] = expit(raw[0]); break;
    case SklearnLink::expit_twice: out[0] = expit(2.0 * raw[0]); break;
    case SklearnLink::softmax_binary: {
      // sklearn.utils.extmath.softmax of [-d, d]
      const double d = raw[0], m = std::max(-d, d);
      const double e0 = std::exp(-d - m), e1 = std::exp(d - m);
      out[0] = e1 / (e0 + e1);
      break;
    }
    case SklearnLink::softmax: {
      const double m = *std::max_element(raw, raw + width);
      double sum = 0;
      for (std::size_t k = 0; k < width; ++k) sum += out[k] = std::exp(raw[k] - m);
      for (std::size_t k = 0; k < width; ++k) out[k] /= sum;
      break;
    }
    case SklearnLink::ovr: {
      double sum = 0;
      for (std::size_t k = 0; k < width; ++k) sum += out[k] = expit(raw[k]);
      for (std::size_t k = 0; k < width; ++k) out[k] /= sum;
      break;
    }
  }
}

}  // namespace

// Rows `rows` (n rows, already checked) into out (n × n_outputs). scratch: per-thread buffer.
void SklearnModel::compute_block(const double* rows, std::size_t n, double* out, std::vector<double>& scratch) const {
  const std::size_t cols = spec_.n_features, width = raw_width();
  const Family fam = family();
  scratch.resize(n * cols + n * width);
  double* x = scratch.data();
  double* raw = x + n * cols;
  std::copy(rows, rows + n * cols, x);
  apply_scalers(spec_.scalers, x, n, cols);
  if (fam == Family::averaged_trees || fam == Family::boosted_trees) {
    // scikit-learn's trees read X as float32.
    for (std::size_t i = 0; i < n * cols; ++i) {
      const auto f = static_cast<float>(x[i]);
      if (std::isinf(f)) {
        throw Error(Errc::invalid_argument,
                    fmt::format("a value of {} does not fit in float32, which scikit-learn's trees read (it refuses it too)", x[i]));
      }
      x[i] = f;
    }
  }
  switch (fam) {
    case Family::linear:
      for (std::size_t r = 0; r < n; ++r) {
        const double* row = x + r * cols;
        for (std::size_t k = 0; k < width; ++k) {
          const double* coef = spec_.coef.data() + k * cols;
          double s = 0;
          for (std::size_t c = 0; c < cols; ++c) s += row[c] * coef[c];
          raw[r * width + k] = s + spec_.intercept[k];
        }
      }
      break;
    case Family::averaged_trees: {
      std::fill(raw, raw + n * width, 0.0);
      for (std::uint32_t begin : tree_begin_) {
        const Node* root = nodes_.data() + begin;
        for (std::size_t r = 0; r < n; ++r) {
          const double* leaf = leaf_of(root, x + r * cols, leaf_values_.data());
          double* acc = raw + r * width;
          for (std::size_t k = 0; k < width; ++k) acc[k] += leaf[k];
        }
      }
      const auto count = static_cast<double>(tree_begin_.size());
      for (std::size_t i = 0; i < n * width; ++i) raw[i] /= count;
      break;
    }
    case Family::boosted_trees:
    case Family::hist_trees: {
      for (std::size_t r = 0; r < n; ++r) std::copy(spec_.init.begin(), spec_.init.end(), raw + r * width);
      const double rate = spec_.learning_rate;
      for (std::size_t t = 0; t < tree_begin_.size(); ++t) {
        const Node* root = nodes_.data() + tree_begin_[t];
        const std::size_t k = t % width;
        for (std::size_t r = 0; r < n; ++r) raw[r * width + k] += rate * *leaf_of(root, x + r * cols, leaf_values_.data());
      }
      break;
    }
  }
  const std::size_t outputs = n_outputs();
  for (std::size_t r = 0; r < n; ++r) apply_link(spec_.link, raw + r * width, width, out + r * outputs);
}

void SklearnModel::compute(MatrixView x, std::span<double> out) const {
  const std::size_t rows = x.rows(), cols = x.cols(), outputs = n_outputs();
  const std::size_t tasks = (rows + kTaskRows - 1) / kTaskRows;
  const unsigned workers = rows < kParallelRows ? 1u : detail::thread_count(0, tasks);
  detail::parallel_for(tasks, workers, [&](std::size_t task, unsigned) {
    std::vector<double> scratch;
    const std::size_t end = std::min(rows, (task + 1) * kTaskRows);
    for (std::size_t first = task * kTaskRows; first < end; first += kBlockRows) {
      const std::size_t n = std::min(kBlockRows, end - first);
      compute_block(x.data() + first * cols, n, out.data() + first * outputs, scratch);
    }
  });
}

// Archive (class version 1, docs/model_format.md): estimator u8, n_features u64, link u8, task and
// classes, scalers, params, coef, intercept, init, learning_rate; then the trees: node count of each
// (u32s), every node's bits (u32s: feature, 0x80000000 leaf, 0x40000000 missing goes left), the
// internal nodes' thresholds (f32s, or f64s for HistGradientBoosting), the leaf values (f64s).
// Loading rebuilds the children from the pre-order and checks everything as the constructor does.
template <class Archive>
void SklearnModel::serialize(Archive& archive, unsigned version) {
  constexpr std::string_view kType = "sklearn";
  check_class_version<SklearnModel>(version, kType);
  archive & boost::serialization::base_object<Model>(*this);
  auto estimator = static_cast<std::uint8_t>(spec_.estimator);
  auto link = static_cast<std::uint8_t>(spec_.link);
  archive & estimator & link;
  serialize_size(archive, spec_.n_features);
  Task t = task();
  serialize_task(archive, t, spec_.classes, kType);
  std::uint64_t scaler_count = spec_.scalers.size();
  archive & scaler_count;
  if constexpr (Archive::is_loading::value) {
    if (scaler_count > archive.bytes_left()) corrupt(kType, fmt::format("{} scalers", scaler_count));
    spec_.scalers.assign(static_cast<std::size_t>(scaler_count), SklearnScaler());
  }
  for (SklearnScaler& s : spec_.scalers) {
    auto kind = static_cast<std::uint8_t>(s.kind);
    archive & kind;
    serialize_vector(archive, s.offset);
    serialize_vector(archive, s.scale);
    serialize_flag(archive, s.clip);
    archive & s.clip_min & s.clip_max;
    if constexpr (Archive::is_loading::value) s.kind = static_cast<SklearnScaler::Kind>(kind);
  }
  std::uint64_t param_count = spec_.params.size();
  archive & param_count;
  if constexpr (Archive::is_saving::value) {
    for (auto& [k, v] : spec_.params) {
      std::string key = k;
      archive & key & v;
    }
  } else {
    if (param_count > archive.bytes_left()) corrupt(kType, fmt::format("{} params", param_count));
    spec_.params.clear();
    for (std::uint64_t i = 0; i < param_count; ++i) {
      std::string key, value;
      archive & key & value;
      spec_.params.emplace(std::move(key), std::move(value));
    }
  }
  serialize_vector(archive, spec_.coef);
  serialize_vector(archive, spec_.intercept);
  serialize_vector(archive, spec_.init);
  archive & spec_.learning_rate;

  const bool hist = static_cast<SklearnEstimator>(estimator) == SklearnEstimator::hist_gradient_boosting_classifier ||
                    static_cast<SklearnEstimator>(estimator) == SklearnEstimator::hist_gradient_boosting_regressor;
  std::vector<std::uint32_t> sizes, bits;
  std::vector<float> thresholds32;
  std::vector<double> thresholds64;
  if constexpr (Archive::is_saving::value) {
    for (std::size_t t = 0; t < tree_begin_.size(); ++t) {
      const std::size_t end = t + 1 < tree_begin_.size() ? tree_begin_[t + 1] : nodes_.size();
      sizes.push_back(static_cast<std::uint32_t>(end - tree_begin_[t]));
    }
    for (const Node& n : nodes_) {
      bits.push_back(n.bits);
      if ((n.bits & kLeaf) != 0) continue;
      if (hist) {
        thresholds64.push_back(n.threshold);
      } else {
        thresholds32.push_back(static_cast<float>(n.threshold));  // exact: stored rounded down
      }
    }
  }
  serialize_vector(archive, sizes);
  serialize_vector(archive, bits);
  if (hist) {
    serialize_vector(archive, thresholds64);
  } else {
    serialize_vector(archive, thresholds32);
  }
  serialize_vector(archive, leaf_values_);
  if constexpr (Archive::is_loading::value) {
    spec_.estimator = static_cast<SklearnEstimator>(estimator);
    spec_.link = static_cast<SklearnLink>(link);
    // Trees stand in for check_spec's count checks; their nodes are checked below.
    spec_.trees.assign(sizes.size(), SklearnTree());
    try {
      check_spec();
    } catch (const Error& e) {
      corrupt(kType, e.what());
    }
    spec_.trees.clear();
    if (t != task()) corrupt(kType, "the task does not follow from the classes");
    // Rebuild the pre-order: each node fills the slot on top of the stack; an internal node opens
    // a slot for its right child below the one for its left child (the next node).
    nodes_.clear();
    tree_begin_.clear();
    std::size_t at = 0, next_threshold = 0, leaf_width_total = 0;
    const std::size_t width = leaf_width();
    const std::size_t threshold_count = hist ? thresholds64.size() : thresholds32.size();
    constexpr std::uint32_t kLeftSlot = std::numeric_limits<std::uint32_t>::max();
    std::vector<std::uint32_t> slots;
    for (std::uint32_t size : sizes) {
      if (size == 0 || size > bits.size() - at) corrupt(kType, fmt::format("a tree of {} nodes, {} nodes left", size, bits.size() - at));
      const auto begin = static_cast<std::uint32_t>(at);
      tree_begin_.push_back(begin);
      slots.assign(1, kLeftSlot);
      for (std::uint32_t i = 0; i < size; ++i, ++at) {
        if (slots.empty()) corrupt(kType, fmt::format("tree {} ends before its node {}", tree_begin_.size() - 1, i));
        const std::uint32_t parent = slots.back();
        slots.pop_back();
        if (parent != kLeftSlot) nodes_[begin + parent].next = i;
        const std::uint32_t b = bits[at];
        if ((b & kLeaf) != 0) {
          if (b != kLeaf) corrupt(kType, fmt::format("leaf bits {:#x}", b));
          if (leaf_width_total + width > leaf_values_.size()) corrupt(kType, "fewer leaf values than leaves");
          nodes_.push_back({b, static_cast<std::uint32_t>(leaf_width_total), 0.0});
          leaf_width_total += width;
          continue;
        }
        if ((b & kFeatureMask) >= spec_.n_features || (!hist && (b & kMissingLeft) != 0)) {
          corrupt(kType, fmt::format("node bits {:#x} for {} features", b, spec_.n_features));
        }
        if (next_threshold >= threshold_count) corrupt(kType, "fewer thresholds than internal nodes");
        const double thr = hist ? thresholds64[next_threshold] : static_cast<double>(thresholds32[next_threshold]);
        ++next_threshold;
        if (std::isnan(thr) || (!hist && std::isinf(thr) && thr > 0)) corrupt(kType, fmt::format("threshold {}", thr));
        nodes_.push_back({b, 0, thr});
        slots.push_back(i);
        slots.push_back(kLeftSlot);
      }
      if (!slots.empty()) corrupt(kType, fmt::format("tree {} is incomplete", tree_begin_.size() - 1));
    }
    if (at != bits.size()) corrupt(kType, fmt::format("{} nodes after the last tree", bits.size() - at));
    if (next_threshold != threshold_count) corrupt(kType, "more thresholds than internal nodes");
    if (leaf_width_total != leaf_values_.size()) corrupt(kType, "more leaf values than leaves");
    const bool classifier = is_sklearn_classifier(spec_.estimator) && family() == Family::averaged_trees;
    for (double v : leaf_values_) {
      if (classifier ? !(v >= 0 && v <= 1) : !std::isfinite(v)) corrupt(kType, fmt::format("a leaf holds {}", v));
    }
  }
}

template <SklearnEstimator E>
template <class Archive>
void SklearnModelOf<E>::serialize(Archive& archive, unsigned version) {
  const std::string name = sklearn_type_name(E);
  check_class_version<SklearnModelOf<E>>(version, name);
  archive & boost::serialization::base_object<SklearnModel>(*this);
  if constexpr (Archive::is_loading::value) {
    if (estimator() != E) corrupt(name, fmt::format("the payload holds a {}", sklearn_class_name(estimator())));
  }
}

}  // namespace detail

std::unique_ptr<Model> make_sklearn_model(SklearnModelSpec spec) {
  using detail::SklearnModelOf;
  switch (spec.estimator) {
#define MODELREG_SKLEARN_CASE(E) \
  case SklearnEstimator::E: return std::make_unique<SklearnModelOf<SklearnEstimator::E>>(std::move(spec));
    MODELREG_SKLEARN_CASE(logistic_regression)
    MODELREG_SKLEARN_CASE(linear_regression)
    MODELREG_SKLEARN_CASE(ridge)
    MODELREG_SKLEARN_CASE(decision_tree_classifier)
    MODELREG_SKLEARN_CASE(decision_tree_regressor)
    MODELREG_SKLEARN_CASE(random_forest_classifier)
    MODELREG_SKLEARN_CASE(random_forest_regressor)
    MODELREG_SKLEARN_CASE(extra_trees_classifier)
    MODELREG_SKLEARN_CASE(extra_trees_regressor)
    MODELREG_SKLEARN_CASE(gradient_boosting_classifier)
    MODELREG_SKLEARN_CASE(gradient_boosting_regressor)
    MODELREG_SKLEARN_CASE(hist_gradient_boosting_classifier)
    MODELREG_SKLEARN_CASE(hist_gradient_boosting_regressor)
#undef MODELREG_SKLEARN_CASE
  }
  throw Error(Errc::validation_failed, fmt::format("scikit-learn estimator code {}; supported: {}",
                                                   static_cast<int>(spec.estimator), supported_sklearn_estimators()));
}

}  // namespace modelreg

#define MODELREG_SKLEARN_IMPLEMENT(E) \
  BOOST_CLASS_EXPORT_IMPLEMENT(modelreg::detail::SklearnModelOf<modelreg::SklearnEstimator::E>)
MODELREG_SKLEARN_IMPLEMENT(logistic_regression)
MODELREG_SKLEARN_IMPLEMENT(linear_regression)
MODELREG_SKLEARN_IMPLEMENT(ridge)
MODELREG_SKLEARN_IMPLEMENT(decision_tree_classifier)
MODELREG_SKLEARN_IMPLEMENT(decision_tree_regressor)
MODELREG_SKLEARN_IMPLEMENT(random_forest_classifier)
MODELREG_SKLEARN_IMPLEMENT(random_forest_regressor)
MODELREG_SKLEARN_IMPLEMENT(extra_trees_classifier)
MODELREG_SKLEARN_IMPLEMENT(extra_trees_regressor)
MODELREG_SKLEARN_IMPLEMENT(gradient_boosting_classifier)
MODELREG_SKLEARN_IMPLEMENT(gradient_boosting_regressor)
MODELREG_SKLEARN_IMPLEMENT(hist_gradient_boosting_classifier)
MODELREG_SKLEARN_IMPLEMENT(hist_gradient_boosting_regressor)
#undef MODELREG_SKLEARN_IMPLEMENT
