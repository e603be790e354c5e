// python/src/sklearn_bindings.cpp — modelreg._modelreg.sklearn_model: a SklearnModelSpec
// (modelreg/sklearn.hpp) from the dict python/modelreg/sklearn.py builds out of a fitted
// estimator, checked and compiled by the library into a NativeModel. The arrays are copied under
// the GIL; the checks and the compilation (large for a forest) run with it released.
#include "sklearn_bindings.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "modelreg/error.hpp"
#include "modelreg/sklearn.hpp"
#include "native_model.hpp"

namespace modelreg::python {

namespace py = pybind11;

namespace {

[[noreturn]] void bad_spec(const std::string& what) {
  throw Error(Errc::invalid_argument, "scikit-learn conversion: " + what);
}

py::object item(const py::dict& d, const char* key) {
  if (!d.contains(key)) bad_spec(std::string("the spec lacks '") + key + "'");
  return d[key];
}

// A 1-D copy of any array-like (any shape is flattened in C order).
template <class T>
std::vector<T> vector_of(const py::object& value) {
  const auto array = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(value);
  if (!array) bad_spec("an array is not numeric");
  return std::vector<T>(array.data(), array.data() + array.size());
}

template <class T>
std::vector<T> optional_vector(const py::dict& d, const char* key) {
  if (!d.contains(key) || d[key].is_none()) return {};
  return vector_of<T>(d[key]);
}

SklearnLink link_of(const std::string& name) {
  static const std::pair<const char*, SklearnLink> kLinks[] = {
      {"identity", SklearnLink::identity}, {"exp", SklearnLink::exp},
      {"expit", SklearnLink::expit},       {"expit_twice", SklearnLink::expit_twice},
      {"softmax_binary", SklearnLink::softmax_binary}, {"softmax", SklearnLink::softmax},
      {"ovr", SklearnLink::ovr},
  };
  for (const auto& [text, link] : kLinks) {
    if (name == text) return link;
  }
  bad_spec("unknown link '" + name + "'");
}

ClassLabels classes_of(const py::object& value) {
  if (value.is_none()) return {};
  const auto labels = value.cast<py::list>();
  if (labels.size() == 0) bad_spec("no class labels");
  if (py::isinstance<py::str>(labels[0])) return ClassLabels::strings(labels.cast<std::vector<std::string>>());
  return ClassLabels::integers(labels.cast<std::vector<std::int64_t>>());
}

SklearnTree tree_of(const py::dict& d) {
  SklearnTree t;
  t.left = vector_of<std::int64_t>(item(d, "left"));
  t.right = vector_of<std::int64_t>(item(d, "right"));
  t.feature = vector_of<std::int64_t>(item(d, "feature"));
  t.threshold = vector_of<double>(item(d, "threshold"));
  t.missing_go_to_left = optional_vector<std::uint8_t>(d, "missing_go_to_left");
  t.values = vector_of<double>(item(d, "values"));
  return t;
}

SklearnScaler scaler_of(const py::dict& d) {
  SklearnScaler s;
  const auto kind = item(d, "kind").cast<std::string>();
  if (kind == "standard") {
    s.kind = SklearnScaler::Kind::standard;
  } else if (kind == "min_max") {
    s.kind = SklearnScaler::Kind::min_max;
  } else {
    bad_spec("unknown scaler kind '" + kind + "'");
  }
  s.offset = vector_of<double>(item(d, "offset"));
  s.scale = vector_of<double>(item(d, "scale"));
  if (d.contains("clip") && !d["clip"].is_none()) {
    const auto range = d["clip"].cast<std::pair<double, double>>();
    s.clip = true;
    s.clip_min = range.first;
    s.clip_max = range.second;
  }
  return s;
}

std::shared_ptr<NativeModel> sklearn_model(const py::dict& d) {
  SklearnModelSpec spec;
  const auto name = item(d, "estimator").cast<std::string>();
  const auto estimator = parse_sklearn_estimator(name);
  if (!estimator) {
    throw Error(Errc::invalid_argument,
                "cannot convert scikit-learn " + name + ": supported are " + supported_sklearn_estimators());
  }
  spec.estimator = *estimator;
  spec.n_features = item(d, "n_features").cast<std::size_t>();
  spec.classes = classes_of(item(d, "classes"));
  spec.link = link_of(item(d, "link").cast<std::string>());
  if (d.contains("params")) spec.params = d["params"].cast<std::map<std::string, std::string>>();
  if (d.contains("scalers")) {
    for (const auto& s : d["scalers"].cast<py::list>()) spec.scalers.push_back(scaler_of(s.cast<py::dict>()));
  }
  spec.coef = optional_vector<double>(d, "coef");
  spec.intercept = optional_vector<double>(d, "intercept");
  spec.init = optional_vector<double>(d, "init");
  if (d.contains("learning_rate")) spec.learning_rate = d["learning_rate"].cast<double>();
  if (d.contains("trees")) {
    const auto trees = d["trees"].cast<py::list>();
    spec.trees.reserve(trees.size());
    for (const auto& t : trees) spec.trees.push_back(tree_of(t.cast<py::dict>()));
  }
  auto native = std::make_shared<NativeModel>();
  if (d.contains("feature_names") && !d["feature_names"].is_none()) {
    native->feature_names = d["feature_names"].cast<std::vector<std::string>>();
  }
  {
    py::gil_scoped_release release;
    native->model = make_sklearn_model(std::move(spec));
  }
  return native;
}

}  // namespace

void bind_sklearn(py::module_& m) {
  m.def("sklearn_model", &sklearn_model, py::arg("spec"),
        "A NativeModel from the dict modelreg.sklearn builds out of a fitted estimator's arrays "
        "(modelreg/sklearn.hpp checks everything: ValidationFailed naming the first problem).");
  m.def("sklearn_supported", &supported_sklearn_estimators, "What modelreg.sklearn converts, for messages.");
}

}  // namespace modelreg::python
