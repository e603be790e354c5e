// `modelreg serve`: a ModelServer (the ActiveWatcher and its request counters) behind an HTTP server:
// Open Inference Protocol v2, /predict, /status, /metrics. See README.md, "Server API".
#include <arpa/inet.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
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

using Clock = std::chrono::steady_clock;

// Lines for stderr. Writing must never stop or kill the server: stderr may be a closed pipe
// (EPIPE; SIGPIPE is ignored), a full pipe nobody reads, a stopped terminal. So request and
// watcher threads only append to a bounded queue (a full queue drops the line, counted); one
// thread writes it out, to a pipe through a non-blocking descriptor of its own, giving up on a
// line that cannot be written within 100 ms (and on the next ones at once, until one goes out). The sink is never destroyed (it lives as long as
// the process, so no line is written into freed memory).
class LogSink {
 public:
  static LogSink& instance() {
    static LogSink* sink = new LogSink(STDERR_FILENO);
    return *sink;
  }

  // Never blocks (beyond a mutex held to push one string), never throws.
  void write(std::string_view line) noexcept {
    try {
      std::string text = fmt::format("{} {}\n", utc_timestamp_now(), line);
      std::lock_guard lock(mutex_);
      if (queue_.size() >= kMaxLines) {
        dropped_.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      queue_.push_back(std::move(text));
      cv_.notify_one();
    } catch (...) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  // Waits up to `limit` for the queue to be written out (at exit).
  void flush(std::chrono::milliseconds limit) {
    std::unique_lock lock(mutex_);
    idle_cv_.wait_for(lock, limit, [&] { return queue_.empty() && !writing_; });
  }

  std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }

 private:
  static constexpr std::size_t kMaxLines = 4096;

  explicit LogSink(int fd) : fd_(fd) {
    struct stat st {};
    if (::fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode)) {
      // A descriptor of our own for the same pipe, non-blocking, so that the shared one (and the
      // processes that share it) keep their flags.
      const int own = ::open(fmt::format("/proc/self/fd/{}", fd).c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
      if (own >= 0) fd_ = own;
    } else if (::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode)) {
      socket_ = true;
    }
    std::thread([this] { run(); }).detach();
  }

  void run() {
    std::unique_lock lock(mutex_);
    for (;;) {
      cv_.wait(lock, [&] { return !queue_.empty(); });
      std::string line = std::move(queue_.front());
      queue_.pop_front();
      writing_ = true;
      lock.unlock();
      // While the reader is stuck, later lines are tried without waiting (dropped at once), so
      // that the queue does not back up behind 100 ms per line.
      stalled_ = !write_out(line, stalled_ ? std::chrono::milliseconds(0) : std::chrono::milliseconds(100));
      if (stalled_) dropped_.fetch_add(1, std::memory_order_relaxed);
      lock.lock();
      writing_ = false;
      if (queue_.empty()) idle_cv_.notify_all();
    }
  }

  bool write_out(std::string_view text, std::chrono::milliseconds patience) const {
    const auto deadline = Clock::now() + patience;
    while (!text.empty()) {
      const ssize_t n = socket_ ? ::send(fd_, text.data(), text.size(), MSG_DONTWAIT | MSG_NOSIGNAL)
                                : ::write(fd_, text.data(), text.size());
      if (n > 0) {
        text.remove_prefix(static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) return false;
        pollfd p{fd_, POLLOUT, 0};
        ::poll(&p, 1, static_cast<int>(left));
        continue;
      }
      return false;  // EPIPE (nobody reads), EBADF (closed), ...: the line is lost, the server goes on
    }
    return true;
  }

  int fd_;
  bool socket_ = false;
  std::mutex mutex_;  // protects queue_ and writing_
  std::condition_variable cv_;
  std::condition_variable idle_cv_;
  std::deque<std::string> queue_;
  bool writing_ = false;
  bool stalled_ = false;  // the last line could not be written; used by the writer thread only
  std::atomic<std::uint64_t> dropped_{0};
};

// Bytes of request bodies held at once: a counting semaphore of bytes.
class BodyBudget {
 public:
  explicit BodyBudget(std::size_t capacity) : capacity_(capacity) {}
  // Takes `bytes` (at most the capacity), waiting until `deadline` for room; false when none came.
  bool acquire(std::size_t bytes, Clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    if (!cv_.wait_until(lock, deadline, [&] { return used_ + bytes <= capacity_; })) return false;
    used_ += bytes;
    return true;
  }
  void release(std::size_t bytes) {
    {
      std::lock_guard lock(mutex_);
      used_ -= bytes;
    }
    cv_.notify_all();
  }
  std::size_t used() const {
    std::lock_guard lock(mutex_);
    return used_;
  }
  std::size_t capacity() const noexcept { return capacity_; }

 private:
  const std::size_t capacity_;
  mutable std::mutex mutex_;  // protects used_
  std::condition_variable cv_;
  std::size_t used_ = 0;
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

// httplib's task queue, one thread per open connection: started as needed up to `max` and then
// kept for the next connection. At `max`, a connection waits in the queue for a thread; every
// connection is bounded by the deadlines of ServeArgs, so the queue moves.
class ConnectionThreads : public httplib::TaskQueue {
 public:
  explicit ConnectionThreads(std::size_t max) : max_(max) {}
  ~ConnectionThreads() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    std::lock_guard lock(mutex_);
    jobs_.push_back(std::move(fn));
    if (jobs_.size() > idle_ && threads_.size() < max_) {
      threads_.emplace_back([this] { work(); });
    } else {
      cv_.notify_one();
    }
  }

  // Runs the connections already queued to their end, then joins every thread.
  void shutdown() override {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }

 private:
  void work() {
    std::unique_lock lock(mutex_);
    for (;;) {
      ++idle_;
      cv_.wait(lock, [&] { return !jobs_.empty() || stopping_; });
      --idle_;
      if (jobs_.empty()) return;  // stopping, nothing left
      auto job = std::move(jobs_.front());
      jobs_.pop_front();
      lock.unlock();
      job();
      lock.lock();
    }
  }

  const std::size_t max_;
  std::mutex mutex_;  // protects everything below
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  std::size_t idle_ = 0;
  bool stopping_ = false;
};

// One request, as read and checked by the connection layer.
struct RequestHead {
  std::string method;
  std::string target;
  bool http10 = false;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case, values trimmed
  std::size_t size = 0;  // bytes of the request line and headers, with the blank line

  std::vector<std::string_view> values(std::string_view name) const {
    std::vector<std::string_view> out;
    for (const auto& [n, v] : headers) {
      if (n == name) out.push_back(v);
    }
    return out;
  }
};

// A request refused by the connection layer: answered `status` with {"error": message}, and the
// connection is closed (what follows on it cannot be trusted to start a request).
struct Refusal {
  int status;
  std::string message;
};

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

constexpr std::size_t kMaxHeadBytes = 16 << 10;
constexpr std::size_t kTrimAfterBodyBytes = 1 << 20;
constexpr std::size_t kMaxHeaders = 100;

// Parses the request line and headers in `head` (without the blank line). Throws Refusal.
RequestHead parse_head(std::string_view head) {
  RequestHead r;
  std::vector<std::string_view> lines;
  while (!head.empty()) {
    const auto eol = head.find('\n');
    std::string_view line = head.substr(0, eol);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    head.remove_prefix(eol == std::string_view::npos ? head.size() : eol + 1);
  }
  if (lines.empty()) throw Refusal{400, "empty request line"};
  const std::string_view line = lines[0];
  const auto sp1 = line.find(' ');
  const auto sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp1 == sp2 || sp1 == 0) throw Refusal{400, "malformed request line"};
  r.method = std::string(line.substr(0, sp1));
  r.target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
  const std::string_view version = line.substr(sp2 + 1);
  if (!std::all_of(r.method.begin(), r.method.end(), is_token_char)) throw Refusal{400, "malformed request method"};
  if (r.target.empty() || r.target[0] != '/' ||
      std::any_of(r.target.begin(), r.target.end(), [](unsigned char c) { return c <= ' ' || c == 0x7f; })) {
    throw Refusal{400, "malformed request target"};
  }
  if (version == "HTTP/1.0") {
    r.http10 = true;
  } else if (version != "HTTP/1.1") {
    throw Refusal{505, fmt::format("HTTP version '{}' is not supported; use HTTP/1.1", version.substr(0, 16))};
  }
  if (lines.size() - 1 > kMaxHeaders) throw Refusal{431, fmt::format("more than {} header fields", kMaxHeaders)};
  for (std::size_t i = 1; i < lines.size(); ++i) {
    const std::string_view h = lines[i];
    if (!h.empty() && (h[0] == ' ' || h[0] == '\t')) throw Refusal{400, "folded header lines are not accepted"};
    const auto colon = h.find(':');
    if (colon == std::string_view::npos || colon == 0 ||
        !std::all_of(h.begin(), h.begin() + static_cast<std::ptrdiff_t>(colon), is_token_char)) {
      throw Refusal{400, "malformed header field"};
    }
    const std::string_view value = trim(h.substr(colon + 1));
    if (std::any_of(value.begin(), value.end(), [](unsigned char c) { return (c < ' ' && c != '\t') || c == 0x7f; })) {
      throw Refusal{400, "a header value holds a control character"};
    }
    r.headers.emplace_back(lower(h.substr(0, colon)), std::string(value));
  }
  return r;
}

// What a request's headers say about its body.
struct BodyFraming {
  bool chunked = false;
  std::size_t length = 0;  // without chunked: the Content-Length (0 when absent)
};

// The body framing of `r`, refusing anything ambiguous (RFC 9112 §6.3): two Content-Length
// fields, Content-Length with Transfer-Encoding, a coding other than chunked, a length that is
// not a plain decimal number, or one over `max_body`; and a content coding, which would be
// expanded past the limit after it was checked.
BodyFraming framing_of(const RequestHead& r, std::size_t max_body) {
  BodyFraming f;
  const auto lengths = r.values("content-length");
  const auto codings = r.values("transfer-encoding");
  if (lengths.size() > 1) throw Refusal{400, "the request has more than one Content-Length header"};
  if (!lengths.empty() && !codings.empty()) throw Refusal{400, "the request has both Content-Length and Transfer-Encoding"};
  if (codings.size() > 1 || (!codings.empty() && lower(codings[0]) != "chunked")) {
    throw Refusal{501, "the only Transfer-Encoding accepted is chunked"};
  }
  for (auto coding : r.values("content-encoding")) {
    if (lower(coding) != "identity") throw Refusal{415, fmt::format("Content-Encoding '{}' is not accepted; send the body uncompressed", coding)};
  }
  f.chunked = !codings.empty();
  if (!lengths.empty()) {
    const std::string_view text = lengths[0];
    std::uint64_t n = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size() || text[0] == '+' || text[0] == '-') {
      if (ec == std::errc::result_out_of_range) {
        throw Refusal{413, fmt::format("request body over the limit of {} bytes (Content-Length: {})", max_body, text.substr(0, 40))};
      }
      throw Refusal{400, fmt::format("Content-Length '{}' is not a number", text.substr(0, 40))};
    }
    if (n > max_body) throw Refusal{413, fmt::format("request body over the limit of {} bytes (Content-Length: {})", max_body, n)};
    f.length = static_cast<std::size_t>(n);
  }
  return f;
}

const char* reason_phrase(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
  }
}

// The socket of one connection: reads into a buffer of bytes not yet consumed (so requests
// pipelined in one write are served one after another), every read and write under a deadline.
class ConnectionSocket {
 public:
  explicit ConnectionSocket(socket_t sock) : sock_(sock) {}

  enum class Read { ok, closed, timeout, stopped };
  // Reads what is there (at least one byte) into buffer(), waiting until `deadline`; `stop` is
  // asked every 50 ms while nothing arrives, and ends the wait when it says so.
  Read read_more(Clock::time_point deadline, const std::function<bool()>& stop = {}) {
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return Read::timeout;
      pollfd p{sock_, POLLIN, 0};
      const int ready = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, stop ? 50 : left)));
      if (ready < 0 && errno != EINTR) return Read::closed;
      if (ready <= 0) {
        if (stop && stop()) return Read::stopped;
        continue;
      }
      char chunk[16384];
      const ssize_t n = ::recv(sock_, chunk, sizeof chunk, MSG_DONTWAIT);
      if (n > 0) {
        buffer_.append(chunk, static_cast<std::size_t>(n));
        return Read::ok;
      }
      if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
      return Read::closed;
    }
  }

  // Writes all of `data` by `deadline`; false when the client did not take it (or is gone).
  bool write_all(std::string_view data, Clock::time_point deadline) const {
    while (!data.empty()) {
      const ssize_t n = ::send(sock_, data.data(), data.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) {
        data.remove_prefix(static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) return false;
        pollfd p{sock_, POLLOUT, 0};
        ::poll(&p, 1, static_cast<int>(left));
        continue;
      }
      return false;
    }
    return true;
  }

  // After an answer that leaves request bytes unread: stop sending, and read and drop what the
  // client still sends (for up to a second, 1 MiB), so that closing does not reset the
  // connection before the client has read the answer.
  void linger_close() {
    ::shutdown(sock_, SHUT_WR);
    const auto deadline = Clock::now() + std::chrono::seconds(1);
    std::size_t dropped = 0;
    while (dropped < (1u << 20)) {
      buffer_.clear();
      if (read_more(deadline) != Read::ok) break;
      dropped += buffer_.size();
    }
  }

  std::string& buffer() noexcept { return buffer_; }
  socket_t fd() const noexcept { return sock_; }

 private:
  socket_t sock_;
  std::string buffer_;
};

// The stream httplib's process_request reads one checked request from (its head, rewritten, and
// its body) and writes its answer to (the socket, under the write deadline).
class CheckedRequestStream final : public httplib::Stream {
 public:
  CheckedRequestStream(ConnectionSocket& socket, std::string head, const std::string& body, Clock::time_point write_deadline)
      : socket_(socket), head_(std::move(head)), body_(body), write_deadline_(write_deadline) {}

  bool is_readable() const override { return true; }
  bool is_writable() const override { return true; }
  ssize_t read(char* ptr, std::size_t size) override {
    std::size_t n = 0;
    while (n < size && offset_ < head_.size() + body_.size()) {
      const bool in_head = offset_ < head_.size();
      const std::string_view from = in_head ? std::string_view(head_).substr(offset_)
                                            : std::string_view(body_).substr(offset_ - head_.size());
      const std::size_t k = std::min(size - n, from.size());
      std::copy_n(from.data(), k, ptr + n);
      n += k;
      offset_ += k;
    }
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char* ptr, std::size_t size) override {
    return socket_.write_all(std::string_view(ptr, size), write_deadline_) ? static_cast<ssize_t>(size) : -1;
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override { address_of(false, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { address_of(true, ip, port); }
  socket_t socket() const override { return socket_.fd(); }

 private:
  void address_of(bool local, std::string& ip, int& port) const {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    const int rc = local ? ::getsockname(socket_.fd(), reinterpret_cast<sockaddr*>(&addr), &len)
                         : ::getpeername(socket_.fd(), reinterpret_cast<sockaddr*>(&addr), &len);
    if (rc != 0) return;
    char text[INET6_ADDRSTRLEN] = {};
    if (addr.ss_family == AF_INET) {
      const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
      ::inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
      port = ntohs(a->sin_port);
    } else if (addr.ss_family == AF_INET6) {
      const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
      ::inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
      port = ntohs(a->sin6_port);
    }
    ip = text;
  }

  ConnectionSocket& socket_;
  const std::string head_;
  const std::string& body_;
  const Clock::time_point write_deadline_;
  std::size_t offset_ = 0;
};

// httplib's server with our own connection layer in front of its routing: httplib 0.11 gives a
// request's bytes no overall deadline (a client sending a byte every few seconds holds a worker
// for ever), reads (and drops) a whole over-limit body before its 413, caps form-encoded bodies at
// 8 KiB whatever the limit, takes the first of two Content-Length headers, and expands
// compressed bodies past the limit. Here each connection's requests are read under deadlines and
// checked (ServeArgs), then handed to httplib's process_request one at a time, rewritten into a
// plain form it cannot misread (one Content-Length, JSON content type, no Expect).
class GuardedHttpServer final : public httplib::Server {
 public:
  GuardedHttpServer(const ServeArgs& args, HttpFrontEnd& front)
      : args_(args), front_(front), budget_(args.max_inflight_body_bytes) {
    front_.set_budget(&budget_);
  }

  socket_t listening_socket() const { return svr_sock_; }

 private:
  bool process_and_close_socket(socket_t sock) override {
    auto& open = front_.metrics().connections;
    open.fetch_add(1, std::memory_order_relaxed);
    int yes = 1;
    ::setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
    ConnectionSocket socket(sock);
    try {
      serve_connection(socket);
    } catch (const std::exception& e) {
      front_.log(fmt::format("connection ended: {}", e.what()));
    }
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
    open.fetch_sub(1, std::memory_order_relaxed);
    return true;
  }

  bool stopping() const { return svr_sock_ == INVALID_SOCKET; }

  void refuse(ConnectionSocket& socket, const Refusal& r, const RequestHead* head) {
    front_.refused(r.status, head ? head->method : "", head ? head->target : "", r.message);
    const std::string body = json{{"error", r.message}}.dump();
    std::string out = fmt::format("HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}"
                                  "Connection: close\r\n\r\n{}",
                                  r.status, reason_phrase(r.status), body.size(),
                                  r.status == 503 ? "Retry-After: 1\r\n" : "", body);
    if (socket.write_all(out, Clock::now() + std::chrono::seconds(5))) socket.linger_close();
  }

  void serve_connection(ConnectionSocket& socket) {
    std::string& buf = socket.buffer();
    const auto idle = std::chrono::milliseconds(args_.idle_timeout_ms);
    for (;;) {
      // The next request's first byte: within the idle timeout, unless the server stops.
      if (buf.empty() && socket.read_more(Clock::now() + idle, [this] { return stopping(); }) != ConnectionSocket::Read::ok) {
        return;
      }
      // Its line and headers: within the header deadline of that first byte.
      const auto header_deadline = Clock::now() + std::chrono::milliseconds(args_.header_timeout_ms);
      std::size_t head_end = std::string::npos, blank = 0;
      for (;;) {
        // A request may be preceded by empty lines (RFC 9112 §2.2).
        while (!buf.empty() && (buf[0] == '\r' || buf[0] == '\n')) buf.erase(0, 1);
        if (const auto crlf = buf.find("\r\n\r\n"); crlf != std::string::npos) {
          head_end = crlf, blank = 4;
        }
        if (const auto lf = buf.find("\n\n"); lf != std::string::npos && lf < head_end) head_end = lf, blank = 2;
        if (head_end != std::string::npos) break;
        if (buf.size() > kMaxHeadBytes) {
          return refuse(socket, {431, fmt::format("the request line and headers are over {} bytes", kMaxHeadBytes)}, nullptr);
        }
        const auto got = socket.read_more(header_deadline, [this] { return stopping(); });
        if (got == ConnectionSocket::Read::timeout) {
          if (buf.empty()) return;
          return refuse(socket, {408, fmt::format("the request headers did not arrive within {} ms", args_.header_timeout_ms)},
                        nullptr);
        }
        if (got != ConnectionSocket::Read::ok) return;
      }
      if (head_end > kMaxHeadBytes) {
        return refuse(socket, {431, fmt::format("the request line and headers are over {} bytes", kMaxHeadBytes)}, nullptr);
      }
      RequestHead head;
      BodyFraming framing;
      try {
        head = parse_head(std::string_view(buf).substr(0, head_end));
        head.size = head_end + blank;
        framing = framing_of(head, args_.max_body_bytes);
        const auto expect = head.values("expect");
        if (!expect.empty() && (expect.size() > 1 || lower(expect[0]) != "100-continue")) {
          throw Refusal{417, "the only expectation accepted is 100-continue"};
        }
      } catch (const Refusal& r) {
        return refuse(socket, r, head.method.empty() ? nullptr : &head);
      }
      buf.erase(0, head.size);
      if (!serve_request(socket, head, framing)) return;
    }
  }

  // Reads the body of `head`, hands the request to httplib and writes its answer. Returns
  // whether the connection stays open for another request.
  bool serve_request(ConnectionSocket& socket, const RequestHead& head, const BodyFraming& framing) {
    const bool has_body = framing.chunked || framing.length > 0;
    const auto body_deadline = Clock::now() + std::chrono::milliseconds(args_.body_timeout_ms);
    // Room for the body among those held at once (a chunked body may grow to the limit).
    const std::size_t reserved = framing.chunked ? args_.max_body_bytes : framing.length;
    if (has_body && !budget_.acquire(reserved, body_deadline)) {
      refuse(socket, {503, fmt::format("the server holds {} bytes of request bodies, its limit; retry", budget_.capacity())},
             &head);
      return false;
    }
    struct Release {
      BodyBudget& budget;
      std::size_t bytes;
      ~Release() {
        if (bytes) budget.release(bytes);
      }
    } release{budget_, has_body ? reserved : 0};

    if (has_body && !head.values("expect").empty() && !head.http10) {
      if (!socket.write_all("HTTP/1.1 100 Continue\r\n\r\n", body_deadline)) return false;
    }
    bool keep = false;
    std::size_t body_size = 0;
    {
      std::string body;
      try {
        body = framing.chunked ? read_chunked(socket, body_deadline) : read_exactly(socket, framing.length, body_deadline);
      } catch (const Refusal& r) {
        refuse(socket, r, &head);
        return false;
      }

      const auto connection = head.values("connection");
      bool keep_alive = !head.http10;
      for (auto c : connection) {
        const std::string v = lower(c);
        if (v.find("close") != std::string::npos) keep_alive = false;
        if (head.http10 && v.find("keep-alive") != std::string::npos) keep_alive = true;
      }
      // The request as httplib should see it: HTTP/1.1 (this layer keeps HTTP/1.0's connection
      // rules), the client's other headers, and a body of exactly Content-Length bytes of JSON
      // whatever content type the client named (curl -d says form-encoded).
      std::string rewritten = fmt::format("{} {} HTTP/1.1\r\n", head.method, head.target);
      for (const auto& [name, value] : head.headers) {
        if (name == "content-length" || name == "transfer-encoding" || name == "expect" || name == "content-type" ||
            name == "connection" || name == "content-encoding") {
          continue;
        }
        rewritten += fmt::format("{}: {}\r\n", name, value);
      }
      if (has_body) rewritten += "Content-Type: application/json\r\n";
      rewritten += fmt::format("Content-Length: {}\r\n\r\n", body.size());
      const bool close = !keep_alive || stopping();
      CheckedRequestStream stream(socket, std::move(rewritten), body, Clock::now() + std::chrono::seconds(30));
      bool closed_by_request = false;
      const bool written = process_request(stream, close, closed_by_request, nullptr);
      keep = written && !close && !closed_by_request;
      body_size = body.size();
    }
    // The body, its copy in httplib's request and the parsed JSON are freed by now; a large one
    // leaves free pages in this thread's malloc arena, handed back here.
    if (body_size >= kTrimAfterBodyBytes) ::malloc_trim(0);
    return keep;
  }

  std::string read_exactly(ConnectionSocket& socket, std::size_t n, Clock::time_point deadline) {
    std::string& buf = socket.buffer();
    buf.reserve(n);  // n is at most the body limit: grown once, not by doubling
    while (buf.size() < n) {
      const auto got = socket.read_more(deadline);
      if (got == ConnectionSocket::Read::timeout) {
        throw Refusal{408, fmt::format("the request body did not arrive within {} ms ({} of {} bytes came)",
                                       args_.body_timeout_ms, buf.size(), n)};
      }
      if (got != ConnectionSocket::Read::ok) {
        throw Refusal{400, fmt::format("the connection closed after {} of {} body bytes", buf.size(), n)};
      }
    }
    if (buf.size() == n) return std::exchange(buf, std::string());  // the usual case: no copy
    std::string body = buf.substr(0, n);
    buf.erase(0, n);
    return body;
  }

  // A line of a chunked body (without its CRLF), at most 4 KiB.
  std::string read_line(ConnectionSocket& socket, Clock::time_point deadline) {
    std::string& buf = socket.buffer();
    for (;;) {
      if (const auto eol = buf.find('\n'); eol != std::string::npos) {
        std::string line = buf.substr(0, eol);
        buf.erase(0, eol + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        return line;
      }
      if (buf.size() > 4096) throw Refusal{400, "a chunk header of the body is over 4096 bytes"};
      const auto got = socket.read_more(deadline);
      if (got == ConnectionSocket::Read::timeout) {
        throw Refusal{408, fmt::format("the request body did not arrive within {} ms", args_.body_timeout_ms)};
      }
      if (got != ConnectionSocket::Read::ok) throw Refusal{400, "the connection closed in the middle of the body"};
    }
  }

  std::string read_chunked(ConnectionSocket& socket, Clock::time_point deadline) {
    std::string body;
    for (;;) {
      const std::string line = read_line(socket, deadline);
      const std::string_view size_text = trim(std::string_view(line).substr(0, line.find(';')));
      std::uint64_t size = 0;
      const auto [end, ec] = std::from_chars(size_text.data(), size_text.data() + size_text.size(), size, 16);
      if (size_text.empty() || end != size_text.data() + size_text.size() ||
          (ec != std::errc() && ec != std::errc::result_out_of_range)) {
        throw Refusal{400, "malformed chunk size in the body"};
      }
      if (ec == std::errc::result_out_of_range || size > args_.max_body_bytes - body.size()) {
        throw Refusal{413, fmt::format("request body over the limit of {} bytes", args_.max_body_bytes)};
      }
      if (size == 0) break;
      body += read_exactly(socket, static_cast<std::size_t>(size), deadline);
      if (!read_line(socket, deadline).empty()) throw Refusal{400, "a chunk of the body is longer than its size"};
    }
    while (!read_line(socket, deadline).empty()) {
    }  // trailer fields, ignored
    return body;
  }

  const ServeArgs& args_;
  HttpFrontEnd& front_;
  BodyBudget budget_;
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
  GuardedHttpServer http(limits, front);
  const auto threads = static_cast<std::size_t>(limits.threads);
  http.new_task_queue = [threads] { return new ConnectionThreads(threads); };
  http.set_payload_max_length(limits.max_body_bytes);
  // httplib's default also sets SO_REUSEPORT, which would let a second server share a port in use
  // (and split the traffic); take the port alone, or fail clearly.
  http.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  front.install(http);

  int port = args.port;
  if (port == 0) {
    port = http.bind_to_any_port(args.host);
  } else if (!http.bind_to_port(args.host, port)) {
    port = -1;
  }
  if (port < 0) {
    throw Error(Errc::io_error, fmt::format("cannot listen on {}:{} (in use, or not an address of this machine); "
                                            "choose another --port or --host",
                                            args.host, args.port));
  }
  // httplib listens with a backlog of 5: a burst of connections would wait for SYN retries.
  ::listen(http.listening_socket(), SOMAXCONN);
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
