// ModelRepository: many models in one server, versions by alias or number, split, shadow, the
// memory bound, the repository API. Driven through poll_now() where the behaviour allows; the
// tests of background threads wait on latches the test's own models hold, not on time.
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "modelreg/model_repository.hpp"
#include "modelreg/training.hpp"
#include "model_test_support.hpp"
#include "test_support.hpp"

using namespace modelreg;
using test::code_of;
using test::contains;
using test::message_of;

namespace {

struct Fixture {
  test::TempDir dir;
  std::filesystem::path db = dir / "r.db";
  Registry reg{db};
  TrainTestSplit data = test::small_fraud();
  std::chrono::steady_clock::time_point now{};
  std::vector<std::string> log;
  std::mutex log_mutex;

  // NAME@1..n: logistic regressions with different C (so their predictions differ).
  void versions(const std::string& name, int n) {
    for (int i = 1; i <= n; ++i) {
      auto m = train_model("logistic_regression", data.train, {{"C", fmt::format("{}", 0.001 * std::pow(10, i))}});
      NewVersion spec;
      spec.model = name;
      reg.save_model(*m, spec, data.test.x);
    }
  }

  RepositoryOptions manual(std::vector<std::string> models) {
    RepositoryOptions o;
    o.models = std::move(models);
    o.background = false;
    o.clock = [this] { return now; };
    o.log = [this](std::string_view line) {
      std::lock_guard lock(log_mutex);
      log.emplace_back(line);
    };
    return o;
  }

  MatrixView rows(std::size_t n = 5) const { return MatrixView(data.test.x.data(), n, data.test.x.cols()); }

  RoutedPrediction ask(ModelRepository& r, const std::string& model, const std::string& version = "",
                       const std::string& key = "") {
    return r.predict(ServingRequest{model, version, key}, rows());
  }
};

const SlotStatus& slot_of(const RepositoryStatus& s, const std::string& model, const std::string& alias) {
  for (const auto& m : s.models) {
    if (m.model != model) continue;
    for (const auto& slot : m.slots) {
      if (slot.alias == alias) return slot;
    }
  }
  FAIL("no slot " << model << "@" << alias);
  throw std::logic_error("unreachable");
}

const ModelServingStatus& model_of(const RepositoryStatus& s, const std::string& model) {
  for (const auto& m : s.models) {
    if (m.model == model) return m;
  }
  FAIL("no model " << model);
  throw std::logic_error("unreachable");
}

// A model that answers a constant, and can hold a prediction until the test lets it go.
class Gate {
 public:
  void open() {
    {
      std::lock_guard lock(mutex_);
      open_ = true;
    }
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock lock(mutex_);
    ++waiting_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
  }
  void wait_for_waiter() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return waiting_ > 0; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool open_ = false;
  int waiting_ = 0;
};

class Constant final : public Model {
 public:
  Constant(double value, std::size_t n, Gate* gate = nullptr) : value_(value), n_(n), gate_(gate) {}
  std::string type_name() const override { return "constant"; }
  std::size_t n_features() const override { return n_; }
  std::map<std::string, std::string> hyperparameters() const override { return {}; }

 protected:
  void compute(MatrixView x, std::span<double> out) const override {
    if (gate_) gate_->wait();
    for (std::size_t i = 0; i < x.rows(); ++i) out[i] = value_;
  }

 private:
  double value_;
  std::size_t n_;
  Gate* gate_;
};

// A model that reports, from its destructor, the nice value of the thread destroying it.
class Reporting final : public Model {
 public:
  Reporting(std::size_t n, std::function<void(int nice)> on_destroy) : n_(n), on_destroy_(std::move(on_destroy)) {}
  ~Reporting() override { on_destroy_(::getpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()))); }
  Reporting(const Reporting&) = delete;
  Reporting& operator=(const Reporting&) = delete;
  std::string type_name() const override { return "reporting"; }
  std::size_t n_features() const override { return n_; }
  std::map<std::string, std::string> hyperparameters() const override { return {}; }

 protected:
  void compute(MatrixView x, std::span<double> out) const override {
    for (std::size_t i = 0; i < x.rows(); ++i) out[i] = 0.5;
  }

 private:
  std::size_t n_;
  std::function<void(int)> on_destroy_;
};

}  // namespace

TEST_CASE_FIXTURE(Fixture, "one repository serves several models, each following its own active version") {
  versions("fraud", 2);
  versions("churn", 2);
  versions("idle", 1);
  reg.promote(ModelRef::parse("fraud@1"));
  reg.promote(ModelRef::parse("churn@2"));
  ModelRepository r(db, manual({"fraud", "churn", "idle"}));
  CHECK(r.poll_now());
  CHECK(ask(r, "fraud").prediction.version == 1);
  CHECK(ask(r, "churn").prediction.version == 2);
  CHECK(ask(r, "fraud").alias == "active");
  // A model with nothing active is not ready, and says why; the others serve.
  CHECK_FALSE(r.ready("idle"));
  CHECK(contains(r.unready_reason("idle"), "no version of 'idle' is active; promote one"));
  CHECK(code_of([&] { ask(r, "idle"); }) == Errc::conflict);
  CHECK_FALSE(r.all_ready());
  // Each swaps on its own.
  reg.promote(ModelRef::parse("fraud@2"));
  CHECK(r.poll_now());
  CHECK(ask(r, "fraud").prediction.version == 2);
  CHECK(ask(r, "churn").prediction.version == 2);
  const auto s = r.status();
  CHECK(slot_of(s, "fraud", "active").swaps == 2);
  CHECK(slot_of(s, "churn", "active").swaps == 1);
  CHECK(slot_of(s, "fraud", "active").requests_by_version.at(1) == 2);
  CHECK(slot_of(s, "fraud", "active").requests_by_version.at(2) == 1);
  // A model not served, and a bad name.
  CHECK(code_of([&] { ask(r, "nosuch"); }) == Errc::not_found);
  CHECK(contains(message_of([&] { ask(r, "nosuch"); }), "model 'nosuch' is not served here"));
}

TEST_CASE_FIXTURE(Fixture, "a request names a version by alias (followed) or by number (pinned)") {
  versions("fraud", 3);
  reg.promote(ModelRef::parse("fraud@1"));
  reg.set_alias(ModelRef::parse("fraud@2"), "champion");
  ModelRepository r(db, manual({"fraud"}));
  r.poll_now();
  CHECK(ask(r, "fraud", "champion").prediction.version == 2);
  CHECK(ask(r, "fraud", "champion").alias == "champion");
  CHECK(ask(r, "fraud", "3").prediction.version == 3);
  CHECK(ask(r, "fraud", "3").alias.empty());
  CHECK(ask(r, "fraud", "active").prediction.version == 1);
  // The alias slot follows the alias; the pinned one stays.
  reg.set_alias(ModelRef::parse("fraud@3"), "champion");
  CHECK(r.poll_now());
  CHECK(ask(r, "fraud", "champion").prediction.version == 3);
  CHECK(ask(r, "fraud", "3").prediction.version == 3);
  CHECK(ask(r, "fraud").prediction.version == 1);
  // Names that do not exist are not_found and keep no slot; bad names are invalid.
  CHECK(code_of([&] { ask(r, "fraud", "9"); }) == Errc::not_found);
  CHECK(code_of([&] { ask(r, "fraud", "challenger"); }) == Errc::not_found);
  CHECK(contains(message_of([&] { ask(r, "fraud", "challenger"); }), "no version of 'fraud' holds the alias 'challenger'"));
  CHECK(code_of([&] { ask(r, "fraud", "bad name!"); }) == Errc::invalid_argument);
  CHECK(code_of([&] { ask(r, "fraud", "0"); }) == Errc::not_found);
  const auto s = r.status();
  CHECK(model_of(s, "fraud").slots.size() == 3);  // active, champion, 3
  // The same version followed by two slots is loaded once.
  reg.promote(ModelRef::parse("fraud@3"));
  r.poll_now();
  const auto after = r.status();
  CHECK(after.memory_bytes == slot_of(after, "fraud", "active").memory_bytes);
}

TEST_CASE_FIXTURE(Fixture, "requests for other versions make at most max_extra_slots_per_model slots") {
  versions("fraud", 4);
  reg.promote(ModelRef::parse("fraud@1"));
  auto o = manual({"fraud"});
  o.max_extra_slots_per_model = 2;
  ModelRepository r(db, o);
  r.poll_now();
  for (int v = 1; v <= 4; ++v) CHECK(ask(r, "fraud", std::to_string(v)).prediction.version == v);
  const auto s = r.status();
  CHECK(model_of(s, "fraud").slots.size() == 3);  // active + the two most recent
}

TEST_CASE_FIXTURE(Fixture, "a split sends its share to the alias, sticky by key, and active takes it while the alias is unset") {
  versions("fraud", 2);
  reg.promote(ModelRef::parse("fraud@1"));
  auto o = manual({"fraud"});
  o.splits.push_back({"fraud", "challenger", 10});
  ModelRepository r(db, o);
  r.poll_now();
  for (int i = 0; i < 200; ++i) CHECK(ask(r, "fraud", "", fmt::format("k{}", i)).prediction.version == 1);
  reg.set_alias(ModelRef::parse("fraud@2"), "challenger");
  r.poll_now();
  int challenger = 0;
  std::map<std::string, std::int64_t> first;
  for (int i = 0; i < 10'000; ++i) {
    const std::string key = fmt::format("request-{}", i);
    const auto p = ask(r, "fraud", "", key);
    first[key] = p.prediction.version;
    if (p.prediction.version == 2) {
      ++challenger;
      CHECK(p.alias == "challenger");
    }
  }
  CHECK(challenger >= 850);
  CHECK(challenger <= 1150);
  // Sticky: every key lands where it landed before.
  for (int i = 0; i < 10'000; i += 7) {
    const std::string key = fmt::format("request-{}", i);
    CHECK(ask(r, "fraud", "", key).prediction.version == first[key]);
  }
  // Without a key: random, about the same share.
  int unkeyed = 0;
  for (int i = 0; i < 4000; ++i) unkeyed += ask(r, "fraud").prediction.version == 2;
  CHECK(unkeyed > 200);
  CHECK(unkeyed < 600);
  // A request naming a version is never split.
  for (int i = 0; i < 100; ++i) CHECK(ask(r, "fraud", "active", fmt::format("request-{}", i)).prediction.version == 1);
  CHECK(model_of(r.status(), "fraud").split->percent == 10);
}

TEST_CASE_FIXTURE(Fixture, "the options are checked") {
  versions("fraud", 1);
  auto bad = [&](auto edit) {
    auto o = manual({"fraud"});
    edit(o);
    return message_of([&] { ModelRepository r(db, o); });
  };
  CHECK(contains(bad([](auto& o) { o.splits.push_back({"churn", "b", 10}); }), "model 'churn', which is not served"));
  CHECK(contains(bad([](auto& o) { o.splits.push_back({"fraud", "b", 0}); }), "above 0 and below 100"));
  CHECK(contains(bad([](auto& o) { o.splits.push_back({"fraud", "b", 100}); }), "above 0 and below 100"));
  CHECK(contains(bad([](auto& o) { o.splits.push_back({"fraud", "active", 5}); }), "name another alias"));
  CHECK(contains(bad([](auto& o) { o.splits.push_back({"fraud", "7", 5}); }), "is a version number"));
  CHECK(contains(bad([](auto& o) { o.shadows.push_back({"fraud", "bad alias"}); }), "is not a valid model reference"));
  CHECK(contains(bad([](auto& o) { o.models = {}; }), "no model to serve"));
  CHECK(contains(bad([](auto& o) { o.models = {"fraud", "fraud"}; }), "named twice"));
  CHECK(contains(bad([](auto& o) { o.models = {"../x"}; }), "invalid"));
}

TEST_CASE_FIXTURE(Fixture, "all_models serves models as they get an active version; unload and load move them in and out") {
  versions("fraud", 1);
  versions("churn", 1);
  reg.promote(ModelRef::parse("fraud@1"));
  auto o = manual({});
  o.all_models = true;
  ModelRepository r(db, o);
  r.poll_now();
  CHECK(r.serves("fraud"));
  CHECK_FALSE(r.serves("churn"));
  reg.promote(ModelRef::parse("churn@1"));
  versions("late", 1);
  reg.promote(ModelRef::parse("late@1"));
  r.poll_now();
  CHECK(ask(r, "churn").prediction.version == 1);
  CHECK(ask(r, "late").prediction.version == 1);
  auto index = r.index();
  REQUIRE(index.size() == 3);
  CHECK(index[0].name == "churn");
  CHECK(index[0].state == "READY");
  CHECK(index[0].version == 1);
  // Unloaded: not served, and not brought back by the next poll.
  r.unload("late");
  CHECK(code_of([&] { ask(r, "late"); }) == Errc::not_found);
  versions("late", 1);
  r.poll_now();
  CHECK_FALSE(r.serves("late"));
  index = r.index();
  CHECK(index[2].state == "UNAVAILABLE");
  CHECK(index[2].reason == "unloaded");
  r.load("late");
  CHECK(ask(r, "late").prediction.version == 1);
  CHECK(code_of([&] { r.load("nosuch"); }) == Errc::not_found);
  CHECK(code_of([&] { r.unload("nosuch"); }) == Errc::not_found);
  // load() of a model with nothing active: conflict, with the reason.
  versions("fresh", 1);
  CHECK(code_of([&] { r.load("fresh"); }) == Errc::conflict);
  CHECK(contains(message_of([&] { r.load("fresh"); }), "no version of 'fresh' is active"));
}

TEST_CASE_FIXTURE(Fixture, "a version that fails to load never replaces the serving one, and is retried with backoff") {
  versions("fraud", 2);
  reg.promote(ModelRef::parse("fraud@1"));
  int failures = 0;
  auto o = manual({"fraud"});
  o.loader = [&](const Registry& registry, const ModelVersion& v) -> std::shared_ptr<const Model> {
    if (v.id.number == 2 && failures++ < 2) throw Error(Errc::validation_failed, "fraud@2: probe mismatch");
    return registry.load_model(ModelRef::number(v.id.model, v.id.number)).model;
  };
  ModelRepository r(db, o);
  r.poll_now();
  reg.promote(ModelRef::parse("fraud@2"));
  CHECK_FALSE(r.poll_now());
  CHECK(ask(r, "fraud").prediction.version == 1);
  auto s = slot_of(r.status(), "fraud", "active");
  CHECK(s.load_failures == 1);
  CHECK(contains(s.last_error.value_or(""), "probe mismatch"));
  CHECK(s.desired_version == 2);
  CHECK_FALSE(r.poll_now());  // backing off: not tried again yet
  CHECK(failures == 1);
  now += std::chrono::milliseconds(300);
  CHECK_FALSE(r.poll_now());  // the second failure doubles the backoff
  CHECK(failures == 2);
  now += std::chrono::milliseconds(300);
  CHECK_FALSE(r.poll_now());
  now += std::chrono::milliseconds(300);
  CHECK(r.poll_now());
  CHECK(ask(r, "fraud").prediction.version == 2);
}

TEST_CASE_FIXTURE(Fixture, "over the memory bound, the least recently used models are unloaded and come back when asked for") {
  versions("a", 1);
  versions("b", 1);
  versions("c", 1);
  for (const char* m : {"a", "b", "c"}) reg.promote(ModelRef::parse(fmt::format("{}@1", m)));
  const auto size = reg.find(ModelRef::parse("a@1"))->blob.raw_size;
  auto o = manual({"a", "b", "c"});
  o.max_memory_bytes = 2 * size + size / 2;  // room for two
  ModelRepository r(db, o);
  r.poll_now();
  auto s = r.status();
  CHECK(s.memory_bytes <= o.max_memory_bytes);
  CHECK(s.unloads == 1);
  // Whichever is unloaded now comes back when asked for, and another makes room.
  ask(r, "a");
  ask(r, "b");
  const auto before = r.status();
  std::string unloaded;
  for (const auto& m : before.models) {
    if (m.slots.front().state == "unloaded") unloaded = m.model;
  }
  REQUIRE_FALSE(unloaded.empty());
  CHECK(slot_of(before, unloaded, "active").reason == "unloaded to stay within the memory bound; loaded again on the next request");
  CHECK(ask(r, unloaded).prediction.version == 1);  // loaded again on request
  s = r.status();
  CHECK(s.memory_bytes <= o.max_memory_bytes);
  CHECK(s.unloads == before.unloads + 1);
  CHECK(slot_of(s, unloaded, "active").state == "loaded");
  CHECK(contains(fmt::format("{}", fmt::join(log, "\n")), "least recently used"));
}

TEST_CASE_FIXTURE(Fixture, "a model with a request in flight is never unloaded for memory") {
  versions("slow", 1);
  versions("other", 1);
  reg.promote(ModelRef::parse("slow@1"));
  reg.promote(ModelRef::parse("other@1"));
  Gate gate;
  auto o = manual({"slow", "other"});
  o.background = true;
  o.notify_changes = false;
  o.max_memory_bytes = 1;  // room for nothing: only in-flight models stay
  o.loader = [&](const Registry&, const ModelVersion& v) -> std::shared_ptr<const Model> {
    return std::make_shared<Constant>(0.5, data.test.x.cols(), v.id.model == "slow" ? &gate : nullptr);
  };
  ModelRepository r(db, o);
  auto slow = std::async(std::launch::async, [&] { return ask(r, "slow").prediction.version; });
  gate.wait_for_waiter();  // slow's request is inside the model now
  // Loading `other` goes over the bound: it cannot unload slow (in flight).
  CHECK(ask(r, "other").prediction.version == 1);
  CHECK(slot_of(r.status(), "slow", "active").state == "loaded");
  gate.open();
  CHECK(slow.get() == 1);
}

TEST_CASE_FIXTURE(Fixture, "loading one model never stalls the requests of another") {
  versions("steady", 1);
  versions("heavy", 2);
  reg.promote(ModelRef::parse("steady@1"));
  reg.promote(ModelRef::parse("heavy@1"));
  Gate load_gate;
  std::atomic<bool> block_heavy{false};
  auto o = manual({"steady", "heavy"});
  o.background = true;
  o.notify_changes = false;
  o.poll_interval = std::chrono::milliseconds(5);
  o.loader = [&](const Registry& registry, const ModelVersion& v) -> std::shared_ptr<const Model> {
    if (v.id.model == "heavy" && block_heavy) load_gate.wait();  // a load that takes as long as the test wants
    return registry.load_model(ModelRef::number(v.id.model, v.id.number)).model;
  };
  ModelRepository r(db, o);
  while (!(r.ready("steady") && r.ready("heavy"))) std::this_thread::yield();
  block_heavy = true;
  reg.promote(ModelRef::parse("heavy@2"));
  load_gate.wait_for_waiter();  // heavy@2 is loading, held
  // steady answers, heavy answers with its old version, the repository reports the load.
  for (int i = 0; i < 50; ++i) CHECK(ask(r, "steady").prediction.version == 1);
  CHECK(ask(r, "heavy").prediction.version == 1);
  CHECK(slot_of(r.status(), "heavy", "active").desired_version == 2);
  load_gate.open();
  while (ask(r, "heavy").prediction.version != 2) std::this_thread::yield();
}

TEST_CASE_FIXTURE(Fixture, "a shadow scores every default request off the response path and counts disagreements") {
  versions("fraud", 2);
  reg.promote(ModelRef::parse("fraud@1"));
  reg.set_alias(ModelRef::parse("fraud@2"), "candidate");
  Gate shadow_gate;
  auto o = manual({"fraud"});
  o.background = true;
  o.notify_changes = false;
  o.shadows.push_back({"fraud", "candidate"});
  o.shadow_queue_capacity = 3;
  o.loader = [&](const Registry&, const ModelVersion& v) -> std::shared_ptr<const Model> {
    // active answers 0.9 (label 1); the candidate 0.2 (label 0) and is held by the gate.
    if (v.id.number == 2) return std::make_shared<Constant>(0.2, data.test.x.cols(), &shadow_gate);
    return std::make_shared<Constant>(0.9, data.test.x.cols());
  };
  ModelRepository r(db, o);
  while (!r.ready("fraud") || slot_of(r.status(), "fraud", "candidate").state != "loaded") std::this_thread::yield();
  // The shadow is held inside its first batch; responses do not wait, and the queue fills.
  for (int i = 0; i < 10; ++i) CHECK(ask(r, "fraud").prediction.version == 1);
  shadow_gate.wait_for_waiter();
  for (int i = 0; i < 10; ++i) CHECK(ask(r, "fraud").prediction.version == 1);
  auto shadow = *model_of(r.status(), "fraud").shadow;
  CHECK(shadow.dropped > 0);
  CHECK(shadow.queued + shadow.dropped == 20);
  CHECK(shadow.alias == "candidate");
  // Requests that name a version are not shadowed.
  ask(r, "fraud", "active");
  shadow_gate.open();
  while (model_of(r.status(), "fraud").shadow->scored < shadow.queued) std::this_thread::yield();
  shadow = *model_of(r.status(), "fraud").shadow;
  CHECK(shadow.queued + shadow.dropped == 20);
  CHECK(shadow.rows == shadow.scored * 5);
  CHECK(shadow.label_disagreements == shadow.rows);
  CHECK(shadow.difference_sum == doctest::Approx(0.7 * static_cast<double>(shadow.rows)));
  CHECK(shadow.difference_counts.size() == shadow.difference_bounds.size() + 1);
}

TEST_CASE_FIXTURE(Fixture, "a commit wakes the repository at once; the poll interval is only the fallback") {
  versions("fraud", 2);
  reg.promote(ModelRef::parse("fraud@1"));
  auto o = manual({"fraud"});
  o.background = true;
  o.poll_interval = std::chrono::minutes(10);  // only a change notification can make it look again
  ModelRepository r(db, o);
  while (!r.ready("fraud")) std::this_thread::yield();  // the first poll runs at start
  CHECK(r.status().change_notifications);
  reg.promote(ModelRef::parse("fraud@2"));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (ask(r, "fraud").prediction.version != 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  CHECK(ask(r, "fraud").prediction.version == 2);
  CHECK(r.status().wakeups >= 1);
}

TEST_CASE_FIXTURE(Fixture, "a replaced model is destroyed by a loader, at the loaders' priority, never by the poller") {
  // Freeing a large forest takes milliseconds of CPU: on the poller (normal priority, running right
  // after every commit) it would delay the requests of every other model.
  versions("m", 2);
  reg.promote(ModelRef::parse("m@1"));
  auto o = manual({"m"});
  o.background = true;
  o.notify_changes = false;
  o.poll_interval = std::chrono::milliseconds(5);
  o.load_nice = 7;
  std::mutex mutex;
  std::condition_variable destroyed_cv;
  std::vector<std::pair<std::int64_t, int>> destroyed;  // version, nice of the destroying thread
  o.loader = [&](const Registry&, const ModelVersion& v) -> std::shared_ptr<const Model> {
    const std::int64_t number = v.id.number;
    return std::make_shared<Reporting>(data.test.x.cols(), [&, number](int nice) {
      std::lock_guard lock(mutex);
      destroyed.emplace_back(number, nice);
      destroyed_cv.notify_all();
    });
  };
  ModelRepository r(db, o);
  while (!r.ready("m")) std::this_thread::yield();
  reg.promote(ModelRef::parse("m@2"));
  while (ask(r, "m").prediction.version != 2) std::this_thread::yield();
  {
    std::unique_lock lock(mutex);
    destroyed_cv.wait(lock, [&] { return !destroyed.empty(); });
    REQUIRE(destroyed.size() == 1);
    CHECK(destroyed[0].first == 1);
    CHECK(destroyed[0].second == 7);  // a loader thread's nice value; the poller runs at 0
  }
}
