// modelreg/model_server.hpp — an embeddable server of one model, in the seed's shape: construct it
// from a registry file and a model name, call predict, ask for status(). It follows the model's
// active version with an ActiveWatcher (hot swap, zero downtime; see active_watcher.hpp).
//
// Thread-safety: predict and status may be called from any number of threads at once.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "modelreg/export.hpp"
#include "modelreg/active_watcher.hpp"
#include "modelreg/matrix.hpp"
#include "modelreg/model.hpp"

namespace modelreg {

// The answer for one batch, in the shape of the serving model's task (model.hpp).
struct MODELREG_API Prediction {
  Task task = Task::binary;
  ClassLabels classes;                // of a classifier, in output order
  std::size_t rows = 0;
  // Classifiers: binary — P(second class), one per row; multiclass — k per row, row after row.
  std::vector<double> probabilities;
  // Classifiers: the predicted class of each row, as an index into `classes` (binary: 0/1).
  std::vector<int> labels;
  // Regression: the predicted value of each row.
  std::vector<double> values;
  std::int64_t version = 0;           // the version that answered (all rows: the same one)
};

// Scores `rows` with one loaded version: the shapes above, `version` set. Throws as
// Model::predict_outputs does (Error(invalid_argument) for a batch of the wrong width or a missing
// value the model cannot route).
MODELREG_API Prediction predict_with(const ServedModel& served, MatrixView rows);

struct MODELREG_API ServerStatus {
  std::string model;
  bool ready = false;
  std::uint64_t requests = 0;  // predict calls
  std::uint64_t errors = 0;    // of which failed (not ready, bad input)
  double uptime_seconds = 0;
  WatcherStatus watcher;       // serving and desired version, swaps, last swap, last error
};

class MODELREG_API ModelServer {
 public:
  ModelServer(const std::filesystem::path& db, std::string model, WatcherOptions options = {});

  // Scores a batch with the serving version. Throws Error(conflict) when no version serves yet
  // (nothing promoted, or the first load failed; the message says which, with the watcher's last
  // error) and Error(invalid_argument) for a batch of the
  // wrong width.
  Prediction predict(MatrixView rows);
  std::vector<double> predict_proba(MatrixView rows) { return predict(rows).probabilities; }

  ServerStatus status() const;
  ActiveWatcher& watcher() noexcept { return watcher_; }
  const ActiveWatcher& watcher() const noexcept { return watcher_; }

 private:
  ActiveWatcher watcher_;
  std::chrono::steady_clock::time_point started_;
  std::atomic<std::uint64_t> requests_{0};
  std::atomic<std::uint64_t> errors_{0};
};

}  // namespace modelreg
