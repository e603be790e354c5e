// Registry::export_bundle / import_bundle: versions moved between registries in one SQLite file.
// The bundle holds `blobs` and `blob_chunks` exactly as the registry stores them (chunks are
// copied, never recompressed), one row per version with its metadata as JSON, and bundle_info.
// Format and limits: docs/format.md, "Bundles".
//
// Import trusts nothing in the file: the schema must be exactly the one below, every value is
// bounded and type-checked before it is used, and each chunk is read once — the buffer whose
// checksum, zstd frame and share of the SHA-256 were verified is the buffer inserted here.
#include <algorithm>
#include <cstring>
#include <memory>
#include <numeric>
#include <set>

#include <fmt/format.h>
#include <sqlite3.h>
#include <xxhash.h>
#include <zstd.h>

#include <nlohmann/json.hpp>

#include <SQLiteCpp/Transaction.h>

#include "core/text_format.hpp"
#include "store/output_file.hpp"
#include "store/registry_impl.hpp"
#include "store/sha256.hpp"

namespace modelreg {
namespace {

using nlohmann::json;

constexpr int kBundleApplicationId = 0x6d726762;  // "mrgb"
constexpr int kBundleFormatVersion = 1;

// What one import accepts (docs/format.md, "Bundles"). Each bound is far above what a registry
// produces, and keeps a crafted bundle from making import spin or allocate without bound.
constexpr std::int64_t kMaxVersionNumber = std::int64_t{1} << 31;  // so that `register` never overflows
constexpr std::int64_t kMaxBundleVersions = 10'000;
constexpr std::int64_t kMinChunkSize = 64 << 10;   // as Options::chunk_size
constexpr std::int64_t kMaxChunkSize = 256 << 20;
constexpr std::size_t kMaxMetadataBytes = 16u << 20;           // one version's JSON
constexpr std::int64_t kMaxTotalMetadataBytes = 256 << 20;     // all of them
constexpr int kMaxMetadataDepth = 8;                           // the exporter writes 3
constexpr std::size_t kMaxInfoValueBytes = 256;
// The largest stored chunk: a zstd frame of a full chunk that did not compress.
constexpr std::size_t kMaxStoredChunk = ZSTD_COMPRESSBOUND(static_cast<std::size_t>(kMaxChunkSize));

constexpr const char* kBundleSchema = R"sql(
CREATE TABLE bundle_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE blobs (
    id INTEGER PRIMARY KEY, sha256 TEXT NOT NULL UNIQUE, raw_size INTEGER NOT NULL,
    stored_size INTEGER NOT NULL, codec TEXT NOT NULL, level INTEGER NOT NULL,
    chunk_size INTEGER NOT NULL, chunk_count INTEGER NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE blob_chunks (
    blob_id INTEGER NOT NULL REFERENCES blobs(id), seq INTEGER NOT NULL, raw_size INTEGER NOT NULL,
    checksum INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (blob_id, seq));
CREATE TABLE bundle_versions (
    position INTEGER PRIMARY KEY, model TEXT NOT NULL, number INTEGER NOT NULL,
    blob_id INTEGER NOT NULL REFERENCES blobs(id), metadata TEXT NOT NULL, UNIQUE (model, number));
)sql";

// The bundle_info keys the exporter writes; an import expects exactly these.
constexpr const char* kInfoKeys[] = {"created_at", "created_by", "format", "format_version", "source_schema_version"};

// The metadata keys the exporter writes ("probe" is absent from bundles written before probes,
// "task" from those written before tasks: their models are binary classifiers of 0/1).
const std::set<std::string> kMetadataKeys = {"label",    "format",  "type_name", "status",   "notes",
                                             "created_at", "created_by", "metrics", "params", "features",
                                             "tags",     "datasets", "probe",    "parents", "task"};

json to_json(const ModelVersion& v) {
  json features = json::array();
  for (const auto& f : v.features) features.push_back({{"name", f.name}, {"dtype", f.dtype}});
  json datasets = json::array();
  for (const auto& d : v.datasets) {
    datasets.push_back({{"uri", d.uri}, {"sha256", d.sha256 ? json(*d.sha256) : json(nullptr)}, {"role", d.role}});
  }
  return json{{"label", v.label ? json(*v.label) : json(nullptr)},
              {"format", v.format},
              {"type_name", v.type_name},
              {"status", v.status == VersionStatus::archived ? "archived" : "ready"},
              {"notes", v.notes},
              {"created_at", v.created_at},
              {"created_by", v.created_by},
              {"metrics", v.metrics},
              {"params", v.params},
              {"features", features},
              {"tags", v.tags},
              {"datasets", datasets},
              // Doubles print in round-trip form, so the probe survives the trip exactly.
              {"probe", v.probe ? json{{"n_features", v.probe->inputs.cols()},
                                       {"inputs", v.probe->inputs.values()},
                                       {"outputs", v.probe->outputs}}
                                : json(nullptr)},
              {"task", v.task ? json{{"task", to_string(v.task->task)},
                                     {"classes", v.task->task == Task::regression
                                                     ? json(nullptr)
                                                     : json::parse(detail::encode_labels(v.task->classes))}}
                              : json(nullptr)}};
}

// The metadata that defines a version's identity, for "is this the same version?" on import.
json identity(const json& m) {
  return json{{"label", m.at("label")}, {"format", m.at("format")},   {"type_name", m.at("type_name")},
              {"notes", m.at("notes")}, {"metrics", m.at("metrics")}, {"params", m.at("params")},
              {"features", m.at("features")}};
}

// Kahn's algorithm over items 0..n-1, where before[i] lists the items that must precede i; among
// the items that are ready, the lowest index goes first, so a given order is kept where lineage
// allows. Empty when the edges form a cycle.
std::vector<std::size_t> parents_first(const std::vector<std::vector<std::size_t>>& before) {
  const std::size_t n = before.size();
  std::vector<std::size_t> waiting_on(n, 0);
  std::vector<std::vector<std::size_t>> after(n);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t p : before[i]) {
      ++waiting_on[i];
      after[p].push_back(i);
    }
  }
  std::set<std::size_t> ready;
  for (std::size_t i = 0; i < n; ++i) {
    if (waiting_on[i] == 0) ready.insert(i);
  }
  std::vector<std::size_t> order;
  order.reserve(n);
  while (!ready.empty()) {
    const std::size_t i = *ready.begin();
    ready.erase(ready.begin());
    order.push_back(i);
    for (std::size_t c : after[i]) {
      if (--waiting_on[c] == 0) ready.insert(c);
    }
  }
  if (order.size() != n) order.clear();
  return order;
}

// ---- reading a bundle ----------------------------------------------------------------------

struct BundleParent {
  std::string model;
  std::int64_t number = 0;
  std::string relation;
  std::string sha256;
};

struct BundleVersion {
  std::string model;
  std::int64_t number = 0;
  std::int64_t blob_id = 0;
  std::string sha256;  // of its blob, as the bundle declares it (verified before it is used)
  json metadata;
  NewVersion spec;
  std::string created_at;
  std::string created_by;
  bool archived = false;
  std::optional<Probe> probe;
  std::optional<ModelTask> task;
  std::vector<BundleParent> parents;

  std::string where() const { return fmt::format("{}@{}", model, number); }
};

struct BundleBlob {
  std::int64_t id = 0;
  BlobInfo info;
  std::string owner;  // the first version that uses it ("fraud@2"), for messages
};

// A metadata field that is missing or not of the type the exporter writes.
struct BadField {
  std::string name;
};

const json& member(const json& object, const std::string& key) {
  if (!object.is_object()) throw BadField{key};
  const auto it = object.find(key);
  if (it == object.end()) throw BadField{key};
  return *it;
}

std::string text_of(const json& value, const std::string& name) {
  if (!value.is_string()) throw BadField{name};
  return value.get<std::string>();
}

std::string text_field(const json& object, const std::string& key) { return text_of(member(object, key), key); }

std::int64_t integer_field(const json& object, const std::string& key) {
  const json& v = member(object, key);
  if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)) throw BadField{key};
  if (!v.is_number_integer()) throw BadField{key};
  return v.get<std::int64_t>();
}

// An array of numbers; with `missing_as_nan`, a null element is a missing value (NaN), as JSON
// writes a NaN (a probe row of a model that routes missing values).
std::vector<double> numbers_field(const json& object, const std::string& key, bool missing_as_nan = false) {
  const json& v = member(object, key);
  if (!v.is_array()) throw BadField{key};
  std::vector<double> out;
  out.reserve(v.size());
  for (const auto& x : v) {
    if (missing_as_nan && x.is_null()) {
      out.push_back(std::numeric_limits<double>::quiet_NaN());
      continue;
    }
    if (!x.is_number()) throw BadField{key};
    out.push_back(x.get<double>());
  }
  return out;
}

std::map<std::string, double> number_map_field(const json& object, const std::string& key) {
  const json& v = member(object, key);
  if (!v.is_object()) throw BadField{key};
  std::map<std::string, double> out;
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (!it.value().is_number()) throw BadField{key};
    out.emplace(it.key(), it.value().get<double>());
  }
  return out;
}

std::map<std::string, std::string> text_map_field(const json& object, const std::string& key) {
  const json& v = member(object, key);
  if (!v.is_object()) throw BadField{key};
  std::map<std::string, std::string> out;
  for (auto it = v.begin(); it != v.end(); ++it) out.emplace(it.key(), text_of(it.value(), key));
  return out;
}

const json& array_field(const json& object, const std::string& key) {
  const json& v = member(object, key);
  if (!v.is_array()) throw BadField{key};
  return v;
}

// The nesting depth of JSON text (brackets outside strings): hostile nesting is refused before a
// parser builds it.
int json_depth(std::string_view text) {
  int depth = 0;
  int deepest = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

// UTC ISO 8601 as the registry writes it: YYYY-MM-DDTHH:MM:SS, optional fraction, Z.
bool is_utc_time(std::string_view t) {
  constexpr std::string_view shape = "0000-00-00T00:00:00";
  if (t.size() < shape.size() + 1 || t.size() > shape.size() + 11 || t.back() != 'Z') return false;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    const bool digit = t[i] >= '0' && t[i] <= '9';
    if (shape[i] == '0' ? !digit : t[i] != shape[i]) return false;
  }
  const std::string_view rest = t.substr(shape.size(), t.size() - shape.size() - 1);
  if (rest.empty()) return true;
  return rest.size() >= 2 && rest[0] == '.' &&
         std::all_of(rest.begin() + 1, rest.end(), [](char c) { return c >= '0' && c <= '9'; });
}

struct DCtxDeleter {
  void operator()(ZSTD_DCtx* c) const noexcept { ZSTD_freeDCtx(c); }
};
struct BlobHandleCloser {
  void operator()(sqlite3_blob* b) const noexcept { sqlite3_blob_close(b); }
};

// Receives one chunk after it was verified: the stored bytes that were checked, and its row.
using VerifiedChunkSink =
    std::function<void(std::int64_t seq, std::int64_t raw_size, std::int64_t checksum, const char* data, std::size_t size)>;

// A bundle file opened for import: read-only, in one read transaction for the whole import, with
// SQLite's defences on. Every failure reading it becomes an Error naming the bundle; the messages
// of SQLite, zstd and the JSON parser never reach the caller.
class BundleFile {
 public:
  explicit BundleFile(const std::filesystem::path& path) : path_(path) {
    on_file([&] {
      db_ = std::make_unique<SQLite::Database>(path, SQLite::OPEN_READONLY);
      sqlite3* h = db_->getHandle();
      // No value larger than a stored chunk is ever built; the schema runs no function; reads
      // check each b-tree cell.
      sqlite3_limit(h, SQLITE_LIMIT_LENGTH, static_cast<int>(kMaxStoredChunk));
      sqlite3_db_config(h, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
      sqlite3_db_config(h, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);
      db_->exec("PRAGMA cell_size_check = ON");
      db_->exec("PRAGMA query_only = ON");
    });
  }

  // The corruption error for a bundle that is not what the exporter writes.
  Error bad(std::string_view why) const {
    return Error(Errc::corruption, fmt::format("'{}' is not a valid modelreg bundle: {}; nothing was imported — "
                                               "export it again with `modelreg export`",
                                               path_.string(), why));
  }

  // Runs f on the bundle's connection, turning SQLite failures into Errors about the bundle.
  template <class F>
  auto on_file(F&& f) const -> decltype(f()) {
    try {
      return f();
    } catch (const SQLite::Exception& e) {
      const int code = e.getErrorCode() & 0xff;
      if (code == SQLITE_BUSY || code == SQLITE_LOCKED) {
        throw Error(Errc::busy, fmt::format("bundle '{}' is being written by another process; retry when it is "
                                            "complete",
                                            path_.string()));
      }
      if (code == SQLITE_CANTOPEN || code == SQLITE_PERM || code == SQLITE_IOERR || code == SQLITE_NOMEM) {
        throw Error(Errc::io_error, fmt::format("cannot read bundle '{}'; check the file and its permissions, and "
                                                "retry",
                                                path_.string()));
      }
      if (code == SQLITE_TOOBIG) throw bad("a value in it is larger than any bundle holds");
      throw bad("it is not an SQLite file, or the file is damaged");
    }
  }

  SQLite::Database& db() { return *db_; }
  const std::filesystem::path& path() const { return path_; }

  // Header, format version, schema and bundle_info; then the whole read runs in one snapshot.
  void check_structure();
  // Every version and blob row, checked and in import order (parents first).
  std::vector<BundleVersion> read_versions();
  std::map<std::int64_t, BundleBlob> read_blobs(const std::vector<BundleVersion>& versions);

  // Reads blob `blob` chunk by chunk, each once: its XXH3, its zstd frame decoded (or raw bytes)
  // to its declared size into the SHA-256, its place in the layout; then hands that same buffer
  // to `keep` (when given). At the end the totals and the SHA-256 must match the blobs row.
  // `on_raw` receives the raw bytes verified so far in each chunk.
  void verify_blob(const BundleBlob& blob, const VerifiedChunkSink& keep, const std::function<void(std::uint64_t)>& on_raw);

 private:
  void check_schema();
  void check_info();
  BundleVersion parse_version(std::string model, std::int64_t number, std::int64_t blob_id, const std::string& text);

  std::filesystem::path path_;
  std::unique_ptr<SQLite::Database> db_;
  std::unique_ptr<SQLite::Transaction> snapshot_;  // after db_: ends before the connection closes
};

void BundleFile::check_structure() {
  on_file([&] {
    if (db_->execAndGet("PRAGMA application_id").getInt() != kBundleApplicationId) {
      throw bad("its SQLite application id is not modelreg's (\"mrgb\")");
    }
    const int format = db_->execAndGet("PRAGMA user_version").getInt();
    if (format != kBundleFormatVersion) {
      throw Error(Errc::incompatible,
                  format > kBundleFormatVersion
                      ? fmt::format("bundle '{}' has format version {}, newer than this modelreg reads ({}); "
                                    "upgrade modelreg",
                                    path_.string(), format, kBundleFormatVersion)
                      : fmt::format("bundle '{}' has format version {}, which this modelreg does not read (it reads "
                                    "format {}); export it again with this modelreg",
                                    path_.string(), format, kBundleFormatVersion));
    }
    // One snapshot for everything that follows: a writer of the file (through SQLite) waits.
    snapshot_ = std::make_unique<SQLite::Transaction>(*db_, SQLite::TransactionBehavior::DEFERRED);
    check_schema();
    check_info();
  });
}

void BundleFile::check_schema() {
  // The exact schema is what the exporter's own DDL produces: compare sqlite_master row by row
  // (tables, their indexes, their SQL text), so nothing else — a view, a trigger, an extra table,
  // column or index, WITHOUT ROWID, a collation — is ever read.
  struct Entry {
    std::string type, table, sql;
  };
  auto entries = [](SQLite::Database& d) {
    std::map<std::string, Entry> out;
    SQLite::Statement q(d, "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master");
    while (q.executeStep()) {
      out[q.getColumn(1).getString()] = {q.getColumn(0).getString(), q.getColumn(2).getString(),
                                         q.getColumn(3).getString()};
    }
    return out;
  };
  auto columns = [](SQLite::Database& d, const std::string& table) {
    std::vector<std::string> out;
    SQLite::Statement q(d, "SELECT name FROM pragma_table_xinfo(?) ORDER BY cid");
    q.bind(1, table);
    while (q.executeStep()) out.push_back(q.getColumn(0).getString());
    return out;
  };
  SQLite::Database reference(":memory:", SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  reference.exec(kBundleSchema);
  const auto expected = entries(reference);
  const auto found = entries(*db_);
  for (const auto& [name, e] : found) {
    if (!expected.contains(name)) throw bad(fmt::format("unexpected {} '{}'", e.type, name));
  }
  for (const auto& [name, want] : expected) {
    const auto it = found.find(name);
    if (it == found.end()) throw bad(fmt::format("{} '{}' is missing", want.type, name));
    const Entry& got = it->second;
    if (got.type != want.type) throw bad(fmt::format("'{}' is a {}, not a {}", name, got.type, want.type));
    if (want.type == "table") {
      const auto want_columns = columns(reference, name);
      const auto got_columns = columns(*db_, name);
      for (const auto& c : got_columns) {
        if (std::find(want_columns.begin(), want_columns.end(), c) == want_columns.end()) {
          throw bad(fmt::format("table '{}' has an unexpected column '{}'", name, c));
        }
      }
      for (const auto& c : want_columns) {
        if (std::find(got_columns.begin(), got_columns.end(), c) == got_columns.end()) {
          throw bad(fmt::format("table '{}' lacks the column '{}'", name, c));
        }
      }
    }
    if (got.table != want.table || got.sql != want.sql) {
      throw bad(fmt::format("{} '{}' is not defined as modelreg defines it", want.type, name));
    }
  }
}

void BundleFile::check_info() {
  const std::int64_t rows = db_->execAndGet("SELECT count(*) FROM bundle_info").getInt64();
  if (rows != static_cast<std::int64_t>(std::size(kInfoKeys))) {
    throw bad(fmt::format("bundle_info holds {} rows, expected {}", rows, std::size(kInfoKeys)));
  }
  std::map<std::string, std::string> info;
  SQLite::Statement q(*db_,
                      "SELECT key, typeof(key), value, typeof(value), length(CAST(value AS BLOB)) FROM bundle_info");
  while (q.executeStep()) {
    const std::string key = q.getColumn(1).getString() == "text" ? q.getColumn(0).getString() : "";
    if (std::find(std::begin(kInfoKeys), std::end(kInfoKeys), key) == std::end(kInfoKeys)) {
      throw bad(fmt::format("bundle_info has an unexpected key '{}'", key));
    }
    if (q.getColumn(3).getString() != "text" ||
        static_cast<std::uint64_t>(q.getColumn(4).getInt64()) > kMaxInfoValueBytes) {
      throw bad(fmt::format("bundle_info '{}' is not a text of at most {} bytes", key, kMaxInfoValueBytes));
    }
    info[key] = q.getColumn(2).getString();
  }
  if (info["format"] != "modelreg-bundle") throw bad("bundle_info 'format' is not 'modelreg-bundle'");
  if (info["format_version"] != std::to_string(kBundleFormatVersion)) {
    throw Error(Errc::incompatible, fmt::format("bundle '{}' declares format version '{}' in bundle_info, which this "
                                                "modelreg does not read (it reads format {}); export it again with "
                                                "a modelreg that matches, or upgrade modelreg",
                                                path_.string(), info["format_version"], kBundleFormatVersion));
  }
}

BundleVersion BundleFile::parse_version(std::string model, std::int64_t number, std::int64_t blob_id,
                                        const std::string& text) {
  BundleVersion bv;
  bv.model = std::move(model);
  bv.number = number;
  bv.blob_id = blob_id;
  const std::string where = bv.where();
  if (text.size() > kMaxMetadataBytes) {
    throw bad(fmt::format("the metadata of {} is {} bytes, more than the {} MiB a version may have", where,
                          text.size(), kMaxMetadataBytes >> 20));
  }
  if (json_depth(text) > kMaxMetadataDepth) {
    throw bad(fmt::format("the metadata of {} is nested deeper than {} levels", where, kMaxMetadataDepth));
  }
  bv.metadata = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (bv.metadata.is_discarded() || !bv.metadata.is_object()) {
    throw bad(fmt::format("the metadata of {} is not a JSON object", where));
  }
  for (const auto& [key, value] : bv.metadata.items()) {
    if (!kMetadataKeys.contains(key)) throw bad(fmt::format("the metadata of {} has an unexpected field '{}'", where, key));
  }
  try {
    const json& m = bv.metadata;
    NewVersion& s = bv.spec;
    s.model = bv.model;
    s.format = text_field(m, "format");
    s.type_name = text_field(m, "type_name");
    s.notes = text_field(m, "notes");
    if (const json& label = member(m, "label"); !label.is_null()) s.label = text_of(label, "label");
    s.metrics = number_map_field(m, "metrics");
    s.params = text_map_field(m, "params");
    s.tags = text_map_field(m, "tags");
    for (const auto& f : array_field(m, "features")) s.features.push_back({text_field(f, "name"), text_field(f, "dtype")});
    for (const auto& d : array_field(m, "datasets")) {
      Dataset ds;
      ds.uri = text_field(d, "uri");
      if (const json& sha = member(d, "sha256"); !sha.is_null()) ds.sha256 = text_of(sha, "sha256");
      ds.role = text_field(d, "role");
      s.datasets.push_back(std::move(ds));
    }
    bv.created_at = text_field(m, "created_at");
    bv.created_by = text_field(m, "created_by");
    if (!bv.created_by.empty()) s.created_by = bv.created_by;
    const std::string status = text_field(m, "status");
    if (status != "ready" && status != "archived") throw BadField{"status"};
    bv.archived = status == "archived";
    if (const auto it = m.find("task"); it != m.end() && !it->is_null()) {
      ModelTask t;
      try {
        t.task = parse_task(text_field(*it, "task"));
        const json& classes = member(*it, "classes");
        if (t.task != Task::regression) t.classes = detail::decode_labels(classes.dump());
      } catch (const Error& e) {
        throw bad(fmt::format("the task of {} is malformed: {}", where, e.what()));
      }
      const std::size_t k = t.classes.size();
      if ((t.task == Task::binary && k != 2) || (t.task == Task::multiclass && (k < 3 || k > 100000)) ||
          (t.task == Task::regression && k != 0)) {
        throw bad(fmt::format("the task of {} has {} classes, which a {} model cannot have", where, k,
                              to_string(t.task)));
      }
      bv.task = std::move(t);
    } else if (s.format == kModelFormat) {
      bv.task = ModelTask{Task::binary, ClassLabels::zero_one()};
    }
    if (const auto it = m.find("probe"); it != m.end() && !it->is_null()) {
      const std::int64_t n_features = integer_field(*it, "n_features");
      std::vector<double> inputs = numbers_field(*it, "inputs", true);
      std::vector<double> outputs = numbers_field(*it, "outputs");
      const std::uint64_t per_row = bv.task ? bv.task->n_outputs() : 1;
      const std::uint64_t rows =
          n_features < 1 ? 0 : inputs.size() / static_cast<std::uint64_t>(n_features);
      if (n_features < 1 || rows < 1 || rows > 16 || inputs.size() != rows * static_cast<std::uint64_t>(n_features) ||
          outputs.size() != rows * per_row) {
        throw bad(fmt::format("the probe of {} is malformed", where));
      }
      Probe probe;
      probe.inputs = Matrix(std::move(inputs), static_cast<std::size_t>(n_features));
      probe.outputs = std::move(outputs);
      bv.probe = std::move(probe);
    }
    for (const auto& p : array_field(m, "parents")) {
      BundleParent parent{text_field(p, "model"), integer_field(p, "number"), text_field(p, "relation"),
                          text_field(p, "sha256")};
      if (!is_valid_model_name(parent.model) || parent.number < 1 || parent.number > kMaxVersionNumber ||
          !detail::is_relation(parent.relation) || !detail::is_lower_hex(parent.sha256, 64)) {
        throw bad(fmt::format("{} names an invalid parent ({}@{}, relation '{}')", where, parent.model, parent.number,
                              parent.relation));
      }
      if (parent.model == bv.model && parent.number == bv.number) {
        throw bad(fmt::format("{} names itself as its parent", where));
      }
      bv.parents.push_back(std::move(parent));
    }
  } catch (const BadField& f) {
    throw bad(fmt::format("the metadata of {} has a missing or malformed '{}'", where, f.name));
  }
  if (!is_utc_time(bv.created_at)) {
    throw bad(fmt::format("{} has created_at '{}', not a UTC time as modelreg writes it", where, bv.created_at));
  }
  try {
    detail::validate(bv.spec);
  } catch (const Error& e) {
    throw bad(fmt::format("{}: {}", where, e.what()));
  }
  return bv;
}

std::vector<BundleVersion> BundleFile::read_versions() {
  return on_file([&] {
    const std::int64_t count = db_->execAndGet("SELECT count(*) FROM bundle_versions").getInt64();
    if (count == 0) throw bad("it holds no versions");
    if (count > kMaxBundleVersions) {
      throw Error(Errc::invalid_argument,
                  fmt::format("bundle '{}' holds {} versions, more than the {} one import takes; nothing was "
                              "imported — export them in several bundles",
                              path_.string(), count, kMaxBundleVersions));
    }
    const std::int64_t metadata_bytes =
        db_->execAndGet("SELECT coalesce(sum(length(CAST(metadata AS BLOB))), 0) FROM bundle_versions").getInt64();
    if (metadata_bytes > kMaxTotalMetadataBytes) {
      throw bad(fmt::format("its metadata totals {} bytes, more than the {} MiB one import takes", metadata_bytes,
                            kMaxTotalMetadataBytes >> 20));
    }
    std::vector<BundleVersion> in_file;
    std::map<std::pair<std::string, std::int64_t>, std::size_t> index;
    SQLite::Statement q(*db_,
                        "SELECT model, typeof(model), number, typeof(number), blob_id, typeof(blob_id), metadata, "
                        "typeof(metadata), length(CAST(model AS BLOB)) FROM bundle_versions ORDER BY position");
    while (q.executeStep()) {
      if (q.getColumn(1).getString() != "text" || q.getColumn(8).getInt64() > 128 ||
          !is_valid_model_name(q.getColumn(0).getString())) {
        throw bad(fmt::format("version {} of bundle_versions has an invalid model name", in_file.size() + 1));
      }
      const std::string model = q.getColumn(0).getString();
      if (q.getColumn(3).getString() != "integer") throw bad(fmt::format("a version of {} has a number that is not an integer", model));
      const std::int64_t number = q.getColumn(2).getInt64();
      if (number < 1 || number > kMaxVersionNumber) {
        throw bad(fmt::format("{}@{} has a version number outside 1..{}, the numbers modelreg issues", model, number,
                              kMaxVersionNumber));
      }
      if (q.getColumn(5).getString() != "integer" || q.getColumn(7).getString() != "text") {
        throw bad(fmt::format("the row of {}@{} in bundle_versions is malformed", model, number));
      }
      if (!index.emplace(std::pair(model, number), in_file.size()).second) {
        throw bad(fmt::format("{}@{} appears twice", model, number));
      }
      in_file.push_back(parse_version(model, number, q.getColumn(4).getInt64(), q.getColumn(6).getString()));
    }
    // Blobs, as declared (verified later, chunk by chunk).
    SQLite::Statement sha(*db_, "SELECT sha256 FROM blobs WHERE id = ?");
    for (auto& bv : in_file) {
      sha.bind(1, bv.blob_id);
      if (!sha.executeStep()) {
        throw bad(fmt::format("the blob of {} is missing from the bundle (blob id {})", bv.where(), bv.blob_id));
      }
      bv.sha256 = sha.getColumn(0).getString();
      sha.reset();
    }
    // Parents before children, whatever the stored positions say (bundles written before
    // 2026-12 were ordered by created_at, which clock skew reorders).
    std::vector<std::vector<std::size_t>> before(in_file.size());
    for (std::size_t i = 0; i < in_file.size(); ++i) {
      for (const auto& p : in_file[i].parents) {
        const auto it = index.find({p.model, p.number});
        if (it == index.end()) continue;
        const BundleVersion& parent = in_file[it->second];
        if (parent.sha256 != p.sha256) {
          throw bad(fmt::format("{} names its parent {} with sha256 {}, but the bundle holds {} with sha256 {}",
                                in_file[i].where(), parent.where(), p.sha256, parent.where(), parent.sha256));
        }
        before[i].push_back(it->second);
      }
    }
    const auto order = parents_first(before);
    if (order.empty()) throw bad("the lineage of its versions forms a cycle");
    std::vector<BundleVersion> out;
    out.reserve(in_file.size());
    for (std::size_t i : order) out.push_back(std::move(in_file[i]));
    return out;
  });
}

std::map<std::int64_t, BundleBlob> BundleFile::read_blobs(const std::vector<BundleVersion>& versions) {
  return on_file([&] {
    std::map<std::int64_t, std::string> owner;
    for (const auto& v : versions) owner.try_emplace(v.blob_id, v.where());
    std::map<std::int64_t, BundleBlob> blobs;
    std::int64_t chunks_declared = 0;
    SQLite::Statement q(*db_,
                        "SELECT id, sha256, typeof(sha256), raw_size, stored_size, codec, typeof(codec), level, "
                        "chunk_size, chunk_count, typeof(raw_size) || typeof(stored_size) || typeof(level) || "
                        "typeof(chunk_size) || typeof(chunk_count) FROM blobs ORDER BY id");
    while (q.executeStep()) {
      BundleBlob b;
      b.id = q.getColumn(0).getInt64();
      const auto it = owner.find(b.id);
      if (it == owner.end()) throw bad(fmt::format("blob {} is used by no version", b.id));
      b.owner = it->second;
      auto blob_error = [&](std::string_view what) { return bad(fmt::format("the blob of {} {}", b.owner, what)); };
      if (q.getColumn(10).getString() != "integerintegerintegerintegerinteger" ||
          q.getColumn(2).getString() != "text" || q.getColumn(6).getString() != "text") {
        throw blob_error("has a malformed row in blobs");
      }
      b.info.sha256 = q.getColumn(1).getString();
      if (!detail::is_lower_hex(b.info.sha256, 64)) throw blob_error("has an invalid sha256");
      const std::int64_t raw_size = q.getColumn(3).getInt64();
      const std::int64_t stored_size = q.getColumn(4).getInt64();
      b.info.codec = q.getColumn(5).getString();
      const std::int64_t level = q.getColumn(7).getInt64();
      const std::int64_t chunk_size = q.getColumn(8).getInt64();
      const std::int64_t chunk_count = q.getColumn(9).getInt64();
      if (chunk_size < kMinChunkSize || chunk_size > kMaxChunkSize) {
        throw blob_error(fmt::format("declares a chunk size of {} bytes; modelreg writes 64 KiB to 256 MiB",
                                     chunk_size));
      }
      if (b.info.codec == "none" ? level != 0 : (b.info.codec != "zstd" || level < 1 || level > 22)) {
        throw blob_error(fmt::format("declares codec '{}' at level {}; modelreg writes 'none' at 0 or 'zstd' at 1 "
                                     "to 22",
                                     b.info.codec, level));
      }
      if (raw_size < 0 || stored_size < 0 ||
          chunk_count != raw_size / chunk_size + (raw_size % chunk_size != 0 ? 1 : 0)) {
        throw blob_error(fmt::format("declares {} raw bytes in {} chunks of {} bytes, which do not fit", raw_size,
                                     chunk_count, chunk_size));
      }
      chunks_declared += chunk_count;
      b.info.raw_size = static_cast<std::uint64_t>(raw_size);
      b.info.stored_size = static_cast<std::uint64_t>(stored_size);
      b.info.level = static_cast<int>(level);
      b.info.chunk_size = static_cast<std::uint64_t>(chunk_size);
      b.info.chunk_count = static_cast<std::uint64_t>(chunk_count);
      blobs.emplace(b.id, std::move(b));
    }
    const std::int64_t chunk_rows = db_->execAndGet("SELECT count(*) FROM blob_chunks").getInt64();
    if (chunk_rows != chunks_declared) {
      throw bad(fmt::format("blob_chunks holds {} chunks, but its blobs declare {}", chunk_rows, chunks_declared));
    }
    return blobs;
  });
}

void BundleFile::verify_blob(const BundleBlob& blob, const VerifiedChunkSink& keep,
                             const std::function<void(std::uint64_t)>& on_raw) {
  auto corrupt = [&](std::string_view what) {
    return bad(fmt::format("the bytes of {} are corrupt: {}", blob.owner, what));
  };
  const BlobInfo& info = blob.info;
  std::unique_ptr<ZSTD_DCtx, DCtxDeleter> dctx;
  if (info.codec == "zstd") {
    dctx.reset(ZSTD_createDCtx());
    if (!dctx) throw Error(Errc::io_error, "out of memory for a zstd decompression context");
    // A frame never needs a window larger than its chunk: refuse frames that ask for more.
    int log = 10;
    while ((std::uint64_t{1} << log) < info.chunk_size) ++log;
    ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, log);
  }
  constexpr std::size_t kOutSize = 128u << 10;
  const auto out = std::make_unique_for_overwrite<char[]>(kOutSize);
  std::unique_ptr<char[]> stored;
  std::size_t stored_capacity = 0;
  detail::Sha256 sha;
  std::uint64_t raw_total = 0;
  std::uint64_t stored_total = 0;
  std::uint64_t expected_seq = 0;
  on_file([&] {
    SQLite::Statement chunks(*db_,
                             "SELECT rowid, seq, raw_size, checksum, typeof(seq) || typeof(raw_size) || "
                             "typeof(checksum) || typeof(data) FROM blob_chunks WHERE blob_id = ? ORDER BY seq");
    chunks.bind(1, blob.id);
    std::unique_ptr<sqlite3_blob, BlobHandleCloser> cursor;
    while (chunks.executeStep()) {
      const std::int64_t seq = chunks.getColumn(1).getInt64();
      const std::int64_t raw_size = chunks.getColumn(2).getInt64();
      const std::int64_t checksum = chunks.getColumn(3).getInt64();
      if (chunks.getColumn(4).getString() != "integerintegerintegerblob") {
        throw corrupt(fmt::format("chunk {} has a malformed row", seq));
      }
      if (seq < 0 || static_cast<std::uint64_t>(seq) != expected_seq || expected_seq >= info.chunk_count) {
        throw corrupt(fmt::format("chunk {} is out of place (expected chunk {} of {})", seq, expected_seq,
                                  info.chunk_count));
      }
      // Every chunk is full but the last, which holds the rest.
      const std::uint64_t want_raw = expected_seq + 1 < info.chunk_count
                                         ? info.chunk_size
                                         : info.raw_size - info.chunk_size * (info.chunk_count - 1);
      if (raw_size < 0 || static_cast<std::uint64_t>(raw_size) != want_raw) {
        throw corrupt(fmt::format("chunk {} declares {} raw bytes, expected {}", seq + 1, raw_size, want_raw));
      }
      sqlite3* h = db_->getHandle();
      sqlite3_blob* opened = nullptr;
      const std::int64_t rowid = chunks.getColumn(0).getInt64();
      const int rc = cursor ? sqlite3_blob_reopen(cursor.get(), rowid)
                            : sqlite3_blob_open(h, "main", "blob_chunks", "data", rowid, 0, &opened);
      if (!cursor) cursor.reset(opened);
      if (rc != SQLITE_OK) throw corrupt(fmt::format("chunk {} cannot be read", seq + 1));
      const std::size_t size = static_cast<std::size_t>(sqlite3_blob_bytes(cursor.get()));
      const std::size_t max_size = dctx ? ZSTD_compressBound(want_raw) : want_raw;
      if (size > max_size || (!dctx && size != want_raw) || size == 0) {
        throw corrupt(fmt::format("chunk {} stores {} bytes for {} raw bytes", seq + 1, size, want_raw));
      }
      if (stored_capacity < size) {
        stored = std::make_unique_for_overwrite<char[]>(size);
        stored_capacity = size;
      }
      // The one read of this chunk: everything below checks and then keeps these bytes.
      if (sqlite3_blob_read(cursor.get(), stored.get(), static_cast<int>(size), 0) != SQLITE_OK) {
        throw corrupt(fmt::format("chunk {} cannot be read", seq + 1));
      }
      XXH64_hash_t h64 = XXH3_64bits(stored.get(), size);
      std::int64_t actual;  // stored as SQLite INTEGER: the bits, not the value
      std::memcpy(&actual, &h64, sizeof actual);
      if (actual != checksum) throw corrupt(fmt::format("chunk {} of {} fails its checksum", seq + 1, info.chunk_count));
      std::uint64_t produced = 0;
      if (!dctx) {
        sha.update(stored.get(), size);
        produced = size;
      } else {
        ZSTD_DCtx_reset(dctx.get(), ZSTD_reset_session_only);
        ZSTD_inBuffer in{stored.get(), size, 0};
        while (true) {
          ZSTD_outBuffer o{out.get(), kOutSize, 0};
          const std::size_t in_before = in.pos;
          const std::size_t hint = ZSTD_decompressStream(dctx.get(), &o, &in);
          if (ZSTD_isError(hint)) throw corrupt(fmt::format("chunk {} is not a valid zstd frame", seq + 1));
          produced += o.pos;
          if (produced > want_raw) throw corrupt(fmt::format("chunk {} decodes to more than its {} bytes", seq + 1, want_raw));
          sha.update(out.get(), o.pos);
          if (hint == 0) break;  // the frame ended
          if (in.pos == in.size && o.pos < o.size) {
            throw corrupt(fmt::format("chunk {} ends in the middle of its zstd frame", seq + 1));
          }
          if (o.pos == 0 && in.pos == in_before) throw corrupt(fmt::format("chunk {} does not decode", seq + 1));
        }
        if (in.pos != in.size) throw corrupt(fmt::format("chunk {} has bytes after its zstd frame", seq + 1));
      }
      if (produced != want_raw) {
        throw corrupt(fmt::format("chunk {} holds {} bytes, expected {}", seq + 1, produced, want_raw));
      }
      raw_total += produced;
      stored_total += size;
      ++expected_seq;
      if (keep) keep(seq, raw_size, checksum, stored.get(), size);
      if (on_raw) on_raw(produced);
    }
  });
  if (expected_seq != info.chunk_count) throw corrupt(fmt::format("{} of {} chunks are present", expected_seq, info.chunk_count));
  if (raw_total != info.raw_size) throw corrupt(fmt::format("{} bytes, expected {}", raw_total, info.raw_size));
  const std::string digest = sha.hex_digest();
  if (digest != info.sha256) throw corrupt(fmt::format("their SHA-256 is {}, the bundle declares {}", digest, info.sha256));
  if (stored_total != info.stored_size) {
    throw corrupt(fmt::format("{} bytes stored, the bundle declares {}", stored_total, info.stored_size));
  }
}

// ---- writing into the registry ---------------------------------------------------------------


}  // namespace

ExportReport Registry::export_bundle(const std::vector<ModelRef>& refs, const std::filesystem::path& bundle,
                                     const ProgressFn& progress) const {
  if (refs.empty()) throw Error(Errc::invalid_argument, "nothing to export: name at least one version");
  check_output_path(bundle, true);  // not the registry's own file, nor a directory
  std::error_code ec;
  if (std::filesystem::exists(bundle, ec)) {
    throw Error(Errc::already_exists,
                fmt::format("'{}' already exists; remove it or choose another bundle name", bundle.string()));
  }
  // This export's own temporary file: exports racing to one path never share one.
  const std::filesystem::path tmp = detail::new_partial_file(bundle);
  ExportReport report;
  try {
    guarded(fmt::format("exporting to '{}'", bundle.string()), [&] {
      std::lock_guard lock(impl_->mutex);
      SQLite::Database& db = *impl_->db;
      SQLite::Transaction read(db, SQLite::TransactionBehavior::DEFERRED);
      // Resolve everything first: a bad REF fails before any file is written.
      std::vector<ModelVersion> versions;
      std::vector<std::int64_t> blob_ids;
      std::set<std::pair<std::string, std::int64_t>> seen;
      for (const auto& ref : refs) {
        const VersionRow row = impl_->require_row(ref);
        ModelVersion v = impl_->load_version(row.id);
        if (!seen.insert({v.id.model, v.id.number}).second) continue;
        versions.push_back(std::move(v));
        blob_ids.push_back(row.blob_id);
      }
      if (static_cast<std::int64_t>(versions.size()) > kMaxBundleVersions) {
        throw Error(Errc::invalid_argument, fmt::format("{} versions named; a bundle holds at most {}: export them in "
                                                        "several bundles",
                                                        versions.size(), kMaxBundleVersions));
      }
      // Parents before children by lineage, so that import can link them in one pass; among
      // versions unrelated by lineage, by creation time (which clock skew may reorder: harmless here).
      std::vector<std::size_t> by_time(versions.size());
      std::iota(by_time.begin(), by_time.end(), 0);
      std::sort(by_time.begin(), by_time.end(), [&](std::size_t a, std::size_t b) {
        return std::tie(versions[a].created_at, versions[a].id) < std::tie(versions[b].created_at, versions[b].id);
      });
      std::map<VersionId, std::size_t> rank;  // version -> its place in by_time
      for (std::size_t r = 0; r < by_time.size(); ++r) rank[versions[by_time[r]].id] = r;
      std::vector<std::vector<std::size_t>> before(by_time.size());
      for (std::size_t r = 0; r < by_time.size(); ++r) {
        for (const auto& [parent, relation] : versions[by_time[r]].parents) {
          if (const auto it = rank.find(parent); it != rank.end()) before[r].push_back(it->second);
        }
      }
      const std::vector<std::size_t> ranks = parents_first(before);
      if (ranks.empty()) {
        throw Error(Errc::corruption, "the lineage of the versions to export forms a cycle; run `modelreg verify` "
                                      "and restore the database from a backup");
      }
      std::vector<std::size_t> order;
      for (std::size_t r : ranks) order.push_back(by_time[r]);

      SQLite::Database out(tmp, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
      out.exec(fmt::format("PRAGMA application_id = {}; PRAGMA user_version = {}; PRAGMA journal_mode = OFF",
                           kBundleApplicationId, kBundleFormatVersion));
      SQLite::Transaction write(out);
      out.exec(kBundleSchema);
      {
        SQLite::Statement info(out, "INSERT INTO bundle_info(key, value) VALUES (?, ?)");
        const std::pair<const char*, std::string> rows[] = {
            {"format", "modelreg-bundle"},
            {"format_version", std::to_string(kBundleFormatVersion)},
            {"created_at", impl_->now()},
            {"created_by", impl_->options.default_actor},
            {"source_schema_version", std::to_string(detail::user_version(db))},
        };
        for (const auto& [k, v] : rows) {
          info.bind(1, k);
          info.bind(2, v);
          info.exec();
          info.reset();
        }
      }
      std::map<std::int64_t, std::int64_t> copied;  // source blob id -> bundle blob id
      std::uint64_t total = 0;
      for (auto b : blob_ids) total += detail::BlobStore(db).info(b).stored_size;
      std::uint64_t done = 0;
      SQLite::Statement insert_version(
          out, "INSERT INTO bundle_versions(position, model, number, blob_id, metadata) VALUES (?, ?, ?, ?, ?)");
      int position = 0;
      for (std::size_t i : order) {
        const ModelVersion& v = versions[i];
        const std::int64_t source_blob = blob_ids[i];
        auto [it, fresh] = copied.try_emplace(source_blob, static_cast<std::int64_t>(copied.size() + 1));
        if (fresh) {
          const BlobInfo info =
              detail::BlobStore(out).copy_from(db, source_blob, it->second, v.created_at, [&](std::uint64_t stored) {
                done += stored;
                if (progress) progress(done, total);
              });
          report.stored_bytes += info.stored_size;
        }
        json metadata = to_json(v);
        json parents = json::array();
        for (const auto& [parent, relation] : v.parents) {
          auto prow = impl_->require_row(ModelRef::number(parent.model, parent.number));
          parents.push_back({{"model", parent.model},
                             {"number", parent.number},
                             {"relation", relation},
                             {"sha256", detail::BlobStore(db).info(prow.blob_id).sha256}});
        }
        metadata["parents"] = parents;
        insert_version.bind(1, position++);
        insert_version.bind(2, v.id.model);
        insert_version.bind(3, v.id.number);
        insert_version.bind(4, it->second);
        insert_version.bind(5, metadata.dump());
        insert_version.exec();
        insert_version.reset();
        report.versions.push_back(v.id);
      }
      write.commit();
      read.commit();
    });
    detail::publish_file(tmp, bundle, false);
  } catch (...) {
    std::filesystem::remove(tmp, ec);
    throw;
  }
  return report;
}

ImportReport Registry::import_bundle(const std::filesystem::path& bundle, const ProgressFn& progress) {
  impl_->ensure_writable();
  std::error_code ec;
  if (!std::filesystem::exists(bundle, ec)) {
    throw Error(Errc::not_found, fmt::format("bundle '{}' does not exist", bundle.string()));
  }
  if (std::filesystem::is_directory(bundle, ec)) {
    throw Error(Errc::invalid_argument, fmt::format("'{}' is a directory; give the bundle file that `modelreg export` "
                                                    "wrote",
                                                    bundle.string()));
  }
  const std::string name = bundle.filename().string();
  const std::string context = fmt::format("importing '{}'", bundle.string());

  // Everything the bundle says, checked, before this registry is locked. The bundle stays in one
  // read snapshot until the import ends.
  BundleFile in(bundle);
  in.check_structure();
  const std::vector<BundleVersion> versions = in.read_versions();
  const std::map<std::int64_t, BundleBlob> blobs = in.read_blobs(versions);
  std::map<std::pair<std::string, std::int64_t>, const BundleVersion*> in_bundle;
  for (const auto& bv : versions) in_bundle[{bv.model, bv.number}] = &bv;

  return guarded(context, [&] {
    std::lock_guard lock(impl_->mutex);
    SQLite::Database& db = *impl_->db;
    SQLite::Transaction txn(db, SQLite::TransactionBehavior::IMMEDIATE);
    ImportReport report;
    const std::string at = impl_->now();
    const std::string actor = impl_->options.default_actor;
    auto blob_sha_of = [&](std::int64_t version_id) {
      SQLite::Statement q(db, "SELECT b.sha256 FROM versions v JOIN blobs b ON b.id = v.blob_id WHERE v.id = ?");
      q.bind(1, version_id);
      q.executeStep();
      return q.getColumn(0).getString();
    };

    // 1. Every decision, before a byte is copied: which versions are new, every conflict, and
    //    every lineage edge (its parent comes with the bundle or is here with the same bytes).
    std::vector<const BundleVersion*> to_import;
    std::map<std::string, std::int64_t> last_before;  // model -> last_number before this import
    std::set<std::pair<std::string, std::string>> labels_claimed;  // (model, label) of versions imported
    for (const auto& bv : versions) {
      const std::string where = bv.where();
      const std::optional<std::int64_t> mid = impl_->model_id(bv.model);
      if (mid && !last_before.contains(bv.model)) {
        SQLite::Statement q(db, "SELECT last_number FROM models WHERE id = ?");
        q.bind(1, *mid);
        q.executeStep();
        last_before[bv.model] = q.getColumn(0).getInt64();
      }
      if (mid) {
        if (auto here = impl_->row_by_number(*mid, bv.number)) {
          const ModelVersion mine = impl_->load_version(here->id);
          if (mine.blob.sha256 == bv.sha256 && identity(to_json(mine)) == identity(bv.metadata)) {
            report.already_present.push_back({bv.model, bv.number});
            continue;
          }
          throw Error(Errc::conflict,
                      fmt::format("{} already exists here with different {}; nothing was imported (import into "
                                  "another registry, or delete the local version first)",
                                  where, mine.blob.sha256 != bv.sha256 ? "bytes" : "metadata"));
        }
        if (bv.number <= last_before[bv.model]) {
          throw Error(Errc::conflict, fmt::format("{} was deleted here and version numbers are never reused; "
                                                  "nothing was imported",
                                                  where));
        }
      }
      if (bv.spec.label) {
        if (mid) {
          SQLite::Statement q(db, "SELECT number FROM versions WHERE model_id = ? AND label = ?");
          q.bind(1, *mid);
          q.bind(2, *bv.spec.label);
          if (q.executeStep()) {
            throw Error(Errc::conflict, fmt::format("{}: label '{}' is already taken here by {}@{}; nothing was "
                                                    "imported",
                                                    where, *bv.spec.label, bv.model, q.getColumn(0).getInt64()));
          }
          try {
            impl_->check_not_an_alias(*mid, *bv.spec.label, bv.model);
          } catch (const Error& e) {
            throw Error(Errc::conflict, fmt::format("{}: {}; nothing was imported", where, e.what()));
          }
        }
        if (!labels_claimed.insert({bv.model, *bv.spec.label}).second) {
          throw in.bad(fmt::format("label '{}' of {} is given to two of its versions", *bv.spec.label, bv.model));
        }
      }
      for (const auto& p : bv.parents) {
        if (in_bundle.contains({p.model, p.number})) continue;  // checked against the bundle already
        std::optional<VersionRow> prow;
        if (auto pmid = impl_->model_id(p.model)) prow = impl_->row_by_number(*pmid, p.number);
        if (!prow) {
          throw Error(Errc::conflict,
                      fmt::format("{}: its parent {}@{} ({}) is neither in the bundle nor in this registry, so the "
                                  "lineage cannot be kept; nothing was imported — import the parent first, or "
                                  "export it together with {}",
                                  where, p.model, p.number, p.relation, where));
        }
        if (blob_sha_of(prow->id) != p.sha256) {
          throw Error(Errc::conflict, fmt::format("{}: its parent {}@{} ({}) exists here with different bytes than "
                                                  "in the registry it was exported from; nothing was imported",
                                                  where, p.model, p.number, p.relation));
        }
      }
      to_import.push_back(&bv);
    }

    // 2. The bytes: every blob of the bundle is read once and verified; those that new versions
    //    need and this registry lacks are inserted from the very buffers that were verified.
    std::set<std::int64_t> needed;
    for (const auto* bv : to_import) needed.insert(bv->blob_id);
    std::uint64_t total = 0;
    for (const auto& [id, b] : blobs) total += b.info.raw_size;
    std::uint64_t done = 0;
    if (progress) progress(0, total);
    auto count_raw = [&](std::uint64_t n) {
      done += n;
      if (progress) progress(done, total);
    };
    std::map<std::int64_t, std::int64_t> blob_map;  // bundle blob id -> registry blob id
    for (const auto& [id, b] : blobs) {
      std::optional<std::int64_t> here;
      {
        SQLite::Statement same(db, "SELECT id FROM blobs WHERE sha256 = ?");
        same.bind(1, b.info.sha256);
        if (same.executeStep()) here = same.getColumn(0).getInt64();
      }
      // The copy here is reused only if it still keeps its checksum; if it does not, the bundle's
      // verified bytes replace it (healing every version that shares it).
      std::optional<std::string> damaged;
      if (here && needed.contains(id)) damaged = detail::BlobStore(db).damage(*here);
      if (!needed.contains(id) || (here && !damaged)) {
        in.verify_blob(b, {}, count_raw);
        if (here) blob_map[id] = *here;
        continue;
      }
      const std::int64_t new_id = db.execAndGet("SELECT coalesce(max(id), 0) + 1 FROM blobs").getInt64();
      // Each chunk's verified buffer is inserted as it is handed over, then the sealing row; the
      // write transaction rolls everything back if verification fails part way.
      detail::ChunkWriter writer(db, new_id);
      in.verify_blob(
          b,
          [&](std::int64_t seq, std::int64_t raw_size, std::int64_t checksum, const char* data, std::size_t size) {
            try {
              writer.add(seq, raw_size, checksum, data, size);
            } catch (const SQLite::Exception& e) {
              throw detail::translate(e, context);  // this registry's failure, not the bundle's
            }
          },
          count_raw);
      if (damaged) {
        detail::BlobStore(db).repair(*here, new_id, b.info, *damaged, at, actor);
        blob_map[id] = *here;
        continue;
      }
      writer.seal(b.info, at);
      blob_map[id] = new_id;
    }

    // 3. The versions, parents first, each keeping its number.
    std::map<std::pair<std::string, std::int64_t>, std::int64_t> version_ids;  // imported -> version id
    for (const BundleVersion* bv : to_import) {
      std::int64_t mid = 0;
      if (auto existing = impl_->model_id(bv->model)) {
        mid = *existing;
      } else {
        SQLite::Statement q(db, "INSERT INTO models(name, created_at) VALUES (?, ?)");
        q.bind(1, bv->model);
        q.bind(2, at);
        q.exec();
        mid = db.getLastInsertRowid();
      }
      std::vector<std::pair<std::int64_t, std::string>> parents;
      for (const auto& p : bv->parents) {
        if (auto it = version_ids.find({p.model, p.number}); it != version_ids.end()) {
          parents.emplace_back(it->second, p.relation);
          continue;
        }
        // Already here (checked above, or skipped as already present): a row that exists.
        const VersionRow prow = impl_->require_row(ModelRef::number(p.model, p.number));
        parents.emplace_back(prow.id, p.relation);
      }
      SQLite::Statement issue(db, "UPDATE models SET last_number = max(last_number, ?) WHERE id = ?");
      issue.bind(1, bv->number);
      issue.bind(2, mid);
      issue.exec();
      const std::int64_t vid =
          impl_->insert_version(mid, bv->number, bv->spec, parents, blob_map.at(bv->blob_id), bv->created_at,
                                bv->created_by.empty() ? actor : bv->created_by, bv->probe ? &*bv->probe : nullptr,
                                bv->task ? &*bv->task : nullptr);
      if (bv->archived) {
        SQLite::Statement q(db, "UPDATE versions SET status = 'archived' WHERE id = ?");
        q.bind(1, vid);
        q.exec();
      }
      impl_->record_event(mid, EventKind::register_version, bv->number, std::nullopt, std::nullopt, actor, "",
                          fmt::format("imported from bundle {} sha256={}", name, bv->sha256));
      version_ids[{bv->model, bv->number}] = vid;
      report.imported.push_back({bv->model, bv->number});
    }
    txn.commit();
    return report;
  });
}

}  // namespace modelreg
