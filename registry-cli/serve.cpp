// `modelreg serve`: a ModelRepository (many models, each following its aliases) behind an HTTP
// server: Open Inference Protocol v2 with the model repository extension, /predict, /status, /metrics. See README.md, "Server API".
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "arguments.hpp"
#include "commands.hpp"
#include "http_server.hpp"
#include "infer_request.hpp"
#include "modelreg/model_repository.hpp"
#include "modelreg/registry.hpp"
#include "render.hpp"

namespace modelreg::cli {
namespace {

using nlohmann::json;

// The options of `modelreg serve`; the database and the signing key are global options.
//
// The limits that keep the server up, whatever clients do (also in `serve --help` and README.md):
// - a request's line and headers (at most 16 KiB, 100 headers) must arrive within
//   header_timeout_ms (10 s) of its first byte, else 408 and the connection is closed (431 when
//   larger); a connection idle between requests is closed after idle_timeout_ms (5 s);
// - a body must arrive within body_timeout_ms (30 s) of the end of the headers, else 408; a
//   declared Content-Length over max_body_bytes (8 MiB) is answered 413 at once, before any of
//   the body is read; a chunked body is cut off with 413 once it passes the limit;
// - bodies held at once (being received or scored) total at most max_inflight_body_bytes (twice
//   max_body_bytes): a request that would pass it waits for room up to body_timeout_ms, then 503;
// - answers must be taken by the client within 30 s (write timeout), else the connection closes;
// - each open connection holds one thread, started as needed up to `threads` (256); beyond that,
//   new connections wait for one, which the deadlines above bound. Health, status and metrics
//   never wait for scoring: they run on their connection's own thread.
struct ServeArgs {
  std::vector<std::string> models;
  bool all = false;
  std::vector<std::string> splits;   // NAME=ALIAS:PERCENT
  std::vector<std::string> shadows;  // NAME=ALIAS
  std::string max_memory;            // empty: no bound
  int load_threads = 2;
  bool no_change_notifications = false;
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (the chosen one is printed)
  int poll_ms = 100;
  std::string alias = "active";
  int threads = 256;
  std::size_t max_body_bytes = 8u << 20;
  std::size_t max_inflight_body_bytes = 0;  // 0: twice max_body_bytes
  int header_timeout_ms = 10'000;
  int body_timeout_ms = 30'000;
  int idle_timeout_ms = 5'000;
};

// The resident set size of this process, from /proc/self/statm (0 when unreadable).
std::uint64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

enum Route : std::size_t { kInfer, kPredict, kHealth, kMetadata, kRepository, kStatus, kMetrics, kOther, kRoutes };
constexpr std::array<const char*, kRoutes> kRouteNames = {"infer",      "predict", "health",  "metadata",
                                                          "repository", "status",  "metrics", "other"};
enum Outcome : std::size_t { kOk, kClientError, kNotReady, kServerError, kOutcomes };
constexpr std::array<const char*, kOutcomes> kOutcomeNames = {"ok", "client_error", "not_ready", "server_error"};
constexpr std::array<double, 14> kBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                             0.025,  0.05,    0.1,    0.25,  0.5,    1.0,   2.5};

// Counters for /metrics; every field is an atomic, updated without locks.
struct HttpMetrics {
  std::array<std::array<std::atomic<std::uint64_t>, kOutcomes>, kRoutes> requests{};
  std::array<std::atomic<std::uint64_t>, kBuckets.size() + 1> latency{};  // inference routes only
  std::atomic<std::uint64_t> latency_sum_ns{0};
  std::atomic<std::uint64_t> rows{0};
  std::atomic<std::int64_t> in_flight{0};  // inference requests being handled now
  std::atomic<std::int64_t> connections{0};  // open connections
  std::atomic<std::uint64_t> refused{0};     // requests answered by the connection layer (400, 408, 413, ...)

  void record(Route route, Outcome outcome, std::chrono::steady_clock::duration took) {
    requests[route][outcome].fetch_add(1, std::memory_order_relaxed);
    if (route != kInfer && route != kPredict) return;
    const double s = std::chrono::duration<double>(took).count();
    std::size_t b = 0;
    while (b < kBuckets.size() && s > kBuckets[b]) ++b;
    latency[b].fetch_add(1, std::memory_order_relaxed);
    latency_sum_ns.fetch_add(static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(took).count()),
                             std::memory_order_relaxed);
  }
};

// The predicted class labels of a prediction as an OIP tensor: INT64 for integer labels, BYTES
// for string labels.
json label_tensor(const Prediction& p) {
  json data = json::array();
  for (int i : p.labels) {
    const auto index = static_cast<std::size_t>(i);
    if (p.classes.are_integers()) {
      data.push_back(p.classes.integer(index));
    } else {
      data.push_back(p.classes.text(index));
    }
  }
  return {{"name", "label"}, {"datatype", p.classes.are_integers() ? "INT64" : "BYTES"}, {"shape", {p.rows}},
          {"data", std::move(data)}};
}

// The outputs of an OIP v2 answer, by task (README, "Output shapes"): binary `label` [n] and
// `probability` [n]; multiclass `probabilities` [n, k] and `label` [n]; regression `prediction` [n].
json oip_outputs(const Prediction& p) {
  switch (p.task) {
    case Task::binary:
      return json::array({label_tensor(p), {{"name", "probability"}, {"datatype", "FP64"}, {"shape", {p.rows}},
                                            {"data", p.probabilities}}});
    case Task::multiclass:
      return json::array({{{"name", "probabilities"}, {"datatype", "FP64"}, {"shape", {p.rows, p.classes.size()}},
                           {"data", p.probabilities}},
                          label_tensor(p)});
    case Task::regression: break;
  }
  return json::array({{{"name", "prediction"}, {"datatype", "FP64"}, {"shape", {p.rows}}, {"data", p.values}}});
}

// The same outputs as OIP metadata (shapes with -1 for the rows).
json oip_output_metadata(const Model& model) {
  const ClassLabels classes = model.classes();
  const json label = {{"name", "label"}, {"datatype", classes.are_integers() ? "INT64" : "BYTES"}, {"shape", {-1}}};
  switch (model.task()) {
    case Task::binary:
      return json::array({label, {{"name", "probability"}, {"datatype", "FP64"}, {"shape", {-1}}}});
    case Task::multiclass:
      return json::array(
          {{{"name", "probabilities"}, {"datatype", "FP64"}, {"shape", {-1, static_cast<std::int64_t>(classes.size())}}},
           label});
    case Task::regression: break;
  }
  return json::array({{{"name", "prediction"}, {"datatype", "FP64"}, {"shape", {-1}}}});
}

// The /predict answer's fields: "predictions" (class labels, or values for regression) and, for
// classifiers, "probabilities" (binary: one a row; multiclass: one array of k a row).
json simple_outputs(const Prediction& p) {
  if (p.task == Task::regression) return {{"predictions", p.values}};
  json labels = label_tensor(p)["data"];
  if (p.task == Task::binary) return {{"predictions", std::move(labels)}, {"probabilities", p.probabilities}};
  const std::size_t k = p.classes.size();
  json rows = json::array();
  for (std::size_t r = 0; r < p.rows; ++r) {
    rows.push_back(std::vector<double>(p.probabilities.begin() + static_cast<std::ptrdiff_t>(r * k),
                                       p.probabilities.begin() + static_cast<std::ptrdiff_t>((r + 1) * k)));
  }
  return {{"predictions", std::move(labels)}, {"probabilities", std::move(rows)}};
}

void reply(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

// The HTTP status of a library error on the serving routes.
int status_of(const Error& e) {
  switch (e.code()) {
    case Errc::invalid_argument: return 400;
    case Errc::not_found: return 404;
    case Errc::conflict: return 503;  // nothing serves it (yet): the load failed or is not done
    case Errc::busy: return 503;
    default: return 500;
  }
}

// Prometheus label values: backslash, double quote and newline escaped.
std::string label_value(std::string_view v) {
  std::string out;
  for (const char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

class HttpFrontEnd {
 public:
  HttpFrontEnd(ModelRepository& repository, const ServeArgs& args) : repository_(repository), args_(args) {}

  void install(httplib::Server& http) {
    http.Get("/v2/health/live", wrap(kHealth, [](const httplib::Request&, httplib::Response& res) {
      reply(res, 200, {{"live", true}});
    }));
    http.Get("/v2/health/ready", wrap(kHealth, [this](const httplib::Request&, httplib::Response& res) {
      const json body = readiness();
      reply(res, body["ready"].get<bool>() ? 200 : 400, body);
    }));
    http.Get("/v2/?", wrap(kMetadata, [](const httplib::Request&, httplib::Response& res) {
      reply(res, 200, {{"name", "modelreg"}, {"version", "0.1.0"}, {"extensions", json::array({"model_repository"})}});
    }));
    auto metadata = [this](const httplib::Request& req, httplib::Response& res) {
      reply(res, 200, model_metadata(*repository_.served(target_of(req))));
    };
    http.Get(R"(/v2/models/([^/]+))", wrap(kMetadata, metadata));
    http.Get(R"(/v2/models/([^/]+)/versions/([^/]+))", wrap(kMetadata, metadata));
    auto ready = [this](const httplib::Request& req, httplib::Response& res) {
      const ServingRequest target = target_of(req);
      json body = {{"name", target.model}};
      if (target.version.empty()) {
        if (!repository_.serves(target.model)) throw HttpError{404, fmt::format("model '{}' is not served here", target.model)};
        body["ready"] = repository_.ready(target.model);
        if (!body["ready"].get<bool>()) body["reason"] = repository_.unready_reason(target.model);
      } else {
        body["version"] = target.version;
        try {
          (void)repository_.served(target);
          body["ready"] = true;
        } catch (const Error& e) {
          if (e.code() != Errc::conflict) throw;
          body["ready"] = false;
          body["reason"] = e.what();
        }
      }
      reply(res, body["ready"].get<bool>() ? 200 : 400, body);
    };
    http.Get(R"(/v2/models/([^/]+)/ready)", wrap(kHealth, ready));
    http.Get(R"(/v2/models/([^/]+)/versions/([^/]+)/ready)", wrap(kHealth, ready));
    auto infer = [this](const httplib::Request& req, httplib::Response& res) { this->infer(req, res); };
    http.Post(R"(/v2/models/([^/]+)/infer)", wrap(kInfer, infer));
    http.Post(R"(/v2/models/([^/]+)/versions/([^/]+)/infer)", wrap(kInfer, infer));
    // The KServe model repository extension.
    http.Post("/v2/repository/index", wrap(kRepository, [this](const httplib::Request& req, httplib::Response& res) {
      this->index(req, res);
    }));
    http.Post(R"(/v2/repository/models/([^/]+)/load)", wrap(kRepository, [this](const httplib::Request& req, httplib::Response& res) {
      repository_.load(req.matches[1].str());
      reply(res, 200, json::object());
    }));
    http.Post(R"(/v2/repository/models/([^/]+)/unload)", wrap(kRepository, [this](const httplib::Request& req, httplib::Response& res) {
      repository_.unload(req.matches[1].str());
      reply(res, 200, json::object());
    }));
    http.Post("/predict", wrap(kPredict, [this](const httplib::Request& req, httplib::Response& res) {
      this->predict(req, res);
    }));
    http.Get("/status", wrap(kStatus, [this](const httplib::Request&, httplib::Response& res) {
      reply(res, 200, status_json());
    }));
    http.Get("/metrics", wrap(kMetrics, [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(prometheus(), "text/plain; version=0.0.4");
    }));
    // Anything else (unknown path, body over the limit, ...): a JSON error, never an empty body.
    http.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      std::string message = fmt::format("no such endpoint: {} {}", req.method, req.path);
      if (res.status == 413) {
        message = fmt::format("request body over the limit of {} bytes", args_.max_body_bytes);
      } else if (res.status != 404) {
        message = fmt::format("HTTP {}: the request could not be read completely ({} of {} body bytes arrived)",
                              res.status, req.body.size(), req.get_header_value("Content-Length"));
        log(fmt::format("{} {} answered {} by the HTTP layer: {} of {} body bytes arrived", req.method, req.path,
                        res.status, req.body.size(), req.get_header_value("Content-Length")));
      }
      metrics_.record(kOther, kClientError, {});
      reply(res, res.status, {{"error", message}});
    });
  }

  static void log(std::string_view line) { LogSink::instance().write(line); }

  // A request the connection layer answered itself (it never reached a handler).
  void refused(int status, std::string_view method, std::string_view target, std::string_view why) {
    metrics_.refused.fetch_add(1, std::memory_order_relaxed);
    metrics_.record(kOther, status == 503 ? kNotReady : kClientError, {});
    log(fmt::format("answered {} to {} {}: {}", status, method.empty() ? "-" : method, target.empty() ? "-" : target,
                    why));
  }
  HttpMetrics& metrics() noexcept { return metrics_; }
  void set_budget(const BodyBudget* budget) noexcept { budget_ = budget; }

 private:
  // The model and version a route names (/v2/models/NAME[/versions/V]/...).
  static ServingRequest target_of(const httplib::Request& req) {
    ServingRequest target;
    target.model = req.matches[1].str();
    if (req.matches.size() > 2 && req.matches[2].matched) target.version = req.matches[2].str();
    if (!is_valid_model_name(target.model)) {
      throw HttpError{400, fmt::format("'{}' is not a valid model name", target.model)};
    }
    return target;
  }

  // {"ready": ...} and, when not ready, "reason": why (the first model that does not serve).
  json readiness() const {
    const RepositoryStatus s = repository_.status();
    json body = {{"ready", !s.models.empty() && !s.database_problem}};
    if (s.models.empty()) {
      body["reason"] = args_.all ? fmt::format("no model has a version holding '{}' yet", args_.alias)
                                 : std::string("no model is served");
    } else if (s.database_problem) {
      body["reason"] = *s.database_problem;
    }
    for (const auto& m : s.models) {
      if (!body["ready"].get<bool>()) break;
      if (!m.ready) {
        body["ready"] = false;
        body["reason"] = repository_.unready_reason(m.model);
      }
    }
    return body;
  }

  template <class Handler>
  httplib::Server::Handler wrap(Route route, Handler handler) {
    return [this, route, handler](const httplib::Request& req, httplib::Response& res) {
      const auto start = std::chrono::steady_clock::now();
      const bool inference = route == kInfer || route == kPredict;
      if (inference) metrics_.in_flight.fetch_add(1, std::memory_order_relaxed);
      struct Done {
        std::atomic<std::int64_t>* counter;
        ~Done() {
          if (counter) counter->fetch_sub(1, std::memory_order_relaxed);
        }
      } done{inference ? &metrics_.in_flight : nullptr};
      Outcome outcome = kOk;
      try {
        handler(req, res);
        if (res.status >= 400) outcome = kClientError;
      } catch (const HttpError& e) {
        outcome = e.status == 503 ? kNotReady : kClientError;
        reply(res, e.status, {{"error", e.message}});
      } catch (const Error& e) {
        const int status = status_of(e);
        outcome = status == 503 ? kNotReady : status >= 500 ? kServerError : kClientError;
        reply(res, status, {{"error", e.what()}});
      } catch (const std::exception& e) {
        outcome = kServerError;
        reply(res, 500, {{"error", e.what()}});
      }
      metrics_.record(route, outcome, std::chrono::steady_clock::now() - start);
    };
  }

  static json model_metadata(const ServedModel& served) {
    json features = json::array();
    for (const auto& f : served.version.features) features.push_back(f.name);
    const auto n = static_cast<std::int64_t>(served.model->n_features());
    return {{"name", served.version.id.model},
            {"versions", json::array({std::to_string(served.version.id.number)})},
            {"platform", "modelreg"},
            {"type", served.model->type_name()},
            {"task", to_string(served.model->task())},
            {"classes", served.model->classes().texts()},
            {"inputs", json::array({{{"name", "input"}, {"datatype", "FP64"}, {"shape", {-1, n}}, {"features", features}}})},
            {"outputs", oip_output_metadata(*served.model)}};
  }

  // Scores through the repository, checking the width against the version that will answer
  // first, so that a wrong one gets a message naming the expected width.
  RoutedPrediction score(const ServingRequest& target, const std::vector<double>& values, std::size_t rows,
                         std::size_t cols) {
    if (rows == 0) throw HttpError{400, "no rows to score"};
    try {
      RoutedPrediction p = repository_.predict(target, MatrixView(values.data(), rows, cols));
      metrics_.rows.fetch_add(rows, std::memory_order_relaxed);
      return p;
    } catch (const Error& e) {
      if (e.code() != Errc::invalid_argument) throw;
      // Name the width the model takes, when that was the problem.
      std::shared_ptr<const ServedModel> served;
      try {
        served = repository_.served(target);
      } catch (const Error&) {
        throw HttpError{400, e.what()};
      }
      const std::size_t n = served->model->n_features();
      if (cols != n) {
        throw HttpError{400, fmt::format("wrong feature count: {} takes {} features, the input has {}",
                                         served->version.ref_string(), n, cols)};
      }
      throw HttpError{400, e.what()};
    }
  }

  void infer(const httplib::Request& req, httplib::Response& res) {
    ServingRequest target = target_of(req);
    const InferRequest request = parse_infer_request(req.body);
    // The split key: the request's id, else the X-Request-Key header.
    if (request.id) {
      target.key = request.id->is_string() ? request.id->get<std::string>() : request.id->dump();
    } else if (req.has_header("X-Request-Key")) {
      target.key = req.get_header_value("X-Request-Key");
    }
    const RoutedPrediction p = score(target, request.values, request.rows, request.cols);
    json outputs = oip_outputs(p.prediction);
    if (!request.requested_outputs.empty()) {
      json chosen = json::array();
      for (const auto& name : request.requested_outputs) {
        const auto it = std::find_if(outputs.begin(), outputs.end(), [&](const json& o) { return o["name"] == name; });
        if (it == outputs.end()) {
          std::vector<std::string> names;
          for (const auto& o : outputs) names.push_back(o["name"].get<std::string>());
          throw HttpError{400, fmt::format("no output named '{}'; {} has the outputs {}", name, target.model,
                                           fmt::join(names, ", "))};
        }
        chosen.push_back(*it);
      }
      outputs = std::move(chosen);
    }
    json out = {{"model_name", target.model},
                {"model_version", std::to_string(p.prediction.version)},
                {"outputs", std::move(outputs)}};
    if (!p.alias.empty()) out["parameters"] = {{"alias", p.alias}};
    if (request.id) out["id"] = *request.id;
    reply(res, 200, out);
  }

  void index(const httplib::Request& req, httplib::Response& res) {
    std::optional<bool> ready_only;
    if (!req.body.empty()) {
      json body;
      try {
        body = json::parse(req.body);
      } catch (const json::exception&) {
        throw HttpError{400, "the body must be a JSON object: {} or {\"ready\": true|false}"};
      }
      if (!body.is_object() || (body.contains("ready") && !body["ready"].is_boolean())) {
        throw HttpError{400, "the body must be a JSON object: {} or {\"ready\": true|false}"};
      }
      if (body.contains("ready")) ready_only = body["ready"].get<bool>();
    }
    json out = json::array();
    for (const auto& e : repository_.index()) {
      if (ready_only && (e.state == "READY") != *ready_only) continue;
      json entry = {{"name", e.name}, {"state", e.state}, {"reason", e.reason}};
      if (e.version) entry["version"] = std::to_string(*e.version);
      out.push_back(std::move(entry));
    }
    reply(res, 200, out);
  }

  void predict(const httplib::Request& req, httplib::Response& res) {
    const InferRequest request = parse_predict_request(req.body);
    ServingRequest target;
    if (req.has_param("model")) {
      target.model = req.get_param_value("model");
    } else {
      const RepositoryStatus s = repository_.status();
      if (s.models.size() != 1) {
        throw HttpError{400, "this server serves several models: name one with /predict?model=NAME"};
      }
      target.model = s.models.front().model;
    }
    if (req.has_param("version")) target.version = req.get_param_value("version");
    if (req.has_header("X-Request-Key")) target.key = req.get_header_value("X-Request-Key");
    const RoutedPrediction p = score(target, request.values, request.rows, request.cols);
    json out = simple_outputs(p.prediction);
    out["model_version"] = p.prediction.version;
    reply(res, 200, out);
  }

  static json slot_json(const SlotStatus& s) {
    json by_version = json::object();
    for (const auto& [v, n] : s.requests_by_version) by_version[std::to_string(v)] = n;
    return {{"alias", s.alias.empty() ? json(nullptr) : json(s.alias)},
            {"pinned_version", json_or_null(s.pinned_version)},
            {"state", s.state},
            {"reason", s.reason.empty() ? json(nullptr) : json(s.reason)},
            {"serving_version", json_or_null(s.serving_version)},
            {"desired_version", json_or_null(s.desired_version)},
            {"swaps", s.swaps},
            {"load_failures", s.load_failures},
            {"unloads", s.unloads},
            {"last_error", json_or_null(s.last_error)},
            {"last_swap_at", json_or_null(s.last_swap_at)},
            {"last_load_seconds", s.last_load_seconds},
            {"memory_bytes", s.memory_bytes},
            {"requests", s.requests},
            {"errors", s.errors},
            {"in_flight", s.in_flight},
            {"idle_seconds", s.idle_seconds},
            {"requests_by_version", std::move(by_version)}};
  }

  static json shadow_json(const ShadowStatus& s) {
    json histogram = json::array();
    for (std::size_t i = 0; i < s.difference_counts.size(); ++i) {
      histogram.push_back({{"le", i < s.difference_bounds.size() ? json(s.difference_bounds[i]) : json("+Inf")},
                           {"count", s.difference_counts[i]}});
    }
    return {{"alias", s.alias},          {"queued", s.queued},
            {"dropped", s.dropped},      {"scored", s.scored},
            {"failed", s.failed},        {"rows", s.rows},
            {"label_disagreements", s.label_disagreements},
            {"difference_sum", s.difference_sum},
            {"differences", std::move(histogram)}};
  }

  json status_json() const {
    const RepositoryStatus s = repository_.status();
    std::uint64_t served = 0, failed = 0;
    for (std::size_t r = 0; r < kRoutes; ++r) {
      for (std::size_t o = 0; o < kOutcomes; ++o) {
        const auto n = metrics_.requests[r][o].load(std::memory_order_relaxed);
        (o == kOk ? served : failed) += n;
      }
    }
    json models = json::array();
    for (const auto& m : s.models) {
      json slots = json::array();
      for (const auto& slot : m.slots) slots.push_back(slot_json(slot));
      json entry = {{"model", m.model}, {"ready", m.ready}, {"listed", m.listed}, {"slots", std::move(slots)}};
      if (m.split) entry["split"] = {{"alias", m.split->alias}, {"percent", m.split->percent}};
      if (m.shadow) entry["shadow"] = shadow_json(*m.shadow);
      models.push_back(std::move(entry));
    }
    json out = {{"ready", readiness()["ready"]},
                {"models", std::move(models)},
                {"requests_served", served},
                {"requests_failed", failed},
                {"rows_scored", metrics_.rows.load()},
                {"inference_in_flight", metrics_.in_flight.load()},
                {"memory_bytes", s.memory_bytes},
                {"max_memory_bytes", s.max_memory_bytes},
                {"unloads", s.unloads},
                {"loads_queued", s.loads_queued},
                {"polls", s.polls},
                {"poll_errors", s.poll_errors},
                {"database_problem", json_or_null(s.database_problem)},
                {"database_reopens", s.reopens},
                {"change_notifications", s.change_notifications},
                {"change_wakeups", s.wakeups},
                {"connections_open", metrics_.connections.load()},
                {"requests_refused", metrics_.refused.load()},
                {"body_bytes_held", budget_ ? budget_->used() : 0},
                {"log_lines_dropped", LogSink::instance().dropped()},
                {"uptime_seconds", s.uptime_seconds}};
    // One model named on the command line: its default slot's fields at the top level too, as
    // a one-model server has always reported them.
    if (!args_.all && args_.models.size() == 1) {
      for (const auto& m : s.models) {
        if (m.model != args_.models.front() || m.slots.empty()) continue;
        const SlotStatus& d = m.slots.front();
        out["model"] = m.model;
        out["alias"] = d.alias;
        out["serving_version"] = json_or_null(d.serving_version);
        out["desired_version"] = json_or_null(d.desired_version);
        out["swaps"] = d.swaps;
        out["last_swap_at"] = json_or_null(d.last_swap_at);
        out["load_failures"] = d.load_failures;
        out["last_load_seconds"] = d.last_load_seconds;
        out["scoring_requests"] = d.requests;
        out["scoring_errors"] = d.errors;
        out["last_error"] = s.database_problem ? json(*s.database_problem) : json_or_null(d.last_error);
      }
    }
    return out;
  }

  std::string prometheus() const {
    const RepositoryStatus s = repository_.status();
    std::string out;
    auto line = [&](std::string text) {
      out += text;
      out += '\n';
    };
    line("# HELP modelreg_http_requests_total HTTP requests by route and outcome.");
    line("# TYPE modelreg_http_requests_total counter");
    for (std::size_t r = 0; r < kRoutes; ++r) {
      for (std::size_t o = 0; o < kOutcomes; ++o) {
        line(fmt::format("modelreg_http_requests_total{{route=\"{}\",outcome=\"{}\"}} {}", kRouteNames[r],
                         kOutcomeNames[o], metrics_.requests[r][o].load()));
      }
    }
    line("# HELP modelreg_inference_seconds Latency of /v2/.../infer and /predict requests.");
    line("# TYPE modelreg_inference_seconds histogram");
    std::uint64_t cumulative = 0;
    for (std::size_t b = 0; b < kBuckets.size(); ++b) {
      cumulative += metrics_.latency[b].load();
      line(fmt::format("modelreg_inference_seconds_bucket{{le=\"{}\"}} {}", kBuckets[b], cumulative));
    }
    cumulative += metrics_.latency[kBuckets.size()].load();
    line(fmt::format("modelreg_inference_seconds_bucket{{le=\"+Inf\"}} {}", cumulative));
    line(fmt::format("modelreg_inference_seconds_sum {}", static_cast<double>(metrics_.latency_sum_ns.load()) / 1e9));
    line(fmt::format("modelreg_inference_seconds_count {}", cumulative));
    auto gauge = [&](const char* name, const char* help, const char* type, auto value) {
      line(fmt::format("# HELP {} {}", name, help));
      line(fmt::format("# TYPE {} {}", name, type));
      line(fmt::format("{} {}", name, value));
    };
    // Per model and alias (a pinned slot has alias="" and its number in version).
    struct Family {
      const char* name;
      const char* help;
      const char* type;
      std::function<double(const ModelServingStatus&, const SlotStatus&)> value;
    };
    const Family families[] = {
        {"modelreg_model_ready", "1 when the slot serves a version.", "gauge",
         [](const auto&, const SlotStatus& x) { return x.state == "loaded" ? 1.0 : 0.0; }},
        {"modelreg_serving_version", "The version answering the slot's requests (0: none).", "gauge",
         [](const auto&, const SlotStatus& x) { return static_cast<double>(x.serving_version.value_or(0)); }},
        {"modelreg_desired_version", "The version the alias points at, last seen (0: none).", "gauge",
         [](const auto&, const SlotStatus& x) { return static_cast<double>(x.desired_version.value_or(0)); }},
        {"modelreg_swaps_total", "Hot swaps to a new version.", "counter",
         [](const auto&, const SlotStatus& x) { return static_cast<double>(x.swaps); }},
        {"modelreg_load_failures_total", "Versions that failed to load or validate.", "counter",
         [](const auto&, const SlotStatus& x) { return static_cast<double>(x.load_failures); }},
        {"modelreg_unloads_total", "Unloads to stay within the memory bound.", "counter",
         [](const auto&, const SlotStatus& x) { return static_cast<double>(x.unloads); }},
        {"modelreg_last_load_seconds", "Load and validation time of the serving version.", "gauge",
         [](const auto&, const SlotStatus& x) { return x.last_load_seconds; }},
        {"modelreg_model_memory_bytes", "Estimated memory of the serving version.", "gauge",
         [](const auto&, const SlotStatus& x) { return static_cast<double>(x.memory_bytes); }},
        {"modelreg_scoring_errors_total", "Batches the slot refused or failed to score.", "counter",
         [](const auto&, const SlotStatus& x) { return static_cast<double>(x.errors); }},
    };
    for (const Family& f : families) {
      line(fmt::format("# HELP {} {}", f.name, f.help));
      line(fmt::format("# TYPE {} {}", f.name, f.type));
      for (const auto& m : s.models) {
        for (const auto& slot : m.slots) {
          line(fmt::format("{}{{model=\"{}\",alias=\"{}\",version=\"{}\"}} {}", f.name, label_value(m.model),
                           label_value(slot.alias), slot.pinned_version ? std::to_string(*slot.pinned_version) : "",
                           f.value(m, slot)));
        }
      }
    }
    line("# HELP modelreg_model_requests_total Batches scored, by model, alias and the version that answered.");
    line("# TYPE modelreg_model_requests_total counter");
    for (const auto& m : s.models) {
      for (const auto& slot : m.slots) {
        for (const auto& [v, n] : slot.requests_by_version) {
          line(fmt::format("modelreg_model_requests_total{{model=\"{}\",alias=\"{}\",version=\"{}\"}} {}",
                           label_value(m.model), label_value(slot.alias), v, n));
        }
      }
    }
    line("# HELP modelreg_shadow_requests_total Batches given to a shadow alias, by outcome.");
    line("# TYPE modelreg_shadow_requests_total counter");
    for (const auto& m : s.models) {
      if (!m.shadow) continue;
      const auto& sh = *m.shadow;
      const std::string labels = fmt::format("model=\"{}\",alias=\"{}\"", label_value(m.model), label_value(sh.alias));
      line(fmt::format("modelreg_shadow_requests_total{{{},outcome=\"scored\"}} {}", labels, sh.scored));
      line(fmt::format("modelreg_shadow_requests_total{{{},outcome=\"dropped\"}} {}", labels, sh.dropped));
      line(fmt::format("modelreg_shadow_requests_total{{{},outcome=\"failed\"}} {}", labels, sh.failed));
    }
    line("# HELP modelreg_shadow_label_disagreements_total Rows where the shadow's label differs.");
    line("# TYPE modelreg_shadow_label_disagreements_total counter");
    for (const auto& m : s.models) {
      if (!m.shadow) continue;
      line(fmt::format("modelreg_shadow_label_disagreements_total{{model=\"{}\",alias=\"{}\"}} {}", label_value(m.model),
                       label_value(m.shadow->alias), m.shadow->label_disagreements));
    }
    line("# HELP modelreg_shadow_difference Absolute difference of the outputs, shadow against the response.");
    line("# TYPE modelreg_shadow_difference histogram");
    for (const auto& m : s.models) {
      if (!m.shadow) continue;
      const auto& sh = *m.shadow;
      const std::string labels = fmt::format("model=\"{}\",alias=\"{}\"", label_value(m.model), label_value(sh.alias));
      std::uint64_t total = 0;
      for (std::size_t b = 0; b < sh.difference_counts.size(); ++b) {
        total += sh.difference_counts[b];
        line(fmt::format("modelreg_shadow_difference_bucket{{{},le=\"{}\"}} {}", labels,
                         b < sh.difference_bounds.size() ? fmt::format("{}", sh.difference_bounds[b]) : "+Inf", total));
      }
      line(fmt::format("modelreg_shadow_difference_sum{{{}}} {}", labels, sh.difference_sum));
      line(fmt::format("modelreg_shadow_difference_count{{{}}} {}", labels, total));
    }
    line("# HELP modelreg_split_percent The share of a model's requests sent to the split alias.");
    line("# TYPE modelreg_split_percent gauge");
    for (const auto& m : s.models) {
      if (!m.split) continue;
      line(fmt::format("modelreg_split_percent{{model=\"{}\",alias=\"{}\"}} {}", label_value(m.model),
                       label_value(m.split->alias), m.split->percent));
    }
    gauge("modelreg_rows_scored_total", "Rows scored.", "counter", metrics_.rows.load());
    gauge("modelreg_inference_in_flight", "Inference requests being handled now.", "gauge", metrics_.in_flight.load());
    gauge("modelreg_models_served", "Models served.", "gauge", s.models.size());
    gauge("modelreg_memory_bytes", "Estimated memory of the loaded models.", "gauge", s.memory_bytes);
    gauge("modelreg_max_memory_bytes", "The memory bound (0: none).", "gauge", s.max_memory_bytes);
    gauge("modelreg_loads_queued", "Loads waiting for a loader thread.", "gauge", s.loads_queued);
    gauge("modelreg_polls_total", "Polls of the database.", "counter", s.polls);
    gauge("modelreg_change_wakeups_total", "Polls started at once by a change of the database's files.", "counter",
          s.wakeups);
    gauge("modelreg_poll_errors_total", "Polls that failed.", "counter", s.poll_errors);
    gauge("modelreg_uptime_seconds", "Seconds since the server started.", "gauge", s.uptime_seconds);
    gauge("modelreg_database_reopens_total", "Database files replaced at the path and reopened.", "counter", s.reopens);
    gauge("modelreg_database_ok", "0 while the database file is gone or cannot be opened.", "gauge",
          s.database_problem ? 0 : 1);
    gauge("modelreg_connections_open", "Open HTTP connections.", "gauge", metrics_.connections.load());
    gauge("modelreg_requests_refused_total", "Requests refused before a handler (malformed, too slow, too large).",
          "counter", metrics_.refused.load());
    gauge("modelreg_body_bytes_held", "Bytes of request bodies held now.", "gauge", budget_ ? budget_->used() : 0);
    gauge("modelreg_log_lines_dropped_total", "Log lines dropped (stderr full or closed).", "counter",
          LogSink::instance().dropped());
    gauge("process_resident_memory_bytes", "Resident memory size in bytes.", "gauge", resident_bytes());
    return out;
  }

  ModelRepository& repository_;
  const ServeArgs& args_;
  mutable HttpMetrics metrics_;
  const BodyBudget* budget_ = nullptr;
};

// "NAME=ALIAS:PERCENT" of --split.
TrafficSplit parse_split(const std::string& text) {
  const auto eq = text.find('=');
  const auto colon = text.rfind(':');
  const std::string usage = fmt::format("--split '{}': write NAME=ALIAS:PERCENT, e.g. fraud=challenger:10", text);
  if (eq == std::string::npos || colon == std::string::npos || colon < eq) throw UsageError(usage);
  TrafficSplit split;
  split.model = text.substr(0, eq);
  split.alias = text.substr(eq + 1, colon - eq - 1);
  const std::string percent = text.substr(colon + 1);
  try {
    std::size_t used = 0;
    split.percent = std::stod(percent, &used);
    if (used != percent.size()) throw UsageError(usage);
  } catch (const std::logic_error&) {
    throw UsageError(usage);
  }
  return split;
}

// "NAME=ALIAS" of --shadow.
ShadowTarget parse_shadow(const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos) {
    throw UsageError(fmt::format("--shadow '{}': write NAME=ALIAS, e.g. fraud=candidate", text));
  }
  return ShadowTarget{text.substr(0, eq), text.substr(eq + 1)};
}

// BYTES of --max-memory: a number with an optional K, M, G or T (powers of 1024; KiB, MB... too).
std::uint64_t parse_bytes(const std::string& text) {
  const std::string usage =
      fmt::format("--max-memory '{}': give a number of bytes, optionally with K, M, G or T (e.g. 512M)", text);
  std::size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::logic_error&) {
    throw UsageError(usage);
  }
  std::string unit = text.substr(used);
  std::transform(unit.begin(), unit.end(), unit.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  double scale = 1;
  if (unit.empty() || unit == "B") {
    scale = 1;
  } else if (unit == "K" || unit == "KB" || unit == "KIB") {
    scale = 1024.0;
  } else if (unit == "M" || unit == "MB" || unit == "MIB") {
    scale = 1024.0 * 1024;
  } else if (unit == "G" || unit == "GB" || unit == "GIB") {
    scale = 1024.0 * 1024 * 1024;
  } else if (unit == "T" || unit == "TB" || unit == "TIB") {
    scale = 1024.0 * 1024 * 1024 * 1024;
  } else {
    throw UsageError(usage);
  }
  if (!(value > 0) || !std::isfinite(value) || value * scale > 1e18) throw UsageError(usage);
  return static_cast<std::uint64_t>(value * scale);
}

// Serves g.db until SIGINT or SIGTERM, then drains in-flight requests and returns 0. Prints
// "listening on http://HOST:PORT" on stdout once the socket is bound. With a signing key, only
// versions signed with it are served. Throws UsageError for an invalid model name, else modelreg::Error.
int run_serve(const Globals& g, const ServeArgs& args) {
  std::optional<std::string> signing_key = signing_key_of(g);
  if (args.models.empty() && !args.all) throw UsageError("name the models to serve (serve NAME...) or use --all");
  for (const auto& m : args.models) {
    if (!is_valid_model_name(m)) throw UsageError(fmt::format("'{}' is not a valid model name", m));
  }
  if (args.port < 0 || args.port > 65535) throw Error(Errc::invalid_argument, fmt::format("port {} is out of range", args.port));
  if (args.poll_ms < 1) throw Error(Errc::invalid_argument, "--poll-ms must be at least 1");
  if (args.threads < 1) throw Error(Errc::invalid_argument, "--threads must be at least 1");
  if (args.load_threads < 1 || args.load_threads > 64) throw Error(Errc::invalid_argument, "--load-threads must be 1 to 64");
  if (args.header_timeout_ms < 1 || args.body_timeout_ms < 1 || args.idle_timeout_ms < 1) {
    throw Error(Errc::invalid_argument, "timeouts must be at least 1 ms");
  }
  ServeArgs limits = args;
  if (limits.max_inflight_body_bytes == 0) limits.max_inflight_body_bytes = 2 * limits.max_body_bytes;
  if (limits.max_inflight_body_bytes < limits.max_body_bytes) {
    throw Error(Errc::invalid_argument, "--max-inflight-body-bytes must be at least --max-body-bytes");
  }
  RepositoryOptions options;
  options.models = args.models;
  options.all_models = args.all;
  options.default_alias = args.alias;
  for (const auto& s : args.splits) options.splits.push_back(parse_split(s));
  for (const auto& s : args.shadows) options.shadows.push_back(parse_shadow(s));
  if (!args.max_memory.empty()) options.max_memory_bytes = parse_bytes(args.max_memory);
  options.load_threads = static_cast<unsigned>(args.load_threads);
  options.poll_interval = std::chrono::milliseconds(args.poll_ms);
  options.notify_changes = !args.no_change_notifications;
  options.log = [](std::string_view line) { HttpFrontEnd::log(line); };
  options.signing_key = std::move(signing_key);

  // Bodies, parsed JSON and batches are large, short-lived blocks: a fixed mmap threshold gives
  // them back to the system when freed (glibc's sliding threshold would keep them in the heap and
  // the resident size would stay at its peak after a burst of large requests).
  ::mallopt(M_MMAP_THRESHOLD, 256 << 10);
  const sigset_t stop_signals = block_stop_signals();

  ModelRepository repository(g.db, options);

  HttpFrontEnd front(repository, limits);
  HttpLimits http_limits;
  http_limits.threads = static_cast<std::size_t>(limits.threads);
  http_limits.max_body_bytes = limits.max_body_bytes;
  http_limits.max_inflight_body_bytes = limits.max_inflight_body_bytes;
  http_limits.header_timeout_ms = limits.header_timeout_ms;
  http_limits.body_timeout_ms = limits.body_timeout_ms;
  http_limits.idle_timeout_ms = limits.idle_timeout_ms;
  ConnectionEvents events;
  events.refused = [&front](int status, std::string_view method, std::string_view target, std::string_view why) {
    front.refused(status, method, target, why);
  };
  events.connections = [&front](int delta) { front.metrics().connections.fetch_add(delta, std::memory_order_relaxed); };
  GuardedHttpServer http(http_limits, std::move(events));
  front.set_budget(&http.budget());
  const std::size_t threads = http_limits.threads;
  front.install(http);
  const int port = http.bind(args.host, args.port);
  const std::string what = args.all ? std::string("every model with a version holding ") + args.alias
                                    : fmt::format("{} '{}'", args.models.size() == 1 ? "model" : "models",
                                                  fmt::join(args.models, "', '"));
  fmt::print("listening on http://{}:{} ({}, polling every {} ms, up to {} connection threads)\n", args.host, port, what,
             args.poll_ms, threads);
  std::fflush(stdout);

  return serve_until_signalled(http, stop_signals);
}

}  // namespace

void add_serve_command(CLI::App& app, Globals& g) {
  auto [cmd, a] = add_command<ServeArgs>(
      app, g, "serve", "Serve models over HTTP, each following its active version (hot swap on promotion)",
      "  modelreg serve fraud --port 8080\n"
      "  modelreg serve fraud churn --split fraud=challenger:10 --shadow churn=candidate\n"
      "  modelreg serve --all --max-memory 2G\n"
      "  curl -s localhost:8080/v2/models/fraud/infer -d '{\"inputs\": [{\"name\": \"x\", \"shape\": [1, 30], "
      "\"datatype\": \"FP64\", \"data\": [...]}]}'\n"
      "  curl -s localhost:8080/v2/models/fraud/versions/champion/infer -d ...\n"
      "  curl -s localhost:8080/status\n"
      "\n"
      "Limits (each an option): a request's line and headers (16 KiB at most) must arrive\n"
      "within 10 s of its first byte (else 408), its body within 30 s of the headers (else\n"
      "408); a Content-Length over 8 MiB is answered 413 at once. Bodies held at once total\n"
      "at most twice the body limit (more waits for room, then 503). A keep-alive connection\n"
      "idle for 5 s is closed. Each open connection has its own thread (up to 256), so\n"
      "/v2/health/* answers while others score. Any content type is read as JSON.",
      run_serve);
  cmd->add_option("NAME", a->models, "Models to serve (each follows its --alias, active by default)");
  cmd->add_flag("--all", a->all,
                "Serve every model where a version holds --alias (has an active version), including new ones");
  cmd->add_option("--split", a->splits,
                  "NAME=ALIAS:PERCENT: send that share of NAME's requests to ALIAS, sticky by the request's id "
                  "(or X-Request-Key); repeatable");
  cmd->add_option("--shadow", a->shadows,
                  "NAME=ALIAS: also score every request of NAME with ALIAS, off the response path; repeatable");
  cmd->add_option("--max-memory", a->max_memory,
                  "Bound on loaded models (bytes, or 512M, 2G): the least recently used are unloaded, and loaded "
                  "again when asked for");
  cmd->add_option("--load-threads", a->load_threads, "Threads loading versions, at a lower priority (default 2)");
  cmd->add_flag("--no-change-notifications", a->no_change_notifications,
                "Do not watch the database's files (inotify); find commits by polling every --poll-ms only");
  cmd->add_option("--host", a->host, "Address to bind (default 127.0.0.1)");
  cmd->add_option("--port", a->port, "Port (default 8080; 0 picks a free one and prints it)");
  cmd->add_option("--poll-ms", a->poll_ms, "How often to look for moved aliases when not notified (default 100)");
  cmd->add_option("--alias", a->alias,
                  "The alias a request naming no version gets: active (default), any alias (champion), or latest");
  cmd->add_option("--threads", a->threads,
                  "Most connections served at once, one thread each, started as needed (default 256)");
  cmd->add_option("--max-body-bytes", a->max_body_bytes, "Largest request body (default 8 MiB)");
  cmd->add_option("--max-inflight-body-bytes", a->max_inflight_body_bytes,
                  "Request body bytes held at once; more waits, then 503 (default twice --max-body-bytes)");
  cmd->add_option("--header-timeout-ms", a->header_timeout_ms,
                  "Time for a request's line and headers to arrive, from its first byte (default 10000)");
  cmd->add_option("--body-timeout-ms", a->body_timeout_ms,
                  "Time for a request's body to arrive, from the end of its headers (default 30000)");
  cmd->add_option("--idle-timeout-ms", a->idle_timeout_ms,
                  "A keep-alive connection idle this long is closed (default 5000)");
}

}  // namespace modelreg::cli
