// `modelreg ui`'s REST API through HTTP: the route table against the OpenAPI document; every
// route refused without a token, with too low a role and with a token for another model, the
// registry unchanged; the happy path of each route with the token's name in the audit log; keyset
// pages across thousands of versions; a large streamed upload and one over the limit; bad JSON and
// bad parameters answered 400 naming the problem; the slowdown after repeated failures.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>

#include <algorithm>
#include <regex>
#include <set>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "process_harness.hpp"
#include "test_support.hpp"

using nlohmann::json;
using namespace modelreg;
using test::ServerProcess;

namespace {

// A server that closes a connection while a request is still being sent (a 413 before the body)
// must fail that request, not kill the test with SIGPIPE.
const bool kIgnoreSigpipe = [] {
  ::signal(SIGPIPE, SIG_IGN);
  return true;
}();

// `modelreg --db DB ARGS...`, its stdout (the command must succeed).
std::string run_out(const std::filesystem::path& db, std::vector<std::string> args) {
  args.insert(args.begin(), {test::modelreg_binary(), "--db", db.string()});
  const auto r = test::run_command({.args = args, .capture_out = true, .capture_err = true});
  REQUIRE_MESSAGE(r.status == 0, fmt::format("{}: {}", fmt::join(args, " "), r.err));
  return r.out;
}

std::string token(const std::filesystem::path& db, const std::string& name, const std::string& role,
                  const std::string& glob = "") {
  std::vector<std::string> args = {"token", "create", name, "--role", role};
  if (!glob.empty()) args.insert(args.end(), {"--model", glob});
  std::string out = run_out(db, args);
  REQUIRE(out.size() == 69);  // the token alone on its line
  out.pop_back();
  return out;
}

// A registry with fraud@1..3 (f1 0.8, 0.9, 0.85; fraud@1 archived, fraud@2 active, fraud@3 aliased
// champion) and pricing@1, and tokens of every role.
struct Fixture {
  test::TempDir dir;
  std::filesystem::path db = dir / "r.db";
  std::string admin, promoter, writer, reader, other;

  explicit Fixture(int versions = 3) {
    {
      Options o;
      o.default_actor = "setup";
      o.synchronous_full = false;
      Registry reg(db, o);
      for (int i = 1; i <= versions; ++i) {
        NewVersion s = test::spec("fraud");
        s.metrics = {{"f1", i == 1 ? 0.8 : i == 2 ? 0.9 : 0.85 + i * 1e-6}};
        s.tags = {{"team", i % 2 ? "red" : "blue"}};
        reg.register_bytes(s, fmt::format("fraud bytes {}", i));
      }
      reg.register_bytes(test::spec("pricing"), "pricing bytes");
      if (versions == 3) {
        reg.promote(test::ref("fraud@2"));
        reg.set_alias(test::ref("fraud@3"), "champion");
        reg.archive(test::ref("fraud@1"));
      }
    }
    admin = token(db, "root-admin", "admin");
    promoter = token(db, "rel-eng", "promoter");
    writer = token(db, "ci", "writer");
    reader = token(db, "viewer", "reader");
    other = token(db, "pricing-admin", "admin", "pricing*");
  }
};

struct Api {
  httplib::Client client;
  explicit Api(int port) : client("127.0.0.1", port) {
    client.set_read_timeout(60, 0);
    client.set_write_timeout(60, 0);
  }
  httplib::Result call(const std::string& method, const std::string& path, const std::string& bearer = "",
                       const std::string& body = "") {
    httplib::Headers h;
    if (!bearer.empty()) h.emplace("Authorization", "Bearer " + bearer);
    if (method == "GET") return client.Get(path, h);
    if (method == "DELETE") return client.Delete(path, h, body, "application/json");
    if (method == "PUT") return client.Put(path, h, body, "application/json");
    return client.Post(path, h, body, "application/json");
  }
};

json error_of(const httplib::Result& r) {
  REQUIRE(r);
  const json j = json::parse(r->body);
  REQUIRE(j.contains("error"));
  return j["error"];
}

// A new connection to 127.0.0.1:port with `request` sent on it.
int connect_and_send(int port, const std::string& request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size()));
  return fd;
}

// Sends `request` on a new connection and returns everything the server answers until it closes.
std::string raw_exchange(int port, const std::string& request) {
  const int fd = connect_and_send(port, request);
  std::string answer;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) answer.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  return answer;
}

// Sends `request` on a new connection and returns what the server answers up to the end of its
// first status line and headers (a `100 Continue`, or a final answer's head), then closes.
std::string first_answer_head(int port, const std::string& request) {
  const int fd = connect_and_send(port, request);
  std::string answer;
  char c;
  while (answer.find("\r\n\r\n") == std::string::npos && ::recv(fd, &c, 1, 0) == 1) answer += c;
  ::close(fd);
  return answer;
}

ServerProcess start_ui(const Fixture& f, std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"--db", f.db.string(), "ui", "--port", "0"};
  args.insert(args.end(), extra.begin(), extra.end());
  return ServerProcess(args, f.dir / "ui.log");
}

// The routes of the API, as a test states them: the document must list exactly these.
const std::set<std::pair<std::string, std::string>> kRoutes = {
    {"GET", "/api/v1/models"},
    {"GET", "/api/v1/models/{model}/history"},
    {"GET", "/api/v1/models/{model}/aliases"},
    {"GET", "/api/v1/models/{model}/versions"},
    {"POST", "/api/v1/models/{model}/versions"},
    {"GET", "/api/v1/models/{model}/versions/{version}"},
    {"DELETE", "/api/v1/models/{model}/versions/{version}"},
    {"GET", "/api/v1/models/{model}/compare"},
    {"GET", "/api/v1/models/{model}/versions/{version}/lineage"},
    {"GET", "/api/v1/models/{model}/versions/{version}/bytes"},
    {"POST", "/api/v1/models/{model}/versions/{version}/promote"},
    {"POST", "/api/v1/models/{model}/rollback"},
    {"PUT", "/api/v1/models/{model}/aliases/{alias}"},
    {"DELETE", "/api/v1/models/{model}/aliases/{alias}"},
    {"POST", "/api/v1/models/{model}/versions/{version}/tags"},
    {"POST", "/api/v1/models/{model}/versions/{version}/archive"},
    {"POST", "/api/v1/models/{model}/versions/{version}/unarchive"},
    {"POST", "/api/v1/gc"},
    {"POST", "/api/v1/sql"},
    {"GET", "/api/v1/tokens"},
    {"POST", "/api/v1/tokens"},
    {"DELETE", "/api/v1/tokens/{name}"},
    {"GET", "/api/v1/webhooks"},
    {"POST", "/api/v1/webhooks"},
    {"DELETE", "/api/v1/webhooks/{id}"},
    {"GET", "/api/v1/webhooks/{id}/deliveries"},
    {"GET", "/api/v1/whoami"},  // api_ui.cpp: what the web UI needs (tests/ui tests their answers)
    {"GET", "/api/v1/overview"},
    {"GET", "/api/v1/models/{model}/events"},
    {"GET", "/api/v1/models/{model}/versions/{version}/probe"},
    {"GET", "/api/v1/models/{model}/versions/{version}/neighbours"},
    {"GET", "/api/v1/openapi.json"},
};

std::string fill(std::string path) {
  for (auto [from, to] : {std::pair{"{model}", "fraud"}, {"{version}", "3"}, {"{alias}", "champion"}, {"{name}", "ci"}, {"{id}", "1"}}) {
    if (auto at = path.find(from); at != std::string::npos) path.replace(at, std::string(from).size(), to);
  }
  return path;
}

}  // namespace

TEST_CASE("the OpenAPI document lists exactly the served routes, each with its role") {
  Fixture f;
  ServerProcess ui = start_ui(f);
  Api api(ui.port());
  const auto r = api.call("GET", "/api/v1/openapi.json");
  REQUIRE(r);
  CHECK(r->status == 200);
  const json doc = json::parse(r->body);
  CHECK(doc["openapi"] == "3.0.3");
  std::set<std::pair<std::string, std::string>> listed;
  for (const auto& [path, ops] : doc["paths"].items()) {
    for (const auto& [method, op] : ops.items()) {
      std::string m = method;
      std::transform(m.begin(), m.end(), m.begin(), ::toupper);
      listed.insert({m, path});
      CHECK(op.contains("x-modelreg-role"));
      // Served: an admin's call reaches the route (whatever it answers, never "no such endpoint").
      const auto answer = api.call(m, fill(path) + (m == "DELETE" ? "?reason=probe" : ""), f.admin, m == "GET" || m == "DELETE" ? "" : "{");
      REQUIRE(answer);
      CHECK_MESSAGE(answer->body.find("no such endpoint") == std::string::npos, m, " ", path, ": ", answer->body);
    }
  }
  CHECK(listed == kRoutes);
  // Anything else under /api/ is a JSON 404.
  const auto missing = api.call("GET", "/api/v1/nothing", f.admin);
  CHECK(missing->status == 404);
  CHECK(error_of(missing)["code"] == "not_found");
  CHECK(api.call("POST", "/api/v1/models", f.admin, "{}")->status == 404);
}

TEST_CASE("every route refuses no token, too low a role and a token for another model, the registry unchanged") {
  Fixture f;
  ServerProcess ui = start_ui(f);
  Api api(ui.port());
  const std::string before = test::dump(f.db);
  for (const auto& [method, path] : kRoutes) {
    if (path == "/api/v1/openapi.json") continue;
    const std::string target = fill(path);
    CAPTURE(method);
    CAPTURE(path);
    const auto none = api.call(method, target);
    REQUIRE(none);
    CHECK(none->status == 401);
    CHECK(error_of(none)["code"] == "unauthenticated");
    CHECK(none->get_header_value("WWW-Authenticate") == "Bearer");
    const json doc_role = json::parse(api.call("GET", "/api/v1/openapi.json")->body)["paths"][path];
    std::string m = method;
    std::transform(m.begin(), m.end(), m.begin(), ::tolower);
    const std::string role = doc_role[m]["x-modelreg-role"];
    // Every token below the route's role is refused 403, naming the role needed.
    const std::vector<std::pair<std::string, std::string>> ranks = {
        {"reader", f.reader}, {"writer", f.writer}, {"promoter", f.promoter}, {"admin", f.admin}};
    for (const auto& [rank, tok] : ranks) {
      if (rank == role) break;
      const auto low = api.call(method, target, tok, "{}");
      REQUIRE(low);
      CHECK(low->status == 403);
      CHECK(error_of(low)["code"] == "forbidden");
      CHECK(error_of(low)["message"].get<std::string>().find("needs " + role) != std::string::npos);
    }
    // An admin limited to pricing*: fraud is not its model, and registry-wide calls are refused.
    const auto elsewhere = api.call(method, target, f.other, "{}");
    REQUIRE(elsewhere);
    if (path == "/api/v1/models" || path == "/api/v1/overview") {
      CHECK(elsewhere->status == 200);
      const json models = json::parse(elsewhere->body);
      REQUIRE(models.size() == 1);
      CHECK(models[0]["model"] == "pricing");
    } else if (path == "/api/v1/whoami") {
      CHECK(elsewhere->status == 200);
      CHECK(json::parse(elsewhere->body)["model_glob"] == "pricing*");
    } else {
      CHECK(elsewhere->status == 403);
      CHECK(error_of(elsewhere)["code"] == "forbidden");
    }
  }
  CHECK(test::dump(f.db) == before);
}

TEST_CASE("each route does its work as the CLI's --json says, and the audit log names the token") {
  Fixture f;
  ServerProcess ui = start_ui(f);
  Api api(ui.port());
  auto ok = [&](const std::string& method, const std::string& path, const std::string& tok, const std::string& body = "",
                int status = 200) {
    const auto r = api.call(method, path, tok, body);
    REQUIRE(r);
    CHECK_MESSAGE(r->status == status, method, " ", path, ": ", r->body);
    return json::parse(r->body);
  };
  // Reads: the same JSON as the CLI.
  CHECK(ok("GET", "/api/v1/models", f.reader) == json::parse(run_out(f.db, {"--json", "list"})));
  CHECK(ok("GET", "/api/v1/models/fraud/versions/2", f.reader) == json::parse(run_out(f.db, {"--json", "show", "fraud@2"})));
  CHECK(ok("GET", "/api/v1/models/fraud/history", f.reader) == json::parse(run_out(f.db, {"--json", "history", "fraud"})));
  CHECK(ok("GET", "/api/v1/models/fraud/aliases", f.reader) ==
        json::parse(run_out(f.db, {"--json", "alias", "list", "fraud"})));
  CHECK(ok("GET", "/api/v1/models/fraud/versions", f.reader) == json::parse(run_out(f.db, {"--json", "list", "fraud"})));
  CHECK(ok("GET", "/api/v1/models/fraud/versions?status=all&where=f1%3E%3D0.85&order_by=f1", f.reader) ==
        json::parse(run_out(f.db, {"--json", "list", "fraud", "--all", "--where", "f1>=0.85", "--order-by", "f1"})));
  CHECK(ok("GET", "/api/v1/models/fraud/versions?tag=team%3Dred&status=all", f.reader) ==
        json::parse(run_out(f.db, {"--json", "list", "fraud", "--all", "--tag", "team=red"})));
  CHECK(ok("GET", "/api/v1/models/fraud/compare?a=2&b=champion", f.reader) ==
        json::parse(run_out(f.db, {"--json", "compare", "fraud@2", "fraud@champion"})));
  CHECK(ok("GET", "/api/v1/models/fraud/versions/2/lineage", f.reader) ==
        json::parse(run_out(f.db, {"--json", "lineage", "fraud@2"})));
  {  // max_depth bounds the walk: the edges of depth 1 only
    json all = json::parse(run_out(f.db, {"--json", "lineage", "fraud@2"}));
    for (const char* side : {"ancestors", "descendants"}) {
      json near = json::array();
      for (const auto& e : all[side]) {
        if (e["depth"] == 1) near.push_back(e);
      }
      all[side] = near;
    }
    CHECK(ok("GET", "/api/v1/models/fraud/versions/2/lineage?max_depth=1", f.reader) == all);
  }
  CHECK(ok("POST", "/api/v1/sql", f.reader, R"({"sql": "SELECT count(*) AS n FROM versions"})") ==
        json::parse(run_out(f.db, {"--json", "sql", "SELECT count(*) AS n FROM versions"})));
  const auto bytes = api.call("GET", "/api/v1/models/fraud/versions/champion/bytes", f.reader);
  REQUIRE(bytes);
  CHECK(bytes->status == 200);
  CHECK(bytes->body == "fraud bytes 3");
  CHECK(bytes->get_header_value("Content-Type") == "application/octet-stream");

  // Writes, each by its token.
  httplib::MultipartFormDataItems parts = {
      {"metadata", R"({"metrics": {"f1": 0.95}, "notes": "from CI", "tags": {"run": "42"}, "parents": ["fraud@2"]})", "", "application/json"},
      {"file", "fraud bytes 4", "model.bin", "application/octet-stream"}};
  const auto reg = api.client.Post("/api/v1/models/fraud/versions", {{"Authorization", "Bearer " + f.writer}}, parts);
  REQUIRE(reg);
  CHECK_MESSAGE(reg->status == 201, reg->body);
  const json v4 = json::parse(reg->body);
  CHECK(v4["ref"] == "fraud@4");
  CHECK(v4["created_by"] == "ci");
  CHECK(v4["notes"] == "from CI");
  CHECK(ok("POST", "/api/v1/models/fraud/versions/4/tags", f.writer, R"({"set": {"stage": "canary"}, "remove": ["run"]})") ==
        json{{"ref", "fraud@4"}, {"tags", {{"stage", "canary"}}}});
  // The guard refuses a worse version (409), and the registry stays as it was.
  const std::string before_guard = test::dump(f.db);
  const auto refused = api.call("POST", "/api/v1/models/fraud/versions/3/promote", f.promoter,
                                R"({"reason": "try", "require_better": "f1"})");
  CHECK(refused->status == 409);
  CHECK(error_of(refused)["code"] == "conflict");
  CHECK(test::dump(f.db) == before_guard);
  CHECK(ok("POST", "/api/v1/models/fraud/versions/4/promote", f.promoter, R"({"reason": "better", "require_better": "f1"})") ==
        json{{"model", "fraud"}, {"alias", "active"}, {"from_version", 2}, {"to_version", 4}});
  CHECK(ok("POST", "/api/v1/models/fraud/rollback", f.promoter, R"({"reason": "oops"})") ==
        json{{"model", "fraud"}, {"alias", "active"}, {"from_version", 4}, {"to_version", 2}});
  CHECK(ok("PUT", "/api/v1/models/fraud/aliases/challenger", f.promoter, R"({"version": "4"})")["to_version"] == 4);
  CHECK(ok("DELETE", "/api/v1/models/fraud/aliases/challenger?reason=done", f.promoter) ==
        json{{"model", "fraud"}, {"alias", "challenger"}, {"removed", true}, {"from_version", 4}});
  CHECK(ok("POST", "/api/v1/models/fraud/versions/1/unarchive", f.promoter, R"({"reason": "look again"})") ==
        json{{"ref", "fraud@1"}, {"done", "unarchived"}});
  CHECK(ok("POST", "/api/v1/models/fraud/versions/1/archive", f.promoter, "") == json{{"ref", "fraud@1"}, {"done", "archived"}});
  CHECK(ok("POST", "/api/v1/gc", f.admin, R"({"dry_run": true})")["dry_run"] == true);
  CHECK(ok("DELETE", "/api/v1/models/fraud/versions/1?reason=old", f.admin) == json{{"ref", "fraud@1"}, {"done", "deleted"}});
  const json created = ok("POST", "/api/v1/tokens", f.admin, R"({"name": "bot", "role": "reader", "model_glob": "fraud"})", 201);
  CHECK(created["token"].get<std::string>().size() == 68);
  CHECK(created["model_glob"] == "fraud");
  CHECK(ok("GET", "/api/v1/models/fraud/versions/4", created["token"].get<std::string>())["ref"] == "fraud@4");
  CHECK(ok("GET", "/api/v1/tokens", f.admin) == json::parse(run_out(f.db, {"--json", "token", "list"})));
  CHECK(ok("DELETE", "/api/v1/tokens/bot", f.admin)["revoked_by"] == "root-admin");
  CHECK(api.call("GET", "/api/v1/models", created["token"].get<std::string>())->status == 401);

  // The audit log names each change's token.
  std::vector<std::pair<std::string, std::string>> actors;
  for (const auto& e : json::parse(run_out(f.db, {"--json", "history", "fraud"}))) {
    if (e["actor"] != "setup") actors.emplace_back(e["kind"], e["actor"]);
  }
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"register", "ci"},         {"tag", "ci"},           {"untag", "ci"},         {"promote", "rel-eng"},
      {"rollback", "rel-eng"},    {"alias_set", "rel-eng"}, {"alias_remove", "rel-eng"}, {"unarchive", "rel-eng"},
      {"archive", "rel-eng"},     {"delete", "root-admin"}};
  CHECK(actors == expected);
}

TEST_CASE("bad JSON, unknown fields and bad parameters are refused 400 naming the problem") {
  Fixture f;
  ServerProcess ui = start_ui(f);
  Api api(ui.port());
  const std::string before = test::dump(f.db);
  auto message = [&](const std::string& method, const std::string& path, const std::string& body = "") {
    const auto r = api.call(method, path, f.admin, body);
    REQUIRE(r);
    CHECK(r->status == 400);
    CHECK(error_of(r)["code"] == "invalid_argument");
    return error_of(r)["message"].get<std::string>();
  };
  CHECK(message("POST", "/api/v1/models/fraud/versions/3/promote", "{\"reason\": ").find("not valid JSON") != std::string::npos);
  CHECK(message("POST", "/api/v1/models/fraud/versions/3/promote", "[1]") == "the body must be a JSON object");
  CHECK(message("POST", "/api/v1/models/fraud/versions/3/promote", R"({"reasn": "x"})").find("unknown field 'reasn'") !=
        std::string::npos);
  CHECK(message("POST", "/api/v1/models/fraud/versions/3/promote", R"({"reason": 7})") == "field 'reason' must be a string");
  CHECK(message("POST", "/api/v1/models/fraud/versions/3/promote", R"({"require_better": "f1", "direction": "up"})") ==
        "direction 'up' is unknown; give higher or lower");
  CHECK(message("GET", "/api/v1/models/fraud/versions?limit=0").find("'limit' is '0'") != std::string::npos);
  CHECK(message("GET", "/api/v1/models/fraud/versions/2/lineage?max_depth=0").find("'max_depth' is '0'") !=
        std::string::npos);
  CHECK(message("GET", "/api/v1/models/fraud/versions?limit=abc").find("whole number from 1 to 1000") != std::string::npos);
  CHECK(message("GET", "/api/v1/models/fraud/versions?colour=red").find("unknown query parameter 'colour'") !=
        std::string::npos);
  CHECK(message("GET", "/api/v1/models/fraud/versions?limit=1&limit=2").find("given twice") != std::string::npos);
  CHECK(message("GET", "/api/v1/models/fraud/versions?where=f1%3E%3D").find("where:") != std::string::npos);
  CHECK(message("GET", "/api/v1/models/fraud/versions?cursor=x").find("cursor 'x' is malformed") != std::string::npos);
  CHECK(message("GET", "/api/v1/models/fraud/versions?status=gone").find("status 'gone'") != std::string::npos);
  CHECK(message("GET", "/api/v1/models/fraud/compare?a=1").find("?a=VERSION&b=VERSION") != std::string::npos);
  CHECK(message("GET", "/api/v1/models/bad%20name/history").find("not a valid model name") != std::string::npos);
  CHECK(message("POST", "/api/v1/sql", R"({"sql": "SELECT 1", "max_rows": 2000000})").find("only lower") != std::string::npos);
  CHECK(message("POST", "/api/v1/tokens", R"({"name": "x", "role": "boss"})").find("unknown role 'boss'") != std::string::npos);
  // Register: not multipart, a bad metadata part.
  CHECK(message("POST", "/api/v1/models/fraud/versions", "{}").find("multipart/form-data") != std::string::npos);
  const auto bad_meta = api.client.Post("/api/v1/models/fraud/versions", {{"Authorization", "Bearer " + f.admin}},
                                        httplib::MultipartFormDataItems{{"metadata", R"({"metrics": {"f1": "high"}})", "", ""},
                                                                        {"file", "x", "x.bin", ""}});
  REQUIRE(bad_meta);
  CHECK(bad_meta->status == 400);
  CHECK(error_of(bad_meta)["message"] == "metadata: metrics.f1 must be a number");
  // Library refusals keep their codes: an unknown version 404, a taken label 409, a failed SQL 400.
  CHECK(api.call("GET", "/api/v1/models/fraud/versions/99", f.admin)->status == 404);
  CHECK(api.call("GET", "/api/v1/models/nothing/history", f.admin)->status == 404);
  CHECK(api.call("POST", "/api/v1/sql", f.admin, R"({"sql": "DELETE FROM versions"})")->status == 400);
  CHECK(test::dump(f.db) == before);
}

TEST_CASE("pages of a model's versions follow a keyset cursor across thousands of versions") {
  Fixture f(3000);
  ServerProcess ui = start_ui(f);
  Api api(ui.port());
  for (const std::string order : {"", "&newest_first=true", "&order_by=f1", "&order_by=f1&ascending=true"}) {
    CAPTURE(order);
    std::vector<std::int64_t> seen;
    std::string next = "/api/v1/models/fraud/versions?limit=700" + order;
    int pages = 0;
    while (!next.empty()) {
      const auto r = api.call("GET", next, f.reader);
      REQUIRE(r);
      REQUIRE(r->status == 200);
      for (const auto& v : json::parse(r->body)) seen.push_back(v["version"]);
      const std::string link = r->get_header_value("Link");
      next = link.empty() ? "" : link.substr(1, link.find('>') - 1);
      if (!link.empty()) CHECK(!r->get_header_value("X-Next-Cursor").empty());
      if (!link.empty()) CHECK(next.find("&cursor=") != std::string::npos);
      ++pages;
    }
    CHECK(pages == 5);
    REQUIRE(seen.size() == 3000);
    if (order == "&newest_first=true") {
      // Two orders at once are refused, and nothing is listed.
      const auto both = api.call("GET", "/api/v1/models/fraud/versions?newest_first=true&order_by=f1", f.reader);
      REQUIRE(both);
      CHECK(both->status == 400);
      CHECK(error_of(both)["message"] == "newest_first orders by version number and order_by by a metric: give one of them");
    }
    std::vector<std::int64_t> sorted = seen;
    std::sort(sorted.begin(), sorted.end());
    CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());
    if (order.empty()) CHECK(seen == sorted);
    if (order == "&newest_first=true") CHECK(std::equal(seen.begin(), seen.end(), sorted.rbegin()));
    // By f1: the unpaged order of the library.
    if (order.find("order_by") != std::string::npos) {
      const json all = json::parse(run_out(f.db, {"--json", "list", "fraud", "--order-by", "f1",
                                                  order.find("ascending") != std::string::npos ? "--ascending" : "--all"}));
      std::vector<std::int64_t> expected;
      for (const auto& v : all) expected.push_back(v["version"]);
      CHECK(seen == expected);
    }
  }
}

TEST_CASE("a large upload is streamed, one over the limit is refused 413 before it is read") {
  Fixture f;
  ServerProcess ui = start_ui(f, {"--max-upload-bytes", "40000000", "--max-body-bytes", "65536"});
  Api api(ui.port());
  const std::string big = test::random_bytes(32u << 20, 7);
  const auto r = api.client.Post("/api/v1/models/fraud/versions", {{"Authorization", "Bearer " + f.writer}},
                                 httplib::MultipartFormDataItems{{"metadata", R"({"format": "onnx"})", "", ""},
                                                                 {"file", big, "big.onnx", "application/octet-stream"}});
  REQUIRE(r);
  CHECK_MESSAGE(r->status == 201, r->body);
  const json v = json::parse(r->body);
  CHECK(v["blob"]["raw_size"] == big.size());
  const auto back = api.call("GET", "/api/v1/models/fraud/versions/4/bytes", f.reader);
  REQUIRE(back);
  CHECK(back->body.size() == big.size());
  CHECK(back->body == big);
  // Over the limit: refused by its Content-Length alone, before any of the body is sent.
  const std::string before = test::dump(f.db);
  const std::string over = raw_exchange(ui.port(), fmt::format("POST /api/v1/models/fraud/versions HTTP/1.1\r\nHost: x\r\n"
                                                                  "Authorization: Bearer {}\r\nContent-Type: multipart/form-data; "
                                                                  "boundary=b\r\nContent-Length: 41000000\r\n\r\n",
                                                                  f.writer));
  CHECK(over.starts_with("HTTP/1.1 413 "));
  CHECK(over.find(R"({"error":{"code":"too_large","message":"request body over the limit of 40000000 bytes)") != std::string::npos);
  // A JSON body over --max-body-bytes is refused alike.
  const auto json_over = api.call("POST", "/api/v1/sql", f.reader, R"({"sql": ")" + std::string(70000, ' ') + "SELECT 1\"}");
  REQUIRE(json_over);
  CHECK(json_over->status == 413);
  CHECK(test::dump(f.db) == before);
}

TEST_CASE("a request whose token cannot make the call is refused before its body is read (no 100 Continue)") {
  Fixture f;
  ServerProcess ui = start_ui(f);
  const std::string before = test::dump(f.db);
  // An upload announced with Expect: 100-continue; not a byte of its body is sent.
  auto upload = [&](const std::string& authorization) {
    return raw_exchange(ui.port(), fmt::format("POST /api/v1/models/fraud/versions HTTP/1.1\r\nHost: x\r\n{}"
                                               "Content-Type: multipart/form-data; boundary=b\r\n"
                                               "Content-Length: 1000000\r\nExpect: 100-continue\r\n\r\n",
                                               authorization));
  };
  const std::string none = upload("");
  CHECK(none.starts_with("HTTP/1.1 401 "));
  CHECK(none.find("100 Continue") == std::string::npos);
  CHECK(none.find("WWW-Authenticate: Bearer") != std::string::npos);
  CHECK(none.find(R"("code":"unauthenticated")") != std::string::npos);
  const std::string unknown = upload("Authorization: Bearer mr_not_a_token\r\n");
  CHECK(unknown.starts_with("HTTP/1.1 401 "));
  CHECK(unknown.find(R"("code":"bad_token")") != std::string::npos);
  const std::string reader = upload(fmt::format("Authorization: Bearer {}\r\n", f.reader));
  CHECK(reader.starts_with("HTTP/1.1 403 "));
  CHECK(reader.find("needs writer or above") != std::string::npos);
  CHECK(reader.find("100 Continue") == std::string::npos);
  // A JSON body without Expect: refused as soon as its head arrives, not after waiting for the
  // body (which never comes: the old order answered 408 after the body timeout).
  const std::string promote = raw_exchange(ui.port(), "POST /api/v1/models/fraud/versions/3/promote HTTP/1.1\r\nHost: x\r\n"
                                                      "Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n");
  CHECK(promote.starts_with("HTTP/1.1 401 "));
  // A token that may upload gets its 100 Continue.
  const std::string writer = first_answer_head(
      ui.port(), fmt::format("POST /api/v1/models/fraud/versions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n"
                             "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 1000000\r\n"
                             "Expect: 100-continue\r\n\r\n",
                             f.writer));
  CHECK(writer.starts_with("HTTP/1.1 100 Continue"));
  CHECK(test::dump(f.db) == before);
}

TEST_CASE("anonymous reads only with --anonymous-read, and never writes") {
  Fixture f;
  ServerProcess ui = start_ui(f, {"--anonymous-read"});
  Api api(ui.port());
  CHECK(api.call("GET", "/api/v1/models/fraud/versions")->status == 200);
  CHECK(api.call("GET", "/api/v1/models/fraud/versions/2/bytes")->body == "fraud bytes 2");
  const auto write = api.call("POST", "/api/v1/models/fraud/versions/3/promote", "", "{}");
  CHECK(write->status == 401);
  CHECK(api.call("GET", "/api/v1/tokens")->status == 401);
}

TEST_CASE("repeated bad tokens from one address are slowed down, even for a good token next") {
  Fixture f;
  ServerProcess ui = start_ui(f);
  Api api(ui.port());
  const std::string before = test::dump(f.db);
  for (int i = 0; i < 5; ++i) {
    const auto r = api.call("GET", "/api/v1/models", "mrt_" + std::string(64, '0'));
    REQUIRE(r);
    CHECK(r->status == 401);
    CHECK(error_of(r)["code"] == "bad_token");
  }
  const auto held = api.call("GET", "/api/v1/models", f.admin);
  REQUIRE(held);
  CHECK(held->status == 429);
  CHECK(error_of(held)["code"] == "too_many_failures");
  CHECK(std::stoi(held->get_header_value("Retry-After")) >= 1);
  // Calls without a token are not authentication attempts: still 401, not 429.
  CHECK(api.call("GET", "/api/v1/models")->status == 401);
  CHECK(test::dump(f.db) == before);
}

TEST_CASE("with --tls-cert and --tls-key the API speaks HTTPS, and refuses plain HTTP on that port") {
  Fixture f;
  const auto cert = f.dir / "cert.pem", key = f.dir / "key.pem";
  const auto made = test::run_command({.args = {"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                                                key.string(), "-out", cert.string(), "-days", "1", "-subj", "/CN=127.0.0.1",
                                                "-addext", "subjectAltName=IP:127.0.0.1"},
                                       .capture_out = true,
                                       .capture_err = true});
  REQUIRE_MESSAGE(made.status == 0, made.err);
  // Only both files together, and files OpenSSL can use.
  const auto half = test::run_command({.args = {test::modelreg_binary(), "--db", f.db.string(), "ui", "--port", "0",
                                                "--tls-cert", cert.string()},
                                       .capture_err = true});
  CHECK(half.status == 2);
  CHECK(half.err.find("--tls-cert and --tls-key together") != std::string::npos);
  const auto swapped = test::run_command({.args = {test::modelreg_binary(), "--db", f.db.string(), "ui", "--port", "0",
                                                   "--tls-cert", key.string(), "--tls-key", key.string()},
                                          .capture_err = true});
  CHECK(swapped.status == 1);
  CHECK(swapped.err.find("cannot use '" + key.string() + "' as the TLS certificate") != std::string::npos);

  ServerProcess ui = start_ui(f, {"--tls-cert", cert.string(), "--tls-key", key.string()});
  httplib::SSLClient tls("127.0.0.1", ui.port());
  tls.set_ca_cert_path(cert.c_str());
  tls.enable_server_certificate_verification(true);
  const auto models = tls.Get("/api/v1/models", {{"Authorization", "Bearer " + f.reader}});
  REQUIRE(models);
  CHECK(models->status == 200);
  CHECK(json::parse(models->body) == json::parse(run_out(f.db, {"--json", "list"})));
  const auto bytes = tls.Get("/api/v1/models/fraud/versions/2/bytes", {{"Authorization", "Bearer " + f.reader}});
  REQUIRE(bytes);
  CHECK(bytes->body == "fraud bytes 2");
  const auto none = tls.Get("/api/v1/models");
  REQUIRE(none);
  CHECK(none->status == 401);
  // Plain HTTP gets no answer: the handshake fails and the connection closes.
  httplib::Client plain("127.0.0.1", ui.port());
  plain.set_read_timeout(10, 0);
  const auto refused = plain.Get("/api/v1/models", {{"Authorization", "Bearer " + f.reader}});
  CHECK_FALSE(refused);
}
