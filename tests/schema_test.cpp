// The invariants hold against a user with a raw SQL connection (as in the sqlite3 shell), and the
// example queries in README.md run as written in the sqlite3 shell.
#include <cstdio>
#include <fstream>
#include <sstream>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "test_support.hpp"

using namespace modelreg;
using test::ref;
using test::spec;

namespace {

struct Fixture {
  test::TempDir dir;
  std::filesystem::path db = dir / "r.db";
  std::chrono::system_clock::time_point now = std::chrono::system_clock::from_time_t(1'795'000'000);  // 2026-11-18
  Registry reg{db, [this] {
                 Options o;
                 o.clock = [this] { return now += std::chrono::hours(1); };
                 o.default_actor = "ops";
                 return o;
               }()};

  Fixture() {
    for (int i = 1; i <= 3; ++i) {
      NewVersion s = spec("fraud");
      s.metrics = {{"f1", 0.80 + i * 0.02}};
      if (i > 1) s.parents = {{ModelRef::number("fraud", i - 1), "retrained_from"}};
      reg.register_bytes(s, fmt::format("fraud {}", i));
    }
    NewVersion p = spec("pricing");
    p.metrics = {{"f1", 0.7}};
    reg.register_bytes(p, "pricing 1");
    reg.promote(ref("fraud@1"));
    reg.promote(ref("fraud@2"));
  }

  // Runs SQL through a raw connection; returns the error message, or "" when it succeeded.
  std::string try_sql(const std::string& sql) {
    try {
      auto d = test::raw(db);
      d.exec(sql);
      return "";
    } catch (const SQLite::Exception& e) {
      return e.what();
    }
  }
};

std::string shell(const std::filesystem::path& db, const std::string& sql) {
  test::TempDir tmp;
  const auto file = tmp / "q.sql";
  std::ofstream(file) << sql;
  const std::string cmd = fmt::format("sqlite3 -bail -separator '|' '{}' < '{}' 2>&1", db.string(), file.string());
  std::FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buffer[4096];
  while (std::size_t n = std::fread(buffer, 1, sizeof buffer, p)) out.append(buffer, n);
  const int status = ::pclose(p);
  INFO(out);
  REQUIRE(status == 0);
  return out;
}

}  // namespace

TEST_CASE_FIXTURE(Fixture, "the schema refuses a second active version of a model") {
  const auto error = try_sql("UPDATE versions SET is_active = 1 WHERE number = 3 AND model_id = "
                             "(SELECT id FROM models WHERE name = 'fraud')");
  CHECK(error.find("UNIQUE constraint failed") != std::string::npos);
  CHECK(reg.get(ref("fraud@active")).id.number == 2);
}

TEST_CASE_FIXTURE(Fixture, "the schema refuses an archived active version") {
  CHECK(try_sql("UPDATE versions SET status = 'archived' WHERE is_active = 1").find("CHECK constraint failed") !=
        std::string::npos);
}

TEST_CASE_FIXTURE(Fixture, "the schema refuses changes to a committed version's content") {
  const char* attempts[] = {
      "UPDATE versions SET blob_id = (SELECT max(id) FROM blobs) WHERE number = 1",
      "UPDATE versions SET number = 9 WHERE number = 1",
      "UPDATE versions SET notes = 'rewritten' WHERE number = 1",
      "UPDATE metrics SET value = 0.99",
      "DELETE FROM metrics",
      "INSERT INTO metrics(version_id, name, value) SELECT id, 'extra', 1 FROM versions LIMIT 1",
      "UPDATE lineage SET relation = 'other'",
      "DELETE FROM lineage",
      "INSERT INTO features(version_id, position, name, dtype) SELECT id, 0, 'x', 'float64' FROM versions LIMIT 1",
      "UPDATE blobs SET sha256 = replace(sha256, 'a', 'b')",
      "UPDATE blob_chunks SET data = x'00'",
      "DELETE FROM blob_chunks",
      "INSERT INTO blob_chunks(blob_id, seq, raw_size, checksum, data) SELECT id, 99, 1, 0, x'00' FROM blobs LIMIT 1",
      "DELETE FROM versions WHERE number = 1",
      "DELETE FROM models",
      "UPDATE models SET last_number = 0",
  };
  for (const char* sql : attempts) {
    CAPTURE(sql);
    CHECK_FALSE(try_sql(sql).empty());
  }
  CHECK(reg.get(ref("fraud@1")).metrics.at("f1") == doctest::Approx(0.82));
  for (const char* r : {"fraud@1", "fraud@2", "fraud@3", "pricing@1"}) CHECK_NOTHROW(reg.verify(ref(r)));
}

TEST_CASE_FIXTURE(Fixture, "blob chunks change only inside a repair, which keeps the blob's id and checksum") {
  const std::string blob = "(SELECT blob_id FROM versions WHERE number = 1 LIMIT 1)";
  const std::string sha = "(SELECT sha256 FROM blobs WHERE id = " + blob + ")";
  const std::string open = "INSERT INTO blob_repairs(blob_id, sha256, reason, repaired_at, repaired_by) VALUES (" +
                           blob + ", " + sha + ", 'test', 'now', 'ops');";
  const std::string attempts[] = {
      // No repair in progress: every change to a committed blob is refused, as before.
      "UPDATE blobs SET stored_size = 1 WHERE id = " + blob,
      "DELETE FROM blob_chunks WHERE blob_id = " + blob,
      // A repair must start in progress and name an existing blob by its id and checksum.
      "INSERT INTO blob_repairs(blob_id, sha256, reason, repaired_at, repaired_by, in_progress) VALUES (" + blob +
          ", " + sha + ", 'x', 'now', 'ops', 0)",
      "INSERT INTO blob_repairs(blob_id, sha256, reason, repaired_at, repaired_by) VALUES (" + blob + ", '" +
          std::string(64, 'a') + "', 'x', 'now', 'ops')",
      "INSERT INTO blob_repairs(blob_id, sha256, reason, repaired_at, repaired_by) VALUES (9999, " + sha +
          ", 'x', 'now', 'ops')",
      // Inside a repair the blob still keeps its id, checksum and creation time, and chunks are
      // replaced, never edited.
      "BEGIN; " + open + " UPDATE blobs SET sha256 = '" + std::string(64, 'b') + "' WHERE id = " + blob + "; COMMIT",
      "BEGIN; " + open + " UPDATE blobs SET created_at = 'x' WHERE id = " + blob + "; COMMIT",
      "BEGIN; " + open + " UPDATE blob_chunks SET data = x'00' WHERE blob_id = " + blob + "; COMMIT",
      // Another blob is not unsealed by this blob's repair.
      "BEGIN; " + open + " DELETE FROM blob_chunks WHERE blob_id != " + blob + "; COMMIT",
      // Two repairs at once.
      "BEGIN; " + open + " " + open + " COMMIT",
  };
  for (const auto& sql : attempts) {
    CAPTURE(sql);
    CHECK_FALSE(try_sql(sql).empty());
    try_sql("ROLLBACK");
  }
  CHECK(test::raw(db).execAndGet("SELECT count(*) FROM blob_repairs").getInt() == 0);
  // A completed repair record is immutable and never deleted.
  CHECK(try_sql("BEGIN; " + open + " UPDATE blob_repairs SET in_progress = 0; COMMIT").empty());
  CHECK_FALSE(try_sql("UPDATE blob_repairs SET reason = 'rewritten'").empty());
  CHECK_FALSE(try_sql("UPDATE blob_repairs SET in_progress = 1").empty());
  CHECK_FALSE(try_sql("DELETE FROM blob_repairs").empty());
  for (const char* r : {"fraud@1", "fraud@2", "fraud@3", "pricing@1"}) CHECK_NOTHROW(reg.verify(ref(r)));
  // A repair left in progress (possible only by hand) is reported by check.
  CHECK(try_sql("INSERT INTO blob_repairs(blob_id, sha256, reason, repaired_at, repaired_by) VALUES (" + blob + ", " +
                sha + ", 'left open', 'now', 'ops')")
            .empty());
  const IntegrityReport report = reg.check();
  CHECK_FALSE(report.ok());
  REQUIRE(report.database_problems.size() == 1);
  CHECK(report.database_problems[0].find("left in progress") != std::string::npos);
}

TEST_CASE_FIXTURE(Fixture, "the events table is append-only") {
  CHECK(try_sql("UPDATE events SET actor = 'mallory'").find("append-only") != std::string::npos);
  CHECK(try_sql("DELETE FROM events").find("append-only") != std::string::npos);
  CHECK(reg.history("fraud").front().actor == "ops");
}

TEST_CASE_FIXTURE(Fixture, "a version row cannot be forged with an unissued number or a wrong feature count") {
  CHECK_FALSE(try_sql("INSERT INTO versions(model_id, number, format, blob_id, created_at, created_by) "
                      "SELECT id, 99, 'bytes', 1, 'now', 'me' FROM models WHERE name = 'fraud'")
                  .empty());
  CHECK_FALSE(try_sql("UPDATE models SET last_number = 4 WHERE name = 'fraud'; "
                      "INSERT INTO versions(model_id, number, format, blob_id, feature_count, created_at, created_by) "
                      "SELECT id, 4, 'bytes', 1, 3, 'now', 'me' FROM models WHERE name = 'fraud'")
                  .empty());
}

TEST_CASE_FIXTURE(Fixture, "the views read as names and numbers") {
  auto d = test::raw(db, false);
  SQLite::Statement q(d, "SELECT model, version, active, status, raw_size FROM model_versions ORDER BY model, version");
  std::vector<std::string> rows;
  while (q.executeStep()) {
    rows.push_back(fmt::format("{}@{} {} {} {}", q.getColumn(0).getString(), q.getColumn(1).getInt(),
                               q.getColumn(2).getInt(), q.getColumn(3).getString(), q.getColumn(4).getInt()));
  }
  CHECK(rows == std::vector<std::string>{"fraud@1 0 ready 7", "fraud@2 1 ready 7", "fraud@3 0 ready 7",
                                         "pricing@1 0 ready 9"});
  CHECK(d.execAndGet("SELECT group_concat(child_version || '<' || parent_version) FROM lineage_edges").getString() ==
        "2<1,3<2");
  CHECK(d.execAndGet("SELECT active_version FROM model_summary WHERE model = 'fraud'").getInt() == 2);
  CHECK(d.execAndGet("SELECT count(*) FROM model_events WHERE kind = 'promote'").getInt() == 2);
  CHECK(d.execAndGet("SELECT value FROM version_metrics WHERE model = 'fraud' AND version = 3").getDouble() ==
        doctest::Approx(0.86));
}

TEST_CASE_FIXTURE(Fixture, "the README's example queries run as written in the sqlite3 shell") {
  const char* root = std::getenv("MODELREG_SOURCE_ROOT");
  REQUIRE(root != nullptr);
  std::ifstream readme(std::filesystem::path(root) / "README.md");
  REQUIRE(readme.good());
  std::stringstream text;
  text << readme.rdbuf();
  // Each example is a ```sql block directly under a "#### Example: <title>" heading.
  std::map<std::string, std::string> examples;
  const std::string s = text.str();
  const std::string heading = "#### Example: ";
  for (auto at = s.find(heading); at != std::string::npos; at = s.find(heading, at + 1)) {
    const auto title_end = s.find('\n', at);
    const auto open = s.find("```sql\n", title_end);
    const auto close = s.find("```", open + 7);
    REQUIRE(open != std::string::npos);
    REQUIRE(close != std::string::npos);
    examples[s.substr(at + heading.size(), title_end - at - heading.size())] = s.substr(open + 7, close - open - 7);
  }
  REQUIRE(examples.size() == 4);

  // Ancestry of fraud@3: fraud@2 at depth 1, fraud@1 at depth 2.
  const std::string ancestry = shell(db, examples.at("the ancestry of a version"));
  CHECK(ancestry == "fraud|2|retrained_from|1\nfraud|1|retrained_from|2\n");
  // Best version by f1 per model.
  const std::string best = shell(db, examples.at("the best version of each model by a metric"));
  CHECK(best == "fraud|3|0.86\npricing|1|0.7\n");
  // The clock starts at 2026-11-18T11:06:40Z and moves an hour at every reading; fraud@1 was
  // promoted at 21:06:40 and fraud@2 at 22:06:40, so at the README's 21:30 fraud@1 was active.
  const std::string active_then = shell(db, examples.at("what was active at a given time"));
  CHECK(active_then == "fraud|1|promote|2026-11-18T21:06:40.000Z|ops\n");
  CHECK(reg.history("fraud").back().at == "2026-11-18T22:06:40.000Z");
  // champion: not yet set at the README's time, then fraud@1 (moved at 00:06:40, before it), then
  // fraud@3 (02:06:40, after it), then removed; at a later time, removed (a NULL version).
  const std::string& alias_query = examples.at("what an alias pointed to at a given time");
  CHECK(shell(db, alias_query).empty());
  reg.set_alias(ref("fraud@1"), "champion", {.reason = "first"});
  reg.set_alias(ref("fraud@3"), "champion");
  CHECK(shell(db, alias_query) == "1|alias_set|2026-11-19T00:06:40.000Z|ops|first\n");
  reg.remove_alias("fraud", "champion");
  std::string later = alias_query;
  later.replace(later.find("2026-11-19T01:00:00Z"), 20, "2026-11-20");
  CHECK(shell(db, later) == "|alias_remove|2026-11-19T03:06:40.000Z|ops|\n");
  CHECK(shell(db, alias_query) == "1|alias_set|2026-11-19T00:06:40.000Z|ops|first\n");
}
