// Registry::query is bounded: time, rows, result bytes, single values and SQLite's memory. Each
// bound ends the query with Error(invalid_argument) naming the bound and how to raise it (never
// std::bad_alloc, never a hang), and the database is left exactly as it was.
#include <chrono>
#include <fstream>
#include <sstream>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "model_test_support.hpp"
#include "test_support.hpp"

using namespace modelreg;
using test::code_of;
using test::contains;
using test::message_of;

namespace {

// A recursive CTE of the integers 1, 2, 3...; unbounded unless `limit` is given.
std::string integers(std::string_view limit = "") {
  return fmt::format("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c{}{}) ", limit.empty() ? "" : " LIMIT ",
                     limit);
}

std::string file_bytes(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Every row of every table, in rowid order, plus the schema version: what "unchanged" means.
std::string contents(const std::filesystem::path& db) {
  auto d = test::raw(db, false);
  std::string all = fmt::format("user_version {}\n", d.execAndGet("PRAGMA user_version").getInt());
  SQLite::Statement tables(d, "SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name");
  while (tables.executeStep()) {
    const std::string name = tables.getColumn(0).getString();
    all += name + ": " + tables.getColumn(1).getString() + "\n";
    if (name.starts_with("sqlite_")) continue;
    SQLite::Statement rows(d, fmt::format("SELECT * FROM \"{}\"", name));
    while (rows.executeStep()) {
      for (int i = 0; i < rows.getColumnCount(); ++i) all += rows.getColumn(i).getString() + "|";
      all += "\n";
    }
  }
  return all;
}

struct Fixture {
  test::TempDir dir;
  std::filesystem::path db = dir / "r.db";
  Registry reg{db};

  Fixture() {
    auto s = test::spec("fraud");
    s.metrics = {{"f1", 0.8}};
    reg.register_bytes(s, "model bytes");
    reg.register_bytes(test::spec("fraud"), "more model bytes");
    reg.promote(test::ref("fraud@2"));
  }

  Errc code(const std::string& sql, const SqlOptions& o = {}) {
    return code_of([&] { (void)reg.query(sql, o); });
  }
  std::string message(const std::string& sql, const SqlOptions& o = {}) {
    return message_of([&] { (void)reg.query(sql, o); });
  }
};

}  // namespace

TEST_CASE("the default bounds suit an interactive query: documented values") {
  const SqlOptions o;
  CHECK(o.timeout == std::chrono::seconds(10));
  CHECK(o.max_rows == 1'000'000);
  CHECK(o.max_bytes == 256u << 20);
  CHECK(o.max_memory == 256u << 20);
}

TEST_CASE_FIXTURE(Fixture, "an unbounded recursive CTE ends at the row limit with an error, not bad_alloc") {
  const std::string sql = integers() + "SELECT x FROM c";
  // The reported case, with the default bounds.
  CHECK(code(sql) == Errc::invalid_argument);
  const std::string m = message(sql);
  CHECK(contains(m, "more than 1000000 rows"));
  CHECK(contains(m, "--max-rows"));
  CHECK(contains(m, "SqlOptions::max_rows"));
}

TEST_CASE_FIXTURE(Fixture, "the row limit admits exactly max_rows rows and refuses one more") {
  const SqlOptions o{.max_rows = 10};
  CHECK(reg.query(integers("10") + "SELECT x FROM c", o).rows.size() == 10);
  CHECK(contains(message(integers("11") + "SELECT x FROM c", o), "more than 10 rows"));
  // 0: no row limit.
  CHECK(reg.query(integers("5000") + "SELECT x FROM c", {.max_rows = 0}).rows.size() == 5000);
}

TEST_CASE_FIXTURE(Fixture, "a query that runs too long is stopped at the time limit") {
  // One row, never produced: only the clock can end it.
  const std::string sql = integers() + "SELECT count(*) FROM c";
  const auto start = std::chrono::steady_clock::now();
  const std::string m = message(sql, {.timeout = std::chrono::milliseconds(200)});
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(contains(m, "time limit of 200 ms"));
  CHECK(contains(m, "--timeout-ms"));
  CHECK(code(sql, {.timeout = std::chrono::milliseconds(50)}) == Errc::invalid_argument);
  CHECK(took < std::chrono::seconds(30));  // generous: only that it ended at all
  // Every statement shares the one deadline.
  CHECK(contains(message("SELECT 1; " + sql, {.timeout = std::chrono::milliseconds(50)}), "time limit"));
}

TEST_CASE_FIXTURE(Fixture, "no single value may grow past max_bytes: zeroblob, randomblob, printf, replace") {
  for (const char* sql : {"SELECT zeroblob(2e9)", "SELECT length(zeroblob(300000000))",
                          "SELECT randomblob(300000000)", "SELECT printf('%.*c', 1e9, 'x')",
                          "SELECT length(printf('%.*c', 300000000, 'x'))",
                          "SELECT replace(printf('%.*c', 1000000, 'x'), 'x', printf('%.*c', 1000, 'y'))"}) {
    const std::string text = sql;
    CAPTURE(text);
    CHECK(code(sql) == Errc::invalid_argument);
    const std::string m = message(sql);
    CHECK(contains(m, "larger than the limit of 256 MiB"));
    CHECK(contains(m, "--max-bytes"));
  }
  // Below the limit they work; a lower limit refuses them.
  CHECK(std::get<std::int64_t>(reg.query("SELECT length(randomblob(1000000))").rows.at(0).at(0)) == 1'000'000);
  const std::string low = message("SELECT length(randomblob(1000000))", {.max_bytes = 1000});
  CAPTURE(low);
  CHECK(contains(low, "limit of 1000 bytes"));
}

TEST_CASE_FIXTURE(Fixture, "a result larger than max_bytes is refused, naming the row it reached") {
  const std::string sql = integers("1000") + "SELECT x, printf('%.*c', 100000, 'x') FROM c";
  const SqlOptions o{.max_bytes = 1u << 20};
  const std::string m = message(sql, o);
  CHECK(contains(m, "result is larger than 1 MiB"));
  CHECK(contains(m, "--max-bytes"));
  CHECK(reg.query(integers("5") + "SELECT x, printf('%.*c', 100000, 'x') FROM c", o).rows.size() == 5);
}

TEST_CASE_FIXTURE(Fixture, "a sort that needs more than max_memory is stopped; within it the same sort works") {
  // No LIMIT: SQLite sorts all the rows (with a LIMIT it would keep only the best few).
  const std::string sql = integers("300000") + "SELECT x FROM c ORDER BY -x";
  const std::string m = message(sql, {.max_memory = 256u << 10});
  CHECK(contains(m, "more than 262144 bytes of memory"));
  CHECK(contains(m, "--max-memory"));
  const auto r = reg.query(sql);
  CHECK(r.rows.size() == 300000);
  CHECK(std::get<std::int64_t>(r.rows.at(0).at(0)) == 300000);
}

TEST_CASE_FIXTURE(Fixture, "a huge sort ends at a bound, with an error") {
  const std::string sql = integers("1000000000000") + "SELECT x FROM c ORDER BY -x LIMIT 1";
  const std::string m = message(sql, {.timeout = std::chrono::milliseconds(300)});
  CHECK(contains(m, "SQL stopped"));
  CHECK((contains(m, "time limit") || contains(m, "of memory")));
}

TEST_CASE_FIXTURE(Fixture, "stopping at a bound leaves the database exactly as it was") {
  const std::string before = contents(db);
  const std::string main_before = file_bytes(db), wal_before = file_bytes(dir / "r.db-wal");
  const SqlOptions tight{.timeout = std::chrono::milliseconds(100), .max_rows = 100, .max_bytes = 1u << 20,
                         .max_memory = 256u << 10};
  for (const std::string& sql :
       {integers() + "SELECT x FROM c", integers() + "SELECT count(*) FROM c",
        integers("1000000000") + "SELECT x FROM c ORDER BY -x", std::string("SELECT zeroblob(2e9)"),
        integers("1000") + "SELECT printf('%.*c', 100000, 'x') FROM c"}) {
    CAPTURE(sql);
    CHECK(code(sql, tight) == Errc::invalid_argument);
  }
  CHECK(contents(db) == before);
  CHECK(file_bytes(db) == main_before);
  CHECK(file_bytes(dir / "r.db-wal") == wal_before);
  CHECK(test::integrity_check(db) == "ok");
  // And the registry goes on working.
  CHECK(reg.get(test::ref("fraud@active")).id.number == 2);
  const auto r = reg.query("SELECT model, version FROM model_versions ORDER BY version");
  CHECK(r.rows.size() == 2);
}

TEST_CASE_FIXTURE(Fixture, "ordinary queries are unaffected by the bounds") {
  const auto r = reg.query("SELECT model, version, value FROM version_metrics WHERE metric = 'f1'");
  REQUIRE(r.rows.size() == 1);
  CHECK(std::get<std::string>(r.rows[0][0]) == "fraud");
  CHECK(std::get<double>(r.rows[0][2]) == doctest::Approx(0.8));
  // Every bound off.
  const SqlOptions none{.timeout = std::chrono::milliseconds(0), .max_rows = 0, .max_bytes = 0, .max_memory = 0};
  CHECK(reg.query(integers("1000") + "SELECT x FROM c", none).rows.size() == 1000);
  // The read-only rules still hold under any bounds.
  CHECK(contains(message("DELETE FROM tags", none), "read-only"));
}
