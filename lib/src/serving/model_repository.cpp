#include "modelreg/model_repository.hpp"

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <set>
#include <shared_mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <fmt/format.h>

#include "modelreg/error.hpp"
#include "modelreg/model_ref.hpp"
#include "modelreg/registry.hpp"
#include "modelreg/time_format.hpp"
#include "serving/change_notifier.hpp"
#include "serving/poll_loop.hpp"

namespace modelreg {

namespace {

using Clock = std::chrono::steady_clock;

using detail::file_id_of;
using detail::FileId;

Registry open_read_only(const std::filesystem::path& db, const std::optional<std::string>& signing_key) {
  return Registry(db, detail::read_only_options(signing_key));
}

std::string now_text() { return format_utc(std::chrono::system_clock::now()); }

bool all_digits(std::string_view s) {
  return !s.empty() && s.size() <= 18 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// FNV-1a: a stable hash of a request key (std::hash may differ between builds and runs; a key must
// land on the same alias after a restart too).
std::uint64_t stable_hash(std::string_view key) {
  std::uint64_t h = 1469598103934665603ull;
  for (const unsigned char c : key) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// The bucket of a request, 0..9999: by its key, or at random without one.
std::uint32_t split_bucket(std::string_view key) {
  if (!key.empty()) return static_cast<std::uint32_t>(stable_hash(key) % 10'000);
  thread_local std::mt19937_64 random{std::random_device{}()};
  return static_cast<std::uint32_t>(random() % 10'000);
}

constexpr double kDifferenceBounds[] = {1e-9, 1e-6, 1e-4, 1e-3, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 10, 100};

// One served (model, alias) or (model, number). Everything but the identity is guarded by mutex,
// which is held only for short bookkeeping, never across a load or a prediction.
struct Slot {
  std::string model;
  std::string alias;                    // empty when pinned
  std::optional<std::int64_t> pinned;
  bool extra = false;                   // made by a request, not by the configuration

  mutable std::mutex mutex;
  std::condition_variable loaded_cv;    // a load of this slot finished (either way)
  std::shared_ptr<const ServedModel> current;
  std::int64_t in_flight = 0;
  Clock::time_point last_used = Clock::now();
  std::uint64_t requests = 0;
  std::uint64_t errors = 0;
  std::map<std::int64_t, std::uint64_t> by_version;
  bool known = false;                   // the version it names has been read at least once
  std::optional<std::int64_t> desired;
  bool missing = false;                 // the alias or number does not exist (last read)
  std::string missing_reason;
  bool loading = false;                 // a load job is queued or running
  bool reload_after = false;            // the version moved while loading: look again after
  bool unloaded = false;                // unloaded for memory; loaded again on the next request
  bool removed = false;                 // no longer in the table (unload(), or a bad name)
  std::uint64_t load_attempts = 0;      // finished load jobs, for requests waiting on one
  bool last_attempt_failed = false;
  std::optional<std::int64_t> failed_version;
  std::chrono::milliseconds backoff{0};
  Clock::time_point next_retry{};
  std::uint64_t swaps = 0;
  std::uint64_t load_failures = 0;
  std::uint64_t unloads = 0;
  std::optional<std::string> last_error;
  std::optional<std::string> last_swap_at;
  double last_load_seconds = 0;

  std::string name() const {
    return pinned ? fmt::format("{}@{}", model, *pinned) : fmt::format("{}@{}", model, alias);
  }
  ModelRef ref() const { return pinned ? ModelRef::number(model, *pinned) : ModelRef::parse(model + "@" + alias); }
};

struct ShadowCounters {
  std::string alias;
  std::shared_ptr<Slot> slot;
  std::atomic<std::uint64_t> queued{0};
  std::atomic<std::uint64_t> dropped{0};
  std::mutex mutex;  // protects the fields below (updated by the shadow thread)
  std::uint64_t scored = 0;
  std::uint64_t failed = 0;
  std::uint64_t rows = 0;
  std::uint64_t label_disagreements = 0;
  std::vector<std::uint64_t> difference_counts = std::vector<std::uint64_t>(std::size(kDifferenceBounds) + 1, 0);
  double difference_sum = 0;
};

struct ModelEntry {
  bool listed = false;
  std::vector<std::shared_ptr<Slot>> slots;  // [0]: the default slot (active)
  std::optional<TrafficSplit> split;
  std::shared_ptr<Slot> split_slot;
  std::shared_ptr<ShadowCounters> shadow;
};

struct ShadowJob {
  std::shared_ptr<ShadowCounters> counters;
  std::vector<double> values;
  std::size_t rows = 0;
  std::size_t cols = 0;
  Prediction primary;
};

}  // namespace

struct __attribute__((visibility("hidden"))) ModelRepository::Impl {
  std::filesystem::path db;
  RepositoryOptions options;
  Clock::time_point started = Clock::now();

  // The slot table. Requests take it shared; the poller, load(), unload() and requests that make
  // a slot take it exclusively, for map updates only.
  mutable std::shared_mutex table_mutex;
  std::map<std::string, ModelEntry, std::less<>> table;
  std::set<std::string, std::less<>> excluded;  // unloaded by unload(): all_models leaves them out

  // The poller's connection and state; used under poll_mutex.
  std::mutex poll_mutex;
  std::optional<FileId> open_file;
  std::optional<Registry> registry;
  std::optional<std::int64_t> last_data_version;
  std::vector<std::shared_ptr<const ServedModel>> retired;  // destroyed here once unused
  mutable std::mutex retired_mutex;                          // protects retired

  // For index() and load(): reads on request threads that are not scoring.
  mutable std::mutex control_mutex;
  std::optional<Registry> control;

  std::atomic<std::uint64_t> generation{0};  // bumped when the database file is reopened

  mutable std::mutex status_mutex;  // protects the fields below
  std::uint64_t polls = 0;
  std::uint64_t poll_errors = 0;
  std::uint64_t wakeups = 0;
  std::uint64_t unloads = 0;
  std::uint64_t reopens = 0;
  bool notifications = false;
  std::optional<std::string> database_problem;
  std::optional<std::string> last_error;

  // Loaders.
  std::mutex jobs_mutex;  // protects jobs, reap_requested and stopping
  std::condition_variable jobs_cv;
  std::deque<std::shared_ptr<Slot>> jobs;
  bool reap_requested = false;  // retired models wait to be destroyed by a loader
  bool stopping = false;
  std::vector<std::thread> loaders;

  // Shadow scoring.
  std::mutex shadow_mutex;  // protects shadow_jobs (and shadow_stopping)
  std::condition_variable shadow_cv;
  std::deque<ShadowJob> shadow_jobs;
  bool shadow_stopping = false;
  std::thread shadow_thread;

  // The poller.
  detail::PollLoop loop;
  std::unique_ptr<detail::ChangeNotifier::Subscription> changes;
  std::thread poller;

  Impl(const std::filesystem::path& path, RepositoryOptions o) : db(path), options(std::move(o)) {
    if (!options.clock) options.clock = [] { return Clock::now(); };
    if (!options.loader) {
      options.loader = [](const Registry& reg, const ModelVersion& v) -> std::shared_ptr<const Model> {
        return reg.load_model(ModelRef::number(v.id.model, v.id.number)).model;
      };
    }
    if (options.poll_interval < std::chrono::milliseconds(1)) {
      throw Error(Errc::invalid_argument, "the poll interval must be at least 1 ms");
    }
    if (options.load_threads < 1) throw Error(Errc::invalid_argument, "at least one load thread is needed");
    check_alias("model", options.default_alias);
    open_file = file_id_of(db);
    registry.emplace(open_read_only(db, options.signing_key));
    control.emplace(open_read_only(db, options.signing_key));
    for (const auto& m : options.models) {
      if (!is_valid_model_name(m)) throw Error(Errc::invalid_argument, fmt::format("model name '{}' is invalid", m));
      if (table.contains(m)) throw Error(Errc::invalid_argument, fmt::format("model '{}' is named twice", m));
      add_entry(m, true);
    }
    if (options.models.empty() && !options.all_models) {
      throw Error(Errc::invalid_argument, "no model to serve: name at least one, or serve all models");
    }
    for (const auto& split : options.splits) configure_split(split);
    for (const auto& shadow : options.shadows) configure_shadow(shadow);
  }

  // ---- the table ------------------------------------------------------------------------------

  static std::shared_ptr<Slot> make_slot(const std::string& model, std::string alias, std::optional<std::int64_t> pinned,
                                         bool extra) {
    auto s = std::make_shared<Slot>();
    s->model = model;
    s->alias = std::move(alias);
    s->pinned = pinned;
    s->extra = extra;
    return s;
  }

  ModelEntry& add_entry(const std::string& model, bool listed) {  // under table_mutex (or in the constructor)
    ModelEntry& e = table[model];
    e.listed = listed;
    if (e.slots.empty()) e.slots.push_back(make_slot(model, options.default_alias, std::nullopt, false));
    return e;
  }

  static void check_alias(const std::string& model, const std::string& alias) {
    const ModelRef ref = ModelRef::parse(model + "@" + alias);  // throws invalid_argument for a bad name
    if (ref.kind() == ModelRef::Kind::number) {
      throw Error(Errc::invalid_argument, fmt::format("'{}' is a version number, not an alias", alias));
    }
  }

  std::shared_ptr<Slot> configured_slot(ModelEntry& e, const std::string& model, const std::string& alias) {
    for (const auto& s : e.slots) {
      if (!s->pinned && s->alias == alias) return s;
    }
    e.slots.push_back(make_slot(model, alias, std::nullopt, false));
    return e.slots.back();
  }

  void configure_split(const TrafficSplit& split) {
    auto it = table.find(split.model);
    if (it == table.end()) {
      throw Error(Errc::invalid_argument,
                  fmt::format("the split names model '{}', which is not served; name it too", split.model));
    }
    check_alias(split.model, split.alias);
    if (split.alias == options.default_alias) {
      throw Error(Errc::invalid_argument, fmt::format("a split of '{}' to {} sends nothing anywhere; name another alias",
                                                      split.model, split.alias));
    }
    if (!(split.percent > 0 && split.percent < 100)) {
      throw Error(Errc::invalid_argument,
                  fmt::format("the split of '{}' is {}%; give a share above 0 and below 100", split.model, split.percent));
    }
    if (it->second.split) throw Error(Errc::invalid_argument, fmt::format("model '{}' has two splits", split.model));
    it->second.split = split;
    it->second.split_slot = configured_slot(it->second, split.model, split.alias);
  }

  void configure_shadow(const ShadowTarget& shadow) {
    auto it = table.find(shadow.model);
    if (it == table.end()) {
      throw Error(Errc::invalid_argument,
                  fmt::format("the shadow names model '{}', which is not served; name it too", shadow.model));
    }
    check_alias(shadow.model, shadow.alias);
    if (shadow.alias == options.default_alias) {
      throw Error(Errc::invalid_argument,
                  fmt::format("a shadow of '{}' must be another alias than {}", shadow.model, shadow.alias));
    }
    if (it->second.shadow) throw Error(Errc::invalid_argument, fmt::format("model '{}' has two shadows", shadow.model));
    auto counters = std::make_shared<ShadowCounters>();
    counters->alias = shadow.alias;
    counters->slot = configured_slot(it->second, shadow.model, shadow.alias);
    it->second.shadow = std::move(counters);
  }

  std::vector<std::shared_ptr<Slot>> all_slots() const {
    std::shared_lock lock(table_mutex);
    std::vector<std::shared_ptr<Slot>> out;
    for (const auto& [name, e] : table) out.insert(out.end(), e.slots.begin(), e.slots.end());
    return out;
  }

  // ---- loading --------------------------------------------------------------------------------

  void log(const std::string& line) const {
    if (options.log) options.log(line);
  }

  // Queues a load of `s` unless one is queued or running. Call with s->mutex held.
  void request_load_locked(const std::shared_ptr<Slot>& s) {
    if (s->loading) {
      s->reload_after = true;
      return;
    }
    s->loading = true;
    if (!options.background) return;  // the caller runs it (run_inline)
    {
      std::lock_guard lock(jobs_mutex);
      jobs.push_back(s);
    }
    jobs_cv.notify_one();
  }

  void retire(std::shared_ptr<const ServedModel> m) {
    if (!m) return;
    std::lock_guard lock(retired_mutex);
    retired.push_back(std::move(m));
  }

  // Models no request holds any more: destroyed, and their pages handed back to the system
  // (malloc_trim). A large forest takes milliseconds of CPU to free, so in the background this runs
  // on a loader thread (at the loaders' low priority), never on the poller, whose polls follow
  // every commit at normal priority: the poller only notices (reap_due) and hands the work over.
  void reap() {
    std::vector<std::shared_ptr<const ServedModel>> dead;
    {
      std::lock_guard lock(retired_mutex);
      for (auto it = retired.begin(); it != retired.end();) {
        if (it->use_count() == 1) {
          dead.push_back(std::move(*it));
          it = retired.erase(it);
        } else {
          ++it;
        }
      }
    }
    if (dead.empty()) return;
    dead.clear();  // the last references: destroyed here
#ifdef __GLIBC__
    ::malloc_trim(0);  // hand the pages of a large model back (see active_watcher.cpp)
#endif
  }

  // Whether a retired model is ready to be destroyed (no request holds it).
  bool reap_due() const {
    std::lock_guard lock(retired_mutex);
    return std::any_of(retired.begin(), retired.end(), [](const auto& m) { return m.use_count() == 1; });
  }

  // From the poller: destroys retired models now (no background threads) or has a loader do it.
  void reap_or_hand_over() {
    if (!options.background) {
      reap();
      return;
    }
    if (!reap_due()) return;
    {
      std::lock_guard lock(jobs_mutex);
      reap_requested = true;
    }
    jobs_cv.notify_one();
  }

  // A model already loaded by another slot (the same version followed by two aliases) is shared.
  std::shared_ptr<const ServedModel> loaded_elsewhere(const Slot& self, const ModelVersion& v) const {
    std::shared_lock lock(table_mutex);
    const auto it = table.find(self.model);
    if (it == table.end()) return nullptr;
    for (const auto& other : it->second.slots) {
      if (other.get() == &self) continue;
      std::lock_guard g(other->mutex);
      if (other->current && other->current->version.id.number == v.id.number &&
          other->current->version.blob.sha256 == v.blob.sha256) {
        return other->current;
      }
    }
    return nullptr;
  }

  // One load job of `s` with `reg` (the loader's own connection). Never throws.
  void load_slot(Registry& reg, const std::shared_ptr<Slot>& s) {
    std::optional<ModelVersion> version;
    std::string problem;
    bool model_missing = false;
    try {
      version = reg.find(s->ref());
    } catch (const Error& e) {
      problem = e.what();
      model_missing = e.code() == Errc::not_found;
    } catch (const std::exception& e) {
      problem = e.what();
    }
    if (!version) {
      std::unique_lock lock(s->mutex);
      s->known = true;
      s->desired.reset();
      if (problem.empty() || model_missing) {
        s->missing = true;
        s->missing_reason = problem.empty() ? missing_text(*s) : problem;
      } else {
        s->last_error = problem;
        ++s->load_failures;
      }
      finish_attempt_locked(s, !problem.empty() && !model_missing);
      return;
    }
    {
      std::unique_lock lock(s->mutex);
      s->known = true;
      s->missing = false;
      s->desired = version->id.number;
      if (s->current && !s->unloaded && s->current->version.id.number == version->id.number &&
          s->current->version.blob.sha256 == version->blob.sha256) {
        s->failed_version.reset();
        finish_attempt_locked(s, false);
        return;
      }
    }
    const auto start = Clock::now();
    std::shared_ptr<const ServedModel> next = loaded_elsewhere(*s, *version);
    const bool shared = next != nullptr;  // already counted against the memory bound
    std::string error;
    if (!next) {
      try {
        auto model = options.loader(reg, *version);
        if (!model) throw Error(Errc::validation_failed, fmt::format("{}: the loader returned no model", version->ref_string()));
        auto served = std::make_shared<ServedModel>();
        served->model = std::move(model);
        served->version = *version;
        served->loaded_at = now_text();
        served->load_seconds = std::chrono::duration<double>(Clock::now() - start).count();
        next = std::move(served);
      } catch (const std::exception& e) {
        error = e.what();
      }
    }
    // Room first, then the swap: the bound holds from the moment the new model serves.
    if (next) enforce_memory(s.get(), shared ? 0 : estimate(*next));
    std::shared_ptr<const ServedModel> previous;
    std::string line;
    {
      std::unique_lock lock(s->mutex);
      if (next) {
        previous = std::exchange(s->current, next);
        s->unloaded = false;
        s->failed_version.reset();
        s->backoff = std::chrono::milliseconds{0};
        ++s->swaps;
        s->last_swap_at = next->loaded_at;
        s->last_load_seconds = next->load_seconds;
        s->last_used = Clock::now();
        line = fmt::format("{}: swapped {} -> {} (loaded and validated in {:.1f} ms)", s->name(),
                           previous ? previous->version.ref_string() : std::string("nothing"), version->ref_string(),
                           next->load_seconds * 1000);
      } else {
        s->backoff = s->failed_version == version->id.number ? std::min(options.retry_max, s->backoff * 2)
                                                              : options.retry_initial;
        s->failed_version = version->id.number;
        s->next_retry = options.clock() + s->backoff;
        ++s->load_failures;
        s->last_error = error;
        line = fmt::format("{}: failed to load {}: {}; still serving {}; retrying in {:.2f} s", s->name(),
                           version->ref_string(), error,
                           s->current ? s->current->version.ref_string() : std::string("nothing"),
                           std::chrono::duration<double>(s->backoff).count());
      }
      finish_attempt_locked(s, !next);
    }
    retire(std::move(previous));
    log(line);
  }

  static std::string missing_text(const Slot& s) {
    if (s.pinned) return fmt::format("model '{}' has no version {}", s.model, *s.pinned);
    if (s.alias == "active") {
      return fmt::format("no version of '{}' is active; promote one (modelreg promote {}@N)", s.model, s.model);
    }
    return fmt::format("no version of '{}' holds the alias '{}'; set it (modelreg alias set {}@N {})", s.model, s.alias,
                       s.model, s.alias);
  }

  // Ends a load job: wakes requests waiting for it, and queues another when the version moved.
  void finish_attempt_locked(const std::shared_ptr<Slot>& s, bool failed) {
    s->loading = false;
    ++s->load_attempts;
    s->last_attempt_failed = failed;
    s->loaded_cv.notify_all();
    if (s->reload_after && !s->removed) {
      s->reload_after = false;
      request_load_locked(s);
    }
  }

  void loader_main() {
    if (options.load_nice != 0) {
      // Linux applies a nice value to the one thread named by its id. Failing (a container that
      // forbids it) only leaves the loader at the process's priority.
      const auto tid = static_cast<id_t>(::syscall(SYS_gettid));
      if (::setpriority(PRIO_PROCESS, tid, options.load_nice) != 0) {
        log(fmt::format("could not lower the priority of a loader thread: {}", std::strerror(errno)));
      }
    }
    std::uint64_t seen_generation = generation.load();
    std::optional<Registry> reg;
    for (;;) {
      std::shared_ptr<Slot> job;
      {
        std::unique_lock lock(jobs_mutex);
        jobs_cv.wait(lock, [&] { return stopping || reap_requested || !jobs.empty(); });
        if (stopping) return;
        if (jobs.empty()) {
          reap_requested = false;
          lock.unlock();
          reap();
          continue;
        }
        job = std::move(jobs.front());
        jobs.pop_front();
      }
      try {
        if (!reg || generation.load() != seen_generation) {
          seen_generation = generation.load();
          reg.reset();
          reg.emplace(open_read_only(db, options.signing_key));
        }
        load_slot(*reg, job);
      } catch (const std::exception& e) {
        std::lock_guard lock(job->mutex);
        job->last_error = fmt::format("opening the registry to load {}: {}", job->name(), e.what());
        ++job->load_failures;
        finish_attempt_locked(job, true);
      }
    }
  }

  // Without background threads: runs the pending loads on the calling thread.
  void run_inline(const std::shared_ptr<Slot>& s) {
    if (options.background) return;
    std::lock_guard lock(poll_mutex);
    load_slot(*registry, s);
  }

  // ---- memory ---------------------------------------------------------------------------------

  static std::uint64_t estimate(const ServedModel& m) { return m.version.blob.raw_size; }

  std::uint64_t loaded_bytes(const std::vector<std::shared_ptr<Slot>>& slots) const {
    std::unordered_set<const ServedModel*> seen;
    std::uint64_t total = 0;
    for (const auto& s : slots) {
      std::lock_guard lock(s->mutex);
      if (s->current && seen.insert(s->current.get()).second) total += estimate(*s->current);
    }
    return total;
  }

  // Unloads the least recently used slots with no request in flight until the loaded models and
  // `incoming` more bytes (a model about to be published in `keep`) fit the bound. `keep` itself
  // is never unloaded: it is wanted now.
  void enforce_memory(const Slot* keep, std::uint64_t incoming) {
    if (options.max_memory_bytes == 0) return;
    const auto slots = all_slots();
    for (;;) {
      std::uint64_t loaded = 0;
      {
        std::unordered_set<const ServedModel*> seen;
        for (const auto& s : slots) {
          if (s.get() == keep) continue;  // its current model is about to be replaced
          std::lock_guard lock(s->mutex);
          if (s->current && seen.insert(s->current.get()).second) loaded += estimate(*s->current);
        }
      }
      if (loaded + incoming <= options.max_memory_bytes) return;
      std::shared_ptr<Slot> victim;
      Clock::time_point oldest = Clock::time_point::max();
      for (const auto& s : slots) {
        if (s.get() == keep) continue;
        std::lock_guard lock(s->mutex);
        if (s->current && s->in_flight == 0 && s->last_used < oldest) {
          oldest = s->last_used;
          victim = s;
        }
      }
      if (!victim) return;  // everything else is in use: over the bound until requests finish
      std::shared_ptr<const ServedModel> dropped;
      {
        std::lock_guard lock(victim->mutex);
        if (!victim->current || victim->in_flight != 0) continue;  // picked up meanwhile: look again
        dropped = std::exchange(victim->current, nullptr);
        victim->unloaded = true;
        ++victim->unloads;
      }
      {
        std::lock_guard lock(status_mutex);
        ++unloads;
      }
      log(fmt::format("{}: unloaded {} (least recently used; over the memory bound of {} bytes)", victim->name(),
                      dropped->version.ref_string(), options.max_memory_bytes));
      retire(std::move(dropped));
    }
  }

  // ---- requests -------------------------------------------------------------------------------

  struct Lease {
    std::shared_ptr<Slot> slot;
    std::shared_ptr<const ServedModel> served;
    Lease() = default;
    Lease(std::shared_ptr<Slot> s, std::shared_ptr<const ServedModel> m) : slot(std::move(s)), served(std::move(m)) {}
    Lease(Lease&& o) noexcept = default;
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    ~Lease() {
      if (!slot) return;
      std::lock_guard lock(slot->mutex);
      --slot->in_flight;
    }
  };

  // The slot a request names; made (as an extra slot) when the model is served but the slot is not.
  std::shared_ptr<Slot> slot_for(const ServingRequest& r) {
    const bool pinned = all_digits(r.version);
    std::optional<std::int64_t> number;
    std::string alias = r.version.empty() ? options.default_alias : r.version;
    if (pinned) {
      number = std::stoll(r.version);
      if (*number < 1) throw Error(Errc::not_found, fmt::format("model '{}' has no version {}", r.model, r.version));
      alias.clear();
    } else if (!r.version.empty()) {
      check_alias(r.model, alias);
    }
    {
      std::shared_lock lock(table_mutex);
      const auto it = table.find(r.model);
      if (it == table.end()) throw not_served(r.model);
      const ModelEntry& e = it->second;
      if (r.version.empty() && e.split && split_bucket(r.key) < static_cast<std::uint32_t>(std::lround(e.split->percent * 100))) {
        // While no version holds the split's alias, its share goes to active.
        std::lock_guard g(e.split_slot->mutex);
        if (e.split_slot->current || !(e.split_slot->known && e.split_slot->missing)) return e.split_slot;
        return e.slots.front();
      }
      for (const auto& s : e.slots) {
        if (s->pinned == number && (pinned || s->alias == alias)) return s;
      }
    }
    std::vector<std::shared_ptr<const ServedModel>> evicted;
    std::shared_ptr<Slot> made;
    {
      std::unique_lock lock(table_mutex);
      const auto it = table.find(r.model);
      if (it == table.end()) throw not_served(r.model);
      ModelEntry& e = it->second;
      for (const auto& s : e.slots) {
        if (s->pinned == number && (pinned || s->alias == alias)) return s;  // made meanwhile
      }
      const auto extras = std::count_if(e.slots.begin(), e.slots.end(), [](const auto& s) { return s->extra; });
      if (static_cast<std::size_t>(extras) >= options.max_extra_slots_per_model) {
        // Make room: the least recently used extra slot with no request in flight.
        auto victim = e.slots.end();
        Clock::time_point oldest = Clock::time_point::max();
        for (auto s = e.slots.begin(); s != e.slots.end(); ++s) {
          if (!(*s)->extra) continue;
          std::lock_guard g((*s)->mutex);
          if ((*s)->in_flight == 0 && !(*s)->loading && (*s)->last_used < oldest) {
            oldest = (*s)->last_used;
            victim = s;
          }
        }
        if (victim == e.slots.end()) {
          throw Error(Errc::busy, fmt::format("model '{}' already serves {} other versions, all in use; retry later",
                                              r.model, options.max_extra_slots_per_model));
        }
        {
          std::lock_guard g((*victim)->mutex);
          (*victim)->removed = true;
          if ((*victim)->current) evicted.push_back(std::exchange((*victim)->current, nullptr));
        }
        e.slots.erase(victim);
      }
      made = make_slot(r.model, alias, number, true);
      e.slots.push_back(made);
    }
    for (auto& m : evicted) retire(std::move(m));
    return made;
  }

  static Error not_served(std::string_view model) {
    return Error(Errc::not_found, fmt::format("model '{}' is not served here", model));
  }

  void drop_slot(const std::shared_ptr<Slot>& s) {
    std::unique_lock lock(table_mutex);
    const auto it = table.find(s->model);
    if (it == table.end()) return;
    std::erase(it->second.slots, s);
    std::lock_guard g(s->mutex);
    s->removed = true;
  }

  // The model a slot serves now, with a request counted in flight; loads it first when it is not
  // loaded (waiting up to load_wait). Throws as predict documents.
  Lease lease(const std::shared_ptr<Slot>& s, bool wait) {
    std::unique_lock lock(s->mutex);
    s->last_used = Clock::now();
    if (s->current && !s->removed) {
      ++s->in_flight;
      return Lease(s, s->current);
    }
    auto refuse_missing = [&]() -> Error {
      const std::string why = s->missing_reason;
      if (!s->extra) return Error(Errc::conflict, fmt::format("model '{}' is not ready: {}", s->model, why));
      lock.unlock();
      drop_slot(s);  // a name that does not exist keeps no slot
      return Error(Errc::not_found, why);
    };
    if (s->removed) throw not_served(s->model);
    if (s->known && s->missing) throw refuse_missing();
    // A version that failed to load is not tried again before its backoff is over: answered at
    // once, with the reason.
    if (!s->loading && s->last_attempt_failed && options.clock() < s->next_retry) throw failed_locked(*s);
    if (!wait) throw Error(Errc::conflict, fmt::format("{} is not loaded", s->name()));
    const std::uint64_t attempts = s->load_attempts;
    if (!s->loading) request_load_locked(s);
    if (!options.background) {
      lock.unlock();
      run_inline(s);
      lock.lock();
    }
    s->loaded_cv.wait_for(lock, options.load_wait,
                          [&] { return s->current || s->removed || (!s->loading && s->load_attempts != attempts); });
    if (s->current && !s->removed) {
      ++s->in_flight;
      return Lease(s, s->current);
    }
    if (s->removed) throw not_served(s->model);
    if (s->missing) throw refuse_missing();
    if (s->loading) {
      throw Error(Errc::conflict, fmt::format("{} is still loading after {} ms; retry", s->name(), options.load_wait.count()));
    }
    throw failed_locked(*s);
  }

  // Why a slot whose last load failed does not serve.
  static Error failed_locked(const Slot& s) {
    const std::string version = s.desired ? fmt::format("{}@{}", s.model, *s.desired) : s.name();
    const std::string error = s.last_error.value_or("unknown error");
    if (s.pinned) return Error(Errc::conflict, fmt::format("{} could not be served: {}", version, error));
    return Error(Errc::conflict, fmt::format("model '{}' is not ready: the {} version {} could not be served: {}", s.model,
                                             s.alias, version, error));
  }

  RoutedPrediction predict(const ServingRequest& r, MatrixView rows) {
    std::shared_ptr<Slot> s = slot_for(r);
    Lease held = lease_counted(s);
    RoutedPrediction out;
    try {
      out.prediction = predict_with(*held.served, rows);
    } catch (...) {
      std::lock_guard lock(s->mutex);
      ++s->errors;
      throw;
    }
    out.alias = s->alias;
    {
      std::lock_guard lock(s->mutex);
      ++s->by_version[out.prediction.version];
    }
    if (r.version.empty()) shadow(r.model, rows, out.prediction);
    return out;
  }

  Lease lease_counted(const std::shared_ptr<Slot>& s) {
    {
      std::lock_guard lock(s->mutex);
      ++s->requests;
    }
    try {
      return lease(s, true);
    } catch (...) {
      std::lock_guard lock(s->mutex);
      ++s->errors;
      throw;
    }
  }

  // ---- shadow ---------------------------------------------------------------------------------

  void shadow(const std::string& model, MatrixView rows, const Prediction& primary) {
    std::shared_ptr<ShadowCounters> counters;
    {
      std::shared_lock lock(table_mutex);
      const auto it = table.find(model);
      if (it == table.end() || !it->second.shadow) return;
      counters = it->second.shadow;
    }
    {
      std::lock_guard lock(shadow_mutex);
      if (shadow_jobs.size() >= options.shadow_queue_capacity || !options.background) {
        counters->dropped.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      ShadowJob job;
      job.counters = counters;
      job.values.assign(rows.data(), rows.data() + rows.rows() * rows.cols());
      job.rows = rows.rows();
      job.cols = rows.cols();
      job.primary = primary;
      shadow_jobs.push_back(std::move(job));
      counters->queued.fetch_add(1, std::memory_order_relaxed);
    }
    shadow_cv.notify_one();
  }

  void score_shadow(ShadowJob& job) {
    ShadowCounters& c = *job.counters;
    Prediction other;
    try {
      Lease held = lease(c.slot, false);
      other = predict_with(*held.served, MatrixView(job.values.data(), job.rows, job.cols));
    } catch (const std::exception&) {
      {
        std::lock_guard lock(c.mutex);
        ++c.failed;
      }
      // Not loaded (never asked for, or unloaded for memory): load it for the next one.
      std::lock_guard lock(c.slot->mutex);
      if (!c.slot->current && !c.slot->loading && !(c.slot->known && c.slot->missing)) request_load_locked(c.slot);
      return;
    }
    const Prediction& p = job.primary;
    std::lock_guard lock(c.mutex);
    ++c.scored;
    c.rows += job.rows;
    auto add = [&](double d) {
      std::size_t b = 0;
      while (b < std::size(kDifferenceBounds) && d > kDifferenceBounds[b]) ++b;
      ++c.difference_counts[b];
      c.difference_sum += d;
    };
    if (p.task != other.task) {
      c.label_disagreements += job.rows;
      return;
    }
    if (p.task == Task::regression) {
      for (std::size_t i = 0; i < p.values.size() && i < other.values.size(); ++i) add(std::fabs(p.values[i] - other.values[i]));
      return;
    }
    for (std::size_t i = 0; i < p.labels.size() && i < other.labels.size(); ++i) {
      if (p.classes.size() != other.classes.size() || p.labels[i] != other.labels[i]) ++c.label_disagreements;
    }
    for (std::size_t i = 0; i < p.probabilities.size() && i < other.probabilities.size(); ++i) {
      add(std::fabs(p.probabilities[i] - other.probabilities[i]));
    }
  }

  void shadow_main() {
    for (;;) {
      ShadowJob job;
      {
        std::unique_lock lock(shadow_mutex);
        shadow_cv.wait(lock, [&] { return shadow_stopping || !shadow_jobs.empty(); });
        if (shadow_stopping) return;
        job = std::move(shadow_jobs.front());
        shadow_jobs.pop_front();
      }
      score_shadow(job);
    }
  }

  // ---- polling --------------------------------------------------------------------------------

  // Follows the database file (replaced: reopen; gone: a problem). Under poll_mutex.
  void follow_database_file() {
    const auto at_path = file_id_of(db);
    std::optional<std::string> problem;
    bool reopened = false;
    if (!at_path) {
      problem = fmt::format("the database file {} is gone (deleted or moved away); still serving the models loaded "
                            "before, not ready until a database is back at that path",
                            db.string());
    } else if (at_path != open_file) {
      try {
        registry.emplace(open_read_only(db, options.signing_key));
        {
          std::lock_guard lock(control_mutex);
          control.emplace(open_read_only(db, options.signing_key));
        }
        open_file = at_path;
        last_data_version.reset();
        generation.fetch_add(1);
        reopened = true;
      } catch (const std::exception& e) {
        problem = fmt::format("the database file {} was replaced by a file that cannot be opened: {}", db.string(),
                              e.what());
      }
    }
    bool changed_problem = false;
    {
      std::lock_guard lock(status_mutex);
      changed_problem = database_problem != problem;
      database_problem = problem;
      if (reopened) ++reopens;
      if (problem) {
        ++poll_errors;
        last_error = problem;
      }
    }
    if (reopened) {
      log(fmt::format("the database file {} was replaced; reopened it", db.string()));
      // The same numbers may now be other bytes: every loaded slot is looked at again.
      for (const auto& s : all_slots()) {
        std::lock_guard lock(s->mutex);
        if (s->current) request_load_locked(s);
      }
    }
    if (problem && changed_problem) log(*problem);
  }

  // Adds the models that have an active version (all_models) and drops those found that way
  // which no longer have one.
  void discover(const std::vector<ModelSummary>& models, const std::vector<Alias>& aliases) {
    std::set<std::string, std::less<>> holding;  // models where a version holds the default alias
    if (options.default_alias == "latest") {
      for (const auto& m : models) {
        if (m.latest_version) holding.insert(m.name);
      }
    } else {
      for (const auto& a : aliases) {
        if (a.name == options.default_alias) holding.insert(a.model);
      }
    }
    std::vector<std::string> add;
    std::vector<std::string> drop;
    {
      std::shared_lock lock(table_mutex);
      for (const auto& name : holding) {
        if (!table.contains(name) && !excluded.contains(name)) add.push_back(name);
      }
      for (const auto& [name, e] : table) {
        if (!e.listed && !holding.contains(name)) drop.push_back(name);
      }
    }
    if (add.empty() && drop.empty()) return;
    std::vector<std::shared_ptr<const ServedModel>> dropped;
    {
      std::unique_lock lock(table_mutex);
      for (const auto& name : add) add_entry(name, false);
      for (const auto& name : drop) {
        const auto it = table.find(name);
        if (it == table.end()) continue;
        for (const auto& s : it->second.slots) {
          std::lock_guard g(s->mutex);
          s->removed = true;
          if (s->current) dropped.push_back(std::exchange(s->current, nullptr));
          s->loaded_cv.notify_all();
        }
        table.erase(it);
      }
    }
    for (auto& m : dropped) retire(std::move(m));
    for (const auto& name : add) {
      log(fmt::format("serving model '{}' (a version holds {})", name, options.default_alias));
    }
    for (const auto& name : drop) {
      log(fmt::format("no longer serving model '{}' (no version holds {})", name, options.default_alias));
    }
  }

  bool poll() {
    std::lock_guard lock(poll_mutex);
    {
      std::lock_guard s(status_mutex);
      ++polls;
    }
    reap_or_hand_over();
    follow_database_file();
    std::vector<Alias> aliases;
    std::vector<ModelSummary> models;
    bool changed_now = false;
    try {
      const std::int64_t dv = registry->data_version();
      changed_now = !last_data_version || dv != *last_data_version;
      last_data_version = dv;
      if (changed_now) {
        aliases = registry->aliases();
        models = registry->list_models();
      }
    } catch (const std::exception& e) {
      std::lock_guard s(status_mutex);
      ++poll_errors;
      last_error = fmt::format("polling the registry: {}", e.what());
      last_data_version.reset();
      return false;
    }
    if (changed_now && options.all_models) discover(models, aliases);
    std::uint64_t swaps_before = 0;
    const auto slots = all_slots();
    for (const auto& s : slots) {
      std::lock_guard g(s->mutex);
      swaps_before += s->swaps;
    }
    const auto now = options.clock();
    for (const auto& s : slots) {
      std::lock_guard g(s->mutex);
      if (changed_now && !s->pinned) {
        std::optional<std::int64_t> desired;
        if (s->alias == "latest") {
          for (const auto& m : models) {
            if (m.name == s->model) desired = m.latest_version;
          }
        } else {
          for (const auto& a : aliases) {
            if (a.model == s->model && a.name == s->alias) desired = a.version;
          }
        }
        s->known = true;
        s->desired = desired;
        s->missing = !desired;
        if (!desired) s->missing_reason = missing_text(*s);
      }
      if (s->loading) {
        if (changed_now) s->reload_after = true;  // look again once this load is done
        continue;
      }
      if (!s->desired || s->unloaded || s->removed) continue;
      // Extra slots made by requests load on request; afterwards, those that follow an alias
      // follow it as configured ones do.
      if (s->extra && !s->current) continue;
      const bool differs = !s->current || s->current->version.id.number != *s->desired;
      const bool backing_off = s->failed_version == s->desired && now < s->next_retry;
      if (differs && !backing_off) request_load_locked(s);
    }
    if (!options.background) {
      for (const auto& s : slots) {
        bool pending = false;
        {
          std::lock_guard g(s->mutex);
          pending = s->loading;
        }
        if (pending) load_slot(*registry, s);
      }
    }
    std::uint64_t swaps_after = 0;
    for (const auto& s : slots) {
      std::lock_guard g(s->mutex);
      swaps_after += s->swaps;
    }
    return swaps_after != swaps_before;
  }

  void poller_main() {
    loop.run([this] { poll(); }, options.poll_interval, [this] {
      std::lock_guard s(status_mutex);
      ++wakeups;
    });
  }

  void start() {
    if (!options.background) return;
    if (options.notify_changes) {
      changes = detail::ChangeNotifier::instance().subscribe(db, [this] { loop.wake(); });
      std::lock_guard lock(status_mutex);
      notifications = changes->active();
    }
    for (unsigned i = 0; i < options.load_threads; ++i) loaders.emplace_back([this] { loader_main(); });
    shadow_thread = std::thread([this] { shadow_main(); });
    poller = std::thread([this] { poller_main(); });
  }

  void stop() {
    changes.reset();
    loop.stop();
    if (poller.joinable()) poller.join();
    {
      std::lock_guard lock(jobs_mutex);
      stopping = true;
    }
    jobs_cv.notify_all();
    for (auto& t : loaders) t.join();
    {
      std::lock_guard lock(shadow_mutex);
      shadow_stopping = true;
    }
    shadow_cv.notify_all();
    if (shadow_thread.joinable()) shadow_thread.join();
    // Wake requests still waiting for a load that will not come.
    for (const auto& s : all_slots()) {
      std::lock_guard lock(s->mutex);
      s->loading = false;
      s->loaded_cv.notify_all();
    }
  }

  // ---- status ---------------------------------------------------------------------------------

  static SlotStatus slot_status(const Slot& s) {
    std::lock_guard lock(s.mutex);
    SlotStatus out;
    out.model = s.model;
    out.alias = s.alias;
    out.pinned_version = s.pinned;
    if (s.current) {
      out.state = "loaded";
      out.serving_version = s.current->version.id.number;
      out.memory_bytes = estimate(*s.current);
    } else if (s.loading) {
      out.state = "loading";
      out.reason = fmt::format("{} is being loaded and validated", s.name());
    } else if (s.unloaded) {
      out.state = "unloaded";
      out.reason = "unloaded to stay within the memory bound; loaded again on the next request";
    } else if (s.known && s.missing) {
      out.state = "waiting";
      out.reason = s.missing_reason;
    } else if (s.last_error) {
      out.state = "failed";
      out.reason = fmt::format("{} could not be served: {}", s.name(), *s.last_error);
    } else {
      out.state = "loading";
      out.reason = "the registry has not been read yet";
    }
    out.desired_version = s.desired;
    out.swaps = s.swaps;
    out.load_failures = s.load_failures;
    out.unloads = s.unloads;
    out.last_error = s.last_error;
    out.last_swap_at = s.last_swap_at;
    out.last_load_seconds = s.last_load_seconds;
    out.requests = s.requests;
    out.errors = s.errors;
    out.in_flight = s.in_flight;
    out.idle_seconds = std::chrono::duration<double>(Clock::now() - s.last_used).count();
    out.requests_by_version = s.by_version;
    return out;
  }

  static ShadowStatus shadow_status(ShadowCounters& c) {
    ShadowStatus out;
    out.alias = c.alias;
    out.queued = c.queued.load();
    out.dropped = c.dropped.load();
    std::lock_guard lock(c.mutex);
    out.scored = c.scored;
    out.failed = c.failed;
    out.rows = c.rows;
    out.label_disagreements = c.label_disagreements;
    out.difference_bounds.assign(std::begin(kDifferenceBounds), std::end(kDifferenceBounds));
    out.difference_counts = c.difference_counts;
    out.difference_sum = c.difference_sum;
    return out;
  }

  std::string default_reason(const Slot& s) const {
    const SlotStatus st = slot_status(s);
    if (st.state == "loaded") {
      std::lock_guard lock(status_mutex);
      return database_problem.value_or("");
    }
    if (st.state == "failed" && st.desired_version) {
      return fmt::format("the {} version {}@{} could not be served: {}", s.alias, s.model, *st.desired_version,
                         st.last_error.value_or(""));
    }
    return st.reason;
  }
};

ModelRepository::ModelRepository(const std::filesystem::path& db, RepositoryOptions options)
    : impl_(std::make_unique<Impl>(db, std::move(options))) {
  impl_->start();
}

ModelRepository::~ModelRepository() { impl_->stop(); }

RoutedPrediction ModelRepository::predict(const ServingRequest& request, MatrixView rows) {
  return impl_->predict(request, rows);
}

std::shared_ptr<const ServedModel> ModelRepository::served(const ServingRequest& request) {
  auto s = impl_->slot_for(request);
  return impl_->lease(s, true).served;
}

bool ModelRepository::serves(std::string_view model) const {
  std::shared_lock lock(impl_->table_mutex);
  return impl_->table.find(model) != impl_->table.end();
}

bool ModelRepository::ready(std::string_view model) const {
  std::shared_ptr<Slot> s;
  {
    std::shared_lock lock(impl_->table_mutex);
    const auto it = impl_->table.find(model);
    if (it == impl_->table.end()) return false;
    s = it->second.slots.front();
  }
  {
    std::lock_guard lock(impl_->status_mutex);
    if (impl_->database_problem) return false;
  }
  std::lock_guard lock(s->mutex);
  return s->current != nullptr || s->unloaded;  // unloaded for memory: the next request loads it
}

bool ModelRepository::all_ready() const {
  std::vector<std::string> names;
  {
    std::shared_lock lock(impl_->table_mutex);
    for (const auto& [name, e] : impl_->table) names.push_back(name);
  }
  if (names.empty()) return false;
  return std::all_of(names.begin(), names.end(), [&](const std::string& n) { return ready(n); });
}

std::string ModelRepository::unready_reason(std::string_view model) const {
  std::shared_ptr<Slot> s;
  {
    std::shared_lock lock(impl_->table_mutex);
    const auto it = impl_->table.find(model);
    if (it == impl_->table.end()) return fmt::format("model '{}' is not served here", model);
    s = it->second.slots.front();
  }
  return impl_->default_reason(*s);
}

std::vector<RepositoryEntry> ModelRepository::index() const {
  std::vector<ModelSummary> models;
  {
    std::lock_guard lock(impl_->control_mutex);
    models = impl_->control->list_models();
  }
  std::vector<RepositoryEntry> out;
  for (const auto& m : models) {
    RepositoryEntry e;
    e.name = m.name;
    std::shared_ptr<Slot> s;
    {
      std::shared_lock lock(impl_->table_mutex);
      const auto it = impl_->table.find(m.name);
      if (it != impl_->table.end()) s = it->second.slots.front();
    }
    if (!s) {
      e.state = "UNAVAILABLE";
      std::shared_lock lock(impl_->table_mutex);
      e.reason = impl_->excluded.contains(m.name) ? "unloaded" : "not loaded";
    } else {
      const SlotStatus st = Impl::slot_status(*s);
      e.version = st.serving_version;
      e.state = st.state == "loaded" ? "READY" : st.state == "loading" ? "LOADING" : "UNAVAILABLE";
      e.reason = st.reason;
    }
    out.push_back(std::move(e));
  }
  return out;
}

void ModelRepository::load(std::string_view model_name) {
  const std::string model(model_name);
  if (!is_valid_model_name(model)) throw Error(Errc::invalid_argument, fmt::format("model name '{}' is invalid", model));
  {
    std::lock_guard lock(impl_->control_mutex);
    const auto models = impl_->control->list_models();
    if (std::none_of(models.begin(), models.end(), [&](const ModelSummary& m) { return m.name == model; })) {
      throw Error(Errc::not_found, fmt::format("model '{}' does not exist in the registry", model));
    }
  }
  std::shared_ptr<Slot> s;
  {
    std::unique_lock lock(impl_->table_mutex);
    impl_->excluded.erase(model);
    ModelEntry& e = impl_->add_entry(model, true);
    s = e.slots.front();
  }
  impl_->log(fmt::format("serving model '{}' (loaded through the repository API)", model));
  auto held = impl_->lease(s, true);  // waits for its load; throws conflict with the reason
}

void ModelRepository::unload(std::string_view model) {
  std::vector<std::shared_ptr<const ServedModel>> dropped;
  {
    std::unique_lock lock(impl_->table_mutex);
    const auto it = impl_->table.find(model);
    if (it == impl_->table.end()) throw Impl::not_served(model);
    for (const auto& s : it->second.slots) {
      std::lock_guard g(s->mutex);
      s->removed = true;
      if (s->current) dropped.push_back(std::exchange(s->current, nullptr));
      s->loaded_cv.notify_all();
    }
    impl_->table.erase(it);
    impl_->excluded.emplace(model);
  }
  for (auto& m : dropped) impl_->retire(std::move(m));
  impl_->log(fmt::format("no longer serving model '{}' (unloaded through the repository API)", model));
}

bool ModelRepository::poll_now() { return impl_->poll(); }

RepositoryStatus ModelRepository::status() const {
  RepositoryStatus out;
  std::vector<std::pair<std::string, ModelEntry>> entries;
  {
    std::shared_lock lock(impl_->table_mutex);
    for (const auto& [name, e] : impl_->table) entries.emplace_back(name, e);
  }
  std::vector<std::shared_ptr<Slot>> slots;
  for (auto& [name, e] : entries) {
    ModelServingStatus m;
    m.model = name;
    m.listed = e.listed;
    m.split = e.split;
    if (e.shadow) m.shadow = Impl::shadow_status(*e.shadow);
    for (const auto& s : e.slots) {
      m.slots.push_back(Impl::slot_status(*s));
      slots.push_back(s);
    }
    // Unloaded for memory is ready: the next request loads it.
    m.ready = !m.slots.empty() && (m.slots.front().state == "loaded" || m.slots.front().state == "unloaded");
    out.models.push_back(std::move(m));
  }
  out.memory_bytes = impl_->loaded_bytes(slots);
  out.max_memory_bytes = impl_->options.max_memory_bytes;
  {
    std::lock_guard lock(impl_->jobs_mutex);
    out.loads_queued = impl_->jobs.size();
  }
  std::lock_guard lock(impl_->status_mutex);
  out.polls = impl_->polls;
  out.poll_errors = impl_->poll_errors;
  out.wakeups = impl_->wakeups;
  out.change_notifications = impl_->notifications;
  out.database_problem = impl_->database_problem;
  out.last_error = impl_->last_error;
  out.unloads = impl_->unloads;
  out.reopens = impl_->reopens;
  out.uptime_seconds = std::chrono::duration<double>(Clock::now() - impl_->started).count();
  if (out.database_problem) {
    for (auto& m : out.models) m.ready = false;
  }
  return out;
}

}  // namespace modelreg
