// Fuzzes the XGBoost model reader (modelreg/xgboost.hpp): read_xgboost_model on JSON and UBJSON
// model files, as given.
//
// Properties:
// - every failure is Error(validation_failed) (not a valid XGBoost model) or
//   Error(invalid_argument) (a valid model this library does not support), nothing else;
// - an accepted model predicts on rows of zeros, of NaN (missing: routed by default directions)
//   and of large values (ASan checks that trees stay inside their arrays): outputs finite, a
//   classifier's probabilities in [0, 1] summing to 1 for multiclass;
// - the model survives serialize -> deserialize with bit-identical predictions.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "modelreg/matrix.hpp"
#include "modelreg/model.hpp"
#include "modelreg/model_archive.hpp"
#include "modelreg/xgboost.hpp"

namespace {

using modelreg::Errc;
using modelreg::fuzz::check;

void exercise(std::string_view bytes) {
  std::unique_ptr<modelreg::XGBoostFile> file;
  try {
    file = std::make_unique<modelreg::XGBoostFile>(modelreg::read_xgboost_model(bytes));
  } catch (const modelreg::Error& e) {
    modelreg::fuzz::check_code(e, Errc::validation_failed, Errc::invalid_argument);
    return;
  }
  const modelreg::Model& model = file->model;
  const std::size_t n = model.n_features();
  check(n >= 1, "an accepted model has features");
  if (n > 4096) return;  // predicting is bounded by the file's size anyway; keep runs fast
  std::vector<double> rows(3 * n, 0.0);
  for (std::size_t j = 0; j < n; ++j) {
    rows[n + j] = std::numeric_limits<double>::quiet_NaN();
    rows[2 * n + j] = (j % 2 == 0 ? 1 : -1) * 1e30;
  }
  const modelreg::MatrixView x(rows.data(), 3, n);
  const std::vector<double> out = model.predict_outputs(x);
  const std::size_t k = model.n_outputs();
  check(out.size() == 3 * k, "rows × n_outputs values");
  for (std::size_t r = 0; r < 3; ++r) {
    double sum = 0;
    for (std::size_t c = 0; c < k; ++c) {
      const double v = out[r * k + c];
      if (model.task() != modelreg::Task::regression) {
        check(v >= 0 && v <= 1, "a probability is in [0, 1]");
      }
      sum += v;
    }
    if (model.task() == modelreg::Task::multiclass) check(std::fabs(sum - 1) < 1e-5, "probabilities sum to 1");
  }
  const std::unique_ptr<modelreg::Model> again = modelreg::deserialize_model(modelreg::serialize_model(model));
  const std::vector<double> out_again = again->predict_outputs(x);
  check(out_again.size() == out.size() && std::memcmp(out_again.data(), out.data(), out.size() * sizeof(double)) == 0,
        "the archive round trip predicts bit-identically");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  exercise(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
