// api.hpp — the REST API of `modelreg ui` at /api/v1 (README.md, "HTTP API").
//
// One table of routes (Routes) is the single source of both what is served (install) and the
// OpenAPI 3 document at /api/v1/openapi.json (openapi_document): a route exists in one only if it
// exists in both. Each resource group adds its routes in a file of its own:
//   api_models.cpp     add_model_routes      models, history, aliases (list)
//   api_versions.cpp   add_version_routes    versions (paged list, one, compare, lineage, bytes, register)
//   api_lifecycle.cpp  add_lifecycle_routes  promote, rollback, aliases (set/remove), tags, archive,
//                                            unarchive, delete, gc
//   api_admin.cpp      add_admin_routes      read-only SQL, tokens
// and api_core.cpp holds what they share: authentication, errors, JSON replies, the document.
//
// Every call needs `Authorization: Bearer TOKEN` (access.hpp) whose role permits the route's
// Action on the route's model, except reads when the server allows anonymous reads. Errors are
// {"error": {"code": "...", "message": "..."}} with the HTTP status of the code.
//
// Thread-safety: routes run on the connection threads at once; they share the Context, whose
// Registry serializes its calls and whose FailureLimiter has its own lock.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "http_server.hpp"
#include "modelreg/access.hpp"
#include "modelreg/registry.hpp"

namespace modelreg::cli::api {

// What a route reaches, for permission checks.
enum class Scope {
  model,     // the model named by the path's {model}: a token's glob must match it
  filtered,  // every model, filtered by the route to those the caller's glob matches
  registry,  // the registry as a whole (SQL, gc, tokens): refused to a token limited by a glob
  open,      // nothing of the registry (the OpenAPI document): no token needed
};

// A query parameter, documented in the OpenAPI document and read through Call::query*.
struct Param {
  std::string name{};
  std::string type{};  // "string", "integer", "number" or "boolean"
  std::string description{};
  bool repeated = false;  // may be given several times (?where=a&where=b)
};

class Call;

// One route: a method and a path template, what it needs and how it is documented.
struct Route {
  std::string method{};  // GET, POST, PUT or DELETE
  std::string path{};    // an OpenAPI path template: /api/v1/models/{model}/versions/{version}
  Action action = Action::read;
  Scope scope = Scope::model;
  std::string summary{};
  std::vector<Param> query{};
  // The request body: "" (none), "application/json" (an object; body_fields documents its
  // fields) or "multipart/form-data" (streamed: Call::reader).
  std::string body{};
  std::vector<Param> body_fields{};
  std::string answer = "application/json";  // or "application/octet-stream"
  std::function<void(Call&)> handler{};
};

class Routes {
 public:
  void add(Route route) { routes_.push_back(std::move(route)); }
  const std::vector<Route>& all() const noexcept { return routes_; }

 private:
  std::vector<Route> routes_;
};

// Repeated authentication failures from one address are slowed down: after kFree failures in a
// row, the address is refused (429, Retry-After) for 1 s, then 2, 4, ... up to 60 s after each
// further failure, without its token being looked at. A success forgets the address. At most
// kMaxAddresses are remembered (the least recently failed is forgotten first), so the table's
// memory is bounded whatever the number of addresses.
class FailureLimiter {
 public:
  static constexpr int kFree = 5;
  static constexpr std::size_t kMaxAddresses = 4096;

  // Seconds the address must still wait (0: it may try now).
  std::int64_t wait_seconds(const std::string& address);
  void failed(const std::string& address);
  void succeeded(const std::string& address);

 private:
  struct Entry {
    int failures = 0;
    std::chrono::steady_clock::time_point until{};
    std::list<std::string>::iterator order;
  };
  std::mutex mutex_;  // protects everything below
  std::unordered_map<std::string, Entry> entries_;
  std::list<std::string> order_;  // least recently failed first
};

// What every route shares.
struct Context {
  Registry& registry;
  // Opens another connection to the same registry: a long transfer (an upload being registered,
  // a download being sent) holds a Registry's lock for its whole length, so it gets its own
  // rather than stalling every other call.
  std::function<Registry()> open{};
  bool anonymous_read = false;
  std::filesystem::path upload_dir{};  // where uploads are streamed before registering
  std::uint64_t max_upload_bytes = 0;
  FailureLimiter limiter{};
};

// A client mistake or refusal, answered with `status` and {"error": {"code", "message"}}.
struct ApiError {
  int status;
  std::string code;
  std::string message;
};

// One call of a route, as its handler sees it.
class Call {
 public:
  Call(Context& ctx, const Route& route, const httplib::Request& request, httplib::Response& response,
       const httplib::ContentReader* reader, std::optional<TokenInfo> token)
      : ctx_(ctx), route_(route), request_(request), response_(response), reader_(reader), token_(std::move(token)) {}

  Registry& registry() const noexcept { return ctx_.registry; }
  Context& context() const noexcept { return ctx_; }
  const httplib::Request& request() const noexcept { return request_; }
  httplib::Response& response() const noexcept { return response_; }
  // The body's reader (routes whose body is multipart/form-data), else null.
  const httplib::ContentReader* reader() const noexcept { return reader_; }

  // A path parameter: {model} (a valid model name), {version} (a number, label or alias), ...
  std::string path(std::string_view name) const;
  // The path's model and version as a reference (NAME@VERSION).
  ModelRef ref() const;
  // A documented query parameter; ApiError 400 naming it when malformed.
  std::optional<std::string> query(std::string_view name) const;
  std::vector<std::string> query_all(std::string_view name) const;
  std::optional<std::int64_t> query_int(std::string_view name, std::int64_t min, std::int64_t max) const;
  bool query_bool(std::string_view name) const;
  // The JSON object of the body (an empty object when there is none); ApiError 400 naming the
  // problem for anything else, or for a field not in the route's body_fields.
  nlohmann::json body() const;
  // body()[name] as a string / bool / int, when present; ApiError 400 naming the field when it
  // has another type.
  std::optional<std::string> field(const nlohmann::json& body, std::string_view name) const;
  std::optional<bool> bool_field(const nlohmann::json& body, std::string_view name) const;
  std::optional<std::int64_t> int_field(const nlohmann::json& body, std::string_view name) const;

  // Who acts: the token's name (writes always have a token).
  std::optional<std::string> actor() const { return token_ ? std::optional<std::string>(token_->name) : std::nullopt; }
  // Whether the caller may read `model` (for Scope::filtered lists).
  bool may_read(std::string_view model) const;

  void reply(const nlohmann::json& body, int status = 200) const;

 private:
  Context& ctx_;
  const Route& route_;
  const httplib::Request& request_;
  httplib::Response& response_;
  const httplib::ContentReader* reader_;
  std::optional<TokenInfo> token_;
};

void add_model_routes(Routes& routes);
void add_version_routes(Routes& routes);
void add_lifecycle_routes(Routes& routes);
void add_admin_routes(Routes& routes);
void add_ui_api_routes(Routes& routes);  // api_ui.cpp: whoami, overview, a page of the audit log (the web UI)
void add_webhook_routes(Routes& routes);  // api_webhooks.cpp: webhooks and their deliveries

// Every route of the API, in the order of the document: the groups above and GET
// /api/v1/openapi.json.
Routes all_routes();

// The OpenAPI 3.0 document of `routes`.
nlohmann::json openapi_document(const Routes& routes);

// Serves `routes` (which, like ctx, must outlive the server) on `server`, with a JSON 404 for
// any other path under /api/. `streamed` is what GuardedHttpServer::stream_requests needs: the
// routes whose body or answer is streamed.
void install(httplib::Server& server, Context& ctx, const Routes& routes);
bool is_streamed(const Routes& routes, std::string_view method, std::string_view path);
// The token check of a request that announces a body, before the body is read: the refusal its
// route would answer (401, 403 for a role too low, 429), or none (an open route, an unknown one, a
// token that may make the call). For GuardedHttpServer::check_before_body.
std::optional<EarlyAnswer> check_before_body(Context& ctx, const Routes& routes, const BodyAnnouncement& request);

// The status of an error code: not_found 404, already_exists and conflict 409, invalid_argument
// 400, validation_failed 422, busy 503, corruption, io_error and incompatible 500.
int status_of(Errc code) noexcept;

}  // namespace modelreg::cli::api
