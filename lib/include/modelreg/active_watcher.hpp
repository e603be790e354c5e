// modelreg/active_watcher.hpp — follow a model's active version and hot-swap to it.
//
// An ActiveWatcher owns its own read-only connection to the registry and polls PRAGMA
// data_version (no I/O when nothing changed) every poll interval, and at once when the database's
// files change (inotify; WatcherOptions::notify_changes). Only when another connection has committed does it
// read the model's active version; a new one is loaded and validated on the watcher's thread —
// never on a request thread — and then published with one pointer swap. Requests take current()
// — a shared_ptr copy under a mutex held for one reference-count increment, never across a load —
// and keep the model they started with until they drop
// it; a replaced model is destroyed on the watcher's thread once the last request has let go.
//
// A version that fails to load or validate never replaces the serving one: the failure is
// recorded (status()), retried with exponential backoff, and a later promotion still swaps.
// Rapid A→B→A changes collapse to whatever is active when the watcher looks.
//
// The database file is followed by its identity (st_dev, st_ino), checked at every poll: a file
// replaced at the same path (a restore with `mv`) is reopened and its active version served (a
// version with the same number but other bytes is loaded again); a file that is gone makes the
// watcher not ready (status().database_problem, last_error) while the loaded model keeps serving
// requests, until a file is back at the path.
//
// Thread-safety: current(), ready() and status() may be called from any number of threads at
// once. poll_now() may be called from one thread at a time (it serializes itself).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "modelreg/export.hpp"
#include "modelreg/metadata.hpp"
#include "modelreg/model.hpp"

namespace modelreg {

class Registry;

// One loaded, validated version. Immutable; shared by the requests that use it.
struct MODELREG_API ServedModel {
  std::shared_ptr<const Model> model;
  ModelVersion version;
  std::string loaded_at;  // UTC, ISO 8601
  double load_seconds = 0;
};

// Turns a version into a Model. The default is Registry::load_model with validation. A custom
// loader serves any type: e.g. wrap an opaque artifact (format "onnx") in your own Model class.
// Throw modelreg::Error (or any std::exception) to refuse the version.
using ModelLoader = std::function<std::shared_ptr<const Model>(const Registry& registry, const ModelVersion& version)>;

struct MODELREG_API WatcherOptions {
  // The alias followed: `active` (default, what promote and rollback move), any alias of the model
  // (`champion`, moved by Registry::set_alias), or `latest` (the newest version).
  std::string alias = "active";
  // How often data_version is polled. Default: 100 ms.
  std::chrono::milliseconds poll_interval{100};
  // Default (empty): Registry::load_model with validation.
  ModelLoader loader{};
  // Backoff after a failed load of the same version: starts here, doubles, capped at retry_max.
  // Defaults: 250 ms, 30 s.
  std::chrono::milliseconds retry_initial{250};
  std::chrono::milliseconds retry_max{30'000};
  // Poll on a background thread (default). false: no thread; the owner calls poll_now() — the
  // seam tests use to drive the watcher without sleeping.
  bool background = true;
  // With a background thread: also poll as soon as the database's files change (inotify on its
  // directory: a commit writes the -wal file), so a promotion is served after its load, not after
  // up to a poll interval. The interval stays as the fallback (file systems without inotify, lost
  // events). Default: on.
  bool notify_changes = true;
  // The clock for backoff decisions. Default: steady_clock. Tests inject one.
  std::function<std::chrono::steady_clock::time_point()> clock{};
  // Receives one line per swap and per failed load. Default: none.
  std::function<void(std::string_view line)> log{};
  // Only versions signed with this key are loaded (Options::signing_key); a version that is
  // unsigned or wrongly signed counts as a failed load: the serving version stays. Default: none.
  std::optional<std::string> signing_key{};
};

struct MODELREG_API WatcherStatus {
  std::string alias;                            // the alias followed (WatcherOptions::alias)
  std::optional<std::int64_t> serving_version;  // what current() returns
  std::optional<std::int64_t> desired_version;  // the active version in the database, last seen
  std::uint64_t swaps = 0;
  std::uint64_t load_failures = 0;
  std::uint64_t polls = 0;
  std::uint64_t poll_errors = 0;
  std::optional<std::string> last_error;        // "fraud@7: validation failed at the probe check: ..."
  std::optional<std::string> last_error_at;
  std::optional<std::string> last_swap_at;
  // Set while the file at the database path is gone, or is another file that cannot be opened:
  // "the database file /srv/r.db is gone (deleted or moved away) ...". Cleared once it is back.
  std::optional<std::string> database_problem;
  std::uint64_t reopens = 0;                    // database files replaced at the path and reopened
  bool change_notifications = false;            // woken by file changes (inotify); false: polling only
  std::uint64_t wakeups = 0;                    // polls started by a change notification
  double last_load_seconds = 0;                 // of the last successful load
};

class MODELREG_API ActiveWatcher {
 public:
  // Opens `db` read-only (it must exist) and, with options.background, starts polling at once.
  // Throws Error as Registry's constructor does, and Error(invalid_argument) for an alias that is
  // not a valid name.
  ActiveWatcher(const std::filesystem::path& db, std::string model, WatcherOptions options = {});
  // Stops the thread (waiting for a load in progress to finish).
  ~ActiveWatcher();
  ActiveWatcher(const ActiveWatcher&) = delete;
  ActiveWatcher& operator=(const ActiveWatcher&) = delete;

  // The serving version; null until the first successful load. Takes a mutex for one
  // reference-count increment (never held while a model loads), so requests do not wait on a swap.
  // It stays set while the database file is gone: the loaded model keeps answering.
  std::shared_ptr<const ServedModel> current() const noexcept;
  // A version serves and the database file is still there (no status().database_problem).
  bool ready() const noexcept;
  // Why ready() is false, as one sentence for an operator: nothing is active, the active version
  // failed to load (with the watcher's last error), it is still loading, the database file is
  // gone. Empty when ready().
  std::string unready_reason() const;
  const std::string& model_name() const noexcept;

  // One poll cycle on the calling thread: reads data_version; when it changed (or a failed load is
  // due for retry) reads the active version, and loads, validates and swaps to it when it differs
  // from the serving one. Returns true when it swapped. Never throws: errors go to status().
  bool poll_now();

  WatcherStatus status() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace modelreg
