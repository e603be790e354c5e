// modelreg/training_run.hpp — train, evaluate and describe a new version in one call.
//
// The workflow `modelreg train` and the demonstration share: train a built-in type on the training
// rows, evaluate it on the test rows, and fill in the NewVersion that Registry::save_model stores
// it with (metrics, features, target, data sets). The caller adds what only it knows (label,
// notes, parents) and saves:
//
//   TrainingRun run = train_version("random_forest", split, {{"n_estimators", "100"}},
//                                    {.model = "fraud", .label = "v2"}, {.train = "train.csv"});
//   ModelVersion v = registry.save_model(*run.model, run.spec, split.test.x);
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "modelreg/export.hpp"
#include "modelreg/labeled_data.hpp"
#include "modelreg/metrics.hpp"
#include "modelreg/model.hpp"
#include "modelreg/registry.hpp"

namespace modelreg {

// The files the rows came from, recorded as the version's data sets (absolute path, SHA-256,
// role "train" / "test").
struct MODELREG_API TrainingFiles {
  std::optional<std::filesystem::path> train{};
  std::optional<std::filesystem::path> test{};
};

struct MODELREG_API TrainingRun {
  std::unique_ptr<Model> model;
  Evaluation evaluation;     // on split.test, for the task of the training rows
  double train_seconds = 0;  // wall time of training alone
  // `base` completed: metrics gets the evaluation's metric set (binary: accuracy, precision,
  // recall, f1, log_loss, roc_auc; multiclass: accuracy, f1_macro, log_loss and count_<label> per
  // class of the test rows; regression: rmse, mae, r2 — see metrics.hpp) and train_seconds,
  // train_rows, test_rows; features the training columns (float64, in order); tags["target"] the
  // target column; datasets one entry per file given.
  NewVersion spec;
};

// Trains `type` with `params` (train_model's rules) on split.train, for its task, and evaluates it
// on split.test. Throws Error(invalid_argument) as train_model does, when split.test has no rows
// or target, when its task or classes differ from split.train's, or when its columns differ from
// split.train's (in name or order); Error(not_found) / io_error when a file cannot be read.
MODELREG_API TrainingRun train_version(std::string_view type, const TrainTestSplit& split,
                                       const std::map<std::string, std::string>& params, NewVersion base = {},
                                       const TrainingFiles& files = {});

}  // namespace modelreg
