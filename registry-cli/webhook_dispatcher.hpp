// webhook_dispatcher.hpp — the delivery worker of webhooks: POSTs each webhook's pending events
// (WebhookStore, modelreg/webhooks.hpp) and records every attempt. Run by `modelreg ui` and
// `modelreg webhook run`.
//
// A WebhookDispatcher owns its threads: a watcher that polls PRAGMA data_version (cheap: it changes
// only when another connection commits) every poll_interval and wakes the workers on a change, and
// one worker per webhook, so a receiver that is unreachable or never answers delays only its own
// webhook. A worker delivers its events one at a time in event-id order; an attempt that does not
// get a 2xx is retried after first_retry, doubling up to max_retry_delay, until the next wait would
// end past give_up_after from the event's first attempt in this process: that attempt is recorded
// `failed` and the worker moves on to the next event. The cursor moves only in the transaction that records a final
// attempt, so events pending when the process stops are delivered by the next one (at least once).
//
// One process delivers a registry's webhooks at a time: the dispatcher that holds an exclusive
// flock on the file DB-webhooks.lock beside the registry. Others (another `modelreg ui` on the same
// registry) stand by and try to take the lock at every poll, so one of them takes over within
// poll_interval of the holder's exit, however it exits.
//
// Thread-safety: construct and destroy on one thread; wake(), delivering() and delivered_count()
// from any.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "modelreg/registry.hpp"
#include "modelreg/webhooks.hpp"

namespace modelreg::cli {

struct DispatcherOptions {
  // How often data_version is polled for new events and webhooks. Default: 200 ms.
  std::chrono::milliseconds poll_interval{200};
  // Connecting to a receiver (TCP and TLS). Default: 3 s.
  std::chrono::milliseconds connect_timeout{3'000};
  // Sending the request and waiting for each read of the answer. Default: 10 s.
  std::chrono::milliseconds read_timeout{10'000};
  // The wait before the second attempt; each later wait doubles, up to max_retry_delay.
  // Defaults: 1 s, 5 min.
  std::chrono::milliseconds first_retry{1'000};
  std::chrono::milliseconds max_retry_delay{300'000};
  // A failed attempt after which the next wait would end more than this after the event's first
  // attempt (in this process) is recorded failed, and the worker goes on with the next event.
  // Default: 1 h.
  std::chrono::milliseconds give_up_after{3'600'000};
  // Events read per query. Default: 100.
  std::size_t batch = 100;
  // Where the dispatcher's lines go (one per attempt, and per error). Default: nowhere.
  std::function<void(std::string_view)> log;
  // Called on a worker thread after each attempt is recorded (tests wait on it). Default: none.
  std::function<void(const Delivery&)> recorded;
};

class WebhookDispatcher {
 public:
  // Opens the registry at `path` (a WebhookStore of its own) and starts delivering. Throws as
  // WebhookStore's constructor.
  WebhookDispatcher(const std::filesystem::path& path, Options registry_options, DispatcherOptions options = {});
  // Stops the watcher and the workers (an HTTP request in flight is cut off) and joins them.
  ~WebhookDispatcher();
  WebhookDispatcher(const WebhookDispatcher&) = delete;
  WebhookDispatcher& operator=(const WebhookDispatcher&) = delete;

  // Makes the workers look for pending events now (as a data_version change does).
  void wake();
  // Events recorded delivered by this dispatcher so far.
  std::uint64_t delivered_count() const noexcept { return delivered_.load(); }
  // Whether this dispatcher holds the registry's delivery lock (else it stands by).
  bool delivering() const noexcept { return leader_.load(); }

 private:
  struct Worker;

  void watch();
  // Takes the delivery lock if free; whether this dispatcher holds it.
  bool take_lock();
  void refresh_workers();
  void run_worker(Worker& worker);
  // Delivers one event (all its attempts); false when the worker must stop or re-read.
  bool deliver(Worker& worker, const Event& event);
  void log(std::string_view line) const;

  DispatcherOptions options_;
  WebhookStore store_;
  std::atomic<std::uint64_t> delivered_{0};
  std::filesystem::path lock_path_;
  int lock_fd_ = -1;                   // open for the dispatcher's life; used by the watcher thread
  std::atomic<bool> leader_{false};

  std::mutex mutex_;                   // protects everything below
  std::condition_variable cv_;
  bool stopping_ = false;
  std::uint64_t generation_ = 0;       // bumped by wake(): workers re-read their pending events
  std::map<std::int64_t, std::unique_ptr<Worker>> workers_;  // by webhook id
  std::thread watcher_;                // declared last: started after everything it uses
};

}  // namespace modelreg::cli
