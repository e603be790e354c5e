#include "modelreg/labeled_data.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <numeric>
#include <optional>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "modelreg/error.hpp"
#include "core/random.hpp"

namespace modelreg {

// ---- LabeledData ---------------------------------------------------------------------------------

double LabeledData::positive_fraction() const noexcept {
  if (y.empty()) return 0;
  return static_cast<double>(std::count(y.begin(), y.end(), 1)) / static_cast<double>(y.size());
}

std::vector<std::size_t> LabeledData::class_counts() const {
  std::vector<std::size_t> counts(n_classes(), 0);
  for (int c : y) {
    if (c >= 0 && static_cast<std::size_t>(c) < counts.size()) ++counts[static_cast<std::size_t>(c)];
  }
  return counts;
}

std::optional<std::pair<std::size_t, std::size_t>> LabeledData::first_missing() const noexcept {
  const double* data = x.data();
  for (std::size_t i = 0; i < x.values().size(); ++i) {
    if (std::isnan(data[i])) return std::pair{i / x.cols(), i % x.cols()};
  }
  return std::nullopt;
}

LabeledData LabeledData::subset(std::span<const std::size_t> rows) const {
  LabeledData out;
  out.feature_names = feature_names;
  out.target_name = target_name;
  out.task = task;
  out.classes = classes;
  std::vector<double> selected;
  selected.reserve(rows.size() * n_features());
  for (std::size_t r : rows) {
    if (r >= this->rows()) {
      throw Error(Errc::invalid_argument, fmt::format("row {} of a table with {} rows", r, this->rows()));
    }
    const auto row = x.row(r);
    selected.insert(selected.end(), row.begin(), row.end());
    if (!y.empty()) out.y.push_back(y[r]);
    if (!values.empty()) out.values.push_back(values[r]);
  }
  out.x = n_features() == 0 ? Matrix() : Matrix(std::move(selected), n_features());
  return out;
}

bool operator==(const LabeledData& a, const LabeledData& b) {
  if (a.feature_names != b.feature_names || a.task != b.task || !(a.classes == b.classes) || a.y != b.y ||
      a.values != b.values || a.target_name != b.target_name || a.x.rows() != b.x.rows() || a.x.cols() != b.x.cols()) {
    return false;
  }
  const double* p = a.x.data();
  const double* q = b.x.data();
  for (std::size_t i = 0; i < a.x.values().size(); ++i) {
    if (!(p[i] == q[i] || (std::isnan(p[i]) && std::isnan(q[i])))) return false;
  }
  return true;
}

ColumnMatch match_columns(std::span<const std::string> columns, std::span<const std::string> wanted,
                          std::span<const std::string> ignored) {
  auto has = [](std::span<const std::string> list, const std::string& name) {
    return std::find(list.begin(), list.end(), name) != list.end();
  };
  ColumnMatch m;
  for (const auto& name : wanted) {
    const auto it = std::find(columns.begin(), columns.end(), name);
    if (it == columns.end()) {
      m.missing.push_back(name);
    } else {
      m.source.push_back(static_cast<std::size_t>(it - columns.begin()));
    }
  }
  for (const auto& name : columns) {
    if (!has(wanted, name) && !has(ignored, name)) m.extra.push_back(name);
  }
  return m;
}

LabeledData LabeledData::with_features(std::span<const std::string> names, std::span<const std::string> ignored) const {
  const ColumnMatch match = match_columns(feature_names, names, ignored);
  const auto& [source, missing, extra] = match;
  if (!match.ok()) {
    std::string problem;
    if (!missing.empty()) problem += fmt::format("missing column{} {}", missing.size() == 1 ? "" : "s", fmt::join(missing, ", "));
    if (!extra.empty()) {
      problem += fmt::format("{}unexpected column{} {}", problem.empty() ? "" : "; ", extra.size() == 1 ? "" : "s",
                             fmt::join(extra, ", "));
    }
    throw Error(Errc::invalid_argument, fmt::format("the columns do not match the {} expected features: {}", names.size(), problem));
  }
  LabeledData out;
  out.feature_names.assign(names.begin(), names.end());
  out.task = task;
  out.classes = classes;
  out.y = y;
  out.values = values;
  out.target_name = target_name;
  std::vector<double> values;
  values.reserve(rows() * source.size());
  for (std::size_t r = 0; r < rows(); ++r) {
    for (std::size_t c : source) values.push_back(x(r, c));
  }
  out.x = source.empty() ? Matrix() : Matrix(std::move(values), source.size());
  return out;
}

void LabeledData::check() const {
  if (feature_names.size() != x.cols()) {
    throw Error(Errc::invalid_argument,
                fmt::format("{} feature names for {} columns", feature_names.size(), x.cols()));
  }
  if (!y.empty() && !values.empty()) {
    throw Error(Errc::invalid_argument, "the rows have both class labels and target values");
  }
  const std::size_t targets = y.empty() ? values.size() : y.size();
  if (has_labels() && targets != x.rows()) {
    throw Error(Errc::invalid_argument, fmt::format("{} targets for {} rows", targets, x.rows()));
  }
  if (task == Task::regression) {
    if (!y.empty()) throw Error(Errc::invalid_argument, "a regression target holds class labels, not values");
    if (!classes.empty()) throw Error(Errc::invalid_argument, "a regression target has no classes");
    for (std::size_t r = 0; r < values.size(); ++r) {
      if (!std::isfinite(values[r])) {
        throw Error(Errc::invalid_argument, fmt::format("the target of row {} is {}, not a finite number", r, values[r]));
      }
    }
  } else {
    if (!values.empty()) throw Error(Errc::invalid_argument, fmt::format("a {} target holds values, not class labels", to_string(task)));
    const std::size_t k = classes.size();
    if (task == Task::binary && k != 2) {
      throw Error(Errc::invalid_argument, fmt::format("a binary target has 2 classes, not {}", k));
    }
    if (task == Task::multiclass && (k < 3 || k > kMaxClasses)) {
      throw Error(Errc::invalid_argument, fmt::format("a multiclass target has 3 to {} classes, not {}", kMaxClasses, k));
    }
    for (std::size_t r = 0; r < y.size(); ++r) {
      if (y[r] < 0 || static_cast<std::size_t>(y[r]) >= k) {
        throw Error(Errc::invalid_argument,
                    k == 2 ? fmt::format("label of row {} is {}, not 0 or 1", r, y[r])
                           : fmt::format("label of row {} is {}, not a class index below {}", r, y[r], k));
      }
    }
  }
  for (std::size_t r = 0; r < x.rows(); ++r) {
    for (std::size_t c = 0; c < x.cols(); ++c) {
      if (std::isinf(x(r, c))) {
        throw Error(Errc::invalid_argument, fmt::format("row {} column {} ('{}') is {}", r, c, feature_names[c], x(r, c)));
      }
    }
  }
}

// ---- synthetic data ------------------------------------------------------------------------------

LabeledData make_classification(const ClassificationSpec& spec) {
  const auto fail = [](const std::string& what) { throw Error(Errc::invalid_argument, "make_classification: " + what); };
  if (spec.rows == 0 || spec.features == 0) fail("rows and features must be at least 1");
  if (spec.informative == 0) fail("informative must be at least 1");
  if (spec.informative + spec.redundant > spec.features) {
    fail(fmt::format("informative ({}) + redundant ({}) exceed features ({})", spec.informative, spec.redundant, spec.features));
  }
  if (spec.clusters_per_class == 0) fail("clusters_per_class must be at least 1");
  if (spec.classes < 2 || spec.classes > kMaxClasses) fail(fmt::format("classes must be 2 to {}", kMaxClasses));
  const std::size_t n_classes = spec.classes;
  const std::size_t clusters = n_classes * spec.clusters_per_class;
  if (spec.informative < 63 && (std::uint64_t{1} << spec.informative) < clusters) {
    fail(fmt::format("{} clusters do not fit on the vertices of a {}-dimensional hypercube", clusters, spec.informative));
  }
  if (!(spec.positive_fraction >= 0 && spec.positive_fraction <= 1)) fail("positive_fraction must be in [0, 1]");
  if (!(spec.flip_y >= 0 && spec.flip_y <= 1)) fail("flip_y must be in [0, 1]");
  if (!(std::isfinite(spec.class_sep) && spec.class_sep >= 0)) fail("class_sep must be finite and >= 0");

  detail::Rng rng(spec.seed);
  const std::size_t n = spec.rows;
  const std::size_t d = spec.features;
  const std::size_t k = spec.informative;

  // Rows per cluster as scikit-learn counts them; cluster c has label c % classes.
  std::vector<double> class_weight(n_classes, 1.0 / static_cast<double>(n_classes));
  if (n_classes == 2) class_weight = {1 - spec.positive_fraction, spec.positive_fraction};
  std::vector<std::size_t> per_cluster(clusters);
  std::size_t assigned = 0;
  for (std::size_t c = 0; c < clusters; ++c) {
    per_cluster[c] = static_cast<std::size_t>(static_cast<double>(n) * class_weight[c % n_classes] /
                                              static_cast<double>(spec.clusters_per_class));
    assigned += per_cluster[c];
  }
  for (std::size_t i = 0; assigned < n; ++i, ++assigned) ++per_cluster[i % clusters];

  // Distinct hypercube vertices, scaled to ±class_sep.
  std::vector<std::vector<double>> centroids;
  std::set<std::vector<bool>> used;
  while (centroids.size() < clusters) {
    std::vector<bool> vertex(k);
    for (std::size_t j = 0; j < k; ++j) vertex[j] = (rng.next() >> 63) != 0;
    if (!used.insert(vertex).second) continue;
    std::vector<double> centroid(k);
    for (std::size_t j = 0; j < k; ++j) centroid[j] = vertex[j] ? spec.class_sep : -spec.class_sep;
    centroids.push_back(std::move(centroid));
  }

  Matrix x(n, d);
  std::vector<int> y(n);
  std::size_t row = 0;
  std::vector<double> z(k);
  for (std::size_t c = 0; c < clusters; ++c) {
    // A random linear mix per cluster gives each cluster its own covariance.
    std::vector<double> mix(k * k);
    for (auto& a : mix) a = 2 * rng.uniform() - 1;
    for (std::size_t i = 0; i < per_cluster[c]; ++i, ++row) {
      for (auto& v : z) v = rng.normal();
      for (std::size_t j = 0; j < k; ++j) {
        double v = centroids[c][j];
        for (std::size_t m = 0; m < k; ++m) v += z[m] * mix[m * k + j];
        x(row, j) = v;
      }
      y[row] = static_cast<int>(c % n_classes);
    }
  }
  // Redundant features: one random linear combination of the informative ones, for all rows.
  std::vector<double> combine(k * spec.redundant);
  for (auto& b : combine) b = 2 * rng.uniform() - 1;
  for (std::size_t r = 0; r < n; ++r) {
    for (std::size_t j = 0; j < spec.redundant; ++j) {
      double v = 0;
      for (std::size_t m = 0; m < k; ++m) v += x(r, m) * combine[m * spec.redundant + j];
      x(r, k + j) = v;
    }
    for (std::size_t j = k + spec.redundant; j < d; ++j) x(r, j) = rng.normal();
  }
  // Label noise: a flipped row gets a fresh fair coin (so half of them keep their label).
  for (std::size_t r = 0; r < n; ++r) {
    if (rng.uniform() < spec.flip_y) y[r] = static_cast<int>(rng.below(n_classes));
  }

  // Shuffle rows, then columns, so neither order nor position gives the signal away.
  std::vector<std::size_t> row_order(n), col_order(d);
  std::iota(row_order.begin(), row_order.end(), std::size_t{0});
  std::iota(col_order.begin(), col_order.end(), std::size_t{0});
  for (std::size_t i = n; i > 1; --i) std::swap(row_order[i - 1], row_order[rng.below(i)]);
  for (std::size_t i = d; i > 1; --i) std::swap(col_order[i - 1], col_order[rng.below(i)]);

  LabeledData out;
  out.target_name = spec.target_name;
  if (n_classes > 2) {
    std::vector<std::int64_t> labels(n_classes);
    std::iota(labels.begin(), labels.end(), std::int64_t{0});
    out.task = Task::multiclass;
    out.classes = ClassLabels::integers(std::move(labels));
  }
  out.x = Matrix(n, d);
  out.y.resize(n);
  for (std::size_t r = 0; r < n; ++r) {
    for (std::size_t c = 0; c < d; ++c) out.x(r, c) = x(row_order[r], col_order[c]);
    out.y[r] = y[row_order[r]];
  }
  for (std::size_t c = 0; c < d; ++c) out.feature_names.push_back(fmt::format("v{}", c + 1));
  return out;
}

LabeledData make_regression(const RegressionSpec& spec) {
  const auto fail = [](const std::string& what) { throw Error(Errc::invalid_argument, "make_regression: " + what); };
  if (spec.rows == 0 || spec.features == 0 || spec.informative == 0) fail("rows, features and informative must be at least 1");
  if (spec.informative > spec.features) {
    fail(fmt::format("informative ({}) exceeds features ({})", spec.informative, spec.features));
  }
  if (!(std::isfinite(spec.noise) && spec.noise >= 0)) fail("noise must be finite and >= 0");
  if (!std::isfinite(spec.bias)) fail("bias must be finite");
  detail::Rng rng(spec.seed);
  const std::size_t n = spec.rows, d = spec.features;
  std::vector<double> weight(spec.informative);
  for (auto& w : weight) w = 100 * rng.uniform();
  Matrix x(n, d);
  LabeledData out;
  out.task = Task::regression;
  out.classes = {};
  out.target_name = spec.target_name;
  out.values.resize(n);
  for (std::size_t r = 0; r < n; ++r) {
    double t = spec.bias;
    for (std::size_t c = 0; c < d; ++c) {
      x(r, c) = rng.normal();
      if (c < spec.informative) t += weight[c] * x(r, c);
    }
    out.values[r] = t + spec.noise * rng.normal();
  }
  // Shuffle columns so the informative ones are not the first.
  std::vector<std::size_t> col_order(d);
  std::iota(col_order.begin(), col_order.end(), std::size_t{0});
  for (std::size_t i = d; i > 1; --i) std::swap(col_order[i - 1], col_order[rng.below(i)]);
  out.x = Matrix(n, d);
  for (std::size_t r = 0; r < n; ++r) {
    for (std::size_t c = 0; c < d; ++c) out.x(r, c) = x(r, col_order[c]);
  }
  for (std::size_t c = 0; c < d; ++c) out.feature_names.push_back(fmt::format("x{}", c + 1));
  return out;
}

// ---- CSV -----------------------------------------------------------------------------------------

namespace {

struct Cell {
  std::string text;
  bool quoted = false;
};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

[[noreturn]] void csv_error(std::string_view source, std::size_t line, const std::string& what) {
  if (line == 0) throw Error(Errc::invalid_argument, fmt::format("{}: {}", source, what));
  throw Error(Errc::invalid_argument, fmt::format("{}:{}: {}", source, line, what));
}

// Splits one line into cells; "double-quoted" cells may contain commas and "" for a quote.
std::vector<Cell> split_line(std::string_view line, std::string_view source, std::size_t line_number) {
  std::vector<Cell> cells;
  std::size_t i = 0;
  for (;;) {
    Cell cell;
    std::size_t start = i;
    while (start < line.size() && (line[start] == ' ' || line[start] == '\t')) ++start;
    if (start < line.size() && line[start] == '"') {
      cell.quoted = true;
      std::size_t j = start + 1;
      for (;;) {
        if (j >= line.size()) csv_error(source, line_number, fmt::format("column {}: unterminated quote", cells.size() + 1));
        if (line[j] == '"') {
          if (j + 1 < line.size() && line[j + 1] == '"') {
            cell.text.push_back('"');
            j += 2;
            continue;
          }
          ++j;
          break;
        }
        cell.text.push_back(line[j++]);
      }
      while (j < line.size() && (line[j] == ' ' || line[j] == '\t')) ++j;
      if (j < line.size() && line[j] != ',') {
        csv_error(source, line_number, fmt::format("column {}: text after the closing quote", cells.size() + 1));
      }
      i = j;
    } else {
      const std::size_t comma = line.find(',', i);
      const std::size_t end = comma == std::string_view::npos ? line.size() : comma;
      cell.text = std::string(trim(line.substr(i, end - i)));
      i = end;
    }
    cells.push_back(std::move(cell));
    if (i >= line.size()) break;
    ++i;  // the comma
    if (i == line.size()) {  // a trailing comma: one more, empty cell
      cells.push_back({});
      break;
    }
  }
  return cells;
}

bool parse_number(std::string_view text, double& value) {
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  if (text.empty()) return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && end == text.data() + text.size();
}

struct TargetCell {
  std::string text;
  std::size_t line = 0;
};

// A whole number this far from zero is still exact in a double, so labels read as numbers are
// the labels written.
constexpr double kMaxIntegerLabel = 9007199254740992.0;  // 2^53

bool integer_label(double v) noexcept { return std::isfinite(v) && std::trunc(v) == v && std::fabs(v) < kMaxIntegerLabel; }

std::string quoted_list(const std::vector<std::string>& labels) {
  std::string out;
  const std::size_t shown = std::min<std::size_t>(labels.size(), 10);
  for (std::size_t i = 0; i < shown; ++i) out += fmt::format("{}'{}'", i == 0 ? "" : ", ", labels[i]);
  if (shown < labels.size()) out += fmt::format(" and {} more", labels.size() - shown);
  return out;
}

// The target column's cells into data.task, data.classes and data.y or data.values, by the rules
// in labeled_data.hpp. `fail(line, what)` throws.
void read_target(LabeledData& data, const std::vector<TargetCell>& cells, const CsvReadOptions& options,
                 const std::function<void(std::size_t, const std::string&)>& fail) {
  const std::size_t n = cells.size();
  std::vector<double> numbers(n);
  std::optional<std::size_t> text_cell, fraction_cell;  // the first cell of each kind
  for (std::size_t i = 0; i < n; ++i) {
    double v = 0;
    if (!parse_number(cells[i].text, v) || !std::isfinite(v)) {
      if (!text_cell) text_cell = i;
    } else if (!integer_label(v) && !fraction_cell) {
      fraction_cell = i;
    }
    numbers[i] = v;
  }
  const std::optional<Task> task = options.task;

  // Regression: numbers.
  if (task == Task::regression || (!task && options.classes.empty() && !text_cell && fraction_cell)) {
    if (text_cell) {
      fail(cells[*text_cell].line, fmt::format("'{}' is not a number; a regression target holds numbers", cells[*text_cell].text));
    }
    data.task = Task::regression;
    data.classes = {};
    data.values = std::move(numbers);
    return;
  }

  // Classification against given classes.
  if (!options.classes.empty()) {
    const ClassLabels& classes = options.classes;
    data.classes = classes;
    data.task = task.value_or(classes.size() == 2 ? Task::binary : Task::multiclass);
    data.y.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      std::optional<std::size_t> index;
      if (classes.are_integers()) {
        if (integer_label(numbers[i]) && !text_cell) {
          const auto it = std::find(classes.integer_values().begin(), classes.integer_values().end(),
                                    static_cast<std::int64_t>(numbers[i]));
          if (it != classes.integer_values().end()) index = static_cast<std::size_t>(it - classes.integer_values().begin());
        }
      } else {
        index = classes.find(cells[i].text);
      }
      if (!index) {
        fail(cells[i].line, fmt::format("label '{}' is not one of the {} classes ({})", cells[i].text, classes.size(),
                                        quoted_list(classes.texts())));
      }
      data.y[i] = static_cast<int>(*index);
    }
    return;
  }

  // Classification: the labels found, sorted.
  if (!text_cell && fraction_cell) {
    fail(cells[*fraction_cell].line,
         fmt::format("label '{}' is not a whole number; a {} target holds integers or names (real values are a "
                     "regression target)",
                     cells[*fraction_cell].text, to_string(*task)));
  }
  ClassLabels classes;
  if (text_cell) {
    std::vector<std::string> labels;
    labels.reserve(n);
    for (const auto& c : cells) labels.push_back(c.text);
    std::sort(labels.begin(), labels.end());
    labels.erase(std::unique(labels.begin(), labels.end()), labels.end());
    if (labels.size() > kMaxClasses) {
      fail(0, fmt::format("{} distinct labels are more than the {} classes a classifier may have", labels.size(), kMaxClasses));
    }
    for (const auto& l : labels) {
      if (l.size() > 256) fail(0, fmt::format("a label of {} bytes is longer than the limit of 256", l.size()));
    }
    classes = ClassLabels::strings(std::move(labels));
  } else {
    std::vector<std::int64_t> labels;
    labels.reserve(n);
    for (double v : numbers) labels.push_back(static_cast<std::int64_t>(v));
    std::sort(labels.begin(), labels.end());
    labels.erase(std::unique(labels.begin(), labels.end()), labels.end());
    if (labels.size() > kMaxClasses) {
      fail(0, fmt::format("{} distinct integer labels are more than the {} classes a classifier may have; if the "
                          "target is a quantity, read it as a regression target",
                          labels.size(), kMaxClasses));
    }
    // One class of a 0/1 target (e.g. test rows that are all negative) is still that target.
    if (labels.size() == 1 && (labels[0] == 0 || labels[0] == 1) && task != Task::multiclass) labels = {0, 1};
    classes = ClassLabels::integers(std::move(labels));
  }
  const std::size_t k = classes.size();
  if (n > 0 && k < 2) {
    fail(cells[0].line, fmt::format("every label is '{}'; a classifier needs at least two classes", cells[0].text));
  }
  // Many distinct whole numbers are more often a quantity (a count, a price in cents) than
  // classes: a guess either way could train the wrong kind of model, so the caller must say.
  if (!task && classes.are_integers() && k > kMaxInferredIntegerClasses) {
    fail(0, fmt::format("the target holds {} distinct whole numbers; say whether it is a quantity (--task "
                        "regression) or {} classes (--task multiclass)",
                        k, k));
  }
  const Task inferred = k <= 2 ? Task::binary : Task::multiclass;
  if (task == Task::binary && k > 2) {
    fail(0, fmt::format("a binary target has 2 classes, this one {} ({})", k, quoted_list(classes.texts())));
  }
  if (task == Task::multiclass && k < 3 && n > 0) {
    fail(0, fmt::format("a multiclass target has at least 3 classes, this one {} ({}); it is binary", k,
                        quoted_list(classes.texts())));
  }
  data.task = task.value_or(inferred);
  data.y.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t index = 0;
    if (classes.are_integers()) {
      const auto& v = classes.integer_values();
      index = static_cast<std::size_t>(std::lower_bound(v.begin(), v.end(), static_cast<std::int64_t>(numbers[i])) - v.begin());
    } else {
      const auto& v = classes.string_values();
      index = static_cast<std::size_t>(std::lower_bound(v.begin(), v.end(), cells[i].text) - v.begin());
    }
    data.y[i] = static_cast<int>(index);
  }
  if (n == 0 && data.task == Task::binary && classes.size() != 2) classes = ClassLabels::zero_one();
  data.classes = std::move(classes);
}

}  // namespace

LabeledData read_csv(std::istream& in, std::string_view source, const CsvReadOptions& options) {
  std::string content{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) throw Error(Errc::io_error, fmt::format("{}: read failed", source));
  std::string_view rest(content);
  if (rest.substr(0, 3) == "\xEF\xBB\xBF") rest.remove_prefix(3);  // a UTF-8 byte order mark

  std::size_t line_number = 0;
  auto next_line = [&](std::string_view& line) {
    while (!rest.empty()) {
      const std::size_t newline = rest.find('\n');
      line = rest.substr(0, newline);
      rest = newline == std::string_view::npos ? std::string_view() : rest.substr(newline + 1);
      ++line_number;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (!trim(line).empty()) return true;  // blank lines are skipped
    }
    return false;
  };

  std::string_view line;
  if (!next_line(line)) csv_error(source, 0, "empty file (expected a header row of column names)");
  const std::size_t header_line = line_number;
  const std::vector<Cell> header = split_line(line, source, header_line);
  std::set<std::string> seen;
  for (std::size_t c = 0; c < header.size(); ++c) {
    if (header[c].text.empty()) csv_error(source, header_line, fmt::format("column {} has no name", c + 1));
    if (!seen.insert(header[c].text).second) {
      csv_error(source, header_line, fmt::format("column {}: duplicate column name '{}'", c + 1, header[c].text));
    }
  }
  std::optional<std::size_t> target;
  if (!options.target.empty()) {
    for (std::size_t c = 0; c < header.size(); ++c) {
      if (header[c].text == options.target) target = c;
    }
    if (!target && options.target_required) {
      std::string names;
      for (const auto& h : header) names += (names.empty() ? "" : ", ") + h.text;
      csv_error(source, header_line, fmt::format("no target column '{}' (the columns are: {})", options.target, names));
    }
  }

  LabeledData data;
  if (target) data.target_name = header[*target].text;
  else if (!options.target.empty()) data.target_name = options.target;
  for (std::size_t c = 0; c < header.size(); ++c) {
    if (c != target) data.feature_names.push_back(header[c].text);
  }
  if (data.feature_names.empty()) csv_error(source, header_line, "no feature columns");

  const std::size_t n_features = data.feature_names.size();
  std::vector<double> values;
  std::vector<double> row(n_features);
  std::vector<TargetCell> target_cells;
  while (next_line(line)) {
    const std::vector<Cell> cells = split_line(line, source, line_number);
    if (cells.size() != header.size()) {
      csv_error(source, line_number, fmt::format("{} cells, but the header has {} columns", cells.size(), header.size()));
    }
    std::size_t f = 0;
    for (std::size_t c = 0; c < cells.size(); ++c) {
      const std::string& text = cells[c].text;
      if (c == target) {
        if (text.empty()) csv_error(source, line_number, fmt::format("column {} ('{}'): the target is empty", c + 1, header[c].text));
        target_cells.push_back({text, line_number});
        continue;
      }
      double v = 0;
      if (text.empty()) {
        v = std::numeric_limits<double>::quiet_NaN();  // missing
      } else if (!parse_number(text, v)) {
        csv_error(source, line_number, fmt::format("column {} ('{}'): '{}' is not a number", c + 1, header[c].text, text));
      } else if (!std::isfinite(v)) {
        csv_error(source, line_number, fmt::format("column {} ('{}'): '{}' is not a finite number", c + 1, header[c].text, text));
      }
      row[f++] = v;
    }
    values.insert(values.end(), row.begin(), row.end());
  }
  data.x = Matrix(std::move(values), n_features);
  if (target) {
    read_target(data, target_cells, options, [&](std::size_t at, const std::string& what) {
      csv_error(source, at, fmt::format("column {} ('{}'): {}", *target + 1, header[*target].text, what));
    });
  }
  return data;
}

LabeledData read_csv(const std::filesystem::path& file, const CsvReadOptions& options) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) throw Error(Errc::not_found, fmt::format("{}: no such file", file.string()));
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(Errc::io_error, fmt::format("{}: cannot open for reading", file.string()));
  return read_csv(in, file.string(), options);
}

namespace {

std::string csv_name(const std::string& name) {
  // A leading byte order mark is quoted too: read_csv drops one at the start of the file.
  if (name.find_first_of(",\"\r\n") == std::string::npos && trim(name) == name && !name.starts_with("\xEF\xBB\xBF")) {
    return name;
  }
  std::string quoted = "\"";
  for (char c : name) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + '"';
}

}  // namespace

void write_csv(const LabeledData& data, std::ostream& out) {
  data.check();
  fmt::memory_buffer buffer;
  for (std::size_t c = 0; c < data.feature_names.size(); ++c) {
    fmt::format_to(std::back_inserter(buffer), "{}{}", c == 0 ? "" : ",", csv_name(data.feature_names[c]));
  }
  if (data.has_labels()) fmt::format_to(std::back_inserter(buffer), ",{}", csv_name(data.target_name));
  buffer.push_back('\n');
  for (std::size_t r = 0; r < data.rows(); ++r) {
    // "{}" is the shortest text that reads back as the same double (fmt's round-trip guarantee).
    for (std::size_t c = 0; c < data.n_features(); ++c) {
      if (c > 0) buffer.push_back(',');
      if (!std::isnan(data.x(r, c))) {
        fmt::format_to(std::back_inserter(buffer), "{}", data.x(r, c));
      } else if (data.n_features() == 1 && !data.has_labels()) {
        fmt::format_to(std::back_inserter(buffer), "\"\"");  // missing, and not a blank line (skipped on reading)
      }  // else NaN (missing): an empty cell
    }
    if (!data.values.empty()) {
      fmt::format_to(std::back_inserter(buffer), ",{}", data.values[r]);
    } else if (!data.y.empty()) {
      fmt::format_to(std::back_inserter(buffer), ",{}", csv_name(data.classes.text(static_cast<std::size_t>(data.y[r]))));
    }
    buffer.push_back('\n');
    if (buffer.size() > (1u << 20)) {
      out.write(buffer.data(), static_cast<std::streamsize>(buffer.size()));
      buffer.clear();
    }
  }
  out.write(buffer.data(), static_cast<std::streamsize>(buffer.size()));
  out.flush();
  if (!out) throw Error(Errc::io_error, "writing CSV failed");
}

void write_csv(const LabeledData& data, const std::filesystem::path& file) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  if (!out) throw Error(Errc::io_error, fmt::format("{}: cannot open for writing", file.string()));
  try {
    write_csv(data, out);
  } catch (const Error& e) {
    if (e.code() != Errc::io_error) throw;
    throw Error(Errc::io_error, fmt::format("{}: write failed (disk full?)", file.string()));
  }
}

// ---- splitting -----------------------------------------------------------------------------------

TrainTestSplit stratified_split(const LabeledData& data, double test_fraction, std::uint64_t seed) {
  if (!data.has_labels()) throw Error(Errc::invalid_argument, "stratified_split needs labeled rows");
  if (!(test_fraction > 0 && test_fraction < 1)) {
    throw Error(Errc::invalid_argument, fmt::format("test_fraction must be in (0, 1) (got {})", test_fraction));
  }
  detail::Rng rng(seed);
  std::vector<bool> in_test(data.rows(), false);
  // Regression has one stratum: every row.
  const std::size_t strata = data.is_classification() ? data.n_classes() : 1;
  for (std::size_t label = 0; label < strata; ++label) {
    std::vector<std::size_t> rows;
    for (std::size_t r = 0; r < data.rows(); ++r) {
      if (!data.is_classification() || static_cast<std::size_t>(data.y[r]) == label) rows.push_back(r);
    }
    const auto take = static_cast<std::size_t>(std::llround(test_fraction * static_cast<double>(rows.size())));
    for (std::size_t i = 0; i < take; ++i) {  // the head of a Fisher–Yates shuffle
      std::swap(rows[i], rows[i + static_cast<std::size_t>(rng.below(rows.size() - i))]);
      in_test[rows[i]] = true;
    }
  }
  std::vector<std::size_t> train_rows, test_rows;
  for (std::size_t r = 0; r < data.rows(); ++r) (in_test[r] ? test_rows : train_rows).push_back(r);
  if (train_rows.empty() || test_rows.empty()) {
    throw Error(Errc::invalid_argument, fmt::format("a test fraction of {} of {} rows leaves one side empty",
                                                    test_fraction, data.rows()));
  }
  return {data.subset(train_rows), data.subset(test_rows)};
}

}  // namespace modelreg
