// The delivery worker of webhooks: see webhook_dispatcher.hpp.
#include "webhook_dispatcher.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <httplib.h>

namespace modelreg::cli {
namespace {

using SteadyClock = std::chrono::steady_clock;

// "https://host:8443" and "/path?query" of a URL that WebhookStore accepted.
std::pair<std::string, std::string> split_url(const std::string& url) {
  const std::size_t start = url.find("://") + 3;
  const std::size_t end = url.find_first_of("/?", start);
  if (end == std::string::npos) return {url, "/"};
  std::string path = url.substr(end);
  if (path.front() == '?') path.insert(0, "/");
  return {url.substr(0, end), path};
}

struct Answer {
  std::optional<int> status;
  std::string error;
};

}  // namespace

struct WebhookDispatcher::Worker {
  Webhook webhook;
  bool stop = false;                      // protected by the dispatcher's mutex_
  httplib::Client* client = nullptr;      // the request in flight, if any; protected by mutex_
  std::thread thread;
};

WebhookDispatcher::WebhookDispatcher(const std::filesystem::path& path, Options registry_options,
                                     DispatcherOptions options)
    : options_(std::move(options)), store_(path, std::move(registry_options)) {
  lock_path_ = path.string() + "-webhooks.lock";
  lock_fd_ = ::open(lock_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd_ < 0) {
    throw Error(Errc::io_error, fmt::format("cannot open the webhook delivery lock '{}': {}", lock_path_.string(),
                                            std::strerror(errno)));
  }
  if (take_lock()) {
    refresh_workers();
  } else {
    log(fmt::format("webhooks: another process delivers them (it holds {}); standing by", lock_path_.string()));
  }
  watcher_ = std::thread([this] { watch(); });
}

bool WebhookDispatcher::take_lock() {
  if (leader_) return true;
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) return false;
  leader_ = true;
  return true;
}

WebhookDispatcher::~WebhookDispatcher() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    for (auto& [id, w] : workers_) {
      w->stop = true;
      if (w->client != nullptr) w->client->stop();
    }
  }
  cv_.notify_all();
  watcher_.join();
  for (auto& [id, w] : workers_) w->thread.join();
  ::close(lock_fd_);  // releases the lock: a dispatcher standing by takes over
}

void WebhookDispatcher::wake() {
  {
    std::lock_guard lock(mutex_);
    ++generation_;
  }
  cv_.notify_all();
}

void WebhookDispatcher::log(std::string_view line) const {
  if (options_.log) options_.log(line);
}

void WebhookDispatcher::watch() {
  std::int64_t seen = -1;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      if (cv_.wait_for(lock, options_.poll_interval, [&] { return stopping_; })) return;
    }
    if (!leader_) {
      if (!take_lock()) continue;
      log(fmt::format("webhooks: took over delivery (the lock {} was released)", lock_path_.string()));
      seen = -1;
    }
    try {
      const std::int64_t version = store_.data_version();
      if (version == seen) continue;
      seen = version;
      refresh_workers();
      wake();
    } catch (const std::exception& e) {
      log(fmt::format("webhooks: {}", e.what()));
    }
  }
}

// Starts a worker for each new webhook, stops those of removed ones. Only the constructor and
// the watcher thread call it, one at a time.
void WebhookDispatcher::refresh_workers() {
  std::vector<Webhook> current;
  try {
    current = store_.webhooks();
  } catch (const std::exception& e) {
    log(fmt::format("webhooks: {}", e.what()));
    return;
  }
  std::vector<std::unique_ptr<Worker>> finished;
  {
    std::lock_guard lock(mutex_);
    for (auto it = workers_.begin(); it != workers_.end();) {
      const bool kept = std::any_of(current.begin(), current.end(), [&](const Webhook& w) { return w.id == it->first; });
      if (kept) {
        ++it;
        continue;
      }
      it->second->stop = true;
      if (it->second->client != nullptr) it->second->client->stop();
      finished.push_back(std::move(it->second));
      it = workers_.erase(it);
    }
    for (const Webhook& w : current) {
      if (workers_.contains(w.id) || stopping_) continue;
      auto worker = std::make_unique<Worker>();
      worker->webhook = w;
      Worker& ref = *worker;
      workers_.emplace(w.id, std::move(worker));
      ref.thread = std::thread([this, &ref] { run_worker(ref); });
    }
  }
  cv_.notify_all();
  for (auto& w : finished) w->thread.join();
}

void WebhookDispatcher::run_worker(Worker& worker) {
  const std::int64_t id = worker.webhook.id;
  std::uint64_t seen = 0;
  {
    std::lock_guard lock(mutex_);
    seen = generation_;
  }
  for (;;) {
    bool again = false;  // a full batch went out: read the next at once
    bool trouble = false;
    try {
      const std::vector<Event> events = store_.pending_events(id, options_.batch);
      if (events.empty()) store_.skip_idle(id);
      bool all = true;
      for (const Event& e : events) {
        if (!deliver(worker, e)) {
          all = false;
          break;
        }
      }
      again = all && events.size() == options_.batch;
      trouble = !all;
    } catch (const std::exception& e) {
      log(fmt::format("webhook {}: {}", id, e.what()));
      trouble = true;
    }
    std::unique_lock lock(mutex_);
    if (stopping_ || worker.stop) return;
    if (again) continue;
    // Wait for news (wake(): a commit elsewhere); after trouble (a busy database, a record refused)
    // look again after a while even without news.
    auto news = [&] { return stopping_ || worker.stop || generation_ != seen; };
    if (trouble) {
      cv_.wait_for(lock, options_.first_retry, news);
    } else {
      cv_.wait(lock, news);
    }
    if (stopping_ || worker.stop) return;
    seen = generation_;
  }
}

bool WebhookDispatcher::deliver(Worker& worker, const Event& event) {
  const Webhook& hook = worker.webhook;
  const std::string body = webhook_payload(event);
  const auto [origin, target] = split_url(hook.url);
  const std::string kind = webhook_kind_of(event.kind).value_or("");
  const auto first = SteadyClock::now();
  auto delay = options_.first_retry;
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_ || worker.stop) return false;
    }
    Answer answer;
    const auto started = SteadyClock::now();
    std::string secret;
    bool secret_ok = true;
    if (hook.secret_file) {
      // Read at every attempt: a replaced secret file takes effect at once.
      try {
        secret = read_webhook_secret(*hook.secret_file);
      } catch (const std::exception& e) {
        answer.error = e.what();
        secret_ok = false;
      }
    }
    if (secret_ok) {
      httplib::Headers headers{
          {"User-Agent", "modelreg-webhook/0.1.0"},
          {"X-Modelreg-Event", kind},
          {"X-Modelreg-Event-Id", std::to_string(event.id)},
          {"X-Modelreg-Webhook", std::to_string(hook.id)},
      };
      if (hook.secret_file) headers.emplace("X-Modelreg-Signature", "sha256=" + webhook_signature(secret, body));
      httplib::Client client(origin);
      client.set_connection_timeout(options_.connect_timeout);
      client.set_read_timeout(options_.read_timeout);
      client.set_write_timeout(options_.read_timeout);
      client.set_follow_location(false);
      {
        std::lock_guard lock(mutex_);
        if (stopping_ || worker.stop) return false;
        worker.client = &client;
      }
      auto result = client.Post(target, headers, body, "application/json");
      {
        std::lock_guard lock(mutex_);
        worker.client = nullptr;
        // Cut off by stop(): not the receiver's doing, not recorded; the next process delivers it.
        // (An answer that came is recorded: it saves the receiver a duplicate.)
        if (!result && (stopping_ || worker.stop)) return false;
      }
      if (result) {
        answer.status = result->status;
        if (result->status < 200 || result->status > 299) answer.error = "the receiver answered " + std::to_string(result->status);
      } else {
        answer.error = httplib::to_string(result.error());
      }
    }
    const auto now = SteadyClock::now();
    AttemptResult r;
    r.webhook_id = hook.id;
    r.event_id = event.id;
    r.http_status = answer.status;
    if (answer.status && (*answer.status < 100 || *answer.status > 599)) {
      r.http_status.reset();
      answer.error = fmt::format("the receiver answered with status {}, which HTTP does not have", *answer.status);
    }
    r.error = answer.error;
    r.duration = std::chrono::duration_cast<std::chrono::milliseconds>(now - started);
    const bool delivered = r.http_status && *r.http_status >= 200 && *r.http_status <= 299;
    r.last = !delivered && (now - first) + delay > options_.give_up_after;
    Delivery d;
    try {
      d = store_.record_attempt(r);
    } catch (const std::exception& e) {
      log(fmt::format("webhook {}: event {}: {}", hook.id, event.id, e.what()));
      return false;
    }
    if (options_.recorded) options_.recorded(d);
    const std::string what = fmt::format("webhook {} ({}): event {} ({} {}), attempt {}", hook.id, hook.url, event.id,
                                         kind, event.model, d.attempt);
    const std::string how = d.http_status ? fmt::format("status {}", *d.http_status) : d.error;
    switch (d.outcome) {
      case DeliveryOutcome::delivered:
        ++delivered_;
        log(fmt::format("{}: delivered ({} ms)", what, d.duration.count()));
        return true;
      case DeliveryOutcome::failed:
        log(fmt::format("{}: failed for good after {} s: {}", what,
                        std::chrono::duration_cast<std::chrono::seconds>(now - first).count(), how));
        return true;
      case DeliveryOutcome::retry:
        log(fmt::format("{}: {}; retrying in {} ms", what, how, delay.count()));
        break;
    }
    {
      std::unique_lock lock(mutex_);
      if (cv_.wait_for(lock, delay, [&] { return stopping_ || worker.stop; })) return false;
    }
    delay = std::min(delay * 2, options_.max_retry_delay);
  }
}

}  // namespace modelreg::cli
