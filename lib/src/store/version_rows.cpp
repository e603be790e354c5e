// Reading and writing version rows: lookups by ModelRef, a whole ModelVersion from its rows, and
// the insertion of a new version's content and sealing row.
#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "store/registry_impl.hpp"

namespace modelreg {
namespace detail {

std::optional<std::int64_t> optional_int(const SQLite::Column& c) {
  if (c.isNull()) return std::nullopt;
  return c.getInt64();
}

std::string encode_doubles(std::span<const double> values) {
  std::string out(values.size() * 8, '\0');
  for (std::size_t i = 0; i < values.size(); ++i) {
    std::uint64_t bits;
    std::memcpy(&bits, &values[i], 8);
    for (int b = 0; b < 8; ++b) out[i * 8 + static_cast<std::size_t>(b)] = static_cast<char>((bits >> (8 * b)) & 0xff);
  }
  return out;
}

std::string encode_labels(const ClassLabels& labels) {
  nlohmann::json a = nlohmann::json::array();
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (labels.are_integers()) {
      a.push_back(labels.integer(i));
    } else {
      a.push_back(labels.text(i));
    }
  }
  return a.dump();
}

ClassLabels decode_labels(const std::string& text) {
  const nlohmann::json a = nlohmann::json::parse(text, nullptr, false);
  if (!a.is_array()) throw Error(Errc::corruption, fmt::format("stored class labels are not a JSON array: {}", text));
  if (!a.empty() && a.front().is_number_integer()) {
    std::vector<std::int64_t> v;
    for (const auto& e : a) {
      if (!e.is_number_integer()) throw Error(Errc::corruption, "stored class labels mix integers and other values");
      v.push_back(e.get<std::int64_t>());
    }
    return ClassLabels::integers(std::move(v));
  }
  std::vector<std::string> v;
  for (const auto& e : a) {
    if (!e.is_string()) throw Error(Errc::corruption, "stored class labels mix strings and other values");
    v.push_back(e.get<std::string>());
  }
  return ClassLabels::strings(std::move(v));
}

std::vector<double> decode_doubles(const void* data, std::size_t size) {
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

namespace {

constexpr const char* kRowColumns =
    "SELECT id, model_id, number, status = 'archived', is_active, blob_id FROM versions ";

VersionRow read_row(SQLite::Statement& q) {
  return VersionRow{q.getColumn(0).getInt64(), q.getColumn(1).getInt64(), q.getColumn(2).getInt64(),
                    q.getColumn(3).getInt() != 0, q.getColumn(4).getInt() != 0, q.getColumn(5).getInt64()};
}

}  // namespace

Registry::Impl::Cached::Cached(const Impl& impl, const char* sql) {
  auto it = impl.statements.find(std::string_view(sql));
  if (it == impl.statements.end()) {
    it = impl.statements.emplace(sql, std::make_unique<SQLite::Statement>(*impl.db, sql)).first;
  }
  q_ = it->second.get();
}

Registry::Impl::Cached::~Cached() {
  try {
    q_->reset();
    q_->clearBindings();
  } catch (...) {
  }
}

std::optional<std::int64_t> Registry::Impl::model_id(std::string_view name) const {
  SQLite::Statement q(*db, "SELECT id FROM models WHERE name = ?");
  q.bind(1, std::string(name));
  if (!q.executeStep()) return std::nullopt;
  return q.getColumn(0).getInt64();
}

std::int64_t Registry::Impl::require_model(std::string_view name) const {
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


std::optional<VersionRow> Registry::Impl::find_row(const ModelRef& ref) const {
  auto mid = model_id(ref.model());
  if (!mid) return std::nullopt;
  std::string sql = kRowColumns;
  switch (ref.kind()) {
    case ModelRef::Kind::active: sql += "WHERE model_id = ?1 AND is_active = 1"; break;
    case ModelRef::Kind::latest: sql += "WHERE model_id = ?1 ORDER BY number DESC LIMIT 1"; break;
    case ModelRef::Kind::number: sql += "WHERE model_id = ?1 AND number = ?2"; break;
    case ModelRef::Kind::label:
      // A label or an alias: they share one namespace per model, so at most one matches.
      sql += has_alias_table() ? "WHERE model_id = ?1 AND (label = ?2 OR id = (SELECT version_id FROM aliases "
                                 "WHERE model_id = ?1 AND name = ?2))"
                               : "WHERE model_id = ?1 AND label = ?2";
      break;
  }
  SQLite::Statement q(*db, sql);
  q.bind(1, *mid);
  if (ref.kind() == ModelRef::Kind::number) q.bind(2, ref.version());
  if (ref.kind() == ModelRef::Kind::label) q.bind(2, ref.label_text());
  if (!q.executeStep()) return std::nullopt;
  return read_row(q);
}

VersionRow Registry::Impl::require_row(const ModelRef& ref) const {
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
      throw Error(Errc::not_found, fmt::format("model '{}' has no version labelled '{}' and no alias '{}' ({})",
                                               ref.model(), ref.label_text(), ref.label_text(), latest_text));
  }
  throw Error(Errc::not_found, ref.to_string());
}

std::optional<VersionRow> Registry::Impl::active_row(std::int64_t model_id) const {
  SQLite::Statement q(*db, std::string(kRowColumns) + "WHERE model_id = ? AND is_active = 1");
  q.bind(1, model_id);
  if (!q.executeStep()) return std::nullopt;
  return read_row(q);
}

std::optional<VersionRow> Registry::Impl::row_by_number(std::int64_t model_id, std::int64_t number) const {
  SQLite::Statement q(*db, std::string(kRowColumns) + "WHERE model_id = ? AND number = ?");
  q.bind(1, model_id);
  q.bind(2, number);
  if (!q.executeStep()) return std::nullopt;
  return read_row(q);
}

VersionId Registry::Impl::version_id_of(std::int64_t version_id) const {
  SQLite::Statement q(*db, "SELECT m.name, v.number FROM versions v JOIN models m ON m.id = v.model_id WHERE v.id = ?");
  q.bind(1, version_id);
  if (!q.executeStep()) throw Error(Errc::not_found, fmt::format("version id {} does not exist", version_id));
  return VersionId{q.getColumn(0).getString(), q.getColumn(1).getInt64()};
}

ModelVersion Registry::Impl::load_version(std::int64_t id) const {
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
  if (has_task_table()) {
    Cached q(*this, "SELECT task, classes FROM tasks WHERE version_id = ?");
    q.bind(1, id);
    if (q.executeStep()) {
      ModelTask t;
      t.task = parse_task(q.getColumn(0).getString());
      if (!q.getColumn(1).isNull()) t.classes = detail::decode_labels(q.getColumn(1).getString());
      v.task = std::move(t);
    }
  } else if (v.format == kModelFormat) {
    v.task = ModelTask{Task::binary, ClassLabels::zero_one()};  // every model before schema 5
  }
  v.aliases = aliases_of(id, v.active);
  v.signature = signature_of(id);
  return v;
}

std::optional<double> Registry::Impl::metric(std::int64_t version_id, std::string_view name) const {
  SQLite::Statement q(*db, "SELECT value FROM metrics WHERE version_id = ? AND name = ?");
  q.bind(1, version_id);
  q.bind(2, std::string(name));
  if (!q.executeStep()) return std::nullopt;
  return q.getColumn(0).getDouble();
}

bool Registry::Impl::has_task_table() const {
  if (!task_table) {
    SQLite::Statement q(*db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tasks'");
    task_table = q.executeStep();
  }
  return *task_table;
}

std::int64_t Registry::Impl::insert_version(std::int64_t mid, std::int64_t number, const NewVersion& spec,
                                            const std::vector<std::pair<std::int64_t, std::string>>& parents,
                                            std::int64_t blob_id, const std::string& at, const std::string& creator,
                                            const Probe* probe, const ModelTask* task) {
  const std::int64_t vid = db->execAndGet("SELECT coalesce(max(id), 0) + 1 FROM versions").getInt64();

  // Content first, then the version row that seals it (see migrations/0001_initial.sql).
  {
    SQLite::Statement q(*db, "INSERT INTO metrics(version_id, name, value) VALUES (?, ?, ?)");
    for (const auto& [name, value] : spec.metrics) {
      q.bind(1, vid);
      q.bind(2, name);
      q.bind(3, value);
      q.exec();
      q.reset();
    }
  }
  {
    SQLite::Statement q(*db, "INSERT INTO params(version_id, name, value) VALUES (?, ?, ?)");
    for (const auto& [name, value] : spec.params) {
      q.bind(1, vid);
      q.bind(2, name);
      q.bind(3, value);
      q.exec();
      q.reset();
    }
  }
  {
    SQLite::Statement q(*db, "INSERT INTO features(version_id, position, name, dtype) VALUES (?, ?, ?, ?)");
    for (std::size_t i = 0; i < spec.features.size(); ++i) {
      q.bind(1, vid);
      q.bind(2, static_cast<std::int64_t>(i));
      q.bind(3, spec.features[i].name);
      q.bind(4, spec.features[i].dtype);
      q.exec();
      q.reset();
    }
  }
  {
    SQLite::Statement q(*db, "INSERT OR IGNORE INTO lineage(child_id, parent_id, relation) VALUES (?, ?, ?)");
    for (const auto& [parent_id, relation] : parents) {
      q.bind(1, vid);
      q.bind(2, parent_id);
      q.bind(3, relation);
      q.exec();
      q.reset();
    }
  }
  {
    SQLite::Statement q(*db, "INSERT OR IGNORE INTO datasets(version_id, uri, sha256, role) VALUES (?, ?, ?, ?)");
    for (const auto& d : spec.datasets) {
      q.bind(1, vid);
      q.bind(2, d.uri);
      if (d.sha256) q.bind(3, *d.sha256); else q.bind(3);
      q.bind(4, d.role);
      q.exec();
      q.reset();
    }
  }
  if (probe != nullptr) {
    const std::string inputs = detail::encode_doubles(probe->inputs.values());
    const std::string outputs = detail::encode_doubles(probe->outputs);
    const std::size_t rows = probe->inputs.rows();
    const std::size_t per_row = rows == 0 ? 1 : probe->outputs.size() / rows;
    SQLite::Statement q(*db,
                        "INSERT INTO probes(version_id, n_rows, n_features, inputs, outputs, n_outputs) "
                        "VALUES (?, ?, ?, ?, ?, ?)");
    q.bind(1, vid);
    q.bind(2, static_cast<std::int64_t>(rows));
    q.bind(3, static_cast<std::int64_t>(probe->inputs.cols()));
    q.bind(4, inputs.data(), static_cast<int>(inputs.size()));
    q.bind(5, outputs.data(), static_cast<int>(outputs.size()));
    q.bind(6, static_cast<std::int64_t>(per_row));
    q.exec();
  }
  if (task != nullptr) {
    SQLite::Statement q(*db, "INSERT INTO tasks(version_id, task, label_type, classes, n_outputs) VALUES (?, ?, ?, ?, ?)");
    q.bind(1, vid);
    q.bind(2, std::string(to_string(task->task)));
    if (task->task == Task::regression) {
      q.bind(3);
      q.bind(4);
    } else {
      q.bind(3, task->classes.are_integers() ? "integer" : "string");
      q.bind(4, detail::encode_labels(task->classes));
    }
    q.bind(5, static_cast<std::int64_t>(task->n_outputs()));
    q.exec();
  }
  {
    SQLite::Statement q(*db,
                        "INSERT INTO versions(id, model_id, number, label, format, type_name, blob_id, feature_count, "
                        "notes, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    q.bind(1, vid);
    q.bind(2, mid);
    q.bind(3, number);
    if (spec.label) q.bind(4, *spec.label); else q.bind(4);
    q.bind(5, spec.format);
    q.bind(6, spec.type_name);
    q.bind(7, blob_id);
    q.bind(8, static_cast<std::int64_t>(spec.features.size()));
    q.bind(9, spec.notes);
    q.bind(10, at);
    q.bind(11, creator);
    q.exec();
  }
  {
    SQLite::Statement q(*db, "INSERT INTO tags(version_id, key, value) VALUES (?, ?, ?)");
    for (const auto& [key, value] : spec.tags) {
      q.bind(1, vid);
      q.bind(2, key);
      q.bind(3, value);
      q.exec();
      q.reset();
    }
  }
  return vid;
}

}  // namespace modelreg
