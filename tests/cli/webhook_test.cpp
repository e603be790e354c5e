// Webhook delivery over HTTP to receivers on 127.0.0.1 (httplib servers on port 0 in this
// process): the payload, its headers and signature checked with the test's own HMAC; retries
// with backoff; giving up; unreachable and silent receivers delaying no other webhook; the
// delivering process (`modelreg webhook run`) killed between the commit and the delivery; and
// `modelreg webhook` from the shell, refusals leaving the registry unchanged.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <fstream>
#include <functional>
#include <mutex>
#include <thread>
#include <tuple>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "../model_test_support.hpp"
#include "../test_support.hpp"
#include "modelreg/webhooks.hpp"
#include "process_harness.hpp"
#include "webhook_dispatcher.hpp"

using namespace modelreg;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

extern char** environ;

namespace {

const std::string kSecret = "a-webhook-secret-of-32-bytes-xyz";

std::filesystem::path secret_file(const test::TempDir& dir) {
  const auto file = dir / "hook.key";
  std::ofstream(file) << kSecret << "\n";
  REQUIRE(::chmod(file.c_str(), 0600) == 0);
  return file;
}

// The test's own HMAC-SHA256, independent of the library's.
std::string hmac_hex(const std::string& key, const std::string& body) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  REQUIRE(HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(body.data()),
               body.size(), mac, &size) != nullptr);
  std::string hex;
  for (unsigned i = 0; i < size; ++i) hex += fmt::format("{:02x}", mac[i]);
  return hex;
}

struct Request {
  std::string path;
  httplib::Headers headers;
  std::string body;
  Clock::time_point at;
  std::int64_t event_id() const { return json::parse(body)["id"].get<std::int64_t>(); }
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string("<none>") : it->second;
  }
};

// An HTTP receiver on 127.0.0.1 (port 0). `answer` gives the status for the n-th request (0-based);
// it may block (a receiver that does not answer) until the test lets it go.
class Receiver {
 public:
  explicit Receiver(std::function<int(const Request&, std::size_t)> answer = {}) : answer_(std::move(answer)) {
    server_.Post(".*", [this](const httplib::Request& req, httplib::Response& res) {
      Request r{req.path, req.headers, req.body, Clock::now()};
      std::size_t index = 0;
      {
        std::lock_guard lock(mutex_);
        index = requests_.size();
        requests_.push_back(r);
      }
      cv_.notify_all();
      res.status = answer_ ? answer_(r, index) : 200;
      res.set_content("ok", "text/plain");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~Receiver() {
    server_.stop();
    thread_.join();
  }
  std::string url(const std::string& path = "/hook") const { return fmt::format("http://127.0.0.1:{}{}", port_, path); }
  // Waits until `n` requests came (REQUIREs it within 20 s).
  std::vector<Request> wait_for(std::size_t n) {
    std::unique_lock lock(mutex_);
    REQUIRE_MESSAGE(cv_.wait_for(lock, std::chrono::seconds(20), [&] { return requests_.size() >= n; }),
                    "the receiver got ", requests_.size(), " requests, not ", n);
    return requests_;
  }
  std::vector<Request> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }
 private:
  std::function<int(const Request&, std::size_t)> answer_;
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mutex_;  // protects requests_
  std::condition_variable cv_;
  std::vector<Request> requests_;
};

// A port on 127.0.0.1 where nothing listens: bound, then closed.
int closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  ::close(fd);
  return ntohs(a.sin_port);
}

// The attempts recorded, as the dispatcher's `recorded` seam reports them.
class Recorded {
 public:
  std::function<void(const Delivery&)> sink() {
    return [this](const Delivery& d) {
      {
        std::lock_guard lock(mutex_);
        list_.push_back(d);
      }
      cv_.notify_all();
    };
  }
  // Waits until `pred` holds for the list (REQUIREs it within 20 s).
  std::vector<Delivery> wait(const std::function<bool(const std::vector<Delivery>&)>& pred) {
    std::unique_lock lock(mutex_);
    REQUIRE(cv_.wait_for(lock, std::chrono::seconds(20), [&] { return pred(list_); }));
    return list_;
  }
  std::vector<Delivery> wait_count(std::size_t n) {
    return wait([n](const std::vector<Delivery>& l) { return l.size() >= n; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<Delivery> list_;
};

cli::DispatcherOptions fast(Recorded& recorded) {
  cli::DispatcherOptions o;
  o.poll_interval = std::chrono::milliseconds(10);
  o.connect_timeout = std::chrono::milliseconds(2'000);
  o.read_timeout = std::chrono::milliseconds(30'000);
  o.first_retry = std::chrono::milliseconds(20);
  o.max_retry_delay = std::chrono::milliseconds(200);
  o.give_up_after = std::chrono::minutes(10);
  o.recorded = recorded.sink();
  return o;
}

NewWebhook hook(const std::string& url, std::vector<std::string> kinds = webhook_kinds()) {
  NewWebhook n;
  n.url = url;
  n.kinds = std::move(kinds);
  return n;
}

// A modelreg child process, its stdout and stderr (where the delivery worker writes one line per
// attempt) read by a thread of the test; the constructor returns once a line holding `ready` came.
class ChildProcess {
 public:
  ChildProcess(std::vector<std::string> args, const std::string& ready) : args_(std::move(args)) {
    args_.insert(args_.begin(), test::modelreg_binary());
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    ::posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
    std::vector<char*> argv;
    for (auto& a : args_) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    ::posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    REQUIRE(rc == 0);
    reader_ = std::thread([this, fd = fds[0]] {
      std::string line;
      char c = 0;
      while (::read(fd, &c, 1) == 1) {
        if (c != '\n') {
          line += c;
          continue;
        }
        {
          std::lock_guard lock(mutex_);
          lines_.push_back(line);
        }
        cv_.notify_all();
        line.clear();
      }
      ::close(fd);
    });
    if (!saw_line(ready)) {
      stop(SIGKILL);
      reader_.join();
      FAIL(fmt::format("{}", fmt::join(args_, " ")), " did not start; it said:\n",
           fmt::format("{}", fmt::join(lines_, "\n")));
    }
  }
  ~ChildProcess() {
    if (pid_ > 0) stop(SIGKILL);
    reader_.join();
  }
  // Waits for a line holding `text` (REQUIREs one within 20 s).
  void wait_line(const std::string& text) {
    REQUIRE_MESSAGE(saw_line(text), "no line with '", text, "' from modelreg; it said:\n",
                    fmt::format("{}", fmt::join(lines_, "\n")));
  }
  // The first line holding `text` (REQUIREs one within 20 s).
  std::string line_with(const std::string& text) {
    wait_line(text);
    std::lock_guard lock(mutex_);
    return *std::find_if(lines_.begin(), lines_.end(), [&](const std::string& l) { return test::contains(l, text); });
  }
  // The lines so far.
  std::vector<std::string> lines() {
    std::lock_guard lock(mutex_);
    return lines_;
  }
  // Whether a line holding `text` came within 20 s.
  bool saw_line(const std::string& text) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, std::chrono::seconds(20), [&] {
      return std::any_of(lines_.begin(), lines_.end(), [&](const std::string& l) { return test::contains(l, text); });
    });
  }
  // Sends `signal`, waits; returns the exit status (-1 when a signal ended it).
  int stop(int signal) {
    ::kill(pid_, signal);
    const int status = test::wait_or_kill(pid_, Clock::now() + std::chrono::seconds(30));
    pid_ = -1;
    return status;
  }

 private:
  std::vector<std::string> args_;
  pid_t pid_ = -1;
  std::thread reader_;
  std::mutex mutex_;  // protects lines_
  std::condition_variable cv_;
  std::vector<std::string> lines_;
};

// `modelreg --db DB webhook run` with fast polls and retries.
class DeliveryProcess : public ChildProcess {
 public:
  explicit DeliveryProcess(const std::filesystem::path& db, const std::string& first_retry_ms = "20")
      : ChildProcess({"--db", db.string(), "webhook", "run", "--poll-ms", "10", "--first-retry-ms", first_retry_ms,
                      "--max-retry-ms", "100000"},
                     "delivering the webhooks of " + db.string()) {}
};

}  // namespace

TEST_CASE("each event is POSTed with the documented payload and headers, signed as the receiver can check") {
  test::TempDir dir;
  Registry reg(dir / "r.db");
  Receiver signed_receiver, plain_receiver;
  WebhookStore store(dir / "r.db");
  NewWebhook n = hook(signed_receiver.url("/hooks/modelreg?team=risk"));
  n.secret_file = secret_file(dir);
  const Webhook signed_hook = store.add_webhook(n);
  const Webhook plain_hook = store.add_webhook(hook(plain_receiver.url(), {"promote"}));
  Recorded recorded;
  cli::WebhookDispatcher dispatcher(dir / "r.db", {}, fast(recorded));

  reg.register_bytes(test::spec("fraud"), "a");
  reg.set_tag(test::ref("fraud@1"), "stage", "dev");  // not delivered
  reg.promote(test::ref("fraud@1"), {.reason = "first <model> & \"quotes\"", .actor = "ci"});
  const auto got = signed_receiver.wait_for(2);
  const auto history = reg.history("fraud");
  REQUIRE(history.size() == 3);
  REQUIRE(got.size() == 2);
  CHECK(got[0].body == webhook_payload(history[0]));
  CHECK(got[1].body == webhook_payload(history[2]));
  CHECK(got[1].body == fmt::format(R"({{"id":3,"kind":"promote","action":"promote","model":"fraud","version":1,)"
                                   R"("from_version":null,"to_version":1,"alias":"active","actor":"ci",)"
                                   R"("reason":"first <model> & \"quotes\"","at":"{}"}})",
                                   history[2].at));
  for (const auto& r : got) {
    CHECK(r.path == "/hooks/modelreg");
    CHECK(r.header("Content-Type") == "application/json");
    CHECK(r.header("X-Modelreg-Signature") == "sha256=" + hmac_hex(kSecret, r.body));
    CHECK(r.header("X-Modelreg-Webhook") == std::to_string(signed_hook.id));
    CHECK(r.header("X-Modelreg-Event-Id") == std::to_string(r.event_id()));
  }
  CHECK(got[0].header("X-Modelreg-Event") == "register");
  CHECK(got[1].header("X-Modelreg-Event") == "promote");
  // A body changed in transit no longer matches its signature.
  CHECK(got[1].header("X-Modelreg-Signature") != "sha256=" + hmac_hex(kSecret, got[1].body + " "));

  const auto plain = plain_receiver.wait_for(1);
  CHECK(plain[0].body == webhook_payload(history[2]));
  CHECK(plain[0].header("X-Modelreg-Signature") == "<none>");

  recorded.wait_count(3);
  const auto deliveries = store.deliveries();
  REQUIRE(deliveries.size() == 3);
  for (const auto& d : deliveries) {
    CHECK(d.outcome == DeliveryOutcome::delivered);
    CHECK(d.attempt == 1);
    CHECK(d.http_status == 200);
  }
  CHECK(store.webhook(signed_hook.id).delivered_through == 3);
  CHECK(store.webhook(plain_hook.id).delivered_through == 3);
  CHECK(signed_receiver.requests().size() == 2);  // each event once
}

TEST_CASE("a receiver answering 500 gets the same signed body again, after doubling waits, until it answers 2xx") {
  test::TempDir dir;
  Registry reg(dir / "r.db");
  Receiver receiver([](const Request&, std::size_t n) { return n < 3 ? 500 : 202; });
  WebhookStore store(dir / "r.db");
  NewWebhook n = hook(receiver.url(), {"register"});
  n.secret_file = secret_file(dir);
  const Webhook w = store.add_webhook(n);
  Recorded recorded;
  cli::WebhookDispatcher dispatcher(dir / "r.db", {}, fast(recorded));
  reg.register_bytes(test::spec("fraud"), "a");

  const auto got = receiver.wait_for(4);
  for (const auto& r : got) {
    CHECK(r.body == got[0].body);
    CHECK(r.header("X-Modelreg-Signature") == "sha256=" + hmac_hex(kSecret, got[0].body));
  }
  // first_retry 20 ms, doubling: at least 20, 40 and 80 ms between the attempts.
  CHECK(got[1].at - got[0].at >= std::chrono::milliseconds(20));
  CHECK(got[2].at - got[1].at >= std::chrono::milliseconds(40));
  CHECK(got[3].at - got[2].at >= std::chrono::milliseconds(80));
  recorded.wait_count(4);
  const auto d = store.deliveries(w.id);
  REQUIRE(d.size() == 4);
  CHECK(d[3].attempt == 1);
  CHECK(d[3].http_status == 500);
  CHECK(d[3].error == "the receiver answered 500");
  CHECK(d[3].outcome == DeliveryOutcome::retry);
  CHECK(d[1].attempt == 3);
  CHECK(d[1].outcome == DeliveryOutcome::retry);
  CHECK(d[0].attempt == 4);
  CHECK(d[0].http_status == 202);
  CHECK(d[0].outcome == DeliveryOutcome::delivered);
  CHECK(store.webhook(w.id).delivered_through == 1);
}

TEST_CASE("nothing is sent while the secret file is readable by others; the attempt says why, and is retried") {
  test::TempDir dir;
  Registry reg(dir / "r.db");
  Receiver receiver;
  WebhookStore store(dir / "r.db");
  NewWebhook n = hook(receiver.url(), {"register"});
  n.secret_file = secret_file(dir);
  const Webhook w = store.add_webhook(n);
  REQUIRE(::chmod(n.secret_file->c_str(), 0644) == 0);
  Recorded recorded;
  cli::WebhookDispatcher dispatcher(dir / "r.db", {}, fast(recorded));
  reg.register_bytes(test::spec("fraud"), "a");
  const auto first = recorded.wait_count(1);
  CHECK(first[0].http_status == std::nullopt);
  CHECK(first[0].outcome == DeliveryOutcome::retry);
  CHECK(first[0].error == fmt::format("webhook secret file '{}' is accessible by others (mode 0644); a key must be "
                                      "readable only by its owner: chmod 600 {}",
                                      n.secret_file->string(), n.secret_file->string()));
  CHECK(receiver.requests().empty());
  REQUIRE(::chmod(n.secret_file->c_str(), 0600) == 0);
  const auto got = receiver.wait_for(1);
  CHECK(got[0].header("X-Modelreg-Signature") == "sha256=" + hmac_hex(kSecret, got[0].body));
  const auto list = recorded.wait([](const std::vector<Delivery>& l) { return l.back().outcome == DeliveryOutcome::delivered; });
  CHECK(list.back().event_id == 1);
  CHECK(store.webhook(w.id).delivered_through == 1);
}

TEST_CASE("an event still refused when its retry budget is spent is recorded failed, and the next is delivered") {
  test::TempDir dir;
  Registry reg(dir / "r.db");
  Receiver receiver([](const Request& r, std::size_t) { return r.event_id() == 1 ? 503 : 200; });
  WebhookStore store(dir / "r.db");
  const Webhook w = store.add_webhook(hook(receiver.url(), {"register"}));
  Recorded recorded;
  auto o = fast(recorded);
  o.give_up_after = std::chrono::milliseconds(300);
  cli::WebhookDispatcher dispatcher(dir / "r.db", {}, o);
  reg.register_bytes(test::spec("fraud"), "a");  // 1: always refused
  reg.register_bytes(test::spec("fraud"), "b");  // 2

  const auto list = recorded.wait([](const std::vector<Delivery>& l) {
    return !l.empty() && l.back().event_id == 2;
  });
  const auto& last_of_1 = list[list.size() - 2];
  CHECK(last_of_1.event_id == 1);
  CHECK(last_of_1.outcome == DeliveryOutcome::failed);
  CHECK(last_of_1.http_status == 503);
  CHECK(last_of_1.attempt >= 3);  // 20 + 40 (+ 80) ms of waits fit in the 300 ms budget
  for (std::size_t i = 0; i + 2 < list.size(); ++i) CHECK(list[i].outcome == DeliveryOutcome::retry);
  CHECK(list.back().outcome == DeliveryOutcome::delivered);
  CHECK(store.webhook(w.id).delivered_through == 2);
  // The receiver never saw event 2 before event 1 was given up.
  const auto got = receiver.requests();
  CHECK(got.back().event_id() == 2);
  CHECK(got.size() == list.size());
}

TEST_CASE("an unreachable receiver and one that never answers delay no other webhook, nor the dispatcher's stop") {
  test::TempDir dir;
  Registry reg(dir / "r.db");
  Receiver good;
  WebhookStore store(dir / "r.db");
  const Webhook closed = store.add_webhook(hook(fmt::format("http://127.0.0.1:{}/hook", closed_port()), {"register"}));
  std::mutex m;
  std::condition_variable cv;
  bool let_go = false;
  // Never answers until the test lets it (after the dispatcher stopped).
  Receiver never([&](const Request&, std::size_t) {
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return let_go; });
    return 200;
  });
  const Webhook stuck = store.add_webhook(hook(never.url(), {"register"}));
  const Webhook fine = store.add_webhook(hook(good.url(), {"register"}));
  Recorded recorded;
  auto options = fast(recorded);
  options.read_timeout = std::chrono::seconds(60);
  Clock::time_point stop_started;
  {
    cli::WebhookDispatcher dispatcher(dir / "r.db", {}, options);
    reg.register_bytes(test::spec("fraud"), "a");
    reg.register_bytes(test::spec("churn"), "b");
    // Both events reach the good receiver while the silent one holds the first request open.
    const auto got = good.wait_for(2);
    CHECK(got[0].event_id() == 1);
    CHECK(got[1].event_id() == 2);
    CHECK(never.wait_for(1).size() == 1);
    const auto list = recorded.wait([&](const std::vector<Delivery>& l) {
      const auto n = std::count_if(l.begin(), l.end(), [&](const Delivery& d) {
        return d.webhook_id == fine.id && d.outcome == DeliveryOutcome::delivered;
      });
      const bool refused = std::any_of(l.begin(), l.end(), [&](const Delivery& d) { return d.webhook_id == closed.id; });
      return n == 2 && refused;
    });
    for (const auto& d : list) {
      CHECK(d.webhook_id != stuck.id);  // its request is still waiting for an answer
      if (d.webhook_id == closed.id) {
        CHECK(d.http_status == std::nullopt);
        CHECK(d.error == "Connection");
        CHECK(d.outcome == DeliveryOutcome::retry);
      }
    }
    stop_started = Clock::now();
  }
  // The request in flight is cut off at stop, not waited for (the read timeout is 60 s).
  CHECK(Clock::now() - stop_started < std::chrono::seconds(5));
  {
    std::lock_guard lock(m);
    let_go = true;
  }
  cv.notify_all();
  // Cut off by the stop, the silent webhook's attempt was not recorded: the next process sends it.
  CHECK(store.webhook(stuck.id).delivered_through == 0);
  CHECK(store.deliveries(stuck.id).empty());
  CHECK(store.pending_events(stuck.id).size() == 2);
}

TEST_CASE("webhooks added and removed while the dispatcher runs are picked up") {
  test::TempDir dir;
  Registry reg(dir / "r.db");
  Receiver first, second;
  Recorded recorded;
  cli::WebhookDispatcher dispatcher(dir / "r.db", {}, fast(recorded));
  WebhookStore store(dir / "r.db");
  const Webhook a = store.add_webhook(hook(first.url(), {"register"}));
  reg.register_bytes(test::spec("fraud"), "a");
  CHECK(first.wait_for(1)[0].event_id() == 1);
  recorded.wait_count(1);
  store.remove_webhook(a.id);
  const Webhook b = store.add_webhook(hook(second.url(), {"register"}));
  reg.register_bytes(test::spec("fraud"), "b");
  CHECK(second.wait_for(1)[0].event_id() == 2);
  recorded.wait([&](const std::vector<Delivery>& l) { return !l.empty() && l.back().webhook_id == b.id; });
  CHECK(first.requests().size() == 1);
  CHECK(store.webhook(a.id).delivered_through == 1);
}

TEST_CASE("of two dispatchers on one registry one delivers; the other takes over when it stops") {
  test::TempDir dir;
  Registry reg(dir / "r.db");
  Receiver receiver;
  WebhookStore store(dir / "r.db");
  store.add_webhook(hook(receiver.url(), {"register"}));
  Recorded first_recorded, second_recorded;
  auto second = std::make_unique<cli::WebhookDispatcher>(dir / "r.db", Options{}, fast(second_recorded));
  std::mutex log_mutex;
  std::vector<std::string> standby_log;
  auto standby_options = fast(first_recorded);
  standby_options.log = [&](std::string_view line) {
    std::lock_guard lock(log_mutex);
    standby_log.emplace_back(line);
  };
  {
    // Started second, this one stands by; the one above holds the lock.
    cli::WebhookDispatcher standby(dir / "r.db", {}, standby_options);
    CHECK(second->delivering());
    CHECK_FALSE(standby.delivering());
    reg.register_bytes(test::spec("fraud"), "a");
    reg.register_bytes(test::spec("fraud"), "b");
    second_recorded.wait_count(2);
    second.reset();
    reg.register_bytes(test::spec("fraud"), "c");
    const auto list = first_recorded.wait_count(1);
    CHECK(standby.delivering());
    CHECK(list[0].event_id == 3);
  }
  REQUIRE(standby_log.size() >= 2);
  CHECK(standby_log[0] == fmt::format("webhooks: another process delivers them (it holds {}-webhooks.lock); standing by",
                                      (dir / "r.db").string()));
  CHECK(standby_log[1] == fmt::format("webhooks: took over delivery (the lock {}-webhooks.lock was released)",
                                      (dir / "r.db").string()));
  std::vector<std::int64_t> sent;
  for (const auto& r : receiver.requests()) sent.push_back(r.event_id());
  CHECK(sent == std::vector<std::int64_t>{1, 2, 3});  // each once
}

TEST_CASE("a delivering process killed between the commit and the delivery: the next one delivers, in order") {
  test::TempDir dir;
  const auto db = dir / "r.db";
  std::mutex m;
  std::condition_variable cv;
  bool accept = false, let_go = false;
  Receiver receiver([&](const Request&, std::size_t n) {
    std::unique_lock lock(m);
    if (n == 0) {
      // The first request: held until the process that sent it has been killed.
      cv.wait(lock, [&] { return let_go; });
      return 200;
    }
    return accept ? 200 : 503;
  });
  {
    WebhookStore store(db);
    NewWebhook n = hook(receiver.url());
    n.secret_file = secret_file(dir);
    store.add_webhook(n);
  }
  Registry reg(db);
  {
    DeliveryProcess process(db);
    reg.register_bytes(test::spec("fraud"), "a");  // 1
    receiver.wait_for(1);
    CHECK(process.stop(SIGKILL) == -1);  // killed mid-request: nothing recorded for event 1
  }
  {
    std::lock_guard lock(m);
    let_go = true;
  }
  cv.notify_all();
  // Committed while no process delivers.
  reg.promote(test::ref("fraud@1"));             // 2
  reg.register_bytes(test::spec("churn"), "b");  // 3
  reg.register_bytes(test::spec("fraud"), "c");  // 4
  {
    // Told 503, this one records its attempt 1 of event 1 and waits a minute before the next: killed.
    DeliveryProcess process(db, "60000");
    process.wait_line("event 1 (register fraud), attempt 1: status 503; retrying in 60000 ms");
    CHECK(process.stop(SIGKILL) == -1);
  }
  {
    std::lock_guard lock(m);
    accept = true;
  }
  DeliveryProcess process(db);
  process.wait_line("event 4 (register fraud), attempt 1: delivered");
  CHECK(process.stop(SIGTERM) == 0);

  // Event 1 three times (killed, 503, delivered), then each other event once, in event order,
  // which is each model's order.
  std::vector<std::int64_t> sent;
  for (const auto& r : receiver.requests()) {
    sent.push_back(r.event_id());
    CHECK(r.header("X-Modelreg-Signature") == "sha256=" + hmac_hex(kSecret, r.body));
  }
  CHECK(sent == std::vector<std::int64_t>{1, 1, 1, 2, 3, 4});
  WebhookStore store(db);
  CHECK(store.webhook(1).delivered_through == 4);
  // The killed request left no record; the 503 is a retry; then one delivery per event.
  std::vector<std::tuple<std::int64_t, int, std::string>> seen;
  const auto d = store.deliveries(1);
  for (auto it = d.rbegin(); it != d.rend(); ++it) {
    seen.emplace_back(it->event_id, it->attempt, std::string(to_string(it->outcome)));
  }
  CHECK(seen == std::vector<std::tuple<std::int64_t, int, std::string>>{
                    {1, 1, "retry"}, {1, 2, "delivered"}, {2, 1, "delivered"}, {3, 1, "delivered"}, {4, 1, "delivered"}});
}

TEST_CASE("modelreg webhook add, list, remove and deliveries from the shell; refusals change nothing") {
  test::TempDir dir;
  const auto db = (dir / "r.db").string();
  REQUIRE(test::modelreg({"--db", db, "init"}) == 0);
  const std::string bin = test::modelreg_binary();
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {bin, "--db", db});
    return test::run_command({.args = args, .capture_out = true, .capture_err = true});
  };
  const auto key = secret_file(dir);
  auto added = run({"--json", "webhook", "add", "https://deploy.example/hook", "--events", "promote,rollback",
                    "--secret-file", key.string()});
  REQUIRE(added.status == 0);
  const json w = json::parse(added.out);
  CHECK(w["id"] == 1);
  CHECK(w["url"] == "https://deploy.example/hook");
  CHECK(w["events"] == json::array({"promote", "rollback"}));
  CHECK(w["secret_file"] == key.string());
  CHECK(w["delivered_through"] == 0);
  CHECK(w["removed_at"].is_null());

  const std::string before = test::dump(dir / "r.db");
  ::chmod(key.c_str(), 0644);
  struct Case {
    std::vector<std::string> args;
    int status;
    std::string err;
  };
  const std::vector<Case> cases = {
      {{"webhook", "add", "ftp://h/", "--events", "promote"}, 1,
       "error: webhook URL 'ftp://h/' has scheme 'ftp': only http and https are delivered to"},
      {{"webhook", "add", "http://u:p@h/", "--events", "promote"}, 1, "holds credentials"},
      {{"webhook", "add", "http://h/", "--events", "promote,merge"}, 1, "unknown webhook event kind 'merge'"},
      {{"webhook", "add", "http://h/", "--events", "promote,"}, 2, "has an empty item"},
      {{"webhook", "add", "http://h/"}, 2, "--events is required"},
      {{"webhook", "add", "http://h/", "--events", "promote", "--secret-file", key.string()}, 1,
       "is accessible by others (mode 0644)"},
      {{"webhook", "add", "http://h/", "--events", "promote", "--secret-file", (dir / "none").string()}, 1,
       "does not exist"},
      {{"webhook", "remove", "7"}, 1, "there is no webhook 7"},
      {{"webhook", "remove", "x"}, 2, "'x' is not a webhook id"},
      {{"webhook", "deliveries", "7"}, 1, "there is no webhook 7"},
      {{"webhook", "deliveries", "--limit", "0"}, 2, "--limit 0 is not a positive number"},
      {{"--read-only", "webhook", "add", "http://h/", "--events", "promote"}, 1, "read-only"},
  };
  for (const auto& c : cases) {
    CAPTURE(fmt::format("{}", fmt::join(c.args, " ")));
    const auto r = run(c.args);
    CHECK(r.status == c.status);
    CHECK(test::contains(r.err, c.err));
    CHECK(r.out.empty());
  }
  CHECK(test::dump(dir / "r.db") == before);

  const auto listed = run({"--json", "webhook", "list"});
  REQUIRE(listed.status == 0);
  CHECK(json::parse(listed.out) == json::array({w}));
  const auto text = run({"webhook", "list"});
  CHECK(test::contains(text.out, "https://deploy.example/hook"));
  CHECK(test::contains(text.out, "promote,rollback"));
  const auto removed = run({"--json", "--actor", "ops", "webhook", "remove", "1"});
  REQUIRE(removed.status == 0);
  CHECK(json::parse(removed.out)["removed_by"] == "ops");
  CHECK(json::parse(run({"--json", "webhook", "list"}).out) == json::array());
  CHECK(json::parse(run({"--json", "webhook", "list", "--all"}).out).size() == 1);
  CHECK(json::parse(run({"--json", "webhook", "deliveries"}).out) == json::array());
  CHECK(run({"webhook", "deliveries", "1"}).out == "no delivery attempts yet\n");
}

TEST_CASE("modelreg webhook deliveries shows each attempt as JSON") {
  test::TempDir dir;
  const auto db = dir / "r.db";
  Registry reg(db);
  WebhookStore store(db);
  const Webhook w = store.add_webhook(hook("http://127.0.0.1:9/", {"register"}));
  reg.register_bytes(test::spec("fraud"), "a");
  AttemptResult r;
  r.webhook_id = w.id;
  r.event_id = 1;
  r.error = "Connection";
  r.duration = std::chrono::milliseconds(3);
  store.record_attempt(r);
  r.http_status = 200;
  r.error.clear();
  store.record_attempt(r);
  const auto out = test::run_command(
      {.args = {test::modelreg_binary(), "--db", db.string(), "--json", "webhook", "deliveries", "--limit", "1"},
       .capture_out = true});
  REQUIRE(out.status == 0);
  const json j = json::parse(out.out);
  REQUIRE(j.size() == 1);
  CHECK(j[0]["webhook"] == 1);
  CHECK(j[0]["event"] == 1);
  CHECK(j[0]["model"] == "fraud");
  CHECK(j[0]["kind"] == "register");
  CHECK(j[0]["attempt"] == 2);
  CHECK(j[0]["http_status"] == 200);
  CHECK(j[0]["error"] == "");
  CHECK(j[0]["duration_ms"] == 3);
  CHECK(j[0]["outcome"] == "delivered");
  CHECK(j[0]["at"].get<std::string>().size() == 24);
}

TEST_CASE("modelreg ui delivers webhooks and serves them at /api/v1/webhooks, changes for admins only") {
  test::TempDir dir;
  const auto db = (dir / "r.db").string();
  REQUIRE(test::modelreg({"--db", db, "init"}) == 0);
  auto token = [&](const std::string& name, const std::string& role, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {test::modelreg_binary(), "--db", db, "token", "create", name, "--role", role};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = test::run_command({.args = args, .capture_out = true});
    REQUIRE(r.status == 0);
    return r.out.substr(0, r.out.find('\n'));
  };
  const std::string admin = token("ops", "admin");
  const std::string reader = token("viewer", "reader");
  const std::string promoter = token("release", "promoter");
  const std::string limited = token("fraud-admin", "admin", {"--model", "fraud*"});
  Receiver receiver;
  const auto key = secret_file(dir);

  ChildProcess ui({"--db", db, "ui", "--port", "0"}, "http://127.0.0.1:");
  const std::string first = ui.line_with("http://127.0.0.1:");
  httplib::Client api("127.0.0.1", std::stoi(first.substr(first.rfind(':') + 1)));
  auto call = [&](const std::string& method, const std::string& path, const std::string& bearer,
                  const std::string& body = {}) {
    httplib::Headers h;
    if (!bearer.empty()) h.emplace("Authorization", "Bearer " + bearer);
    httplib::Result r = method == "GET"    ? api.Get(path, h)
                        : method == "POST" ? api.Post(path, h, body, "application/json")
                                           : api.Delete(path, h);
    REQUIRE(r);
    return std::pair<int, json>(r->status, json::parse(r->body));
  };

  const std::string add = json{{"url", receiver.url()}, {"events", "register,promote"}, {"secret_file", key.string()}}.dump();
  const std::string before = test::dump(dir / "r.db");
  // Refused, the registry unchanged: no token, too low a role, a token limited to some models,
  // bad input.
  CHECK(call("POST", "/api/v1/webhooks", "", add).first == 401);
  CHECK(call("POST", "/api/v1/webhooks", reader, add).first == 403);
  CHECK(call("POST", "/api/v1/webhooks", promoter, add).first == 403);
  CHECK(call("POST", "/api/v1/webhooks", limited, add).first == 403);
  CHECK(call("GET", "/api/v1/webhooks", limited).first == 403);
  CHECK(call("GET", "/api/v1/webhooks", "").first == 401);
  const auto bad_url = call("POST", "/api/v1/webhooks", admin, json{{"url", "ftp://h/"}, {"events", "promote"}}.dump());
  CHECK(bad_url.first == 400);
  CHECK(bad_url.second["error"]["code"] == "invalid_argument");
  CHECK(test::contains(bad_url.second["error"]["message"], "only http and https"));
  const auto bad_kind = call("POST", "/api/v1/webhooks", admin, json{{"url", "http://h/"}, {"events", "merge"}}.dump());
  CHECK(bad_kind.first == 400);
  CHECK(test::contains(bad_kind.second["error"]["message"], "unknown webhook event kind 'merge'"));
  CHECK(call("POST", "/api/v1/webhooks", admin, json{{"url", "http://h/"}}.dump()).first == 400);
  CHECK(call("DELETE", "/api/v1/webhooks/1", admin).first == 404);
  CHECK(call("DELETE", "/api/v1/webhooks/x", admin).first == 400);
  CHECK(test::dump(dir / "r.db") == before);

  const auto added = call("POST", "/api/v1/webhooks", admin, add);
  REQUIRE(added.first == 201);
  CHECK(added.second["id"] == 1);
  CHECK(added.second["created_by"] == "ops");
  CHECK(added.second["events"] == json::array({"register", "promote"}));
  const auto listed = call("GET", "/api/v1/webhooks", reader);
  CHECK(listed.first == 200);
  CHECK(listed.second == json::array({added.second}));

  // The ui process delivers: an event committed by another process arrives, signed.
  std::ofstream(dir / "m.bin") << "model bytes";
  REQUIRE(test::modelreg({"--db", db, "register", "fraud", "--file", (dir / "m.bin").string()}) == 0);
  const auto got = receiver.wait_for(1);
  CHECK(json::parse(got[0].body)["kind"] == "register");
  CHECK(got[0].header("X-Modelreg-Signature") == "sha256=" + hmac_hex(kSecret, got[0].body));
  ui.wait_line("event 1 (register fraud), attempt 1: delivered");
  const auto deliveries = call("GET", "/api/v1/webhooks/1/deliveries?limit=5", reader);
  CHECK(deliveries.first == 200);
  REQUIRE(deliveries.second.size() == 1);
  CHECK(deliveries.second[0]["outcome"] == "delivered");
  CHECK(deliveries.second[0]["http_status"] == 200);
  CHECK(call("GET", "/api/v1/webhooks/1/deliveries?limit=0", reader).first == 400);
  CHECK(call("GET", "/api/v1/webhooks/9/deliveries", reader).first == 404);

  const auto removed = call("DELETE", "/api/v1/webhooks/1", admin);
  CHECK(removed.first == 200);
  CHECK(removed.second["removed_by"] == "ops");
  CHECK(call("DELETE", "/api/v1/webhooks/1", admin).first == 409);
  CHECK(call("GET", "/api/v1/webhooks", reader).second == json::array());
  CHECK(call("GET", "/api/v1/webhooks?all=true", reader).second.size() == 1);
  CHECK(ui.stop(SIGTERM) == 0);

  // A read-only ui lists webhooks, changes none and delivers nothing.
  ChildProcess read_only({"--db", db, "--read-only", "ui", "--port", "0"}, "http://127.0.0.1:");
  const std::string line = read_only.line_with("http://127.0.0.1:");
  httplib::Client ro("127.0.0.1", std::stoi(line.substr(line.rfind(':') + 1)));
  const httplib::Headers auth{{"Authorization", "Bearer " + admin}};
  const std::string unchanged = test::dump(dir / "r.db");
  const auto refused = ro.Post("/api/v1/webhooks", auth, add, "application/json");
  REQUIRE(refused);
  CHECK(refused->status == 409);
  CHECK(test::contains(json::parse(refused->body)["error"]["message"], "read-only"));
  const auto kept = ro.Get("/api/v1/webhooks?all=true", auth);
  REQUIRE(kept);
  CHECK(json::parse(kept->body).size() == 1);
  CHECK(test::dump(dir / "r.db") == unchanged);
  CHECK(read_only.stop(SIGTERM) == 0);
  ui.wait_line("started webhook delivery");
  for (const auto& l : read_only.lines()) CHECK_FALSE(test::contains(l, "webhook delivery"));
}
