// Aliases: a model's named pointers to its versions (fraud@champion), `active` the reserved default
// one. Their rules through the library, the same rules from a raw SQL connection, their history
// and rollback, and the migration of a registry from before aliases.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include "store/database.hpp"
#include "test_support.hpp"

using namespace modelreg;
using test::ref;
using test::spec;

namespace {

struct Fixture {
  test::TempDir dir;
  std::filesystem::path db = dir / "r.db";
  std::chrono::system_clock::time_point now = std::chrono::system_clock::from_time_t(1'795'000'000);
  Registry reg{db, [this] {
                 Options o;
                 o.default_actor = "ops";
                 o.clock = [this] { return now += std::chrono::minutes(1); };
                 return o;
               }()};

  // fraud@1..3 (fraud@2 labelled v2) with f1 0.80, 0.90, 0.85 and rmse 3, 2, 1; pricing@1.
  Fixture() {
    const double f1[] = {0.80, 0.90, 0.85};
    for (int i = 1; i <= 3; ++i) {
      NewVersion s = spec("fraud");
      s.metrics = {{"f1", f1[i - 1]}, {"rmse", 4.0 - i}, {"custom", i * 1.0}};
      if (i == 2) s.label = "v2";
      reg.register_bytes(s, fmt::format("fraud {}", i));
    }
    reg.register_bytes(spec("pricing"), "pricing 1");
  }

  std::optional<std::int64_t> at(const std::string& alias) {
    auto v = reg.find(ModelRef::alias("fraud", alias));
    return v ? std::optional(v->id.number) : std::nullopt;
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

Errc code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  FAIL("expected a modelreg::Error");
  return Errc::io_error;
}

// The aliases as "name=version" in Registry::aliases' order.
std::vector<std::string> listed(const std::vector<Alias>& aliases) {
  std::vector<std::string> out;
  for (const auto& a : aliases) out.push_back(fmt::format("{}@{}={}", a.model, a.name, a.version));
  return out;
}

}  // namespace

TEST_CASE("an alias reference resolves like a label, and active in any case is the default alias") {
  CHECK(ModelRef::alias("fraud", "champion") == ModelRef::label("fraud", "champion"));
  CHECK(ModelRef::alias("fraud", "ACTIVE") == ModelRef::active("fraud"));
  CHECK(ModelRef::parse("fraud@champion").kind() == ModelRef::Kind::label);
  CHECK_THROWS_AS(ModelRef::alias("fraud", "latest"), Error);
  CHECK_THROWS_AS(ModelRef::alias("fraud", "9lives"), Error);
  CHECK(is_valid_alias("Active"));
  CHECK(is_valid_alias("champion"));
  CHECK_FALSE(is_valid_alias("Latest"));
  CHECK_FALSE(is_valid_alias(""));
  CHECK(is_active_alias("aCtIvE"));
}

TEST_CASE_FIXTURE(Fixture, "set_alias points one alias at one version and records every move") {
  Transition t = reg.set_alias(ref("fraud@1"), "champion", {.reason = "first", .actor = "alice"});
  CHECK(t.alias == "champion");
  CHECK_FALSE(t.from_version);
  CHECK(t.to_version == 1);
  t = reg.set_alias(ref("fraud@v2"), "champion", {.reason = "better"});
  CHECK(t.from_version == 1);
  CHECK(t.to_version == 2);
  reg.set_alias(ref("fraud@3"), "challenger");
  CHECK(at("champion") == 2);
  CHECK(at("challenger") == 3);
  CHECK_FALSE(at("active"));
  CHECK(reg.get(ref("fraud@champion")).id.number == 2);

  // Pointing it where it points already records nothing.
  const auto events = reg.history("fraud").size();
  t = reg.set_alias(ref("fraud@2"), "champion");
  CHECK(t.from_version == 2);
  CHECK(reg.history("fraud").size() == events);

  const auto h = reg.history("fraud");
  REQUIRE(h.size() == 6);  // 3 registers, champion twice, challenger once
  const Event& first = h[3];
  CHECK(first.kind == EventKind::alias_set);
  CHECK(first.alias == "champion");
  CHECK_FALSE(first.from_version);
  CHECK(first.to_version == 1);
  CHECK(first.actor == "alice");
  CHECK(first.reason == "first");
  CHECK(h[4].from_version == 1);
  CHECK(h[4].to_version == 2);
  CHECK(h[4].actor == "ops");
  CHECK_FALSE(h[0].alias);  // a register event moves no alias

  reg.promote(ref("fraud@2"));
  CHECK(reg.get(ref("fraud@2")).aliases == std::vector<std::string>{"active", "champion"});
  CHECK(reg.get(ref("fraud@3")).aliases == std::vector<std::string>{"challenger"});
  CHECK(reg.get(ref("fraud@1")).aliases.empty());
  CHECK(listed(reg.aliases("fraud")) ==
        std::vector<std::string>{"fraud@active=2", "fraud@challenger=3", "fraud@champion=2"});
  reg.set_alias(ref("pricing@1"), "champion");
  CHECK(listed(reg.aliases()) == std::vector<std::string>{"fraud@active=2", "fraud@challenger=3", "fraud@champion=2",
                                                         "pricing@champion=1"});
  const Alias active = reg.aliases("fraud").front();
  CHECK(active.set_by == "ops");
  CHECK(active.set_at == reg.history("fraud").back().at);
  CHECK(reg.aliases("pricing").front().ref_string() == "pricing@champion");
  CHECK(code_of([&] { (void)reg.aliases("nope"); }) == Errc::not_found);
  CHECK(reg.check().ok());
}

TEST_CASE_FIXTURE(Fixture, "promote is set_alias of active, recorded as a promote of the active alias") {
  Transition t = reg.set_alias(ref("fraud@1"), "Active", {.reason = "go"});
  CHECK(t.alias == "active");
  CHECK(at("active") == 1);
  t = reg.promote(ref("fraud@2"));
  CHECK(t.alias == "active");
  CHECK(t.from_version == 1);
  const auto h = reg.history("fraud");
  CHECK(h[3].kind == EventKind::promote);
  CHECK(h[3].alias == "active");
  CHECK(h[4].kind == EventKind::promote);
  CHECK(reg.get(ref("fraud")).aliases == std::vector<std::string>{"active"});
}

TEST_CASE_FIXTURE(Fixture, "the require_better guard works for any alias, in the metric's direction") {
  reg.set_alias(ref("fraud@2"), "champion");  // f1 0.90, rmse 2
  const std::string before = test::dump(db);
  // f1: higher is better, and fraud@3's 0.85 is below.
  CHECK_THROWS_WITH_AS(reg.set_alias(ref("fraud@3"), "champion", {.require_better = "f1"}),
                       doctest::Contains("f1 0.85 is below fraud@champion (fraud@2)'s 0.9"), Error);
  // A custom metric needs its direction; told lower is better, fraud@3's 3 loses to fraud@2's 2.
  CHECK(code_of([&] { reg.set_alias(ref("fraud@1"), "champion", {.require_better = "custom"}); }) ==
        Errc::invalid_argument);
  CHECK(code_of([&] {
          reg.set_alias(ref("fraud@3"), "champion",
                        {.require_better = "custom", .direction = MetricDirection::lower_is_better});
        }) == Errc::conflict);
  CHECK(test::dump(db) == before);
  // rmse: lower is better, and fraud@3's 1 is below fraud@2's 2.
  CHECK(reg.set_alias(ref("fraud@3"), "champion", {.require_better = "rmse"}).to_version == 3);
  CHECK(reg.set_alias(ref("fraud@2"), "champion", {.require_better = "f1"}).to_version == 2);
  // A candidate without the metric is refused; an alias that points nowhere yet has no guard.
  NewVersion bare = spec("fraud");
  reg.register_bytes(bare, "no metrics");
  CHECK(code_of([&] { reg.set_alias(ref("fraud@4"), "champion", {.require_better = "f1"}); }) == Errc::conflict);
  CHECK(reg.set_alias(ref("fraud@4"), "challenger", {.require_better = "f1"}).to_version == 4);
}

TEST_CASE_FIXTURE(Fixture, "rollback walks the history of the alias it is given, leaving the others") {
  reg.promote(ref("fraud@1"));
  for (int n : {1, 2, 3}) reg.set_alias(ModelRef::number("fraud", n), "champion");
  Transition t = reg.rollback("fraud", {.reason = "regression", .alias = "champion"});
  CHECK(t.alias == "champion");
  CHECK(t.from_version == 3);
  CHECK(t.to_version == 2);
  CHECK(reg.rollback("fraud", {.alias = "champion"}).to_version == 1);
  CHECK(at("active") == 1);
  const std::string before = test::dump(db);
  CHECK_THROWS_WITH_AS(reg.rollback("fraud", {.alias = "champion"}),
                       doctest::Contains("fraud@champion has no earlier version to roll back to"), Error);
  CHECK(test::dump(db) == before);
  const Event last = reg.history("fraud").back();
  CHECK(last.kind == EventKind::rollback);
  CHECK(last.alias == "champion");
  CHECK(last.reason == "");

  // --to, and an archived version is passed over.
  CHECK(reg.rollback("fraud", {.to = ref("fraud@3"), .alias = "champion"}).to_version == 3);
  CHECK(code_of([&] { reg.rollback("fraud", {.to = ref("fraud@3"), .alias = "champion"}); }) == Errc::conflict);
  reg.set_alias(ref("fraud@2"), "champion");  // history: 1, 3, 2
  reg.archive(ref("fraud@3"));
  CHECK(reg.rollback("fraud", {.alias = "champion"}).to_version == 1);

  // A removed alias rolls back to where it pointed; an alias never set has nothing to roll back to.
  CHECK(reg.remove_alias("fraud", "champion", {.reason = "done"}) == 1);
  CHECK_FALSE(at("champion"));
  CHECK(reg.rollback("fraud", {.alias = "champion"}).to_version == 1);
  CHECK(code_of([&] { reg.rollback("fraud", {.alias = "nobody"}); }) == Errc::conflict);
  CHECK(code_of([&] { reg.rollback("fraud", {.alias = "latest"}); }) == Errc::invalid_argument);
  // The active alias kept its own history.
  CHECK(code_of([&] { reg.rollback("fraud"); }) == Errc::conflict);
  CHECK(reg.check().ok());
}

TEST_CASE_FIXTURE(Fixture, "aliases and labels share one namespace per model; active and latest are reserved") {
  const std::string before = test::dump(db);
  CHECK_THROWS_WITH_AS(reg.set_alias(ref("fraud@1"), "v2"), doctest::Contains("'v2' is the label of fraud@2"), Error);
  CHECK(code_of([&] { reg.set_alias(ref("fraud@1"), "v2"); }) == Errc::already_exists);
  CHECK(code_of([&] { reg.set_alias(ref("fraud@1"), "latest"); }) == Errc::invalid_argument);
  CHECK(code_of([&] { reg.set_alias(ref("fraud@1"), "LATEST"); }) == Errc::invalid_argument);
  CHECK(code_of([&] { reg.set_alias(ref("fraud@1"), "has space"); }) == Errc::invalid_argument);
  CHECK(test::dump(db) == before);

  reg.set_alias(ref("fraud@1"), "champion");
  NewVersion clash = spec("fraud");
  clash.label = "champion";
  const std::string with_alias = test::dump(db);
  CHECK_THROWS_WITH_AS(reg.register_bytes(clash, "x"), doctest::Contains("'champion' is an alias of 'fraud'"), Error);
  CHECK(code_of([&] { reg.register_bytes(clash, "x"); }) == Errc::already_exists);
  CHECK(test::dump(db) == with_alias);
  // Another model's namespace is its own.
  NewVersion other = spec("pricing");
  other.label = "champion";
  CHECK(reg.register_bytes(other, "pricing 2").label == "champion");
  CHECK(reg.set_alias(ref("pricing@1"), "v2").to_version == 1);
}

TEST_CASE_FIXTURE(Fixture, "an archived version holds no alias, and a version holding one is neither archived nor deleted") {
  reg.set_alias(ref("fraud@1"), "champion");
  reg.set_alias(ref("fraud@1"), "shadow");
  const std::string before = test::dump(db);
  CHECK_THROWS_WITH_AS(reg.archive(ref("fraud@1")),
                       doctest::Contains("fraud@1 holds the aliases champion, shadow and cannot be archived"), Error);
  CHECK(code_of([&] { reg.delete_version(ref("fraud@1")); }) == Errc::conflict);
  CHECK(test::dump(db) == before);

  reg.archive(ref("fraud@3"));
  CHECK_THROWS_WITH_AS(reg.set_alias(ref("fraud@3"), "champion"),
                       doctest::Contains("fraud@3 is archived and cannot hold an alias"), Error);
  CHECK(code_of([&] { reg.rollback("fraud", {.to = ref("fraud@3"), .alias = "champion"}); }) == Errc::conflict);

  reg.remove_alias("fraud", "champion");
  reg.remove_alias("fraud", "shadow");
  reg.archive(ref("fraud@1"));
  reg.delete_version(ref("fraud@1"));
  CHECK(reg.check().ok());
}

TEST_CASE_FIXTURE(Fixture, "remove_alias removes one alias with an event; active and unknown aliases are refused") {
  reg.promote(ref("fraud@1"));
  reg.set_alias(ref("fraud@2"), "champion");
  const std::string before = test::dump(db);
  CHECK(code_of([&] { reg.remove_alias("fraud", "active"); }) == Errc::invalid_argument);
  CHECK_THROWS_WITH_AS(reg.remove_alias("fraud", "nobody"),
                       doctest::Contains("model 'fraud' has no alias 'nobody' (its aliases: active, champion)"), Error);
  CHECK(code_of([&] { reg.remove_alias("nope", "champion"); }) == Errc::not_found);
  CHECK(test::dump(db) == before);
  CHECK(reg.remove_alias("fraud", "champion", {.reason = "retired", .actor = "bob"}) == 2);
  const Event e = reg.history("fraud").back();
  CHECK(e.kind == EventKind::alias_remove);
  CHECK(e.alias == "champion");
  CHECK(e.from_version == 2);
  CHECK_FALSE(e.to_version);
  CHECK(e.actor == "bob");
  CHECK(e.reason == "retired");
  CHECK_FALSE(reg.find(ref("fraud@champion")));
  CHECK_THROWS_WITH_AS(reg.get(ref("fraud@champion")), doctest::Contains("no alias 'champion'"), Error);
}

TEST_CASE_FIXTURE(Fixture, "gc keeps archived versions that an alias's history names") {
  reg.set_alias(ref("fraud@1"), "champion");
  reg.set_alias(ref("fraud@2"), "champion");
  reg.archive(ref("fraud@1"));
  reg.archive(ref("fraud@3"));
  GcReport r = reg.gc({.delete_archived = true});
  CHECK(r.versions_deleted == std::vector<VersionId>{{"fraud", 3}});
  CHECK(r.versions_kept == std::vector<VersionId>{{"fraud", 1}});
}

TEST_CASE_FIXTURE(Fixture, "an alias's target must be activatable: signed under the key, bytes verifying") {
  const std::string key = "0123456789abcdef0123456789abcdef";
  Options o;
  o.signing_key = key;
  Registry keyed(db, o);
  CHECK(code_of([&] { keyed.set_alias(ref("fraud@1"), "champion"); }) == Errc::validation_failed);
  CHECK_FALSE(at("champion"));
  keyed.sign(ref("fraud@1"));
  CHECK(keyed.set_alias(ref("fraud@1"), "champion").to_version == 1);
  test::flip_chunk_byte(db, test::first_chunk_of_version(2));
  CHECK(code_of([&] { reg.set_alias(ref("fraud@2"), "champion"); }) == Errc::corruption);
  CHECK(at("champion") == 1);
}

// ---- the schema, from a raw connection (as in the sqlite3 shell) --------------------------------

TEST_CASE_FIXTURE(Fixture, "the schema enforces the alias rules against raw SQL") {
  reg.promote(ref("fraud@1"));
  reg.set_alias(ref("fraud@2"), "champion");
  const std::string fraud = "(SELECT id FROM models WHERE name = 'fraud')";
  const std::string pricing = "(SELECT id FROM models WHERE name = 'pricing')";
  auto version = [&](const std::string& model, int n) {
    return fmt::format("(SELECT id FROM versions WHERE model_id = {} AND number = {})", model, n);
  };
  auto insert = [&](const std::string& name, const std::string& v) {
    return fmt::format("INSERT INTO aliases(model_id, name, version_id, set_at, set_by) VALUES ({}, '{}', {}, 't', 'x')",
                       fraud, name, v);
  };
  const std::string before = test::dump(db);
  // One version per (model, alias).
  CHECK(try_sql(insert("champion", version(fraud, 3))).find("UNIQUE constraint failed") != std::string::npos);
  // A version of its own model, never an archived one.
  CHECK(try_sql(insert("other", version(pricing, 1))).find("of its own model") != std::string::npos);
  CHECK(try_sql(fmt::format("UPDATE aliases SET version_id = {} WHERE name = 'champion'", version(pricing, 1)))
            .find("of its own model") != std::string::npos);
  CHECK(try_sql("BEGIN; UPDATE versions SET status = 'archived' WHERE number = 3 AND model_id = " + fraud +
                "; " + insert("late", version(fraud, 3)))
            .find("archived version cannot hold an alias") != std::string::npos);
  CHECK(try_sql("UPDATE versions SET status = 'archived' WHERE number = 2 AND model_id = " + fraud)
            .find("cannot be archived") != std::string::npos);
  CHECK_FALSE(try_sql("DELETE FROM versions WHERE number = 2 AND model_id = " + fraud).empty());
  // Labels and aliases share one namespace; active and latest are reserved in any case.
  CHECK(try_sql(insert("v2", version(fraud, 1))).find("share one namespace") != std::string::npos);
  const std::string new_version =
      "BEGIN; UPDATE models SET last_number = last_number + 1 WHERE id = " + fraud +
      "; INSERT INTO versions(model_id, number, label, format, blob_id, created_at, created_by) SELECT id, last_number, "
      "'{}', 'bytes', 1, 'now', 'me' FROM models WHERE id = " + fraud;
  CHECK(try_sql(fmt::format(fmt::runtime(new_version), "champion")).find("share one namespace") != std::string::npos);
  CHECK(try_sql(fmt::format(fmt::runtime(new_version), "Latest")).find("reserved") != std::string::npos);
  for (const char* reserved : {"active", "Active", "LATEST"}) {
    CAPTURE(reserved);
    CHECK(try_sql(insert(reserved, version(fraud, 3))).find("CHECK constraint failed") != std::string::npos);
  }
  // An alias keeps its model and name.
  CHECK(try_sql("UPDATE aliases SET name = 'renamed'").find("keeps its model and name") != std::string::npos);
  // Alias events: the kinds that move an alias carry it, and promote moves only active.
  const std::string event = "INSERT INTO events(model_id, kind, actor, at, alias) VALUES (" + fraud + ", '{}', 'x', 't', {})";
  CHECK(try_sql(fmt::format(fmt::runtime(event), "alias_set", "NULL")).find("CHECK constraint failed") != std::string::npos);
  CHECK(try_sql(fmt::format(fmt::runtime(event), "promote", "'champion'")).find("CHECK constraint failed") !=
        std::string::npos);
  CHECK(try_sql(fmt::format(fmt::runtime(event), "alias_set", "'Active'")).find("CHECK constraint failed") !=
        std::string::npos);
  CHECK(try_sql(fmt::format(fmt::runtime(event), "tag", "'champion'")).find("CHECK constraint failed") !=
        std::string::npos);
  CHECK(try_sql("UPDATE events SET alias = 'x' WHERE alias = 'champion'").find("append-only") != std::string::npos);
  CHECK(test::dump(db) == before);
  CHECK(reg.check().ok());
}

TEST_CASE_FIXTURE(Fixture, "check finds an alias moved without an event or whose triggers were dropped") {
  reg.set_alias(ref("fraud@2"), "champion");
  REQUIRE(try_sql("UPDATE aliases SET version_id = (SELECT id FROM versions WHERE number = 3 AND model_id = "
                  "(SELECT id FROM models WHERE name = 'fraud'))")
              .empty());
  IntegrityReport r = reg.check();
  REQUIRE(r.database_problems.size() == 1);
  CHECK(r.database_problems[0] == "fraud@champion points at version 3 but the audit log's last move of it points it "
                                  "at version 2");

  REQUIRE(try_sql("DROP TRIGGER versions_archive_aliased; UPDATE versions SET status = 'archived' WHERE number = 3 "
                  "AND model_id = (SELECT id FROM models WHERE name = 'fraud')")
              .empty());
  r = reg.check();
  std::string all;
  for (const auto& p : r.database_problems) all += p + "\n";
  CHECK(all.find("the trigger 'versions_archive_aliased' that the migrations created is missing") != std::string::npos);
  CHECK(all.find("fraud@champion points at version 3, which is archived") != std::string::npos);
}

TEST_CASE_FIXTURE(Fixture, "the model_aliases view lists every current alias, active included") {
  reg.promote(ref("fraud@1"));
  reg.set_alias(ref("fraud@2"), "champion", {.actor = "alice"});
  auto d = test::raw(db, false);
  SQLite::Statement q(d, "SELECT model, alias, version, set_by FROM model_aliases ORDER BY model, alias");
  std::vector<std::string> rows;
  while (q.executeStep()) {
    rows.push_back(fmt::format("{}@{}={} by {}", q.getColumn(0).getString(), q.getColumn(1).getString(),
                               q.getColumn(2).getInt(), q.getColumn(3).getString()));
  }
  CHECK(rows == std::vector<std::string>{"fraud@active=1 by ops", "fraud@champion=2 by alice"});
  CHECK(d.execAndGet("SELECT count(*) FROM model_events WHERE alias = 'champion' AND kind = 'alias_set'").getInt() == 1);
}

// ---- migration ---------------------------------------------------------------------------------

namespace {

// A registry at schema 5 (before aliases) holding fraud@1..3, promoted 1, 2, rolled back to 1,
// promoted 3: the rows of a registry written by this library, copied into the first five
// migrations.
std::filesystem::path schema5_registry(const test::TempDir& dir) {
  {
    Options o;
    o.default_actor = "ops";
    Registry modern(dir / "modern.db", o);
    for (int i = 1; i <= 3; ++i) {
      NewVersion s = spec("fraud");
      if (i == 2) s.label = "champion";  // a label that the migration must keep
      modern.register_bytes(s, fmt::format("fraud {}", i));
    }
    modern.promote(ref("fraud@1"), {.reason = "first"});
    modern.promote(ref("fraud@2"));
    modern.rollback("fraud", {.reason = "bad"});
    modern.promote(ref("fraud@3"), {.actor = "alice"});
    modern.register_bytes(spec("pricing"), "pricing 1");
    modern.promote(ref("pricing@1"));
  }
  const auto db = dir / "v5.db";
  SQLite::Database d(db, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  detail::apply_migrations(d, detail::embedded_migrations().first(5), "t0");
  auto run = [&](const std::string& sql) {
    INFO(sql);
    REQUIRE_NOTHROW(d.exec(sql));
  };
  run("ATTACH '" + (dir / "modern.db").string() + "' AS n");
  run("BEGIN");
  for (const char* t : {"models", "blob_chunks", "blobs", "versions"}) run(fmt::format("INSERT INTO {0} SELECT * FROM n.{0}", t));
  run("INSERT INTO events(id, model_id, kind, version, from_version, to_version, actor, reason, at, details) "
      "SELECT id, model_id, kind, version, from_version, to_version, actor, reason, at, details FROM n.events");
  run("COMMIT");
  run("DETACH n");
  REQUIRE(detail::user_version(d) == 5);
  return db;
}

}  // namespace

TEST_CASE("a registry from before aliases keeps its active versions and promotion history") {
  test::TempDir dir;
  const auto db = schema5_registry(dir);
  std::string events_before;
  std::int64_t last_id = 0;
  {
    auto d = test::raw(db, false);
    events_before = d.execAndGet("SELECT group_concat(id || kind || coalesce(to_version, '-'), ' ') FROM events").getString();
    last_id = d.execAndGet("SELECT seq FROM sqlite_sequence WHERE name = 'events'").getInt64();
  }

  // Read-only, it is read as it is (no migration): `active` and its history, labels, no aliases.
  {
    Options o;
    o.read_only = true;
    Registry old(db, o);
    CHECK(old.schema_version() == 5);
    CHECK(old.get(ref("fraud")).id.number == 3);
    CHECK(old.get(ref("fraud")).aliases == std::vector<std::string>{"active"});
    CHECK(old.get(ref("fraud@champion")).id.number == 2);  // the label
    CHECK(listed(old.aliases("fraud")) == std::vector<std::string>{"fraud@active=3"});
    CHECK(old.aliases("fraud").front().set_by == "alice");
    CHECK(old.history("fraud")[3].alias == "active");
    CHECK(old.check().ok());
  }

  Registry reg(db);
  CHECK(reg.schema_version() == Registry::supported_schema_version());
  CHECK(reg.get(ref("fraud@active")).id.number == 3);
  CHECK(reg.get(ref("pricing")).id.number == 1);
  CHECK(listed(reg.aliases()) == std::vector<std::string>{"fraud@active=3", "pricing@active=1"});
  {
    auto d = test::raw(db, false);
    CHECK(d.execAndGet("SELECT group_concat(id || kind || coalesce(to_version, '-'), ' ') FROM events").getString() ==
          events_before);
    CHECK(d.execAndGet("SELECT count(*) FROM events WHERE kind IN ('promote', 'rollback') AND alias = 'active'")
              .getInt() == 5);
    CHECK(d.execAndGet("SELECT count(*) FROM events WHERE alias IS NOT NULL").getInt() == 5);
  }
  const auto h = reg.history("fraud");
  REQUIRE(h.size() == 7);
  CHECK(h[5].kind == EventKind::rollback);
  CHECK(h[5].reason == "bad");
  CHECK(h[6].actor == "alice");
  CHECK(reg.check().ok());

  // The promotion history still drives rollback: 3 -> 1 (2 was rolled back from).
  CHECK(reg.rollback("fraud").to_version == 1);
  CHECK(reg.history("fraud").back().id > last_id);
  // The label keeps its name, so no alias can take it; new aliases work beside it.
  CHECK(code_of([&] { reg.set_alias(ref("fraud@3"), "champion"); }) == Errc::already_exists);
  CHECK(reg.set_alias(ref("fraud@3"), "challenger").to_version == 3);
  CHECK(reg.check().ok());
}
