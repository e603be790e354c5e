// Fault suite, concurrency: 4 writer processes, 4 reader processes and one `modelreg serve` on one
// database for a bounded time, with HTTP clients asking the server for predictions the whole time.
//
// Writers 0 and 2 use the library (train, save_model, promote, set_tag, register_bytes); writers 1
// and 3 run the modelreg command (train, promote, tag, register). Readers 0 and 2 use the library
// (list, get, history, lineage, query, load_model of the active version); readers 1 and 3 run the
// command (list, show, history, lineage, sql, predict, get). Afterwards: every process exited 0,
// nothing said "locked" or "busy", each model's version numbers are 1..N with N the number of
// registrations made, the server failed no request, and the database passes its integrity checks.
//
// Default: 12 s of load. MODELREG_FAULT_SECONDS=N runs N seconds.
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <set>
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
using Clock = std::chrono::steady_clock;

namespace {

std::chrono::seconds load_duration() {
  const char* env = std::getenv("MODELREG_FAULT_SECONDS");
  return std::chrono::seconds(env ? std::max(1, std::atoi(env)) : 12);
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs the modelreg command to completion (in a worker process: no doctest here). stdout goes to
// /dev/null, stderr is appended to `log`. Returns the exit status (-1 when killed by a signal, or
// when it overran its 120 s deadline or could not start: both said in `log`).
int run_modelreg(const std::string& binary, const std::vector<std::string>& args, const std::filesystem::path& log) {
  test::Command command{.args = {binary}, .err_file = log, .deadline = std::chrono::seconds(120)};
  command.args.insert(command.args.end(), args.begin(), args.end());
  const test::CommandResult r = test::run_command(command);
  if (r.timed_out) std::ofstream(log, std::ios::app) << "modelreg did not finish within 120 s: killed\n";
  if (!r.start_error.empty()) std::ofstream(log, std::ios::app) << r.start_error << "\n";
  return r.status;
}

// A worker process's view of its own log: failures are appended with what was being done.
class WorkerLog {
 public:
  explicit WorkerLog(std::filesystem::path path) : path_(std::move(path)), binary_(test::modelreg_binary()) {}
  const std::filesystem::path& path() const { return path_; }
  void failure(const std::string& what) {
    std::ofstream(path_, std::ios::app) << "FAILED: " << what << "\n";
    ++failures_;
  }
  // Runs the command; a non-zero exit is a failure.
  void command(const std::vector<std::string>& args) {
    const int status = run_modelreg(binary_, args, path_);
    if (status != 0) failure(fmt::format("modelreg {} exited {}", fmt::join(args, " "), status));
  }
  int failures() const { return failures_; }

 private:
  std::filesystem::path path_;
  std::string binary_;
  int failures_ = 0;
};

// Registrations a writer made, written to a file the test reads afterwards.
struct Counts {
  int fraud = 0;
  int opaque = 0;
  int operations = 0;
};

json get_json(httplib::Client& c, const std::string& path) {
  auto r = c.Get(path.c_str());
  REQUIRE(r);
  return json::parse(r->body);
}

struct Setup {
  test::TempDir dir;
  std::filesystem::path db = dir / "r.db";
  std::filesystem::path train_csv = dir / "train.csv";
  std::filesystem::path test_csv = dir / "test.csv";
  TrainTestSplit data = test::small_fraud();

  Setup() {
    write_csv(data.train, train_csv);
    write_csv(data.test, test_csv);
    Registry reg(db);
    for (int i = 1; i <= 2; ++i) {
      auto m = train_model("logistic_regression", data.train, {{"C", fmt::format("{}", 0.05 * i)}});
      reg.save_model(*m, fraud_spec(), data.test.x);
    }
    reg.register_bytes(test::spec("opaque"), test::random_bytes(300'000, 1));
    reg.promote(test::ref("fraud@1"));
  }

  // Named as the CSV columns, so `modelreg predict --csv` finds them.
  NewVersion fraud_spec() const {
    NewVersion spec;
    spec.model = "fraud";
    for (const auto& name : data.train.feature_names) spec.features.push_back({name});
    return spec;
  }

  std::string infer_body(std::size_t first, std::size_t rows) const {
    json flat = json::array();
    for (std::size_t r = first; r < first + rows; ++r) {
      for (double v : data.test.x.row(r)) flat.push_back(v);
    }
    return json{{"inputs", json::array({{{"name", "input"}, {"shape", {rows, data.test.n_features()}},
                                         {"datatype", "FP64"}, {"data", flat}}})}}
        .dump();
  }
};

void library_writer(const Setup& s, int w, Clock::time_point deadline, WorkerLog& log, Counts& counts) {
  Registry reg(s.db);
  for (int i = 0; Clock::now() < deadline; ++i) {
    const std::string doing = fmt::format("library writer {} iteration {}", w, i);
    try {
      auto m = train_model("logistic_regression", s.data.train, {{"C", fmt::format("{}", 0.01 + 0.01 * (i % 20))}});
      NewVersion spec = s.fraud_spec();
      spec.metrics = {{"writer", w}, {"i", i}};
      spec.tags = {{"writer", std::to_string(w)}};
      const auto v = reg.save_model(*m, spec, s.data.test.x);
      ++counts.fraud;
      const auto ref = ModelRef::number("fraud", v.id.number);
      reg.promote(ref, {.reason = doing});
      reg.set_tag(ref, "promoted_by", std::to_string(w));
      counts.operations += 3;
      if (i % 3 == 0) {
        NewVersion o = test::spec("opaque");
        o.metrics = {{"writer", w}};
        const auto seed = static_cast<unsigned>(1000 * w + i);
        reg.register_bytes(o, test::random_bytes(200'000 + 1000 * static_cast<std::size_t>(i), seed));
        ++counts.opaque;
        ++counts.operations;
      }
    } catch (const std::exception& e) {
      log.failure(fmt::format("{}: {}", doing, e.what()));
    }
  }
}

void command_writer(const Setup& s, int w, Clock::time_point deadline, WorkerLog& log, Counts& counts) {
  const std::string db = s.db.string();
  const std::string actor = fmt::format("writer-{}", w);
  const auto blob = s.dir / fmt::format("blob{}.bin", w);
  for (int i = 0; Clock::now() < deadline; ++i) {
    const int before = log.failures();
    log.command({"--db", db, "--actor", actor, "train", "fraud", "--csv", s.train_csv.string(), "--target",
                 s.data.train.target_name, "--type", "logistic_regression", "--param",
                 fmt::format("C={}", 0.01 + 0.01 * (i % 20)), "--seed", std::to_string(i)});
    if (log.failures() == before) ++counts.fraud;
    log.command({"--db", db, "--actor", actor, "promote", "fraud@latest", "--reason", "fault test"});
    log.command({"--db", db, "--actor", actor, "tag", "fraud@latest", fmt::format("touched_by={}", w)});
    counts.operations += 3;
    if (i % 3 == 0) {
      std::ofstream(blob, std::ios::binary)
          << test::random_bytes(150'000 + 1000 * static_cast<std::size_t>(i), static_cast<unsigned>(5000 * w + i));
      const int before_opaque = log.failures();
      log.command({"--db", db, "--actor", actor, "register", "opaque", "--file", blob.string(), "--metric",
                   fmt::format("writer={}", w)});
      if (log.failures() == before_opaque) ++counts.opaque;
      ++counts.operations;
    }
  }
}

void library_reader(const Setup& s, int r, Clock::time_point deadline, WorkerLog& log, Counts& counts) {
  Options o;
  o.read_only = r == 2;  // one read-only opener, one ordinary
  Registry reg(s.db, o);
  for (int i = 0; Clock::now() < deadline; ++i) {
    const std::string doing = fmt::format("library reader {} iteration {}", r, i);
    try {
      (void)reg.list_models();
      const auto versions = reg.list_versions("fraud");
      if (versions.empty()) throw std::runtime_error("no versions of fraud");
      (void)reg.get(ModelRef::active("fraud"));
      (void)reg.history("fraud");
      (void)reg.descendants(test::ref("fraud@1"));
      (void)reg.ancestors(ModelRef::latest("fraud"));
      (void)reg.query("SELECT model, version, metric, value FROM version_metrics WHERE metric = 'writer'");
      const auto loaded = reg.load_model(ModelRef::active("fraud"));
      const auto p = loaded.model->predict_proba(s.data.test.x.view().slice(0, 8));
      if (p.size() != 8) throw std::runtime_error("wrong number of predictions");
      if (i % 4 == 0) (void)reg.load_bytes(ModelRef::latest("opaque"));
      counts.operations += 9;
    } catch (const std::exception& e) {
      log.failure(fmt::format("{}: {}", doing, e.what()));
    }
  }
}

void command_reader(const Setup& s, int r, Clock::time_point deadline, WorkerLog& log, Counts& counts) {
  const std::string db = s.db.string();
  const auto out = s.dir / fmt::format("reader{}.out", r);
  const std::vector<std::vector<std::string>> commands = {
      {"--db", db, "list"},
      {"--db", db, "list", "fraud", "--json"},
      {"--db", db, "show", "fraud@active"},
      {"--db", db, "history", "fraud", "--json"},
      {"--db", db, "lineage", "fraud@1"},
      {"--db", db, "sql", "SELECT model, version, active FROM model_versions ORDER BY version DESC LIMIT 20"},
      {"--db", db, "predict", "fraud", "--csv", s.test_csv.string(), "--target", s.data.test.target_name, "-o",
       out.string(), "--force"},
      {"--db", db, "get", "opaque@latest", "-o", out.string(), "--force"},
  };
  for (std::size_t i = 0; Clock::now() < deadline; ++i) {
    log.command(commands[i % commands.size()]);
    ++counts.operations;
  }
}

// Forks a worker that waits for the starting gun (the end of file on `gun[0]`), runs `body` and
// exits 0 when it recorded no failure.
pid_t spawn_worker(const int gun[2], const std::filesystem::path& dir, const std::string& name,
                   const std::function<void(WorkerLog&, Counts&)>& body) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(gun[1]);
    char c;
    (void)::read(gun[0], &c, 1);  // returns at end of file: the parent closed the write end
    WorkerLog log(dir / (name + ".log"));
    Counts counts;
    try {
      body(log, counts);
    } catch (const std::exception& e) {
      log.failure(e.what());
    }
    std::ofstream(dir / (name + ".counts")) << counts.fraud << " " << counts.opaque << " " << counts.operations << "\n";
    ::_exit(log.failures() == 0 ? 0 : 1);
  }
  return pid;
}

}  // namespace

TEST_CASE("4 writers, 4 readers and a server on one database: no errors, unique numbers, no failed request") {
  Setup s;
  test::ServerProcess server(s.db, "fraud", s.dir / "serve.log");
  {
    httplib::Client c("127.0.0.1", server.port());
    const auto until = Clock::now() + std::chrono::seconds(30);
    while (get_json(c, "/status")["serving_version"] != 1) {
      REQUIRE_MESSAGE(Clock::now() < until, "the server did not start serving fraud@1 within 30 s");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  // Every process is forked before any thread starts; a pipe is the starting gun.
  int gun[2];
  REQUIRE(::pipe(gun) == 0);
  const auto duration = load_duration();
  const auto deadline = Clock::now() + duration + std::chrono::seconds(1);
  struct Worker {
    std::string name;
    pid_t pid;
  };
  std::vector<Worker> workers;
  for (int w = 0; w < 4; ++w) {
    const std::string name = fmt::format("writer{}", w);
    workers.push_back({name, spawn_worker(gun, s.dir.path(), name, [&, w](WorkerLog& log, Counts& counts) {
                         if (w % 2 == 0) library_writer(s, w, deadline, log, counts);
                         else command_writer(s, w, deadline, log, counts);
                       })});
  }
  for (int r = 0; r < 4; ++r) {
    const std::string name = fmt::format("reader{}", r);
    workers.push_back({name, spawn_worker(gun, s.dir.path(), name, [&, r](WorkerLog& log, Counts& counts) {
                         if (r % 2 == 0) library_reader(s, r, deadline, log, counts);
                         else command_reader(s, r, deadline, log, counts);
                       })});
  }
  ::close(gun[0]);

  std::atomic<long> requests{0}, failures{0};
  std::mutex failure_mutex;
  std::vector<std::string> failure_log;
  std::set<std::string> versions_served;
  std::vector<std::thread> clients;
  for (int t = 0; t < 3; ++t) {
    clients.emplace_back([&, t] {
      httplib::Client c("127.0.0.1", server.port());
      c.set_keep_alive(true);
      c.set_connection_timeout(10, 0);
      c.set_read_timeout(30, 0);
      c.set_write_timeout(30, 0);
      for (std::size_t i = 0; Clock::now() < deadline; ++i) {
        const std::size_t rows = 1 + (i + static_cast<std::size_t>(t)) % 4;
        auto r = c.Post("/v2/models/fraud/infer", s.infer_body(i % 100, rows), "application/json");
        ++requests;
        if (!r || r->status != 200) {
          std::lock_guard lock(failure_mutex);
          if (failures++ < 5) {
            failure_log.push_back(r ? fmt::format("HTTP {}: {}", r->status, r->body)
                                    : fmt::format("no response: {}", httplib::to_string(r.error())));
          }
          continue;
        }
        const auto j = json::parse(r->body);
        if (j["outputs"][1]["shape"] != json::array({rows})) {
          std::lock_guard lock(failure_mutex);
          if (failures++ < 5) failure_log.push_back("wrong shape: " + r->body);
          continue;
        }
        std::lock_guard lock(failure_mutex);
        versions_served.insert(j["model_version"].get<std::string>());
      }
    });
  }
  ::close(gun[1]);  // fires
  for (auto& t : clients) t.join();

  // Each worker stops at the deadline once its current command finishes.
  const auto overstay = Clock::now() + std::chrono::seconds(120);
  Counts total;
  for (const auto& w : workers) {
    CAPTURE(w.name);
    const int status = test::wait_or_kill(w.pid, overstay);
    const std::string log = read_file(s.dir / (w.name + ".log"));
    INFO(log);
    CHECK(status == 0);
    CHECK(log.find("locked") == std::string::npos);
    CHECK(log.find("busy") == std::string::npos);
    CHECK(log.find("FAILED") == std::string::npos);
    std::istringstream in(read_file(s.dir / (w.name + ".counts")));
    Counts c;
    in >> c.fraud >> c.opaque >> c.operations;
    CHECK(c.operations > 0);
    total.fraud += c.fraud;
    total.opaque += c.opaque;
    total.operations += c.operations;
  }

  httplib::Client control("127.0.0.1", server.port());
  const auto status = get_json(control, "/status");
  INFO(status.dump());
  INFO(fmt::format("{}", fmt::join(failure_log, "\n")));
  MESSAGE(fmt::format("{} s: {} registrations of fraud, {} of opaque, {} operations by the 8 workers; {} HTTP "
                      "requests ({} failed), {} swaps, {} versions served",
                      duration.count(), total.fraud, total.opaque, total.operations, requests.load(), failures.load(),
                      status["swaps"].get<long>(), versions_served.size()));
  CHECK(requests > 0);
  CHECK(failures == 0);
  CHECK(status["requests_failed"] == 0);
  CHECK(status["load_failures"] == 0);
  CHECK(status["poll_errors"] == 0);
  CHECK(status["swaps"].get<long>() > 0);
  CHECK(server.stop() == 0);
  const std::string server_log = read_file(s.dir / "serve.log");
  CHECK(server_log.find("locked") == std::string::npos);
  CHECK(server_log.find("busy") == std::string::npos);

  // Version numbers: 1..N for each model, N = the registrations made (setup included).
  Registry reg(s.db);
  const std::map<std::string, int> expected = {{"fraud", 2 + total.fraud}, {"opaque", 1 + total.opaque}};
  for (const auto& [model, n] : expected) {
    CAPTURE(model);
    const auto versions = reg.list_versions(model);
    REQUIRE(static_cast<int>(versions.size()) == n);
    for (int i = 0; i < n; ++i) CHECK(versions[static_cast<std::size_t>(i)].id.number == i + 1);
    int registered = 0;
    for (const auto& e : reg.history(model)) registered += e.kind == EventKind::register_version ? 1 : 0;
    CHECK(registered == n);
  }
  auto d = test::raw(s.db, false);
  CHECK(d.execAndGet("SELECT count(*) FROM versions WHERE is_active = 1").getInt() == 1);
  // The last promotion names the active version.
  std::optional<std::int64_t> last_to;
  for (const auto& e : reg.history("fraud")) {
    if (e.kind == EventKind::promote || e.kind == EventKind::rollback) last_to = e.to_version;
  }
  CHECK(last_to == reg.get(ModelRef::active("fraud")).id.number);
  const auto report = reg.check();
  CHECK(report.database_problems.empty());
  CHECK(report.bad_versions.empty());
  CHECK(test::integrity_check(s.db) == "ok");
}
