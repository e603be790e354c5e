#include "modelreg/registry.hpp"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <ostream>
#include <set>
#include <chrono>
#include <thread>

#include <fmt/format.h>
#include <sqlite3.h>

#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>

#include "core/text_format.hpp"
#include "modelreg/time_format.hpp"
#include "store/output_file.hpp"
#include "store/registry_impl.hpp"

namespace modelreg {

using detail::guarded;
using namespace detail;

namespace {

std::string_view op_sql(MetricCondition::Op op) {
  switch (op) {
    case MetricCondition::Op::lt: return "<";
    case MetricCondition::Op::le: return "<=";
    case MetricCondition::Op::eq: return "=";
    case MetricCondition::Op::ne: return "<>";
    case MetricCondition::Op::ge: return ">=";
    case MetricCondition::Op::gt: return ">";
  }
  return "=";
}

}  // namespace

// ---- MetricCondition ----------------------------------------------------------------------------

MetricCondition MetricCondition::parse(std::string_view text) {
  auto fail = [&](std::string_view why) {
    return Error(Errc::invalid_argument,
                 fmt::format("metric condition '{}' is invalid: {}; write NAME OP NUMBER with OP one of "
                             "< <= = != >= >, e.g. \"f1 >= 0.8\"",
                             text, why));
  };
  auto trim = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
  };
  auto pos = text.find_first_of("<>=!");
  if (pos == std::string_view::npos) throw fail("no comparison operator");
  MetricCondition c;
  c.metric = std::string(trim(text.substr(0, pos)));
  if (c.metric.empty()) throw fail("no metric name");
  if (!std::all_of(c.metric.begin(), c.metric.end(), detail::is_identifier_char)) throw fail("bad metric name");
  std::string_view rest = text.substr(pos);
  static constexpr std::pair<std::string_view, Op> kOps[] = {
      {"<=", Op::le}, {">=", Op::ge}, {"==", Op::eq}, {"!=", Op::ne},
      {"<", Op::lt},  {">", Op::gt},  {"=", Op::eq},
  };
  bool matched = false;
  for (const auto& [token, op] : kOps) {
    if (rest.starts_with(token)) {
      c.op = op;
      rest.remove_prefix(token.size());
      matched = true;
      break;
    }
  }
  if (!matched) throw fail("unknown operator");
  rest = trim(rest);
  if (rest.empty()) throw fail("no number after the operator");
  auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), c.value);
  if (ec != std::errc() || end != rest.data() + rest.size() || !std::isfinite(c.value)) {
    throw fail(fmt::format("'{}' is not a number", rest));
  }
  return c;
}

bool MetricCondition::holds(double v) const noexcept {
  switch (op) {
    case Op::lt: return v < value;
    case Op::le: return v <= value;
    case Op::eq: return v == value;
    case Op::ne: return v != value;
    case Op::ge: return v >= value;
    case Op::gt: return v > value;
  }
  return false;
}

// ---- Registry::Impl -----------------------------------------------------------------------------

std::string Registry::Impl::now() const {
  return format_utc(options.clock ? options.clock() : std::chrono::system_clock::now());
}

std::string Registry::Impl::actor(const std::optional<std::string>& given) const {
  std::string a = given.value_or(options.default_actor);
  check_text("actor", a, 256, false);
  return a;
}

void Registry::Impl::ensure_writable() const {
  if (!write_refusal.empty()) throw Error(write_refusal_code, write_refusal);
}


ModelVersion Registry::Impl::register_from(const NewVersion& spec, detail::ByteSource& source,
                                           const ProgressFn& progress, const Probe* probe,
                                           const ModelTask* task) {
  detail::validate(spec);
  ensure_writable();
  const std::string creator = actor(spec.created_by);
  const std::string context = fmt::format("registering a version of '{}'", spec.model);
  return guarded(context, [&] {
    std::lock_guard lock(mutex);
    SQLite::Transaction txn(*db, SQLite::TransactionBehavior::IMMEDIATE);
    const std::string at = now();

    std::int64_t mid = 0;
    if (auto existing = model_id(spec.model)) {
      mid = *existing;
    } else {
      SQLite::Statement q(*db, "INSERT INTO models(name, created_at) VALUES (?, ?)");
      q.bind(1, spec.model);
      q.bind(2, at);
      q.exec();
      mid = db->getLastInsertRowid();
    }
    if (spec.label) {
      SQLite::Statement q(*db, "SELECT number FROM versions WHERE model_id = ? AND label = ?");
      q.bind(1, mid);
      q.bind(2, *spec.label);
      if (q.executeStep()) {
        throw Error(Errc::already_exists,
                    fmt::format("label '{}' is already taken by {}@{}; labels are unique within a model", *spec.label,
                                spec.model, q.getColumn(0).getInt64()));
      }
      check_not_an_alias(mid, *spec.label, spec.model);
    }
    std::vector<std::pair<VersionRow, std::string>> parents;
    for (const auto& p : spec.parents) parents.emplace_back(require_row(p.ref), p.relation);

    detail::BlobWriteSettings settings;
    settings.level = spec.level;
    settings.chunk_size = options.chunk_size;
    settings.threads = options.compression_threads;
    settings.created_at = at;
    settings.actor = creator;
    const detail::StoredBlob blob = detail::BlobStore(*db).write(source, settings, progress);

    SQLite::Statement issue(*db, "UPDATE models SET last_number = last_number + 1 WHERE id = ? RETURNING last_number");
    issue.bind(1, mid);
    issue.executeStep();
    const std::int64_t number = issue.getColumn(0).getInt64();
    issue.reset();
    std::vector<std::pair<std::int64_t, std::string>> parent_ids;
    for (const auto& [row, relation] : parents) parent_ids.emplace_back(row.id, relation);
    const std::int64_t vid = insert_version(mid, number, spec, parent_ids, blob.id, at, creator, probe, task);
    // Versions this registry registers are signed; imported ones are not (see Registry::sign).
    if (options.signing_key) sign_version(vid, at, creator);
    record_event(mid, EventKind::register_version, number, std::nullopt, std::nullopt, creator, "",
                 fmt::format("sha256={} raw_size={} stored_size={}{}", blob.info.sha256, blob.info.raw_size,
                             blob.info.stored_size,
                             blob.deduplicated ? " deduplicated"
                             : blob.repaired   ? " repaired (the stored copy failed verification)"
                                               : ""));
    ModelVersion result = load_version(vid);
    txn.commit();
    return result;
  });
}

std::vector<LineageEdge> Registry::Impl::walk(const ModelRef& ref, int max_depth, bool up) const {
  const VersionRow start = require_row(ref);
  // UNION drops repeated (edge, depth) rows; the outer query keeps each edge at its least depth.
  const std::string sql = fmt::format(
      "WITH RECURSIVE walk(child_id, parent_id, relation, depth) AS ("
      "  SELECT child_id, parent_id, relation, 1 FROM lineage WHERE {0} = ?1"
      "  UNION"
      "  SELECT l.child_id, l.parent_id, l.relation, w.depth + 1 FROM lineage l JOIN walk w ON l.{0} = w.{1}"
      "  WHERE ?2 = 0 OR w.depth < ?2)"
      " SELECT cm.name, c.number, pm.name, p.number, w.relation, min(w.depth) AS d FROM walk w"
      " JOIN versions c ON c.id = w.child_id JOIN models cm ON cm.id = c.model_id"
      " JOIN versions p ON p.id = w.parent_id JOIN models pm ON pm.id = p.model_id"
      " GROUP BY w.child_id, w.parent_id, w.relation ORDER BY d, cm.name, c.number, pm.name, p.number",
      up ? "child_id" : "parent_id", up ? "parent_id" : "child_id");
  SQLite::Statement q(*db, sql);
  q.bind(1, start.id);
  q.bind(2, std::max(0, max_depth));
  std::vector<LineageEdge> edges;
  while (q.executeStep()) {
    LineageEdge e;
    e.child = VersionId{q.getColumn(0).getString(), q.getColumn(1).getInt64()};
    e.parent = VersionId{q.getColumn(2).getString(), q.getColumn(3).getInt64()};
    e.relation = q.getColumn(4).getString();
    e.depth = q.getColumn(5).getInt();
    edges.push_back(std::move(e));
  }
  return edges;
}

void Registry::Impl::read_blob(const ModelRef& ref, const detail::ByteSink& sink, const ProgressFn& progress) const {
  std::lock_guard lock(mutex);
  // One read transaction: the version row and its chunks are seen at one point in time.
  SQLite::Transaction txn(*db, SQLite::TransactionBehavior::DEFERRED);
  const VersionRow row = require_row(ref);
  const VersionId id = version_id_of(row.id);
  check_signature(row.id);  // before a byte of the blob is read
  detail::BlobStore(*db).read(row.blob_id, id.to_string(), sink, progress);
  txn.commit();
}

// ---- Registry -----------------------------------------------------------------------------------

Registry::Registry(const std::filesystem::path& path, Options options) : impl_(std::make_unique<Impl>()) {
  impl_->path = path;
  impl_->options = std::move(options);
  Options& o = impl_->options;
  if (o.default_actor.empty()) o.default_actor = os_user();
  if (o.compression_threads == 0) o.compression_threads = std::max(1u, std::thread::hardware_concurrency());
  if (o.chunk_size < (64u << 10) || o.chunk_size > (256u << 20)) {
    throw Error(Errc::invalid_argument,
                fmt::format("chunk size {} is out of range: use 64 KiB to 256 MiB", o.chunk_size));
  }
  if (o.page_size < 512 || o.page_size > 65536 || (o.page_size & (o.page_size - 1)) != 0) {
    throw Error(Errc::invalid_argument,
                fmt::format("page size {} is invalid: use a power of two from 512 to 65536", o.page_size));
  }
  if (o.signing_key) {
    if (o.signing_key->size() < 16) {
      throw Error(Errc::invalid_argument, fmt::format("the signing key has {} bytes; a key needs at least 16 (create "
                                                      "one with `modelreg keygen FILE`)",
                                                      o.signing_key->size()));
    }
    impl_->key_id = signing_key_id(*o.signing_key);
  }
  std::error_code ec;
  const bool exists = std::filesystem::exists(path, ec);
  if (!exists && (!o.create_if_missing || o.read_only)) {
    throw Error(Errc::not_found, fmt::format("database '{}' does not exist; create it with `modelreg init` "
                                             "or pass the right --db",
                                             path.string()));
  }
  if (exists && std::filesystem::is_directory(path, ec)) {
    throw Error(Errc::invalid_argument, fmt::format("database path '{}' is a directory", path.string()));
  }
  const std::string context = fmt::format("opening '{}'", path.string());
  guarded(context, [&] {
    impl_->db = detail::open_connection(path, o.read_only, static_cast<int>(o.busy_timeout.count()));
    SQLite::Database& db = *impl_->db;
    db.exec("PRAGMA foreign_keys = ON");
    db.exec(o.synchronous_full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
    if (o.read_only) {
      impl_->write_refusal = fmt::format("'{}' was opened read-only", path.string());
    } else if (sqlite3_db_readonly(db.getHandle(), "main") == 1) {
      const std::string cause = detail::read_only_cause(path);
      impl_->write_refusal = fmt::format("'{}' is read-only: {}; make it writable to write to it (reading works, as "
                                         "with --read-only)",
                                         path.string(),
                                         cause.empty() ? "check the permissions of the file and its directory" : cause);
      impl_->write_refusal_code = Errc::io_error;
    }
    // Look before changing anything: a file that is not a modelreg database (an application's own
    // SQLite file, an empty file a read command was pointed at) must be left byte-identical.
    const bool empty = db.execAndGet("PRAGMA page_count").getInt64() == 0;
    // Blank: nothing in it yet (or another process is creating a registry in it right now).
    const bool blank = empty || (detail::user_version(db) == 0 &&
                                 db.execAndGet("SELECT count(*) FROM sqlite_master").getInt64() == 0);
    if (blank && exists && !o.create_if_missing) {
      throw Error(Errc::incompatible, fmt::format("'{}' is an empty file, not a modelreg database; pass the right --db, "
                                                  "or create a registry there with `modelreg init`",
                                                  path.string()));
    }
    if (!blank && !detail::is_modelreg_database(db)) {
      throw Error(Errc::incompatible, fmt::format("'{}' is an SQLite database but not a modelreg database (it has no "
                                                  "modelreg schema); pass the right --db",
                                                  path.string()));
    }
    if (impl_->write_refusal.empty()) {
      if (empty) {
        // Only settable before the first table exists.
        db.exec(fmt::format("PRAGMA page_size = {}", o.page_size));
        db.exec("PRAGMA auto_vacuum = INCREMENTAL");
      }
      // Switching a new file to WAL needs an exclusive lock, and SQLite answers SQLITE_BUSY at once
      // (without the busy handler) when another process is doing the same: retry until the timeout.
      const auto deadline = std::chrono::steady_clock::now() + o.busy_timeout;
      std::string mode;
      for (;;) {
        try {
          mode = db.execAndGet("PRAGMA journal_mode = WAL").getString();
          break;
        } catch (const SQLite::Exception& e) {
          if ((e.getErrorCode() & 0xff) != SQLITE_BUSY || std::chrono::steady_clock::now() >= deadline) throw;
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
      }
      if (mode != "wal") {
        throw Error(Errc::io_error, fmt::format("{}: cannot switch to WAL journal mode (got '{}')", context, mode));
      }
    }
    const int version = detail::user_version(db);
    const int supported = supported_schema_version();
    if (version > supported) {
      impl_->write_refusal = fmt::format(
          "'{}' has schema version {}, newer than this modelreg supports ({}); upgrade modelreg to write to it "
          "(reading still works)",
          path.string(), version, supported);
      impl_->write_refusal_code = Errc::incompatible;
    } else if (version < supported) {
      if (!impl_->write_refusal.empty()) {
        if (version == 0) {
          throw Error(Errc::not_found, fmt::format("'{}' holds no modelreg schema yet, and it is read-only; "
                                                   "create it with `modelreg init`",
                                                   path.string()));
        }
      } else {
        detail::apply_migrations(db, detail::embedded_migrations(), impl_->now());
      }
    }
  });
}

Registry::~Registry() = default;
Registry::Registry(Registry&&) noexcept = default;
Registry& Registry::operator=(Registry&&) noexcept = default;

ModelVersion Registry::register_bytes(const NewVersion& spec, std::string_view bytes, const ProgressFn& progress) {
  detail::MemorySource source(bytes);
  return impl_->register_from(spec, source, progress);
}

ModelVersion Registry::register_stream(const NewVersion& spec, std::istream& in, const ProgressFn& progress) {
  detail::StreamSource source(in);
  return impl_->register_from(spec, source, progress);
}

ModelVersion Registry::register_file(const NewVersion& spec, const std::filesystem::path& file,
                                     const ProgressFn& progress) {
  detail::validate(spec);
  detail::FileSource source(file);
  return impl_->register_from(spec, source, progress);
}

std::optional<ModelVersion> Registry::find(const ModelRef& ref) const {
  return guarded(fmt::format("reading {}", ref.to_string()), [&]() -> std::optional<ModelVersion> {
    std::lock_guard lock(impl_->mutex);
    SQLite::Transaction txn(*impl_->db, SQLite::TransactionBehavior::DEFERRED);
    auto row = impl_->find_row(ref);
    if (!row) return std::nullopt;
    return impl_->load_version(row->id);
  });
}

ModelVersion Registry::get(const ModelRef& ref) const {
  return guarded(fmt::format("reading {}", ref.to_string()), [&] {
    std::lock_guard lock(impl_->mutex);
    SQLite::Transaction txn(*impl_->db, SQLite::TransactionBehavior::DEFERRED);
    return impl_->load_version(impl_->require_row(ref).id);
  });
}

std::vector<ModelSummary> Registry::list_models() const {
  return guarded("listing models", [&] {
    std::lock_guard lock(impl_->mutex);
    SQLite::Statement q(*impl_->db,
                        // One indexed lookup per model and column (versions UNIQUE (model_id, number),
                        // the partial index of active versions) instead of a join over every version:
                        // 10 ms instead of 100 ms at 100,000 versions (docs/benchmarks.md).
                        "SELECT m.name, (SELECT count(*) FROM versions v WHERE v.model_id = m.id), "
                        "(SELECT v.number FROM versions v WHERE v.model_id = m.id AND v.is_active = 1), "
                        "(SELECT max(v.number) FROM versions v WHERE v.model_id = m.id), m.created_at "
                        "FROM models m ORDER BY m.name");
    std::vector<ModelSummary> out;
    while (q.executeStep()) {
      ModelSummary s;
      s.name = q.getColumn(0).getString();
      s.version_count = q.getColumn(1).getInt64();
      s.active_version = optional_int(q.getColumn(2));
      s.latest_version = optional_int(q.getColumn(3));
      s.created_at = q.getColumn(4).getString();
      out.push_back(std::move(s));
    }
    return out;
  });
}

std::vector<ModelVersion> Registry::list_versions(std::string_view model, const VersionQuery& query) const {
  return guarded(fmt::format("listing versions of '{}'", model), [&] {
    if (query.order_by_metric) check_key("metric", *query.order_by_metric);
    for (const auto& c : query.where) check_key("metric", c.metric);
    if (query.order_by_metric && query.newest_first) {
      throw Error(Errc::invalid_argument, "newest_first orders by version number and order_by_metric by a metric: give "
                                          "one of them (versions with equal values of the metric come oldest first)");
    }
    std::lock_guard lock(impl_->mutex);
    SQLite::Transaction txn(*impl_->db, SQLite::TransactionBehavior::DEFERRED);
    const std::int64_t mid = impl_->require_model(model);
    // Built from fixed fragments only; every value is a bound parameter.
    std::string sql = "SELECT v.id FROM versions v WHERE v.model_id = ?";
    for (const auto& c : query.where) {
      sql += fmt::format(" AND EXISTS (SELECT 1 FROM metrics x WHERE x.version_id = v.id AND x.name = ? AND x.value {} ?)",
                         op_sql(c.op));
    }
    if (query.tag) {
      sql += query.tag->second ? " AND EXISTS (SELECT 1 FROM tags t WHERE t.version_id = v.id AND t.key = ? AND t.value = ?)"
                               : " AND EXISTS (SELECT 1 FROM tags t WHERE t.version_id = v.id AND t.key = ?)";
    }
    if (query.status) sql += " AND v.status = ?";
    constexpr std::string_view kSortValue = "(SELECT x.value FROM metrics x WHERE x.version_id = v.id AND x.name = ?)";
    if (query.after && !query.order_by_metric) {
      sql += query.newest_first ? " AND v.number < ?" : " AND v.number > ?";
    } else if (query.after && query.after->metric) {
      // (value, number) after the cursor's; versions without the metric sort last.
      sql += fmt::format(" AND ({0} {1} ? OR ({0} = ? AND v.number > ?) OR {0} IS NULL)", kSortValue,
                         query.descending ? "<" : ">");
    } else if (query.after) {
      sql += fmt::format(" AND {} IS NULL AND v.number > ?", kSortValue);
    }
    if (query.order_by_metric) {
      sql += fmt::format(" ORDER BY (SELECT x.value FROM metrics x WHERE x.version_id = v.id AND x.name = ?) {} NULLS LAST, "
                         "v.number",
                         query.descending ? "DESC" : "ASC");
    } else {
      sql += query.newest_first ? " ORDER BY v.number DESC" : " ORDER BY v.number";
    }
    if (query.limit) {
      if (*query.limit == 0 || *query.limit > static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max())) {
        throw Error(Errc::invalid_argument,
                    fmt::format("limit {} is out of range: give at least 1 (or no limit)", *query.limit));
      }
      sql += fmt::format(" LIMIT {}", *query.limit);
    }
    SQLite::Statement q(*impl_->db, sql);
    int i = 1;
    q.bind(i++, mid);
    for (const auto& c : query.where) {
      q.bind(i++, c.metric);
      q.bind(i++, c.value);
    }
    if (query.tag) {
      q.bind(i++, query.tag->first);
      if (query.tag->second) q.bind(i++, *query.tag->second);
    }
    if (query.status) q.bind(i++, std::string(*query.status == VersionStatus::archived ? "archived" : "ready"));
    if (query.after && !query.order_by_metric) {
      q.bind(i++, query.after->number);
    } else if (query.after && query.after->metric) {
      q.bind(i++, *query.order_by_metric);
      q.bind(i++, *query.after->metric);
      q.bind(i++, *query.order_by_metric);
      q.bind(i++, *query.after->metric);
      q.bind(i++, query.after->number);
      q.bind(i++, *query.order_by_metric);
    } else if (query.after) {
      q.bind(i++, *query.order_by_metric);
      q.bind(i++, query.after->number);
    }
    if (query.order_by_metric) q.bind(i++, *query.order_by_metric);
    std::vector<std::int64_t> ids;
    while (q.executeStep()) ids.push_back(q.getColumn(0).getInt64());
    std::vector<ModelVersion> out;
    out.reserve(ids.size());
    for (auto id : ids) out.push_back(impl_->load_version(id));
    return out;
  });
}

std::vector<MetricComparison> Registry::compare(const ModelRef& a, const ModelRef& b, std::string_view metric) const {
  return guarded(fmt::format("comparing {} with {}", a.to_string(), b.to_string()), [&] {
    if (!metric.empty()) check_key("metric", metric);
    std::lock_guard lock(impl_->mutex);
    SQLite::Transaction txn(*impl_->db, SQLite::TransactionBehavior::DEFERRED);
    const ModelVersion va = impl_->load_version(impl_->require_row(a).id);
    const ModelVersion vb = impl_->load_version(impl_->require_row(b).id);
    std::set<std::string> names;
    if (!metric.empty()) {
      if (!va.metrics.contains(std::string(metric)) && !vb.metrics.contains(std::string(metric))) {
        throw Error(Errc::not_found, fmt::format("neither {} nor {} has a metric '{}'", va.ref_string(),
                                                 vb.ref_string(), metric));
      }
      names.insert(std::string(metric));
    } else {
      for (const auto& [k, _] : va.metrics) names.insert(k);
      for (const auto& [k, _] : vb.metrics) names.insert(k);
    }
    std::vector<MetricComparison> out;
    for (const auto& n : names) {
      MetricComparison c;
      c.metric = n;
      c.direction = known_direction(n);
      if (auto it = va.metrics.find(n); it != va.metrics.end()) c.a = it->second;
      if (auto it = vb.metrics.find(n); it != vb.metrics.end()) c.b = it->second;
      out.push_back(std::move(c));
    }
    return out;
  });
}

std::vector<LineageEdge> Registry::ancestors(const ModelRef& ref, int max_depth) const {
  return guarded(fmt::format("reading the ancestors of {}", ref.to_string()), [&] {
    std::lock_guard lock(impl_->mutex);
    return impl_->walk(ref, max_depth, true);
  });
}

std::vector<LineageEdge> Registry::descendants(const ModelRef& ref, int max_depth) const {
  return guarded(fmt::format("reading the descendants of {}", ref.to_string()), [&] {
    std::lock_guard lock(impl_->mutex);
    return impl_->walk(ref, max_depth, false);
  });
}

std::vector<Event> Registry::history(std::string_view model) const {
  return guarded(fmt::format("reading the history of '{}'", model), [&] {
    std::lock_guard lock(impl_->mutex);
    const std::int64_t mid = impl_->require_model(model);
    // Before schema 6 every promote and rollback moved `active`.
    SQLite::Statement q(*impl_->db,
                        impl_->has_alias_table()
                            ? "SELECT id, kind, version, from_version, to_version, actor, reason, at, details, alias "
                              "FROM events WHERE model_id = ? ORDER BY id"
                            : "SELECT id, kind, version, from_version, to_version, actor, reason, at, details, "
                              "CASE WHEN kind IN ('promote', 'rollback') THEN 'active' END FROM events "
                              "WHERE model_id = ? ORDER BY id");
    q.bind(1, mid);
    std::vector<Event> out;
    while (q.executeStep()) {
      Event e;
      e.id = q.getColumn(0).getInt64();
      e.model = std::string(model);
      const std::string kind = q.getColumn(1).getString();
      const auto parsed = parse_event_kind(kind);
      if (!parsed) {
        throw Error(Errc::incompatible, fmt::format("event {} of '{}' has kind '{}', which this modelreg does not know; "
                                                    "upgrade modelreg to read this history",
                                                    e.id, model, kind));
      }
      e.kind = *parsed;
      e.version = optional_int(q.getColumn(2));
      e.from_version = optional_int(q.getColumn(3));
      e.to_version = optional_int(q.getColumn(4));
      e.actor = q.getColumn(5).getString();
      e.reason = q.getColumn(6).getString();
      e.at = q.getColumn(7).getString();
      e.details = q.getColumn(8).getString();
      if (!q.getColumn(9).isNull()) e.alias = q.getColumn(9).getString();
      out.push_back(std::move(e));
    }
    return out;
  });
}

std::string Registry::load_bytes(const ModelRef& ref, const ProgressFn& progress) const {
  return guarded(fmt::format("loading {}", ref.to_string()), [&] {
    std::string out;
    bool reserved = false;
    impl_->read_blob(
        ref,
        [&](const char* data, std::size_t size) {
          out.append(data, size);
          (void)reserved;
        },
        [&](std::uint64_t done, std::optional<std::uint64_t> total) {
          if (!reserved && total) {
            out.reserve(*total);
            reserved = true;
          }
          if (progress) progress(done, total);
        });
    return out;
  });
}

void Registry::load_to(const ModelRef& ref, std::ostream& out, const ProgressFn& progress) const {
  guarded(fmt::format("loading {}", ref.to_string()), [&] {
    impl_->read_blob(
        ref,
        [&](const char* data, std::size_t size) {
          out.write(data, static_cast<std::streamsize>(size));
          if (!out) throw Error(Errc::io_error, fmt::format("loading {}: writing to the output stream failed", ref.to_string()));
        },
        progress);
  });
}

void Registry::write_output_file(const std::filesystem::path& file, std::string_view content, bool overwrite) const {
  check_output_path(file, overwrite);
  const std::filesystem::path partial = detail::new_partial_file(file);
  try {
    std::FILE* f = std::fopen(partial.c_str(), "wb");
    if (f == nullptr) throw Error(Errc::io_error, fmt::format("cannot write '{}': {}", file.string(), std::strerror(errno)));
    const bool written = std::fwrite(content.data(), 1, content.size(), f) == content.size() && std::fflush(f) == 0 &&
                         ::fsync(::fileno(f)) == 0;
    const int err = errno;
    std::fclose(f);
    if (!written) throw Error(Errc::io_error, fmt::format("cannot write '{}': {}", file.string(), std::strerror(err)));
    detail::publish_file(partial, file, overwrite);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove(partial, ec);
    throw;
  }
}

void Registry::check_output_path(const std::filesystem::path& file, bool overwrite) const {
  namespace fs = std::filesystem;
  std::error_code ec;
  // Both paths as they resolve (links followed, the file need not exist yet), and by identity.
  const fs::path target = fs::weakly_canonical(fs::absolute(file, ec), ec);
  const std::string db = impl_->path.string();
  for (const std::string& own : {db, db + "-wal", db + "-shm", db + "-journal"}) {
    std::error_code e1, e2;
    const bool same_name = fs::weakly_canonical(fs::absolute(own, e1), e1) == target && !e1 && !ec;
    const bool same_file = fs::exists(own, e2) && fs::exists(file, e2) && fs::equivalent(own, file, e2) && !e2;
    if (same_name || same_file) {
      throw Error(Errc::invalid_argument, fmt::format("'{}' is this registry's own file ('{}'); writing it would destroy "
                                                      "the registry: choose another output path",
                                                      file.string(), own));
    }
  }
  const fs::file_status st = fs::status(file, ec);
  if (fs::is_directory(st)) {
    throw Error(Errc::invalid_argument,
                fmt::format("'{}' is a directory; give a file path to write, e.g. '{}'", file.string(),
                            (file / "model.bin").string()));
  }
  if (fs::exists(st) && !overwrite) {
    throw Error(Errc::already_exists,
                fmt::format("'{}' already exists; remove it, choose another path, or pass --force to replace it",
                            file.string()));
  }
}

void Registry::load_to_file(const ModelRef& ref, const std::filesystem::path& file, const ProgressFn& progress,
                            bool overwrite) const {
  check_output_path(file, overwrite);
  // This call's own temporary file: two loads to one path never write the same file.
  const std::filesystem::path tmp = detail::new_partial_file(file);
  guarded(fmt::format("loading {} into '{}'", ref.to_string(), file.string()), [&] {
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    if (f == nullptr) {
      throw Error(Errc::io_error, fmt::format("cannot write '{}': {}", tmp.string(), std::strerror(errno)));
    }
    auto cleanup = [&] {
      std::fclose(f);
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
    };
    try {
      impl_->read_blob(
          ref,
          [&](const char* data, std::size_t size) {
            if (std::fwrite(data, 1, size, f) != size) {
              throw Error(Errc::io_error, fmt::format("cannot write '{}': {}", tmp.string(), std::strerror(errno)));
            }
          },
          progress);
      if (std::fflush(f) != 0 || ::fsync(::fileno(f)) != 0) {
        throw Error(Errc::io_error, fmt::format("cannot write '{}': {}", tmp.string(), std::strerror(errno)));
      }
    } catch (...) {
      cleanup();
      throw;
    }
    std::fclose(f);
    try {
      detail::publish_file(tmp, file, overwrite);  // never over a file that appeared meanwhile without --force
    } catch (...) {
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
      throw;
    }
  });
}

void Registry::verify(const ModelRef& ref) const {
  guarded(fmt::format("verifying {}", ref.to_string()),
          [&] { impl_->read_blob(ref, [](const char*, std::size_t) {}, {}); });
}

namespace {

// Every table, index, trigger and view the migrations create must be present and unchanged, and no
// other trigger may exist (one could undo any invariant). The reference is the migrations up to
// this database's version, applied to an empty in-memory database.
void check_schema_objects(SQLite::Database& db, std::vector<std::string>& problems) {
  const int version = detail::user_version(db);
  const auto migrations = detail::embedded_migrations();
  if (version < 1 || static_cast<std::size_t>(version) > migrations.size()) return;  // newer: unknown to us
  SQLite::Database reference(":memory:", SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  detail::apply_migrations(reference, migrations.first(static_cast<std::size_t>(version)), "");
  auto objects = [](SQLite::Database& d) {
    std::map<std::pair<std::string, std::string>, std::string> out;  // (type, name) -> sql
    SQLite::Statement q(d, "SELECT type, name, coalesce(sql, '') FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'");
    while (q.executeStep()) out[{q.getColumn(0).getString(), q.getColumn(1).getString()}] = q.getColumn(2).getString();
    return out;
  };
  const auto expected = objects(reference);
  const auto actual = objects(db);
  for (const auto& [key, sql] : expected) {
    const auto it = actual.find(key);
    if (it == actual.end()) {
      problems.push_back(fmt::format("the {} '{}' that the migrations created is missing", key.first, key.second));
    } else if (it->second != sql) {
      problems.push_back(fmt::format("the {} '{}' differs from what the migrations created", key.first, key.second));
    }
  }
  for (const auto& [key, sql] : actual) {
    if (key.first == "trigger" && expected.count(key) == 0) {
      problems.push_back(fmt::format("an unexpected trigger '{}' could change what the registry stores", key.second));
    }
  }
}

// The rules of aliases (schema 6), checked as check_invariants checks `active`.
void check_alias_invariants(SQLite::Database& db, std::vector<std::string>& problems) {
  // Each alias points where its last event moved it (nowhere after alias_remove), at a ready
  // version of its own model.
  SQLite::Statement moved(db,
                          "SELECT m.name, k.alias, "
                          "(SELECT v.number FROM aliases a JOIN versions v ON v.id = a.version_id "
                          " WHERE a.model_id = k.model_id AND a.name = k.alias), "
                          "(SELECT e.to_version FROM events e WHERE e.model_id = k.model_id AND e.alias = k.alias "
                          " ORDER BY e.id DESC LIMIT 1) "
                          "FROM (SELECT model_id, alias FROM events WHERE alias IS NOT NULL AND alias <> 'active' "
                          "      UNION SELECT model_id, name FROM aliases) k JOIN models m ON m.id = k.model_id "
                          "ORDER BY m.name, k.alias");
  while (moved.executeStep()) {
    const auto now = detail::optional_int(moved.getColumn(2));
    const auto logged = detail::optional_int(moved.getColumn(3));
    if (now != logged) {
      problems.push_back(fmt::format("{}@{} points at {} but the audit log's last move of it {}",
                                     moved.getColumn(0).getString(), moved.getColumn(1).getString(),
                                     now ? "version " + std::to_string(*now) : "nothing",
                                     logged ? "points it at version " + std::to_string(*logged) : "removed it"));
    }
  }
  SQLite::Statement held(db,
                         "SELECT m.name, a.name, v.number, v.status, v.model_id = a.model_id, lower(a.name) IN "
                         "('active', 'latest') FROM aliases a JOIN models m ON m.id = a.model_id "
                         "JOIN versions v ON v.id = a.version_id "
                         "WHERE v.status = 'archived' OR v.model_id <> a.model_id OR lower(a.name) IN ('active', 'latest')");
  while (held.executeStep()) {
    const std::string alias = fmt::format("{}@{}", held.getColumn(0).getString(), held.getColumn(1).getString());
    if (held.getColumn(5).getInt() != 0) {
      problems.push_back(fmt::format("{} uses a reserved name as an alias", alias));
    } else if (held.getColumn(4).getInt() == 0) {
      problems.push_back(fmt::format("{} points at a version of another model", alias));
    } else {
      problems.push_back(fmt::format("{} points at version {}, which is archived", alias, held.getColumn(2).getInt64()));
    }
  }
  SQLite::Statement clash(db,
                          "SELECT m.name, a.name, v.number FROM aliases a JOIN versions v ON v.model_id = a.model_id "
                          "AND v.label = a.name JOIN models m ON m.id = a.model_id");
  while (clash.executeStep()) {
    problems.push_back(fmt::format("'{}' is both an alias of '{}' and the label of {}@{}", clash.getColumn(1).getString(),
                                   clash.getColumn(0).getString(), clash.getColumn(0).getString(),
                                   clash.getColumn(2).getInt64()));
  }
  SQLite::Statement reserved(db,
                             "SELECT m.name, v.number, v.label FROM versions v JOIN models m ON m.id = v.model_id "
                             "WHERE lower(v.label) IN ('active', 'latest')");
  while (reserved.executeStep()) {
    problems.push_back(fmt::format("{}@{} has the reserved label '{}'", reserved.getColumn(0).getString(),
                                   reserved.getColumn(1).getInt64(), reserved.getColumn(2).getString()));
  }
}

// The invariants the schema enforces, checked again in case its objects were tampered with.
void check_invariants(SQLite::Database& db, std::vector<std::string>& problems) {
  SQLite::Statement several(db,
                            "SELECT m.name, count(*) FROM versions v JOIN models m ON m.id = v.model_id "
                            "WHERE v.is_active = 1 GROUP BY v.model_id HAVING count(*) > 1");
  while (several.executeStep()) {
    problems.push_back(fmt::format("model '{}' has {} active versions (at most one may be)",
                                   several.getColumn(0).getString(), several.getColumn(1).getInt64()));
  }
  SQLite::Statement archived(db,
                             "SELECT m.name, v.number FROM versions v JOIN models m ON m.id = v.model_id "
                             "WHERE v.is_active = 1 AND v.status = 'archived'");
  while (archived.executeStep()) {
    problems.push_back(fmt::format("{}@{} is both archived and active", archived.getColumn(0).getString(),
                                   archived.getColumn(1).getInt64()));
  }
  // A blob repair opens and closes in one transaction; one left open would unseal its blob.
  SQLite::Statement repairs(db, "SELECT blob_id FROM blob_repairs WHERE in_progress = 1");
  while (repairs.executeStep()) {
    problems.push_back(fmt::format("a repair of blob {} was left in progress, so its chunks are not sealed",
                                   repairs.getColumn(0).getInt64()));
  }
  const bool aliases = db.tableExists("aliases");
  // The active version is the one the last event moving `active` moved it to.
  SQLite::Statement events(db, fmt::format(
                           "SELECT m.name, (SELECT v.number FROM versions v WHERE v.model_id = m.id AND v.is_active = 1), "
                           "(SELECT e.to_version FROM events e WHERE e.model_id = m.id AND {} ORDER BY e.id DESC LIMIT 1) "
                           "FROM models m ORDER BY m.name",
                           aliases ? "e.alias = 'active'" : "e.kind IN ('promote', 'rollback')"));
  while (events.executeStep()) {
    const auto active = detail::optional_int(events.getColumn(1));
    const auto logged = detail::optional_int(events.getColumn(2));
    if (active != logged) {
      problems.push_back(fmt::format("model '{}': the active version is {} but the audit log's last promote or "
                                     "rollback moved it to {}",
                                     events.getColumn(0).getString(), active ? std::to_string(*active) : "none",
                                     logged ? std::to_string(*logged) : "none"));
    }
  }
  if (aliases) check_alias_invariants(db, problems);
}

}  // namespace

IntegrityReport Registry::check(const std::optional<ModelRef>& only, const ProgressFn& progress) const {
  IntegrityReport report;
  std::vector<std::pair<VersionId, std::uint64_t>> targets;
  guarded("checking the database", [&] {
    std::lock_guard lock(impl_->mutex);
    SQLite::Database& db = *impl_->db;
    SQLite::Statement integrity(db, "PRAGMA integrity_check");
    while (integrity.executeStep()) {
      const std::string line = integrity.getColumn(0).getString();
      if (line != "ok") report.database_problems.push_back(line);
    }
    SQLite::Statement fk(db, "SELECT \"table\", rowid, parent FROM pragma_foreign_key_check");
    while (fk.executeStep()) {
      report.database_problems.push_back(fmt::format("{} row {} points at a missing {} row", fk.getColumn(0).getString(),
                                                     fk.getColumn(1).getInt64(), fk.getColumn(2).getString()));
    }
    check_schema_objects(db, report.database_problems);
    check_invariants(db, report.database_problems);
    if (only) {
      const VersionRow row = impl_->require_row(*only);
      targets.emplace_back(impl_->version_id_of(row.id), detail::BlobStore(db).info(row.blob_id).raw_size);
    } else {
      SQLite::Statement all(db,
                            "SELECT m.name, v.number, b.raw_size FROM versions v JOIN models m ON m.id = v.model_id "
                            "JOIN blobs b ON b.id = v.blob_id ORDER BY m.name, v.number");
      while (all.executeStep()) {
        targets.push_back({VersionId{all.getColumn(0).getString(), all.getColumn(1).getInt64()},
                           static_cast<std::uint64_t>(all.getColumn(2).getInt64())});
      }
    }
  });
  std::uint64_t total = 0;
  for (const auto& t : targets) total += t.second;
  std::uint64_t done = 0;
  for (const auto& [id, size] : targets) {
    try {
      const std::uint64_t base = done;
      impl_->read_blob(ModelRef::number(id.model, id.number), [](const char*, std::size_t) {},
                       [&](std::uint64_t d, std::optional<std::uint64_t>) {
                         if (progress) progress(base + d, total);
                       });
    } catch (const SQLite::Exception& e) {
      report.bad_versions.emplace_back(id, e.what());
    } catch (const Error& e) {
      report.bad_versions.emplace_back(id, e.what());
    }
    done += size;
    ++report.versions_checked;
  }
  return report;
}

std::int64_t Registry::data_version() const {
  return guarded("reading the data version", [&] {
    std::lock_guard lock(impl_->mutex);
    return impl_->db->execAndGet("PRAGMA data_version").getInt64();
  });
}

int Registry::schema_version() const {
  return guarded("reading the schema version", [&] {
    std::lock_guard lock(impl_->mutex);
    return detail::user_version(*impl_->db);
  });
}

int Registry::supported_schema_version() noexcept {
  return static_cast<int>(detail::embedded_migrations().size());
}

const std::filesystem::path& Registry::path() const noexcept { return impl_->path; }

bool Registry::read_only() const noexcept { return !impl_->write_refusal.empty(); }

}  // namespace modelreg
