// Private: the state behind a Registry and the declarations its parts share. Not installed.
//
// Where the definitions live:
//   input_checks.cpp   what a caller may pass: names, keys, texts, a NewVersion as a whole
//   version_rows.cpp   reading and writing version rows: lookups by ModelRef, load_version, insert_version
//   lifecycle.cpp      the write skeleton's users: promote, rollback, archive, unarchive, delete, tags, gc
//   aliases.cpp        aliases: reading, pointing and removing them, their history; set_alias, remove_alias
//   registry.cpp       opening, registering bytes, the read API, streaming bytes out, check
//   model_save_load.cpp  save_model / load_model: archives, probes and validation on load
//   bundle.cpp, signing.cpp, sql_query.cpp   export/import, signatures, read-only SQL
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>

#include "modelreg/registry.hpp"
#include "store/blob_store.hpp"
#include "store/database.hpp"

namespace modelreg {
namespace detail {

// A version row as the lifecycle code needs it.
struct VersionRow {
  std::int64_t id = 0;
  std::int64_t model_id = 0;
  std::int64_t number = 0;
  bool archived = false;
  bool active = false;
  std::int64_t blob_id = 0;
};

// ---- input_checks.cpp: each throws Error(invalid_argument) naming the problem and the fix ----

// The OS user: $USER, else the passwd entry, else "uid:N".
std::string os_user();
// A character of metric and parameter names: [A-Za-z0-9_.:/-].
bool is_identifier_char(char c);
// Metric and parameter names: [A-Za-z0-9_.:/-]{1,128}, so "f1>=0.8" is never ambiguous.
void check_key(std::string_view kind, std::string_view key);
// 0 (when allow_empty) or 1 to `max` bytes of valid UTF-8 without control characters (tabs and
// line breaks allowed).
void check_text(std::string_view what, std::string_view value, std::size_t max, bool allow_empty);
// The offset of the first byte that does not start or continue a valid UTF-8 sequence.
std::optional<std::size_t> first_invalid_utf8(std::string_view text) noexcept;
// Lineage relations: [a-z0-9_]{1,64}.
bool is_relation(std::string_view r);
// Every field of a new version.
void validate(const NewVersion& spec);

// ---- version_rows.cpp ----

std::optional<std::int64_t> optional_int(const SQLite::Column& c);
// Doubles as IEEE-754 little-endian bytes (the probes table's encoding), independent of the host.
std::string encode_doubles(std::span<const double> values);
std::vector<double> decode_doubles(const void* data, std::size_t size);
// Class labels as the tasks table stores them: a JSON array of integers or of strings.
std::string encode_labels(const ClassLabels& labels);
ClassLabels decode_labels(const std::string& json);

}  // namespace detail

using detail::check_key;
using detail::check_text;
using detail::guarded;
using detail::VersionRow;

// Hidden: not part of the shared library's ABI, although Registry is exported.
struct __attribute__((visibility("hidden"))) Registry::Impl {
  std::filesystem::path path;
  Options options;
  // Why writes are refused (empty when they are allowed): read-only open, or a newer schema.
  std::string write_refusal;
  Errc write_refusal_code = Errc::conflict;
  mutable std::mutex mutex;                // protects db and everything reached through it
  std::unique_ptr<SQLite::Database> db;    // protected by mutex

  // Prepared statements of the hot read paths (load_version runs 10 per version; preparing
  // them anew for each of hundreds of listed versions cost more than running them). Declared
  // after db, so they are finalized before it closes. Protected by mutex.
  mutable std::map<std::string, std::unique_ptr<SQLite::Statement>, std::less<>> statements;

  // A cached statement, reset (and its bindings cleared) when the scope ends, so that it never
  // holds a read snapshot open between calls.
  class Cached {
   public:
    Cached(const Impl& impl, const char* sql);
    ~Cached();
    Cached(const Cached&) = delete;
    Cached& operator=(const Cached&) = delete;
    template <class... A>
    void bind(A&&... a) { q_->bind(std::forward<A>(a)...); }
    bool executeStep() { return q_->executeStep(); }
    SQLite::Column getColumn(int i) const { return q_->getColumn(i); }

   private:
    SQLite::Statement* q_ = nullptr;
  };

  // signing_key_id(*options.signing_key), when there is a key.
  std::string key_id;
  // Whether the signatures table exists (has_signature_table, cached; under mutex).
  mutable std::optional<bool> signature_table;
  // Whether the tasks table exists (schema 5; has_task_table, cached like signature_table).
  mutable std::optional<bool> task_table;
  // Whether the aliases table and events.alias exist (schema 6; has_alias_table, cached likewise).
  mutable std::optional<bool> alias_table;

  // ---- the write skeleton: every write of the registry goes through it ----

  // Checks that writes are allowed and who acts, then, under the lock and in one IMMEDIATE
  // transaction, calls body(actor) — which reads the rows it needs, writes, and records its
  // event — and commits. Anything body throws rolls the whole write back; SQLite errors become
  // Error with `context` ("promoting fraud@3").
  template <class Body>
  auto write(std::string_view context, const std::optional<std::string>& given_actor, Body&& body) {
    ensure_writable();
    const std::string who = actor(given_actor);
    return guarded(context, [&] {
      std::lock_guard lock(mutex);
      SQLite::Transaction txn(*db, SQLite::TransactionBehavior::IMMEDIATE);
      if constexpr (std::is_void_v<decltype(body(who))>) {
        body(who);
        txn.commit();
      } else {
        auto result = body(who);
        txn.commit();
        return result;
      }
    });
  }

  // Calls f(open) under the lock and in one read transaction, after the version's signature was
  // checked; each open() returns a new BlobReader over the version's blob (the same snapshot), so
  // a caller can verify the bytes in one pass and use them in another without holding them.
  template <class F>
  auto with_blob(const ModelRef& ref, F&& f) const {
    std::lock_guard lock(mutex);
    SQLite::Transaction txn(*db, SQLite::TransactionBehavior::DEFERRED);
    const VersionRow row = require_row(ref);
    const std::string owner = version_id_of(row.id).to_string();
    check_signature(row.id);  // before a byte of the blob is read
    auto open = [&] { return std::make_unique<detail::BlobReader>(*db, row.blob_id, owner); };
    auto result = f(open);
    txn.commit();
    return result;
  }

  // ---- registry.cpp ----

  // The event time: options.clock, else the system clock, as UTC text.
  std::string now() const;
  // `given`, else options.default_actor; checked as text.
  std::string actor(const std::optional<std::string>& given) const;
  // Error(write_refusal_code) when this Registry may not write.
  void ensure_writable() const;

  ModelVersion register_from(const NewVersion& spec, detail::ByteSource& source, const ProgressFn& progress,
                             const Probe* probe = nullptr, const ModelTask* task = nullptr);
  std::vector<LineageEdge> walk(const ModelRef& ref, int max_depth, bool up) const;
  void read_blob(const ModelRef& ref, const detail::ByteSink& sink, const ProgressFn& progress) const;

  // ---- version_rows.cpp: the caller holds the lock ----

  std::optional<std::int64_t> model_id(std::string_view name) const;
  // Error(invalid_argument) for a bad name, Error(not_found) for an unknown model.
  std::int64_t require_model(std::string_view name) const;
  std::optional<VersionRow> find_row(const ModelRef& ref) const;
  // Error(not_found) saying what is missing (no active version, a deleted number, an unknown label).
  VersionRow require_row(const ModelRef& ref) const;
  std::optional<VersionRow> active_row(std::int64_t model_id) const;
  std::optional<VersionRow> row_by_number(std::int64_t model_id, std::int64_t number) const;
  VersionId version_id_of(std::int64_t version_id) const;
  // Everything about one version, from its rows (never its blob).
  ModelVersion load_version(std::int64_t id) const;
  std::optional<double> metric(std::int64_t version_id, std::string_view name) const;
  // Inserts a version's content and then its sealing row; returns the new version id. The caller
  // holds the write transaction, has validated `spec` and issued `number`.
  std::int64_t insert_version(std::int64_t model_id, std::int64_t number, const NewVersion& spec,
                              const std::vector<std::pair<std::int64_t, std::string>>& parents, std::int64_t blob_id,
                              const std::string& at, const std::string& creator, const Probe* probe = nullptr,
                              const ModelTask* task = nullptr);

  // ---- lifecycle.cpp: inside the write skeleton ----

  // `alias` is the alias the event moves (promote, rollback, alias_set, alias_remove), else empty.
  void record_event(std::int64_t model_id, EventKind kind, std::optional<std::int64_t> version,
                    std::optional<std::int64_t> from, std::optional<std::int64_t> to, const std::string& actor,
                    std::string_view reason, std::string_view details = {}, std::string_view alias = {});
  void set_active(const VersionRow& target, const std::optional<VersionRow>& current);
  // Before a version becomes active: its signature (with a key) and every byte of its blob
  // (chunks and SHA-256), so that no restart comes up on an active version that cannot load.
  // Error(validation_failed / corruption) saying why `verb` ("promote") was refused.
  void check_activatable(const VersionRow& row, std::string_view verb) const;

  // ---- aliases.cpp: the caller holds the lock ----

  bool has_alias_table() const;
  // `active` (any case) as "active"; any other valid alias as given. Error(invalid_argument) for
  // `latest` or a malformed name.
  static std::string alias_name(std::string_view model, std::string_view alias);
  // The version an alias of the model points at (`active`: the active version).
  std::optional<VersionRow> alias_row(std::int64_t model_id, std::string_view alias) const;
  // The aliases pointing at a version, "active" first, then by name.
  std::vector<std::string> aliases_of(std::int64_t version_id, bool active) const;
  std::vector<Alias> aliases_of_model(std::int64_t model_id, const std::string& model) const;
  // Labels and aliases share one namespace per model. Error(already_exists) when an alias would
  // take the name of a label of the model (check_not_a_label), or a label that of one of its
  // aliases (check_not_an_alias; nothing before schema 6).
  void check_not_a_label(std::int64_t model_id, std::string_view name, std::string_view model) const;
  void check_not_an_alias(std::int64_t model_id, std::string_view name, std::string_view model) const;
  // Points `alias` at target (inside the write transaction; no event, no checks of the target).
  void point_alias(const VersionRow& target, const std::string& alias, const std::optional<VersionRow>& current,
                   const std::string& who);
  // Sets an alias (promote included) with every check: see Registry::set_alias.
  Transition move_alias(const ModelRef& ref, const std::string& alias, const AliasOptions& options,
                        const std::optional<MetricDirection>& direction, const std::string& who);
  // An alias's history as a stack of version numbers: a promote or alias_set pushes; a rollback pops
  // back to its target (or pushes it when the alias never pointed there before); a removal leaves
  // it. The top is the version the alias points at (or pointed at before its removal).
  std::vector<std::int64_t> alias_stack(std::int64_t model_id, std::string_view alias) const;
  // The version numbers of the model that any alias's history still names.
  std::vector<std::int64_t> alias_history_versions(std::int64_t model_id) const;

  // ---- signing.cpp. The signatures table exists from schema 3 on ----

  bool has_signature_table() const;
  bool has_task_table() const;
  std::optional<Signature> signature_of(std::int64_t version_id) const;
  // Error(validation_failed) unless the version's signature verifies under options.signing_key;
  // nothing when there is no key. Reads only metadata rows, never the blob's chunks.
  void check_signature(std::int64_t version_id) const;
  // Signs a committed version (inside the caller's write transaction).
  void sign_version(std::int64_t version_id, const std::string& at, const std::string& who);
};

}  // namespace modelreg
