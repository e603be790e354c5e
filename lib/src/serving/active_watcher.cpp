#include "modelreg/active_watcher.hpp"

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "modelreg/time_format.hpp"
#include "modelreg/registry.hpp"
#include "serving/change_notifier.hpp"
#include "serving/poll_loop.hpp"

namespace modelreg {

using detail::file_id_of;
using detail::FileId;
using detail::read_only_options;

struct __attribute__((visibility("hidden"))) ActiveWatcher::Impl {
  std::string model;
  WatcherOptions options;
  std::filesystem::path db_path;
  // The identity of the file `registry` has open (declared first: opening sets it), and the
  // watcher's own read-only connection; both used only by poll_now (under poll_mutex).
  std::optional<FileId> open_file;
  Registry registry;

  // The hot path: requests copy it under a mutex held for one reference-count increment. (Not
  // std::atomic<std::shared_ptr>: libstdc++ 12's load() releases its internal lock with
  // memory_order_relaxed, a race with exchange() that ThreadSanitizer reports.)
  mutable std::mutex current_mutex;
  std::shared_ptr<const ServedModel> current_model;  // guarded by current_mutex

  std::shared_ptr<const ServedModel> current() const {
    std::lock_guard lock(current_mutex);
    return current_model;
  }
  // Publishes `next`; returns the model it replaced (released by the caller, outside the lock).
  std::shared_ptr<const ServedModel> exchange_current(std::shared_ptr<const ServedModel> next) {
    std::lock_guard lock(current_mutex);
    current_model.swap(next);
    return next;
  }

  std::mutex poll_mutex;  // one poll cycle at a time; protects the fields below it
  std::optional<std::int64_t> last_data_version;
  std::optional<std::int64_t> failed_version;
  std::chrono::milliseconds backoff{0};
  std::chrono::steady_clock::time_point next_retry{};
  // Replaced models, kept until no request holds them, so that they are destroyed here.
  std::vector<std::shared_ptr<const ServedModel>> retired;

  mutable std::mutex status_mutex;  // protects status
  WatcherStatus status;

  detail::PollLoop loop;
  std::unique_ptr<detail::ChangeNotifier::Subscription> changes;
  std::thread thread;

  Impl(const std::filesystem::path& db, std::string m, WatcherOptions o)
      : model(std::move(m)), options(std::move(o)), db_path(db), registry(open_following(db)) {
    if (!is_valid_model_name(model)) {
      throw Error(Errc::invalid_argument, fmt::format("model name '{}' is invalid", model));
    }
    (void)followed();  // refuses an alias that is not a valid name
    if (!options.clock) options.clock = [] { return std::chrono::steady_clock::now(); };
    if (!options.loader) {
      options.loader = [](const Registry& reg, const ModelVersion& v) -> std::shared_ptr<const Model> {
        return reg.load_model(ModelRef::number(v.id.model, v.id.number)).model;
      };
    }
  }

  // The reference the watcher serves: NAME@active, NAME@ALIAS or NAME@latest.
  ModelRef followed() const {
    // Parsed as `modelreg serve` users write it, so a name the parser refuses (or a number,
    // which pins a version instead of following an alias) is refused here too.
    const ModelRef ref = ModelRef::parse(model + "@" + options.alias);
    if (ref.kind() == ModelRef::Kind::number) {
      throw Error(Errc::invalid_argument,
                  fmt::format("'{}' is a version number, not an alias; a watcher follows active, latest or an alias",
                              options.alias));
    }
    return ref;
  }

  // Opens `path` and records the identity of the file opened. The path is looked at before and
  // after the open: when both agree, the open file is that one (a file swapped in between is
  // caught by the next poll, which sees another identity and opens the path again).
  Registry open_following(const std::filesystem::path& path) {
    for (int attempt = 0;; ++attempt) {
      const auto before = file_id_of(path);
      Registry opened(path, read_only_options(options.signing_key));
      const auto after = file_id_of(path);
      if ((before && before == after) || attempt == 2) {
        open_file = after;
        return opened;
      }
    }
  }

  // Compares the file at the database path with the open one: reopens a replaced file, reports a
  // missing one. Returns true when it reopened (the caller reads the active version again).
  bool follow_database_file() {
    const auto at_path = file_id_of(db_path);
    std::optional<std::string> problem;
    bool reopened = false;
    if (!at_path) {
      const auto serving = current();
      problem = fmt::format("the database file {} is gone (deleted or moved away); still serving {} from the "
                            "file opened before, not ready until a database is back at that path",
                            db_path.string(), serving ? serving->version.ref_string() : std::string("nothing"));
    } else if (at_path != open_file) {
      try {
        registry = open_following(db_path);
        reopened = true;
        last_data_version.reset();
        failed_version.reset();
        backoff = std::chrono::milliseconds{0};
      } catch (const std::exception& e) {
        problem = fmt::format("the database file {} was replaced by a file that cannot be opened: {}",
                              db_path.string(), e.what());
      }
    }
    bool changed = false;
    {
      std::lock_guard s(status_mutex);
      changed = status.database_problem != problem;
      status.database_problem = problem;
      if (reopened) ++status.reopens;
      if (problem) {
        ++status.poll_errors;
        if (changed) {
          status.last_error = *problem;
          status.last_error_at = now_text();
        }
      }
    }
    if (reopened) log(fmt::format("the database file {} was replaced; reopened it", db_path.string()));
    if (problem && changed) log(*problem);
    if (!problem && changed) log(fmt::format("the database file {} is back", db_path.string()));
    return reopened;
  }

  void log(const std::string& line) const {
    if (options.log) options.log(line);
  }

  std::string now_text() const { return format_utc(std::chrono::system_clock::now()); }

  void reap() {
    // use_count() == 1: only this list holds it, so destroying it here is the last release.
    const auto destroyed =
        std::erase_if(retired, [](const std::shared_ptr<const ServedModel>& m) { return m.use_count() == 1; });
#ifdef __GLIBC__
    // glibc keeps freed pages for reuse; a replaced model can be hundreds of MiB, so hand them
    // back, or RSS ratchets up by one model at every swap (measured in docs/benchmarks.md).
    if (destroyed > 0) ::malloc_trim(0);
#else
    (void)destroyed;
#endif
  }

  bool poll() {
    std::lock_guard lock(poll_mutex);
    {
      std::lock_guard s(status_mutex);
      ++status.polls;
    }
    reap();
    follow_database_file();
    std::optional<ModelVersion> active;
    try {
      const std::int64_t dv = registry.data_version();
      const bool changed = !last_data_version || dv != *last_data_version;
      last_data_version = dv;
      const bool retry_due = failed_version && options.clock() >= next_retry;
      if (!changed && !retry_due) return false;
      active = registry.find(followed());
    } catch (const std::exception& e) {
      std::lock_guard s(status_mutex);
      ++status.poll_errors;
      status.last_error = fmt::format("polling '{}': {}", model, e.what());
      status.last_error_at = now_text();
      last_data_version.reset();  // look again next time
      return false;
    }
    {
      std::lock_guard s(status_mutex);
      status.desired_version = active ? std::optional(active->id.number) : std::nullopt;
    }
    if (!active) return false;  // nothing promoted yet: not ready (or keep serving what we have)
    const auto serving = current();
    // The same number with other bytes is another version (a database restored from elsewhere).
    if (serving && serving->version.id.number == active->id.number && serving->version.blob.sha256 == active->blob.sha256) {
      failed_version.reset();
      return false;
    }
    if (failed_version == active->id.number && options.clock() < next_retry) return false;

    const auto started = std::chrono::steady_clock::now();
    try {
      auto model_ptr = options.loader(registry, *active);
      if (!model_ptr) throw Error(Errc::validation_failed, fmt::format("{}: the loader returned no model", active->ref_string()));
      auto served = std::make_shared<ServedModel>();
      served->model = std::move(model_ptr);
      served->version = *active;
      served->loaded_at = now_text();
      served->load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      const auto previous = exchange_current(std::shared_ptr<const ServedModel>(served));
      if (previous) retired.push_back(previous);
      failed_version.reset();
      backoff = std::chrono::milliseconds{0};
      {
        std::lock_guard s(status_mutex);
        ++status.swaps;
        status.serving_version = active->id.number;
        status.last_swap_at = served->loaded_at;
        status.last_load_seconds = served->load_seconds;
      }
      log(fmt::format("swapped {} -> {} (loaded and validated in {:.1f} ms)",
                      previous ? previous->version.ref_string() : std::string("nothing"), active->ref_string(),
                      served->load_seconds * 1000));
      reap();
      return true;
    } catch (const std::exception& e) {
      if (failed_version == active->id.number) {
        backoff = std::min(options.retry_max, backoff * 2);
      } else {
        backoff = options.retry_initial;
      }
      failed_version = active->id.number;
      next_retry = options.clock() + backoff;
      const std::string what = e.what();
      {
        std::lock_guard s(status_mutex);
        ++status.load_failures;
        status.last_error = what;
        status.last_error_at = now_text();
      }
      log(fmt::format("failed to load {}: {}; still serving {}; retrying in {:.2f} s", active->ref_string(), what,
                      serving ? serving->version.ref_string() : std::string("nothing"),
                      std::chrono::duration<double>(backoff).count()));
      return false;
    }
  }

  void run() {
    loop.run([this] { poll(); }, options.poll_interval, [this] {
      std::lock_guard status_lock(status_mutex);
      ++status.wakeups;
    });
  }
};

ActiveWatcher::ActiveWatcher(const std::filesystem::path& db, std::string model, WatcherOptions options)
    : impl_(std::make_unique<Impl>(db, std::move(model), std::move(options))) {
  if (impl_->options.poll_interval < std::chrono::milliseconds(1)) {
    throw Error(Errc::invalid_argument, "the poll interval must be at least 1 ms");
  }
  if (impl_->options.background) {
    if (impl_->options.notify_changes) {
      impl_->changes = detail::ChangeNotifier::instance().subscribe(impl_->db_path, [this] { impl_->loop.wake(); });
      std::lock_guard lock(impl_->status_mutex);
      impl_->status.change_notifications = impl_->changes->active();
    }
    impl_->thread = std::thread([this] { impl_->run(); });
  }
}

ActiveWatcher::~ActiveWatcher() {
  impl_->changes.reset();  // no callback runs after this
  if (impl_->thread.joinable()) {
    impl_->loop.stop();
    impl_->thread.join();
  }
}

std::shared_ptr<const ServedModel> ActiveWatcher::current() const noexcept { return impl_->current(); }

const std::string& ActiveWatcher::model_name() const noexcept { return impl_->model; }

bool ActiveWatcher::ready() const noexcept {
  if (!impl_->current()) return false;
  std::lock_guard lock(impl_->status_mutex);
  return !impl_->status.database_problem.has_value();
}

std::string ActiveWatcher::unready_reason() const {
  const auto serving = impl_->current();
  const WatcherStatus s = status();
  if (s.database_problem) return *s.database_problem;
  if (serving) return {};
  const std::string& alias = impl_->options.alias;
  if (s.desired_version) {
    const std::string ref = fmt::format("{}@{}", impl_->model, *s.desired_version);
    if (s.last_error) return fmt::format("the {} version {} could not be served: {}", alias, ref, *s.last_error);
    return fmt::format("the {} version {} is still being loaded and validated", alias, ref);
  }
  if (s.last_error) return fmt::format("the registry could not be read: {}", *s.last_error);
  if (s.polls == 0) return fmt::format("the registry has not been read yet");
  if (alias != "active") {
    return fmt::format("no version of '{}' holds the alias '{}'; set it (modelreg alias set {}@N {})", impl_->model,
                       alias, impl_->model, alias);
  }
  return fmt::format("no version of '{}' is active; promote one (modelreg promote {}@N)", impl_->model, impl_->model);
}

bool ActiveWatcher::poll_now() { return impl_->poll(); }

WatcherStatus ActiveWatcher::status() const {
  std::lock_guard lock(impl_->status_mutex);
  WatcherStatus s = impl_->status;
  s.alias = impl_->options.alias;
  return s;
}

}  // namespace modelreg
