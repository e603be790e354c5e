// python/src/sklearn_bindings.hpp — the compiled half of modelreg.sklearn: native models built from
// a fitted scikit-learn estimator's arrays (python/modelreg/sklearn.py reads them).
#pragma once

#include <pybind11/pybind11.h>

namespace modelreg::python {

// Adds `sklearn_model(spec) -> NativeModel` and `sklearn_supported() -> str` to the module.
void bind_sklearn(pybind11::module_& m);

}  // namespace modelreg::python

// module.cpp calls it unqualified, at global scope.
using modelreg::python::bind_sklearn;
