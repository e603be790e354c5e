#include "infer_request.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace modelreg::cli {
namespace {

using nlohmann::json;

json parse_body(std::string_view body) {
  // Refused while parsing, before anything recurses over the value (the parser itself does not).
  // A key given twice in one object is refused too: which of the two a reader takes is a guess
  // ({"shape": [1, 10], "shape": [10, 1]} must not score either).
  std::vector<std::set<std::string>> keys;  // of the objects being parsed, innermost last
  const json::parser_callback_t check = [&keys](int depth, json::parse_event_t event, json& parsed) {
    if (depth > kMaxJsonDepth) throw HttpError{400, fmt::format("the JSON body is nested deeper than {} levels", kMaxJsonDepth)};
    switch (event) {
      case json::parse_event_t::object_start: keys.emplace_back(); break;
      case json::parse_event_t::object_end: if (!keys.empty()) keys.pop_back(); break;
      case json::parse_event_t::key:
        if (!keys.empty() && !keys.back().insert(parsed.get<std::string>()).second) {
          throw HttpError{400, fmt::format("the key \"{}\" appears twice in one object", parsed.get<std::string>())};
        }
        break;
      default: break;
    }
    return true;
  };
  try {
    return json::parse(body, check);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number such as 1e999
    throw HttpError{400, fmt::format("malformed JSON: {}", e.what())};
  }
}

// The smallest magnitude that float rounds to infinity: FLT_MAX plus half of its last unit
// (2^104). Below it, static_cast<float> is defined and finite; at or above, the value does not fit.
const double kFp32Overflow = static_cast<double>(std::numeric_limits<float>::max()) + std::ldexp(1.0, 103);

// A rectangular array of numbers: its shape (outermost first) and its values, row-major.
struct Tensor {
  std::vector<std::size_t> shape;
  std::vector<double> values;
};

std::string index_text(const std::vector<std::size_t>& index) {
  std::string out;
  for (auto i : index) out += fmt::format("[{}]", i);
  return out;
}

// Walks `j` depth first against `t.shape` (taken from the first element at each depth): every
// array at a depth must have that depth's length and every number must sit at the innermost
// depth, or the data is ragged — refused, never flattened into rows that would shift values from
// one row into the next.
void walk(const json& j, const std::string& what, bool fp32, std::vector<std::size_t>& index, Tensor& t) {
  const std::size_t depth = index.size();
  if (depth < t.shape.size()) {
    if (!j.is_array()) {
      throw HttpError{400, fmt::format("{} is ragged: {}{} is not an array of {} like {}{}", what, what, index_text(index),
                                       t.shape[depth], what, index_text(std::vector<std::size_t>(depth, 0)))};
    }
    if (j.size() != t.shape[depth]) {
      throw HttpError{400, fmt::format("{} is ragged: {}{} has {} elements, {}{} has {}", what, what, index_text(index),
                                       j.size(), what, index_text(std::vector<std::size_t>(depth, 0)), t.shape[depth])};
    }
    index.push_back(0);
    for (const auto& e : j) {
      walk(e, what, fp32, index, t);
      ++index.back();
    }
    index.pop_back();
    return;
  }
  if (j.is_array()) {
    throw HttpError{400, fmt::format("{} is ragged: {}{} is an array where a number is expected", what, what,
                                     index_text(index))};
  }
  if (j.is_null()) {  // a missing value: the model routes it or refuses it
    t.values.push_back(std::numeric_limits<double>::quiet_NaN());
    return;
  }
  if (!j.is_number()) {
    throw HttpError{400, fmt::format("element {} ({}{}) is not a number: {}", t.values.size(), what, index_text(index),
                                     j.dump())};
  }
  const double v = j.get<double>();
  if (!std::isfinite(v)) throw HttpError{400, fmt::format("element {} is not a finite number", t.values.size())};
  if (fp32 && std::fabs(v) >= kFp32Overflow) {
    throw HttpError{400, fmt::format("element {} ({}) is out of the range of FP32 (largest {}); send it as FP64",
                                     t.values.size(), j.dump(), std::numeric_limits<float>::max())};
  }
  t.values.push_back(fp32 ? static_cast<double>(static_cast<float>(v)) : v);
}

// The tensor of an array `j` (named `what` in messages). Throws HttpError (400) for anything that
// is not an array, not rectangular, or holds anything but finite numbers (finite in FP32 too).
Tensor tensor_of(const json& j, const std::string& what, bool fp32) {
  if (!j.is_array()) throw HttpError{400, fmt::format("{} is not an array of numbers", what)};
  Tensor t;
  for (const json* e = &j; e->is_array(); e = &(*e)[0]) {
    t.shape.push_back(e->size());
    if (e->empty()) break;
  }
  std::vector<std::size_t> index;
  walk(j, what, fp32, index, t);
  return t;
}

std::string shape_text(const std::vector<std::size_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

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
  request.rows = static_cast<std::size_t>(input["shape"][0].get<std::int64_t>());
  request.cols = static_cast<std::size_t>(input["shape"][1].get<std::int64_t>());
  Tensor data = tensor_of(input["data"], "data", datatype == "FP32");
  // rows × cols may not fit a size_t: compare by division.
  if (request.rows > std::numeric_limits<std::size_t>::max() / request.cols) {
    throw HttpError{400, fmt::format("shape [{}, {}] needs more values than can be sent, the data has {}", request.rows,
                                     request.cols, data.values.size())};
  }
  // Flat data is read row-major into the shape; nested data must have exactly that shape (a
  // [cols, rows] or [rows, 1, cols] array is a client mistake, not a layout to guess).
  if (data.shape.size() > 1 && data.shape != std::vector<std::size_t>{request.rows, request.cols}) {
    throw HttpError{400, fmt::format("data has shape {}, the input's shape is [{}, {}]", shape_text(data.shape),
                                     request.rows, request.cols)};
  }
  if (data.values.size() != request.rows * request.cols) {
    throw HttpError{400, fmt::format("shape [{}, {}] needs {} values, the data has {}", request.rows, request.cols,
                                     request.rows * request.cols, data.values.size())};
  }
  request.values = std::move(data.values);
  if (body.contains("id")) {
    // The protocol's id is a string, echoed as one in the answer.
    if (!body["id"].is_string()) throw HttpError{400, "\"id\" must be a string (Open Inference Protocol)"};
    request.id = body["id"];
  }
  if (body.contains("outputs")) {
    const json& outputs = body["outputs"];
    const auto bad = HttpError{400, "\"outputs\" must be an array of {\"name\": \"...\"}, each name once"};
    if (!outputs.is_array()) throw bad;
    for (const json& o : outputs) {
      if (!o.is_object() || !o.contains("name") || !o["name"].is_string()) throw bad;
      std::string name = o["name"].get<std::string>();
      if (std::find(request.requested_outputs.begin(), request.requested_outputs.end(), name) !=
          request.requested_outputs.end()) {
        throw bad;
      }
      request.requested_outputs.push_back(std::move(name));
    }
  }
  return request;
}

InferRequest parse_predict_request(std::string_view text) {
  const json body = parse_body(text);
  if (!body.is_object() || !body.contains("instances") || !body["instances"].is_array()) {
    throw HttpError{400, "the body must be {\"instances\": [[feature, ...], ...]}"};
  }
  const json& instances = body["instances"];
  InferRequest request;
  std::vector<std::size_t> first_shape;
  for (std::size_t r = 0; r < instances.size(); ++r) {
    if (!instances[r].is_array()) throw HttpError{400, fmt::format("instance {} is not an array of numbers", r)};
    Tensor t = tensor_of(instances[r], fmt::format("instances[{}]", r), false);
    if (r == 0) {
      first_shape = t.shape;
    } else if (t.shape != first_shape) {
      if (t.shape[0] != first_shape[0]) {
        throw HttpError{400, fmt::format("instance {} has {} values, instance 0 has {}", r, t.shape[0], first_shape[0])};
      }
      throw HttpError{400, fmt::format("instance {} has shape {}, instance 0 has shape {}", r, shape_text(t.shape),
                                       shape_text(first_shape))};
    }
    request.values.insert(request.values.end(), t.values.begin(), t.values.end());
  }
  request.rows = instances.size();
  request.cols = request.rows == 0 ? 0 : request.values.size() / request.rows;
  return request;
}

}  // namespace modelreg::cli
