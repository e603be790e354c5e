// modelreg/model.hpp — the interface of a predictive model: a binary classifier on dense double
// features.
//
// Built-in types: LogisticRegression, DecisionTree, RandomForest, GradientBoostedTrees (one header
// each; train_model() in training.hpp builds any of them by name). Save and load any Model, built-in
// or your own, through its base pointer with serialize_model / deserialize_model
// (model_archive.hpp). To write your own type, derive from Model and see model_serialization.hpp.
//
// Inputs must be finite; a NaN or infinite feature gives an unspecified probability (never a crash).
//
// Thread-safety: a trained model is immutable. predict_proba / predict are const and may be called
// from any number of threads at once.
#pragma once

#include <cstddef>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "modelreg/export.hpp"
#include "modelreg/matrix.hpp"

namespace modelreg {

// The decision threshold of the binary classifiers: label 1 where the probability of the positive
// class is above it, else 0 (scikit-learn's rule). Every label the library gives comes from here.
inline constexpr double kDecisionThreshold = 0.5;

// The label of each probability at kDecisionThreshold.
MODELREG_API std::vector<int> labels_of(std::span<const double> probabilities);

class MODELREG_API Model {
 public:
  virtual ~Model();

  // The type's stable name, e.g. "random_forest". It is written into every archive and must equal
  // the name the type is exported under (BOOST_CLASS_EXPORT_GUID, see model_serialization.hpp).
  virtual std::string type_name() const = 0;
  // The number of columns every input row must have. 0 for an untrained (default-made) model.
  virtual std::size_t n_features() const = 0;
  // The settings the model was trained with, as text (`max_depth` → `none`, `C` → `1`); the
  // registry stores them with the version. Values parse back with train_model().
  virtual std::map<std::string, std::string> hyperparameters() const = 0;

  // The probability of the positive class (label 1) for each row of `x`, in [0, 1].
  // Throws Error(invalid_argument) when x.cols() != n_features() (naming both numbers), or when
  // the model is untrained.
  std::vector<double> predict_proba(MatrixView x) const;
  // The same, into `out` (out.size() must equal x.rows(), else Error(invalid_argument)).
  void predict_proba(MatrixView x, std::span<double> out) const;
  // labels_of(predict_proba(x)): 1 where the probability is above kDecisionThreshold, else 0.
  std::vector<int> predict(MatrixView x) const;

  // For Boost.Serialization; defined in model_serialization.hpp (the base has no state).
  template <class Archive>
  void serialize(Archive& archive, unsigned version);

 protected:
  // (Out of line: while deserialize_model loads a model, the constructor tells it which object
  // is being loaded, so that a load failing half-way can destroy it.)
  Model() noexcept;
  Model(const Model&) = default;
  Model& operator=(const Model&) = default;
  Model(Model&&) = default;
  Model& operator=(Model&&) = default;

  // Implements predict_proba: `x` has already been checked (x.cols() == n_features(),
  // out.size() == x.rows(), rows > 0). Must fill every element of `out`.
  virtual void compute_proba(MatrixView x, std::span<double> out) const = 0;
};

}  // namespace modelreg
