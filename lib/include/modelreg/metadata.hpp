// modelreg/metadata.hpp — the values the registry stores about a version and returns from reads.
//
// All types here are plain values (copyable, no hidden state); thread-safety is that of std types.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "modelreg/export.hpp"
#include "modelreg/matrix.hpp"
#include "modelreg/metrics.hpp"
#include "modelreg/model.hpp"
#include "modelreg/model_ref.hpp"

namespace modelreg {

// One input column of a model, in order. dtype is free text (`float64` by default).
struct MODELREG_API Feature {
  std::string name;
  std::string dtype = "float64";

  friend bool operator==(const Feature&, const Feature&) = default;
};

// A data set a version was trained or evaluated on.
struct MODELREG_API Dataset {
  std::string uri;
  std::optional<std::string> sha256;  // 64 lower-case hex digits when given
  std::string role = "train";         // e.g. train, test, validation

  friend bool operator==(const Dataset&, const Dataset&) = default;
};

// A lineage edge to be recorded with a new version: "this version was <relation> <parent>".
struct MODELREG_API Parent {
  ModelRef ref;                           // resolved to a concrete version at registration time
  std::string relation = "derived_from";  // [a-z0-9_]+, e.g. retrained_from, fine_tuned_from
};

// A version as a pair of names: `fraud@7`.
struct MODELREG_API VersionId {
  std::string model;
  std::int64_t number = 0;

  std::string to_string() const;
  friend bool operator==(const VersionId&, const VersionId&) = default;
  friend auto operator<=>(const VersionId&, const VersionId&) = default;
};

// What is known about the stored bytes without reading them.
struct MODELREG_API BlobInfo {
  std::string sha256;         // of the raw (uncompressed) bytes, lower-case hex
  std::uint64_t raw_size = 0;
  std::uint64_t stored_size = 0;
  std::string codec;          // "zstd" or "none"
  int level = 0;
  std::uint64_t chunk_size = 0;
  std::uint64_t chunk_count = 0;

  // raw_size / stored_size (1.0 for an empty blob).
  double ratio() const noexcept;
};

enum class VersionStatus { ready, archived };

// A saved model's validation probe: a few input rows (at most 16) and the outputs the model gave
// for each when it was saved (Model::predict_outputs: rows × n_outputs values). Loading predicts
// them again.
struct MODELREG_API Probe {
  Matrix inputs;
  std::vector<double> outputs;
};

// What a saved model predicts: its task and class labels (see model.hpp), stored with the version.
struct MODELREG_API ModelTask {
  Task task = Task::binary;
  ClassLabels classes;  // empty for regression
  std::size_t n_outputs() const noexcept { return task == Task::multiclass ? classes.size() : 1; }
  friend bool operator==(const ModelTask&, const ModelTask&) = default;
};

// A version's signature (see signing.hpp). Present when the version was signed; whether it
// verifies is checked by a registry that has the key, when it promotes or loads the version.
struct MODELREG_API Signature {
  std::string algorithm;  // "hmac-sha256"
  std::string key_id;     // signing_key_id() of the key that signed it
  std::string signed_at;
  std::string signed_by;
};

// Everything the registry knows about one version.
struct MODELREG_API ModelVersion {
  VersionId id;
  std::optional<std::string> label;
  std::string format;
  std::string type_name;
  VersionStatus status = VersionStatus::ready;
  // Whether the version holds the reserved alias `active` (also the first entry of `aliases`).
  bool active = false;
  // The aliases pointing at this version: "active" first when it holds it, then the others by name.
  std::vector<std::string> aliases;
  std::string notes;
  std::string created_at;  // UTC, ISO 8601 with milliseconds: 2026-11-29T06:07:15.123Z
  std::string created_by;
  BlobInfo blob;
  std::map<std::string, double> metrics;
  std::map<std::string, std::string> params;
  std::vector<Feature> features;
  std::map<std::string, std::string> tags;
  std::vector<Dataset> datasets;
  // Direct parents only; use Registry::ancestors for the whole graph.
  std::vector<std::pair<VersionId, std::string>> parents;
  // Present for models saved with Registry::save_model.
  std::optional<Probe> probe;
  // Present for models saved with Registry::save_model (binary with classes {0, 1} for those saved
  // before tasks existed).
  std::optional<ModelTask> task;
  // Present when the version is signed (schema 3 and later).
  std::optional<Signature> signature;

  std::string ref_string() const { return id.to_string(); }
};

// One row of Registry::list_models.
struct MODELREG_API ModelSummary {
  std::string name;
  std::int64_t version_count = 0;
  std::optional<std::int64_t> active_version;
  std::optional<std::int64_t> latest_version;
  std::string created_at;
};

// What an event of the audit log records. Stored as text in events.kind (to_string's names).
enum class EventKind {
  register_version,  // "register"
  promote,           // "promote"
  rollback,          // "rollback"
  archive,           // "archive"
  unarchive,         // "unarchive"
  delete_version,    // "delete"
  tag,               // "tag": details "KEY=VALUE"
  untag,             // "untag": details "KEY"
  alias_set,         // "alias_set": an alias other than `active` moved to to_version (from from_version)
  alias_remove,      // "alias_remove": an alias other than `active` removed (it pointed at from_version)
};

// The stored name of a kind, e.g. "register".
MODELREG_API std::string_view to_string(EventKind kind) noexcept;
// The kind of a stored name; nullopt for a name this library does not know.
MODELREG_API std::optional<EventKind> parse_event_kind(std::string_view name) noexcept;

// One row of the append-only audit log.
struct MODELREG_API Event {
  std::int64_t id = 0;
  std::string model;
  EventKind kind = EventKind::register_version;
  std::optional<std::int64_t> version;
  std::optional<std::int64_t> from_version;
  std::optional<std::int64_t> to_version;
  std::string actor;
  std::string reason;
  std::string at;
  std::string details;
  // The alias the event moved: "active" for promote, the alias rolled back, set or removed; none for
  // the other kinds (and for promote/rollback events read from a registry before schema 6, "active").
  std::optional<std::string> alias;
};

// One edge met while walking the lineage graph; depth 1 is a direct parent (or child).
struct MODELREG_API LineageEdge {
  VersionId child;
  VersionId parent;
  std::string relation;
  int depth = 1;
};

// Registry::compare: one metric of two versions, as the seed's compare_versions.
struct MODELREG_API MetricComparison {
  std::string metric;
  std::optional<double> a;
  std::optional<double> b;
  // Which way the metric improves (known_direction in metrics.hpp); nullopt when unknown.
  std::optional<MetricDirection> direction;
  // b - a when both exist.
  std::optional<double> difference() const {
    if (a && b) return *b - *a;
    return std::nullopt;
  }
  // How much better b is than a (negative: worse), when both exist and the direction is known:
  // b - a for a higher-is-better metric, a - b for a lower-is-better one.
  std::optional<double> improvement() const {
    if (!a || !b || !direction) return std::nullopt;
    return *direction == MetricDirection::lower_is_better ? *a - *b : *b - *a;
  }
};

// What a move of an alias (promote, rollback, set_alias) did: `alias` pointed at from_version (none
// when it was not set) and now points at to_version. Equal numbers: it pointed there already.
struct MODELREG_API Transition {
  std::string model;
  std::optional<std::int64_t> from_version;
  std::int64_t to_version = 0;
  std::string alias = "active";
};

// One alias of a model (Registry::aliases): it points at `version` since `set_at`, moved by
// `set_by`. For `active`, the time and actor of its last promote or rollback.
struct MODELREG_API Alias {
  std::string model;
  std::string name;
  std::int64_t version = 0;
  std::string set_at;
  std::string set_by;

  // `fraud@champion`.
  std::string ref_string() const { return model + "@" + name; }
  friend bool operator==(const Alias&, const Alias&) = default;
};

// What Registry::gc removed.
struct MODELREG_API GcReport {
  std::vector<VersionId> versions_deleted;
  std::vector<VersionId> versions_kept;  // archived, but kept for lineage or rollback history
  std::uint64_t blobs_removed = 0;
  std::uint64_t chunks_removed = 0;
  std::uint64_t bytes_freed = 0;  // stored bytes of the removed blobs
  bool dry_run = false;
};

}  // namespace modelreg
