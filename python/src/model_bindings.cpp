// python/src/model_bindings.cpp — NativeModel (the C++ side of modelreg.Model) and the XGBoost
// reader. Inputs arrive as C-contiguous float64 arrays (python/modelreg/_input.py makes them);
// prediction runs with the GIL released into an output array allocated before.
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "bindings.hpp"
#include "modelreg/error.hpp"
#include "modelreg/labeled_data.hpp"
#include "modelreg/metrics.hpp"
#include "modelreg/training.hpp"
#include "modelreg/xgboost.hpp"
#include "native_model.hpp"

namespace modelreg::python {

namespace {

using InputArray = py::array_t<double, py::array::c_style | py::array::forcecast>;

const Model& model_of(const NativeModel& native) {
  if (!native.model) throw Error(Errc::invalid_argument, "this Model holds no model");
  return *native.model;
}

MatrixView view_of(const InputArray& x) {
  if (x.ndim() != 2) {
    throw Error(Errc::invalid_argument,
                "X must be 2-dimensional (rows x features); reshape a single row with X.reshape(1, -1)");
  }
  return MatrixView(x.data(), static_cast<std::size_t>(x.shape(0)), static_cast<std::size_t>(x.shape(1)));
}

// The outputs of every row (rows x n_outputs, see model.hpp) and, for a classifier, the index
// into classes() of each row's predicted class.
py::tuple predict(const NativeModel& native, const InputArray& x) {
  const Model& model = model_of(native);
  const MatrixView rows = view_of(x);
  const std::size_t n_outputs = model.n_outputs();
  py::array_t<double> outputs({static_cast<py::ssize_t>(rows.rows()), static_cast<py::ssize_t>(n_outputs)});
  const std::span<double> out(outputs.mutable_data(), rows.rows() * n_outputs);
  const bool classifier = model.task() != Task::regression;
  py::array_t<std::int64_t> indexes(classifier ? static_cast<py::ssize_t>(rows.rows()) : 0);
  std::int64_t* index_out = indexes.mutable_data();
  {
    py::gil_scoped_release release;
    model.predict_outputs(rows, out);
    if (classifier) {
      const std::vector<std::size_t> found = class_indexes_of(model.task(), out, n_outputs);
      for (std::size_t i = 0; i < found.size(); ++i) index_out[i] = static_cast<std::int64_t>(found[i]);
    }
  }
  return py::make_tuple(std::move(outputs), classifier ? py::object(std::move(indexes)) : py::object(py::none()));
}

py::tuple read_xgboost(const py::bytes& file) {
  const std::string_view bytes = file;
  std::unique_ptr<XGBoostFile> xgb;
  {
    py::gil_scoped_release release;
    xgb = std::make_unique<XGBoostFile>(read_xgboost_model(bytes));
  }
  py::dict info;
  info["format"] = xgb->format;
  info["version"] = py::make_tuple(xgb->version[0], xgb->version[1], xgb->version[2]);
  info["objective"] = xgb->objective;
  info["feature_names"] = py::cast(xgb->feature_names);
  info["feature_types"] = py::cast(xgb->feature_types);
  auto native = std::make_shared<NativeModel>();
  native->feature_names = xgb->feature_names;
  native->model = std::make_shared<const XGBoostModel>(std::move(xgb->model));
  return py::make_tuple(std::move(native), std::move(info));
}

// Rows with a target, as the pure-Python layer shapes them (python/modelreg/_training.py):
// classification — class indexes into `classes`; regression — values.
LabeledData labeled_data(const InputArray& x, const std::string& task, const py::object& classes,
                         const py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>& y,
                         const py::array_t<double, py::array::c_style | py::array::forcecast>& values,
                         std::vector<std::string> feature_names) {
  const MatrixView rows = view_of(x);
  LabeledData data;
  data.task = parse_task(task);
  data.x = Matrix(std::vector<double>(rows.data(), rows.data() + rows.size()), rows.cols());
  if (feature_names.empty()) {
    for (std::size_t i = 0; i < rows.cols(); ++i) feature_names.push_back("f" + std::to_string(i));
  }
  data.feature_names = std::move(feature_names);
  if (data.task == Task::regression) {
    data.classes = ClassLabels();
    data.values.assign(values.data(), values.data() + values.size());
  } else {
    if (py::isinstance<py::list>(classes) && !py::cast<py::list>(classes).empty() &&
        py::isinstance<py::str>(py::cast<py::list>(classes)[0])) {
      data.classes = ClassLabels::strings(classes.cast<std::vector<std::string>>());
    } else {
      data.classes = ClassLabels::integers(classes.cast<std::vector<std::int64_t>>());
    }
    data.y.reserve(static_cast<std::size_t>(y.size()));
    for (py::ssize_t i = 0; i < y.size(); ++i) data.y.push_back(static_cast<int>(y.data()[i]));
  }
  return data;
}

std::shared_ptr<NativeModel> train(const std::string& type, const InputArray& x, const std::string& task,
                                   const py::object& classes,
                                   const py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>& y,
                                   const py::array_t<double, py::array::c_style | py::array::forcecast>& values,
                                   const std::map<std::string, std::string>& params,
                                   std::vector<std::string> feature_names) {
  LabeledData data = labeled_data(x, task, classes, y, values, std::move(feature_names));
  auto native = std::make_shared<NativeModel>();
  native->feature_names = data.feature_names;
  {
    py::gil_scoped_release release;
    data.check();
    native->model = std::shared_ptr<const Model>(train_model(type, data, params));
  }
  return native;
}

std::map<std::string, double> evaluate_on(const NativeModel& native, const InputArray& x, const std::string& task,
                                          const py::object& classes,
                                          const py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>& y,
                                          const py::array_t<double, py::array::c_style | py::array::forcecast>& values) {
  const Model& model = model_of(native);
  LabeledData data = labeled_data(x, task, classes, y, values, native.feature_names);
  py::gil_scoped_release release;
  data.check();
  return evaluate(model, data).metrics;
}

}  // namespace

void bind_model(py::module_& m) {
  py::class_<NativeModel, std::shared_ptr<NativeModel>>(m, "NativeModel",
                                                        "A trained model of the C++ library (immutable).")
      .def_property_readonly("type_name", [](const NativeModel& n) { return model_of(n).type_name(); })
      .def_property_readonly("n_features", [](const NativeModel& n) { return model_of(n).n_features(); })
      .def_property_readonly("n_outputs", [](const NativeModel& n) { return model_of(n).n_outputs(); })
      .def_property_readonly("task", [](const NativeModel& n) { return std::string(to_string(model_of(n).task())); })
      .def_property_readonly("classes",
                             [](const NativeModel& n) {
                               const Model& model = model_of(n);
                               return classes_object(model.task(), model.classes());
                             })
      .def_property_readonly("handles_missing", [](const NativeModel& n) { return model_of(n).handles_missing(); })
      .def_property_readonly("hyperparameters", [](const NativeModel& n) { return model_of(n).hyperparameters(); })
      .def_readonly("feature_names", &NativeModel::feature_names)
      .def("predict", &predict, py::arg("x"),
           "(outputs[rows, n_outputs], class indexes or None) for a C-contiguous float64 batch.");
  using namespace pybind11::literals;
  m.def("train", &train, "type"_a, "x"_a, "task"_a, "classes"_a, "y"_a, "values"_a, "params"_a, "feature_names"_a,
        "A built-in model type trained on rows with a target (training.hpp).");
  m.def("evaluate", &evaluate_on, "model"_a, "x"_a, "task"_a, "classes"_a, "y"_a, "values"_a,
        "The metric set of the model's task on rows with a target (metrics.hpp).");
  m.def("built_in_model_types", &built_in_model_types);
  m.def("known_direction", [](const std::string& metric) -> py::object {
    const auto direction = known_direction(metric);
    if (!direction) return py::none();
    return py::str(*direction == MetricDirection::higher_is_better ? "higher_is_better" : "lower_is_better");
  });
  m.def("read_xgboost", &read_xgboost, py::arg("file"),
        "(NativeModel, info) from the bytes of an XGBoost model file (JSON or UBJSON).");
}

}  // namespace modelreg::python
