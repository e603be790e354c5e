#include "modelreg/logistic_regression.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "modelreg/labeled_data.hpp"
#include "models/hyperparameter_fields.hpp"
#include "models/linear_algebra.hpp"
#include "models/model_io.hpp"
#include "models/task_io.hpp"
#include "models/training_input.hpp"

// Version 2 adds the task, the classes and the multiclass intercepts; version 1 archives load as
// binary models with classes {0, 1}.
BOOST_CLASS_VERSION(modelreg::LogisticRegression, 2)
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

// The training mean and population standard deviation of each column (1 for a constant column),
// and the standardized rows.
std::vector<double> standardize(MatrixView x, std::vector<double>& mean, std::vector<double>& scale) {
  const std::size_t n = x.rows();
  const std::size_t d = x.cols();
  mean.assign(d, 0.0);
  scale.assign(d, 0.0);
  for (std::size_t r = 0; r < n; ++r) {
    for (std::size_t j = 0; j < d; ++j) mean[j] += x(r, j);
  }
  for (auto& m : mean) m /= static_cast<double>(n);
  for (std::size_t r = 0; r < n; ++r) {
    for (std::size_t j = 0; j < d; ++j) {
      const double c = x(r, j) - mean[j];
      scale[j] += c * c;
    }
  }
  for (auto& s : scale) {
    s = std::sqrt(s / static_cast<double>(n));
    if (!(s > 0)) s = 1.0;  // a constant feature: leave it unscaled (its weight stays 0)
  }
  std::vector<double> z(n * d);
  for (std::size_t r = 0; r < n; ++r) {
    for (std::size_t j = 0; j < d; ++j) z[r * d + j] = (x(r, j) - mean[j]) / scale[j];
  }
  return z;
}

// In place: k raw scores to probabilities; returns log Σ exp(raw).
double softmax(double* s, std::size_t k) noexcept {
  const double top = *std::max_element(s, s + k);
  double sum = 0;
  for (std::size_t c = 0; c < k; ++c) sum += (s[c] = std::exp(s[c] - top));
  for (std::size_t c = 0; c < k; ++c) s[c] /= sum;
  return top + std::log(sum);
}

// Multinomial logistic regression on standardized rows z (n × d) with class indexes y (below k):
// minimizes 0.5·Σ_c |w_c|² + C·Σ_r (log Σ_c exp(s_rc) − s_r,y_r), s_rc = w_c·z_r + b_c, by Newton-CG
// with the binary solver's line search and stopping rule. The parameters are k blocks of d
// weights and one intercept.
struct MultinomialFit {
  std::vector<double> w;  // k × (d + 1)
  int iterations = 0;
  bool converged = false;
};

MultinomialFit fit_multinomial(const std::vector<double>& z, std::size_t n, std::size_t d, std::span<const int> y,
                               std::size_t k, const LogisticRegressionParams& params) {
  const std::size_t block = d + 1;
  const std::size_t size = k * block;
  const double c = params.C;
  std::vector<double> scores(n * k), proba(n * k);
  // Scores and probabilities of every row for parameters v; returns the objective.
  auto evaluate = [&](const std::vector<double>& v, std::vector<double>& p) {
    double loss = 0;
    for (std::size_t r = 0; r < n; ++r) {
      const double* zr = z.data() + r * d;
      double* pr = p.data() + r * k;
      for (std::size_t cl = 0; cl < k; ++cl) {
        const double* wc = v.data() + cl * block;
        double s = wc[d];
        for (std::size_t j = 0; j < d; ++j) s += zr[j] * wc[j];
        pr[cl] = s;
      }
      const double true_score = pr[static_cast<std::size_t>(y[r])];
      loss += softmax(pr, k) - true_score;
    }
    double penalty = 0;
    for (std::size_t cl = 0; cl < k; ++cl) {
      for (std::size_t j = 0; j < d; ++j) penalty += v[cl * block + j] * v[cl * block + j];
    }
    return c * loss + 0.5 * penalty;
  };
  // H·v: the penalty's identity on the weights plus C·Σ_r z̃_r ⊗ (diag(p_r) − p_r p_rᵀ) u_r, with
  // u_rc = v_c·z_r + v_cb.
  std::vector<double> u(k);
  auto hessian_times = [&](const std::vector<double>& v, std::vector<double>& out) {
    for (std::size_t cl = 0; cl < k; ++cl) {
      for (std::size_t j = 0; j < d; ++j) out[cl * block + j] = v[cl * block + j];
      out[cl * block + d] = 0;
    }
    for (std::size_t r = 0; r < n; ++r) {
      const double* zr = z.data() + r * d;
      const double* pr = proba.data() + r * k;
      double mean = 0;
      for (std::size_t cl = 0; cl < k; ++cl) {
        const double* vc = v.data() + cl * block;
        double s = vc[d];
        for (std::size_t j = 0; j < d; ++j) s += zr[j] * vc[j];
        u[cl] = s;
        mean += pr[cl] * s;
      }
      for (std::size_t cl = 0; cl < k; ++cl) {
        const double t = c * pr[cl] * (u[cl] - mean);
        double* oc = out.data() + cl * block;
        for (std::size_t j = 0; j < d; ++j) oc[j] += t * zr[j];
        oc[d] += t;
      }
    }
  };

  MultinomialFit fit;
  fit.w.assign(size, 0.0);
  std::vector<double> gradient(size), step(size), trial(size), residual(size), direction(size), product(size);
  std::vector<double> trial_proba(n * k);
  double current = evaluate(fit.w, proba);
  const double gradient_tolerance = params.tol * std::max(1.0, c * static_cast<double>(n));
  for (int iteration = 1; iteration <= params.max_iter + 1; ++iteration) {
    for (std::size_t cl = 0; cl < k; ++cl) {
      for (std::size_t j = 0; j < d; ++j) gradient[cl * block + j] = fit.w[cl * block + j];
      gradient[cl * block + d] = 0;
    }
    for (std::size_t r = 0; r < n; ++r) {
      const double* zr = z.data() + r * d;
      for (std::size_t cl = 0; cl < k; ++cl) {
        const double g = c * (proba[r * k + cl] - (y[r] == static_cast<int>(cl) ? 1.0 : 0.0));
        double* gc = gradient.data() + cl * block;
        for (std::size_t j = 0; j < d; ++j) gc[j] += g * zr[j];
        gc[d] += g;
      }
    }
    double largest = 0;
    for (double g : gradient) largest = std::max(largest, std::fabs(g));
    if (largest <= gradient_tolerance) {
      fit.converged = true;
      break;
    }
    if (iteration > params.max_iter) break;
    fit.iterations = iteration;

    // Conjugate gradients on H·step = −gradient, with the inexact-Newton forcing term.
    for (std::size_t i = 0; i < size; ++i) residual[i] = -gradient[i];
    std::fill(step.begin(), step.end(), 0.0);
    direction = residual;
    double rr = dot(residual, residual);
    const double norm = std::sqrt(rr);
    const double target = std::min(0.5, std::sqrt(norm)) * norm;
    for (int i = 0; i < kMaxConjugateGradientSteps && std::sqrt(rr) > target; ++i) {
      hessian_times(direction, product);
      const double curvature = dot(direction, product);
      if (!(curvature > 0)) {
        if (i == 0) step = direction;
        break;
      }
      const double alpha = rr / curvature;
      for (std::size_t j = 0; j < size; ++j) {
        step[j] += alpha * direction[j];
        residual[j] -= alpha * product[j];
      }
      const double next = dot(residual, residual);
      const double beta = next / rr;
      rr = next;
      for (std::size_t j = 0; j < size; ++j) direction[j] = residual[j] + beta * direction[j];
    }

    const double slope = dot(gradient, step);
    double t = 1.0;
    double next = current;
    for (int halvings = 0; halvings < 60; ++halvings, t /= 2) {
      for (std::size_t i = 0; i < size; ++i) trial[i] = fit.w[i] + t * step[i];
      next = evaluate(trial, trial_proba);
      if (next <= current + 1e-4 * t * slope) break;
    }
    if (!(next < current)) break;  // no further progress is possible in floating point
    fit.w = trial;
    proba.swap(trial_proba);
    current = next;
  }
  return fit;
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
  const std::vector<double> z = standardize(x, model.mean_, model.scale_);

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
      while (!detail::cholesky_solve(hessian, k, step)) {
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
  data.check();
  if (data.task == Task::regression) {
    detail::refuse_task(kType, "regression", "binary and multiclass classification (use linear_regression)");
  }
  if (data.task == Task::binary) {
    LogisticRegression model = train(data.x, data.y, params);
    model.classes_ = data.classes;
    return model;
  }
  detail::check_hyperparameters(kType, params);
  detail::check_class_targets(kType, data.x, data.y, data.n_classes());
  const std::size_t n = data.rows();
  const std::size_t d = data.n_features();
  const std::size_t k = data.n_classes();
  LogisticRegression model;
  model.params_ = params;
  model.task_ = Task::multiclass;
  model.classes_ = data.classes;
  const std::vector<double> z = standardize(data.x, model.mean_, model.scale_);
  const MultinomialFit fit = fit_multinomial(z, n, d, data.y, k, params);
  model.coef_.resize(k * d);
  model.intercepts_.resize(k);
  for (std::size_t c = 0; c < k; ++c) {
    for (std::size_t j = 0; j < d; ++j) model.coef_[c * d + j] = fit.w[c * (d + 1) + j];
    model.intercepts_[c] = fit.w[c * (d + 1) + d];
  }
  model.iterations_ = fit.iterations;
  model.converged_ = fit.converged;
  return model;
}

std::map<std::string, std::string> LogisticRegression::hyperparameters() const { return detail::hyperparameter_texts(params_); }

void LogisticRegression::compute(MatrixView x, std::span<double> out) const {
  const std::size_t d = mean_.size();
  if (task_ == Task::multiclass) {
    const std::size_t k = intercepts_.size();
    std::vector<double> z(d);
    for (std::size_t r = 0; r < x.rows(); ++r) {
      const double* row = x.row(r).data();
      for (std::size_t j = 0; j < d; ++j) z[j] = (row[j] - mean_[j]) / scale_[j];
      double* p = out.data() + r * k;
      for (std::size_t c = 0; c < k; ++c) {
        double s = intercepts_[c];
        for (std::size_t j = 0; j < d; ++j) s += coef_[c * d + j] * z[j];
        p[c] = s;
      }
      softmax(p, k);
    }
    return;
  }
  for (std::size_t r = 0; r < x.rows(); ++r) {
    const double* row = x.row(r).data();
    double s = intercept_;
    for (std::size_t j = 0; j < d; ++j) s += coef_[j] * ((row[j] - mean_[j]) / scale_[j]);
    out[r] = sigmoid(s);
  }
}

// Version 1: params, mean, scale, coefficients, intercept, iterations, converged. Version 2 adds
// the task, the classes and (multiclass) the k intercepts; the coefficients are then k × features.
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
  if (version >= 2) {
    detail::serialize_task(archive, task_, classes_, kType);
    if (task_ == Task::multiclass) serialize_vector(archive, intercepts_);
  }
  if constexpr (Archive::is_loading::value) {
    if (task_ == Task::regression) detail::corrupt(kType, "a regression logistic model");
    const std::size_t d = mean_.size();
    const std::size_t k = task_ == Task::multiclass ? classes_.size() : 1;
    if (d == 0 || scale_.size() != d || coef_.size() != d * k || (task_ == Task::multiclass && intercepts_.size() != k)) {
      detail::corrupt(kType, fmt::format("{} coefficients, {} means, {} scales, {} intercepts for {} classes", coef_.size(),
                                         mean_.size(), scale_.size(), intercepts_.size(), k));
    }
    const auto finite = [](double v) { return std::isfinite(v); };
    if (!std::all_of(coef_.begin(), coef_.end(), finite) || !std::all_of(mean_.begin(), mean_.end(), finite) ||
        !std::all_of(scale_.begin(), scale_.end(), [](double s) { return std::isfinite(s) && s > 0; }) ||
        !std::isfinite(intercept_) || !std::all_of(intercepts_.begin(), intercepts_.end(), finite)) {
      detail::corrupt(kType, "a non-finite coefficient, mean or scale");
    }
  }
}

}  // namespace modelreg

BOOST_CLASS_EXPORT_IMPLEMENT(modelreg::LogisticRegression)
