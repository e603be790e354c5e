// `modelreg serve`, end to end: a real server process on 127.0.0.1 (a free port), real HTTP
// clients, promotions from other processes.
#include <signal.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <sstream>
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

// The server's options in these tests: a 100 kB request limit unless told otherwise.
std::vector<std::string> serve_options(const std::string& max_body = "100000", std::vector<std::string> extra = {}) {
  extra.insert(extra.begin(), {"--max-body-bytes", max_body});
  return extra;
}

struct Fixture {
  test::TempDir dir;
  std::filesystem::path db = dir / "r.db";
  TrainTestSplit data = test::small_fraud();

  Fixture() {
    Registry reg(db);
    for (int i = 1; i <= 4; ++i) {
      auto m = train_model("logistic_regression", data.train, {{"C", fmt::format("{}", 0.02 * i)}});
      NewVersion spec;
      spec.model = "fraud";
      reg.save_model(*m, spec, data.test.x);
    }
  }

  json row(std::size_t r = 0) const {
    auto span = data.test.x.row(r);
    return json(std::vector<double>(span.begin(), span.end()));
  }
  std::string infer_body(std::size_t rows = 1, const char* datatype = "FP64") const {
    json flat = json::array();
    for (std::size_t r = 0; r < rows; ++r) {
      for (double v : data.test.x.row(r)) flat.push_back(v);
    }
    return json{{"inputs", json::array({{{"name", "input"}, {"shape", {rows, data.test.n_features()}},
                                         {"datatype", datatype}, {"data", flat}}})}}
        .dump();
  }
};

json get_json(httplib::Client& c, const std::string& path, int* status = nullptr) {
  auto r = c.Get(path.c_str());
  REQUIRE(r);
  if (status) *status = r->status;
  return json::parse(r->body);
}

// Waits (with a deadline, not a fixed sleep) until /status satisfies `done`.
json wait_status(httplib::Client& c, const std::function<bool(const json&)>& done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  json s;
  while (std::chrono::steady_clock::now() < deadline) {
    s = get_json(c, "/status");
    if (done(s)) return s;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  FAIL("condition not reached: ", s.dump());
  return s;
}

}  // namespace

TEST_CASE_FIXTURE(Fixture, "the server is not ready until a promotion, then answers every endpoint") {
  ServerProcess server(db, "fraud", dir / "serve.log", serve_options());
  httplib::Client c("127.0.0.1", server.port());
  int status = 0;
  CHECK(get_json(c, "/v2/health/live", &status)["live"] == true);
  CHECK(status == 200);
  CHECK(get_json(c, "/v2/health/ready", &status)["ready"] == false);
  CHECK(status == 400);
  CHECK(get_json(c, "/v2/models/fraud/ready", &status)["ready"] == false);
  CHECK(status == 400);
  auto r = c.Post("/v2/models/fraud/infer", infer_body(), "application/json");
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK(json::parse(r->body)["error"].get<std::string>().find("not ready") != std::string::npos);

  REQUIRE(modelreg({"--db", db.string(), "promote", "fraud@2"}) == 0);
  wait_status(c, [](const json& s) { return s["serving_version"] == 2; });
  CHECK(get_json(c, "/v2/health/ready", &status)["ready"] == true);
  CHECK(status == 200);
  CHECK(get_json(c, "/v2")["name"] == "modelreg");
  auto meta = get_json(c, "/v2/models/fraud");
  CHECK(meta["versions"] == json::array({"2"}));
  CHECK(meta["inputs"][0]["shape"][1] == 10);
  CHECK(meta["outputs"][1]["name"] == "probability");

  Registry reg(db, [] { Options o; o.read_only = true; return o; }());
  const auto expected = reg.load_model(ModelRef::parse("fraud@2")).model->predict_proba(data.test.x.view().slice(0, 3));
  for (const char* type : {"FP64", "FP32"}) {
    CAPTURE(type);
    r = c.Post("/v2/models/fraud/infer", infer_body(3, type), "application/json");
    REQUIRE(r);
    REQUIRE(r->status == 200);
    auto j = json::parse(r->body);
    CHECK(j["model_version"] == "2");
    CHECK(j["outputs"][0]["name"] == "label");
    CHECK(j["outputs"][1]["shape"] == json::array({3}));
    for (int i = 0; i < 3; ++i) {
      if (std::string(type) == "FP64") CHECK(j["outputs"][1]["data"][i].get<double>() == expected[static_cast<std::size_t>(i)]);
      else CHECK(j["outputs"][1]["data"][i].get<double>() == doctest::Approx(expected[static_cast<std::size_t>(i)]).epsilon(1e-5));
    }
  }
  r = c.Post("/v2/models/fraud/versions/2/infer", infer_body(), "application/json");
  REQUIRE(r);
  CHECK(r->status == 200);
  r = c.Post("/v2/models/fraud/versions/1/infer", infer_body(), "application/json");
  REQUIRE(r);
  CHECK(r->status == 409);
  r = c.Post("/predict", json{{"instances", {row(0), row(1)}}}.dump(), "application/json");
  REQUIRE(r);
  REQUIRE(r->status == 200);
  auto p = json::parse(r->body);
  CHECK(p["model_version"] == 2);
  CHECK(p["probabilities"][0].get<double>() == expected[0]);
  CHECK(p["predictions"].size() == 2);

  auto s = get_json(c, "/status");
  CHECK(s["ready"] == true);
  CHECK(s["swaps"] == 1);
  CHECK(s["requests_served"].get<int>() >= 8);
  auto metrics = c.Get("/metrics");
  REQUIRE(metrics);
  CHECK(metrics->body.find("modelreg_serving_version 2") != std::string::npos);
  CHECK(metrics->body.find("modelreg_swaps_total 1") != std::string::npos);
  CHECK(metrics->body.find("modelreg_inference_seconds_bucket{le=\"+Inf\"}") != std::string::npos);
  CHECK(metrics->body.find("modelreg_http_requests_total{route=\"infer\",outcome=\"ok\"}") != std::string::npos);
  CHECK(server.stop() == 0);
}

TEST_CASE_FIXTURE(Fixture, "bad requests get a 4xx JSON error naming the problem and the server keeps serving") {
  REQUIRE(modelreg({"--db", db.string(), "promote", "fraud@1"}) == 0);
  ServerProcess server(db, "fraud", dir / "serve.log", serve_options());
  httplib::Client c("127.0.0.1", server.port());
  wait_status(c, [](const json& s) { return s["serving_version"] == 1; });
  const std::string ten_zeros = "[0,0,0,0,0,0,0,0,0,0]";
  const std::vector<std::tuple<std::string, std::string, int, std::string>> bad = {
      {"/v2/models/fraud/infer", "{not json", 400, "malformed JSON"},
      {"/v2/models/fraud/infer", "{}", 400, "exactly one input"},
      {"/v2/models/fraud/infer", R"({"inputs":[{"name":"x","shape":[1,3],"datatype":"FP64","data":[1,2,3]}]})", 400,
       "wrong feature count"},
      {"/v2/models/fraud/infer", R"({"inputs":[{"name":"x","shape":[1,10],"datatype":"FP64","data":[1,2,3]}]})", 400,
       "needs 10 values"},
      {"/v2/models/fraud/infer",
       R"({"inputs":[{"name":"x","shape":[1,10],"datatype":"FP64","data":[1,2,"three",4,5,6,7,8,9,10]}]})", 400,
       "not a number"},
      {"/v2/models/fraud/infer", R"({"inputs":[{"name":"x","shape":[1,10],"datatype":"INT8","data":)" + ten_zeros + "}]}",
       400, "datatype 'INT8'"},
      {"/v2/models/ghost/infer", infer_body(), 404, "unknown model 'ghost'"},
      {"/predict", R"({"rows": []})", 400, "instances"},
      {"/predict", R"({"instances": [[1,2],[1,2,3]]})", 400, "instance 1 has 3 values"},
      {"/predict", R"({"instances": [[1,2]]})", 400, "expected 10 features per row"},
      {"/predict", "{\"instances\": [" + std::string(200'000, ' ') + "]}", 413, "over the limit"},
      {"/no/such/path", "{}", 404, "no such endpoint"},
  };
  for (const auto& [path, body, status, needle] : bad) {
    CAPTURE(path);
    CAPTURE(needle);
    auto r = c.Post(path.c_str(), body, "application/json");
    REQUIRE(r);
    CHECK(r->status == status);
    const auto j = json::parse(r->body);
    CHECK(j["error"].get<std::string>().find(needle) != std::string::npos);
    // A good request right after each bad one.
    auto good = c.Post("/v2/models/fraud/infer", infer_body(), "application/json");
    REQUIRE(good);
    CHECK(good->status == 200);
  }
  CHECK(get_json(c, "/status")["ready"] == true);
  CHECK(server.stop() == 0);
}

TEST_CASE_FIXTURE(Fixture, "zero failed requests while another process promotes back and forth 100 times") {
  REQUIRE(modelreg({"--db", db.string(), "promote", "fraud@1"}) == 0);
  ServerProcess server(db, "fraud", dir / "serve.log", serve_options());
  httplib::Client control("127.0.0.1", server.port());
  wait_status(control, [](const json& s) { return s["serving_version"] == 1; });

  constexpr int kPromotions = 100;
  // Epoch e begins just before the promotion to target(e) (epoch 0: version 1 serving); the next
  // epoch begins only after the server has answered with target(e).
  std::atomic<int> epoch{0};
  auto target = [](int e) { return e % 2 == 0 ? 1 : 2; };
  std::atomic<bool> done{false};
  std::atomic<long> requests{0}, failures{0}, unexpected_versions{0}, went_back{0};
  std::mutex failure_mutex;
  std::vector<std::string> failure_log;  // the first few failures, to say what went wrong
  const std::string body = infer_body();
  std::vector<std::thread> clients;
  // Clients stop and are joined however this test ends (a failed REQUIRE must not leave them running).
  struct Joiner {
    std::atomic<bool>& done;
    std::vector<std::thread>& threads;
    ~Joiner() {
      done = true;
      for (auto& t : threads) {
        if (t.joinable()) t.join();
      }
    }
  } joiner{done, clients};
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&] {
      httplib::Client c("127.0.0.1", server.port());
      c.set_keep_alive(true);
      c.set_tcp_nodelay(true);
      int current_epoch = -1;
      bool seen_new = false;
      while (!done) {
        const int before = epoch.load();
        auto r = c.Post("/v2/models/fraud/infer", body, "application/json");
        const int after = epoch.load();
        ++requests;
        if (!r || r->status != 200) {
          if (failures++ < 5) {
            std::lock_guard lock(failure_mutex);
            failure_log.push_back(r ? fmt::format("HTTP {}: {}", r->status, r->body)
                                    : fmt::format("no response: {}", httplib::to_string(r.error())));
          }
          continue;
        }
        const int v = std::stoi(json::parse(r->body)["model_version"].get<std::string>());
        if (v != 1 && v != 2) ++unexpected_versions;
        if (before != after) continue;  // a promotion happened mid-request: either answer is right
        if (before != current_epoch) {
          current_epoch = before;
          seen_new = false;
        }
        if (v == target(before)) {
          seen_new = true;
        } else if (seen_new) {
          ++went_back;  // saw the new version, then the old one again
        }
        // A 0.1 ms think time: thousands of requests per swap still, without starving the
        // promoting process of CPU on a 2-core machine (or under the sanitizers).
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
    });
  }
  for (int e = 1; e <= kPromotions; ++e) {
    epoch = e;
    REQUIRE(modelreg({"--db", db.string(), "promote", fmt::format("fraud@{}", target(e))}) == 0);
    wait_status(control, [&](const json& s) { return s["serving_version"] == target(e); });
  }
  done = true;
  for (auto& t : clients) t.join();
  MESSAGE(requests.load(), " requests across ", kPromotions, " swaps");
  for (const auto& f : failure_log) MESSAGE("failed request: ", f);
  if (failures != 0) {
    std::ifstream log(dir / "serve.log");
    MESSAGE("server log:\n", std::string(std::istreambuf_iterator<char>(log), {}));
  }
  CHECK(failures == 0);
  CHECK(unexpected_versions == 0);
  CHECK(went_back == 0);
  CHECK(requests > 8 * kPromotions);
  const auto s = get_json(control, "/status");
  CHECK(s["swaps"] == kPromotions + 1);
  CHECK(s["load_failures"] == 0);
  CHECK(server.stop() == 0);
}

TEST_CASE_FIXTURE(Fixture, "a promoted version that fails to load or validate never replaces the serving one") {
  REQUIRE(modelreg({"--db", db.string(), "promote", "fraud@1"}) == 0);
  ServerProcess server(db, "fraud", dir / "serve.log", serve_options());
  httplib::Client c("127.0.0.1", server.port());
  wait_status(c, [](const json& s) { return s["serving_version"] == 1; });
  {
    // fraud@2's stored bytes are damaged; fraud@3's probe no longer matches.
    test::flip_chunk_byte(db, test::first_chunk_of_version(2), 0, 0x55);
    auto d = test::raw(db);
    d.exec("DROP TRIGGER probes_immutable");
    d.exec("UPDATE probes SET outputs = zeroblob(length(outputs)) WHERE version_id = (SELECT id FROM versions WHERE number = 3)");
  }
  for (int bad : {2, 3}) {
    CAPTURE(bad);
    REQUIRE(modelreg({"--db", db.string(), "promote", fmt::format("fraud@{}", bad)}) == 0);
    const auto s = wait_status(c, [&](const json& st) {
      return st["desired_version"] == bad && st["load_failures"].get<int>() >= bad - 1;
    });
    CHECK(s["serving_version"] == 1);
    CHECK(s["last_error"].get<std::string>().find(fmt::format("fraud@{}", bad)) != std::string::npos);
    int status = 0;
    CHECK(get_json(c, "/v2/health/ready", &status)["ready"] == true);
    CHECK(status == 200);
    auto r = c.Post("/v2/models/fraud/infer", infer_body(), "application/json");
    REQUIRE(r);
    CHECK(json::parse(r->body)["model_version"] == "1");
  }
  auto metrics = c.Get("/metrics");
  REQUIRE(metrics);
  CHECK(metrics->body.find("modelreg_load_failures_total 0") == std::string::npos);
  CHECK(metrics->body.find("modelreg_desired_version 3") != std::string::npos);
  REQUIRE(modelreg({"--db", db.string(), "promote", "fraud@4"}) == 0);
  wait_status(c, [](const json& s) { return s["serving_version"] == 4; });
  CHECK(server.stop() == 0);
  std::ifstream log(dir / "serve.log");
  std::stringstream text;
  text << log.rdbuf();
  CHECK(text.str().find("failed to load fraud@2") != std::string::npos);
  CHECK(text.str().find("swapped fraud@1 -> fraud@4") != std::string::npos);
}

TEST_CASE_FIXTURE(Fixture, "serve refuses a missing database, an unknown option and a taken port") {
  CHECK(modelreg({"--db", (dir / "missing.db").string(), "serve", "fraud", "--port", "0"}) == 1);
  CHECK(modelreg({"--db", db.string(), "serve", "fraud", "--port", "70000"}) == 1);
  CHECK(modelreg({"--db", db.string(), "serve", "bad name"}) == 2);
  CHECK(modelreg({"--db", db.string(), "serve", "fraud", "--bogus"}) == 2);
  ServerProcess first(db, "fraud", dir / "first.log", serve_options());
  CHECK(modelreg({"--db", db.string(), "serve", "fraud", "--port", std::to_string(first.port())}) == 1);
}

TEST_CASE_FIXTURE(Fixture, "SIGINT lets a request in flight finish, then the server exits 0") {
  REQUIRE(modelreg({"--db", db.string(), "promote", "fraud@1"}) == 0);
  ServerProcess server(db, "fraud", dir / "serve.log", serve_options("50000000"));
  httplib::Client c("127.0.0.1", server.port());
  wait_status(c, [](const json& s) { return s["serving_version"] == 1; });
  // A large batch keeps the server busy while the signal arrives.
  const std::size_t rows = data.test.rows();
  json flat = json::array();
  for (int copies = 0; copies < 40; ++copies) {
    for (std::size_t r = 0; r < rows; ++r) {
      for (double v : data.test.x.row(r)) flat.push_back(v);
    }
  }
  const std::string body =
      json{{"inputs", json::array({{{"name", "input"}, {"shape", {40 * rows, data.test.n_features()}},
                                    {"datatype", "FP64"}, {"data", flat}}})}}
          .dump();
  std::optional<int> status;
  std::thread client([&] {
    httplib::Client big("127.0.0.1", server.port());
    big.set_read_timeout(60);
    auto r = big.Post("/v2/models/fraud/infer", body, "application/json");
    status = r ? r->status : -1;
  });
  // The signal goes out once the server is handling the request (not after a guessed delay).
  wait_status(c, [](const json& s) { return s["inference_in_flight"] == 1; });
  CHECK(server.stop(SIGINT) == 0);
  client.join();
  REQUIRE(status.has_value());
  CHECK(*status == 200);
}

TEST_CASE_FIXTURE(Fixture, "a server with a signing key keeps serving the signed version and says why") {
  const std::string key = (dir / "key").string();
  REQUIRE(modelreg({"keygen", key}) == 0);
  REQUIRE(modelreg({"--db", db.string(), "sign", "fraud@1", "--signing-key", key}) == 0);
  REQUIRE(modelreg({"--db", db.string(), "promote", "fraud@1", "--signing-key", key}) == 0);
  ServerProcess server(db, "fraud", dir / "serve.log", serve_options("100000", {"--signing-key", key}));
  httplib::Client c("127.0.0.1", server.port());
  wait_status(c, [](const json& s) { return s["serving_version"] == 1; });

  // Someone without the key promotes an unsigned version.
  REQUIRE(modelreg({"--db", db.string(), "promote", "fraud@2"}) == 0);
  const json s = wait_status(c, [](const json& st) { return st["desired_version"] == 2 && st["load_failures"] >= 1; });
  CHECK(s["serving_version"] == 1);
  CHECK(s["last_error"].get<std::string>().find("fraud@2 is not signed") != std::string::npos);
  auto r = c.Post("/v2/models/fraud/infer", infer_body(), "application/json");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(json::parse(r->body)["model_version"] == "1");

  // Once someone with the key signs it, the next retry serves it.
  REQUIRE(modelreg({"--db", db.string(), "sign", "fraud@2", "--signing-key", key}) == 0);
  wait_status(c, [](const json& st) { return st["serving_version"] == 2; });
  CHECK(server.stop() == 0);
}
