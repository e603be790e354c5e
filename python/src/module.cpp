// python/src/module.cpp — the extension module `modelreg._modelreg`: the library's errors
// translated into the package's exceptions, and each part of the binding added.
#include <exception>
#include <string>

#include <pybind11/pybind11.h>

#include "bindings.hpp"
#include "modelreg/error.hpp"
#include "sklearn_bindings.hpp"

namespace py = pybind11;

namespace {

// modelreg::Error → the subclass of modelreg.Error for its code (python/modelreg/_errors.py),
// looked up when an error happens: the package's __init__ imports this module first.
void translate_error(std::exception_ptr error) {
  try {
    if (error) std::rethrow_exception(error);
  } catch (const modelreg::Error& e) {
    const std::string code(modelreg::to_string(e.code()));
    py::object errors = py::module_::import("modelreg._errors");
    py::object exception_class = errors.attr("class_for_code")(code);
    py::object exception = exception_class(e.what());
    PyErr_SetObject(exception_class.ptr(), exception.ptr());
  }
}

}  // namespace

PYBIND11_MODULE(_modelreg, m) {
  m.doc() = "The compiled part of the modelreg package: use `import modelreg`, not this module.";
  py::register_exception_translator(&translate_error);
  modelreg::python::bind_model(m);
  modelreg::python::bind_registry(m);
  modelreg::python::bind_server(m);
  modelreg::python::bind_sklearn(m);
}
