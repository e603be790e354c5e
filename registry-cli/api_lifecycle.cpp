// The API's changes of state: promote (with the guard), rollback, aliases (set, remove), tags,
// archive, unarchive, delete and gc. Each is one library call with the token's name as the actor;
// the answers are the shapes of the same commands with --json (render.hpp).
#include <fmt/format.h>

#include "api.hpp"
#include "render.hpp"

namespace modelreg::cli::api {

using nlohmann::json;

namespace {

ApiError bad(std::string message) { return ApiError{400, "invalid_argument", std::move(message)}; }

const std::vector<Param> kGuardFields = {
    {"reason", "string", "Why (recorded in the audit log)"},
    {"require_better", "string", "Refuse (409) unless this metric is at least as good as the current version's"},
    {"direction", "string", "Which way require_better's metric improves: higher or lower (default: known metrics)"}};

AliasOptions guard_options(const Call& call, const json& body) {
  AliasOptions o;
  o.reason = call.field(body, "reason").value_or("");
  o.actor = call.actor();
  o.require_better = call.field(body, "require_better");
  if (const auto d = call.field(body, "direction")) {
    if (*d == "higher") {
      o.direction = MetricDirection::higher_is_better;
    } else if (*d == "lower") {
      o.direction = MetricDirection::lower_is_better;
    } else {
      throw bad(fmt::format("direction '{}' is unknown; give higher or lower", d->substr(0, 40)));
    }
    if (!o.require_better) throw bad("direction says which way require_better's metric improves; give require_better too");
  }
  return o;
}

Change change_of(const Call& call, std::optional<std::string> reason) { return Change{reason.value_or(""), call.actor()}; }

using ChangeFn = void (Registry::*)(const ModelRef&, const Change&);

// archive, unarchive: a POST with {"reason"}; delete: a DELETE with ?reason=.
std::function<void(Call&)> change_handler(ChangeFn fn, std::string done) {
  return [fn, done](Call& call) {
    const auto reason = call.request().method == "DELETE" ? call.query("reason") : call.field(call.body(), "reason");
    Registry& reg = call.registry();
    const std::string exact = reg.get(call.ref()).ref_string();
    (reg.*fn)(ModelRef::parse(exact), change_of(call, reason));
    call.reply(change_json(exact, done));
  };
}

}  // namespace

void add_lifecycle_routes(Routes& routes) {
  routes.add({.method = "POST",
              .path = "/api/v1/models/{model}/versions/{version}/promote",
              .action = Action::promote,
              .summary = "Make the version active (its bytes verified first), with an optional guard; as `modelreg --json "
                         "promote`",
              .body = "application/json",
              .body_fields = kGuardFields,
              .handler = [](Call& call) {
                const AliasOptions o = guard_options(call, call.body());
                call.reply(to_json(call.registry().promote(call.ref(), o)));
              }});
  routes.add({.method = "POST",
              .path = "/api/v1/models/{model}/rollback",
              .action = Action::promote,
              .summary = "Point an alias (default active) back where it pointed before, or at `to`; as `modelreg --json "
                         "rollback`",
              .body = "application/json",
              .body_fields = {{"reason", "string", "Why (recorded in the audit log)"},
                              {"to", "string", "Roll back to this version (number, label or alias) instead"},
                              {"alias", "string", "The alias to roll back (default active)"}},
              .handler = [](Call& call) {
                const json body = call.body();
                const std::string model = call.path("model");
                RollbackOptions o;
                o.reason = call.field(body, "reason").value_or("");
                o.actor = call.actor();
                if (const auto to = call.field(body, "to")) o.to = ModelRef::parse(model + "@" + *to);
                if (const auto alias = call.field(body, "alias")) o.alias = *alias;
                call.reply(to_json(call.registry().rollback(model, o)));
              }});
  routes.add({.method = "PUT",
              .path = "/api/v1/models/{model}/aliases/{alias}",
              .action = Action::promote,
              .summary = "Point an alias at a version, with an optional guard; as `modelreg --json alias set`",
              .body = "application/json",
              .body_fields = [] {
                auto fields = kGuardFields;
                fields.insert(fields.begin(), {"version", "string", "The version (number, label or alias); required"});
                return fields;
              }(),
              .handler = [](Call& call) {
                const json body = call.body();
                const auto version = call.field(body, "version");
                if (!version) throw bad("give the version the alias will point at: {\"version\": \"7\"}");
                const AliasOptions o = guard_options(call, body);
                const ModelRef ref = ModelRef::parse(call.path("model") + "@" + *version);
                call.reply(to_json(call.registry().set_alias(ref, call.path("alias"), o)));
              }});
  routes.add({.method = "DELETE",
              .path = "/api/v1/models/{model}/aliases/{alias}",
              .action = Action::promote,
              .summary = "Remove an alias (not active); as `modelreg --json alias remove`",
              .query = {{"reason", "string", "Why (recorded in the audit log)"}},
              .handler = [](Call& call) {
                const std::string model = call.path("model"), alias = call.path("alias");
                const std::int64_t was = call.registry().remove_alias(model, alias, change_of(call, call.query("reason")));
                call.reply(alias_removed_json(model, alias, was));
              }});
  routes.add({.method = "POST",
              .path = "/api/v1/models/{model}/versions/{version}/tags",
              .action = Action::write,
              .summary = "Set and remove tags in one change (all or nothing); as `modelreg --json tag`",
              .body = "application/json",
              .body_fields = {{"set", "object", "Tags to set: {\"KEY\": \"VALUE\"}"},
                              {"remove", "array", "Tag keys to remove"},
                              {"reason", "string", "Why (recorded in the audit log)"}},
              .handler = [](Call& call) {
                const json body = call.body();
                std::map<std::string, std::string> set;
                std::vector<std::string> remove;
                if (const auto it = body.find("set"); it != body.end()) {
                  if (!it->is_object()) throw bad("field 'set' must be an object of KEY: VALUE strings");
                  for (const auto& [k, v] : it->items()) {
                    if (!v.is_string()) throw bad(fmt::format("tag '{}' must have a string value", k));
                    set[k] = v.get<std::string>();
                  }
                }
                if (const auto it = body.find("remove"); it != body.end()) {
                  if (!it->is_array()) throw bad("field 'remove' must be an array of tag keys");
                  for (const auto& k : *it) {
                    if (!k.is_string()) throw bad("field 'remove' must be an array of tag keys");
                    remove.push_back(k.get<std::string>());
                  }
                }
                if (set.empty() && remove.empty()) throw bad("give tags to set ({\"set\": {...}}) or to remove ({\"remove\": [...]})");
                Registry& reg = call.registry();
                const ModelVersion v = reg.get(call.ref());
                const ModelRef exact = ModelRef::number(v.id.model, v.id.number);
                reg.set_tags(exact, set, remove, change_of(call, call.field(body, "reason")));
                call.reply(tags_json(reg.get(exact)));
              }});
  routes.add({.method = "POST",
              .path = "/api/v1/models/{model}/versions/{version}/archive",
              .action = Action::promote,
              .summary = "Archive a version; as `modelreg --json archive`",
              .body = "application/json",
              .body_fields = {{"reason", "string", "Why (recorded in the audit log)"}},
              .handler = change_handler(&Registry::archive, "archived")});
  routes.add({.method = "POST",
              .path = "/api/v1/models/{model}/versions/{version}/unarchive",
              .action = Action::promote,
              .summary = "Make an archived version ready again; as `modelreg --json unarchive`",
              .body = "application/json",
              .body_fields = {{"reason", "string", "Why (recorded in the audit log)"}},
              .handler = change_handler(&Registry::unarchive, "unarchived")});
  routes.add({.method = "DELETE",
              .path = "/api/v1/models/{model}/versions/{version}",
              .action = Action::delete_,
              .summary = "Delete an archived version (its number is never reused); as `modelreg --json delete`",
              .query = {{"reason", "string", "Why (recorded in the audit log)"}},
              .handler = change_handler(&Registry::delete_version, "deleted")});
  routes.add({.method = "POST",
              .path = "/api/v1/gc",
              .action = Action::delete_,
              .scope = Scope::registry,
              .summary = "Delete archived versions nothing needs and unreferenced blobs; as `modelreg --json gc`",
              .body = "application/json",
              .body_fields = {{"dry_run", "boolean", "Report what would be removed, remove nothing"},
                              {"include_rollback_history", "boolean", "Also archived versions an alias's history names"},
                              {"reason", "string", "Why (recorded in the audit log)"}},
              .handler = [](Call& call) {
                const json body = call.body();
                GcOptions o;
                o.dry_run = call.bool_field(body, "dry_run").value_or(false);
                o.delete_archived = true;
                o.include_rollback_history = call.bool_field(body, "include_rollback_history").value_or(false);
                o.reason = call.field(body, "reason").value_or("");
                o.actor = call.actor();
                call.reply(to_json(call.registry().gc(o)));
              }});
}

}  // namespace modelreg::cli::api
