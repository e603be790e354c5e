// The core of the REST API (api.hpp): authentication and the failure limiter, errors, JSON
// replies, parameters, the OpenAPI document and serving the route table.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <set>

#include <fmt/format.h>

#include "api.hpp"

namespace modelreg::cli::api {

using nlohmann::json;

namespace {

constexpr std::string_view kPrefix = "/api/v1";

void error_reply(httplib::Response& res, int status, std::string_view code, std::string_view message) {
  res.status = status;
  res.set_content(json{{"error", {{"code", code}, {"message", message}}}}.dump(), "application/json");
}

// The names of a path template's parameters, in order: /models/{model}/versions/{version}.
std::vector<std::string> path_params(const std::string& path) {
  std::vector<std::string> out;
  for (std::size_t i = path.find('{'); i != std::string::npos; i = path.find('{', i + 1)) {
    out.push_back(path.substr(i + 1, path.find('}', i) - i - 1));
  }
  return out;
}

// httplib's pattern of a path template: each {name} one path segment. (By hand, not std::regex:
// GCC 12 reports std::regex's internals as maybe-uninitialized under the sanitizers, fatal with
// -Werror.)
std::string pattern_of(const std::string& path) {
  std::string out;
  for (std::size_t i = 0; i < path.size();) {
    if (path[i] == '{') {
      const auto close = path.find('}', i);
      if (close != std::string::npos) {
        out += "([^/]+)";
        i = close + 1;
        continue;
      }
    }
    out += path[i++];
  }
  return out;
}

// Whether `path` is an instance of the template: the same segments, each {name} any non-empty one.
bool matches_template(std::string_view pattern, std::string_view path) {
  while (true) {
    const auto pe = pattern.find('/'), te = path.find('/');
    const std::string_view ps = pattern.substr(0, pe), ts = path.substr(0, te);
    const bool any = ps.size() >= 2 && ps.front() == '{' && ps.back() == '}';
    if (any ? ts.empty() : ps != ts) return false;
    if (pe == std::string_view::npos || te == std::string_view::npos) return pe == te;
    pattern.remove_prefix(pe + 1);
    path.remove_prefix(te + 1);
  }
}

// An operationId from a path: every run of characters other than letters and digits one '_'.
std::string identifier_of(std::string_view text) {
  std::string out;
  bool gap = false;
  for (const char c : text) {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      if (gap) out += '_';
      gap = false;
      out += c;
    } else {
      gap = true;
    }
  }
  if (gap) out += '_';
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string role_needed(Action action) { return std::string(to_string(required_role(action))); }

// The token a request names and whether its role may make the call: none for an open route or an
// anonymous read (when allowed). Throws ApiError: 401 (no token, a malformed, unknown or revoked
// one), 429 (too many failures from this address), 403 (a role too low). Used before the body is
// read (check_before_body) and again, with the model checks, when the route runs.
std::optional<TokenInfo> authenticate(Context& ctx, const Route& route, const std::string& header, bool has_header,
                                      const std::string& address) {
  if (route.scope == Scope::open) return std::nullopt;
  if (!has_header) {
    if (ctx.anonymous_read && route.action == Action::read) return std::nullopt;
    throw ApiError{401, "unauthenticated",
                   fmt::format("{} {} needs a token of role {} or above: send 'Authorization: Bearer TOKEN' (tokens "
                               "come from `modelreg token create`)",
                               route.method, route.path, role_needed(route.action))};
  }
  if (const auto wait = ctx.limiter.wait_seconds(address); wait > 0) {
    throw ApiError{429, "too_many_failures",
                   fmt::format("too many failed authentications from {}; retry in {} s", address, wait)};
  }
  std::optional<TokenInfo> token;
  if (header.size() > 7 && lower(header.substr(0, 7)) == "bearer ") token = TokenStore(ctx.registry).authenticate(header.substr(7));
  if (!token) {
    ctx.limiter.failed(address);
    throw ApiError{401, "bad_token", "the token is malformed, unknown or revoked; send 'Authorization: Bearer TOKEN'"};
  }
  ctx.limiter.succeeded(address);
  if (static_cast<int>(token->role) < static_cast<int>(required_role(route.action))) {
    throw ApiError{403, "forbidden",
                   fmt::format("token '{}' has role {}; {} {} needs {} or above", token->name, to_string(token->role),
                               route.method, route.path, role_needed(route.action))};
  }
  return token;
}

// The token of the request and whether it may make the call: authenticate(), then a token limited
// to some models may not make a registry-wide call nor one on a model outside its glob (403).
std::optional<TokenInfo> authorize(Context& ctx, const Route& route, const httplib::Request& req) {
  const std::optional<TokenInfo> token = authenticate(ctx, route, req.get_header_value("Authorization"),
                                                      req.get_header_value_count("Authorization") > 0, req.remote_addr);
  if (!token) return token;
  if (route.scope == Scope::registry && token->model_glob) {
    throw ApiError{403, "forbidden",
                   fmt::format("token '{}' is limited to models matching '{}'; {} {} reaches every model and needs a "
                               "token without --model",
                               token->name, *token->model_glob, route.method, route.path)};
  }
  if (route.scope == Scope::model && token->model_glob) {
    const auto names = path_params(route.path);
    const auto it = std::find(names.begin(), names.end(), "model");
    const std::string model = it == names.end() ? "" : req.matches[static_cast<std::size_t>(it - names.begin()) + 1].str();
    if (!permits(token->role, token->model_glob, route.action, model)) {
      throw ApiError{403, "forbidden",
                     fmt::format("token '{}' is limited to models matching '{}', and '{}' does not match", token->name,
                                 *token->model_glob, model)};
    }
  }
  return token;
}

// The client's query parameters must be the route's, each once unless repeated.
void check_query(const Route& route, const httplib::Request& req) {
  std::set<std::string> seen;
  for (const auto& [name, value] : req.params) {
    const auto it = std::find_if(route.query.begin(), route.query.end(), [&](const Param& p) { return p.name == name; });
    if (it == route.query.end()) {
      std::vector<std::string> known;
      for (const auto& p : route.query) known.push_back(p.name);
      throw ApiError{400, "invalid_argument",
                     fmt::format("unknown query parameter '{}'; {} {} takes {}", name.substr(0, 64), route.method,
                                 route.path, known.empty() ? "none" : fmt::format("{}", fmt::join(known, ", ")))};
    }
    if (!it->repeated && !seen.insert(name).second) {
      throw ApiError{400, "invalid_argument", fmt::format("query parameter '{}' is given twice; give it once", name)};
    }
  }
}

void run(Context& ctx, const Route& route, const httplib::Request& req, httplib::Response& res,
         const httplib::ContentReader* reader) {
  try {
    std::optional<TokenInfo> token = authorize(ctx, route, req);
    check_query(route, req);
    Call call(ctx, route, req, res, reader, std::move(token));
    route.handler(call);
  } catch (const ApiError& e) {
    error_reply(res, e.status, e.code, e.message);
    if (e.status == 401) res.set_header("WWW-Authenticate", "Bearer");
    if (e.status == 429) res.set_header("Retry-After", std::to_string(ctx.limiter.wait_seconds(req.remote_addr)));
  } catch (const Error& e) {
    error_reply(res, status_of(e.code()), to_string(e.code()), e.what());
  } catch (const std::exception& e) {
    error_reply(res, 500, "internal", e.what());
  }
}

json param_schema(const Param& p) {
  json schema = {{"type", p.type}};
  if (p.repeated) schema = {{"type", "array"}, {"items", {{"type", p.type}}}};
  return schema;
}

}  // namespace

int status_of(Errc code) noexcept {
  switch (code) {
    case Errc::not_found: return 404;
    case Errc::already_exists:
    case Errc::conflict: return 409;
    case Errc::invalid_argument: return 400;
    case Errc::validation_failed: return 422;
    case Errc::busy: return 503;
    case Errc::corruption:
    case Errc::io_error:
    case Errc::incompatible: return 500;
  }
  return 500;
}

// ---- FailureLimiter ----

std::int64_t FailureLimiter::wait_seconds(const std::string& address) {
  std::lock_guard lock(mutex_);
  const auto it = entries_.find(address);
  if (it == entries_.end()) return 0;
  const auto left = it->second.until - std::chrono::steady_clock::now();
  if (left <= std::chrono::steady_clock::duration::zero()) return 0;
  return std::chrono::duration_cast<std::chrono::seconds>(left).count() + 1;
}

void FailureLimiter::failed(const std::string& address) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(address);
  if (it == entries_.end()) {
    if (entries_.size() >= kMaxAddresses) {
      entries_.erase(order_.front());
      order_.pop_front();
    }
    order_.push_back(address);
    it = entries_.emplace(address, Entry{0, {}, std::prev(order_.end())}).first;
  } else {
    order_.splice(order_.end(), order_, it->second.order);
  }
  Entry& e = it->second;
  ++e.failures;
  if (e.failures >= kFree) {
    const int doublings = std::min(e.failures - kFree, 6);  // 1, 2, 4, ... 64 s, capped at 60
    e.until = std::chrono::steady_clock::now() + std::chrono::seconds(std::min(1 << doublings, 60));
  }
}

void FailureLimiter::succeeded(const std::string& address) {
  std::lock_guard lock(mutex_);
  const auto it = entries_.find(address);
  if (it == entries_.end()) return;
  order_.erase(it->second.order);
  entries_.erase(it);
}

// ---- Call ----

std::string Call::path(std::string_view name) const {
  const auto names = path_params(route_.path);
  const auto it = std::find(names.begin(), names.end(), name);
  if (it == names.end()) throw std::logic_error(fmt::format("route {} has no path parameter {}", route_.path, name));
  std::string value = request_.matches[static_cast<std::size_t>(it - names.begin()) + 1].str();
  if (name == "model" && !is_valid_model_name(value)) {
    throw ApiError{400, "invalid_argument",
                   fmt::format("'{}' is not a valid model name ([A-Za-z0-9][A-Za-z0-9_.-]{{0,127}})", value.substr(0, 140))};
  }
  return value;
}

ModelRef Call::ref() const { return ModelRef::parse(path("model") + "@" + path("version")); }

std::optional<std::string> Call::query(std::string_view name) const {
  if (!request_.has_param(std::string(name).c_str())) return std::nullopt;
  return request_.get_param_value(std::string(name).c_str());
}

std::vector<std::string> Call::query_all(std::string_view name) const {
  std::vector<std::string> out;
  const std::string key(name);
  for (std::size_t i = 0; i < request_.get_param_value_count(key.c_str()); ++i) {
    out.push_back(request_.get_param_value(key.c_str(), i));
  }
  return out;
}

std::optional<std::int64_t> Call::query_int(std::string_view name, std::int64_t min, std::int64_t max) const {
  const auto text = query(name);
  if (!text) return std::nullopt;
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
  if (text->empty() || ec != std::errc() || end != text->data() + text->size() || v < min || v > max) {
    throw ApiError{400, "invalid_argument",
                   fmt::format("query parameter '{}' is '{}'; give a whole number from {} to {}", name,
                               text->substr(0, 40), min, max)};
  }
  return v;
}

bool Call::query_bool(std::string_view name) const {
  const auto text = query(name);
  if (!text) return false;
  if (*text == "true" || *text == "1") return true;
  if (*text == "false" || *text == "0") return false;
  throw ApiError{400, "invalid_argument",
                 fmt::format("query parameter '{}' is '{}'; give true or false", name, text->substr(0, 40))};
}

json Call::body() const {
  if (request_.body.empty()) return json::object();
  json j;
  try {
    j = json::parse(request_.body);
  } catch (const json::exception& e) {
    throw ApiError{400, "invalid_argument", fmt::format("the body is not valid JSON: {}", e.what())};
  }
  if (!j.is_object()) throw ApiError{400, "invalid_argument", "the body must be a JSON object"};
  for (const auto& [key, value] : j.items()) {
    const auto it =
        std::find_if(route_.body_fields.begin(), route_.body_fields.end(), [&](const Param& p) { return p.name == key; });
    if (it == route_.body_fields.end()) {
      std::vector<std::string> known;
      for (const auto& p : route_.body_fields) known.push_back(p.name);
      throw ApiError{400, "invalid_argument",
                     fmt::format("unknown field '{}' in the body; {} {} takes {}", key.substr(0, 64), route_.method,
                                 route_.path, known.empty() ? "none" : fmt::format("{}", fmt::join(known, ", ")))};
    }
  }
  return j;
}

std::optional<std::string> Call::field(const json& body, std::string_view name) const {
  const auto it = body.find(name);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) throw ApiError{400, "invalid_argument", fmt::format("field '{}' must be a string", name)};
  return it->get<std::string>();
}

std::optional<bool> Call::bool_field(const json& body, std::string_view name) const {
  const auto it = body.find(name);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) throw ApiError{400, "invalid_argument", fmt::format("field '{}' must be true or false", name)};
  return it->get<bool>();
}

std::optional<std::int64_t> Call::int_field(const json& body, std::string_view name) const {
  const auto it = body.find(name);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer()) throw ApiError{400, "invalid_argument", fmt::format("field '{}' must be a whole number", name)};
  return it->get<std::int64_t>();
}

bool Call::may_read(std::string_view model) const {
  return !token_ || !token_->model_glob || glob_matches(*token_->model_glob, model);
}

void Call::reply(const json& body, int status) const {
  response_.status = status;
  response_.set_content(body.dump(), "application/json");
}

// ---- the table, the document, serving ----

Routes all_routes() {
  Routes routes;
  add_model_routes(routes);
  add_version_routes(routes);
  add_lifecycle_routes(routes);
  add_admin_routes(routes);
  add_ui_api_routes(routes);
  add_webhook_routes(routes);
  routes.add({.method = "GET",
              .path = "/api/v1/openapi.json",
              .action = Action::read,
              .scope = Scope::open,
              .summary = "This document: every route of the API",
              .handler = [](Call& call) { call.reply(openapi_document(all_routes())); }});
  return routes;
}

json openapi_document(const Routes& routes) {
  json paths = json::object();
  const json error_ref = {{"$ref", "#/components/responses/Error"}};
  for (const auto& r : routes.all()) {
    json params = json::array();
    for (const auto& name : path_params(r.path)) {
      params.push_back({{"name", name}, {"in", "path"}, {"required", true}, {"schema", {{"type", "string"}}}});
    }
    for (const auto& q : r.query) {
      json p = {{"name", q.name}, {"in", "query"}, {"required", false}, {"description", q.description}, {"schema", param_schema(q)}};
      if (q.repeated) p["explode"] = true;
      params.push_back(p);
    }
    json op = {{"summary", r.summary},
               {"operationId", fmt::format("{}_{}", lower(r.method),
                                           identifier_of(r.path.substr(kPrefix.size())))},
               {"parameters", params},
               {"x-modelreg-role", role_needed(r.action)},
               {"responses",
                {{"200", {{"description", "Success"}, {"content", {{r.answer, {{"schema", {{"type", r.answer == "application/json" ? "object" : "string"}}}}}}}}},
                 {"400", error_ref}, {"401", error_ref}, {"403", error_ref}, {"404", error_ref}, {"409", error_ref},
                 {"413", error_ref}, {"422", error_ref}, {"429", error_ref}, {"503", error_ref}}}};
    if (r.scope == Scope::open) {
      op["security"] = json::array();
    } else if (r.action == Action::read) {
      op["security"] = json::array({{{"bearer", json::array()}}, json::object()});  // anonymous with --anonymous-read
    }
    if (r.body == "application/json") {
      json props = json::object();
      for (const auto& f : r.body_fields) {
        json prop = param_schema(f);
        prop["description"] = f.description;
        props[f.name] = prop;
      }
      op["requestBody"] = {{"required", false},
                           {"content", {{r.body, {{"schema", {{"type", "object"}, {"properties", props}, {"additionalProperties", false}}}}}}}};
    } else if (!r.body.empty()) {
      json props = json::object();
      for (const auto& f : r.body_fields) {
        props[f.name] = {{"description", f.description}, {"type", "string"}};
        if (f.type == "binary") props[f.name]["format"] = "binary";
      }
      op["requestBody"] = {{"required", true}, {"content", {{r.body, {{"schema", {{"type", "object"}, {"properties", props}}}}}}}};
    }
    paths[r.path][lower(r.method)] = op;
  }
  return {{"openapi", "3.0.3"},
          {"info", {{"title", "modelreg registry API"}, {"version", "1"}}},
          {"servers", json::array({{{"url", "/"}}})},
          {"paths", paths},
          {"security", json::array({{{"bearer", json::array()}}})},
          {"components",
           {{"securitySchemes", {{"bearer", {{"type", "http"}, {"scheme", "bearer"}}}}},
            {"schemas",
             {{"Error",
               {{"type", "object"},
                {"properties",
                 {{"error",
                   {{"type", "object"},
                    {"properties", {{"code", {{"type", "string"}}}, {"message", {{"type", "string"}}}}}}}}}}}}},
            {"responses",
             {{"Error",
               {{"description", "An error: its code and a message naming the problem"},
                {"content", {{"application/json", {{"schema", {{"$ref", "#/components/schemas/Error"}}}}}}}}}}}}}};
}

void install(httplib::Server& server, Context& ctx, const Routes& routes) {
  for (const auto& route : routes.all()) {
    const std::string pattern = pattern_of(route.path);
    const Route* r = &route;
    if (route.body == "multipart/form-data") {
      auto handler = [&ctx, r](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
        run(ctx, *r, req, res, &reader);
      };
      if (route.method == "POST") server.Post(pattern, handler);
      if (route.method == "PUT") server.Put(pattern, handler);
      continue;
    }
    auto handler = [&ctx, r](const httplib::Request& req, httplib::Response& res) { run(ctx, *r, req, res, nullptr); };
    if (route.method == "GET") server.Get(pattern, handler);
    if (route.method == "POST") server.Post(pattern, handler);
    if (route.method == "PUT") server.Put(pattern, handler);
    if (route.method == "DELETE") server.Delete(pattern, handler);
  }
  // Any other path or method: a JSON error, never an empty body.
  server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404) {
      error_reply(res, 404, "not_found", fmt::format("no such endpoint: {} {} (see /api/v1/openapi.json)", req.method, req.path));
    } else if (res.status == 413) {
      error_reply(res, 413, "too_large", "the request body is over the limit");
    } else {
      error_reply(res, res.status, "invalid_argument", fmt::format("HTTP {}: the request could not be read", res.status));
    }
  });
}

bool is_streamed(const Routes& routes, std::string_view method, std::string_view path) {
  for (const auto& r : routes.all()) {
    if (r.method != method || (r.body.empty() && r.answer == "application/json") || r.body == "application/json") continue;
    if (matches_template(r.path, path)) return true;
  }
  return false;
}

std::optional<EarlyAnswer> check_before_body(Context& ctx, const Routes& routes, const BodyAnnouncement& request) {
  for (const auto& r : routes.all()) {
    if (r.method != request.method || !matches_template(r.path, request.path)) continue;
    const std::string header = request.header("authorization");
    try {
      authenticate(ctx, r, header, !header.empty(), std::string(request.remote_address));
      return std::nullopt;
    } catch (const ApiError& e) {
      EarlyAnswer a{e.status, json{{"error", {{"code", e.code}, {"message", e.message}}}}.dump(), {}};
      if (e.status == 401) a.headers.emplace_back("WWW-Authenticate", "Bearer");
      if (e.status == 429) {
        a.headers.emplace_back("Retry-After", std::to_string(ctx.limiter.wait_seconds(std::string(request.remote_address))));
      }
      return a;
    } catch (const std::exception&) {
      return std::nullopt;  // (the token store cannot be read now) the route answers as it would
    }
  }
  return std::nullopt;
}

}  // namespace modelreg::cli::api
