// modelreg/training.hpp — train a built-in model type chosen by name, with hyperparameters given as
// text (what `modelreg train --type T --param k=v` needs).
//
// Types, the tasks they learn, and their parameters (defaults in each type's header):
//   logistic_regression     binary, multiclass    C, max_iter, tol (deterministic; `seed` is
//                                                 accepted and ignored)
//   decision_tree           all three             max_depth, min_samples_split, min_samples_leaf,
//                                                 max_features, seed
//   random_forest           all three             n_estimators, max_depth, min_samples_split,
//                                                 min_samples_leaf, max_features, bootstrap, seed,
//                                                 threads (not stored)
//   gradient_boosted_trees  all three             n_estimators, learning_rate, max_depth,
//                                                 min_samples_split, min_samples_leaf, subsample,
//                                                 max_features, seed
//   linear_regression       regression            alpha (deterministic; `seed` is accepted and
//                                                 ignored)
// The task is the data's (LabeledData::task, from read_csv's inference or its options). Missing
// values (NaN) are refused by every built-in trainer, naming the row and column: impute first.
// Value forms: integers and decimals as usual; max_depth `none` (unlimited) or a number;
// max_features `all`, `sqrt`, `log2` or a number; bootstrap `true`/`false`.
// Model::hyperparameters() returns the same keys and forms, so a model's parameters can be passed
// back to train_model to train it again.
//
// Thread-safety: free functions without shared state.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "modelreg/export.hpp"
#include "modelreg/model.hpp"

namespace modelreg {

struct LabeledData;

// The type names train_model accepts, in a fixed order.
MODELREG_API std::vector<std::string> built_in_model_types();

// Trains a model of `type` for the task of `data` (which must have a target). Throws
// Error(invalid_argument) for an unknown type (listing the known ones), a type that cannot learn
// the task (naming what it can), an unknown parameter (listing the type's parameters), a value
// that does not parse or is out of range (naming parameter and value), or unusable data (missing
// values, a target that does not suit its task).
MODELREG_API std::unique_ptr<Model> train_model(std::string_view type, const LabeledData& data,
                                   const std::map<std::string, std::string>& params = {});

}  // namespace modelreg
