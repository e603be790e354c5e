// infer_request.hpp — the request bodies of the inference endpoints of `modelreg serve`, parsed
// into rows to score, without any HTTP library (so the parser can be tested and fuzzed alone).
//
// Both parsers check only the body's own consistency; whether the rows fit the serving model
// (feature count, at least one row) is for the caller to check.
//
// Thread-safety: free functions without shared state.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace modelreg::cli {

// A client mistake: 4xx with {"error": message}.
struct HttpError {
  int status;
  std::string message;
};

// Rows parsed from a request body: `values` holds rows × cols numbers, row-major, each finite or
// NaN (a JSON null: a missing value, which the model routes or refuses).
struct InferRequest {
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::vector<double> values;
  std::optional<nlohmann::json> id;  // the request's "id" (a string), echoed in the answer
  // The outputs the request asks for ("outputs": [{"name": ...}, ...]); empty: all of them.
  std::vector<std::string> requested_outputs;
};

// JSON nested deeper than this is refused: copying or printing a value recurses once per level,
// so an 8 MiB body of `[[[[…` would otherwise overflow a server thread's stack.
inline constexpr int kMaxJsonDepth = 64;

// The body of POST /v2/models/NAME/infer (Open Inference Protocol v2):
// {"id"?, "inputs": [{"name", "shape": [rows, features], "datatype": "FP64"|"FP32", "data": [...]}]}.
// "data" is flat (rows × features numbers, row-major) or nested with exactly the shape
// [rows, features]; anything ragged or of another shape is refused, never re-shaped. FP32 values
// are rounded to float; one beyond float's range is refused (it would be infinity). Always
// values.size() == rows × cols with rows, cols >= 1. Throws HttpError (400) naming the problem:
// malformed JSON, a key given twice in one object, a wrong structure, datatype or shape, a value
// that is not a finite number, a data count that does not fit the shape, an "id" that is not a
// string, "outputs" that is not an
// array of objects with a string "name" (each name once).
InferRequest parse_infer_request(std::string_view body);

// The body of POST /predict: {"instances": [[feature, ...], ...]}. rows is the number of
// instances (possibly 0); every instance is a rectangular array of finite numbers of one same
// shape (usually [features]; a nested instance is flattened row-major, so cols is the product of
// its shape), so values.size() == rows × cols always (cols 0 without instances). Throws
// HttpError (400): malformed JSON, a key given twice, a wrong structure, an instance that is not
// an array of finite numbers, a ragged instance, instances of different shapes.
InferRequest parse_predict_request(std::string_view body);

}  // namespace modelreg::cli
