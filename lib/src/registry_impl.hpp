// Private: the state behind a Registry and the helpers its parts share (registry.cpp, bundle.cpp,
// sql_query.cpp). Not installed.
#pragma once

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <map>
#include <mutex>
#include <cstring>
#include <set>
#include <span>

#include <fmt/format.h>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>

#include "blob_store.hpp"
#include "database.hpp"
#include "modelreg/registry.hpp"
#include "sha256.hpp"

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

inline std::string os_user() {
  if (const char* u = std::getenv("USER"); u != nullptr && *u != '\0') return u;
  if (const passwd* pw = ::getpwuid(::geteuid()); pw != nullptr && pw->pw_name != nullptr) {
    return pw->pw_name;
  }
  return fmt::format("uid:{}", ::geteuid());
}

inline bool is_identifier_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-' || c == ':' || c == '/';
}

// Metric and parameter names: [A-Za-z0-9_.:/-]{1,128}, so "f1>=0.8" is never ambiguous.
inline void check_key(std::string_view kind, std::string_view key) {
  if (key.empty() || key.size() > 128 || !std::all_of(key.begin(), key.end(), is_identifier_char)) {
    throw Error(Errc::invalid_argument,
                fmt::format("{} name '{}' is invalid: use 1 to 128 of A-Z a-z 0-9 _ . : / -", kind, key));
  }
}

inline void check_text(std::string_view what, std::string_view value, std::size_t max, bool allow_empty) {
  if ((!allow_empty && value.empty()) || value.size() > max) {
    throw Error(Errc::invalid_argument,
                fmt::format("{} must be {} to {} characters (got {})", what, allow_empty ? 0 : 1, max,
                            value.size()));
  }
  if (value.find('\0') != std::string_view::npos) {
    throw Error(Errc::invalid_argument, fmt::format("{} must not contain NUL characters", what));
  }
}

inline bool is_relation(std::string_view r) {
  return !r.empty() && r.size() <= 64 && std::all_of(r.begin(), r.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

inline void validate(const NewVersion& spec, const Options& options) {
  if (!is_valid_model_name(spec.model)) {
    throw Error(Errc::invalid_argument,
                fmt::format("model name '{}' is invalid: it must match [A-Za-z0-9][A-Za-z0-9_.-]{{0,127}}",
                            spec.model));
  }
  if (spec.format.empty() || spec.format.size() > 64 ||
      !std::all_of(spec.format.begin(), spec.format.end(), [](char c) { return c > ' ' && c < 127; })) {
    throw Error(Errc::invalid_argument,
                fmt::format("format '{}' is invalid: give 1 to 64 printable characters without spaces, "
                            "e.g. 'onnx' or 'bytes'",
                            spec.format));
  }
  check_text("type name", spec.type_name, 256, true);
  check_text("notes", spec.notes, 1 << 20, true);
  for (const auto& [name, value] : spec.metrics) {
    check_key("metric", name);
    if (!std::isfinite(value)) {
      throw Error(Errc::invalid_argument,
                  fmt::format("metric '{}' is {}; metrics must be finite numbers", name, value));
    }
  }
  for (const auto& [name, value] : spec.params) {
    check_key("parameter", name);
    check_text(fmt::format("parameter '{}'", name), value, 1 << 16, true);
  }
  std::set<std::string_view> feature_names;
  for (std::size_t i = 0; i < spec.features.size(); ++i) {
    const auto& f = spec.features[i];
    check_text(fmt::format("feature {} name", i), f.name, 256, false);
    check_text(fmt::format("feature '{}' dtype", f.name), f.dtype, 32, false);
    if (!feature_names.insert(f.name).second) {
      throw Error(Errc::invalid_argument,
                  fmt::format("feature '{}' appears twice; feature names must be unique", f.name));
    }
  }
  for (const auto& [key, value] : spec.tags) {
    check_text("tag key", key, 128, false);
    check_text(fmt::format("tag '{}'", key), value, 4096, true);
  }
  if (spec.label && !is_valid_label(*spec.label)) {
    throw Error(Errc::invalid_argument,
                fmt::format("label '{}' is invalid: it must match [A-Za-z][A-Za-z0-9_.+-]{{0,63}} and not be "
                            "'active' or 'latest', e.g. v1.2.0",
                            *spec.label));
  }
  if (spec.created_by) check_text("created_by", *spec.created_by, 256, false);
  for (const auto& p : spec.parents) {
    if (!is_relation(p.relation)) {
      throw Error(Errc::invalid_argument,
                  fmt::format("lineage relation '{}' is invalid: use [a-z0-9_], e.g. retrained_from", p.relation));
    }
  }
  for (const auto& d : spec.datasets) {
    check_text("dataset uri", d.uri, 4096, false);
    check_text(fmt::format("dataset '{}' role", d.uri), d.role, 32, false);
    if (d.sha256 && !detail::is_sha256_hex(*d.sha256)) {
      throw Error(Errc::invalid_argument,
                  fmt::format("dataset '{}' sha256 '{}' is invalid: give 64 lower-case hex digits", d.uri, *d.sha256));
    }
  }
  if (spec.level < 0 || spec.level > 19) {
    throw Error(Errc::invalid_argument,
                fmt::format("compression level {} is out of range: use 0 (store raw) to 19", spec.level));
  }
  (void)options;
}

inline std::optional<std::int64_t> optional_int(const SQLite::Column& c) {
  if (c.isNull()) return std::nullopt;
  return c.getInt64();
}

// Doubles as IEEE-754 little-endian bytes (the probes table's encoding), independent of the host.
inline std::string encode_doubles(std::span<const double> values) {
  std::string out(values.size() * 8, '\0');
  for (std::size_t i = 0; i < values.size(); ++i) {
    std::uint64_t bits;
    std::memcpy(&bits, &values[i], 8);
    for (int b = 0; b < 8; ++b) out[i * 8 + static_cast<std::size_t>(b)] = static_cast<char>((bits >> (8 * b)) & 0xff);
  }
  return out;
}

inline std::vector<double> decode_doubles(const void* data, std::size_t size) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  std::vector<double> out(size / 8);
  for (std::size_t i = 0; i < out.size(); ++i) {
    std::uint64_t bits = 0;
    for (int b = 0; b < 8; ++b) bits |= static_cast<std::uint64_t>(bytes[i * 8 + static_cast<std::size_t>(b)]) << (8 * b);
    std::memcpy(&out[i], &bits, 8);
  }
  return out;
}

}  // namespace detail

using detail::check_key;
using detail::guarded;
using detail::check_text;
using detail::VersionRow;

struct Registry::Impl {
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
    Cached(const Impl& impl, const char* sql) {
      auto it = impl.statements.find(std::string_view(sql));
      if (it == impl.statements.end()) {
        it = impl.statements.emplace(sql, std::make_unique<SQLite::Statement>(*impl.db, sql)).first;
      }
      q_ = it->second.get();
    }
    ~Cached() {
      try {
        q_->reset();
        q_->clearBindings();
      } catch (...) {
      }
    }
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

  // Signed versions (signing.cpp). The signatures table exists from schema 3 on.
  bool has_signature_table() const;
  std::optional<Signature> signature_of(std::int64_t version_id) const;
  // Error(validation_failed) unless the version's signature verifies under options.signing_key;
  // nothing when there is no key. Reads only metadata rows, never the blob's chunks.
  void check_signature(std::int64_t version_id) const;
  // Signs a committed version (inside the caller's write transaction).
  void sign_version(std::int64_t version_id, const std::string& at, const std::string& who);

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

  std::string now() const {
    return detail::format_utc(options.clock ? options.clock() : std::chrono::system_clock::now());
  }
  std::string actor(const std::optional<std::string>& given) const {
    std::string a = given.value_or(options.default_actor);
    check_text("actor", a, 256, false);
    return a;
  }
  void ensure_writable() const {
    if (!write_refusal.empty()) throw Error(write_refusal_code, write_refusal);
  }

  std::optional<std::int64_t> model_id(std::string_view name) const {
    SQLite::Statement q(*db, "SELECT id FROM models WHERE name = ?");
    q.bind(1, std::string(name));
    if (!q.executeStep()) return std::nullopt;
    return q.getColumn(0).getInt64();
  }

  std::int64_t require_model(std::string_view name) const {
    if (!is_valid_model_name(name)) {
      throw Error(Errc::invalid_argument,
                  fmt::format("model name '{}' is invalid: it must match [A-Za-z0-9][A-Za-z0-9_.-]{{0,127}}", name));
    }
    auto id = model_id(name);
    if (!id) {
      throw Error(Errc::not_found, fmt::format("model '{}' does not exist; list the registered models "
                                               "with `modelreg list`",
                                               name));
    }
    return *id;
  }

  static constexpr const char* kRowColumns =
      "SELECT id, model_id, number, status = 'archived', is_active, blob_id FROM versions ";

  static VersionRow read_row(SQLite::Statement& q) {
    return VersionRow{q.getColumn(0).getInt64(), q.getColumn(1).getInt64(), q.getColumn(2).getInt64(),
                      q.getColumn(3).getInt() != 0, q.getColumn(4).getInt() != 0, q.getColumn(5).getInt64()};
  }

  std::optional<VersionRow> find_row(const ModelRef& ref) const {
    auto mid = model_id(ref.model());
    if (!mid) return std::nullopt;
    std::string sql = kRowColumns;
    switch (ref.kind()) {
      case ModelRef::Kind::active: sql += "WHERE model_id = ?1 AND is_active = 1"; break;
      case ModelRef::Kind::latest: sql += "WHERE model_id = ?1 ORDER BY number DESC LIMIT 1"; break;
      case ModelRef::Kind::number: sql += "WHERE model_id = ?1 AND number = ?2"; break;
      case ModelRef::Kind::label: sql += "WHERE model_id = ?1 AND label = ?2"; break;
    }
    SQLite::Statement q(*db, sql);
    q.bind(1, *mid);
    if (ref.kind() == ModelRef::Kind::number) q.bind(2, ref.version());
    if (ref.kind() == ModelRef::Kind::label) q.bind(2, ref.label_text());
    if (!q.executeStep()) return std::nullopt;
    return read_row(q);
  }

  VersionRow require_row(const ModelRef& ref) const {
    if (auto row = find_row(ref)) return *row;
    auto mid = require_model(ref.model());
    SQLite::Statement latest(*db, "SELECT max(number), count(*) FROM versions WHERE model_id = ?");
    latest.bind(1, mid);
    latest.executeStep();
    const bool any = latest.getColumn(1).getInt64() > 0;
    const std::string latest_text =
        any ? fmt::format("latest is {}", latest.getColumn(0).getInt64()) : std::string("it has no versions");
    switch (ref.kind()) {
      case ModelRef::Kind::active:
        throw Error(Errc::not_found, fmt::format("model '{}' has no active version ({}); promote one first",
                                                 ref.model(), latest_text));
      case ModelRef::Kind::latest:
        throw Error(Errc::not_found, fmt::format("model '{}' has no versions", ref.model()));
      case ModelRef::Kind::number: {
        SQLite::Statement deleted(*db, "SELECT 1 FROM events WHERE model_id = ? AND kind = 'delete' AND version = ?");
        deleted.bind(1, mid);
        deleted.bind(2, ref.version());
        if (deleted.executeStep()) {
          throw Error(Errc::not_found, fmt::format("{} was deleted ({})", ref.to_string(), latest_text));
        }
        throw Error(Errc::not_found,
                    fmt::format("model '{}' has no version {} ({})", ref.model(), ref.version(), latest_text));
      }
      case ModelRef::Kind::label:
        throw Error(Errc::not_found, fmt::format("model '{}' has no version labelled '{}' ({})", ref.model(),
                                                 ref.label_text(), latest_text));
    }
    throw Error(Errc::not_found, ref.to_string());
  }

  std::optional<VersionRow> active_row(std::int64_t model_id) const {
    SQLite::Statement q(*db, std::string(kRowColumns) + "WHERE model_id = ? AND is_active = 1");
    q.bind(1, model_id);
    if (!q.executeStep()) return std::nullopt;
    return read_row(q);
  }

  std::optional<VersionRow> row_by_number(std::int64_t model_id, std::int64_t number) const {
    SQLite::Statement q(*db, std::string(kRowColumns) + "WHERE model_id = ? AND number = ?");
    q.bind(1, model_id);
    q.bind(2, number);
    if (!q.executeStep()) return std::nullopt;
    return read_row(q);
  }

  VersionId version_id_of(std::int64_t version_id) const {
    SQLite::Statement q(*db, "SELECT m.name, v.number FROM versions v JOIN models m ON m.id = v.model_id WHERE v.id = ?");
    q.bind(1, version_id);
    if (!q.executeStep()) throw Error(Errc::not_found, fmt::format("version id {} does not exist", version_id));
    return VersionId{q.getColumn(0).getString(), q.getColumn(1).getInt64()};
  }

  ModelVersion load_version(std::int64_t id) const {
    ModelVersion v;
    {
      Cached q(*this, "SELECT m.name, v.number, v.label, v.format, v.type_name, v.status, v.is_active, v.notes, "
                      "v.created_at, v.created_by, b.sha256, b.raw_size, b.stored_size, b.codec, b.level, "
                      "b.chunk_size, b.chunk_count FROM versions v JOIN models m ON m.id = v.model_id "
                      "JOIN blobs b ON b.id = v.blob_id WHERE v.id = ?");
      q.bind(1, id);
      if (!q.executeStep()) throw Error(Errc::not_found, fmt::format("version id {} does not exist", id));
      v.id = VersionId{q.getColumn(0).getString(), q.getColumn(1).getInt64()};
      if (!q.getColumn(2).isNull()) v.label = q.getColumn(2).getString();
      v.format = q.getColumn(3).getString();
      v.type_name = q.getColumn(4).getString();
      v.status = q.getColumn(5).getString() == "archived" ? VersionStatus::archived : VersionStatus::ready;
      v.active = q.getColumn(6).getInt() != 0;
      v.notes = q.getColumn(7).getString();
      v.created_at = q.getColumn(8).getString();
      v.created_by = q.getColumn(9).getString();
      v.blob.sha256 = q.getColumn(10).getString();
      v.blob.raw_size = static_cast<std::uint64_t>(q.getColumn(11).getInt64());
      v.blob.stored_size = static_cast<std::uint64_t>(q.getColumn(12).getInt64());
      v.blob.codec = q.getColumn(13).getString();
      v.blob.level = q.getColumn(14).getInt();
      v.blob.chunk_size = static_cast<std::uint64_t>(q.getColumn(15).getInt64());
      v.blob.chunk_count = static_cast<std::uint64_t>(q.getColumn(16).getInt64());
    }
    {
      Cached q(*this, "SELECT name, value FROM metrics WHERE version_id = ?");
      q.bind(1, id);
      while (q.executeStep()) v.metrics[q.getColumn(0).getString()] = q.getColumn(1).getDouble();
    }
    {
      Cached q(*this, "SELECT name, value FROM params WHERE version_id = ?");
      q.bind(1, id);
      while (q.executeStep()) v.params[q.getColumn(0).getString()] = q.getColumn(1).getString();
    }
    {
      Cached q(*this, "SELECT name, dtype FROM features WHERE version_id = ? ORDER BY position");
      q.bind(1, id);
      while (q.executeStep()) v.features.push_back({q.getColumn(0).getString(), q.getColumn(1).getString()});
    }
    {
      Cached q(*this, "SELECT key, value FROM tags WHERE version_id = ?");
      q.bind(1, id);
      while (q.executeStep()) v.tags[q.getColumn(0).getString()] = q.getColumn(1).getString();
    }
    {
      Cached q(*this, "SELECT uri, sha256, role FROM datasets WHERE version_id = ? ORDER BY role, uri");
      q.bind(1, id);
      while (q.executeStep()) {
        Dataset d;
        d.uri = q.getColumn(0).getString();
        if (!q.getColumn(1).isNull()) d.sha256 = q.getColumn(1).getString();
        d.role = q.getColumn(2).getString();
        v.datasets.push_back(std::move(d));
      }
    }
    {
      Cached q(*this, "SELECT m.name, p.number, l.relation FROM lineage l JOIN versions p ON p.id = l.parent_id "
                          "JOIN models m ON m.id = p.model_id WHERE l.child_id = ? ORDER BY m.name, p.number");
      q.bind(1, id);
      while (q.executeStep()) {
        v.parents.emplace_back(VersionId{q.getColumn(0).getString(), q.getColumn(1).getInt64()},
                               q.getColumn(2).getString());
      }
    }
    {
      Cached q(*this, "SELECT n_rows, n_features, inputs, outputs FROM probes WHERE version_id = ?");
      q.bind(1, id);
      if (q.executeStep()) {
        const auto cols = static_cast<std::size_t>(q.getColumn(1).getInt64());
        const auto in = q.getColumn(2);
        const auto out = q.getColumn(3);
        Probe p;
        p.inputs = Matrix(detail::decode_doubles(in.getBlob(), static_cast<std::size_t>(in.getBytes())), cols);
        p.outputs = detail::decode_doubles(out.getBlob(), static_cast<std::size_t>(out.getBytes()));
        v.probe = std::move(p);
      }
    }
    v.signature = signature_of(id);
    return v;
  }

  void record_event(std::int64_t model_id, std::string_view kind, std::optional<std::int64_t> version,
                    std::optional<std::int64_t> from, std::optional<std::int64_t> to, const std::string& actor,
                    std::string_view reason, std::string_view details = {}) {
    SQLite::Statement q(*db,
                        "INSERT INTO events(model_id, kind, version, from_version, to_version, actor, reason, at, details) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    q.bind(1, model_id);
    q.bind(2, std::string(kind));
    if (version) q.bind(3, *version); else q.bind(3);
    if (from) q.bind(4, *from); else q.bind(4);
    if (to) q.bind(5, *to); else q.bind(5);
    q.bind(6, actor);
    q.bind(7, std::string(reason));
    q.bind(8, now());
    q.bind(9, std::string(details));
    q.exec();
  }

  void set_active(const VersionRow& target, const std::optional<VersionRow>& current) {
    if (current) {
      SQLite::Statement off(*db, "UPDATE versions SET is_active = 0 WHERE id = ?");
      off.bind(1, current->id);
      off.exec();
    }
    SQLite::Statement on(*db, "UPDATE versions SET is_active = 1 WHERE id = ?");
    on.bind(1, target.id);
    on.exec();
  }

  std::optional<double> metric(std::int64_t version_id, std::string_view name) const {
    SQLite::Statement q(*db, "SELECT value FROM metrics WHERE version_id = ? AND name = ?");
    q.bind(1, version_id);
    q.bind(2, std::string(name));
    if (!q.executeStep()) return std::nullopt;
    return q.getColumn(0).getDouble();
  }

  // The promotion history as a stack of version numbers: a promote pushes; a rollback pops back to
  // its target (or pushes it when it was never active before). The top is the current version.
  std::vector<std::int64_t> activation_stack(std::int64_t model_id) const {
    std::vector<std::int64_t> stack;
    SQLite::Statement q(*db,
                        "SELECT kind, to_version FROM events WHERE model_id = ? AND kind IN ('promote', 'rollback') "
                        "AND to_version IS NOT NULL ORDER BY id");
    q.bind(1, model_id);
    while (q.executeStep()) {
      const std::string kind = q.getColumn(0).getString();
      const std::int64_t to = q.getColumn(1).getInt64();
      auto it = std::find(stack.rbegin(), stack.rend(), to);
      if (kind == "rollback" && it != stack.rend()) {
        stack.erase(it.base(), stack.end());
      } else {
        stack.push_back(to);
      }
    }
    return stack;
  }

  // Inserts a version's content and then its sealing row; returns the new version id. The caller
  // holds the write transaction, has validated `spec` and issued `number`.
  std::int64_t insert_version(std::int64_t model_id, std::int64_t number, const NewVersion& spec,
                              const std::vector<std::pair<std::int64_t, std::string>>& parents, std::int64_t blob_id,
                              const std::string& at, const std::string& creator, const Probe* probe = nullptr);

  ModelVersion register_from(const NewVersion& spec, detail::ByteSource& source, const ProgressFn& progress,
                             const Probe* probe = nullptr);
  std::vector<LineageEdge> walk(const ModelRef& ref, int max_depth, bool up) const;
  void read_blob(const ModelRef& ref, const detail::ByteSink& sink, const ProgressFn& progress) const;
};

}  // namespace modelreg
