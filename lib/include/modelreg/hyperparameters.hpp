// modelreg/hyperparameters.hpp — the rules a built-in model type's hyperparameters follow.
//
// Each Params struct of a built-in type (LogisticRegressionParams, DecisionTreeParams, ...) lists
// its hyperparameters once, in a static `fields(params, f)` that calls f(name, field, rule) for
// each. That one list is what train_model() reads text into, what the trainer checks, and what
// Model::hyperparameters() writes out, so a name or rule is never spelled twice.
#pragma once

namespace modelreg::rule {

// A whole number >= min (for max_depth: none, or >= min).
struct AtLeast {
  long long min;
};
// A finite number > 0.
struct Positive {};
// A number in (0, 1].
struct Fraction {};
// all, sqrt, log2 or a count >= 1 (FeatureSubset).
struct FeatureCount {};
// Any value of the field's type (seeds, flags).
struct Any {};

}  // namespace modelreg::rule
