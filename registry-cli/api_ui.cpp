// The API's routes that the web UI (ui/, ui_assets.cpp) needs beyond the CLI's shapes: who the
// caller is and what their token may do (to show only the actions it allows), a page of a model's
// audit log newest first (the full history of a model with 100,000 versions is 100,000 events),
// every model with its aliases and last change in one call (the models page, polled), a version's
// probe, and the lineage a few generations around a version.
//
// The pages and the overview read the documented SQL views (README.md, "Views") through
// Registry::query, on its bounded read-only connection.
#include <cmath>
#include <limits>
#include <map>

#include <fmt/format.h>

#include "api.hpp"
#include "render.hpp"

namespace modelreg::cli::api {

using nlohmann::json;

namespace {

constexpr std::int64_t kDefaultEvents = 50;
constexpr std::int64_t kMaxEvents = 1000;
constexpr std::int64_t kDefaultDepth = 3;
constexpr std::int64_t kMaxDepth = 100;

// Model names are checked by Call::path ([A-Za-z0-9][A-Za-z0-9_.-]*), so they hold no quote;
// doubling quotes anyway keeps this literal right whatever reaches it.
std::string sql_literal(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    out += c;
    if (c == '\'') out += '\'';
  }
  return out + "'";
}

json cell(const SqlValue& v) { return to_json(v); }

// An event row of model_events (id, model, kind, version, from_version, to_version, actor,
// reason, at, details, alias) in the shape of `history --json`.
json event_row(const std::vector<SqlValue>& row) {
  return json{{"id", cell(row[0])},         {"model", cell(row[1])},  {"kind", cell(row[2])},   {"version", cell(row[3])},
              {"from_version", cell(row[4])}, {"to_version", cell(row[5])}, {"actor", cell(row[6])}, {"reason", cell(row[7])},
              {"at", cell(row[8])},           {"details", cell(row[9])}, {"alias", cell(row[10])}};
}

constexpr std::string_view kEventColumns =
    "id, model, kind, version, from_version, to_version, actor, reason, at, details, alias";

void whoami(Call& call) {
  const std::string header = call.request().get_header_value("Authorization");
  std::optional<TokenInfo> token;
  // The route's authentication already accepted this header (or there is none and reads are
  // anonymous); looking it up again gives its role and glob, which Call does not carry.
  if (header.size() > 7) token = TokenStore(call.registry()).authenticate(header.substr(7));
  if (!token) {
    call.reply({{"anonymous", true},
                {"name", nullptr},
                {"role", nullptr},
                {"model_glob", nullptr},
                {"may", {{"read", true}, {"write", false}, {"promote", false}, {"delete", false}}}});
    return;
  }
  const auto may = [&](Action a) { return static_cast<int>(token->role) >= static_cast<int>(required_role(a)); };
  call.reply({{"anonymous", false},
              {"name", token->name},
              {"role", std::string(to_string(token->role))},
              {"model_glob", json_or_null(token->model_glob)},
              {"may",
               {{"read", true}, {"write", may(Action::write)}, {"promote", may(Action::promote)}, {"delete", may(Action::delete_)}}}});
}

void events_page(Call& call) {
  const std::string model = call.path("model");
  const std::int64_t limit = call.query_int("limit", 1, kMaxEvents).value_or(kDefaultEvents);
  const auto before = call.query_int("before", 1, std::numeric_limits<std::int64_t>::max());
  VersionQuery exists;
  exists.limit = 1;
  exists.status = std::nullopt;
  call.registry().list_versions(model, exists);  // not_found for an unknown model
  const SqlResult r = call.registry().query(fmt::format("SELECT {} FROM model_events WHERE model = {}{} ORDER BY id DESC LIMIT {}",
                                                        kEventColumns, sql_literal(model),
                                                        before ? fmt::format(" AND id < {}", *before) : "", limit));
  json out = json::array();
  for (const auto& row : r.rows) out.push_back(event_row(row));
  if (static_cast<std::int64_t>(r.rows.size()) == limit) {
    call.response().set_header("X-Next-Cursor", out.back()["id"].dump());
  }
  call.reply(out);
}

void overview(Call& call) {
  Registry& reg = call.registry();
  std::map<std::string, json> aliases;
  for (const auto& a : reg.aliases()) aliases[a.model].push_back(to_json(a));
  std::map<std::string, json> last;
  const SqlResult r = reg.query(fmt::format(
      "SELECT {} FROM model_events WHERE id IN "
      "(SELECT (SELECT max(x.id) FROM events x WHERE x.model_id = m.id) FROM models m)", kEventColumns));
  for (const auto& row : r.rows) {
    json e = event_row(row);
    last[e["model"].get<std::string>()] = e;
  }
  json out = json::array();
  for (const auto& m : reg.list_models()) {
    if (!call.may_read(m.name)) continue;
    json j = to_json(m);
    j["aliases"] = aliases.count(m.name) ? aliases[m.name] : json::array();
    j["last_event"] = last.count(m.name) ? last[m.name] : json(nullptr);
    out.push_back(j);
  }
  call.reply(out);
}

// The version's validation probe (show's JSON leaves it out): its input rows and the outputs
// the model gave for them when it was saved; null for a version without one (opaque bytes).
void probe(Call& call) {
  const ModelVersion v = call.registry().get(call.ref());
  if (!v.probe) {
    call.reply({{"ref", v.ref_string()}, {"probe", nullptr}});
    return;
  }
  const Matrix& in = v.probe->inputs;
  json rows = json::array();
  for (std::size_t r = 0; r < in.rows(); ++r) {
    json row = json::array();
    for (const double x : in.row(r)) row.push_back(std::isfinite(x) ? json(x) : json(nullptr));  // NaN: a missing value
    rows.push_back(row);
  }
  const std::size_t per_row = in.rows() == 0 ? 0 : v.probe->outputs.size() / in.rows();
  json outputs = json::array();
  for (std::size_t r = 0; r < in.rows(); ++r) {
    json out = json::array();
    for (std::size_t k = 0; k < per_row; ++k) out.push_back(v.probe->outputs[r * per_row + k]);
    outputs.push_back(out);
  }
  call.reply({{"ref", v.ref_string()}, {"probe", {{"inputs", rows}, {"outputs", outputs}}}});
}

// The lineage within `depth` generations either way, in the shape of `lineage --json`: the
// version page draws this much (/lineage returns every generation: 100,000 in a long chain).
void neighbours(Call& call) {
  const int depth = static_cast<int>(call.query_int("depth", 1, kMaxDepth).value_or(kDefaultDepth));
  Registry& reg = call.registry();
  const ModelVersion v = reg.get(call.ref());
  const ModelRef exact = ModelRef::number(v.id.model, v.id.number);
  const auto ancestors = reg.ancestors(exact, depth);
  const auto descendants = reg.descendants(exact, depth);
  call.reply(lineage_json(v.ref_string(), &ancestors, &descendants));
}

}  // namespace

void add_ui_api_routes(Routes& routes) {
  routes.add({.method = "GET",
              .path = "/api/v1/whoami",
              .action = Action::read,
              .scope = Scope::filtered,
              .summary = "Who the caller is: the token's name, role and model glob, and which kinds of call it may make "
                         "(anonymous when reads need no token and none was sent)",
              .handler = whoami});
  routes.add({.method = "GET",
              .path = "/api/v1/overview",
              .action = Action::read,
              .scope = Scope::filtered,
              .summary = "Every model (those the caller may read) as in /api/v1/models, with its aliases and its last event",
              .handler = overview});
  routes.add({.method = "GET",
              .path = "/api/v1/models/{model}/events",
              .action = Action::read,
              .summary = "A page of the model's audit log, newest first, in the shape of `modelreg --json history`; the next "
                         "page's `before` is in X-Next-Cursor when the page is full",
              .query = {{"limit", "integer", "Events in a page, 1 to 1000 (default 50)"},
                        {"before", "integer", "Only events with a smaller id (the X-Next-Cursor of the previous page)"}},
              .handler = events_page});
  routes.add({.method = "GET",
              .path = "/api/v1/models/{model}/versions/{version}/probe",
              .action = Action::read,
              .summary = "The version's validation probe: {\"ref\", \"probe\": {\"inputs\": rows of feature values (null: "
                         "missing), \"outputs\": the outputs saved for each row}}, probe null for a version without one",
              .handler = probe});
  routes.add({.method = "GET",
              .path = "/api/v1/models/{model}/versions/{version}/neighbours",
              .action = Action::read,
              .summary = "The version's lineage within `depth` generations either way (default 3), in the shape of "
                         "`modelreg --json lineage`",
              .query = {{"depth", "integer", "Generations each way, 1 to 100 (default 3)"}},
              .handler = neighbours});
}

}  // namespace modelreg::cli::api
