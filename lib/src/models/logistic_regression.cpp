#include "modelreg/logistic_regression.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "modelreg/labeled_data.hpp"
#include "models/hyperparameter_fields.hpp"
#include "models/model_io.hpp"
#include "models/training_input.hpp"

BOOST_CLASS_VERSION(modelreg::LogisticRegression, 1)
BOOST_CLASS_EXPORT_KEY2(modelreg::LogisticRegression, modelreg::LogisticRegression::kTypeName)

namespace modelreg {

namespace {

constexpr std::string_view kType = LogisticRegression::kTypeName;

double sigmoid(double z) noexcept {
  if (z >= 0) return 1.0 / (1.0 + std::exp(-z));
  const double e = std::exp(z);
  return e / (1.0 + e);
}

// log(1 + e^z) without overflow.
double softplus(double z) noexcept { return z > 0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z)); }

// Solves A·x = b for a symmetric positive definite A (n × n, row-major; only the lower triangle is
// read) by Cholesky. Returns false when A is not numerically positive definite.
bool cholesky_solve(std::vector<double> a, std::size_t n, std::vector<double>& x) {
  for (std::size_t j = 0; j < n; ++j) {
    double d = a[j * n + j];
    for (std::size_t k = 0; k < j; ++k) d -= a[j * n + k] * a[j * n + k];
    if (!(d > 0)) return false;
    const double l = std::sqrt(d);
    a[j * n + j] = l;
    for (std::size_t i = j + 1; i < n; ++i) {
      double s = a[i * n + j];
      for (std::size_t k = 0; k < j; ++k) s -= a[i * n + k] * a[j * n + k];
      a[i * n + j] = s / l;
    }
  }
  for (std::size_t i = 0; i < n; ++i) {  // L·y = b
    double s = x[i];
    for (std::size_t k = 0; k < i; ++k) s -= a[i * n + k] * x[k];
    x[i] = s / a[i * n + i];
  }
  for (std::size_t i = n; i-- > 0;) {  // Lᵀ·x = y
    double s = x[i];
    for (std::size_t k = i + 1; k < n; ++k) s -= a[k * n + i] * x[k];
    x[i] = s / a[i * n + i];
  }
  return true;
}

// Above this many features the d×d Hessian (8·d² bytes, O(rows·d²) to build) gives way to
// Hessian-free Newton-CG: the same Newton iteration, each step solved by conjugate gradients with
// Hessian-vector products in O(rows·d), so memory stays linear in the features. Both stop on the
// same gradient tolerance, so both reach the same optimum (within it); at or below this size the
// exact solve keeps results bit-for-bit as before.
constexpr std::size_t kDirectNewtonMaxFeatures = 256;

// Conjugate-gradient iterations per Newton step at most. The Hessian is the identity plus a
// rank-`rows` term, so with few rows CG is exact after rows + 2 iterations; with many rows an
// inexact step is still a descent direction and the line search keeps progress monotone.
constexpr int kMaxConjugateGradientSteps = 250;

double dot(const std::vector<double>& a, const std::vector<double>& b) noexcept {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Approximately solves H·step = -gradient by conjugate gradients, where H·v = [v_w; 0] +
// Aᵀ·diag(h)·A·v and A is the standardized data with a column of ones (the intercept) appended.
// Stops when the residual falls below min(0.5, sqrt(|g|))·|g| (the forcing term of inexact
// Newton, superlinear near the optimum), or at negative curvature (not expected: H is PSD).
void conjugate_gradient_step(const std::vector<double>& z, std::size_t n, std::size_t d,
                             const std::vector<double>& h, const std::vector<double>& gradient,
                             std::vector<double>& step) {
  const std::size_t k = d + 1;
  auto hessian_times = [&](const std::vector<double>& v, std::vector<double>& out) {
    for (std::size_t j = 0; j < d; ++j) out[j] = v[j];
    out[d] = 0;
    for (std::size_t r = 0; r < n; ++r) {
      const double* zr = z.data() + r * d;
      double u = v[d];
      for (std::size_t j = 0; j < d; ++j) u += zr[j] * v[j];
      const double t = h[r] * u;
      for (std::size_t j = 0; j < d; ++j) out[j] += t * zr[j];
      out[d] += t;
    }
  };
  std::vector<double> residual(k), direction(k), product(k);
  for (std::size_t i = 0; i < k; ++i) residual[i] = -gradient[i];
  std::fill(step.begin(), step.end(), 0.0);
  direction = residual;
  double rr = dot(residual, residual);
  const double norm = std::sqrt(rr);
  const double target = std::min(0.5, std::sqrt(norm)) * norm;
  for (int i = 0; i < kMaxConjugateGradientSteps && std::sqrt(rr) > target; ++i) {
    hessian_times(direction, product);
    const double curvature = dot(direction, product);
    if (!(curvature > 0)) {
      if (i == 0) step = direction;  // steepest descent; the line search scales it
      break;
    }
    const double alpha = rr / curvature;
    for (std::size_t j = 0; j < k; ++j) {
      step[j] += alpha * direction[j];
      residual[j] -= alpha * product[j];
    }
    const double next = dot(residual, residual);
    const double beta = next / rr;
    rr = next;
    for (std::size_t j = 0; j < k; ++j) direction[j] = residual[j] + beta * direction[j];
  }
}

}  // namespace

LogisticRegression LogisticRegression::train(MatrixView x, std::span<const int> y, const Params& params) {
  detail::check_hyperparameters(kType, params);
  detail::check_training_input(kType, x, y, true);

  const std::size_t n = x.rows();
  const std::size_t d = x.cols();
  const std::size_t k = d + 1;  // weights, then the intercept
  LogisticRegression model;
  model.params_ = params;
  model.mean_.assign(d, 0.0);
  model.scale_.assign(d, 0.0);
  for (std::size_t r = 0; r < n; ++r) {
    for (std::size_t j = 0; j < d; ++j) model.mean_[j] += x(r, j);
  }
  for (auto& m : model.mean_) m /= static_cast<double>(n);
  for (std::size_t r = 0; r < n; ++r) {
    for (std::size_t j = 0; j < d; ++j) {
      const double c = x(r, j) - model.mean_[j];
      model.scale_[j] += c * c;
    }
  }
  for (auto& s : model.scale_) {
    s = std::sqrt(s / static_cast<double>(n));
    if (!(s > 0)) s = 1.0;  // a constant feature: leave it unscaled (its weight stays 0)
  }
  std::vector<double> z(n * d);
  for (std::size_t r = 0; r < n; ++r) {
    for (std::size_t j = 0; j < d; ++j) z[r * d + j] = (x(r, j) - model.mean_[j]) / model.scale_[j];
  }

  const double c = params.C;
  std::vector<double> w(k, 0.0);
  auto objective = [&](const std::vector<double>& v) {
    double loss = 0;
    for (std::size_t r = 0; r < n; ++r) {
      double s = v[d];
      for (std::size_t j = 0; j < d; ++j) s += z[r * d + j] * v[j];
      loss += softplus(s) - y[r] * s;
    }
    double penalty = 0;
    for (std::size_t j = 0; j < d; ++j) penalty += v[j] * v[j];
    return c * loss + 0.5 * penalty;
  };

  const double gradient_tolerance = params.tol * std::max(1.0, c * static_cast<double>(n));
  const bool direct = d <= kDirectNewtonMaxFeatures;
  std::vector<double> gradient(k), hessian(direct ? k * k : 0), curvature(direct ? 0 : n), step(k), trial(k);
  double current = objective(w);
  for (int iteration = 1; iteration <= params.max_iter + 1; ++iteration) {
    std::fill(gradient.begin(), gradient.end(), 0.0);
    std::fill(hessian.begin(), hessian.end(), 0.0);
    for (std::size_t r = 0; r < n; ++r) {
      const double* zr = z.data() + r * d;
      double s = w[d];
      for (std::size_t j = 0; j < d; ++j) s += zr[j] * w[j];
      const double p = sigmoid(s);
      const double g = c * (p - y[r]);
      const double h = c * p * (1 - p);
      if (direct) {
        for (std::size_t a = 0; a < d; ++a) {
          gradient[a] += g * zr[a];
          const double ha = h * zr[a];
          for (std::size_t b = 0; b <= a; ++b) hessian[a * k + b] += ha * zr[b];
          hessian[d * k + a] += ha;
        }
        hessian[d * k + d] += h;
      } else {
        for (std::size_t a = 0; a < d; ++a) gradient[a] += g * zr[a];
        curvature[r] = h;
      }
      gradient[d] += g;
    }
    for (std::size_t j = 0; j < d; ++j) {
      gradient[j] += w[j];
      if (direct) hessian[j * k + j] += 1.0;
    }
    double largest = 0;
    for (double g : gradient) largest = std::max(largest, std::fabs(g));
    if (largest <= gradient_tolerance) {
      model.converged_ = true;
      break;
    }
    if (iteration > params.max_iter) break;
    model.iterations_ = iteration;

    if (!direct) {
      conjugate_gradient_step(z, n, d, curvature, gradient, step);
    } else {
      for (std::size_t i = 0; i < k; ++i) step[i] = -gradient[i];
      // The Hessian is positive definite in exact arithmetic (the penalty adds the identity on the
      // weights); if rounding says otherwise, add a little more ridge until Cholesky succeeds.
      double ridge = 0;
      while (!cholesky_solve(hessian, k, step)) {
        ridge = ridge == 0 ? 1e-10 : ridge * 10;
        for (std::size_t i = 0; i < k; ++i) {
          step[i] = -gradient[i];
          hessian[i * k + i] += ridge;
        }
        if (ridge > 1e6) break;
      }
    }
    double slope = 0;
    for (std::size_t i = 0; i < k; ++i) slope += gradient[i] * step[i];
    // Backtracking (Armijo) line search; a full Newton step is accepted near the optimum.
    double t = 1.0;
    double next = current;
    for (int halvings = 0; halvings < 60; ++halvings, t /= 2) {
      for (std::size_t i = 0; i < k; ++i) trial[i] = w[i] + t * step[i];
      next = objective(trial);
      if (next <= current + 1e-4 * t * slope) break;
    }
    if (!(next < current)) break;  // no further progress is possible in floating point
    w = trial;
    current = next;
  }
  model.coef_.assign(w.begin(), w.begin() + static_cast<std::ptrdiff_t>(d));
  model.intercept_ = w[d];
  return model;
}

LogisticRegression LogisticRegression::train(const LabeledData& data, const Params& params) {
  return train(data.x, data.y, params);
}

std::map<std::string, std::string> LogisticRegression::hyperparameters() const { return detail::hyperparameter_texts(params_); }

void LogisticRegression::compute(MatrixView x, std::span<double> out) const {
  const std::size_t d = coef_.size();
  for (std::size_t r = 0; r < x.rows(); ++r) {
    const double* row = x.row(r).data();
    double s = intercept_;
    for (std::size_t j = 0; j < d; ++j) s += coef_[j] * ((row[j] - mean_[j]) / scale_[j]);
    out[r] = sigmoid(s);
  }
}

// Version 1: params, mean, scale, coefficients, intercept, iterations, converged.
template <class Archive>
void LogisticRegression::serialize(Archive& archive, unsigned version) {
  check_class_version<LogisticRegression>(version, kType);
  archive & boost::serialization::base_object<Model>(*this);
  archive & params_.C & params_.max_iter & params_.tol;
  serialize_vector(archive, mean_);
  serialize_vector(archive, scale_);
  serialize_vector(archive, coef_);
  archive & intercept_ & iterations_;
  detail::serialize_flag(archive, converged_);
  if constexpr (Archive::is_loading::value) {
    const std::size_t d = coef_.size();
    if (d == 0 || mean_.size() != d || scale_.size() != d) {
      detail::corrupt(kType, fmt::format("{} coefficients, {} means, {} scales", d, mean_.size(), scale_.size()));
    }
    const auto finite = [](double v) { return std::isfinite(v); };
    if (!std::all_of(coef_.begin(), coef_.end(), finite) || !std::all_of(mean_.begin(), mean_.end(), finite) ||
        !std::all_of(scale_.begin(), scale_.end(), [](double s) { return std::isfinite(s) && s > 0; }) ||
        !std::isfinite(intercept_)) {
      detail::corrupt(kType, "a non-finite coefficient, mean or scale");
    }
  }
}

}  // namespace modelreg

BOOST_CLASS_EXPORT_IMPLEMENT(modelreg::LogisticRegression)
