// Fuzzes the request body parsers of `modelreg serve` (registry-cli/infer_request.hpp): the Open
// Inference Protocol body of /v2/models/NAME/infer and the {"instances"} body of /predict.
//
// Properties:
// - every failure is an HttpError with status 400 and a message; nothing else escapes (anything
//   else would be a 500, or a crash, in the server);
// - an accepted infer body has rows, cols >= 1 and exactly rows × cols values (no overflow), each
//   finite or NaN (a JSON null: missing), never infinite;
// - an accepted predict body has exactly rows × cols values (no ragged instance is flattened
//   into shifted rows), each finite or NaN, never infinite;
// - the "id" echoed in the answer can be copied and printed, as the server does.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "infer_request.hpp"

namespace {

using modelreg::cli::HttpError;
using modelreg::cli::InferRequest;
using modelreg::fuzz::check;

void check_error(const HttpError& e) {
  check(e.status == 400, "parse errors are 400", e.message);
  check(!e.message.empty(), "a parse error says what is wrong");
}

void check_values(const InferRequest& request) {
  for (double v : request.values) check(!std::isinf(v), "no value is infinite (NaN is a missing value)");
  if (request.id) {
    const nlohmann::json copy = *request.id;  // the server copies the id into its answer...
    (void)copy.dump();                        // ...and prints the answer
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  try {
    const InferRequest request = modelreg::cli::parse_infer_request(body);
    check(request.rows >= 1 && request.cols >= 1, "an infer body has at least one row and one column");
    check(request.rows <= std::numeric_limits<std::size_t>::max() / request.cols &&
              request.values.size() == request.rows * request.cols,
          "an infer body has exactly rows × cols values");
    check_values(request);
  } catch (const HttpError& e) {
    check_error(e);
  }
  try {
    const InferRequest request = modelreg::cli::parse_predict_request(body);
    check(request.rows != 0 || request.values.empty(), "no instances, no values");
    check(request.values.size() == request.rows * request.cols, "a predict body has exactly rows × cols values");
    check_values(request);
  } catch (const HttpError& e) {
    check_error(e);
  }
  return 0;
}
