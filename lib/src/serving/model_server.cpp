#include "modelreg/model_server.hpp"

#include <fmt/format.h>

#include "modelreg/error.hpp"

namespace modelreg {

Prediction predict_with(const ServedModel& served, MatrixView rows) {
  const Model& model = *served.model;
  Prediction p;
  p.task = model.task();
  p.rows = rows.rows();
  std::vector<double> outputs = model.predict_outputs(rows);
  if (p.task == Task::regression) {
    p.values = std::move(outputs);
  } else {
    p.classes = model.classes();
    const auto indexes = class_indexes_of(p.task, outputs, model.n_outputs());
    p.labels.assign(indexes.begin(), indexes.end());
    p.probabilities = std::move(outputs);
  }
  p.version = served.version.id.number;
  return p;
}

ModelServer::ModelServer(const std::filesystem::path& db, std::string model, WatcherOptions options)
    : watcher_(db, std::move(model), std::move(options)), started_(std::chrono::steady_clock::now()) {}

Prediction ModelServer::predict(MatrixView rows) {
  ++requests_;
  // One snapshot for the whole batch: every row is answered by the same version.
  const std::shared_ptr<const ServedModel> served = watcher_.current();
  if (!served) {
    ++errors_;
    throw Error(Errc::conflict,
                fmt::format("model '{}' is not ready: {}", watcher_.model_name(), watcher_.unready_reason()));
  }
  try {
    return predict_with(*served, rows);
  } catch (...) {
    ++errors_;
    throw;
  }
}

ServerStatus ModelServer::status() const {
  ServerStatus s;
  s.model = watcher_.model_name();
  s.ready = watcher_.ready();
  s.requests = requests_.load();
  s.errors = errors_.load();
  s.uptime_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  s.watcher = watcher_.status();
  return s;
}

}  // namespace modelreg
