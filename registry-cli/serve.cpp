// `modelreg serve`: a ModelServer (the ActiveWatcher and its request counters) behind an HTTP server:
// Open Inference Protocol v2, /predict, /status, /metrics. See README.md, "Server API".
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
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
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "arguments.hpp"
#include "commands.hpp"
#include "http_server.hpp"
#include "infer_request.hpp"
#include "modelreg/model_server.hpp"
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
  std::string model;
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

enum Route : std::size_t { kInfer, kPredict, kHealth, kMetadata, kStatus, kMetrics, kOther, kRoutes };
constexpr std::array<const char*, kRoutes> kRouteNames = {"infer", "predict", "health", "metadata", "status", "metrics", "other"};
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

class HttpFrontEnd {
 public:
  HttpFrontEnd(ModelServer& server, const ServeArgs& args) : server_(server), args_(args) {}

  void install(httplib::Server& http) {
    const std::string model = server_.watcher().model_name();
    http.Get("/v2/health/live", wrap(kHealth, [](const httplib::Request&, httplib::Response& res) {
      reply(res, 200, {{"live", true}});
    }));
    http.Get("/v2/health/ready", wrap(kHealth, [this](const httplib::Request&, httplib::Response& res) {
      const json body = readiness();
      reply(res, body["ready"].get<bool>() ? 200 : 400, body);
    }));
    http.Get("/v2", wrap(kMetadata, [](const httplib::Request&, httplib::Response& res) {
      reply(res, 200, {{"name", "modelreg"}, {"version", "0.1.0"}, {"extensions", json::array()}});
    }));
    http.Get(R"(/v2/models/([^/]+))", wrap(kMetadata, [this](const httplib::Request& req, httplib::Response& res) {
      const auto served = served_for(req.matches[1]);
      json features = json::array();
      for (const auto& f : served->version.features) features.push_back(f.name);
      const auto n = static_cast<std::int64_t>(served->model->n_features());
      reply(res, 200,
            {{"name", served->version.id.model},
             {"versions", json::array({std::to_string(served->version.id.number)})},
             {"platform", "modelreg"},
             {"type", served->model->type_name()},
             {"task", to_string(served->model->task())},
             {"classes", served->model->classes().texts()},
             {"inputs", json::array({{{"name", "input"}, {"datatype", "FP64"}, {"shape", {-1, n}}, {"features", features}}})},
             {"outputs", oip_output_metadata(*served->model)}});
    }));
    http.Get(R"(/v2/models/([^/]+)/ready)", wrap(kHealth, [this](const httplib::Request& req, httplib::Response& res) {
      check_name(req.matches[1]);
      json body = readiness();
      const bool ready = body["ready"].get<bool>();
      body["name"] = req.matches[1].str();
      reply(res, ready ? 200 : 400, body);
    }));
    auto infer = [this](const httplib::Request& req, httplib::Response& res) {
      check_name(req.matches[1]);
      std::optional<std::int64_t> wanted;
      if (req.matches.size() > 2 && req.matches[2].matched) wanted = std::stoll(req.matches[2].str());
      this->infer(req, res, wanted);
    };
    http.Post(R"(/v2/models/([^/]+)/infer)", wrap(kInfer, infer));
    http.Post(R"(/v2/models/([^/]+)/versions/([0-9]{1,18})/infer)", wrap(kInfer, infer));
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
        // The HTTP layer could not read the request (a body shorter than its Content-Length, a
        // client that stalled past the read timeout, malformed headers): say so, and log it.
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
  // {"ready": ...} and, when not ready, "reason": why (the watcher's words).
  json readiness() const {
    const bool ready = server_.watcher().ready();
    json body = {{"ready", ready}};
    if (!ready) body["reason"] = server_.watcher().unready_reason();
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
        if (res.status == 400 || res.status == 409 || res.status == 404) outcome = kClientError;
      } catch (const HttpError& e) {
        outcome = e.status == 503 ? kNotReady : kClientError;
        reply(res, e.status, {{"error", e.message}});
      } catch (const Error& e) {
        outcome = e.code() == Errc::invalid_argument ? kClientError : kServerError;
        reply(res, e.code() == Errc::invalid_argument ? 400 : 500, {{"error", e.what()}});
      } catch (const std::exception& e) {
        outcome = kServerError;
        reply(res, 500, {{"error", e.what()}});
      }
      metrics_.record(route, outcome, std::chrono::steady_clock::now() - start);
    };
  }

  void check_name(const std::string& name) const {
    if (name != server_.watcher().model_name()) {
      throw HttpError{404, fmt::format("unknown model '{}'; this server serves '{}'", name, server_.watcher().model_name())};
    }
  }

  std::shared_ptr<const ServedModel> served_for(const std::string& name) const {
    check_name(name);
    auto served = server_.watcher().current();
    if (!served) {
      throw HttpError{503, fmt::format("model '{}' is not ready: {}", name, server_.watcher().unready_reason())};
    }
    return served;
  }

  // Scores `rows` rows of `values` through the ModelServer, which counts the call and answers all
  // rows with one version. The shape is checked against the serving version first, so that a
  // wrong one gets a message naming the expected width; when nothing serves, the ModelServer
  // refuses the call itself (Errc::conflict), answered 503.
  Prediction score(const std::vector<double>& values, std::size_t rows) {
    std::size_t n = 0;
    if (const auto served = server_.watcher().current()) {
      n = served->model->n_features();
      if (rows == 0) throw HttpError{400, "no rows to score"};
      if (values.size() != rows * n) {
        throw HttpError{400, fmt::format("expected {} features per row ({} values for {} rows), got {} values; "
                                         "{} takes {} features",
                                         n, rows * n, rows, values.size(), served->version.ref_string(), n)};
      }
    }
    try {
      Prediction p = server_.predict(MatrixView(values.data(), rows, n));
      metrics_.rows.fetch_add(rows, std::memory_order_relaxed);
      return p;
    } catch (const Error& e) {
      if (e.code() == Errc::conflict) throw HttpError{503, e.what()};
      throw;
    }
  }

  void infer(const httplib::Request& req, httplib::Response& res, std::optional<std::int64_t> wanted) {
    const InferRequest request = parse_infer_request(req.body);
    auto current = server_.watcher().current();
    if (current && current->model->n_features() != request.cols) {
      throw HttpError{400, fmt::format("wrong feature count: {} takes {} features, the input has {}",
                                       current->version.ref_string(), current->model->n_features(), request.cols)};
    }
    const Prediction p = score(request.values, request.rows);
    const std::string& model = server_.watcher().model_name();
    if (wanted && *wanted != p.version) {
      throw HttpError{409, fmt::format("version {} is not being served (serving {}); use /v2/models/{}/infer",
                                       *wanted, p.version, model)};
    }
    json out = {{"model_name", model}, {"model_version", std::to_string(p.version)}, {"outputs", oip_outputs(p)}};
    if (request.id) out["id"] = *request.id;
    reply(res, 200, out);
  }

  void predict(const httplib::Request& req, httplib::Response& res) {
    const InferRequest request = parse_predict_request(req.body);
    const Prediction p = score(request.values, request.rows);
    json out = simple_outputs(p);
    out["model_version"] = p.version;
    reply(res, 200, out);
  }

  json status_json() const {
    const ServerStatus s = server_.status();
    std::uint64_t served = 0, failed = 0;
    for (std::size_t r = 0; r < kRoutes; ++r) {
      for (std::size_t o = 0; o < kOutcomes; ++o) {
        const auto n = metrics_.requests[r][o].load(std::memory_order_relaxed);
        (o == kOk ? served : failed) += n;
      }
    }
    return {{"model", s.model},
            {"alias", s.watcher.alias},
            {"ready", s.ready},
            {"requests_served", served},
            {"requests_failed", failed},
            {"scoring_requests", s.requests},
            {"scoring_errors", s.errors},
            {"rows_scored", metrics_.rows.load()},
            {"inference_in_flight", metrics_.in_flight.load()},
            {"serving_version", json_or_null(s.watcher.serving_version)},
            {"desired_version", json_or_null(s.watcher.desired_version)},
            {"swaps", s.watcher.swaps},
            {"last_swap_at", json_or_null(s.watcher.last_swap_at)},
            {"load_failures", s.watcher.load_failures},
            {"last_error", json_or_null(s.watcher.last_error)},
            {"last_error_at", json_or_null(s.watcher.last_error_at)},
            {"last_load_seconds", s.watcher.last_load_seconds},
            {"polls", s.watcher.polls},
            {"poll_errors", s.watcher.poll_errors},
            {"database_problem", json_or_null(s.watcher.database_problem)},
            {"database_reopens", s.watcher.reopens},
            {"change_notifications", s.watcher.change_notifications},
            {"change_wakeups", s.watcher.wakeups},
            {"connections_open", metrics_.connections.load()},
            {"requests_refused", metrics_.refused.load()},
            {"body_bytes_held", budget_ ? budget_->used() : 0},
            {"log_lines_dropped", LogSink::instance().dropped()},
            {"uptime_seconds", s.uptime_seconds}};
  }

  std::string prometheus() const {
    const ServerStatus s = server_.status();
    std::string out;
    auto line = [&](std::string text) { out += text + "\n"; };
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
    gauge("modelreg_scoring_requests_total", "Batches given to the model server to score.", "counter", s.requests);
    gauge("modelreg_scoring_errors_total", "Batches the model server failed to score (not ready, wrong width).",
          "counter", s.errors);
    gauge("modelreg_rows_scored_total", "Rows scored.", "counter", metrics_.rows.load());
    gauge("modelreg_inference_in_flight", "Inference requests being handled now.", "gauge", metrics_.in_flight.load());
    gauge("modelreg_ready", "1 when a version serves.", "gauge", s.ready ? 1 : 0);
    gauge("modelreg_serving_version", "The version answering requests (0: none).", "gauge",
          s.watcher.serving_version.value_or(0));
    gauge("modelreg_desired_version", "The active version in the database, last seen (0: none).", "gauge",
          s.watcher.desired_version.value_or(0));
    gauge("modelreg_swaps_total", "Hot swaps to a new version.", "counter", s.watcher.swaps);
    gauge("modelreg_load_failures_total", "Versions that failed to load or validate.", "counter",
          s.watcher.load_failures);
    gauge("modelreg_last_load_seconds", "Load and validation time of the serving version.", "gauge",
          s.watcher.last_load_seconds);
    gauge("modelreg_polls_total", "Polls of the database.", "counter", s.watcher.polls);
    gauge("modelreg_change_wakeups_total", "Polls started at once by a change of the database's files.", "counter",
          s.watcher.wakeups);
    gauge("modelreg_poll_errors_total", "Polls that failed.", "counter", s.watcher.poll_errors);
    gauge("modelreg_uptime_seconds", "Seconds since the server started.", "gauge", s.uptime_seconds);
    gauge("modelreg_database_reopens_total", "Database files replaced at the path and reopened.", "counter",
          s.watcher.reopens);
    gauge("modelreg_database_ok", "0 while the database file is gone or cannot be opened.", "gauge",
          s.watcher.database_problem ? 0 : 1);
    gauge("modelreg_connections_open", "Open HTTP connections.", "gauge", metrics_.connections.load());
    gauge("modelreg_requests_refused_total", "Requests refused before a handler (malformed, too slow, too large).",
          "counter", metrics_.refused.load());
    gauge("modelreg_body_bytes_held", "Bytes of request bodies held now.", "gauge", budget_ ? budget_->used() : 0);
    gauge("modelreg_log_lines_dropped_total", "Log lines dropped (stderr full or closed).", "counter",
          LogSink::instance().dropped());
    gauge("process_resident_memory_bytes", "Resident memory size in bytes.", "gauge", resident_bytes());
    return out;
  }

  ModelServer& server_;
  const ServeArgs& args_;
  mutable HttpMetrics metrics_;
  const BodyBudget* budget_ = nullptr;
};


// Serves g.db until SIGINT or SIGTERM, then drains in-flight requests and returns 0. Prints
// "listening on http://HOST:PORT" on stdout once the socket is bound. With a signing key, only
// versions signed with it are served. Throws UsageError for an invalid model name, else modelreg::Error.
int run_serve(const Globals& g, const ServeArgs& args) {
  std::optional<std::string> signing_key = signing_key_of(g);
  if (!is_valid_model_name(args.model)) throw UsageError(fmt::format("'{}' is not a valid model name", args.model));
  if (args.port < 0 || args.port > 65535) throw Error(Errc::invalid_argument, fmt::format("port {} is out of range", args.port));
  if (args.poll_ms < 1) throw Error(Errc::invalid_argument, "--poll-ms must be at least 1");
  if (args.threads < 1) throw Error(Errc::invalid_argument, "--threads must be at least 1");
  if (args.header_timeout_ms < 1 || args.body_timeout_ms < 1 || args.idle_timeout_ms < 1) {
    throw Error(Errc::invalid_argument, "timeouts must be at least 1 ms");
  }
  ServeArgs limits = args;
  if (limits.max_inflight_body_bytes == 0) limits.max_inflight_body_bytes = 2 * limits.max_body_bytes;
  if (limits.max_inflight_body_bytes < limits.max_body_bytes) {
    throw Error(Errc::invalid_argument, "--max-inflight-body-bytes must be at least --max-body-bytes");
  }
  // A closed stderr or stdout must not end the server: writes fail with EPIPE instead.
  ::signal(SIGPIPE, SIG_IGN);
  // Bodies, parsed JSON and batches are large, short-lived blocks: a fixed mmap threshold gives
  // them back to the system when freed (glibc's sliding threshold would keep them in the heap and
  // the resident size would stay at its peak after a burst of large requests).
  ::mallopt(M_MMAP_THRESHOLD, 256 << 10);
  // Block the stop signals in every thread (threads inherit the mask); one thread waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  WatcherOptions options;
  options.poll_interval = std::chrono::milliseconds(args.poll_ms);
  options.alias = args.alias;
  options.log = [](std::string_view line) { HttpFrontEnd::log(line); };
  options.signing_key = std::move(signing_key);
  ModelServer server(g.db, args.model, options);

  HttpFrontEnd front(server, limits);
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
  fmt::print("listening on http://{}:{} (model '{}', polling every {} ms, up to {} connection threads)\n", args.host,
             port, args.model, args.poll_ms, threads);
  std::fflush(stdout);

  std::atomic<bool> signalled{false};
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    signalled = true;
    HttpFrontEnd::log(fmt::format("received {}; draining in-flight requests", sig == SIGINT ? "SIGINT" : "SIGTERM"));
    http.stop();
  });
  const bool clean = http.listen_after_bind();
  if (!signalled) kill(getpid(), SIGTERM);  // wake the waiter (the signal is blocked, so it is queued)
  waiter.join();
  HttpFrontEnd::log("stopped");
  LogSink::instance().flush(std::chrono::seconds(1));
  return clean || signalled ? 0 : 1;
}

}  // namespace

void add_serve_command(CLI::App& app, Globals& g) {
  auto [cmd, a] =
      add_command<ServeArgs>(app, g, "serve", "Serve the model's active version over HTTP, hot-swapping on promotion",
                             "  modelreg serve fraud --port 8080\n"
                             "  curl -s localhost:8080/predict -d '{\"instances\": [[0.1, 2.3, ...]]}'\n"
                             "  curl -s localhost:8080/status\n"
                             "\n"
                             "Limits (each an option): a request's line and headers (16 KiB at most) must arrive\n"
                             "within 10 s of its first byte (else 408), its body within 30 s of the headers (else\n"
                             "408); a Content-Length over 8 MiB is answered 413 at once. Bodies held at once total\n"
                             "at most twice the body limit (more waits for room, then 503). A keep-alive connection\n"
                             "idle for 5 s is closed. Each open connection has its own thread (up to 256), so\n"
                             "/v2/health/* answers while others score. Any content type is read as JSON.",
                             run_serve);
  cmd->add_option("NAME", a->model, "Model to serve")->required();
  cmd->add_option("--host", a->host, "Address to bind (default 127.0.0.1)");
  cmd->add_option("--port", a->port, "Port (default 8080; 0 picks a free one and prints it)");
  cmd->add_option("--poll-ms", a->poll_ms, "How often to look for a new active version (default 100)");
  cmd->add_option("--alias", a->alias,
                  "The alias to follow: active (default), any alias of the model (champion), or latest");
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
