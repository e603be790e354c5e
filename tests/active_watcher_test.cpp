// ActiveWatcher and ModelServer, driven through poll_now() and an injected clock: no test here
// sleeps to wait for a swap.
#include <fstream>
#include <thread>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "modelreg/model_server.hpp"
#include "modelreg/training.hpp"
#include "model_test_support.hpp"
#include "test_support.hpp"

using namespace modelreg;
using test::code_of;
using test::contains;

namespace {

struct Fixture {
  test::TempDir dir;
  std::filesystem::path db = dir / "r.db";
  Registry reg{db};
  TrainTestSplit data = test::small_fraud();
  std::chrono::steady_clock::time_point now{};  // the watcher's clock
  std::vector<std::string> log;

  // fraud@1..n: logistic regressions with different C (so their predictions differ).
  void versions(int n) {
    for (int i = 1; i <= n; ++i) {
      auto m = train_model("logistic_regression", data.train, {{"C", fmt::format("{}", 0.01 * i)}});
      NewVersion spec;
      spec.model = "fraud";
      reg.save_model(*m, spec, data.test.x);
    }
  }

  WatcherOptions manual() {
    WatcherOptions o;
    o.background = false;
    o.clock = [this] { return now; };
    o.log = [this](std::string_view line) { log.emplace_back(line); };
    return o;
  }

  void corrupt_blob_of(int number) { test::flip_chunk_byte(db, test::first_chunk_of_version(number)); }
};

// A custom model whose destructor records the thread it ran on.
class Recorder final : public Model {
 public:
  explicit Recorder(std::thread::id* died_on, std::size_t n) : died_on_(died_on), n_(n) {}
  ~Recorder() override { *died_on_ = std::this_thread::get_id(); }
  std::string type_name() const override { return "recorder"; }
  std::size_t n_features() const override { return n_; }
  std::map<std::string, std::string> hyperparameters() const override { return {}; }

 protected:
  void compute(MatrixView x, std::span<double> out) const override {
    for (std::size_t i = 0; i < x.rows(); ++i) out[i] = 0.25;
  }

 private:
  std::thread::id* died_on_;
  std::size_t n_;
};

}  // namespace

TEST_CASE_FIXTURE(Fixture, "a watcher is not ready until a version is promoted, then serves it") {
  versions(2);
  ActiveWatcher w(db, "fraud", manual());
  CHECK_FALSE(w.poll_now());
  CHECK_FALSE(w.ready());
  CHECK(w.current() == nullptr);
  reg.promote(ModelRef::parse("fraud@1"));
  CHECK(w.poll_now());
  REQUIRE(w.ready());
  CHECK(w.current()->version.id.number == 1);
  CHECK(w.current()->model->type_name() == "logistic_regression");
  const auto s = w.status();
  CHECK(s.serving_version == 1);
  CHECK(s.desired_version == 1);
  CHECK(s.swaps == 1);
  CHECK(s.polls == 2);
  CHECK(log.size() == 1);
  CHECK(contains(log[0], "swapped nothing -> fraud@1"));
  // Nothing changed: the next poll reads only data_version and does nothing.
  CHECK_FALSE(w.poll_now());
  CHECK(w.status().swaps == 1);
}

TEST_CASE_FIXTURE(Fixture, "promote and rollback from another connection swap at the next poll") {
  versions(3);
  reg.promote(ModelRef::parse("fraud@1"));
  ActiveWatcher w(db, "fraud", manual());
  w.poll_now();
  const auto old = w.current();
  reg.promote(ModelRef::parse("fraud@3"));
  CHECK(w.poll_now());
  CHECK(w.current()->version.id.number == 3);
  // A request that started before the swap still holds the old model, intact.
  CHECK(old->version.id.number == 1);
  CHECK(old->model->predict_proba(data.test.x).size() == data.test.rows());
  reg.rollback("fraud");
  CHECK(w.poll_now());
  CHECK(w.current()->version.id.number == 1);
  CHECK(w.status().swaps == 3);
}

TEST_CASE_FIXTURE(Fixture, "rapid A to B to A between two polls collapses to no swap") {
  versions(2);
  reg.promote(ModelRef::parse("fraud@1"));
  ActiveWatcher w(db, "fraud", manual());
  w.poll_now();
  reg.promote(ModelRef::parse("fraud@2"));
  reg.promote(ModelRef::parse("fraud@1"));
  CHECK_FALSE(w.poll_now());
  CHECK(w.status().swaps == 1);
  CHECK(w.current()->version.id.number == 1);
}

TEST_CASE_FIXTURE(Fixture, "a version that fails to load never replaces the serving one, is retried with backoff, and a later promotion still swaps") {
  versions(4);
  reg.promote(ModelRef::parse("fraud@2"));
  ActiveWatcher w(db, "fraud", manual());
  w.poll_now();
  // Damaged after its promotion (promote itself refuses a version whose bytes fail their checksum).
  reg.promote(ModelRef::parse("fraud@3"));
  corrupt_blob_of(3);
  CHECK_FALSE(w.poll_now());
  CHECK(w.current()->version.id.number == 2);
  auto s = w.status();
  CHECK(s.load_failures == 1);
  CHECK(s.desired_version == 3);
  CHECK(s.serving_version == 2);
  REQUIRE(s.last_error.has_value());
  CHECK(contains(*s.last_error, "fraud@3"));
  CHECK(contains(*s.last_error, "corrupt"));
  CHECK(contains(log.back(), "failed to load fraud@3"));
  CHECK(contains(log.back(), "still serving fraud@2"));

  // Not retried before the backoff has passed; retried (and failing again) after; backoff doubles.
  now += std::chrono::milliseconds(100);
  w.poll_now();
  CHECK(w.status().load_failures == 1);
  now += std::chrono::milliseconds(200);
  w.poll_now();
  CHECK(w.status().load_failures == 2);
  now += std::chrono::milliseconds(300);
  w.poll_now();
  CHECK(w.status().load_failures == 2);  // now waiting 500 ms
  now += std::chrono::milliseconds(250);
  w.poll_now();
  CHECK(w.status().load_failures == 3);

  reg.promote(ModelRef::parse("fraud@4"));
  CHECK(w.poll_now());
  CHECK(w.current()->version.id.number == 4);
  CHECK(w.status().serving_version == 4);
}

TEST_CASE_FIXTURE(Fixture, "a version failing validation is refused the same way") {
  versions(2);
  reg.promote(ModelRef::parse("fraud@1"));
  ActiveWatcher w(db, "fraud", manual());
  w.poll_now();
  {
    auto d = test::raw(db);
    d.exec("DROP TRIGGER probes_immutable");
    d.exec("UPDATE probes SET outputs = zeroblob(length(outputs)) WHERE version_id = "
           "(SELECT id FROM versions WHERE number = 2)");
  }
  reg.promote(ModelRef::parse("fraud@2"));
  CHECK_FALSE(w.poll_now());
  CHECK(w.current()->version.id.number == 1);
  CHECK(contains(*w.status().last_error, "probe check"));
}

TEST_CASE_FIXTURE(Fixture, "a custom loader serves any artifact, and a replaced model dies on the watcher's thread") {
  NewVersion spec;
  spec.model = "custom";
  spec.format = "my-format";
  spec.features = {{"a"}, {"b"}};
  reg.register_bytes(spec, "v1 bytes");
  reg.register_bytes(spec, "v2 bytes");
  reg.promote(ModelRef::parse("custom@1"));
  std::thread::id died_on;
  WatcherOptions o = manual();
  o.loader = [&](const Registry& r, const ModelVersion& v) -> std::shared_ptr<const Model> {
    CHECK(r.load_bytes(ModelRef::number(v.id.model, v.id.number)) == fmt::format("v{} bytes", v.id.number));
    return std::make_shared<Recorder>(&died_on, v.features.size());
  };
  std::thread::id poller;
  std::shared_ptr<const ServedModel> held;
  {
    ActiveWatcher w(db, "custom", o);
    std::thread t([&] {
      poller = std::this_thread::get_id();
      w.poll_now();
    });
    t.join();
    held = w.current();  // a "request" holds version 1
    REQUIRE(held);
    CHECK(held->model->predict_proba(Matrix(1, 2)) == std::vector<double>{0.25});
    reg.promote(ModelRef::parse("custom@2"));
    std::thread swap([&] { w.poll_now(); });
    swap.join();
    CHECK(w.current()->version.id.number == 2);
    CHECK(died_on == std::thread::id{});  // still held by the request
    held.reset();                          // the request ends; it does not destroy the model...
    CHECK(died_on == std::thread::id{});
    std::thread reaper([&] {
      poller = std::this_thread::get_id();
      w.poll_now();  // ...the watcher does, on its own thread
    });
    reaper.join();
    CHECK(died_on == poller);
  }
}

TEST_CASE_FIXTURE(Fixture, "the background thread picks up a promotion within a few poll intervals") {
  versions(1);
  WatcherOptions o;
  o.poll_interval = std::chrono::milliseconds(5);
  ActiveWatcher w(db, "fraud", o);
  reg.promote(ModelRef::parse("fraud@1"));
  // Waiting for a condition with a generous deadline (not a fixed sleep).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!w.ready() && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  CHECK(w.ready());
  CHECK(w.status().polls >= 1);
}

TEST_CASE_FIXTURE(Fixture, "a promotion wakes the watcher at once, without waiting for the poll interval") {
  versions(2);
  reg.promote(ModelRef::parse("fraud@1"));
  WatcherOptions o;
  o.poll_interval = std::chrono::minutes(10);  // only a change notification can make it poll again
  ActiveWatcher w(db, "fraud", o);
  auto serving = [&](std::int64_t number, std::chrono::seconds within) {
    const auto deadline = std::chrono::steady_clock::now() + within;
    while (std::chrono::steady_clock::now() < deadline) {
      if (const auto c = w.current(); c && c->version.id.number == number) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return false;
  };
  REQUIRE(serving(1, std::chrono::seconds(20)));  // the first poll, at start
  if (!w.status().change_notifications) {
    MESSAGE("skipped: this file system gives no inotify events; the watcher polls");
    return;
  }
  reg.promote(ModelRef::parse("fraud@2"));
  CHECK(serving(2, std::chrono::seconds(20)));
  CHECK(w.status().wakeups >= 1);
  reg.rollback("fraud");
  CHECK(serving(1, std::chrono::seconds(20)));
}

TEST_CASE_FIXTURE(Fixture, "without change notifications a promotion waits for the poll interval") {
  versions(2);
  reg.promote(ModelRef::parse("fraud@1"));
  WatcherOptions o;
  o.poll_interval = std::chrono::minutes(10);
  o.notify_changes = false;
  ActiveWatcher w(db, "fraud", o);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!w.ready() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  REQUIRE(w.ready());
  CHECK_FALSE(w.status().change_notifications);
  reg.promote(ModelRef::parse("fraud@2"));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(w.current()->version.id.number == 1);  // still: the next poll is minutes away
  CHECK(w.poll_now());
  CHECK(w.current()->version.id.number == 2);
  CHECK(w.status().wakeups == 0);
}

TEST_CASE_FIXTURE(Fixture, "a watcher follows the alias it is given, not active") {
  versions(3);
  reg.promote(ModelRef::parse("fraud@1"));
  WatcherOptions o = manual();
  o.alias = "champion";
  ActiveWatcher w(db, "fraud", o);
  CHECK_FALSE(w.poll_now());
  CHECK_FALSE(w.ready());
  CHECK(w.unready_reason().find("holds the alias 'champion'") != std::string::npos);
  reg.set_alias(ModelRef::parse("fraud@2"), "champion");
  CHECK(w.poll_now());
  CHECK(w.current()->version.id.number == 2);
  reg.promote(ModelRef::parse("fraud@3"));  // moves active, not champion
  CHECK_FALSE(w.poll_now());
  CHECK(w.current()->version.id.number == 2);
  reg.set_alias(ModelRef::parse("fraud@3"), "champion");
  CHECK(w.poll_now());
  CHECK(w.current()->version.id.number == 3);
  CHECK(w.status().alias == "champion");

  WatcherOptions newest = manual();
  newest.alias = "latest";
  ActiveWatcher latest(db, "fraud", newest);
  CHECK(latest.poll_now());
  CHECK(latest.current()->version.id.number == 3);
  WatcherOptions bad = manual();
  bad.alias = "no spaces";
  CHECK(code_of([&] { ActiveWatcher x(db, "fraud", bad); }) == Errc::invalid_argument);
}

TEST_CASE_FIXTURE(Fixture, "a watcher refuses a missing database and a bad model name") {
  CHECK(code_of([&] { ActiveWatcher w(dir / "missing.db", "fraud", manual()); }) == Errc::not_found);
  CHECK(code_of([&] { ActiveWatcher w(db, "bad name", manual()); }) == Errc::invalid_argument);
}

TEST_CASE_FIXTURE(Fixture, "a model server predicts with the serving version and counts requests and errors") {
  versions(2);
  ModelServer server(db, "fraud", manual());
  CHECK(code_of([&] { server.predict(data.test.x); }) == Errc::conflict);
  CHECK_FALSE(server.status().ready);
  reg.promote(ModelRef::parse("fraud@2"));
  server.watcher().poll_now();
  const Prediction p = server.predict(data.test.x);
  CHECK(p.version == 2);
  const auto expected = reg.load_model(ModelRef::parse("fraud@2")).model->predict_proba(data.test.x);
  CHECK(p.probabilities == expected);
  CHECK(p.labels.size() == expected.size());
  CHECK(code_of([&] { server.predict(Matrix(2, 3)); }) == Errc::invalid_argument);
  const ServerStatus s = server.status();
  CHECK(s.ready);
  CHECK(s.requests == 3);
  CHECK(s.errors == 2);
  CHECK(s.watcher.serving_version == 2);
  CHECK(s.uptime_seconds >= 0);
}

namespace {

// A registry file built elsewhere, with `n` versions of fraud (C different from Fixture::versions,
// so that fraud@1 here has other bytes than fraud@1 there) and fraud@`active` promoted; closed
// when this returns, so that it is one self-contained file ready to be moved into place.
std::filesystem::path other_registry(const std::filesystem::path& path, const TrainTestSplit& data, int n, int active) {
  Registry other(path);
  for (int i = 1; i <= n; ++i) {
    auto m = train_model("logistic_regression", data.train, {{"C", fmt::format("{}", 0.5 * i)}});
    NewVersion spec;
    spec.model = "fraud";
    other.save_model(*m, spec, data.test.x);
  }
  other.promote(ModelRef::number("fraud", active));
  return path;
}

// Empties the write-ahead log of `db` into the file, so that a file moved over it is not paired
// with the old file's log (SQLite binds a -wal file to its database by path only).
void checkpoint(const std::filesystem::path& db) { test::raw(db).exec("PRAGMA wal_checkpoint(TRUNCATE)"); }

}  // namespace

TEST_CASE_FIXTURE(Fixture, "a database file replaced at its path is reopened and its active version served") {
  versions(2);
  reg.promote(ModelRef::parse("fraud@1"));
  ActiveWatcher w(db, "fraud", manual());
  REQUIRE(w.poll_now());
  const std::string old_sha = w.current()->version.blob.sha256;
  CHECK_FALSE(w.poll_now());

  // The restored file has its own fraud@1 (other bytes, same number) active.
  const auto restored = other_registry(dir / "backup.db", data, 1, 1);
  checkpoint(db);
  std::filesystem::rename(restored, db);
  CHECK(w.poll_now());
  REQUIRE(w.current());
  CHECK(w.current()->version.id.number == 1);
  CHECK(w.current()->version.blob.sha256 != old_sha);
  auto s = w.status();
  CHECK(s.reopens == 1);
  CHECK(s.swaps == 2);
  CHECK_FALSE(s.database_problem.has_value());
  CHECK(w.ready());
  CHECK(contains(log.at(1), "was replaced; reopened it"));
  // Promotions in the new file are followed.
  {
    Registry now_there(db);
    NewVersion spec;
    spec.model = "fraud";
    now_there.save_model(*train_model("logistic_regression", data.train, {{"C", "3"}}), spec, data.test.x);
    now_there.promote(ModelRef::parse("fraud@2"));
  }
  CHECK(w.poll_now());
  CHECK(w.current()->version.id.number == 2);
  CHECK(w.status().reopens == 1);

  // Replaced by something that is not a registry: not ready, says why, the loaded model serves on.
  checkpoint(db);
  {
    std::ofstream junk(dir / "junk.db", std::ios::binary);
    junk << std::string(4096, 'x');
  }
  std::filesystem::rename(dir / "junk.db", db);
  CHECK_FALSE(w.poll_now());
  CHECK_FALSE(w.ready());
  REQUIRE(w.current());
  CHECK(w.current()->version.id.number == 2);
  s = w.status();
  REQUIRE(s.database_problem.has_value());
  CHECK(contains(*s.database_problem, "cannot be opened"));
  CHECK(s.last_error == s.database_problem);
  CHECK(contains(w.unready_reason(), "cannot be opened"));
}

TEST_CASE_FIXTURE(Fixture, "a deleted database file makes the watcher not ready while the loaded model keeps serving") {
  versions(2);
  reg.promote(ModelRef::parse("fraud@2"));
  ModelServer server(db, "fraud", manual());
  REQUIRE(server.watcher().poll_now());
  REQUIRE(server.watcher().ready());
  checkpoint(db);
  std::filesystem::remove(db);

  CHECK_FALSE(server.watcher().poll_now());
  CHECK_FALSE(server.watcher().ready());
  CHECK_FALSE(server.status().ready);
  const auto s = server.watcher().status();
  REQUIRE(s.database_problem.has_value());
  CHECK(contains(*s.database_problem, db.string()));
  CHECK(contains(*s.database_problem, "is gone"));
  CHECK(contains(*s.database_problem, "still serving fraud@2"));
  CHECK(s.last_error == s.database_problem);
  CHECK(contains(server.watcher().unready_reason(), "is gone"));
  // Inference goes on with the model loaded before.
  CHECK(server.predict(data.test.x).version == 2);
  // Said once in the log, not at every poll.
  const auto lines = log.size();
  CHECK_FALSE(server.watcher().poll_now());
  CHECK(log.size() == lines);

  // A database put back at the path is opened and followed.
  std::filesystem::rename(other_registry(dir / "backup.db", data, 3, 3), db);
  CHECK(server.watcher().poll_now());
  CHECK(server.watcher().ready());
  CHECK(server.watcher().current()->version.id.number == 3);
  CHECK_FALSE(server.watcher().status().database_problem.has_value());
  CHECK(server.watcher().unready_reason().empty());
}

TEST_CASE_FIXTURE(Fixture, "a watcher that serves nothing says why: not read yet, nothing active, the active version failed") {
  versions(2);
  ModelServer server(db, "fraud", manual());
  ActiveWatcher& w = server.watcher();
  CHECK(contains(w.unready_reason(), "not been read yet"));
  w.poll_now();
  CHECK(contains(w.unready_reason(), "no version of 'fraud' is active"));
  reg.promote(ModelRef::parse("fraud@1"));
  corrupt_blob_of(1);
  CHECK_FALSE(w.poll_now());
  const std::string reason = w.unready_reason();
  CHECK(contains(reason, "the active version fraud@1 could not be served"));
  CHECK(contains(reason, *w.status().last_error));
  CHECK(contains(reason, "corrupt"));
  // The refusal of a request carries the same reason (the server answers it with 503).
  try {
    server.predict(data.test.x);
    FAIL("predict did not throw");
  } catch (const Error& e) {
    CHECK(e.code() == Errc::conflict);
    CHECK(contains(e.what(), "model 'fraud' is not ready: the active version fraud@1 could not be served"));
    CHECK(contains(e.what(), "corrupt"));
  }
  reg.promote(ModelRef::parse("fraud@2"));
  CHECK(w.poll_now());
  CHECK(w.unready_reason().empty());
}
