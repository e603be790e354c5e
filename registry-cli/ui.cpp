// `modelreg ui`: the REST API at /api/v1 (api.hpp) over the registry, behind the hardened HTTP
// layer of `modelreg serve` (http_server.hpp), plus the background services of the ui process.
// See README.md, "HTTP API".
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "api.hpp"
#include "arguments.hpp"
#include "commands.hpp"
#include "http_server.hpp"
#include "ui_assets.hpp"
#include "webhook_dispatcher.hpp"

namespace modelreg::cli {
namespace {

struct UiArgs {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (the chosen one is printed)
  bool anonymous_read = false;
  std::string tls_cert, tls_key;  // both or neither: HTTPS
  std::string upload_dir;  // default: the system's temporary directory
  std::uint64_t max_upload_bytes = 4ull << 30;
  int threads = 64;
  std::size_t max_body_bytes = 1u << 20;
  int header_timeout_ms = 10'000;
  int body_timeout_ms = 30'000;
  int idle_timeout_ms = 5'000;
};

// Something the ui process runs beside the HTTP server, such as the webhook delivery worker:
// started once the port is bound (so a bad --port fails before anything starts), stopped in
// reverse order after the server has drained, before the command returns. `stop` must return
// promptly and join what `start` started.
class BackgroundService {
 public:
  virtual ~BackgroundService() = default;
  virtual const char* name() const = 0;
  virtual void start() = 0;
  virtual void stop() = 0;
};

// Webhooks: the delivery worker (webhook_dispatcher.hpp), its lines in the log.
class WebhookDelivery final : public BackgroundService {
 public:
  explicit WebhookDelivery(std::filesystem::path db) : db_(std::move(db)) {}
  const char* name() const override { return "webhook delivery"; }
  void start() override {
    DispatcherOptions o;
    o.log = [](std::string_view line) { LogSink::instance().write(line); };
    Options registry;
    registry.create_if_missing = false;
    dispatcher_ = std::make_unique<WebhookDispatcher>(db_, registry, std::move(o));
  }
  void stop() override { dispatcher_.reset(); }

 private:
  std::filesystem::path db_;
  std::unique_ptr<WebhookDispatcher> dispatcher_;
};

// THE PLACE TO ADD A BACKGROUND SERVICE of `modelreg ui`: push it here.
std::vector<std::unique_ptr<BackgroundService>> background_services(const Globals& g) {
  std::vector<std::unique_ptr<BackgroundService>> services;
  // A read-only ui cannot record attempts: it leaves delivering to a writable one.
  if (!g.read_only) services.push_back(std::make_unique<WebhookDelivery>(g.db));
  return services;
}

void log(std::string_view line) { LogSink::instance().write(line); }

int run_ui(const Globals& g, const UiArgs& args) {
  if (args.port < 0 || args.port > 65535) throw UsageError(fmt::format("port {} is out of range", args.port));
  if (args.threads < 1) throw UsageError("--threads must be at least 1");
  if (args.header_timeout_ms < 1 || args.body_timeout_ms < 1 || args.idle_timeout_ms < 1) {
    throw UsageError("timeouts must be at least 1 ms");
  }
  if (args.tls_cert.empty() != args.tls_key.empty()) {
    throw UsageError("give --tls-cert and --tls-key together (a PEM certificate chain and its private key)");
  }
  const std::filesystem::path upload_dir =
      args.upload_dir.empty() ? std::filesystem::temp_directory_path() : std::filesystem::path(args.upload_dir);
  if (!std::filesystem::is_directory(upload_dir)) {
    throw Error(Errc::invalid_argument, fmt::format("--upload-dir '{}' is not a directory", upload_dir.string()));
  }
  Registry registry = open_registry(g, false);
  const sigset_t stop_signals = block_stop_signals();

  api::Context ctx{.registry = registry,
                   .open = [&g] { return open_registry(g, false); },
                   .anonymous_read = args.anonymous_read,
                   .upload_dir = upload_dir,
                   .max_upload_bytes = args.max_upload_bytes,
                   .limiter = {}};
  const api::Routes routes = api::all_routes();

  HttpLimits limits;
  limits.threads = static_cast<std::size_t>(args.threads);
  limits.max_body_bytes = args.max_body_bytes;
  limits.max_inflight_body_bytes = 2 * args.max_body_bytes;
  limits.header_timeout_ms = args.header_timeout_ms;
  limits.body_timeout_ms = args.body_timeout_ms;
  limits.idle_timeout_ms = args.idle_timeout_ms;
  ConnectionEvents events;
  events.refused = [](int status, std::string_view method, std::string_view target, std::string_view why) {
    log(fmt::format("answered {} to {} {}: {}", status, method.empty() ? "-" : method, target.empty() ? "-" : target, why));
  };
  events.refusal_body = [](int status, std::string_view why) {
    const char* code = status == 413 || status == 431 ? "too_large" : status == 503 ? "busy" : status == 408 ? "timeout" : "invalid_argument";
    return nlohmann::json{{"error", {{"code", code}, {"message", why}}}}.dump();
  };
  GuardedHttpServer http(limits, std::move(events));
  http.stream_requests([&routes](std::string_view method, std::string_view path) { return api::is_streamed(routes, method, path); },
                       args.max_upload_bytes);
  http.check_before_body([&ctx, &routes](const BodyAnnouncement& r) { return api::check_before_body(ctx, routes, r); });
  api::install(http, ctx, routes);
  add_ui_routes(http);  // the web UI at / (ui_assets.hpp)
  const bool tls = !args.tls_cert.empty();
  if (tls) http.use_tls(args.tls_cert, args.tls_key);
  const int port = http.bind(args.host, args.port);
  fmt::print("{}://{}:{}\n", tls ? "https" : "http", args.host, port);
  fmt::print("REST API at /api/v1 (OpenAPI document: /api/v1/openapi.json){}\n",
             args.anonymous_read ? "; reads need no token" : "");
  std::fflush(stdout);

  auto services = background_services(g);
  for (auto& s : services) {
    s->start();
    log(fmt::format("started {}", s->name()));
  }
  return serve_until_signalled(http, stop_signals, [&] {
    for (auto it = services.rbegin(); it != services.rend(); ++it) {
      (*it)->stop();
      log(fmt::format("stopped {}", (*it)->name()));
    }
  });
}

}  // namespace

void add_ui_command(CLI::App& app, Globals& g) {
  auto [cmd, a] = add_command<UiArgs>(
      app, g, "ui", "Serve the registry's REST API (/api/v1) with bearer tokens",
      "  modelreg ui --port 8080\n"
      "  TOKEN=$(modelreg token create ci --role writer)\n"
      "  curl -s -H \"Authorization: Bearer $TOKEN\" localhost:8080/api/v1/models\n"
      "  curl -s localhost:8080/api/v1/openapi.json",
      run_ui);
  cmd->add_option("--host", a->host, "Address to bind (default 127.0.0.1)");
  cmd->add_option("--port", a->port, "Port (default 8080; 0 picks a free one and prints it)");
  cmd->add_option("--tls-cert", a->tls_cert, "Speak HTTPS with this PEM certificate chain (with --tls-key)");
  cmd->add_option("--tls-key", a->tls_key, "The PEM private key of --tls-cert");
  cmd->add_flag("--anonymous-read", a->anonymous_read, "Let calls without a token read (never write)");
  cmd->add_option("--upload-dir", a->upload_dir, "Where uploads are streamed before registering (default: $TMPDIR or /tmp)");
  cmd->add_option("--max-upload-bytes", a->max_upload_bytes, "Largest upload of a version's bytes (default 4 GiB)");
  cmd->add_option("--max-body-bytes", a->max_body_bytes, "Largest JSON request body (default 1 MiB)");
  cmd->add_option("--threads", a->threads, "Most connections served at once, one thread each (default 64)");
  cmd->add_option("--header-timeout-ms", a->header_timeout_ms, "Time for a request's headers to arrive (default 10000)");
  cmd->add_option("--body-timeout-ms", a->body_timeout_ms,
                  "Time for a JSON body to arrive; for an upload, the longest pause between its bytes (default 30000)");
  cmd->add_option("--idle-timeout-ms", a->idle_timeout_ms, "A keep-alive connection idle this long is closed (default 5000)");
}

}  // namespace modelreg::cli
