#include "infer_request.hpp"

#include <cmath>
#include <cstdint>
#include <limits>

#include <fmt/format.h>

namespace modelreg::cli {
namespace {

using nlohmann::json;

json parse_body(std::string_view body) {
  // Refused while parsing, before anything recurses over the value (the parser itself does not).
  const json::parser_callback_t limit_depth = [](int depth, json::parse_event_t, json&) {
    if (depth > kMaxJsonDepth) throw HttpError{400, fmt::format("the JSON body is nested deeper than {} levels", kMaxJsonDepth)};
    return true;
  };
  try {
    return json::parse(body, limit_depth);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number such as 1e999
    throw HttpError{400, fmt::format("malformed JSON: {}", e.what())};
  }
}

// Appends the numbers of a (possibly nested) JSON array to `out`.
void flatten(const json& j, std::vector<double>& out, bool fp32) {
  if (j.is_array()) {
    for (const auto& e : j) flatten(e, out, fp32);
    return;
  }
  if (!j.is_number()) {
    throw HttpError{400, fmt::format("element {} is not a number: {}", out.size(), j.dump())};
  }
  const double v = j.get<double>();
  if (!std::isfinite(v)) throw HttpError{400, fmt::format("element {} is not a finite number", out.size())};
  out.push_back(fp32 ? static_cast<double>(static_cast<float>(v)) : v);
}

}  // namespace

InferRequest parse_infer_request(std::string_view text) {
  const json body = parse_body(text);
  if (!body.is_object() || !body.contains("inputs") || !body["inputs"].is_array() || body["inputs"].size() != 1) {
    throw HttpError{400, "the body must be {\"inputs\": [{\"name\", \"shape\": [rows, features], \"datatype\": "
                         "\"FP64\"|\"FP32\", \"data\": [...]}]} with exactly one input"};
  }
  const json& input = body["inputs"][0];
  if (!input.is_object()) {
    throw HttpError{400, "the body must be {\"inputs\": [{\"name\", \"shape\": [rows, features], \"datatype\": "
                         "\"FP64\"|\"FP32\", \"data\": [...]}]} with exactly one input"};
  }
  if (input.contains("datatype") && !input["datatype"].is_string()) {
    throw HttpError{400, fmt::format("datatype '{}' is not supported; use FP64 or FP32", input["datatype"].dump())};
  }
  const std::string datatype = input.value("datatype", "FP64");
  if (datatype != "FP64" && datatype != "FP32") {
    throw HttpError{400, fmt::format("datatype '{}' is not supported; use FP64 or FP32", datatype)};
  }
  if (!input.contains("shape") || !input["shape"].is_array() || input["shape"].size() != 2 ||
      !input["shape"][0].is_number_integer() || !input["shape"][1].is_number_integer() ||
      input["shape"][0].get<std::int64_t>() < 1 || input["shape"][1].get<std::int64_t>() < 1) {
    throw HttpError{400, "shape must be [rows, features] with positive integers"};
  }
  if (!input.contains("data")) throw HttpError{400, "the input has no \"data\""};
  InferRequest request;
  flatten(input["data"], request.values, datatype == "FP32");
  request.rows = static_cast<std::size_t>(input["shape"][0].get<std::int64_t>());
  request.cols = static_cast<std::size_t>(input["shape"][1].get<std::int64_t>());
  // rows × cols may not fit a size_t: compare by division.
  if (request.rows > std::numeric_limits<std::size_t>::max() / request.cols) {
    throw HttpError{400, fmt::format("shape [{}, {}] needs more values than can be sent, the data has {}", request.rows,
                                     request.cols, request.values.size())};
  }
  if (request.values.size() != request.rows * request.cols) {
    throw HttpError{400, fmt::format("shape [{}, {}] needs {} values, the data has {}", request.rows, request.cols,
                                     request.rows * request.cols, request.values.size())};
  }
  if (body.contains("id")) request.id = body["id"];
  return request;
}

InferRequest parse_predict_request(std::string_view text) {
  const json body = parse_body(text);
  if (!body.is_object() || !body.contains("instances") || !body["instances"].is_array()) {
    throw HttpError{400, "the body must be {\"instances\": [[feature, ...], ...]}"};
  }
  const json& instances = body["instances"];
  InferRequest request;
  std::optional<std::size_t> width;
  for (std::size_t r = 0; r < instances.size(); ++r) {
    if (!instances[r].is_array()) throw HttpError{400, fmt::format("instance {} is not an array of numbers", r)};
    if (width && instances[r].size() != *width) {
      throw HttpError{400, fmt::format("instance {} has {} values, instance 0 has {}", r, instances[r].size(), *width)};
    }
    width = instances[r].size();
    flatten(instances[r], request.values, false);
  }
  request.rows = instances.size();
  request.cols = width.value_or(0);
  return request;
}

}  // namespace modelreg::cli
