// modelreg/registry.hpp — start here.
//
// A Registry is one SQLite database holding models, their numbered immutable versions, the
// versions' bytes (compressed, checksummed chunks), metadata, lineage, aliases (named pointers to
// versions; `active` is the default one) and an append-only audit log. See README.md for the schema and docs/format.md for the on-disk format.
//
// Thread-safety: a Registry may be shared by several threads; calls are serialized on one
// connection (protected by an internal mutex). Several processes may open the same database at
// once: writers take the write lock up front and wait up to Options::busy_timeout for each other.
//
// Every write is one transaction: it either happens completely or leaves the database exactly as
// it was. Every failure is a modelreg::Error (see error.hpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "modelreg/export.hpp"
#include "modelreg/error.hpp"
#include "modelreg/metadata.hpp"
#include "modelreg/metrics.hpp"
#include "modelreg/model.hpp"
#include "modelreg/model_ref.hpp"
#include "modelreg/progress.hpp"
#include "modelreg/signing.hpp"

namespace modelreg {

struct MODELREG_API Options {
  // Create the database file when it does not exist. Default: true.
  bool create_if_missing = true;
  // Open read-only: every write throws Error(conflict). Default: false. A registry in a directory
  // this process cannot write (a read-only mount) can be read only this way: through its existing
  // -wal and -shm, else — with no write-ahead log to read — opened immutable; a -wal without its
  // -shm is Error(io_error). Opened read-write there, it is Error(io_error) naming the directory.
  bool read_only = false;
  // PRAGMA synchronous=FULL (true, default) makes a returned promotion survive power loss;
  // false uses NORMAL (faster; a power cut may lose the last commits, never corrupts).
  bool synchronous_full = true;
  // How long a writer waits for another writer's lock before Error(busy). Default: 60 s, long
  // enough for another process to finish registering a large model.
  std::chrono::milliseconds busy_timeout{60'000};
  // Raw bytes per blob chunk; each chunk is one zstd frame. 64 KiB .. 256 MiB. Default: 4 MiB.
  std::uint64_t chunk_size = 4u << 20;
  // Threads compressing chunks while one thread hashes and writes. 0 (default): one per core.
  unsigned compression_threads = 0;
  // Page size of a newly created database file (ignored for an existing one). Default: 4096,
  // which keeps per-version overhead small; larger pages write large blobs a little faster.
  int page_size = 4096;
  // Who acts when a call does not say: default the OS user ($USER, else the passwd entry).
  std::string default_actor;
  // The time source for created_at and event times. Default: the system clock. Tests inject one.
  std::function<std::chrono::system_clock::time_point()> clock;
  // A signing key (the contents of a key file: read_signing_key in signing.hpp). When set, every
  // version this registry writes is signed with HMAC-SHA256 over its checksum and immutable
  // metadata, and promote, rollback and every load (load_model, load_bytes, load_to*, verify)
  // refuse a version that is unsigned or does not verify under this key, with
  // Error(validation_failed), before any of its bytes are read. Default: none (versions are not
  // signed and signatures are not checked).
  std::optional<std::string> signing_key;
};

// A new version, minus its bytes. Only `model` and `format` are required.
struct MODELREG_API NewVersion {
  std::string model{};                           // [A-Za-z0-9][A-Za-z0-9_.-]{0,127}; created on first use
  std::string format{};                          // e.g. "modelreg-boost", "onnx", "bytes"
  std::string type_name{};                       // e.g. "RandomForest"; may be empty for opaque bytes
  std::map<std::string, double> metrics{};       // finite values only
  std::map<std::string, std::string> params{};   // hyperparameters
  std::vector<Feature> features{};               // ordered; names unique
  std::map<std::string, std::string> tags{};
  std::string notes{};
  std::optional<std::string> label{};            // unique within the model, e.g. "v1.2.0"
  std::optional<std::string> created_by{};       // default Options::default_actor
  std::vector<Parent> parents{};                 // lineage; each REF must resolve
  std::vector<Dataset> datasets{};
  int level = 3;                               // zstd level 0..19; 0 stores the bytes raw
};

// A condition on a metric, e.g. parsed from "f1 >= 0.8". A version without the metric never
// satisfies a condition on it.
struct MODELREG_API MetricCondition {
  enum class Op { lt, le, eq, ne, ge, gt };
  std::string metric;
  Op op = Op::ge;
  double value = 0;

  // Parses `NAME OP NUMBER` with OP one of < <= = == != >= >; spaces optional.
  // Throws Error(invalid_argument) naming the problem.
  static MetricCondition parse(std::string_view text);
  bool holds(double metric_value) const noexcept;
};

struct MODELREG_API VersionQuery {
  std::vector<MetricCondition> where;           // all must hold
  std::optional<std::pair<std::string, std::optional<std::string>>> tag;  // key, optional value
  std::optional<VersionStatus> status;          // default: any status
  std::optional<std::string> order_by_metric;   // versions without it sort last
  bool descending = true;                       // for order_by_metric (best first)
  bool newest_first = false;                    // without order_by_metric: highest number first
  std::optional<std::size_t> limit;
  // Keyset pagination: only the versions that come after `after` in the order above — the last
  // version of the previous page, given by its number and (with order_by_metric) its value of
  // that metric, none when it lacked it. Without order_by_metric it follows the (model, number)
  // index (either way: newest_first), so a page costs the same at version 100,000 as at version 1.
  struct After {
    std::int64_t number = 0;
    std::optional<double> metric;
  };
  std::optional<After> after;
};

// Who did it and why; recorded in the audit log.
struct MODELREG_API Change {
  std::string reason{};
  std::optional<std::string> actor{};  // default Options::default_actor
};

// How an alias moves (Registry::set_alias, and promote, which moves `active`).
struct MODELREG_API AliasOptions {
  std::string reason{};
  std::optional<std::string> actor{};
  // When set, refuse (Error(conflict)) unless the candidate's value of this metric is at least as
  // good as that of the version the alias points at now: at least as high for a higher-is-better
  // metric (f1, accuracy, auc, r2), at most as high for a lower-is-better one (rmse, mae, log_loss).
  // A candidate lacking the metric is refused; when the alias points nowhere yet the guard passes.
  std::optional<std::string> require_better{};
  // Which way require_better's metric improves. Unset: known_direction(metric) (metrics.hpp); a
  // metric of unknown direction (a custom one) then needs it, else Error(invalid_argument).
  std::optional<MetricDirection> direction{};
};

// promote is set_alias(ref, "active", ...): the same options.
using PromoteOptions = AliasOptions;

struct MODELREG_API RollbackOptions {
  std::string reason{};
  std::optional<std::string> actor{};
  // When set, roll back to this version; otherwise to the one the alias pointed at before.
  std::optional<ModelRef> to{};
  // The alias rolled back. Default: `active`.
  std::string alias = "active";
};

struct MODELREG_API GcOptions {
  // Report what would be removed without removing anything.
  bool dry_run = false;
  // Also delete archived versions (then their blobs, when no other version shares them). Archived
  // versions still named by another version's lineage are always kept.
  bool delete_archived = false;
  // With delete_archived: also delete archived versions that the history of an alias (`active`
  // included) still names (a later unarchive + rollback could want them). Default: keep them.
  bool include_rollback_history = false;
  std::string reason{};
  std::optional<std::string> actor{};
};

// One cell of a Registry::query result.
struct MODELREG_API SqlBlob {
  std::uint64_t size = 0;
};
using SqlValue = std::variant<std::monostate, std::int64_t, double, std::string, SqlBlob>;

struct MODELREG_API SqlResult {
  std::vector<std::string> columns;
  std::vector<std::vector<SqlValue>> rows;
};

// Bounds on one Registry::query call, so that no query (an unbounded recursive CTE, a sort of
// billions of rows, zeroblob(2e9)) can hang the caller or exhaust its memory. Hitting one is
// Error(invalid_argument) naming the bound and how to raise it. 0 means no bound.
struct MODELREG_API SqlOptions {
  // Wall-clock time for all the statements together. Default: 10 s.
  std::chrono::milliseconds timeout{10'000};
  // Rows in the result of any one statement. Default: 1,000,000.
  std::uint64_t max_rows = 1'000'000;
  // Bytes of the result of any one statement as held in memory (each cell, with its text), and of
  // any single value SQLite builds (SQLITE_LIMIT_LENGTH). Default: 256 MiB.
  std::uint64_t max_bytes = 256u << 20;
  // Growth of SQLite's heap while the query runs: sorts, temporary tables and recursive CTE queues,
  // all kept in memory (a query writes no temporary files). Measured with SQLite's process-wide
  // counter, so other SQLite work in this process at the same time counts too. Default: 256 MiB.
  std::uint64_t max_memory = 256u << 20;
};

// What Registry::check found.
struct MODELREG_API IntegrityReport {
  std::vector<std::string> database_problems;  // from PRAGMA integrity_check / foreign_key_check
  std::vector<std::pair<VersionId, std::string>> bad_versions;  // version, what is wrong
  std::uint64_t versions_checked = 0;
  bool ok() const noexcept { return database_problems.empty() && bad_versions.empty(); }
};

struct MODELREG_API ExportReport {
  std::vector<VersionId> versions;
  std::uint64_t stored_bytes = 0;  // compressed bytes copied into the bundle
};

struct MODELREG_API ImportReport {
  std::vector<VersionId> imported;
  std::vector<VersionId> already_present;  // same number, same bytes and metadata: skipped
  // Always empty: a lineage edge whose parent is neither in the bundle nor in this registry
  // refuses the whole import (Error(conflict)). Kept so that code reading it still compiles.
  std::vector<std::string> dropped_lineage;
};

// The format string of versions saved with Registry::save_model (a model archive, see
// model_archive.hpp). Any other format is an opaque artifact, loaded back as bytes.
inline constexpr std::string_view kModelFormat = "modelreg-model";

struct MODELREG_API LoadOptions {
  // Validation on load (archive header, type, feature count, probe). The checksum is always
  // verified. Turning validation off is for forensics, never for serving. Default: true.
  bool validate = true;
};

// A model loaded from the registry, with the version it came from.
struct MODELREG_API LoadedModel {
  std::unique_ptr<Model> model;
  ModelVersion version;
};

class MODELREG_API Registry {
 public:
  // Opens (or creates) the database at `path` and applies pending migrations.
  // Throws Error: not_found (missing and !create_if_missing), corruption (not a modelreg/SQLite
  // file), io_error (cannot open). A database whose schema is newer than this library opens for
  // reading only: every write throws Error(incompatible) naming both schema versions.
  explicit Registry(const std::filesystem::path& path, Options options = {});
  ~Registry();
  Registry(Registry&&) noexcept;
  Registry& operator=(Registry&&) noexcept;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // ---- registering versions ---------------------------------------------------------------
  // Each stores the bytes (deduplicated by SHA-256) and the metadata in one transaction and
  // returns the new version (numbered max+1 within the model, never reusing a number).
  // Throws invalid_argument (bad metadata), not_found (a parent REF), already_exists (label taken),
  // io_error (source unreadable or disk full), busy.
  ModelVersion register_bytes(const NewVersion& spec, std::string_view bytes,
                              const ProgressFn& progress = {});
  ModelVersion register_stream(const NewVersion& spec, std::istream& in,
                               const ProgressFn& progress = {});
  ModelVersion register_file(const NewVersion& spec, const std::filesystem::path& file,
                             const ProgressFn& progress = {});

  // ---- models ------------------------------------------------------------------------------
  // Saves a trained model as a new version in one transaction: format kModelFormat, type_name and
  // hyperparameters from the model (spec.params added on top), features from spec.features (which
  // must then have model.n_features() entries) or named f0, f1, ..., and a probe: the first (at
  // most 16) rows of `probe_rows` — or, without them, 16 fixed pseudo-random rows — with the
  // model's outputs on them. Throws as register_bytes, and invalid_argument for an untrained model,
  // a feature list or probe rows of the wrong width.
  ModelVersion save_model(const Model& model, NewVersion spec, MatrixView probe_rows = {});
  // Loads a model saved with save_model, checking in this order: checksum (Error(corruption));
  // archive header compatible with this build (Error(incompatible)); archive type equals the
  // stored type name; n_features() equals the registered feature list; the probe rows predicted
  // again reproduce the stored outputs within 1e-9 (each Error(validation_failed)). Every message
  // names the version, the check and the two values. An opaque artifact (another format) is
  // Error(validation_failed) pointing at load_bytes.
  LoadedModel load_model(const ModelRef& ref, const LoadOptions& options = {}) const;

  // ---- reading -----------------------------------------------------------------------------
  // The version REF names, with all its metadata; nullopt when the model or version is absent.
  std::optional<ModelVersion> find(const ModelRef& ref) const;
  // As find, but absence is Error(not_found) with a helpful message ("latest is 7").
  ModelVersion get(const ModelRef& ref) const;
  std::vector<ModelSummary> list_models() const;
  // Versions of one model (ascending number unless ordered by a metric). Throws not_found.
  std::vector<ModelVersion> list_versions(std::string_view model, const VersionQuery& query = {}) const;
  // One metric, or (metric empty) every metric either version has.
  std::vector<MetricComparison> compare(const ModelRef& a, const ModelRef& b,
                                        std::string_view metric = {}) const;
  // The lineage graph around REF, breadth first, each edge once; max_depth 0 means unlimited.
  std::vector<LineageEdge> ancestors(const ModelRef& ref, int max_depth = 0) const;
  std::vector<LineageEdge> descendants(const ModelRef& ref, int max_depth = 0) const;
  // The audit log of one model, oldest first.
  std::vector<Event> history(std::string_view model) const;

  // ---- loading bytes (checksum verified; a mismatch is Error(corruption) naming the version) --
  std::string load_bytes(const ModelRef& ref, const ProgressFn& progress = {}) const;
  // Streams chunk by chunk; each chunk is verified before it is written to `out`.
  void load_to(const ModelRef& ref, std::ostream& out, const ProgressFn& progress = {}) const;
  // Writes a temporary file beside `file` and renames it into place only when fully verified.
  // Refuses, before reading anything, a `file` that check_output_path refuses.
  void load_to_file(const ModelRef& ref, const std::filesystem::path& file, const ProgressFn& progress = {},
                    bool overwrite = false) const;
  // Whether a command may write `file`: Error(invalid_argument) when it is, or would replace, one
  // of this registry's own files (the database, its -wal, -shm or -journal, under any name that
  // leads to them); Error(already_exists) when it exists and !overwrite (pass overwrite, the
  // CLI's --force, to replace it); Error(invalid_argument) for a directory.
  void check_output_path(const std::filesystem::path& file, bool overwrite) const;
  // Writes `content` (a command's output, e.g. `predict -o`) to `file` as load_to_file writes: a
  // temporary file of its own beside it, synced, moved into place only complete; never over one
  // of this registry's files, and over an existing file only with overwrite (checked again at the
  // move, so a file another command created meanwhile is never replaced).
  void write_output_file(const std::filesystem::path& file, std::string_view content, bool overwrite) const;
  // Reads and verifies every chunk and the SHA-256 without keeping the bytes.
  void verify(const ModelRef& ref) const;

  // ---- lifecycle ---------------------------------------------------------------------------
  // Makes REF the model's single active version: set_alias(ref, "active", options), recorded as a
  // `promote` event. Throws conflict (archived, or the guard fails).
  Transition promote(const ModelRef& ref, const PromoteOptions& options = {});
  // Points the alias back at the version it pointed at before the current one (options.alias,
  // default `active`); repeated calls walk further back through that alias's history, skipping
  // versions archived or deleted since. With options.to, points it there instead. Recorded as a
  // `rollback` event of the alias. Throws conflict when there is nothing to roll back to; checks
  // the target as set_alias does (signature, verified bytes), never the require_better guard.
  Transition rollback(std::string_view model, const RollbackOptions& options = {});

  // ---- aliases: a model's named pointers to its versions (fraud@champion) --------------------
  // Points `alias` of REF's model at REF's version in one transaction, recorded in the audit log
  // (alias, from, to, actor, reason): kind `promote` for `active` (any case), `alias_set` for any
  // other alias, which is created when the model does not have it yet. The version must be
  // activatable as promote requires: not archived (Error(conflict)), its signature verifying when a
  // key is set and every byte of its blob verifying (Error(validation_failed / corruption)); the
  // guard options.require_better compares it with the version the alias points at now. An alias
  // named like a label of the model is Error(already_exists) (labels and aliases share one
  // namespace); `latest` or a malformed name is Error(invalid_argument). Pointing an alias where it
  // points already records nothing and returns from_version == to_version.
  Transition set_alias(const ModelRef& ref, std::string_view alias, const AliasOptions& options = {});
  // Removes an alias (not `active`, which only promote and rollback move: Error(invalid_argument)),
  // recording an `alias_remove` event; returns the version number it pointed at. Error(not_found)
  // when the model has no such alias. A later rollback of the alias points it back there.
  std::int64_t remove_alias(std::string_view model, std::string_view alias, const Change& change = {});
  // The aliases of one model, `active` first (when a version is active), then by name.
  // Throws not_found for an unknown model.
  std::vector<Alias> aliases(std::string_view model) const;
  // Every alias of every model, by model name, then as aliases(model) orders them.
  std::vector<Alias> aliases() const;

  // A version holding an alias cannot be archived (move or remove the alias first), and an archived
  // version cannot be given one; unarchive makes it ready again.
  void archive(const ModelRef& ref, const Change& change = {});
  void unarchive(const ModelRef& ref, const Change& change = {});
  // Deletes an archived version (not its blob: see gc). Refused while another version's lineage
  // points at it. The version's number is never reused.
  void delete_version(const ModelRef& ref, const Change& change = {});
  // Tags are the one thing about a version that may change after it is registered.
  // set_tags sets (adds or overwrites) `set` and removes `remove` in one transaction, one event per
  // change: Error(not_found) for a key in `remove` that the version does not have, and
  // Error(invalid_argument) for a key in both, or for nothing to do — the version unchanged.
  void set_tags(const ModelRef& ref, const std::map<std::string, std::string>& set,
                const std::vector<std::string>& remove, const Change& change = {});
  // One tag: set_tags(ref, {{key, value}}, {}) and set_tags(ref, {}, {key}).
  void set_tag(const ModelRef& ref, std::string_view key, std::string_view value,
               const Change& change = {});
  void remove_tag(const ModelRef& ref, std::string_view key, const Change& change = {});
  // Signs an unsigned version (one imported, or registered without a key) with
  // Options::signing_key; Error(invalid_argument) without one. A version already signed with this
  // key and verifying: returned unchanged. Signed with another key, or not verifying:
  // Error(conflict) / Error(validation_failed) — a signature never changes.
  ModelVersion sign(const ModelRef& ref, const Change& change = {});
  // Deletes blobs no version references and reclaims their pages; with options.delete_archived,
  // first deletes archived versions (see GcOptions). Never touches the active version, nor a blob
  // that any remaining version uses.
  GcReport gc(const GcOptions& options = {});

  // ---- integrity, SQL, bundles ---------------------------------------------------------------
  // PRAGMA integrity_check and foreign_key_check, then every version's (or one version's) bytes
  // read and verified. Problems are reported, not thrown.
  IntegrityReport check(const std::optional<ModelRef>& only = std::nullopt, const ProgressFn& progress = {}) const;

  // Runs read-only SQL (one or more statements; the last one's rows are returned) on a separate
  // read-only connection whose authorizer denies every write, ATTACH/DETACH, PRAGMAs that set a
  // value, and extension loading. A denied statement is Error(invalid_argument) naming it. Time,
  // result size and memory are bounded by `options` (see SqlOptions); the database is never changed.
  SqlResult query(std::string_view sql, const SqlOptions& options = {}) const;

  // Writes the versions (metadata, lineage, datasets, tags, compressed chunks as stored) into a new
  // single-file bundle (an SQLite file; see docs/format.md). Refuses to overwrite an existing file.
  ExportReport export_bundle(const std::vector<ModelRef>& refs, const std::filesystem::path& bundle,
                             const ProgressFn& progress = {}) const;
  // Imports a bundle in one transaction: every chunk and checksum is verified first; versions keep
  // their numbers (fraud@7 stays fraud@7); a version already here with the same bytes and metadata
  // is skipped; any conflict (the number taken by different content or deleted here, a label
  // taken, a parent neither in the bundle nor here) refuses the whole import with Error(conflict)
  // and changes nothing. A bundle that is not exactly what export_bundle writes (schema, format
  // version, sizes, checksums, number ranges) is Error(corruption / incompatible); the bytes
  // written are the bytes verified, each chunk read once.
  ImportReport import_bundle(const std::filesystem::path& bundle, const ProgressFn& progress = {});

  // ---- schema ------------------------------------------------------------------------------
  // PRAGMA data_version of this registry's connection: it changes when another connection (in
  // this or another process) commits, and costs no I/O when nothing changed. Watchers poll it.
  std::int64_t data_version() const;
  int schema_version() const;
  static int supported_schema_version() noexcept;
  const std::filesystem::path& path() const noexcept;
  // Whether this Registry refuses writes: opened read-only, a file or directory it cannot write,
  // or a schema newer than this library (every write then throws, saying which).
  bool read_only() const noexcept;

 private:
  friend class TokenStore;  // access.hpp: tokens are written through this registry's connection
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace modelreg
