// `modelreg import-model`: an XGBoost model file from the shell, with register's metadata options
// and a probe CSV with missing cells; refusals exit 1 with one line and change nothing. The model
// is trained here with /usr/bin/python3 (python3-xgboost); without it the test says so and passes.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <thread>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "modelreg/checksum.hpp"
#include "process_harness.hpp"
#include "test_support.hpp"

using nlohmann::json;

namespace {

struct Result {
  int status = -1;
  std::string out, err;
};

struct ImportCli {
  test::TempDir dir;
  std::filesystem::path db = dir / "reg.db";

  Result run(std::vector<std::string> args) {
    args.insert(args.begin(), {"--db", db.string()});
    test::Command command{.args = {test::modelreg_binary()},
                          .env = {{"MODELREG_DB", std::nullopt}, {"MODELREG_SIGNING_KEY", std::nullopt}},
                          .cwd = dir.path(),
                          .capture_out = true,
                          .capture_err = true};
    command.args.insert(command.args.end(), args.begin(), args.end());
    const test::CommandResult r = test::run_command(command);
    REQUIRE_MESSAGE(r.start_error.empty(), r.start_error);
    REQUIRE_FALSE(r.timed_out);
    return {r.status, r.out, r.err};
  }

  // Trains binary:logistic on rows with missing values into model.json and dart.json, and writes
  // probe.csv (features a..d, target y, empty cells = missing). False without XGBoost.
  bool make_models() {
    if (std::system("/usr/bin/python3 -c 'import xgboost' >/dev/null 2>&1") != 0) return false;
    const std::string script = R"(
import sys, numpy as np, xgboost as xgb
out = sys.argv[1]
rng = np.random.default_rng(5)
x = rng.normal(size=(300, 4)); x[rng.random(x.shape) < 0.2] = np.nan
y = (np.nan_to_num(x[:, 0]) - np.nan_to_num(x[:, 2]) > 0).astype(float)
d = xgb.DMatrix(x, label=y, missing=np.nan, feature_names=["a", "b", "c", "d"])
xgb.train({"objective": "binary:logistic", "max_depth": 3}, d, 5).save_model(out + "/model.json")
xgb.train({"booster": "dart", "objective": "binary:logistic"}, d, 2).save_model(out + "/dart.json")
xgb.train({"objective": "binary:logistic", "max_depth": 2, "eta": 0.1}, d, 3).save_model(out + "/model2.ubj")
with open(out + "/probe.csv", "w") as f:
    f.write("y,d,c,b,a\n")
    for row, label in zip(x[:20], y[:20]):
        cells = ["" if np.isnan(v) else repr(float(v)) for v in row[::-1]]
        f.write(",".join([str(int(label))] + cells) + "\n")
)";
    std::ofstream(dir / "make.py") << script;
    return std::system(fmt::format("/usr/bin/python3 '{}' '{}'", (dir / "make.py").string(), dir.path().string()).c_str()) == 0;
  }
};


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

TEST_CASE_FIXTURE(ImportCli, "import-model registers an XGBoost file with its metadata and probe rows, and predict "
                             "scores it; refusals exit 1 and change nothing") {
  if (!make_models()) {
    if (test::python_deps_required()) FAIL("/usr/bin/python3 cannot import xgboost");
    MESSAGE("skipped: /usr/bin/python3 cannot import xgboost (install python3-xgboost)");
    return;
  }
  std::ofstream(dir / "train.csv") << "a,b\n1,2\n";
  Result r = run({"import-model", "churn", "--xgboost", "model.json", "--probe-csv", "probe.csv", "--target", "y",
                  "--metric", "auc=0.91", "--param", "source=nightly", "--tag", "team=growth", "--label", "v1.0.0",
                  "--notes", "from XGBoost", "--dataset", "train.csv:train"});
  INFO(r.out, r.err);
  REQUIRE(r.status == 0);
  CHECK(r.out.find("imported churn@1 (v1.0.0)  XGBoost 1.7") != std::string::npos);
  CHECK(r.out.find("binary:logistic, 5 trees, 4 features") != std::string::npos);

  r = run({"--json", "show", "churn@1"});
  REQUIRE(r.status == 0);
  const json v = json::parse(r.out);
  CHECK(v["type_name"] == "xgboost_gbtree");
  CHECK(v["metrics"]["auc"] == 0.91);
  CHECK(v["params"]["source"] == "nightly");
  CHECK(v["params"]["objective"] == "binary:logistic");
  CHECK(v["params"]["xgboost_format"] == "json");
  CHECK(v["tags"]["team"] == "growth");
  CHECK(v["notes"] == "from XGBoost");
  REQUIRE(v["features"].size() == 4);
  CHECK(v["features"][0]["name"] == "a");
  bool source_recorded = false;
  for (const auto& d : v["datasets"]) {
    if (d["role"] == "xgboost_model") {
      source_recorded = d["sha256"] == modelreg::sha256_file(dir / "model.json");
      CHECK(d["uri"] == (dir / "model.json").string());
    }
  }
  CHECK(source_recorded);
  CHECK(v["datasets"].size() == 2);

  r = run({"predict", "churn@1", "--csv", "probe.csv", "--target", "y"});
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 21);  // header + 20 rows with missing cells

  const std::string before = test::dump(db);
  r = run({"import-model", "other", "--xgboost", "dart.json"});
  CHECK(r.status == 1);
  CHECK(r.err.find("the dart booster") != std::string::npos);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  r = run({"import-model", "other", "--xgboost", "model.json", "--probe-csv", "train.csv"});
  CHECK(r.status == 1);
  CHECK(r.err.find("missing columns c, d") != std::string::npos);  // the features the CSV lacks, named
  r = run({"import-model", "other", "--xgboost", "absent.json"});
  CHECK(r.status == 1);
  CHECK(r.err.find("does not exist") != std::string::npos);
  r = run({"import-model", "other"});
  CHECK(r.status == 2);
  CHECK(test::dump(db) == before);
}

TEST_CASE_FIXTURE(ImportCli, "modelreg serve scores an imported XGBoost model, routes missing values, and hot-swaps to "
                             "another import") {
  if (!make_models()) {
    if (test::python_deps_required()) FAIL("/usr/bin/python3 cannot import xgboost");
    MESSAGE("skipped: /usr/bin/python3 cannot import xgboost (install python3-xgboost)");
    return;
  }
  REQUIRE(run({"import-model", "risk", "--xgboost", (dir / "model.json").string()}).status == 0);
  REQUIRE(run({"import-model", "risk", "--xgboost", (dir / "model2.ubj").string()}).status == 0);
  REQUIRE(run({"promote", "risk@1"}).status == 0);
  // The same rows through `modelreg predict` (empty cells missing) and through the server (nulls).
  std::ofstream(dir / "rows.csv") << "a,b,c,d\n0.5,,-1.0,\n,,,\n-0.3,0.2,0.9,1.5\n";
  const Result predicted = run({"--json", "predict", "risk@1", "--csv", (dir / "rows.csv").string()});
  REQUIRE(predicted.status == 0);
  const json expected = json::parse(predicted.out)["probabilities"];
  REQUIRE(expected.size() == 3);

  test::ServerProcess server(db, "risk", dir / "serve.log");
  httplib::Client c("127.0.0.1", server.port());
  wait_ready(c);
  const json body = {{"inputs", json::array({{{"name", "input"}, {"shape", {3, 4}}, {"datatype", "FP64"},
                                              {"data", {0.5, nullptr, -1.0, nullptr, nullptr, nullptr, nullptr, nullptr,
                                                        -0.3, 0.2, 0.9, 1.5}}}})}};
  auto infer = [&] {
    auto r = c.Post("/v2/models/risk/infer", body.dump(), "application/json");
    REQUIRE(r);
    INFO(r->body);
    REQUIRE(r->status == 200);
    return json::parse(r->body);
  };
  const json first = infer();
  CHECK(first["model_version"] == "1");
  const json& p = first["outputs"][1];
  CHECK(p["name"] == "probability");
  for (std::size_t i = 0; i < 3; ++i) CHECK(p["data"][i].get<double>() == expected[i].get<double>());

  // Promote the other import: the server follows it without a failed request.
  REQUIRE(run({"promote", "risk@2"}).status == 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  json answer = infer();
  while (answer["model_version"] != "2" && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    answer = infer();
  }
  CHECK(answer["model_version"] == "2");
  CHECK(answer["outputs"][1]["data"][0].get<double>() != p["data"][0].get<double>());
}
