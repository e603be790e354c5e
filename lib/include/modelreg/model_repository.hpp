// modelreg/model_repository.hpp — one server for many models: each model follows its aliases
// (hot swap, zero downtime, as ActiveWatcher does for one), versions are served by alias or by
// number, a share of a model's traffic can go to another alias (a canary), every request can be
// scored again by a shadow alias, and the memory of loaded models can be bounded (least recently
// used models are unloaded and loaded again when asked for). `modelreg serve` is this plus HTTP.
//
// Shape. A *slot* is one (model, alias) or (model, pinned number) that is served. The default slot
// of a model follows `active`; a request for NAME@champion or NAME@7 creates the slot on first use
// (the request waits for its load). Threads:
//   - one poller reads PRAGMA data_version every poll interval, and at once when the database's
//     files change (inotify); after a commit it reads every alias of every model in one query and
//     gives each slot whose version moved to the loaders;
//   - `load_threads` loaders, each with its own read-only connection, load and validate versions
//     and publish each with one pointer swap;
//   - one shadow scorer takes copies of requests from a bounded queue.
// A request takes the slot table's shared lock and the slot's mutex for a reference-count increment
// each; no load, poll or shadow score holds either lock while it works, so loading one model (or
// many) never stalls the requests of others.
//
// As with ActiveWatcher: a version that fails to load or validate never replaces the serving one
// (recorded in status, retried with backoff); a request keeps the model it started with until it
// finishes; replaced models are destroyed off the request path.
//
// Thread-safety: every public member may be called from any number of threads at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "modelreg/active_watcher.hpp"
#include "modelreg/export.hpp"
#include "modelreg/matrix.hpp"
#include "modelreg/model_server.hpp"

namespace modelreg {

// `share` percent of a model's default requests (those naming no version) go to `alias`.
struct MODELREG_API TrafficSplit {
  std::string model;
  std::string alias;
  double percent = 0;  // (0, 100)
};

// Every default request of `model` is also scored, off the response path, by `alias`.
struct MODELREG_API ShadowTarget {
  std::string model;
  std::string alias;
};

struct MODELREG_API RepositoryOptions {
  // Models served from the start, each following default_alias.
  std::vector<std::string> models;
  // Also every model where a version holds default_alias (has an active version, by default),
  // including models that get one later; a model found this way that loses it is no longer served.
  // Default: off.
  bool all_models = false;
  // What a request naming no version gets (before the split): `active` (default), any alias, or
  // `latest`.
  std::string default_alias = "active";
  std::vector<TrafficSplit> splits;
  std::vector<ShadowTarget> shadows;
  // Shadow work waiting at most; more is dropped (counted), the response never waits. Default 1024.
  std::size_t shadow_queue_capacity = 1024;
  // Bound on the memory of loaded models, estimated as the raw size of their serialized bytes (what
  // a model occupies once deserialized is close to it for the built-in types). When over it, the
  // least recently used slots with no request in flight are unloaded. 0 (default): no bound.
  std::uint64_t max_memory_bytes = 0;
  // Slots made by requests for a model's other aliases or numbers, at most this many per model; the
  // least recently used one with no request in flight makes room. Default 8.
  std::size_t max_extra_slots_per_model = 8;
  // Threads loading versions. Default 2.
  unsigned load_threads = 2;
  // The loader threads' nice value (Linux: per thread), so that a long load (deserializing and
  // validating a large forest) takes CPU from requests only when they leave it idle. 0: the
  // process's own priority. Default 10.
  int load_nice = 10;
  // How long a request for a version that is not loaded waits for its load. Default 30 s.
  std::chrono::milliseconds load_wait{30'000};
  std::chrono::milliseconds poll_interval{100};
  bool notify_changes = true;
  // false: no threads at all; the owner calls poll_now() (loads then run on the calling thread).
  bool background = true;
  ModelLoader loader{};
  std::chrono::milliseconds retry_initial{250};
  std::chrono::milliseconds retry_max{30'000};
  std::function<std::chrono::steady_clock::time_point()> clock{};
  std::function<void(std::string_view line)> log{};
  std::optional<std::string> signing_key{};
};

// What a request asks for: `model` and, in `version`, nothing (the model's default alias, or the
// split), an alias (`champion`, `latest`) or a number (`7`).
struct MODELREG_API ServingRequest {
  std::string model;
  std::string version;
  // The request's key for the split (the OIP request id): one key always lands on one alias.
  // Empty: chosen at random.
  std::string key;
};

// One served (model, alias) or (model, number).
struct MODELREG_API SlotStatus {
  std::string model;
  std::string alias;                          // followed alias; empty for a pinned number
  std::optional<std::int64_t> pinned_version;
  // "loaded", "loading", "unloaded" (for memory; loaded again on the next request), "failed"
  // (nothing serves: the load failed), "waiting" (no version holds the alias).
  std::string state;
  std::string reason;                         // for an operator, when not loaded
  std::optional<std::int64_t> serving_version;
  std::optional<std::int64_t> desired_version;
  std::uint64_t swaps = 0;
  std::uint64_t load_failures = 0;
  std::uint64_t unloads = 0;
  std::optional<std::string> last_error;
  std::optional<std::string> last_swap_at;
  double last_load_seconds = 0;
  std::uint64_t memory_bytes = 0;             // estimate of the serving model (0 when unloaded)
  std::uint64_t requests = 0;                 // batches this slot answered or refused
  std::uint64_t errors = 0;
  std::int64_t in_flight = 0;
  double idle_seconds = 0;                    // since the last request (or since loaded)
  std::map<std::int64_t, std::uint64_t> requests_by_version;
};

struct MODELREG_API ShadowStatus {
  std::string alias;
  std::uint64_t queued = 0;            // batches given to the shadow scorer
  std::uint64_t dropped = 0;           // batches dropped because the queue was full
  std::uint64_t scored = 0;            // batches scored by the shadow
  std::uint64_t failed = 0;            // not scored: the shadow alias does not serve, or failed
  std::uint64_t rows = 0;              // rows compared
  std::uint64_t label_disagreements = 0;
  // Absolute differences of the outputs (every probability of a classifier, the value of a
  // regression), as a histogram: counts of values <= each bound, and above the last.
  std::vector<double> difference_bounds;
  std::vector<std::uint64_t> difference_counts;  // difference_bounds.size() + 1 (last: +Inf)
  double difference_sum = 0;
};

struct MODELREG_API ModelServingStatus {
  std::string model;
  bool ready = false;                  // the default slot (default_alias) serves
  bool listed = false;                 // named at start or loaded through load(); false: found by all_models
  std::optional<TrafficSplit> split;
  std::optional<ShadowStatus> shadow;
  std::vector<SlotStatus> slots;       // the default slot first
};

struct MODELREG_API RepositoryStatus {
  std::vector<ModelServingStatus> models;  // by name
  std::uint64_t polls = 0;
  std::uint64_t poll_errors = 0;
  std::uint64_t wakeups = 0;
  bool change_notifications = false;
  std::optional<std::string> database_problem;
  std::uint64_t reopens = 0;               // database files replaced at the path and reopened
  std::optional<std::string> last_error;
  std::uint64_t memory_bytes = 0;          // of the loaded models (each counted once)
  std::uint64_t max_memory_bytes = 0;
  std::uint64_t unloads = 0;               // for memory
  std::size_t loads_queued = 0;
  double uptime_seconds = 0;
};

// One entry of index(): a model of the registry and whether it is served.
struct MODELREG_API RepositoryEntry {
  std::string name;
  std::optional<std::int64_t> version;     // serving version of the default slot
  std::string state;                       // "READY", "LOADING", "UNAVAILABLE"
  std::string reason;
};

// A Prediction and where it came from.
struct MODELREG_API RoutedPrediction {
  Prediction prediction;                   // prediction.version: the version that answered
  std::string alias;                       // the alias that answered; empty for a pinned number
};

class MODELREG_API ModelRepository {
 public:
  // Opens `db` read-only (it must exist), checks the options (unknown model names, a split or shadow
  // of a model that is not served, a percent outside (0, 100), an alias that is not a valid name:
  // Error(invalid_argument)) and starts the threads.
  ModelRepository(const std::filesystem::path& db, RepositoryOptions options);
  // Stops the threads, waiting for loads in progress.
  ~ModelRepository();
  ModelRepository(const ModelRepository&) = delete;
  ModelRepository& operator=(const ModelRepository&) = delete;

  // Scores a batch with the version the request names. Errors: not_found (a model not served, an
  // alias or number the model does not have), conflict (nothing serves it: the load failed or is
  // not done within load_wait; the message says why), invalid_argument (wrong width), busy (more
  // slots than allowed are in use).
  RoutedPrediction predict(const ServingRequest& request, MatrixView rows);

  // The serving model of the slot the request names, for metadata (features, task), loaded if need
  // be, as predict does. The same errors.
  std::shared_ptr<const ServedModel> served(const ServingRequest& request);

  // Whether the model's default slot serves (or was unloaded for memory: the next request loads
  // it); false for a model not served.
  bool ready(std::string_view model) const;
  // Whether every served model's default slot serves.
  bool all_ready() const;
  // Why the model's default slot does not serve (empty when it does).
  std::string unready_reason(std::string_view model) const;
  bool serves(std::string_view model) const;

  // The KServe model repository extension. index(): every model of the registry and its state.
  std::vector<RepositoryEntry> index() const;
  // Serves `model` (following active) from now on, and waits up to load_wait for its load. Throws
  // not_found for an unknown model, conflict when it cannot be served (the reason).
  void load(std::string_view model);
  // Stops serving `model` (requests in flight finish on it); all_models will not bring it back
  // until load(). Throws not_found when it is not served.
  void unload(std::string_view model);

  // One poll cycle on the calling thread (loads too, without background threads). Returns true
  // when a slot swapped. Never throws.
  bool poll_now();

  RepositoryStatus status() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace modelreg
