// modelreg/linear_regression.hpp — ridge regression (least squares with an L2 penalty), as
// scikit-learn's Ridge: minimizes |y − X·w − b|² + alpha·|w|², the intercept b unpenalized, on the
// features as given (not standardized: scale features first if their units differ widely).
//
// Solved exactly: the data is centred (which takes the intercept out of the penalty), then the
// normal equations (XᵀX + alpha·I)·w = Xᵀy are solved by Cholesky when there are no more features
// than rows — O(rows·features² + features³) time, O(features²) memory — and, for wide data (more
// features than rows), the same solution w = Xᵀ·(XXᵀ + alpha·I)⁻¹·y through the rows × rows system.
// When both exceed 4,096 the system is solved by conjugate gradients with products by X and Xᵀ
// (memory linear in the data). Training is deterministic.
//
// Thread-safety: as Model (immutable after training; predict from any thread).
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "modelreg/export.hpp"
#include "modelreg/hyperparameters.hpp"
#include "modelreg/model.hpp"

namespace modelreg {

struct LabeledData;

struct MODELREG_API LinearRegressionParams {
  double alpha = 1.0;  // L2 penalty strength, > 0 (as scikit-learn's Ridge alpha; 1e-12 is
                       // practically ordinary least squares)

  // Every hyperparameter once: f(name, field, rule) (see modelreg/hyperparameters.hpp).
  template <class Self, class F>
  static void fields(Self& p, F&& f) {
    f("alpha", p.alpha, rule::Positive{});
  }
};

class MODELREG_API LinearRegression final : public Model {
 public:
  using Params = LinearRegressionParams;

  // An untrained model (n_features() == 0); the target of deserialization.
  LinearRegression() = default;

  // Trains on rows x with targets `values`. Throws Error(invalid_argument) for bad parameters, a
  // size mismatch, non-finite or missing values.
  static LinearRegression train(MatrixView x, std::span<const double> values, const Params& params = {});
  // `data` must be a regression table; Error(invalid_argument) for classification targets.
  static LinearRegression train(const LabeledData& data, const Params& params = {});

  // The type's one name: archives, the registry's type_name and train_model() use it.
  static constexpr char kTypeName[] = "linear_regression";
  std::string type_name() const override { return kTypeName; }
  std::size_t n_features() const override { return coef_.size(); }
  std::map<std::string, std::string> hyperparameters() const override;
  Task task() const override { return Task::regression; }

  const Params& params() const noexcept { return params_; }
  // The weight of each feature (in its own units) and the intercept.
  const std::vector<double>& coefficients() const noexcept { return coef_; }
  double intercept() const noexcept { return intercept_; }

  template <class Archive>
  void serialize(Archive& archive, unsigned version);

 protected:
  void compute(MatrixView x, std::span<double> out) const override;

 private:
  Params params_;
  std::vector<double> coef_;
  double intercept_ = 0;
};

}  // namespace modelreg
