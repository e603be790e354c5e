// The API's registry-wide calls: read-only SQL (within the CLI's bounds, which a call may only
// lower) and tokens (admin).
#include <fmt/format.h>

#include "api.hpp"
#include "render.hpp"

namespace modelreg::cli::api {

using nlohmann::json;

namespace {

ApiError bad(std::string message) { return ApiError{400, "invalid_argument", std::move(message)}; }

// `given` when at least 1 and at most `bound` (the CLI's default), else ApiError 400.
std::uint64_t lowered(const Call& call, const json& body, std::string_view name, std::uint64_t bound) {
  const auto v = call.int_field(body, name);
  if (!v) return bound;
  if (*v < 1 || static_cast<std::uint64_t>(*v) > bound) {
    throw bad(fmt::format("{} is {}; give 1 to {} (the bound of `modelreg sql`, which a call may only lower)", name, *v, bound));
  }
  return static_cast<std::uint64_t>(*v);
}

}  // namespace

void add_admin_routes(Routes& routes) {
  routes.add({.method = "POST",
              .path = "/api/v1/sql",
              .action = Action::read,
              .scope = Scope::registry,
              .summary = "Run read-only SQL over the registry within `modelreg sql`'s bounds; rows as `modelreg --json sql`",
              .body = "application/json",
              .body_fields = {{"sql", "string", "One or more read-only statements; required"},
                              {"timeout_ms", "integer", "At most 10000 (default)"},
                              {"max_rows", "integer", "At most 1000000 (default)"},
                              {"max_bytes", "integer", "At most 268435456 (default)"},
                              {"max_memory", "integer", "At most 268435456 (default)"}},
              .handler = [](Call& call) {
                const json body = call.body();
                const auto sql = call.field(body, "sql");
                if (!sql || sql->empty()) throw bad("give the query: {\"sql\": \"SELECT ...\"}");
                const SqlOptions defaults;
                SqlOptions o;
                o.timeout = std::chrono::milliseconds(lowered(call, body, "timeout_ms", static_cast<std::uint64_t>(defaults.timeout.count())));
                o.max_rows = lowered(call, body, "max_rows", defaults.max_rows);
                o.max_bytes = lowered(call, body, "max_bytes", defaults.max_bytes);
                o.max_memory = lowered(call, body, "max_memory", defaults.max_memory);
                call.reply(to_json(call.registry().query(*sql, o)));
              }});
  routes.add({.method = "GET",
              .path = "/api/v1/tokens",
              .action = Action::tokens,
              .scope = Scope::registry,
              .summary = "The tokens (never their text or hash), as `modelreg --json token list`",
              .handler = [](Call& call) {
                json out = json::array();
                for (const auto& t : TokenStore(call.registry()).list()) out.push_back(to_json(t));
                call.reply(out);
              }});
  routes.add({.method = "POST",
              .path = "/api/v1/tokens",
              .action = Action::tokens,
              .scope = Scope::registry,
              .summary = "Create a token: answers 201 with the token listed and its text in \"token\", shown this once",
              .body = "application/json",
              .body_fields = {{"name", "string", "Unique name, recorded as the actor of its changes; required"},
                              {"role", "string", "reader, writer, promoter or admin; required"},
                              {"model_glob", "string", "Only models matching this glob (fnmatch)"}},
              .handler = [](Call& call) {
                const json body = call.body();
                NewToken spec;
                spec.name = call.field(body, "name").value_or("");
                const auto role = call.field(body, "role");
                if (!role) throw bad("give the token's role: reader, writer, promoter or admin");
                spec.role = parse_role(*role);
                spec.model_glob = call.field(body, "model_glob");
                spec.actor = call.actor();
                TokenStore store(call.registry());
                const std::string text = store.create(spec);
                json out;
                for (const auto& t : store.list()) {
                  if (t.name == spec.name) out = to_json(t);
                }
                out["token"] = text;
                call.reply(out, 201);
              }});
  routes.add({.method = "DELETE",
              .path = "/api/v1/tokens/{name}",
              .action = Action::tokens,
              .scope = Scope::registry,
              .summary = "Revoke a token (it stays listed); as `modelreg --json token revoke`",
              .handler = [](Call& call) { call.reply(to_json(TokenStore(call.registry()).revoke(call.path("name"), call.actor()))); }});
}

}  // namespace modelreg::cli::api
