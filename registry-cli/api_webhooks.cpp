// The API's webhooks (README.md, "Webhooks"): list them and their delivery attempts (readers of the
// whole registry), add and remove them (admins). The same shapes as `modelreg --json webhook`.
#include <fmt/format.h>

#include "api.hpp"
#include "modelreg/webhooks.hpp"
#include "render.hpp"
#include "webhook_render.hpp"

namespace modelreg::cli::api {

using nlohmann::json;

namespace {

// A WebhookStore on the server's registry for one call, acting as the caller's token; read-only
// when the server's registry is (modelreg --read-only ui).
WebhookStore store_of(const Call& call) {
  Options o;
  o.create_if_missing = false;
  o.read_only = call.registry().read_only();
  if (const auto who = call.actor()) o.default_actor = *who;
  return WebhookStore(call.registry().path(), o);
}

std::int64_t webhook_id(const Call& call) {
  const std::string text = call.path("id");
  if (text.empty() || text.size() > 18 || text.find_first_not_of("0123456789") != std::string::npos || std::stoll(text) < 1) {
    throw ApiError{400, "invalid_argument", fmt::format("'{}' is not a webhook id (a number)", text.substr(0, 40))};
  }
  return std::stoll(text);
}

// "promote,rollback" -> {"promote", "rollback"}, as `webhook add --events`.
std::vector<std::string> kinds_of(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t comma = text.find(',', start);
    out.push_back(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (out.back().empty()) {
      throw ApiError{400, "invalid_argument",
                     fmt::format("events '{}' has an empty item; give e.g. \"register,promote\"", text.substr(0, 200))};
    }
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

}  // namespace

// Webhooks reach every model: the routes are registry-wide (refused to a token limited to some
// models). Adding and removing them is an admin's, as tokens are: both configure who learns what.
void add_webhook_routes(Routes& routes) {
  routes.add({.method = "GET",
              .path = "/api/v1/webhooks",
              .action = Action::read,
              .scope = Scope::registry,
              .summary = "The webhooks, as `modelreg --json webhook list`",
              .query = {{"all", "boolean", "Also removed webhooks"}},
              .handler = [](Call& call) {
                json out = json::array();
                for (const auto& w : store_of(call).webhooks(call.query_bool("all"))) out.push_back(to_json(w));
                call.reply(out);
              }});
  routes.add({.method = "GET",
              .path = "/api/v1/webhooks/{id}/deliveries",
              .action = Action::read,
              .scope = Scope::registry,
              .summary = "A webhook's delivery attempts, newest first, as `modelreg --json webhook deliveries ID`",
              .query = {{"limit", "integer", "At most this many (1 to 10000; default 50)"}},
              .handler = [](Call& call) {
                const auto limit = call.query_int("limit", 1, 10'000).value_or(50);
                json out = json::array();
                for (const auto& d : store_of(call).deliveries(webhook_id(call), static_cast<std::size_t>(limit))) {
                  out.push_back(to_json(d));
                }
                call.reply(out);
              }});
  routes.add({.method = "POST",
              .path = "/api/v1/webhooks",
              .action = Action::tokens,
              .scope = Scope::registry,
              .summary = "Add a webhook (201), as `modelreg --json webhook add`",
              .body = "application/json",
              .body_fields = {{"url", "string", "http:// or https:// URL without credentials; required"},
                              {"events", "string",
                               "Comma-separated kinds: register, promote, rollback, alias, archive, delete; required"},
                              {"secret_file", "string",
                               "Path, on the server, of the secret file (mode 600) that signs each delivery"}},
              .handler = [](Call& call) {
                const json body = call.body();
                NewWebhook spec;
                spec.url = call.field(body, "url").value_or("");
                const auto events = call.field(body, "events");
                if (!events) throw ApiError{400, "invalid_argument", "give the kinds: {\"events\": \"promote,rollback\"}"};
                spec.kinds = kinds_of(*events);
                if (const auto file = call.field(body, "secret_file")) spec.secret_file = *file;
                spec.actor = call.actor();
                call.reply(to_json(store_of(call).add_webhook(spec)), 201);
              }});
  routes.add({.method = "DELETE",
              .path = "/api/v1/webhooks/{id}",
              .action = Action::tokens,
              .scope = Scope::registry,
              .summary = "Remove a webhook (its delivery records stay), as `modelreg --json webhook remove`",
              .handler = [](Call& call) {
                call.reply(to_json(store_of(call).remove_webhook(webhook_id(call), Change{{}, call.actor()})));
              }});
}

}  // namespace modelreg::cli::api
