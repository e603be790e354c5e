// Registry::export_bundle / import_bundle (lib/src/store/bundle.cpp; format: docs/format.md,
// "Bundles"). Each bad bundle is an exported one changed with SQLite, as a hostile sender would;
// each refusal is checked for its code, its message, and a target whose every table is unchanged.
#include <array>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <thread>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "test_support.hpp"

using namespace modelreg;
using test::ref;
using test::spec;

namespace {

bool contains(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

// Options whose clock ticks one second per call, from a fixed start, so that times are predictable.
Options ticking(std::int64_t step_seconds = 1) {
  Options o;
  auto t = std::make_shared<std::int64_t>(1'790'000'000);
  o.clock = [t, step_seconds] {
    *t += step_seconds;
    return std::chrono::system_clock::time_point(std::chrono::seconds(*t));
  };
  o.default_actor = "ci-bot";
  o.chunk_size = 64u << 10;  // several chunks per blob
  return o;
}

const std::string kBase = test::random_bytes(200'000, 1);        // 4 chunks, zstd that does not compress
const std::string kFraud1 = test::compressible_bytes(150'000, 2);  // 3 chunks, zstd
const std::string kFraud2 = test::compressible_bytes(20'000, 3);   // 1 chunk
const std::string kFraud3 = test::random_bytes(140'000, 4);        // 3 chunks, stored raw (level 0)

struct Fixture {
  test::TempDir dir;
  std::filesystem::path source_db = dir / "source.db";
  std::filesystem::path target_db = dir / "target.db";
  Registry source{source_db, ticking()};
  Registry target{target_db, ticking()};
  std::string other_sha;
  int bundles = 0;

  Fixture() {
    source.register_bytes(spec("base"), kBase);
    NewVersion f1 = spec("fraud");
    f1.parents = {{ref("base@1"), "derived_from"}};
    f1.metrics = {{"f1", 0.8}};
    f1.features = {{"amount", "float64"}, {"hour", "int32"}};
    source.register_bytes(f1, kFraud1);
    NewVersion f2 = spec("fraud");
    f2.parents = {{ref("fraud@1"), "retrained_from"}};
    f2.label = "v2.0.0";
    f2.params = {{"C", "1.0"}};
    f2.tags = {{"team", "risk"}};
    f2.datasets = {{"s3://b/train.csv", std::string(64, 'a'), "train"}};
    f2.notes = "second";
    f2.created_by = "alice";
    source.register_bytes(f2, kFraud2);
    NewVersion f3 = spec("fraud", "onnx");
    f3.parents = {{ref("fraud@2"), "fine_tuned_from"}};
    f3.level = 0;
    source.register_bytes(f3, kFraud3);
    source.archive(ref("fraud@1"));
    other_sha = target.register_bytes(spec("other"), "already here").blob.sha256;
  }

  // A new bundle of `refs` (all four versions by default), then `sql` run on it.
  std::filesystem::path bundle(const std::string& sql = "",
                               std::vector<std::string> refs = {"base@1", "fraud@1", "fraud@2", "fraud@3"}) {
    const auto path = dir / fmt::format("b{}.mrb", bundles++);
    std::vector<ModelRef> parsed;
    for (const auto& r : refs) parsed.push_back(ref(r));
    source.export_bundle(parsed, path);
    if (!sql.empty()) edit(path, sql);
    return path;
  }

  static void edit(const std::filesystem::path& bundle, const std::string& sql) {
    SQLite::Database b(bundle, SQLite::OPEN_READWRITE);
    b.exec(sql);
  }

  // The import is refused with `code` and a message containing `needle`, in our words only, and
  // every table of the target is as it was.
  void refused(const std::filesystem::path& bundle, Errc code, const std::string& needle) {
    const std::string before = test::dump(target_db);
    std::string message;
    std::optional<Errc> got;
    try {
      target.import_bundle(bundle);
    } catch (const Error& e) {
      got = e.code();
      message = e.what();
    }
    INFO("message: ", message);
    REQUIRE(got.has_value());
    CHECK(*got == code);
    CHECK(contains(message, needle));
    for (const char* raw : {"sqlite", "SQLITE", "file is not a database", "disk image", "json.exception",
                            "zstd error", "Unknown frame"}) {
      CHECK_FALSE(contains(message, raw));
    }
    CHECK(test::dump(target_db) == before);
  }
};

const char* const kSha = "(SELECT b.sha256 FROM blobs b JOIN bundle_versions v ON v.blob_id = b.id WHERE v.model = '{}' "
                         "AND v.number = {})";

}  // namespace

// ---- the happy path ---------------------------------------------------------------------------

TEST_CASE_FIXTURE(Fixture, "a bundle round trip keeps every version's bytes, metadata, lineage and status") {
  const auto b = bundle();
  const ImportReport r = target.import_bundle(b);
  CHECK(r.imported == std::vector<VersionId>{{"base", 1}, {"fraud", 1}, {"fraud", 2}, {"fraud", 3}});
  CHECK(r.already_present.empty());
  CHECK(r.dropped_lineage.empty());
  for (const auto& [text, bytes] : std::vector<std::pair<std::string, std::string>>{
           {"base@1", kBase}, {"fraud@1", kFraud1}, {"fraud@2", kFraud2}, {"fraud@3", kFraud3}}) {
    INFO(text);
    const ModelVersion mine = source.get(ref(text));
    const ModelVersion theirs = target.get(ref(text));
    CHECK(target.load_bytes(ref(text)) == bytes);
    CHECK(theirs.blob.sha256 == mine.blob.sha256);
    CHECK(theirs.blob.chunk_count == mine.blob.chunk_count);
    CHECK(theirs.blob.codec == mine.blob.codec);
    CHECK(theirs.created_at == mine.created_at);
    CHECK(theirs.created_by == mine.created_by);
    CHECK(theirs.label == mine.label);
    CHECK(theirs.metrics == mine.metrics);
    CHECK(theirs.params == mine.params);
    CHECK(theirs.features == mine.features);
    CHECK(theirs.tags == mine.tags);
    CHECK(theirs.datasets == mine.datasets);
    CHECK(theirs.notes == mine.notes);
    CHECK(theirs.status == mine.status);
    CHECK(theirs.parents == mine.parents);
  }
  CHECK(target.get(ref("fraud@1")).status == VersionStatus::archived);
  CHECK(target.check().ok());
  // Again: everything is already there, and nothing changes.
  const std::string before = test::dump(target_db);
  const ImportReport again = target.import_bundle(b);
  CHECK(again.imported.empty());
  CHECK(again.already_present.size() == 4);
  CHECK(test::dump(target_db) == before);
  // The next version of an imported model gets the next number.
  CHECK(target.register_bytes(spec("fraud"), "next").id.number == 4);
}

TEST_CASE("export writes parents before children by lineage, whatever the clocks said") {
  test::TempDir dir;
  // A clock that runs backwards: each version is "created" before its parent.
  Registry source(dir / "s.db", ticking(-10));
  source.register_bytes(spec("base"), "base bytes");
  NewVersion child = spec("fraud");
  child.parents = {{ref("base@1"), "derived_from"}};
  source.register_bytes(child, "child bytes");
  NewVersion grandchild = spec("churn");
  grandchild.parents = {{ref("fraud@1"), "derived_from"}};
  source.register_bytes(grandchild, "grandchild bytes");
  REQUIRE(source.get(ref("churn@1")).created_at < source.get(ref("base@1")).created_at);
  source.export_bundle({ref("churn@1"), ref("fraud@1"), ref("base@1")}, dir / "b.mrb");
  {
    SQLite::Database b(dir / "b.mrb", SQLite::OPEN_READONLY);
    CHECK(b.execAndGet("SELECT group_concat(model, ',') FROM (SELECT model FROM bundle_versions ORDER BY position)")
              .getString() == "base,fraud,churn");
  }
  Registry target(dir / "t.db");
  CHECK(target.import_bundle(dir / "b.mrb").imported.size() == 3);
  CHECK(target.get(ref("churn@1")).parents == source.get(ref("churn@1")).parents);
}

TEST_CASE_FIXTURE(Fixture, "import orders by lineage too: a bundle listing children first imports whole") {
  const auto b = bundle("UPDATE bundle_versions SET position = 100 - position");
  CHECK(target.import_bundle(b).imported.size() == 4);
  CHECK(target.get(ref("fraud@3")).parents == source.get(ref("fraud@3")).parents);
  CHECK(target.check().ok());
}

// ---- 1. the bytes written are the bytes verified ----------------------------------------------

TEST_CASE_FIXTURE(Fixture, "a bundle never plants bytes under another blob's SHA-256") {
  // Declares the SHA-256 of a blob the target holds.
  refused(bundle(fmt::format("UPDATE blobs SET sha256 = '{}' WHERE id = (SELECT blob_id FROM bundle_versions WHERE "
                             "model = 'fraud' AND number = 3)",
                             other_sha)),
          Errc::corruption, "SHA-256");
  // Declares any other SHA-256.
  refused(bundle("UPDATE blobs SET sha256 = '" + std::string(64, 'a') + "' WHERE id = 4"), Errc::corruption,
          "SHA-256");
  // A whole chunk of another blob, with its own (valid) checksum: every chunk passes, the whole does not.
  refused(bundle("UPDATE blob_chunks SET (data, checksum) = (SELECT data, checksum FROM blob_chunks c WHERE c.blob_id "
                 "= 1 AND c.seq = 0) WHERE blob_id = 2 AND seq = 0"),
          Errc::corruption, "SHA-256");
  // A flipped byte inside a stored chunk, and a declared size that is not the real one.
  auto flipped = bundle();
  test::flip_chunk_byte(flipped, "SELECT rowid FROM blob_chunks WHERE blob_id = 2 AND seq = 1", 100);
  refused(flipped, Errc::corruption, "chunk 2 of 3 fails its checksum");
  refused(bundle("UPDATE blobs SET raw_size = raw_size - 1 WHERE id = 4"), Errc::corruption, "fraud@3");
  refused(bundle("UPDATE blob_chunks SET raw_size = raw_size - 1 WHERE blob_id = 3"), Errc::corruption,
          "declares 19999 raw bytes");
  refused(bundle("UPDATE blobs SET stored_size = stored_size + 1 WHERE id = 3"), Errc::corruption, "stored");
}

TEST_CASE_FIXTURE(Fixture, "a bundle file changed after its bytes were verified cannot change what was imported") {
  const auto b = bundle();
  // kFraud3 is stored raw: its bytes are in the file as they are. Once every chunk has been read
  // (the last progress call), they are overwritten in place, behind SQLite's back.
  int replaced = 0;
  auto tamper = [&](std::uint64_t done, std::optional<std::uint64_t> total) {
    if (!total || done != *total || replaced > 0) return;
    std::fstream f(b, std::ios::in | std::ios::out | std::ios::binary);
    const std::string content((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    f.clear();
    for (std::size_t piece = 0; piece + 64 <= kFraud3.size(); piece += 1024) {
      const std::string needle = kFraud3.substr(piece, 64);
      for (auto at = content.find(needle); at != std::string::npos; at = content.find(needle, at + 1)) {
        f.seekp(static_cast<std::streamoff>(at));
        f.write(std::string(needle.size(), 'X').data(), static_cast<std::streamsize>(needle.size()));
        ++replaced;
      }
    }
    f.flush();
  };
  target.import_bundle(b, tamper);
  REQUIRE(replaced > 0);
  CHECK(target.load_bytes(ref("fraud@3")) == kFraud3);
  CHECK(target.check().ok());
}

// ---- 2. the schema exactly, and bounded work ----------------------------------------------------

TEST_CASE_FIXTURE(Fixture, "a bundle with anything but the exporter's schema is refused before it is read") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"CREATE TABLE x (a)", "unexpected table 'x'"},
      {"CREATE VIEW v AS SELECT 1", "unexpected view 'v'"},
      {"CREATE TRIGGER t AFTER INSERT ON bundle_info BEGIN SELECT 1; END", "unexpected trigger 't'"},
      {"CREATE INDEX i ON bundle_versions(metadata)", "unexpected index 'i'"},
      {"ALTER TABLE blobs ADD COLUMN extra TEXT", "table 'blobs' has an unexpected column 'extra'"},
      {"ALTER TABLE blob_chunks DROP COLUMN checksum", "table 'blob_chunks' lacks the column 'checksum'"},
      {"DROP TABLE bundle_info", "table 'bundle_info' is missing"},
      // A view in a table's place that would never end if it were read.
      {"ALTER TABLE bundle_versions RENAME TO old; CREATE VIEW bundle_versions AS WITH RECURSIVE n(i) AS (SELECT 1 "
       "UNION ALL SELECT i + 1 FROM n) SELECT i AS position, 'm' AS model, i AS number, 1 AS blob_id, '{}' AS "
       "metadata FROM n",
       "unexpected table 'old'"},
      {"DROP TABLE bundle_versions; CREATE VIEW bundle_versions AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT "
       "i + 1 FROM n) SELECT i AS position, 'm' AS model, i AS number, 1 AS blob_id, '{}' AS metadata FROM n",
       "'bundle_versions' is a view, not a table"},
      // Same columns, other definition (a collation that changes what UNIQUE means).
      {"CREATE TABLE bi (key TEXT PRIMARY KEY COLLATE NOCASE, value TEXT NOT NULL); INSERT INTO bi SELECT * FROM "
       "bundle_info; DROP TABLE bundle_info; ALTER TABLE bi RENAME TO bundle_info",
       "table 'bundle_info' is not defined as modelreg defines it"},
      {"INSERT INTO bundle_info VALUES ('extra', 'x')", "bundle_info holds 6 rows"},
      {"UPDATE bundle_info SET key = 'other' WHERE key = 'created_by'", "unexpected key 'other'"},
      {"UPDATE bundle_info SET value = 'zip' WHERE key = 'format'", "'format' is not 'modelreg-bundle'"},
  };
  for (const auto& [sql, needle] : cases) {
    INFO(sql);
    refused(bundle(sql), Errc::corruption, needle);
  }
}

TEST_CASE_FIXTURE(Fixture, "a bundle cannot make import spin or allocate without bound") {
  refused(bundle("INSERT INTO bundle_versions(position, model, number, blob_id, metadata) WITH RECURSIVE n(i) AS "
                 "(SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10001) SELECT 1000 + i, 'bulk', i, 1, '{}' FROM n"),
          Errc::invalid_argument, "more than the 10000 one import takes");
  refused(bundle("UPDATE bundle_versions SET metadata = json_set(metadata, '$.notes', replace(hex(zeroblob(8500000)), "
                 "'0', 'n')) WHERE model = 'base'"),
          Errc::corruption, "more than the 16 MiB a version may have");
  refused(bundle("UPDATE bundle_versions SET metadata = '" + std::string(5000, '[') + std::string(5000, ']') +
                 "' WHERE model = 'base'"),
          Errc::corruption, "the metadata of base@1 is nested deeper than 8 levels");
  refused(bundle("UPDATE bundle_versions SET metadata = '{' WHERE model = 'base'"), Errc::corruption,
          "the metadata of base@1 is not a JSON object");
  refused(bundle("UPDATE bundle_versions SET metadata = json_set(metadata, '$.metrics', json('{\"f1\": \"x\"}')) "
                 "WHERE model = 'fraud' AND number = 1"),
          Errc::corruption, "the metadata of fraud@1 has a missing or malformed 'metrics'");
  refused(bundle("UPDATE bundle_versions SET metadata = json_set(metadata, '$.run', 'x') WHERE model = 'base'"),
          Errc::corruption, "unexpected field 'run'");
  refused(bundle("UPDATE blobs SET chunk_count = 1000000000000 WHERE id = 1"), Errc::corruption,
          "declares 200000 raw bytes in 1000000000000 chunks");
  refused(bundle("UPDATE blobs SET raw_size = 9000000000000000000, chunk_count = 137329101562500 WHERE id = 1"),
          Errc::corruption, "blob_chunks holds 11 chunks, but its blobs declare");
  refused(bundle("DELETE FROM blob_chunks WHERE blob_id = 1 AND seq = 3"), Errc::corruption, "blob_chunks holds");
  refused(bundle("UPDATE bundle_versions SET metadata = json_set(metadata, '$.parents', json_array(json_object('model', "
                 "'fraud', 'number', 3, 'relation', 'loop', 'sha256', " +
                 fmt::format(fmt::runtime(kSha), "fraud", 3) + "))) WHERE model = 'base'"),
          Errc::corruption, "forms a cycle");
}

// ---- 3. version numbers in range --------------------------------------------------------------

TEST_CASE_FIXTURE(Fixture, "imported version numbers stay within 1..2^31") {
  for (const char* number : {"9223372036854775807", "2147483649", "0", "-1"}) {
    INFO(number);
    refused(bundle(fmt::format("UPDATE bundle_versions SET number = {}", number), {"base@1"}), Errc::corruption,
            "outside 1..2147483648");
  }
  refused(bundle("UPDATE bundle_versions SET number = 7.5", {"base@1"}), Errc::corruption, "not an integer");
  // The top of the range imports, and `register` goes on after it.
  target.import_bundle(bundle("UPDATE bundle_versions SET number = 2147483648", {"base@1"}));
  CHECK(target.register_bytes(spec("base"), "next").id.number == 2147483649);
}

// ---- 4. nothing dropped, all or nothing -------------------------------------------------------

TEST_CASE_FIXTURE(Fixture, "a version whose blob is missing from the bundle fails the whole import") {
  refused(bundle("DELETE FROM blob_chunks WHERE blob_id = 3; DELETE FROM blobs WHERE id = 3"), Errc::corruption,
          "the blob of fraud@2 is missing from the bundle");
  refused(bundle("UPDATE bundle_versions SET blob_id = 99 WHERE model = 'base'"), Errc::corruption,
          "the blob of base@1 is missing from the bundle");
  refused(bundle("DELETE FROM bundle_versions WHERE model = 'base'"), Errc::corruption, "is used by no version");
}

TEST_CASE_FIXTURE(Fixture, "a lineage edge that cannot be kept fails the whole import") {
  // fraud@2's parent fraud@1 is neither in the bundle nor in the target.
  refused(bundle("", {"base@1", "fraud@2", "fraud@3"}), Errc::conflict,
          "fraud@2: its parent fraud@1 (retrained_from) is neither in the bundle nor in this registry");
  // base@1 is here, with other bytes.
  target.register_bytes(spec("base"), "other base bytes");
  refused(bundle("", {"fraud@1"}), Errc::conflict, "fraud@1: its parent base@1 (derived_from) exists here with "
                                                   "different bytes");
  // The bundle's own parent with other bytes than the bundle holds.
  refused(bundle("UPDATE bundle_versions SET metadata = json_set(metadata, '$.parents[0].sha256', '" +
                 std::string(64, 'b') + "') WHERE model = 'fraud' AND number = 2"),
          Errc::corruption, "fraud@2 names its parent fraud@1 with sha256 bbbb");
}

TEST_CASE_FIXTURE(Fixture, "a failure after some blobs were written leaves the target as it was") {
  // The last blob (fraud@3's) is damaged: the other three were already inserted when it is read.
  auto damaged = bundle();
  test::flip_chunk_byte(damaged, "SELECT rowid FROM blob_chunks WHERE blob_id = 4 AND seq = 2", 5);
  refused(damaged, Errc::corruption, "the bytes of fraud@3 are corrupt: chunk 3 of 3 fails its checksum");
  // A conflict: fraud@1 is here with the same bytes and other metadata.
  target.register_bytes(spec("fraud"), kFraud1);
  refused(bundle(), Errc::conflict, "fraud@1 already exists here with different metadata");
}

// ---- 6. format versions and absurd sizes ------------------------------------------------------

TEST_CASE_FIXTURE(Fixture, "a bundle of another format version or with an absurd chunk size is refused") {
  refused(bundle("PRAGMA user_version = 0"), Errc::incompatible, "format version 0, which this modelreg does not read");
  refused(bundle("PRAGMA user_version = 2"), Errc::incompatible, "format version 2, newer than this modelreg reads");
  refused(bundle("UPDATE bundle_info SET value = '0' WHERE key = 'format_version'"), Errc::incompatible,
          "declares format version '0'");
  refused(bundle("PRAGMA application_id = 1"), Errc::corruption, "application id");
  refused(bundle("UPDATE blobs SET chunk_size = 1 WHERE id = 2"), Errc::corruption,
          "the blob of fraud@1 declares a chunk size of 1 bytes; modelreg writes 64 KiB to 256 MiB");
  refused(bundle("UPDATE blobs SET chunk_size = 1099511627776 WHERE id = 2"), Errc::corruption,
          "declares a chunk size of 1099511627776 bytes");
  refused(bundle("UPDATE blobs SET codec = 'lz4' WHERE id = 2"), Errc::corruption, "codec 'lz4'");
  std::ofstream(dir / "junk.mrb") << std::string(5000, 'j');
  refused(dir / "junk.mrb", Errc::corruption, "is not a valid modelreg bundle: it is not an SQLite file");
  std::ofstream(dir / "truncated.mrb") << test::random_bytes(100, 9);
  refused(dir / "truncated.mrb", Errc::corruption, "not a valid modelreg bundle");
}

TEST_CASE_FIXTURE(Fixture, "an import whose bytes are already here but rotten repairs them from the bundle") {
  // The target holds kFraud1 under another name; one stored byte of it rots.
  target.register_bytes(spec("copy"), kFraud1);
  test::flip_chunk_byte(target_db, "SELECT c.rowid FROM blob_chunks c JOIN versions v ON v.blob_id = c.blob_id "
                        "JOIN models m ON m.id = v.model_id WHERE m.name = 'copy' AND c.seq = 1", 7);
  CHECK_THROWS_AS(target.verify(ref("copy@1")), Error);
  target.import_bundle(bundle());
  // The bundle's verified bytes replaced the rotten copy: the old version and the imported one
  // share one sound blob.
  for (const char* r : {"copy@1", "fraud@1"}) {
    CAPTURE(r);
    CHECK_NOTHROW(target.verify(ref(r)));
    CHECK(target.load_bytes(ref(r)) == kFraud1);
  }
  CHECK(target.get(ref("copy@1")).blob.sha256 == target.get(ref("fraud@1")).blob.sha256);
  CHECK(test::raw(target_db, false).execAndGet("SELECT count(*) FROM blob_repairs WHERE in_progress = 0").getInt() == 1);
  CHECK(target.check().ok());
}

TEST_CASE_FIXTURE(Fixture, "exports racing to one path: one complete bundle, the loser told why, nothing replaced") {
  // Two registries on one database (one Registry serializes its calls): two exporters at once.
  Registry other(source_db, ticking());
  const std::vector<ModelRef> refs = {ref("base@1"), ref("fraud@1"), ref("fraud@2"), ref("fraud@3")};
  const auto path = dir / "race.mrb";
  int both_won = 0, one_lost = 0;
  for (int round = 0; round < 40; ++round) {
    std::filesystem::remove(path);
    std::array<std::optional<Error>, 2> failed;
    std::array<Registry*, 2> exporters = {&source, &other};
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < 2; ++i) {
      threads.emplace_back([&, i] {
        try {
          exporters[i]->export_bundle(refs, path);
        } catch (const Error& e) {
          failed[i] = e;
        }
      });
    }
    for (auto& t : threads) t.join();
    REQUIRE_MESSAGE(!(failed[0] && failed[1]), failed[0]->what(), " / ", failed[1]->what());
    for (const auto& f : failed) {
      if (!f) continue;
      ++one_lost;
      INFO("message: ", f->what());
      CHECK(f->code() == Errc::already_exists);
      CHECK((contains(f->what(), "already exists") || contains(f->what(), "was created by someone else")));
      CHECK_FALSE(contains(f->what(), "sqlite"));
      CHECK_FALSE(contains(f->what(), "SQLITE"));
      CHECK_FALSE(contains(f->what(), "filesystem error"));
    }
    if (!failed[0] && !failed[1]) ++both_won;  // impossible: the second must not replace the first
    // The bundle is complete (it imports), and no temporary file is left beside it.
    test::TempDir fresh;
    Registry check(fresh / "check.db", ticking());
    CHECK(check.import_bundle(path).imported.size() == 4);
    for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
      CHECK(entry.path().filename().string().find("modelreg-partial") == std::string::npos);
    }
  }
  CHECK(both_won == 0);
  MESSAGE(one_lost, " of 40 rounds had a loser");
}

TEST_CASE_FIXTURE(Fixture, "export refuses the registry's own files and a directory") {
  for (const auto& own : {source_db, std::filesystem::path(source_db.string() + "-wal"),
                          std::filesystem::path(source_db.string() + "-journal")}) {
    CAPTURE(own);
    CHECK_THROWS_WITH_AS(source.export_bundle({ref("base@1")}, own), doctest::Contains("this registry's own file"),
                         Error);
  }
  CHECK_THROWS_WITH_AS(source.export_bundle({ref("base@1")}, dir.path()), doctest::Contains("is a directory"), Error);
}
