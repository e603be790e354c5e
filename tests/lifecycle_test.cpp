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
  Registry reg{db, [] {
                 Options o;
                 o.default_actor = "ops";
                 return o;
               }()};

  // fraud@1..n with f1 = 0.80, 0.81, ...
  void versions(int n) {
    for (int i = 1; i <= n; ++i) {
      NewVersion s = spec("fraud");
      s.metrics = {{"f1", 0.79 + i * 0.01}};
      reg.register_bytes(s, fmt::format("model {}", i));
    }
  }
  std::optional<std::int64_t> active() {
    auto v = reg.find(ref("fraud@active"));
    return v ? std::optional(v->id.number) : std::nullopt;
  }
  std::vector<std::string> kinds() {
    std::vector<std::string> k;
    for (const auto& e : reg.history("fraud")) k.emplace_back(to_string(e.kind));
    return k;
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

}  // namespace

TEST_CASE_FIXTURE(Fixture, "promote makes exactly one version active and records who and why") {
  versions(3);
  CHECK_FALSE(active().has_value());
  auto t = reg.promote(ref("fraud@1"), {.reason = "first", .actor = "alice"});
  CHECK_FALSE(t.from_version.has_value());
  CHECK(t.to_version == 1);
  t = reg.promote(ref("fraud@3"), {.reason = "better"});
  CHECK(t.from_version == 1);
  CHECK(active() == 3);
  CHECK_FALSE(reg.get(ref("fraud@1")).active);
  auto d = test::raw(db, false);
  CHECK(d.execAndGet("SELECT count(*) FROM versions WHERE is_active = 1").getInt() == 1);

  auto h = reg.history("fraud");
  REQUIRE(h.size() == 5);
  CHECK(h[3].kind == EventKind::promote);
  CHECK(h[3].actor == "alice");
  CHECK(h[3].reason == "first");
  CHECK_FALSE(h[3].from_version.has_value());
  CHECK(h[4].from_version == 1);
  CHECK(h[4].to_version == 3);
  CHECK(h[4].actor == "ops");
  // Promoting the active version again changes nothing and records nothing.
  reg.promote(ref("fraud@3"));
  CHECK(reg.history("fraud").size() == 5);
}

TEST_CASE_FIXTURE(Fixture, "a guarded promotion refuses a version whose metric is below the active one") {
  versions(3);
  reg.promote(ref("fraud@2"));
  try {
    reg.promote(ref("fraud@1"), {.require_better = "f1"});
    FAIL("guard did not refuse");
  } catch (const Error& e) {
    CHECK(e.code() == Errc::conflict);
    CHECK(std::string(e.what()).find("f1 0.8 is below the active fraud@2's 0.81") != std::string::npos);
  }
  CHECK(active() == 2);
  CHECK(code_of([&] { reg.promote(ref("fraud@3"), {.require_better = "auc"}); }) == Errc::conflict);
  CHECK(reg.promote(ref("fraud@3"), {.require_better = "f1"}).to_version == 3);
  // An equal value passes ("at least the current active version's").
  NewVersion same = spec("fraud");
  same.metrics = {{"f1", 0.79 + 3 * 0.01}};
  reg.register_bytes(same, "same f1");
  CHECK(reg.promote(ref("fraud@4"), {.require_better = "f1"}).to_version == 4);
  CHECK(kinds().back() == "promote");
}

TEST_CASE_FIXTURE(Fixture, "the guard knows which way a metric improves, and must be told for an unknown one") {
  auto add = [&](double rmse, double custom) {
    NewVersion s = spec("eta");
    s.metrics = {{"rmse", rmse}, {"latency_ms", custom}};
    return reg.register_bytes(s, fmt::format("eta {} {}", rmse, custom)).id.number;
  };
  add(5.0, 10);  // eta@1
  add(6.0, 8);   // eta@2: worse rmse, lower latency
  add(4.0, 12);  // eta@3: better rmse, higher latency
  reg.promote(ref("eta@1"));
  const std::string before = test::dump(db);
  // rmse: lower is better, known without being told.
  try {
    reg.promote(ref("eta@2"), {.require_better = "rmse"});
    FAIL("a higher rmse was promoted");
  } catch (const Error& e) {
    CHECK(e.code() == Errc::conflict);
    CHECK(std::string(e.what()).find("rmse 6 is above the active eta@1's 5 (lower is better") != std::string::npos);
  }
  // A metric of unknown direction is refused until the direction is given; then it is honoured.
  CHECK(code_of([&] { reg.promote(ref("eta@2"), {.require_better = "latency_ms"}); }) == Errc::invalid_argument);
  CHECK(test::dump(db) == before);
  CHECK(code_of([&] {
          reg.promote(ref("eta@3"), {.require_better = "latency_ms", .direction = MetricDirection::lower_is_better});
        }) == Errc::conflict);
  // The explicit direction wins over the known one (a team that wants the opposite must say so).
  CHECK(code_of([&] {
          reg.promote(ref("eta@3"), {.require_better = "rmse", .direction = MetricDirection::higher_is_better});
        }) == Errc::conflict);
  CHECK(test::dump(db) == before);
  CHECK(reg.promote(ref("eta@3"), {.require_better = "rmse"}).to_version == 3);
  CHECK(reg.promote(ref("eta@2"), {.require_better = "latency_ms", .direction = MetricDirection::lower_is_better})
            .to_version == 2);
  // compare says which way each metric improves, and by how much b improves on a.
  const auto rows = reg.compare(ref("eta@1"), ref("eta@3"));
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].metric == "latency_ms");
  CHECK_FALSE(rows[0].direction.has_value());
  CHECK_FALSE(rows[0].improvement().has_value());
  CHECK(rows[1].metric == "rmse");
  CHECK(rows[1].direction == MetricDirection::lower_is_better);
  CHECK(*rows[1].improvement() == doctest::Approx(1.0));
  CHECK(*rows[1].difference() == doctest::Approx(-1.0));
}

TEST_CASE_FIXTURE(Fixture, "rollback walks back through the promotion history again and again") {
  versions(4);
  reg.promote(ref("fraud@1"));
  reg.promote(ref("fraud@2"));
  reg.promote(ref("fraud@3"));
  reg.promote(ref("fraud@4"));
  CHECK(reg.rollback("fraud", {.reason = "bad canary"}).to_version == 3);
  CHECK(reg.rollback("fraud").to_version == 2);
  CHECK(reg.rollback("fraud").to_version == 1);
  CHECK(active() == 1);
  try {
    reg.rollback("fraud");
    FAIL("rolled back past the first promotion");
  } catch (const Error& e) {
    CHECK(e.code() == Errc::conflict);
    CHECK(std::string(e.what()).find("no earlier active version") != std::string::npos);
  }
  CHECK(active() == 1);
  // A new promotion starts a new history on top of what is left.
  reg.promote(ref("fraud@4"));
  CHECK(reg.rollback("fraud").to_version == 1);
  auto h = reg.history("fraud");
  CHECK(h.back().kind == EventKind::rollback);
  CHECK(h.back().from_version == 4);
  CHECK(h.back().to_version == 1);
}

TEST_CASE_FIXTURE(Fixture, "rollback skips versions archived since they were active") {
  versions(3);
  reg.promote(ref("fraud@1"));
  reg.promote(ref("fraud@2"));
  reg.promote(ref("fraud@3"));
  reg.archive(ref("fraud@2"));
  CHECK(reg.rollback("fraud").to_version == 1);
}

TEST_CASE_FIXTURE(Fixture, "rollback to a named version, and its refusals") {
  versions(3);
  CHECK(code_of([&] { reg.rollback("fraud"); }) == Errc::conflict);  // nothing was ever active
  reg.promote(ref("fraud@3"));
  CHECK(reg.rollback("fraud", {.to = ref("fraud@1")}).to_version == 1);
  CHECK(active() == 1);
  CHECK(code_of([&] { reg.rollback("fraud", {.to = ref("fraud@1")}); }) == Errc::conflict);
  CHECK(code_of([&] { reg.rollback("fraud", {.to = ref("other@1")}); }) == Errc::invalid_argument);
  CHECK(code_of([&] { reg.rollback("fraud", {.to = ref("fraud@9")}); }) == Errc::not_found);
  CHECK(code_of([&] { reg.rollback("ghost"); }) == Errc::not_found);
  reg.archive(ref("fraud@2"));
  CHECK(code_of([&] { reg.rollback("fraud", {.to = ref("fraud@2")}); }) == Errc::conflict);
  // The plain rollback after a rollback-to goes back to what was active before it.
  CHECK(reg.rollback("fraud").to_version == 3);
}

TEST_CASE_FIXTURE(Fixture, "an archived version cannot be promoted and the active one cannot be archived") {
  versions(2);
  reg.promote(ref("fraud@1"));
  CHECK(code_of([&] { reg.archive(ref("fraud@1")); }) == Errc::conflict);
  reg.archive(ref("fraud@2"), {.reason = "superseded"});
  CHECK(reg.get(ref("fraud@2")).status == VersionStatus::archived);
  try {
    reg.promote(ref("fraud@2"));
    FAIL("archived version was promoted");
  } catch (const Error& e) {
    CHECK(e.code() == Errc::conflict);
    CHECK(std::string(e.what()).find("fraud@2 is archived") != std::string::npos);
  }
  CHECK(active() == 1);
  reg.unarchive(ref("fraud@2"));
  CHECK(reg.promote(ref("fraud@2")).to_version == 2);
  CHECK(kinds() == std::vector<std::string>{"register", "register", "promote", "archive", "unarchive", "promote"});
}

TEST_CASE_FIXTURE(Fixture, "delete removes only archived versions that no lineage needs, and gc frees their blobs") {
  versions(3);
  NewVersion child = spec("fraud");
  child.parents = {{ref("fraud@2"), "retrained_from"}};
  reg.register_bytes(child, "child");
  reg.promote(ref("fraud@1"));

  CHECK(code_of([&] { reg.delete_version(ref("fraud@3")); }) == Errc::conflict);  // not archived
  reg.archive(ref("fraud@2"));
  CHECK(code_of([&] { reg.delete_version(ref("fraud@2")); }) == Errc::conflict);  // a parent
  reg.archive(ref("fraud@3"));
  reg.delete_version(ref("fraud@3"), {.reason = "cleanup"});
  CHECK_FALSE(reg.find(ref("fraud@3")).has_value());
  CHECK(kinds().back() == "delete");

  auto dry = reg.gc({.dry_run = true});
  CHECK(dry.dry_run);
  CHECK(dry.blobs_removed == 1);
  auto d = test::raw(db, false);
  CHECK(d.execAndGet("SELECT count(*) FROM blobs").getInt() == 4);
  auto report = reg.gc();
  CHECK(report.blobs_removed == 1);
  CHECK(report.chunks_removed == 1);
  CHECK(report.bytes_freed > 0);
  CHECK(d.execAndGet("SELECT count(*) FROM blobs").getInt() == 3);
  CHECK(d.execAndGet("SELECT count(*) FROM blob_chunks WHERE blob_id NOT IN (SELECT id FROM blobs)").getInt() == 0);
  CHECK(reg.gc().blobs_removed == 0);
  for (const char* r : {"fraud@1", "fraud@2", "fraud@4"}) CHECK_NOTHROW(reg.verify(ref(r)));
}

TEST_CASE_FIXTURE(Fixture, "gc keeps a blob shared with a surviving version") {
  reg.register_bytes(spec("a"), "shared bytes");
  reg.register_bytes(spec("b"), "shared bytes");
  reg.archive(ref("a@1"));
  reg.delete_version(ref("a@1"));
  CHECK(reg.gc().blobs_removed == 0);
  CHECK(reg.load_bytes(ref("b@1")) == "shared bytes");
}

TEST_CASE_FIXTURE(Fixture, "tags may change after registration and each change is recorded") {
  versions(1);
  reg.set_tag(ref("fraud@1"), "stage", "canary");
  reg.set_tag(ref("fraud@1"), "stage", "prod", {.reason = "rolled out"});
  CHECK(reg.get(ref("fraud@1")).tags.at("stage") == "prod");
  reg.remove_tag(ref("fraud@1"), "stage");
  CHECK(reg.get(ref("fraud@1")).tags.empty());
  CHECK(code_of([&] { reg.remove_tag(ref("fraud@1"), "stage"); }) == Errc::not_found);
  CHECK(kinds() == std::vector<std::string>{"register", "tag", "tag", "untag"});
}

TEST_CASE_FIXTURE(Fixture, "a read-only registry reads but refuses every write") {
  versions(1);
  Options o;
  o.read_only = true;
  Registry ro(db, o);
  CHECK(ro.get(ref("fraud@1")).id.number == 1);
  CHECK(ro.load_bytes(ref("fraud@1")) == "model 1");
  CHECK(code_of([&] { ro.promote(ref("fraud@1")); }) == Errc::conflict);
  CHECK(code_of([&] { ro.register_bytes(spec("fraud"), "x"); }) == Errc::conflict);
  CHECK(code_of([&] { ro.gc(); }) == Errc::conflict);
  CHECK(ro.gc({.dry_run = true}).blobs_removed == 0);
}

TEST_CASE_FIXTURE(Fixture, "set_tags changes several tags in one transaction, or none when any change fails") {
  versions(1);
  reg.set_tags(ref("fraud@1"), {{"stage", "canary"}, {"owner", "risk"}}, {});
  CHECK(reg.get(ref("fraud@1")).tags == std::map<std::string, std::string>{{"owner", "risk"}, {"stage", "canary"}});
  const auto events_before = reg.history("fraud").size();

  // Removing a tag the version lacks fails the whole call: the set and the other removal are undone.
  CHECK(code_of([&] { reg.set_tags(ref("fraud@1"), {{"team", "fraud"}}, {"owner", "nosuchtag"}); }) == Errc::not_found);
  CHECK(reg.get(ref("fraud@1")).tags == std::map<std::string, std::string>{{"owner", "risk"}, {"stage", "canary"}});
  CHECK(reg.history("fraud").size() == events_before);

  // A key both set and removed, or nothing to do, is refused before anything is read.
  CHECK(code_of([&] { reg.set_tags(ref("fraud@1"), {{"stage", "prod"}}, {"stage"}); }) == Errc::invalid_argument);
  CHECK(code_of([&] { reg.set_tags(ref("fraud@1"), {}, {}); }) == Errc::invalid_argument);
  CHECK(code_of([&] { reg.set_tags(ref("fraud@9"), {{"a", "b"}}, {}); }) == Errc::not_found);

  reg.set_tags(ref("fraud@1"), {{"stage", "prod"}}, {"owner"}, {.reason = "rolled out", .actor = "bob"});
  CHECK(reg.get(ref("fraud@1")).tags == std::map<std::string, std::string>{{"stage", "prod"}});
  const auto events = reg.history("fraud");
  REQUIRE(events.size() == events_before + 2);
  CHECK(events[events.size() - 2].kind == EventKind::tag);
  CHECK(events[events.size() - 2].details == "stage=prod");
  CHECK(events.back().kind == EventKind::untag);
  CHECK(events.back().details == "owner");
  CHECK(events.back().actor == "bob");
  CHECK(events.back().reason == "rolled out");
}

TEST_CASE("each event kind has one stored name, and the names read back as the kinds") {
  const std::vector<std::pair<EventKind, std::string>> kinds{
      {EventKind::register_version, "register"}, {EventKind::promote, "promote"}, {EventKind::rollback, "rollback"},
      {EventKind::archive, "archive"},           {EventKind::unarchive, "unarchive"},
      {EventKind::delete_version, "delete"},     {EventKind::tag, "tag"},           {EventKind::untag, "untag"}};
  for (const auto& [kind, name] : kinds) {
    CHECK(to_string(kind) == name);
    CHECK(parse_event_kind(name) == kind);
  }
  CHECK_FALSE(parse_event_kind("sign").has_value());
  CHECK_FALSE(parse_event_kind("").has_value());
}

TEST_CASE_FIXTURE(Fixture, "promote and rollback refuse a version whose stored bytes fail verification") {
  versions(3);
  reg.promote(ref("fraud@1"));
  reg.promote(ref("fraud@2"));
  test::flip_chunk_byte(db, test::first_chunk_of_version(3));
  test::flip_chunk_byte(db, test::first_chunk_of_version(1));
  const auto events = reg.history("fraud").size();
  for (const auto& attempt : std::vector<std::function<void()>>{
           [&] { reg.promote(ref("fraud@3")); },
           [&] { reg.rollback("fraud"); },  // back to fraud@1, which rotted too
           [&] { reg.rollback("fraud", {.to = ref("fraud@3")}); }}) {
    try {
      attempt();
      FAIL("a version with damaged bytes became active");
    } catch (const Error& e) {
      CHECK(e.code() == Errc::corruption);
      CHECK(std::string(e.what()).find("fail verification") != std::string::npos);
    }
  }
  CHECK(active() == 2);
  CHECK(reg.history("fraud").size() == events);
}

TEST_CASE_FIXTURE(Fixture, "a guard with an empty metric name is refused, not a disabled guard") {
  versions(2);
  reg.promote(ref("fraud@1"));
  CHECK(code_of([&] { reg.promote(ref("fraud@2"), {.require_better = ""}); }) == Errc::invalid_argument);
  CHECK(active() == 1);
}

TEST_CASE_FIXTURE(Fixture, "a rollback with nothing to roll back to says what is active and what became of the rest") {
  versions(3);
  reg.promote(ref("fraud@1"));
  reg.promote(ref("fraud@2"));
  reg.promote(ref("fraud@3"));
  reg.archive(ref("fraud@2"));
  reg.archive(ref("fraud@1"));
  reg.delete_version(ref("fraud@1"));
  try {
    reg.rollback("fraud");
    FAIL("rolled back to an archived or deleted version");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("fraud@3 is active") != std::string::npos);
    CHECK(msg.find("fraud@2 is archived") != std::string::npos);
    CHECK(msg.find("fraud@1 was deleted") != std::string::npos);
  }
  CHECK(active() == 3);
}

TEST_CASE_FIXTURE(Fixture, "unarchiving a version that is not archived says so and records nothing") {
  versions(2);
  reg.promote(ref("fraud@1"));
  const auto events = reg.history("fraud").size();
  try {
    reg.unarchive(ref("fraud@2"));
    FAIL("unarchived a version that is not archived");
  } catch (const Error& e) {
    CHECK(e.code() == Errc::conflict);
    CHECK(std::string(e.what()).find("fraud@2 is not archived") != std::string::npos);
  }
  try {
    reg.unarchive(ref("fraud@1"));
    FAIL("unarchived the active version");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("it is the active version") != std::string::npos);
  }
  CHECK(reg.history("fraud").size() == events);
}
