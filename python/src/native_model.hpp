// python/src/native_model.hpp — the C++ object behind modelreg.Model: a trained, immutable model
// plus the feature names it was saved or converted with. Shared by the module (load_model,
// save_model) and the scikit-learn converters (sklearn_bindings.cpp), which return one.
//
// Thread-safety: immutable after construction; the model may predict from any thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "modelreg/model.hpp"

namespace modelreg::python {

struct NativeModel {
  std::shared_ptr<const Model> model;
  // The model's input columns in order; empty when unknown (then f0, f1, ... are assumed).
  std::vector<std::string> feature_names;
};

}  // namespace modelreg::python
