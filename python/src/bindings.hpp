// python/src/bindings.hpp — how the parts of the extension module `modelreg._modelreg` meet:
// each bind_* adds its classes and functions to the module (one .cpp file each), and the
// conversions between the library's values and the plain Python values the package's pure-Python
// layer (python/modelreg/) wraps.
//
// The GIL: every call that reads or writes the registry, compresses, loads or predicts a batch
// runs under py::gil_scoped_release, with its arguments converted to C++ values before and its
// result converted to Python after; nothing touches a Python object while the GIL is released.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <pybind11/pybind11.h>

#include "modelreg/metadata.hpp"
#include "modelreg/model.hpp"
#include "modelreg/registry.hpp"

namespace modelreg::python {

namespace py = pybind11;

void bind_model(py::module_& m);
void bind_registry(py::module_& m);
void bind_server(py::module_& m);

// A version as the dict `modelreg show --json` prints (ref, model, version, label, status, active,
// format, type_name, task, classes, notes, created_at, created_by, blob{...}, metrics, params,
// features [{name, dtype}], tags, datasets, parents, signature).
py::dict version_dict(const ModelVersion& v);
// A model's class labels as a Python list (ints or strs); None for a regression model.
py::object classes_object(Task task, const ClassLabels& classes);

// The NewVersion a dict of the pure-Python layer describes: model, format, type_name, metrics,
// params, features [(name, dtype)], tags, notes, label, created_by, parents [(ref, relation)],
// datasets [(uri, sha256 or None, role)], level. Missing keys keep NewVersion's defaults.
NewVersion new_version_from(const py::dict& spec);

}  // namespace modelreg::python
