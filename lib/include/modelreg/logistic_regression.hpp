// modelreg/logistic_regression.hpp — L2-regularized logistic regression, trained by Newton's
// method (IRLS with a backtracking line search) on standardized features.
//
// The objective is scikit-learn's: 0.5·|w|² + C·Σ log-loss, the intercept unpenalized — but on
// features standardized with the training mean and (population) standard deviation, which the
// model stores and applies at prediction; so the penalty does not depend on feature units. A
// constant feature gets scale 1. Up to 256 features each Newton step solves the exact Hessian
// (O(rows·features² + features³) time, O(features²) memory); above that, Hessian-free Newton-CG
// (conjugate gradients on Hessian-vector products: O(rows·features) per product, memory linear in
// the features), so wide data (20 rows × 10,000 columns) trains in a fraction of a second and a
// few MB beyond the data. Both stop on the same gradient tolerance, so they reach the same optimum.
// Training is deterministic (no randomness, no seed).
//
// Multiclass (k classes): multinomial logistic regression (softmax), scikit-learn's
// `multi_class="multinomial"`: k weight vectors and k intercepts, objective
// 0.5·Σ|w_c|² + C·Σ cross-entropy, intercepts unpenalized, on the same standardized features;
// trained by Newton-CG (Hessian-vector products in O(rows·k·features)) with the same line search
// and the same gradient tolerance. Regression is not a logistic model: see LinearRegression.
//
// Thread-safety: as Model (immutable after training; predict from any thread).
#pragma once

#include <cstddef>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "modelreg/export.hpp"
#include "modelreg/hyperparameters.hpp"
#include "modelreg/model.hpp"

namespace modelreg {

struct LabeledData;

struct MODELREG_API LogisticRegressionParams {
  double C = 1.0;        // inverse regularization strength, > 0 (as scikit-learn's C)
  int max_iter = 100;    // Newton iterations at most, >= 1
  double tol = 1e-10;    // converged when max |gradient| <= tol · max(1, C · rows)

  // Every hyperparameter once: f(name, field, rule) (see modelreg/hyperparameters.hpp).
  template <class Self, class F>
  static void fields(Self& p, F&& f) {
    f("C", p.C, rule::Positive{});
    f("max_iter", p.max_iter, rule::AtLeast{1});
    f("tol", p.tol, rule::Positive{});
  }
};

class MODELREG_API LogisticRegression final : public Model {
 public:
  using Params = LogisticRegressionParams;

  // An untrained model (n_features() == 0); the target of deserialization.
  LogisticRegression() = default;

  // Trains on rows x with labels y (0/1). Throws Error(invalid_argument) for bad parameters, a
  // size mismatch, non-finite or missing values, labels other than 0/1, or a single class. Not
  // converging within max_iter is not an error: see converged().
  static LogisticRegression train(MatrixView x, std::span<const int> y, const Params& params = {});
  // Binary or multiclass as `data` says (its classes kept); Error(invalid_argument) for regression
  // and as above.
  static LogisticRegression train(const LabeledData& data, const Params& params = {});

  // The type's one name: archives, the registry's type_name and train_model() use it.
  static constexpr char kTypeName[] = "logistic_regression";
  std::string type_name() const override { return kTypeName; }
  std::size_t n_features() const override { return mean_.size(); }
  std::map<std::string, std::string> hyperparameters() const override;
  Task task() const override { return task_; }
  ClassLabels classes() const override { return classes_; }

  const Params& params() const noexcept { return params_; }
  // Weights on the standardized features, and the intercept. Multiclass: k × features weights
  // (class after class) and k intercepts (intercepts()); intercept() is 0.
  const std::vector<double>& coefficients() const noexcept { return coef_; }
  double intercept() const noexcept { return intercept_; }
  const std::vector<double>& intercepts() const noexcept { return intercepts_; }
  const std::vector<double>& feature_means() const noexcept { return mean_; }
  const std::vector<double>& feature_scales() const noexcept { return scale_; }
  int iterations() const noexcept { return iterations_; }
  bool converged() const noexcept { return converged_; }

  template <class Archive>
  void serialize(Archive& archive, unsigned version);

 protected:
  void compute(MatrixView x, std::span<double> out) const override;

 private:
  Params params_;
  std::vector<double> mean_;
  std::vector<double> scale_;
  std::vector<double> coef_;
  double intercept_ = 0;
  Task task_ = Task::binary;
  ClassLabels classes_ = ClassLabels::zero_one();
  std::vector<double> intercepts_;
  int iterations_ = 0;
  bool converged_ = false;
};

}  // namespace modelreg
