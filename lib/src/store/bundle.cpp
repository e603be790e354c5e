// Registry::export_bundle / import_bundle: versions moved between registries in one SQLite file.
// The bundle holds `blobs` and `blob_chunks` exactly as the registry stores them (chunks are
// copied, never recompressed), one row per version with its metadata as JSON, and bundle_info.
// Format: docs/format.md, "Bundles".
#include <numeric>
#include <set>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include <SQLiteCpp/Transaction.h>

#include "store/registry_impl.hpp"

namespace modelreg {
namespace {

using nlohmann::json;

constexpr int kBundleApplicationId = 0x6d726762;  // "mrgb"
constexpr int kBundleFormatVersion = 1;

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
                                : json(nullptr)}};
}

// The metadata that defines a version's identity, for "is this the same version?" on import.
json identity(const json& m) {
  return json{{"label", m.at("label")}, {"format", m.at("format")},   {"type_name", m.at("type_name")},
              {"notes", m.at("notes")}, {"metrics", m.at("metrics")}, {"params", m.at("params")},
              {"features", m.at("features")}};
}

struct BundleVersion {
  std::string model;
  std::int64_t number = 0;
  std::int64_t blob_id = 0;
  std::string sha256;
  json metadata;
  NewVersion spec;
  std::string created_at;
  std::string created_by;
  bool archived = false;
  std::optional<Probe> probe;
  std::vector<std::tuple<std::string, std::int64_t, std::string, std::string>> parents;  // model, number, relation, sha
};

NewVersion spec_from(const std::string& model, const json& m) {
  NewVersion s;
  s.model = model;
  s.format = m.at("format").get<std::string>();
  s.type_name = m.at("type_name").get<std::string>();
  s.notes = m.at("notes").get<std::string>();
  if (!m.at("label").is_null()) s.label = m.at("label").get<std::string>();
  s.metrics = m.at("metrics").get<std::map<std::string, double>>();
  s.params = m.at("params").get<std::map<std::string, std::string>>();
  s.tags = m.at("tags").get<std::map<std::string, std::string>>();
  for (const auto& f : m.at("features")) s.features.push_back({f.at("name").get<std::string>(), f.at("dtype").get<std::string>()});
  for (const auto& d : m.at("datasets")) {
    Dataset ds;
    ds.uri = d.at("uri").get<std::string>();
    if (!d.at("sha256").is_null()) ds.sha256 = d.at("sha256").get<std::string>();
    ds.role = d.at("role").get<std::string>();
    s.datasets.push_back(std::move(ds));
  }
  s.created_by = m.at("created_by").get<std::string>();
  return s;
}

}  // namespace

ExportReport Registry::export_bundle(const std::vector<ModelRef>& refs, const std::filesystem::path& bundle,
                                     const ProgressFn& progress) const {
  if (refs.empty()) throw Error(Errc::invalid_argument, "nothing to export: name at least one version");
  std::error_code ec;
  if (std::filesystem::exists(bundle, ec)) {
    throw Error(Errc::already_exists,
                fmt::format("'{}' already exists; remove it or choose another bundle name", bundle.string()));
  }
  const std::filesystem::path tmp = bundle.string() + ".modelreg-partial";
  std::filesystem::remove(tmp, ec);
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
      // Parents before children, so that import can link them in one pass.
      std::vector<std::size_t> order(versions.size());
      std::iota(order.begin(), order.end(), 0);
      std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        return std::tie(versions[a].created_at, versions[a].id) < std::tie(versions[b].created_at, versions[b].id);
      });

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
    std::filesystem::rename(tmp, bundle);
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
  const std::string name = bundle.filename().string();
  const std::string context = fmt::format("importing '{}'", bundle.string());
  return guarded(context, [&] {
    // Read and check the whole bundle before touching this registry.
    SQLite::Database in(bundle, SQLite::OPEN_READONLY);
    auto not_a_bundle = [&](std::string_view why) {
      return Error(Errc::corruption, fmt::format("'{}' is not a valid modelreg bundle ({}); export it again with "
                                                 "`modelreg export`",
                                                 bundle.string(), why));
    };
    try {
      if (in.execAndGet("PRAGMA application_id").getInt() != kBundleApplicationId) throw not_a_bundle("wrong application id");
    } catch (const SQLite::Exception&) {
      throw not_a_bundle("not an SQLite file");
    }
    const int format = in.execAndGet("PRAGMA user_version").getInt();
    if (format > kBundleFormatVersion) {
      throw Error(Errc::incompatible, fmt::format("bundle '{}' has format version {}, newer than this modelreg "
                                                  "reads ({}); upgrade modelreg",
                                                  bundle.string(), format, kBundleFormatVersion));
    }
    std::vector<BundleVersion> versions;
    {
      SQLite::Statement q(in,
                          "SELECT v.model, v.number, v.blob_id, b.sha256, v.metadata FROM bundle_versions v "
                          "JOIN blobs b ON b.id = v.blob_id ORDER BY v.position");
      while (q.executeStep()) {
        BundleVersion bv;
        bv.model = q.getColumn(0).getString();
        bv.number = q.getColumn(1).getInt64();
        bv.blob_id = q.getColumn(2).getInt64();
        bv.sha256 = q.getColumn(3).getString();
        const std::string where = fmt::format("{}@{}", bv.model, bv.number);
        try {
          bv.metadata = json::parse(q.getColumn(4).getString());
          bv.spec = spec_from(bv.model, bv.metadata);
          bv.created_at = bv.metadata.at("created_at").get<std::string>();
          bv.created_by = bv.metadata.at("created_by").get<std::string>();
          bv.archived = bv.metadata.at("status").get<std::string>() == "archived";
          if (const auto& p = bv.metadata.value("probe", json(nullptr)); !p.is_null()) {
            Probe probe;
            probe.inputs = Matrix(p.at("inputs").get<std::vector<double>>(), p.at("n_features").get<std::size_t>());
            probe.outputs = p.at("outputs").get<std::vector<double>>();
            if (probe.inputs.rows() != probe.outputs.size() || probe.outputs.empty() || probe.outputs.size() > 16) {
              throw not_a_bundle(fmt::format("the probe of {} is malformed", where));
            }
            bv.probe = std::move(probe);
          }
          for (const auto& p : bv.metadata.at("parents")) {
            bv.parents.emplace_back(p.at("model").get<std::string>(), p.at("number").get<std::int64_t>(),
                                    p.at("relation").get<std::string>(), p.at("sha256").get<std::string>());
          }
        } catch (const json::exception& e) {
          throw not_a_bundle(fmt::format("metadata of {} is damaged: {}", where, e.what()));
        }
        if (bv.number < 1) throw not_a_bundle(fmt::format("{} has an invalid number", where));
        detail::validate(bv.spec);
        versions.push_back(std::move(bv));
      }
    }
    if (versions.empty()) throw not_a_bundle("it holds no versions");
    {
      // Every chunk's checksum and every blob's SHA-256, before anything is written here.
      std::uint64_t total = 0;
      std::uint64_t done = 0;
      total = static_cast<std::uint64_t>(in.execAndGet("SELECT coalesce(sum(raw_size), 0) FROM blobs").getInt64());
      SQLite::Statement blobs(in, "SELECT b.id, (SELECT min(model || '@' || number) FROM bundle_versions v WHERE "
                                  "v.blob_id = b.id) FROM blobs b ORDER BY b.id");
      while (blobs.executeStep()) {
        const std::int64_t id = blobs.getColumn(0).getInt64();
        const std::string owner = fmt::format("{} in bundle '{}'", blobs.getColumn(1).getString(), name);
        detail::BlobStore(in).read(id, owner, [&](const char*, std::size_t n) {
          done += n;
          if (progress) progress(done, total);
        }, {});
      }
    }

    std::lock_guard lock(impl_->mutex);
    SQLite::Database& db = *impl_->db;
    SQLite::Transaction txn(db, SQLite::TransactionBehavior::IMMEDIATE);
    ImportReport report;
    const std::string at = impl_->now();
    const std::string actor = impl_->options.default_actor;
    std::map<std::int64_t, std::int64_t> blob_map;  // bundle blob id -> registry blob id
    std::map<std::int64_t, std::int64_t> last_before;  // model id -> last_number before this import
    auto blob_sha_of = [&](std::int64_t version_id) {
      SQLite::Statement q(db, "SELECT b.sha256 FROM versions v JOIN blobs b ON b.id = v.blob_id WHERE v.id = ?");
      q.bind(1, version_id);
      q.executeStep();
      return q.getColumn(0).getString();
    };
    for (const auto& bv : versions) {
      const std::string where = fmt::format("{}@{}", bv.model, bv.number);
      std::int64_t mid = 0;
      std::int64_t last_number = 0;
      if (auto existing = impl_->model_id(bv.model)) {
        mid = *existing;
        auto [lit, fresh_model] = last_before.try_emplace(mid, 0);
        if (fresh_model) {
          SQLite::Statement q(db, "SELECT last_number FROM models WHERE id = ?");
          q.bind(1, mid);
          q.executeStep();
          lit->second = q.getColumn(0).getInt64();
        }
        last_number = lit->second;
      } else {
        SQLite::Statement q(db, "INSERT INTO models(name, created_at) VALUES (?, ?)");
        q.bind(1, bv.model);
        q.bind(2, at);
        q.exec();
        mid = db.getLastInsertRowid();
        last_before[mid] = 0;
      }
      if (auto here = impl_->row_by_number(mid, bv.number)) {
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
      if (bv.number <= last_number) {
        throw Error(Errc::conflict, fmt::format("{} was deleted here and version numbers are never reused; nothing "
                                                "was imported",
                                                where));
      }
      if (bv.spec.label) {
        SQLite::Statement q(db, "SELECT number FROM versions WHERE model_id = ? AND label = ?");
        q.bind(1, mid);
        q.bind(2, *bv.spec.label);
        if (q.executeStep()) {
          throw Error(Errc::conflict, fmt::format("{}: label '{}' is already taken here by {}@{}; nothing was imported",
                                                  where, *bv.spec.label, bv.model, q.getColumn(0).getInt64()));
        }
      }
      // The blob: reuse identical bytes, else copy the chunks as stored.
      auto [bit, fresh] = blob_map.try_emplace(bv.blob_id, 0);
      if (fresh) {
        SQLite::Statement same(db, "SELECT id FROM blobs WHERE sha256 = ?");
        same.bind(1, bv.sha256);
        if (same.executeStep()) {
          bit->second = same.getColumn(0).getInt64();
        } else {
          const std::int64_t id = db.execAndGet("SELECT coalesce(max(id), 0) + 1 FROM blobs").getInt64();
          detail::BlobStore(db).copy_from(in, bv.blob_id, id, at);
          bit->second = id;
        }
      }
      // Lineage where the parent exists here with the same bytes.
      std::vector<std::pair<std::int64_t, std::string>> parents;
      for (const auto& [pmodel, pnumber, relation, psha] : bv.parents) {
        std::optional<VersionRow> prow;
        if (auto pmid = impl_->model_id(pmodel)) prow = impl_->row_by_number(*pmid, pnumber);
        if (prow && blob_sha_of(prow->id) == psha) {
          parents.emplace_back(prow->id, relation);
        } else {
          report.dropped_lineage.push_back(fmt::format("{} <- {}@{} ({})", where, pmodel, pnumber, relation));
        }
      }
      SQLite::Statement issue(db, "UPDATE models SET last_number = max(last_number, ?) WHERE id = ?");
      issue.bind(1, bv.number);
      issue.bind(2, mid);
      issue.exec();
      const std::int64_t vid = impl_->insert_version(mid, bv.number, bv.spec, parents, bit->second, bv.created_at,
                                                     bv.created_by.empty() ? actor : bv.created_by,
                                                     bv.probe ? &*bv.probe : nullptr);
      if (bv.archived) {
        SQLite::Statement q(db, "UPDATE versions SET status = 'archived' WHERE id = ?");
        q.bind(1, vid);
        q.exec();
      }
      impl_->record_event(mid, EventKind::register_version, bv.number, std::nullopt, std::nullopt, actor, "",
                          fmt::format("imported from bundle {} sha256={}", name, bv.sha256));
      report.imported.push_back({bv.model, bv.number});
    }
    txn.commit();
    return report;
  });
}

}  // namespace modelreg
