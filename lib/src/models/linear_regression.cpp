#include "modelreg/linear_regression.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "modelreg/labeled_data.hpp"
#include "models/hyperparameter_fields.hpp"
#include "models/linear_algebra.hpp"
#include "models/model_io.hpp"
#include "models/training_input.hpp"

BOOST_CLASS_VERSION(modelreg::LinearRegression, 1)
BOOST_CLASS_EXPORT_KEY2(modelreg::LinearRegression, modelreg::LinearRegression::kTypeName)

namespace modelreg {

namespace {

constexpr std::string_view kType = LinearRegression::kTypeName;

// Above this many unknowns (the smaller of rows and features) the dense system (8·m² bytes,
// O(m³) to factor) gives way to conjugate gradients.
constexpr std::size_t kDirectMaxUnknowns = 4096;

// Solves the SPD system a·x = b in place, adding a little more ridge if rounding makes the
// Cholesky factorization fail (it cannot in exact arithmetic: alpha > 0).
void solve_spd(std::vector<double> a, std::size_t m, std::vector<double>& x) {
  const std::vector<double> b = x;
  double jitter = 0;
  while (!detail::cholesky_solve(a, m, x)) {
    jitter = jitter == 0 ? 1e-12 : jitter * 10;
    for (std::size_t i = 0; i < m; ++i) a[i * m + i] += jitter;
    x = b;
    if (jitter > 1e6) break;
  }
}

}  // namespace

LinearRegression LinearRegression::train(MatrixView x, std::span<const double> values, const Params& params) {
  detail::check_hyperparameters(kType, params);
  detail::check_value_targets(kType, x, values);
  const std::size_t n = x.rows();
  const std::size_t d = x.cols();
  const double alpha = params.alpha;

  // Centre the columns and the target: the intercept is then ȳ − x̄·w and takes no penalty.
  std::vector<double> mean(d, 0.0);
  double y_mean = 0;
  for (std::size_t r = 0; r < n; ++r) {
    for (std::size_t j = 0; j < d; ++j) mean[j] += x(r, j);
    y_mean += values[r];
  }
  for (auto& m : mean) m /= static_cast<double>(n);
  y_mean /= static_cast<double>(n);
  std::vector<double> xc(n * d), yc(n);
  for (std::size_t r = 0; r < n; ++r) {
    for (std::size_t j = 0; j < d; ++j) xc[r * d + j] = x(r, j) - mean[j];
    yc[r] = values[r] - y_mean;
  }

  std::vector<double> w(d, 0.0);
  if (d <= n && d <= kDirectMaxUnknowns) {
    // Primal: (XᵀX + αI)·w = Xᵀy, d × d.
    std::vector<double> a(d * d, 0.0);
    for (std::size_t r = 0; r < n; ++r) {
      const double* row = xc.data() + r * d;
      for (std::size_t i = 0; i < d; ++i) {
        const double v = row[i];
        for (std::size_t j = 0; j <= i; ++j) a[i * d + j] += v * row[j];
        w[i] += v * yc[r];
      }
    }
    for (std::size_t i = 0; i < d; ++i) a[i * d + i] += alpha;
    solve_spd(std::move(a), d, w);
  } else if (n < d && n <= kDirectMaxUnknowns) {
    // Dual (wide data): (XXᵀ + αI)·c = y, n × n; w = Xᵀc.
    std::vector<double> a(n * n, 0.0);
    for (std::size_t i = 0; i < n; ++i) {
      for (std::size_t j = 0; j <= i; ++j) {
        double s = 0;
        for (std::size_t f = 0; f < d; ++f) s += xc[i * d + f] * xc[j * d + f];
        a[i * n + j] = s;
      }
      a[i * n + i] += alpha;
    }
    std::vector<double> dual = yc;
    solve_spd(std::move(a), n, dual);
    for (std::size_t r = 0; r < n; ++r) {
      for (std::size_t f = 0; f < d; ++f) w[f] += xc[r * d + f] * dual[r];
    }
  } else {
    // Both large: conjugate gradients on (XᵀX + αI)·w = Xᵀy with products by X and Xᵀ.
    auto times = [&](const std::vector<double>& v, std::vector<double>& out) {
      std::fill(out.begin(), out.end(), 0.0);
      for (std::size_t r = 0; r < n; ++r) {
        const double* row = xc.data() + r * d;
        double s = 0;
        for (std::size_t f = 0; f < d; ++f) s += row[f] * v[f];
        for (std::size_t f = 0; f < d; ++f) out[f] += s * row[f];
      }
      for (std::size_t f = 0; f < d; ++f) out[f] += alpha * v[f];
    };
    std::vector<double> residual(d, 0.0), direction(d), product(d);
    for (std::size_t r = 0; r < n; ++r) {
      for (std::size_t f = 0; f < d; ++f) residual[f] += xc[r * d + f] * yc[r];
    }
    direction = residual;
    auto dot = [](const std::vector<double>& a, const std::vector<double>& b) {
      double s = 0;
      for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
      return s;
    };
    double rr = dot(residual, residual);
    const double stop = 1e-20 * rr;
    for (std::size_t i = 0; i < 10 * d && rr > stop; ++i) {
      times(direction, product);
      const double step = rr / dot(direction, product);
      for (std::size_t f = 0; f < d; ++f) {
        w[f] += step * direction[f];
        residual[f] -= step * product[f];
      }
      const double next = dot(residual, residual);
      for (std::size_t f = 0; f < d; ++f) direction[f] = residual[f] + next / rr * direction[f];
      rr = next;
    }
  }

  LinearRegression model;
  model.params_ = params;
  model.coef_ = std::move(w);
  model.intercept_ = y_mean;
  for (std::size_t j = 0; j < d; ++j) model.intercept_ -= mean[j] * model.coef_[j];
  return model;
}

LinearRegression LinearRegression::train(const LabeledData& data, const Params& params) {
  data.check();
  if (data.task != Task::regression) {
    // A target of whole numbers (counts, prices in cents) is read as class labels unless the task
    // is given: say so, since that is the usual way to get here.
    detail::refuse_task(kType, to_string(data.task),
                        "regression (a target of whole numbers reads as class labels: set the task to regression, "
                        "--task regression)");
  }
  return train(data.x, data.values, params);
}

std::map<std::string, std::string> LinearRegression::hyperparameters() const { return detail::hyperparameter_texts(params_); }

void LinearRegression::compute(MatrixView x, std::span<double> out) const {
  const std::size_t d = coef_.size();
  for (std::size_t r = 0; r < x.rows(); ++r) {
    const double* row = x.row(r).data();
    double s = intercept_;
    for (std::size_t j = 0; j < d; ++j) s += coef_[j] * row[j];
    out[r] = s;
  }
}

// Version 1: alpha, the coefficients, the intercept.
template <class Archive>
void LinearRegression::serialize(Archive& archive, unsigned version) {
  check_class_version<LinearRegression>(version, kType);
  archive & boost::serialization::base_object<Model>(*this);
  archive & params_.alpha;
  serialize_vector(archive, coef_);
  archive & intercept_;
  if constexpr (Archive::is_loading::value) {
    if (coef_.empty()) detail::corrupt(kType, "no coefficients");
    const auto finite = [](double v) { return std::isfinite(v); };
    if (!std::all_of(coef_.begin(), coef_.end(), finite) || !std::isfinite(intercept_)) {
      detail::corrupt(kType, "a non-finite coefficient or intercept");
    }
    if (!(std::isfinite(params_.alpha) && params_.alpha > 0)) detail::corrupt(kType, fmt::format("alpha {}", params_.alpha));
  }
}

}  // namespace modelreg

BOOST_CLASS_EXPORT_IMPLEMENT(modelreg::LinearRegression)
