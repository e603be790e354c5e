#include <sys/stat.h>

#include <array>
#include <fstream>
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

Errc code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  FAIL("expected a modelreg::Error");
  return Errc::io_error;
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  FAIL("expected a modelreg::Error");
  return {};
}

// A fixed clock so created_at and event times are predictable.
Options fixed_clock() {
  Options o;
  o.clock = [] { return std::chrono::system_clock::time_point(std::chrono::milliseconds(1'790'000'000'123)); };
  o.default_actor = "ci-bot";
  return o;
}

}  // namespace

TEST_CASE("a version keeps every piece of metadata it was registered with") {
  test::TempDir dir;
  Registry reg(dir / "r.db", fixed_clock());
  reg.register_bytes(spec("base"), "parent bytes");
  NewVersion s = spec("fraud", "onnx");
  s.type_name = "RandomForest";
  s.metrics = {{"f1", 0.84}, {"auc", 0.93}, {"log_loss", 0.21}};
  s.params = {{"n_estimators", "500"}, {"max_depth", "none"}};
  s.features = {{"amount", "float64"}, {"hour", "int32"}, {"country", "category"}};
  s.tags = {{"team", "risk"}, {"ticket", "FRAUD-12"}};
  s.notes = "retrained on October data\nwith the new merchant feature";
  s.label = "v1.2.0";
  s.created_by = "alice";
  s.parents = {{ref("base@1"), "retrained_from"}};
  s.datasets = {{"s3://bucket/train.csv", std::string(64, 'a'), "train"}, {"s3://bucket/test.csv", std::nullopt, "test"}};
  auto v = reg.register_bytes(s, "model bytes");

  for (const auto& got : {v, reg.get(ref("fraud@v1.2.0")), reg.get(ref("fraud@1")), reg.get(ref("fraud@latest"))}) {
    CHECK(got.id == VersionId{"fraud", 1});
    CHECK(got.label == "v1.2.0");
    CHECK(got.format == "onnx");
    CHECK(got.type_name == "RandomForest");
    CHECK(got.metrics == s.metrics);
    CHECK(got.params == s.params);
    CHECK(got.features == s.features);
    CHECK(got.tags == s.tags);
    CHECK(got.notes == s.notes);
    CHECK(got.created_by == "alice");
    CHECK(got.created_at == "2026-09-21T14:13:20.123Z");
    CHECK(got.status == VersionStatus::ready);
    CHECK_FALSE(got.active);
    REQUIRE(got.parents.size() == 1);
    CHECK(got.parents[0].first == VersionId{"base", 1});
    CHECK(got.parents[0].second == "retrained_from");
    REQUIRE(got.datasets.size() == 2);
    CHECK(got.datasets[1] == s.datasets[0]);
    CHECK(got.datasets[0] == s.datasets[1]);
    CHECK(got.blob.raw_size == 11);
  }
  CHECK(reg.get(ref("base@1")).created_by == "ci-bot");
  CHECK_FALSE(reg.find(ref("fraud@2")).has_value());
  CHECK_FALSE(reg.find(ref("nobody")).has_value());
}

TEST_CASE("version numbers count up per model and are never reused") {
  test::TempDir dir;
  Registry reg(dir / "r.db");
  for (int i = 1; i <= 3; ++i) CHECK(reg.register_bytes(spec("a"), fmt::format("a{}", i)).id.number == i);
  CHECK(reg.register_bytes(spec("b"), "b1").id.number == 1);
  reg.archive(ref("a@3"));
  reg.delete_version(ref("a@3"));
  CHECK(reg.register_bytes(spec("a"), "a4").id.number == 4);
  CHECK(message_of([&] { reg.get(ref("a@3")); }) == "a@3 was deleted (latest is 4)");
}

TEST_CASE("absent models and versions are not_found errors that say what exists") {
  test::TempDir dir;
  Registry reg(dir / "r.db");
  reg.register_bytes(spec("fraud"), "x");
  reg.register_bytes(spec("fraud"), "y");
  CHECK(code_of([&] { reg.get(ref("fraud@9")); }) == Errc::not_found);
  CHECK(message_of([&] { reg.get(ref("fraud@9")); }).ends_with("model 'fraud' has no version 9 (latest is 2)"));
  CHECK(message_of([&] { reg.get(ref("fraud")); }).find("has no active version") != std::string::npos);
  CHECK(message_of([&] { reg.get(ref("fraud@v9")); }).find("no version labelled 'v9'") != std::string::npos);
  CHECK(message_of([&] { reg.get(ref("ghost@1")); }).find("model 'ghost' does not exist") != std::string::npos);
  CHECK(code_of([&] { reg.list_versions("ghost"); }) == Errc::not_found);
  CHECK(code_of([&] { reg.history("ghost"); }) == Errc::not_found);
}

TEST_CASE("bad metadata is refused before anything is written") {
  test::TempDir dir;
  const auto db = dir / "r.db";
  Registry reg(db);
  reg.register_bytes(spec("fraud"), "x");
  auto with = [](auto mutate) {
    NewVersion s = spec("fraud");
    mutate(s);
    return s;
  };
  const std::vector<std::pair<std::string, NewVersion>> bad = {
      {"bad name", with([](NewVersion& s) { s.model = "-bad"; })},
      {"empty format", with([](NewVersion& s) { s.format = ""; })},
      {"spaces in format", with([](NewVersion& s) { s.format = "my format"; })},
      {"NaN metric", with([](NewVersion& s) { s.metrics = {{"f1", std::nan("")}}; })},
      {"infinite metric", with([](NewVersion& s) { s.metrics = {{"f1", INFINITY}}; })},
      {"metric name with operator", with([](NewVersion& s) { s.metrics = {{"f1>=", 1}}; })},
      {"duplicate feature", with([](NewVersion& s) { s.features = {{"a"}, {"a"}}; })},
      {"empty feature", with([](NewVersion& s) { s.features = {{""}}; })},
      {"numeric label", with([](NewVersion& s) { s.label = "7"; })},
      {"keyword label", with([](NewVersion& s) { s.label = "latest"; })},
      {"bad relation", with([](NewVersion& s) { s.parents = {{ref("fraud@1"), "Retrained From"}}; })},
      {"bad dataset hash", with([](NewVersion& s) { s.datasets = {{"x.csv", std::string("ABC"), "train"}}; })},
      {"level too high", with([](NewVersion& s) { s.level = 20; })},
      {"negative level", with([](NewVersion& s) { s.level = -1; })},
  };
  for (const auto& [what, s] : bad) {
    CAPTURE(what);
    CHECK(code_of([&] { reg.register_bytes(s, "y"); }) == Errc::invalid_argument);
  }
  auto missing_parent = with([](NewVersion& s) { s.parents = {{ref("fraud@5"), "retrained_from"}}; });
  CHECK(code_of([&] { reg.register_bytes(missing_parent, "y"); }) == Errc::not_found);
  CHECK(code_of([&] { reg.register_file(spec("fraud"), dir / "no-such-file.bin"); }) == Errc::not_found);
  CHECK(code_of([&] { reg.register_file(spec("fraud"), dir.path()); }) == Errc::invalid_argument);

  auto labelled = with([](NewVersion& s) { s.label = "v1"; });
  reg.register_bytes(labelled, "z");
  CHECK(code_of([&] { reg.register_bytes(labelled, "w"); }) == Errc::already_exists);
  // Labels are unique per model, not globally.
  labelled.model = "other";
  CHECK_NOTHROW(reg.register_bytes(labelled, "w"));

  CHECK(reg.list_versions("fraud").size() == 2);
  CHECK(test::integrity_check(db) == "ok");
}

TEST_CASE("models are listed with their active and latest versions") {
  test::TempDir dir;
  Registry reg(dir / "r.db");
  CHECK(reg.list_models().empty());
  reg.register_bytes(spec("b"), "1");
  reg.register_bytes(spec("a"), "2");
  reg.register_bytes(spec("a"), "3");
  reg.promote(ref("a@1"));
  auto models = reg.list_models();
  REQUIRE(models.size() == 2);
  CHECK(models[0].name == "a");
  CHECK(models[0].version_count == 2);
  CHECK(models[0].active_version == 1);
  CHECK(models[0].latest_version == 2);
  CHECK(models[1].name == "b");
  CHECK_FALSE(models[1].active_version.has_value());
}

TEST_CASE("versions are filtered by metric conditions, tag and status and ordered by a metric") {
  test::TempDir dir;
  Registry reg(dir / "r.db");
  const double f1s[] = {0.70, 0.85, 0.80, 0.90, 0.60};
  for (int i = 0; i < 5; ++i) {
    NewVersion s = spec("fraud");
    s.metrics = {{"f1", f1s[i]}};
    if (i != 4) s.metrics["auc"] = 0.9 + i * 0.01;
    if (i % 2 == 0) s.tags = {{"stage", i == 0 ? "dev" : "prod"}};
    reg.register_bytes(s, fmt::format("v{}", i));
  }
  auto numbers = [](const std::vector<ModelVersion>& vs) {
    std::vector<std::int64_t> n;
    for (const auto& v : vs) n.push_back(v.id.number);
    return n;
  };
  CHECK(numbers(reg.list_versions("fraud")) == std::vector<std::int64_t>{1, 2, 3, 4, 5});

  VersionQuery q;
  q.where = {MetricCondition::parse("f1 >= 0.8")};
  CHECK(numbers(reg.list_versions("fraud", q)) == std::vector<std::int64_t>{2, 3, 4});
  q.order_by_metric = "f1";
  CHECK(numbers(reg.list_versions("fraud", q)) == std::vector<std::int64_t>{4, 2, 3});
  q.descending = false;
  CHECK(numbers(reg.list_versions("fraud", q)) == std::vector<std::int64_t>{3, 2, 4});
  q.where.push_back(MetricCondition::parse("auc<0.93"));
  CHECK(numbers(reg.list_versions("fraud", q)) == std::vector<std::int64_t>{3, 2});

  VersionQuery by_auc;
  by_auc.order_by_metric = "auc";
  CHECK(numbers(reg.list_versions("fraud", by_auc)) == std::vector<std::int64_t>{4, 3, 2, 1, 5});  // no auc: last
  by_auc.limit = 2;
  CHECK(numbers(reg.list_versions("fraud", by_auc)) == std::vector<std::int64_t>{4, 3});

  VersionQuery tagged;
  tagged.tag = std::pair<std::string, std::optional<std::string>>{"stage", std::nullopt};
  CHECK(numbers(reg.list_versions("fraud", tagged)) == std::vector<std::int64_t>{1, 3, 5});
  tagged.tag->second = "prod";
  CHECK(numbers(reg.list_versions("fraud", tagged)) == std::vector<std::int64_t>{3, 5});

  reg.archive(ref("fraud@2"));
  VersionQuery archived;
  archived.status = VersionStatus::archived;
  CHECK(numbers(reg.list_versions("fraud", archived)) == std::vector<std::int64_t>{2});
  archived.status = VersionStatus::ready;
  CHECK(numbers(reg.list_versions("fraud", archived)) == std::vector<std::int64_t>{1, 3, 4, 5});
}

TEST_CASE("metric conditions parse every operator and refuse nonsense") {
  auto c = MetricCondition::parse("  f1>=0.8 ");
  CHECK(c.metric == "f1");
  CHECK(c.op == MetricCondition::Op::ge);
  CHECK(c.value == doctest::Approx(0.8));
  CHECK(MetricCondition::parse("auc < 1").op == MetricCondition::Op::lt);
  CHECK(MetricCondition::parse("auc <= 1").op == MetricCondition::Op::le);
  CHECK(MetricCondition::parse("auc = 1").op == MetricCondition::Op::eq);
  CHECK(MetricCondition::parse("auc == 1").op == MetricCondition::Op::eq);
  CHECK(MetricCondition::parse("auc != 1").op == MetricCondition::Op::ne);
  CHECK(MetricCondition::parse("auc > -1e-3").value == doctest::Approx(-0.001));
  CHECK(MetricCondition::parse("f1 >= 0.8").holds(0.8));
  CHECK_FALSE(MetricCondition::parse("f1 > 0.8").holds(0.8));
  for (const char* bad : {"f1", ">= 0.8", "f1 >= abc", "f1 >=", "f1 => 0.8", "f1 >= 0.8x", "f 1 >= 2", "f1 >= nan"}) {
    CAPTURE(bad);
    CHECK(code_of([&] { MetricCondition::parse(bad); }) == Errc::invalid_argument);
  }
}

TEST_CASE("two versions are compared metric by metric with the difference") {
  test::TempDir dir;
  Registry reg(dir / "r.db");
  NewVersion s = spec("fraud");
  s.metrics = {{"f1", 0.80}, {"auc", 0.90}};
  reg.register_bytes(s, "1");
  s.metrics = {{"f1", 0.85}, {"recall", 0.7}};
  reg.register_bytes(s, "2");
  auto one = reg.compare(ref("fraud@1"), ref("fraud@2"), "f1");
  REQUIRE(one.size() == 1);
  CHECK(one[0].a == doctest::Approx(0.80));
  CHECK(one[0].b == doctest::Approx(0.85));
  CHECK(*one[0].difference() == doctest::Approx(0.05));
  auto all = reg.compare(ref("fraud@1"), ref("fraud@2"));
  REQUIRE(all.size() == 3);
  CHECK(all[0].metric == "auc");
  CHECK_FALSE(all[0].b.has_value());
  CHECK_FALSE(all[0].difference().has_value());
  CHECK(code_of([&] { reg.compare(ref("fraud@1"), ref("fraud@2"), "precision"); }) == Errc::not_found);
  CHECK(code_of([&] { reg.compare(ref("fraud@1"), ref("fraud@3"), "f1"); }) == Errc::not_found);
}

TEST_CASE("ancestors and descendants are found at any depth across models") {
  test::TempDir dir;
  Registry reg(dir / "r.db");
  // base@1 <- base@2 <- ... <- base@30 (a deep chain), and a diamond into distilled@1.
  reg.register_bytes(spec("base"), "0");
  for (int i = 2; i <= 30; ++i) {
    NewVersion s = spec("base");
    s.parents = {{ModelRef::number("base", i - 1), "retrained_from"}};
    reg.register_bytes(s, fmt::format("{}", i));
  }
  NewVersion a = spec("teacher");
  a.parents = {{ref("base@30"), "fine_tuned_from"}};
  reg.register_bytes(a, "teacher");
  NewVersion d = spec("distilled");
  d.parents = {{ref("teacher@1"), "distilled_from"}, {ref("base@30"), "derived_from"}};
  reg.register_bytes(d, "distilled");

  auto up = reg.ancestors(ref("distilled@1"));
  CHECK(up.size() == 2 + 1 + 29);
  CHECK(up[0].depth == 1);
  CHECK(up.back().parent == VersionId{"base", 1});
  CHECK(up.back().depth == 30);  // distilled@1 -> base@30 directly, then 29 steps down the chain
  CHECK(reg.ancestors(ref("distilled@1"), 1).size() == 2);
  CHECK(reg.ancestors(ref("base@1")).empty());

  auto down = reg.descendants(ref("base@1"));
  CHECK(down.size() == 29 + 1 + 2);
  bool reached = std::any_of(down.begin(), down.end(), [](const LineageEdge& e) {
    return e.child == VersionId{"distilled", 1} && e.relation == "derived_from" && e.depth == 30;
  });
  CHECK(reached);
  CHECK(reg.descendants(ref("base@29"), 1).size() == 1);
}

TEST_CASE("one registry can be used from several threads at once") {
  test::TempDir dir;
  Registry reg(dir / "r.db");
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      try {
        for (int i = 0; i < 10; ++i) {
          auto v = reg.register_bytes(spec("shared"), fmt::format("t{}-{}", t, i));
          if (reg.load_bytes(ModelRef::number("shared", v.id.number)) != fmt::format("t{}-{}", t, i)) ++failures;
          (void)reg.list_models();
        }
      } catch (...) {
        ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(failures == 0);
  CHECK(reg.list_versions("shared").size() == 40);
}

namespace {

// Every table's rows as text, to show that a refused call left the database exactly as it was.
std::string file_bytes(const std::filesystem::path& f) {
  std::ifstream in(f, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("register_file reads pipes, FIFOs and /proc files to their end") {
  test::TempDir dir;
  Registry reg(dir / "r.db");
  const std::string bytes = test::random_bytes(300'000, 8);

  // A FIFO, written by another thread while the registry reads it.
  const auto fifo = dir / "model.fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  std::thread writer([&] {
    std::ofstream out(fifo, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  });
  const ModelVersion from_fifo = reg.register_file(spec("fifo"), fifo);
  writer.join();
  CHECK(from_fifo.blob.raw_size == bytes.size());
  CHECK(reg.load_bytes(ref("fifo@1")) == bytes);

  // A /proc file reports size 0 but has content.
  const ModelVersion from_proc = reg.register_file(spec("proc"), "/proc/self/status");
  CHECK(from_proc.blob.raw_size > 0);
  CHECK(reg.load_bytes(ref("proc@1")).find("Name:") != std::string::npos);

  // An empty regular file is 0 bytes, as it is.
  std::ofstream(dir / "empty.bin").flush();
  CHECK(reg.register_file(spec("empty"), dir / "empty.bin").blob.raw_size == 0);
}

TEST_CASE("a file that changes while it is registered is refused, naming it, and nothing is stored") {
  test::TempDir dir;
  Options o;
  o.chunk_size = 64 << 10;
  o.compression_threads = 1;
  Registry reg(dir / "r.db", o);
  reg.register_bytes(spec("other"), "keep me");
  const auto file = dir / "growing.bin";
  { std::ofstream(file, std::ios::binary) << test::random_bytes(400'000, 3); }
  const std::string before = test::dump(dir / "r.db");
  bool appended = false;
  const auto grow = [&](std::uint64_t, std::optional<std::uint64_t>) {
    if (appended) return;
    appended = true;  // after the first chunk: another process appends to the file
    std::ofstream(file, std::ios::binary | std::ios::app) << "more bytes";
  };
  try {
    reg.register_file(spec("fraud"), file, grow);
    FAIL("a file that grew while it was read was registered");
  } catch (const Error& e) {
    CHECK(e.code() == Errc::io_error);
    CHECK(std::string(e.what()).find("growing.bin' changed while it was read") != std::string::npos);
  }
  CHECK(appended);
  CHECK(test::dump(dir / "r.db") == before);
}

TEST_CASE("opening a file that is not a registry leaves it byte-identical") {
  test::TempDir dir;
  // An application's own SQLite file, in rollback-journal mode.
  const auto app = dir / "app.db";
  {
    SQLite::Database d(app.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    d.exec("CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users(name) VALUES ('ada');"
           "PRAGMA user_version = 3");
  }
  const std::string app_bytes = file_bytes(app);
  for (bool create : {false, true}) {
    Options o;
    o.create_if_missing = create;
    try {
      Registry reg(app, o);
      FAIL("a foreign SQLite file opened as a registry");
    } catch (const Error& e) {
      CHECK(e.code() == Errc::incompatible);
      CHECK(std::string(e.what()).find("not a modelreg database") != std::string::npos);
    }
    CHECK(file_bytes(app) == app_bytes);
    CHECK_FALSE(std::filesystem::exists(app.string() + "-wal"));
  }
  // An empty file: read-only uses are refused and it stays empty; a writing open creates a registry.
  const auto empty = dir / "empty.db";
  std::ofstream(empty).flush();
  Options read;
  read.create_if_missing = false;
  try {
    Registry reg(empty, read);
    FAIL("an empty file opened for reading");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("empty file, not a modelreg database") != std::string::npos);
  }
  CHECK(std::filesystem::file_size(empty) == 0);
  Registry created(empty);
  CHECK(created.schema_version() == Registry::supported_schema_version());
}

TEST_CASE("no output path may be the registry's own files, and an existing file needs overwrite") {
  test::TempDir dir;
  const auto db = dir / "r.db";
  Registry reg(db);
  reg.register_bytes(spec("fraud"), "model bytes");
  const std::string before = test::dump(db);
  for (const std::string& own : {db.string(), db.string() + "-wal", db.string() + "-shm", db.string() + "-journal",
                                 (dir / "." / "r.db").string()}) {
    CAPTURE(own);
    CHECK(code_of([&] { reg.load_to_file(ref("fraud@1"), own, {}, true); }) == Errc::invalid_argument);
  }
  // Through a symbolic link too.
  std::filesystem::create_symlink(db, dir / "link.db");
  CHECK(code_of([&] { reg.load_to_file(ref("fraud@1"), dir / "link.db", {}, true); }) == Errc::invalid_argument);
  CHECK(test::dump(db) == before);
  CHECK(Registry(db).load_bytes(ref("fraud@1")) == "model bytes");

  const auto out = dir / "out.bin";
  { std::ofstream(out) << "precious"; }
  CHECK(code_of([&] { reg.load_to_file(ref("fraud@1"), out); }) == Errc::already_exists);
  CHECK(file_bytes(out) == "precious");
  reg.load_to_file(ref("fraud@1"), out, {}, true);
  CHECK(file_bytes(out) == "model bytes");
  CHECK(code_of([&] { reg.load_to_file(ref("fraud@1"), dir.path(), {}, true); }) == Errc::invalid_argument);
}

TEST_CASE("stored text must be UTF-8 without control characters, or nothing is written") {
  test::TempDir dir;
  Registry reg(dir / "r.db");
  reg.register_bytes(spec("fraud"), "bytes");
  const std::string before = test::dump(dir / "r.db");
  auto refused = [&](const std::function<void()>& f, const std::string& needle) {
    try {
      f();
      FAIL("bad text was stored");
    } catch (const Error& e) {
      CHECK(e.code() == Errc::invalid_argument);
      CHECK(std::string(e.what()).find(needle) != std::string::npos);
    }
    CHECK(test::dump(dir / "r.db") == before);
  };
  for (const std::string& bad : {std::string("caf\xe9"), std::string("\xc3\x28"), std::string("\xed\xa0\x80"),
                                std::string("\xf4\x90\x80\x80"), std::string("\xc0\xaf"), std::string("x\xe2\x82")}) {
    CAPTURE(bad.size());
    refused([&] { reg.set_tag(ref("fraud@1"), "note", bad); }, "is not valid UTF-8");
    NewVersion s = spec("fraud");
    s.notes = bad;
    refused([&] { reg.register_bytes(s, "more"); }, "is not valid UTF-8");
    refused([&] { reg.archive(ref("fraud@1"), {.reason = bad}); }, "is not valid UTF-8");
  }
  refused([&] { reg.set_tag(ref("fraud@1"), "stage", "a\x1b[31mred"); }, "control character 0x1b");
  NewVersion s = spec("fraud");
  s.created_by = std::string("bob\x07");
  refused([&] { reg.register_bytes(s, "more"); }, "control character 0x07");
  // Valid UTF-8, tabs and line breaks are fine.
  NewVersion good = spec("fraud");
  good.notes = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\n\tsecond line";
  CHECK(reg.register_bytes(good, "more").notes == good.notes);
}

TEST_CASE("a version limit out of range is refused with its reason") {
  test::TempDir dir;
  Registry reg(dir / "r.db");
  reg.register_bytes(spec("fraud"), "bytes");
  VersionQuery q;
  q.limit = 0;
  CHECK(code_of([&] { (void)reg.list_versions("fraud", q); }) == Errc::invalid_argument);
  q.limit = static_cast<std::size_t>(-1);
  CHECK(code_of([&] { (void)reg.list_versions("fraud", q); }) == Errc::invalid_argument);
  q.limit = 5;
  CHECK(reg.list_versions("fraud", q).size() == 1);
}


TEST_CASE("check reports a tampered schema and broken invariants, never 'ok'") {
  test::TempDir dir;
  const auto db = dir / "r.db";
  {
    Registry reg(db);
    reg.register_bytes(spec("fraud"), "one");
    reg.register_bytes(spec("fraud"), "two");
    reg.promote(ref("fraud@1"));
    CHECK(reg.check().ok());
  }
  auto problems = [&] {
    Registry reg(db);
    const IntegrityReport r = reg.check();
    CHECK_FALSE(r.ok());
    std::string all;
    for (const auto& p : r.database_problems) all += p + "\n";
    return all;
  };
  auto sql = [&](const std::string& statement) { test::raw(db).exec(statement); };

  sql("DROP TRIGGER versions_immutable");
  CHECK(problems().find("the trigger 'versions_immutable' that the migrations created is missing") != std::string::npos);
  sql("DROP VIEW version_metrics; CREATE VIEW version_metrics AS SELECT 1 AS x");
  CHECK(problems().find("the view 'version_metrics' differs") != std::string::npos);
  sql("CREATE TRIGGER sneaky AFTER INSERT ON versions BEGIN DELETE FROM tags; END");
  CHECK(problems().find("an unexpected trigger 'sneaky'") != std::string::npos);
  // With the one-active index gone, two active versions and a log that disagrees are reported.
  SQLite::Database d = test::raw(db);
  SQLite::Statement index(d, "SELECT name FROM sqlite_master WHERE type = 'index' AND sql LIKE '%is_active%'");
  std::vector<std::string> indexes;
  while (index.executeStep()) indexes.push_back(index.getColumn(0).getString());
  index.reset();
  for (const auto& name : indexes) d.exec("DROP INDEX \"" + name + "\"");
  d.exec("UPDATE versions SET is_active = 1 WHERE number = 2");
  const std::string found = problems();
  CHECK(found.find("model 'fraud' has 2 active versions") != std::string::npos);
  const bool index_reported = found.find("is missing") != std::string::npos;
  CHECK(index_reported);
}

TEST_CASE("check finds an active version the audit log does not account for") {
  test::TempDir dir;
  const auto db = dir / "r.db";
  {
    Registry reg(db);
    reg.register_bytes(spec("fraud"), "one");
    reg.register_bytes(spec("fraud"), "two");
    reg.promote(ref("fraud@1"));
  }
  {
    SQLite::Database d = test::raw(db);
    d.exec("UPDATE versions SET is_active = 0 WHERE number = 1");
    d.exec("UPDATE versions SET is_active = 1 WHERE number = 2");
  }
  Registry reg(db);
  const IntegrityReport r = reg.check();
  REQUIRE(r.database_problems.size() == 1);
  CHECK(r.database_problems[0].find("the active version is 2 but the audit log's last promote or rollback moved it to 1") !=
        std::string::npos);
}

TEST_CASE("loads racing to one file: each writes its own temporary file; without overwrite none replaces another") {
  test::TempDir dir;
  const auto db = dir / "r.db";
  const std::string bytes = test::random_bytes(3 << 20, 7);
  {
    Registry reg(db);
    reg.register_bytes(spec("fraud"), bytes);
  }
  Registry a(db), b(db);  // one Registry serializes its calls: two race
  const auto out = dir / "model.bin";
  for (bool overwrite : {false, true}) {
    CAPTURE(overwrite);
    for (int round = 0; round < 10; ++round) {
      std::filesystem::remove(out);
      std::array<std::optional<Error>, 2> failed;
      std::array<Registry*, 2> loaders = {&a, &b};
      std::vector<std::thread> threads;
      for (std::size_t i = 0; i < 2; ++i) {
        threads.emplace_back([&, i] {
          try {
            loaders[i]->load_to_file(ref("fraud@1"), out, {}, overwrite);
          } catch (const Error& e) {
            failed[i] = e;
          }
        });
      }
      for (auto& t : threads) t.join();
      int failures = 0;
      for (const auto& f : failed) {
        if (!f) continue;
        ++failures;
        INFO(f->what());
        CHECK(f->code() == Errc::already_exists);  // it exists already, or appeared while this one wrote
      }
      CHECK(failures <= (overwrite ? 0 : 1));
      std::ifstream in(out, std::ios::binary);
      CHECK(std::string(std::istreambuf_iterator<char>(in), {}) == bytes);  // always complete
      for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
        CHECK(entry.path().filename().string().find("modelreg-partial") == std::string::npos);
      }
    }
  }
  // A missing directory is named as such, not as a temporary file's name.
  try {
    a.load_to_file(ref("fraud@1"), dir / "no-such-dir" / "m.bin");
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("its directory") != std::string::npos);
    CHECK(std::string(e.what()).find("modelreg-partial") == std::string::npos);
  }
}
