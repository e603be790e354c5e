// The three tasks end to end through the modelreg command and its server: train infers the task,
// show says it, predict writes the fixed output shapes, serve answers OIP v2 in them, missing
// values are refused by built-in models, and metric guards know which way a metric improves.
#include <chrono>
#include <cmath>
#include <fstream>
#include <set>
#include <thread>
#include <random>
#include <sstream>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "process_harness.hpp"
#include "test_support.hpp"

using nlohmann::json;

namespace {

struct Run {
  int status = -1;
  std::string out, err;
  json parsed() const {
    INFO(out, err);
    return json::parse(out);
  }
};

struct Tasks {
  test::TempDir dir;
  std::filesystem::path db = dir / "reg.db";

  Run run(std::vector<std::string> args) {
    test::Command c;
    c.args = {test::modelreg_binary(), "--db", db.string()};
    c.args.insert(c.args.end(), args.begin(), args.end());
    c.capture_out = c.capture_err = true;
    const test::CommandResult r = test::run_command(c);
    REQUIRE(r.start_error.empty());
    REQUIRE_FALSE(r.timed_out);
    return {r.status, r.out, r.err};
  }
  Run ok(std::vector<std::string> args) {
    Run r = run(args);
    INFO(fmt::format("{}", fmt::join(args, " ")), "\n", r.out, r.err);
    REQUIRE(r.status == 0);
    return r;
  }

  // Points on a plane: multiclass "red"/"green"/"blue" by angle; regression y = 3 x0 - 2 x1 + 1.
  std::filesystem::path csv(const std::string& name, bool regression, int rows, std::uint64_t seed,
                            bool with_target = true) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(-1, 1);
    std::ostringstream out;
    out << "x0,x1" << (with_target ? ",y" : "") << "\n";
    for (int i = 0; i < rows; ++i) {
      const double a = u(rng), b = u(rng);
      out << fmt::format("{},{}", a, b);
      if (with_target) {
        if (regression) {
          out << fmt::format(",{}", 3 * a - 2 * b + 1 + 0.01 * u(rng));
        } else {
          const double angle = std::atan2(b, a);
          out << (angle < -1.0 ? ",red" : angle < 1.2 ? ",green" : ",blue");
        }
      }
      out << "\n";
    }
    const auto path = dir / name;
    std::ofstream(path) << out.str();
    return path;
  }
};

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

json post(httplib::Client& c, const std::string& path, const json& body, int expect) {
  auto r = c.Post(path.c_str(), body.dump(), "application/json");
  REQUIRE(r);
  INFO(r->body);
  CHECK(r->status == expect);
  return json::parse(r->body);
}

json oip(const std::vector<std::vector<json>>& rows) {
  json flat = json::array();
  for (const auto& row : rows) {
    for (const auto& v : row) flat.push_back(v);
  }
  return {{"id", "r1"},
          {"inputs", json::array({{{"name", "input"}, {"shape", {rows.size(), rows.front().size()}},
                                   {"datatype", "FP64"}, {"data", flat}}})}};
}


// Waits (with a deadline, not a fixed sleep) until the server has loaded its version.
void wait_ready(httplib::Client& c) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto r = c.Get("/v2/health/ready"); r && r->status == 200) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  FAIL("the server did not become ready");
}

}  // namespace

TEST_CASE_FIXTURE(Tasks, "a multiclass model with string classes: trained, shown, predicted and served in its shapes") {
  const auto train = csv("colors.csv", false, 600, 1);
  ok({"train", "colors", "--csv", train.string(), "--target", "y", "--type", "decision_tree"});
  const json v = ok({"--json", "show", "colors@1"}).parsed();
  CHECK(v["task"] == "multiclass");
  CHECK(v["classes"] == json::array({"blue", "green", "red"}));
  CHECK(v["metrics"].contains("accuracy"));

  const auto fresh = csv("fresh.csv", false, 20, 2, false);
  const auto rows = lines(ok({"predict", "colors@1", "--csv", fresh.string()}).out);
  REQUIRE(rows.size() == 21);
  CHECK(rows[0] == "probability_blue,probability_green,probability_red,label");
  for (std::size_t i = 1; i < rows.size(); ++i) {
    double a, b, c;
    char label[16] = {};
    REQUIRE(std::sscanf(rows[i].c_str(), "%lf,%lf,%lf,%15s", &a, &b, &c, label) == 4);
    CHECK(a + b + c == doctest::Approx(1.0));
    CHECK(std::set<std::string>{"blue", "green", "red"}.contains(label));
  }
  const json j = ok({"--json", "predict", "colors@1", "--csv", fresh.string()}).parsed();
  CHECK(j["task"] == "multiclass");
  REQUIRE(j["probabilities"].size() == 20);
  CHECK(j["probabilities"][0].size() == 3);
  CHECK(j["labels"][0].is_string());

  ok({"promote", "colors@1"});
  test::ServerProcess server(db, "colors", dir / "serve.log");
  httplib::Client c("127.0.0.1", server.port());
  wait_ready(c);
  auto meta = c.Get("/v2/models/colors");
  REQUIRE(meta);
  const json m = json::parse(meta->body);
  CHECK(m["task"] == "multiclass");
  CHECK(m["outputs"][0]["name"] == "probabilities");
  CHECK(m["outputs"][0]["shape"] == json::array({-1, 3}));
  CHECK(m["outputs"][1]["datatype"] == "BYTES");

  const json answer = post(c, "/v2/models/colors/infer", oip({{0.9, 0.1}, {-0.5, -0.8}}), 200);
  CHECK(answer["id"] == "r1");
  CHECK(answer["model_version"] == "1");
  const json& p = answer["outputs"][0];
  CHECK(p["name"] == "probabilities");
  CHECK(p["shape"] == json::array({2, 3}));
  REQUIRE(p["data"].size() == 6);
  CHECK(p["data"][0].get<double>() + p["data"][1].get<double>() + p["data"][2].get<double>() == doctest::Approx(1.0));
  const json& l = answer["outputs"][1];
  CHECK(l["name"] == "label");
  CHECK(l["datatype"] == "BYTES");
  CHECK(l["data"] == json::array({"green", "red"}));
  const json simple = post(c, "/predict", {{"instances", {{0.9, 0.1}}}}, 200);
  CHECK(simple["predictions"] == json::array({"green"}));
  CHECK(simple["probabilities"][0].size() == 3);

  // A missing value (null) reaches the model, which does not route missing values: 400 naming it.
  const json missing = post(c, "/v2/models/colors/infer", oip({{0.9, nullptr}}), 400);
  CHECK(missing.dump().find("missing") != std::string::npos);
}

TEST_CASE_FIXTURE(Tasks, "a regression model: one prediction a row everywhere, and rmse guards know lower is better") {
  const auto train = csv("eta.csv", true, 400, 3);
  ok({"train", "eta", "--csv", train.string(), "--target", "y", "--type", "linear_regression"});
  const json v = ok({"--json", "show", "eta@1"}).parsed();
  CHECK(v["task"] == "regression");
  CHECK(v["classes"].is_null());
  REQUIRE(v["metrics"].contains("rmse"));
  CHECK(v["metrics"]["r2"].get<double>() > 0.99);

  const auto fresh = csv("fresh.csv", true, 5, 4, false);
  const auto rows = lines(ok({"predict", "eta@1", "--csv", fresh.string()}).out);
  REQUIRE(rows.size() == 6);
  CHECK(rows[0] == "prediction");
  const json j = ok({"--json", "predict", "eta@1", "--csv", fresh.string()}).parsed();
  CHECK(j["task"] == "regression");
  CHECK(j["predictions"].size() == 5);

  // A worse model (a shallow tree) by rmse: the guard refuses it, without being told the direction.
  ok({"train", "eta", "--csv", train.string(), "--target", "y", "--type", "decision_tree", "--param", "max_depth=1"});
  ok({"promote", "eta@1"});
  const Run refused = run({"promote", "eta@2", "--require-better", "rmse"});
  CHECK(refused.status == 1);
  CHECK(refused.err.find("lower is better") != std::string::npos);
  const json cmp = ok({"--json", "compare", "eta@1", "eta@2", "--metric", "rmse"}).parsed();
  CHECK(cmp["metrics"][0]["better"] == "lower");
  CHECK(cmp["metrics"][0]["improvement"].get<double>() < 0);  // eta@2 is worse
  // A metric of unknown direction needs to be told.
  const Run unknown = run({"promote", "eta@2", "--require-better", "train_rows"});
  CHECK(unknown.status != 0);

  test::ServerProcess server(db, "eta", dir / "serve.log");
  httplib::Client c("127.0.0.1", server.port());
  wait_ready(c);
  const json answer = post(c, "/v2/models/eta/infer", oip({{0.5, 0.25}, {0.0, 0.0}}), 200);
  REQUIRE(answer["outputs"].size() == 1);
  CHECK(answer["outputs"][0]["name"] == "prediction");
  CHECK(answer["outputs"][0]["shape"] == json::array({2}));
  CHECK(answer["outputs"][0]["data"][0].get<double>() == doctest::Approx(2.0).epsilon(0.02));
  CHECK(post(c, "/predict", {{"instances", {{0.0, 0.0}}}}, 200)["predictions"][0].get<double>() ==
        doctest::Approx(1.0).epsilon(0.05));
}
