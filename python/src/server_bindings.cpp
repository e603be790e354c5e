// python/src/server_bindings.cpp — ServerHandle, the C++ side of modelreg.ModelServer: the
// library's ModelServer (a watcher thread that hot-swaps the active version) in this process.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <pybind11/numpy.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include "bindings.hpp"
#include "modelreg/error.hpp"
#include "modelreg/model_server.hpp"

namespace modelreg::python {

namespace {

using InputArray = py::array_t<double, py::array::c_style | py::array::forcecast>;

template <class T>
py::object or_none(const std::optional<T>& value) {
  return value ? py::cast(*value) : py::none();
}

class ServerHandle {
 public:
  ServerHandle(const std::filesystem::path& db, std::string model, int poll_ms, std::optional<std::string> signing_key,
               std::string alias) {
    if (poll_ms <= 0) throw Error(Errc::invalid_argument, "poll_ms must be positive");
    WatcherOptions options;
    options.alias = std::move(alias);
    options.poll_interval = std::chrono::milliseconds(poll_ms);
    options.signing_key = std::move(signing_key);
    py::gil_scoped_release release;
    server_ = std::make_shared<ModelServer>(db, std::move(model), std::move(options));
  }

  // Stops the watcher thread (waiting for a load in progress) once no predict uses the server.
  void close() {
    std::shared_ptr<ModelServer> server = std::move(server_);
    py::gil_scoped_release release;
    server.reset();
  }
  bool closed() const { return !server_; }

  py::dict predict(const InputArray& x) {
    if (x.ndim() != 2) {
      throw Error(Errc::invalid_argument,
                  "X must be 2-dimensional (rows x features); reshape a single row with X.reshape(1, -1)");
    }
    const MatrixView rows(x.data(), static_cast<std::size_t>(x.shape(0)), static_cast<std::size_t>(x.shape(1)));
    std::shared_ptr<ModelServer> server = get();
    Prediction p;
    {
      py::gil_scoped_release release;
      p = server->predict(rows);
      server.reset();
    }
    py::dict d;
    d["task"] = std::string(to_string(p.task));
    d["classes"] = classes_object(p.task, p.classes);
    d["rows"] = p.rows;
    d["version"] = p.version;
    const auto n = static_cast<py::ssize_t>(p.rows);
    if (p.task == Task::regression) {
      d["values"] = py::array_t<double>(n, p.values.data());
    } else {
      const auto k = static_cast<py::ssize_t>(p.task == Task::multiclass ? p.classes.size() : 1);
      py::array_t<double> probabilities({n, k}, p.probabilities.data());
      d["probabilities"] = std::move(probabilities);
      py::array_t<std::int64_t> labels(n);
      for (py::ssize_t i = 0; i < n; ++i) labels.mutable_at(i) = p.labels[static_cast<std::size_t>(i)];
      d["labels"] = std::move(labels);
    }
    return d;
  }

  py::dict status() const {
    std::shared_ptr<ModelServer> server = get();
    ServerStatus s;
    {
      py::gil_scoped_release release;
      s = server->status();
    }
    py::dict d;
    d["model"] = s.model;
    d["ready"] = s.ready;
    d["requests_served"] = s.requests - s.errors;
    d["requests"] = s.requests;
    d["errors"] = s.errors;
    d["uptime_seconds"] = s.uptime_seconds;
    d["serving_version"] = or_none(s.watcher.serving_version);
    d["desired_version"] = or_none(s.watcher.desired_version);
    d["swaps"] = s.watcher.swaps;
    d["load_failures"] = s.watcher.load_failures;
    d["polls"] = s.watcher.polls;
    d["last_error"] = or_none(s.watcher.last_error);
    d["last_error_at"] = or_none(s.watcher.last_error_at);
    d["last_swap_at"] = or_none(s.watcher.last_swap_at);
    d["database_problem"] = or_none(s.watcher.database_problem);
    d["last_load_seconds"] = s.watcher.last_load_seconds;
    return d;
  }

  // The feature names of the serving version (empty before one serves).
  std::vector<std::string> features() const {
    const std::shared_ptr<const ServedModel> served = get()->watcher().current();
    std::vector<std::string> names;
    if (served) {
      for (const auto& f : served->version.features) names.push_back(f.name);
    }
    return names;
  }

  // One poll cycle now, on this thread; true when it swapped.
  bool poll_now() {
    std::shared_ptr<ModelServer> server = get();
    py::gil_scoped_release release;
    return server->watcher().poll_now();
  }

 private:
  std::shared_ptr<ModelServer> get() const {
    if (!server_) throw Error(Errc::conflict, "the model server is closed");
    return server_;
  }

  // Null once closed. Read and written only with the GIL held.
  std::shared_ptr<ModelServer> server_;
};

}  // namespace

void bind_server(py::module_& m) {
  using namespace pybind11::literals;
  py::class_<ServerHandle>(m, "ServerHandle", "The C++ side of modelreg.ModelServer.")
      .def(py::init<const std::filesystem::path&, std::string, int, std::optional<std::string>, std::string>(), "path"_a,
           "model"_a, "poll_ms"_a, "signing_key"_a, "alias"_a)
      .def("close", &ServerHandle::close)
      .def_property_readonly("closed", &ServerHandle::closed)
      .def("predict", &ServerHandle::predict, "x"_a)
      .def("status", &ServerHandle::status)
      .def("features", &ServerHandle::features)
      .def("poll_now", &ServerHandle::poll_now);
}

}  // namespace modelreg::python
