// `modelreg serve` with many models: several named, --all, versions by alias or number, split,
// shadow, the repository extension and the memory bound — a real server process, real clients,
// promotions from other processes.
#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "modelreg/training.hpp"
#include "model_test_support.hpp"
#include "process_harness.hpp"
#include "test_support.hpp"

using nlohmann::json;
using namespace modelreg;

namespace {

using test::modelreg;
using test::ServerProcess;
using Clock = std::chrono::steady_clock;

struct Fixture {
  test::TempDir dir;
  std::filesystem::path db = dir / "r.db";
  TrainTestSplit data = test::small_fraud();

  // NAME@1..n, logistic regressions that differ.
  void versions(const std::string& name, int n) {
    Registry reg(db);
    for (int i = 1; i <= n; ++i) {
      auto m = train_model("logistic_regression", data.train, {{"C", fmt::format("{}", 0.02 * i)}});
      NewVersion spec;
      spec.model = name;
      reg.save_model(*m, spec, data.test.x);
    }
  }

  std::string infer_body(const std::optional<std::string>& id = std::nullopt) const {
    json flat = json::array();
    for (double v : data.test.x.row(0)) flat.push_back(v);
    json body = {{"inputs", json::array({{{"name", "input"}, {"shape", {1, data.test.n_features()}},
                                          {"datatype", "FP64"}, {"data", flat}}})}};
    if (id) body["id"] = *id;
    return body.dump();
  }
};

json get_json(httplib::Client& c, const std::string& path, int* status = nullptr) {
  auto r = c.Get(path.c_str());
  REQUIRE(r);
  if (status) *status = r->status;
  return json::parse(r->body);
}

json post_json(httplib::Client& c, const std::string& path, const std::string& body, int* status = nullptr) {
  auto r = c.Post(path.c_str(), body, "application/json");
  REQUIRE(r);
  if (status) *status = r->status;
  return json::parse(r->body);
}

// Waits (with a deadline, not a fixed sleep) until `done` holds for /status.
json wait_status(httplib::Client& c, const std::function<bool(const json&)>& done) {
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  json s;
  while (Clock::now() < deadline) {
    s = get_json(c, "/status");
    if (done(s)) return s;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  FAIL("condition not reached: ", s.dump());
  return s;
}

// The default slot's serving version of `model` in a /status answer (0: none or not served).
std::int64_t serving(const json& status, const std::string& model) {
  for (const auto& m : status["models"]) {
    if (m["model"] == model) {
      const auto& v = m["slots"][0]["serving_version"];
      return v.is_null() ? 0 : v.get<std::int64_t>();
    }
  }
  return 0;
}

const json* model_status(const json& status, const std::string& model) {
  for (const auto& m : status["models"]) {
    if (m["model"] == model) return &m;
  }
  return nullptr;
}

}  // namespace

TEST_CASE_FIXTURE(Fixture, "one server serves several models, each swapping on its own with zero failed requests") {
  versions("fraud", 3);
  versions("churn", 3);
  REQUIRE(modelreg({"--db", db.string(), "promote", "fraud@1"}) == 0);
  REQUIRE(modelreg({"--db", db.string(), "promote", "churn@1"}) == 0);
  ServerProcess server(db, "fraud", dir / "serve.log", {"churn"});
  httplib::Client c("127.0.0.1", server.port());
  wait_status(c, [](const json& s) { return serving(s, "fraud") == 1 && serving(s, "churn") == 1; });

  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::atomic<int> answered{0};
  std::mutex seen_mutex;
  std::map<std::string, std::set<std::string>> seen;  // model -> versions that answered
  std::vector<std::thread> clients;
  for (const std::string model : {"fraud", "churn"}) {
    clients.emplace_back([&, model] {
      httplib::Client client("127.0.0.1", server.port());
      while (!stop) {
        auto r = client.Post(fmt::format("/v2/models/{}/infer", model).c_str(), infer_body(), "application/json");
        if (!r || r->status != 200) {
          ++failures;
          continue;
        }
        ++answered;
        const auto j = json::parse(r->body);
        std::lock_guard lock(seen_mutex);
        seen[model].insert(j["model_version"].get<std::string>());
        if (j["model_name"] != model) ++failures;
      }
    });
  }
  // Each model moves on its own; the other keeps its version.
  for (int round = 0; round < 6; ++round) {
    const int f = 1 + (round + 1) % 3;
    REQUIRE(modelreg({"--db", db.string(), "promote", fmt::format("fraud@{}", f)}) == 0);
    const json s = wait_status(c, [&](const json& st) { return serving(st, "fraud") == f; });
    const int churn_now = static_cast<int>(serving(s, "churn"));
    const int ch = 1 + churn_now % 3;
    REQUIRE(modelreg({"--db", db.string(), "promote", fmt::format("churn@{}", ch)}) == 0);
    const json t = wait_status(c, [&](const json& st) { return serving(st, "churn") == ch; });
    CHECK(serving(t, "fraud") == f);
  }
  stop = true;
  for (auto& t : clients) t.join();
  CHECK(failures == 0);
  CHECK(answered > 0);
  CHECK(seen["fraud"] == std::set<std::string>{"1", "2", "3"});
  CHECK(seen["churn"] == std::set<std::string>{"1", "2", "3"});
  // Server readiness is that of every model; a model not served is 404.
  int status = 0;
  CHECK(get_json(c, "/v2/health/ready", &status)["ready"] == true);
  CHECK(status == 200);
  const json e = post_json(c, "/v2/models/other/infer", infer_body(), &status);
  CHECK(status == 404);
  CHECK(e["error"] == "model 'other' is not served here");
  // /predict must name the model when there are several.
  const json p = post_json(c, "/predict", R"({"instances": [[1]]})", &status);
  CHECK(status == 400);
  CHECK(p["error"].get<std::string>().find("/predict?model=NAME") != std::string::npos);
  auto metrics = c.Get("/metrics");
  REQUIRE(metrics);
  CHECK(metrics->body.find("modelreg_serving_version{model=\"churn\",alias=\"active\",version=\"\"}") != std::string::npos);
  CHECK(metrics->body.find("modelreg_model_requests_total{model=\"fraud\",alias=\"active\",version=\"3\"}") !=
        std::string::npos);
  CHECK(server.stop() == 0);
}

TEST_CASE_FIXTURE(Fixture, "--all serves models as they get an active version; the repository extension unloads and loads them") {
  versions("fraud", 2);
  ServerProcess server(db, "--all", dir / "serve.log");
  httplib::Client c("127.0.0.1", server.port());
  int status = 0;
  json ready = get_json(c, "/v2/health/ready", &status);
  CHECK(status == 400);
  CHECK(ready["reason"].get<std::string>().find("no model has a version holding 'active'") != std::string::npos);
  const json meta = get_json(c, "/v2/");
  CHECK(meta["extensions"] == json::array({"model_repository"}));

  REQUIRE(modelreg({"--db", db.string(), "promote", "fraud@2"}) == 0);
  wait_status(c, [](const json& s) { return serving(s, "fraud") == 2; });
  versions("late", 1);
  REQUIRE(modelreg({"--db", db.string(), "promote", "late@1"}) == 0);
  wait_status(c, [](const json& s) { return serving(s, "late") == 1; });
  CHECK(post_json(c, "/v2/models/late/infer", infer_body(), &status)["model_version"] == "1");
  CHECK(status == 200);

  json index = post_json(c, "/v2/repository/index", "", &status);
  CHECK(status == 200);
  CHECK(index == json::parse(R"([{"name":"fraud","state":"READY","reason":"","version":"2"},
                                 {"name":"late","state":"READY","reason":"","version":"1"}])"));
  // Unloaded: 404 for its requests, UNAVAILABLE in the index, not brought back by a new promotion.
  CHECK(post_json(c, "/v2/repository/models/late/unload", "", &status) == json::object());
  CHECK(status == 200);
  post_json(c, "/v2/models/late/infer", infer_body(), &status);
  CHECK(status == 404);
  versions("late", 1);
  REQUIRE(modelreg({"--db", db.string(), "promote", "late@2"}) == 0);
  const int polls = get_json(c, "/status")["polls"].get<int>();
  const json after = wait_status(c, [&](const json& s) { return s["polls"].get<int>() >= polls + 3; });
  CHECK(model_status(after, "late") == nullptr);
  index = post_json(c, "/v2/repository/index", R"({"ready": false})", &status);
  CHECK(index == json::parse(R"([{"name":"late","state":"UNAVAILABLE","reason":"unloaded"}])"));
  CHECK(post_json(c, "/v2/repository/models/late/load", "", &status) == json::object());
  CHECK(status == 200);
  CHECK(post_json(c, "/v2/models/late/infer", infer_body(), &status)["model_version"] == "2");
  // Unknown models and bad bodies.
  CHECK(post_json(c, "/v2/repository/models/ghost/load", "", &status)["error"] ==
        "model 'ghost' does not exist in the registry");
  CHECK(status == 404);
  post_json(c, "/v2/repository/models/ghost/unload", "", &status);
  CHECK(status == 404);
  post_json(c, "/v2/repository/index", "[1]", &status);
  CHECK(status == 400);
  CHECK(server.stop() == 0);
}

TEST_CASE_FIXTURE(Fixture, "versions by alias or number, a sticky split and a shadow, over HTTP") {
  versions("fraud", 3);
  REQUIRE(modelreg({"--db", db.string(), "promote", "fraud@1"}) == 0);
  REQUIRE(modelreg({"--db", db.string(), "alias", "set", "fraud@2", "challenger"}) == 0);
  REQUIRE(modelreg({"--db", db.string(), "alias", "set", "fraud@3", "candidate"}) == 0);
  ServerProcess server(db, "fraud", dir / "serve.log",
                       {"--split", "fraud=challenger:10", "--shadow", "fraud=candidate"});
  httplib::Client c("127.0.0.1", server.port());
  wait_status(c, [](const json& s) { return serving(s, "fraud") == 1; });
  int status = 0;
  // By alias and by number; model_version says which answered.
  json j = post_json(c, "/v2/models/fraud/versions/challenger/infer", infer_body(), &status);
  CHECK(status == 200);
  CHECK(j["model_version"] == "2");
  CHECK(j["parameters"]["alias"] == "challenger");
  CHECK(post_json(c, "/v2/models/fraud/versions/3/infer", infer_body())["model_version"] == "3");
  CHECK(get_json(c, "/v2/models/fraud/versions/candidate")["versions"] == json::array({"3"}));
  CHECK(get_json(c, "/v2/models/fraud/versions/2/ready", &status)["ready"] == true);
  CHECK(status == 200);
  j = post_json(c, "/v2/models/fraud/versions/9/infer", infer_body(), &status);
  CHECK(status == 404);
  CHECK(j["error"] == "model 'fraud' has no version 9");
  j = post_json(c, "/v2/models/fraud/versions/nosuch/infer", infer_body(), &status);
  CHECK(status == 404);
  // The split: ids stick to one version; the share is near 10%.
  std::map<std::string, std::string> first;
  int challenger = 0;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = fmt::format("req-{}", i);
    j = post_json(c, "/v2/models/fraud/infer", infer_body(id), &status);
    REQUIRE(status == 200);
    CHECK(j["id"] == id);
    first[id] = j["model_version"].get<std::string>();
    challenger += first[id] == "2";
  }
  CHECK(challenger > 60);
  CHECK(challenger < 140);
  for (int i = 0; i < 1000; i += 10) {
    const std::string id = fmt::format("req-{}", i);
    CHECK(post_json(c, "/v2/models/fraud/infer", infer_body(id))["model_version"] == first[id]);
  }
  // The shadow scored (all or most of) the default requests, off the response path.
  const json s = wait_status(c, [](const json& st) {
    const json& sh = (*model_status(st, "fraud"))["shadow"];
    return sh["scored"].get<int>() + sh["dropped"].get<int>() + sh["failed"].get<int>() >= 1100;
  });
  const json& shadow = (*model_status(s, "fraud"))["shadow"];
  CHECK(shadow["alias"] == "candidate");
  CHECK(shadow["scored"].get<int>() > 0);
  CHECK((*model_status(s, "fraud"))["split"] == json::parse(R"({"alias":"challenger","percent":10.0})"));
  auto metrics = c.Get("/metrics");
  REQUIRE(metrics);
  CHECK(metrics->body.find("modelreg_shadow_requests_total{model=\"fraud\",alias=\"candidate\",outcome=\"scored\"}") !=
        std::string::npos);
  CHECK(metrics->body.find("modelreg_shadow_difference_bucket{model=\"fraud\",alias=\"candidate\",le=\"+Inf\"}") !=
        std::string::npos);
  CHECK(metrics->body.find("modelreg_split_percent{model=\"fraud\",alias=\"challenger\"} 10") != std::string::npos);
  // Requested outputs, and an unknown one.
  json body = json::parse(infer_body("x"));
  body["outputs"] = json::array({{{"name", "probability"}}});
  j = post_json(c, "/v2/models/fraud/versions/1/infer", body.dump(), &status);
  CHECK(status == 200);
  REQUIRE(j["outputs"].size() == 1);
  CHECK(j["outputs"][0]["name"] == "probability");
  body["outputs"] = json::array({{{"name", "score"}}});
  j = post_json(c, "/v2/models/fraud/infer", body.dump(), &status);
  CHECK(status == 400);
  CHECK(j["error"] == "no output named 'score'; fraud has the outputs label, probability");
  CHECK(server.stop() == 0);
}

TEST_CASE_FIXTURE(Fixture, "--max-memory unloads the least recently used models and loads them again on request") {
  for (const char* m : {"a", "b", "c"}) {
    versions(m, 1);
    REQUIRE(modelreg({"--db", db.string(), "promote", fmt::format("{}@1", m)}) == 0);
  }
  Options read_only;
  read_only.read_only = true;
  const auto size = Registry(db, read_only).find(ModelRef::parse("a@1"))->blob.raw_size;
  ServerProcess server(db, "a", dir / "serve.log", {"b", "c", "--max-memory", std::to_string(2 * size + size / 2)});
  httplib::Client c("127.0.0.1", server.port());
  wait_status(c, [](const json& s) { return s["unloads"].get<int>() >= 1 && s["loads_queued"] == 0; });
  for (int round = 0; round < 3; ++round) {
    for (const char* m : {"a", "b", "c"}) {
      int status = 0;
      CHECK(post_json(c, fmt::format("/v2/models/{}/infer", m), infer_body(), &status)["model_version"] == "1");
      CHECK(status == 200);
    }
  }
  const json s = get_json(c, "/status");
  CHECK(s["memory_bytes"].get<std::uint64_t>() <= 2 * size + size / 2);
  CHECK(s["unloads"].get<int>() >= 3);
  int unloaded = 0;
  for (const auto& m : s["models"]) unloaded += m["slots"][0]["state"] == "unloaded";
  CHECK(unloaded == 1);
  // An unloaded model is still ready (it loads on the next request).
  CHECK(get_json(c, "/v2/health/ready")["ready"] == true);
  CHECK(server.stop() == 0);
}

TEST_CASE_FIXTURE(Fixture, "bad serving options are refused before the server starts") {
  versions("fraud", 1);
  struct Case {
    std::vector<std::string> args;
    int status;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"serve", "fraud", "--split", "fraud:10"}, 2, "write NAME=ALIAS:PERCENT"},
      {{"serve", "fraud", "--split", "fraud=b:ten"}, 2, "write NAME=ALIAS:PERCENT"},
      {{"serve", "fraud", "--split", "fraud=b:0"}, 1, "above 0 and below 100"},
      {{"serve", "fraud", "--split", "churn=b:5"}, 1, "model 'churn', which is not served"},
      {{"serve", "fraud", "--shadow", "fraud"}, 2, "write NAME=ALIAS"},
      {{"serve", "fraud", "--shadow", "fraud=active"}, 1, "another alias than active"},
      {{"serve", "fraud", "--max-memory", "lots"}, 2, "give a number of bytes"},
      {{"serve", "fraud", "--max-memory", "-5"}, 2, "give a number of bytes"},
      {{"serve"}, 2, "name the models to serve"},
      {{"serve", "fraud", "--load-threads", "0"}, 1, "--load-threads must be 1 to 64"},
  };
  for (const auto& k : cases) {
    CAPTURE(fmt::format("{}", fmt::join(k.args, " ")));
    test::Command cmd;
    cmd.args = {test::modelreg_binary(), "--db", db.string()};
    cmd.args.insert(cmd.args.end(), k.args.begin(), k.args.end());
    cmd.args.insert(cmd.args.end(), {"--port", "0"});
    cmd.capture_err = true;
    cmd.deadline = std::chrono::seconds(20);
    const auto r = test::run_command(cmd);
    CHECK(r.status == k.status);
    CHECK(r.err.find(k.message) != std::string::npos);
  }
}

TEST_CASE_FIXTURE(Fixture, "--no-change-notifications finds commits by polling alone") {
  versions("fraud", 2);
  REQUIRE(modelreg({"--db", db.string(), "promote", "fraud@1"}) == 0);
  ServerProcess server(db, "fraud", dir / "serve.log", {"--no-change-notifications"});
  httplib::Client c("127.0.0.1", server.port());
  json s = wait_status(c, [](const json& st) { return serving(st, "fraud") == 1; });
  CHECK(s["change_notifications"] == false);
  REQUIRE(modelreg({"--db", db.string(), "promote", "fraud@2"}) == 0);
  s = wait_status(c, [](const json& st) { return serving(st, "fraud") == 2; });
  CHECK(s["change_wakeups"] == 0);
  CHECK(server.stop() == 0);
}
