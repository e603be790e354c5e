#include <doctest/doctest.h>
#include <fmt/format.h>

#include "store/database.hpp"
#include "test_support.hpp"

using namespace modelreg;
using test::ref;
using test::spec;

TEST_CASE("a new database is created at the newest schema version with every migration recorded once") {
  test::TempDir dir;
  const auto db = dir / "r.db";
  {
    Registry reg(db);
    CHECK(reg.schema_version() == Registry::supported_schema_version());
    CHECK(Registry::supported_schema_version() == static_cast<int>(detail::embedded_migrations().size()));
  }
  Registry again(db);  // reopening applies nothing
  auto d = test::raw(db, false);
  CHECK(d.execAndGet("SELECT count(*) FROM schema_migrations").getInt() == Registry::supported_schema_version());
  CHECK(d.execAndGet("SELECT group_concat(version) FROM (SELECT version FROM schema_migrations ORDER BY version)")
            .getString()
            .starts_with("1"));
  CHECK(d.execAndGet("PRAGMA journal_mode").getString() == "wal");
  CHECK(d.execAndGet("PRAGMA auto_vacuum").getInt() == 2);  // incremental
}

TEST_CASE("migrations run in order, each exactly once, and a database at an older version is upgraded") {
  test::TempDir dir;
  const auto db = dir / "r.db";
  const auto embedded = detail::embedded_migrations();
  // An extra migration after the real ones stands for the next schema change.
  std::vector<detail::Migration> migrations(embedded.begin(), embedded.end());
  const int next = static_cast<int>(migrations.size()) + 1;
  const std::string extra_sql = "CREATE TABLE extra (x INTEGER); INSERT INTO extra VALUES (42);";
  migrations.push_back({next, "9999_extra", extra_sql});

  {
    SQLite::Database d(db, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    // The database as the first release left it.
    CHECK(detail::apply_migrations(d, std::span(migrations).first(1), "t0") == 1);
    CHECK(detail::user_version(d) == 1);
  }
  {
    Registry reg(db);  // upgrades to every embedded migration
    CHECK(reg.schema_version() == Registry::supported_schema_version());
    reg.register_bytes(spec("m"), "data at the current schema");
  }
  SQLite::Database d(db, SQLite::OPEN_READWRITE);
  CHECK(detail::apply_migrations(d, migrations, "t1") == next);
  CHECK(detail::apply_migrations(d, migrations, "t2") == next);  // nothing left to do
  CHECK(d.execAndGet("SELECT count(*) FROM extra").getInt() == 1);  // ran once
  CHECK(d.execAndGet("SELECT count(*) FROM schema_migrations").getInt() == next);
  CHECK(d.execAndGet("SELECT applied_at FROM schema_migrations WHERE version = 1").getString() == "t0");
  CHECK(d.execAndGet("SELECT count(*) FROM versions").getInt() == 1);

  // Out-of-order lists are refused before anything runs.
  std::vector<detail::Migration> gap = {migrations[0], {3, "0003_gap", "SELECT 1"}};
  CHECK_THROWS_AS(detail::apply_migrations(d, gap, "t3"), Error);
}

TEST_CASE("a failing migration leaves the database at the previous version") {
  test::TempDir dir;
  const auto db = dir / "r.db";
  SQLite::Database d(db, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  std::vector<detail::Migration> migrations = {
      {1, "0001_ok", "CREATE TABLE a (x);"},
      {2, "0002_broken", "CREATE TABLE b (x); INSERT INTO nowhere VALUES (1);"},
  };
  CHECK_THROWS(detail::apply_migrations(d, migrations, "t"));
  CHECK(detail::user_version(d) == 1);
  CHECK(d.execAndGet("SELECT count(*) FROM sqlite_master WHERE name = 'b'").getInt() == 0);
}

TEST_CASE("a database newer than the library is refused for writes with both versions named") {
  test::TempDir dir;
  const auto db = dir / "r.db";
  {
    Registry reg(db);
    reg.register_bytes(spec("fraud"), "bytes");
  }
  const int newer = Registry::supported_schema_version() + 5;
  {
    auto d = test::raw(db);
    d.exec(fmt::format("PRAGMA user_version = {}", newer));
  }
  Registry reg(db);
  CHECK(reg.schema_version() == newer);
  CHECK(reg.load_bytes(ref("fraud@1")) == "bytes");  // reading goes on
  try {
    reg.register_bytes(spec("fraud"), "more");
    FAIL("wrote to a newer database");
  } catch (const Error& e) {
    CHECK(e.code() == Errc::incompatible);
    const std::string msg = e.what();
    CHECK(msg.find(fmt::format("schema version {}", newer)) != std::string::npos);
    CHECK(msg.find(fmt::format("({})", Registry::supported_schema_version())) != std::string::npos);
  }
  CHECK_THROWS_AS(reg.promote(ref("fraud@1")), Error);
  auto d = test::raw(db, false);
  CHECK(d.execAndGet("SELECT count(*) FROM versions").getInt() == 1);
  CHECK(d.execAndGet("SELECT count(*) FROM events").getInt() == 1);
}

TEST_CASE("files that are not modelreg databases are refused with a clear error") {
  test::TempDir dir;
  const auto junk = dir / "junk.db";
  std::ofstream(junk) << std::string(8192, 'x');
  try {
    Registry reg(junk);
    FAIL("opened a non-SQLite file");
  } catch (const Error& e) {
    CHECK(e.code() == Errc::corruption);
    CHECK(std::string(e.what()).find("not a modelreg database") != std::string::npos);
  }
  CHECK(std::filesystem::file_size(junk) == 8192);

  const auto foreign = dir / "foreign.db";
  {
    SQLite::Database d(foreign, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    d.exec("CREATE TABLE customers (id INTEGER)");
  }
  try {
    Registry reg(foreign);
    FAIL("opened someone else's database");
  } catch (const Error& e) {
    CHECK(e.code() == Errc::incompatible);
  }

  Options no_create;
  no_create.create_if_missing = false;
  try {
    Registry reg(dir / "missing.db", no_create);
    FAIL("created a database although told not to");
  } catch (const Error& e) {
    CHECK(e.code() == Errc::not_found);
  }
  CHECK_FALSE(std::filesystem::exists(dir / "missing.db"));
}
