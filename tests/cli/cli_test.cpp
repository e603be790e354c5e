// The modelreg command, end to end: every command and option on a temporary database, --json
// parsed and checked, and the bad inputs — each gives the documented error and exit status and
// leaves the database exactly as it was.
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "modelreg/checksum.hpp"
#include "modelreg/labeled_data.hpp"
#include "modelreg/training.hpp"
#include "process_harness.hpp"
#include "test_support.hpp"

using nlohmann::json;

namespace {

struct Result {
  int status = -1;
  std::string out;
  std::string err;
  json parsed() const {
    INFO(out, err);
    return json::parse(out);
  }
};

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The database's content: every row of every table, and the schema version. Two equal
// fingerprints mean nothing was written.
std::string fingerprint(const std::filesystem::path& db) {
  try {
    SQLite::Database probe(db, SQLite::OPEN_READONLY);
    (void)probe.execAndGet("PRAGMA schema_version");
  } catch (const SQLite::Exception&) {
    return slurp(db);  // not SQLite: the bytes are the content
  }
  SQLite::Database d(db, SQLite::OPEN_READONLY);
  std::string out = fmt::format("user_version={}\n", d.execAndGet("PRAGMA user_version").getInt());
  SQLite::Statement tables(d, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
  std::vector<std::string> names;
  while (tables.executeStep()) names.push_back(tables.getColumn(0).getString());
  for (const auto& t : names) {
    SQLite::Statement rows(d, fmt::format("SELECT * FROM \"{}\"", t));
    out += t + "\n";
    while (rows.executeStep()) {
      for (int i = 0; i < rows.getColumnCount(); ++i) {
        const auto c = rows.getColumn(i);
        out += c.isBlob() ? std::to_string(c.getBytes()) + " bytes" : c.getString();
        out += '|';
      }
      out += '\n';
    }
  }
  return out;
}

struct Cli {
  test::TempDir dir;
  std::filesystem::path db = dir / "reg.db";
  std::map<std::string, std::string> env;  // set in the child for the next commands

  // modelreg ARGS in `dir`, with $MODELREG_DB and $MODELREG_SIGNING_KEY unset unless `env` sets them.
  Result run(std::vector<std::string> args, bool with_db = true) {
    if (with_db) args.insert(args.begin(), {"--db", db.string()});
    test::Command command{.args = {test::modelreg_binary()},
                          .env = {{"MODELREG_DB", std::nullopt}, {"MODELREG_SIGNING_KEY", std::nullopt}},
                          .cwd = dir.path(),
                          .capture_out = true,
                          .capture_err = true};
    command.args.insert(command.args.end(), args.begin(), args.end());
    for (const auto& [k, v] : env) command.env[k] = v;
    const test::CommandResult r = test::run_command(command);
    INFO("modelreg ", fmt::format("{}", fmt::join(args, " ")));
    REQUIRE_MESSAGE(r.start_error.empty(), r.start_error);
    REQUIRE_FALSE(r.timed_out);
    return Result{r.status, r.out, r.err};
  }

  Result ok(const std::vector<std::string>& args) {
    Result r = run(args);
    INFO("modelreg ", fmt::format("{}", fmt::join(args, " ")), "\nstdout: ", r.out, "\nstderr: ", r.err);
    REQUIRE(r.status == 0);
    return r;
  }

  std::filesystem::path file(const std::string& name, const std::string& bytes) {
    const auto p = dir / name;
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
  }

  // fraud@1..3 with metrics, lineage fraud@1 <- fraud@2 <- fraud@3; fraud@2 active.
  void seed() {
    ok({"register", "fraud", "--file", file("m1.bin", test::compressible_bytes(50'000, 1)).string(), "--metric",
        "f1=0.80", "--metric", "auc=0.90", "--feature", "amount", "--feature", "hour:int32", "--label", "v1.0.0",
        "--tag", "stage=dev", "--dataset", file("train.csv", "a,b\n1,2\n").string() + ":train", "--param", "C=1.0",
        "--notes", "first"});
    ok({"register", "fraud", "--file", file("m2.bin", test::compressible_bytes(50'000, 2)).string(), "--metric",
        "f1=0.86", "--parent", "fraud@1:retrained_from", "--label", "v1.1.0"});
    ok({"register", "fraud", "--file", file("m3.bin", test::compressible_bytes(50'000, 3)).string(), "--metric",
        "f1=0.82", "--parent", "fraud@2:fine_tuned_from"});
    ok({"promote", "fraud@1", "--reason", "first release"});
    ok({"promote", "fraud@2", "--reason", "better"});
  }

  // Runs a command that must fail with `status` and a message containing `needle`, and checks
  // that the database did not change.
  void refused(const std::vector<std::string>& args, int status, const std::string& needle, bool with_db = true) {
    const std::string before = std::filesystem::exists(db) ? fingerprint(db) : "";
    Result r = run(args, with_db);
    INFO("modelreg ", fmt::format("{}", fmt::join(args, " ")), "\nstdout: ", r.out, "\nstderr: ", r.err);
    CHECK(r.status == status);
    CHECK(r.err.find(needle) != std::string::npos);
    // One line on stderr for our own errors.
    if (status == 1) CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    if (!before.empty()) CHECK(fingerprint(db) == before);
  }
};

}  // namespace

TEST_CASE_FIXTURE(Cli, "init creates the database idempotently and migrate reports the schema version") {
  auto r = ok({"init"});
  CHECK(r.out.find(fmt::format("schema version {}", modelreg::Registry::supported_schema_version())) != std::string::npos);
  const std::string before = fingerprint(db);
  ok({"init"});
  CHECK(fingerprint(db) == before);
  auto j = ok({"--json", "migrate"}).parsed();
  CHECK(j["schema_version"] == j["supported_schema_version"]);
  // The database comes from $MODELREG_DB when --db is absent; ./modelreg.db otherwise.
  CHECK(run({"init"}, false).status == 0);
  CHECK(std::filesystem::exists(dir / "modelreg.db"));
}

TEST_CASE_FIXTURE(Cli, "register records every option and list shows models and versions") {
  seed();
  auto v = ok({"--json", "show", "fraud@1"}).parsed();
  CHECK(v["ref"] == "fraud@1");
  CHECK(v["label"] == "v1.0.0");
  CHECK(v["metrics"]["f1"] == 0.80);
  CHECK(v["params"]["C"] == "1.0");
  CHECK(v["features"].size() == 2);
  CHECK(v["features"][1]["dtype"] == "int32");
  CHECK(v["tags"]["stage"] == "dev");
  CHECK(v["notes"] == "first");
  CHECK(v["datasets"][0]["role"] == "train");
  CHECK(v["datasets"][0]["sha256"].get<std::string>().size() == 64);
  CHECK(v["blob"]["raw_size"] == 50'000);
  CHECK(v["children"][0]["ref"] == "fraud@2");
  CHECK(v["events"].size() == 3);  // register, promote to 1, promote away from 1

  auto reg = ok({"--json", "register", "other", "--file", file("o.bin", "other bytes").string(), "--format", "onnx",
                 "--type", "Custom", "--level", "0", "--features-file", file("f.csv", "a,b,c\n").string()})
                 .parsed();
  CHECK(reg["ref"] == "other@1");
  CHECK(reg["format"] == "onnx");
  CHECK(reg["type_name"] == "Custom");
  CHECK(reg["blob"]["codec"] == "none");
  CHECK(reg["features"].size() == 3);
  auto text = ok({"register", "other", "--file", (dir / "o.bin").string()}).out;
  CHECK(text.find("registered other@2") != std::string::npos);

  auto models = ok({"--json", "list"}).parsed();
  REQUIRE(models.size() == 2);
  CHECK(models[0]["model"] == "fraud");
  CHECK(models[0]["active_version"] == 2);
  CHECK(models[0]["latest_version"] == 3);
  CHECK(models[1]["active_version"].is_null());
  auto table = ok({"list", "fraud"}).out;
  CHECK(table.find("* fraud@2") != std::string::npos);
  CHECK(table.find("VERSION") != std::string::npos);

  auto filtered = ok({"--json", "list", "fraud", "--where", "f1>=0.81", "--order-by", "f1"}).parsed();
  REQUIRE(filtered.size() == 2);
  CHECK(filtered[0]["ref"] == "fraud@2");
  CHECK(filtered[1]["ref"] == "fraud@3");
  CHECK(ok({"--json", "list", "fraud", "--tag", "stage=dev"}).parsed().size() == 1);
  CHECK(ok({"--json", "list", "fraud", "--order-by", "f1", "--ascending", "--limit", "1"}).parsed()[0]["ref"] ==
        "fraud@1");
  // Newest first: 3, 2, 1; with --limit, the newest N.
  auto newest = ok({"--json", "list", "fraud", "--newest-first"}).parsed();
  REQUIRE(newest.size() == 3);
  CHECK(newest[0]["ref"] == "fraud@3");
  CHECK(newest[2]["ref"] == "fraud@1");
  CHECK(ok({"--json", "list", "fraud", "--newest-first", "--limit", "1"}).parsed()[0]["ref"] == "fraud@3");
  // Two orders at once, or no model to order: usage errors naming the options.
  CHECK(run({"list", "fraud", "--newest-first", "--order-by", "f1"}).status == 2);
  const Result no_model = run({"list", "--newest-first"});
  CHECK(no_model.status == 2);
  CHECK(no_model.err.find("--newest-first") != std::string::npos);
  ok({"archive", "fraud@3"});
  CHECK(ok({"--json", "list", "fraud"}).parsed().size() == 2);
  CHECK(ok({"--json", "list", "fraud", "--all"}).parsed().size() == 3);
}

TEST_CASE_FIXTURE(Cli, "compare, history and lineage in text, JSON, DOT and Mermaid") {
  seed();
  auto c = ok({"--json", "compare", "fraud@1", "fraud@2"}).parsed();
  CHECK(c["a"] == "fraud@1");
  REQUIRE(c["metrics"].size() == 2);
  CHECK(c["metrics"][1]["metric"] == "f1");
  CHECK(c["metrics"][1]["difference"].get<double>() == doctest::Approx(0.06));
  CHECK(c["metrics"][0]["b"].is_null());
  auto one = ok({"--json", "compare", "fraud@1", "fraud@2", "--metric", "f1"}).parsed();
  CHECK(one["metrics"].size() == 1);
  CHECK(ok({"compare", "fraud@1", "fraud@2"}).out.find("+0.06") != std::string::npos);

  auto h = ok({"--json", "history", "fraud"}).parsed();
  REQUIRE(h.size() == 5);
  CHECK(h[4]["kind"] == "promote");
  CHECK(h[4]["from_version"] == 1);
  CHECK(h[4]["to_version"] == 2);
  CHECK(h[4]["reason"] == "better");
  CHECK(ok({"history", "fraud"}).out.find("first release") != std::string::npos);

  auto tree = ok({"lineage", "fraud@3"}).out;
  CHECK(tree.find("└─ fraud@2 (fine_tuned_from)") != std::string::npos);
  CHECK(tree.find("   └─ fraud@1 (retrained_from)") != std::string::npos);
  auto up = ok({"--json", "lineage", "fraud@3", "--ancestors"}).parsed();
  CHECK(up["ancestors"].size() == 2);
  CHECK_FALSE(up.contains("descendants"));
  auto down = ok({"--json", "lineage", "fraud@1", "--descendants"}).parsed();
  CHECK(down["descendants"].size() == 2);
  CHECK(down["descendants"][1]["depth"] == 2);
  CHECK(ok({"lineage", "fraud@3", "--format", "dot"}).out.find("\"fraud@3\" -> \"fraud@2\" [label=\"fine_tuned_from\"]") !=
        std::string::npos);
  CHECK(ok({"lineage", "fraud@3", "--format", "mermaid"}).out.find("-->|fine_tuned_from|") != std::string::npos);
  CHECK(run({"lineage", "fraud@3", "--format", "svg"}).status == 2);
  CHECK(run({"lineage", "fraud@3", "--ancestors", "--descendants"}).status == 2);
}

TEST_CASE_FIXTURE(Cli, "promote, guarded promote, rollback, archive, unarchive, delete and tags") {
  seed();
  refused({"promote", "fraud@3", "--require-better", "f1"}, 1, "below the active fraud@2");
  auto t = ok({"--json", "promote", "fraud@3", "--reason", "canary"}).parsed();
  CHECK(t["from_version"] == 2);
  CHECK(t["to_version"] == 3);
  CHECK(ok({"rollback", "fraud"}).out.find("fraud@2 is now active (was fraud@3)") != std::string::npos);
  CHECK(ok({"--json", "rollback", "fraud"}).parsed()["to_version"] == 1);
  refused({"rollback", "fraud"}, 1, "no earlier active version");
  CHECK(ok({"--json", "rollback", "fraud", "--to", "fraud@3"}).parsed()["to_version"] == 3);

  refused({"archive", "fraud@3"}, 1, "is the active version");
  ok({"archive", "fraud@1", "--reason", "old"});
  refused({"promote", "fraud@1"}, 1, "fraud@1 is archived");
  ok({"unarchive", "fraud@1"});
  ok({"promote", "fraud@1"});
  ok({"promote", "fraud@2"});
  refused({"delete", "fraud@1"}, 1, "not archived");
  ok({"archive", "fraud@1"});
  refused({"delete", "fraud@1"}, 1, "records it as a parent");

  auto tags = ok({"--json", "tag", "fraud@2", "stage=prod", "owner=risk"}).parsed();
  CHECK(tags["tags"]["stage"] == "prod");
  CHECK(tags["tags"]["owner"] == "risk");
  CHECK(ok({"--json", "tag", "fraud@2", "--remove", "owner"}).parsed()["tags"].size() == 1);
  refused({"tag", "fraud@2", "--remove", "nope"}, 1, "has no tag 'nope'");
  // A tag command that fails changes nothing: "stage" is still there after a removal that also names
  // a missing tag, and a repeated key is a usage error.
  refused({"tag", "fraud@2", "--remove", "stage", "nope"}, 1, "has no tag 'nope'");
  CHECK(ok({"--json", "show", "fraud@2"}).parsed()["tags"]["stage"] == "prod");
  refused({"tag", "fraud@2", "a=1", "a=2"}, 2, "given twice");
  auto h = ok({"--json", "history", "fraud"}).parsed();
  CHECK(h.back()["kind"] == "untag");
}

TEST_CASE_FIXTURE(Cli, "get writes verified bytes to a file or stdout") {
  seed();
  ok({"get", "fraud@1", "-o", (dir / "out.bin").string()});
  CHECK(slurp(dir / "out.bin") == test::compressible_bytes(50'000, 1));
  auto j = ok({"--json", "get", "fraud", "-o", (dir / "active.bin").string()}).parsed();
  CHECK(j["ref"] == "fraud@2");
  CHECK(slurp(dir / "active.bin") == test::compressible_bytes(50'000, 2));
  CHECK(ok({"get", "fraud@3", "-o", "-"}).out == test::compressible_bytes(50'000, 3));
  refused({"get", "fraud@3", "-o", (dir / "no-such-dir" / "x.bin").string()}, 1, "cannot write");
  // Nothing a command writes may replace an existing file without --force, nor the registry itself.
  refused({"get", "fraud@3", "-o", (dir / "out.bin").string()}, 1, "already exists");
  ok({"get", "fraud@3", "-o", (dir / "out.bin").string(), "--force"});
  CHECK(slurp(dir / "out.bin") == test::compressible_bytes(50'000, 3));
  for (const std::string suffix : {"", "-wal", "-shm"}) {
    refused({"get", "fraud@3", "-o", db.string() + suffix, "--force"}, 1, "this registry's own file");
  }
}

TEST_CASE_FIXTURE(Cli, "export and import carry versions, metadata and lineage, all or nothing") {
  seed();
  const auto bundle = dir / "fraud.bundle";
  auto e = ok({"--json", "export", "fraud@2", "fraud@3", "-o", bundle.string()}).parsed();
  CHECK(e["versions"].size() == 2);
  refused({"export", "fraud@1", "-o", bundle.string()}, 1, "already exists");

  Cli other;
  // fraud@2's parent fraud@1 is neither in the bundle nor in the other registry: refused, nothing
  // imported (lineage is never silently dropped).
  other.refused({"import", bundle.string()}, 1, "is neither in the bundle nor in this registry");
  const auto whole = dir / "whole.bundle";
  ok({"export", "fraud@1", "fraud@2", "fraud@3", "-o", whole.string()});
  auto i = other.ok({"--json", "import", whole.string()}).parsed();
  CHECK(i["imported"] == json::array({"fraud@1", "fraud@2", "fraud@3"}));
  CHECK(i["dropped_lineage"].empty());
  auto v3 = other.ok({"--json", "show", "fraud@3"}).parsed();
  CHECK(v3["parents"][0]["ref"] == "fraud@2");  // kept: the parent came along
  CHECK(v3["metrics"]["f1"] == 0.82);
  auto v2 = other.ok({"--json", "show", "fraud@v1.1.0"}).parsed();
  CHECK(v2["version"] == 2);
  CHECK(v2["created_at"] == ok({"--json", "show", "fraud@2"}).parsed()["created_at"]);
  CHECK(other.ok({"get", "fraud@3", "-o", "-"}).out == test::compressible_bytes(50'000, 3));

  // Importing again is a no-op; importing into the source finds everything already there.
  auto again = other.ok({"--json", "import", bundle.string()}).parsed();
  CHECK(again["imported"].empty());
  CHECK(again["already_present"].size() == 2);
  CHECK(ok({"--json", "import", bundle.string()}).parsed()["already_present"].size() == 2);

  // A conflict: the target has a different fraud@2. Nothing is imported, not even fraud@3.
  Cli third;
  third.ok({"register", "fraud", "--file", third.file("x.bin", "x").string()});
  third.ok({"register", "fraud", "--file", third.file("y.bin", "y").string()});
  third.refused({"import", bundle.string()}, 1, "fraud@2 already exists here with different bytes");
  CHECK(third.ok({"--json", "list", "fraud"}).parsed().size() == 2);
}

TEST_CASE_FIXTURE(Cli, "a corrupted bundle is refused and the database is unchanged") {
  seed();
  const auto bundle = dir / "b.bundle";
  ok({"export", "fraud@1", "fraud@2", "-o", bundle.string()});
  test::flip_chunk_byte(bundle, "SELECT rowid FROM blob_chunks LIMIT 1", 10, 0xff);  // inside a stored chunk
  Cli other;
  other.ok({"init"});
  other.refused({"import", bundle.string()}, 1, "corrupt");
  CHECK(other.ok({"--json", "list"}).parsed().empty());
  refused({"import", file("junk.bundle", std::string(5000, 'j')).string()}, 1, "not a valid modelreg bundle");
  refused({"import", (dir / "missing.bundle").string()}, 1, "does not exist");
}

TEST_CASE_FIXTURE(Cli, "verify checks every version and reports each bad one") {
  seed();
  auto good = ok({"--json", "verify"}).parsed();
  CHECK(good["ok"] == true);
  CHECK(good["versions_checked"] == 3);
  CHECK(ok({"verify", "fraud@2"}).out.find("ok: 1 version checked") != std::string::npos);
  test::flip_chunk_byte(db, test::first_chunk_of_version(3), 5, 0x01);
  Result r = run({"verify"});
  CHECK(r.status == 1);
  CHECK(r.out.find("BAD fraud@3") != std::string::npos);
  auto j = json::parse(run({"--json", "verify"}).out);
  CHECK(j["ok"] == false);
  REQUIRE(j["bad_versions"].size() == 1);
  CHECK(j["bad_versions"][0]["ref"] == "fraud@3");
  CHECK(run({"verify", "fraud@1"}).status == 0);
  refused({"get", "fraud@3", "-o", (dir / "bad.bin").string()}, 1, "fraud@3");
  CHECK_FALSE(std::filesystem::exists(dir / "bad.bin"));
}

TEST_CASE_FIXTURE(Cli, "gc deletes archived versions the history does not need and frees their blobs") {
  seed();
  ok({"register", "fraud", "--file", file("m4.bin", test::compressible_bytes(50'000, 4)).string()});
  ok({"archive", "fraud@4"});  // never active, no children: collectable
  ok({"archive", "fraud@3"});  // a lineage leaf, never active: collectable
  ok({"archive", "fraud@1"});  // was active: kept for the rollback history (and it is a parent)
  const std::string before = fingerprint(db);
  auto dry = ok({"--json", "gc", "--dry-run"}).parsed();
  CHECK(dry["dry_run"] == true);
  CHECK(dry["versions_deleted"] == json::array({"fraud@4", "fraud@3"}));
  CHECK(dry["blobs_removed"] == 2);
  CHECK(fingerprint(db) == before);
  auto done = ok({"--json", "gc"}).parsed();
  CHECK(done["versions_deleted"] == json::array({"fraud@4", "fraud@3"}));
  CHECK(done["versions_kept"] == json::array({"fraud@1"}));
  CHECK(done["bytes_freed"].get<int>() > 0);
  CHECK(ok({"--json", "list", "fraud", "--all"}).parsed().size() == 2);
  CHECK(ok({"--json", "verify"}).parsed()["ok"] == true);
  CHECK(ok({"--json", "gc"}).parsed()["blobs_removed"] == 0);
}

TEST_CASE_FIXTURE(Cli, "sql reads with the views and refuses every write") {
  seed();
  auto rows = ok({"--json", "sql", "SELECT model, version, value FROM version_metrics WHERE metric = 'f1' ORDER BY version"})
                  .parsed();
  REQUIRE(rows.size() == 3);
  CHECK(rows[1]["value"] == 0.86);
  CHECK(rows[1]["version"] == 2);
  auto csv = ok({"sql", "SELECT model, label FROM model_versions ORDER BY version", "--csv"}).out;
  CHECK(csv == "model,label\nfraud,v1.0.0\nfraud,v1.1.0\nfraud,\n");
  CHECK(ok({"sql", "PRAGMA table_info(versions)"}).out.find("model_id") != std::string::npos);
  for (const char* bad : {"INSERT INTO models(name, created_at) VALUES ('x', 'y')", "DROP TABLE events",
                          "UPDATE versions SET notes = 'x'", "DELETE FROM events", "ATTACH 'other.db' AS o",
                          "PRAGMA user_version = 99", "PRAGMA journal_mode = DELETE", "SELECT load_extension('x')",
                          "VACUUM INTO 'copy.db'", "CREATE TABLE t(x)", "SELECT 1; DELETE FROM tags"}) {
    CAPTURE(bad);
    refused({"sql", bad}, 1, "read-only");
  }
  CHECK_FALSE(std::filesystem::exists(dir / "copy.db"));
  CHECK_FALSE(std::filesystem::exists(dir / "other.db"));
  refused({"sql", "SELECT nonsense FROM nowhere"}, 1, "no such table");
}

TEST_CASE_FIXTURE(Cli, "bad inputs give the documented error and status and change nothing") {
  seed();
  refused({"show", "fraud@9"}, 1, "model 'fraud' has no version 9 (latest is 3)");
  refused({"show", "ghost"}, 1, "model 'ghost' does not exist");
  refused({"show", "fr aud@1"}, 2, "not a valid model reference");
  refused({"show", "fraud@"}, 2, "nothing after '@'");
  refused({"promote", "fraud@0"}, 2, "whole number from 1");
  refused({"register", "fraud", "--file", (dir / "m1.bin").string(), "--metric", "f1=abc"}, 2,
          "--metric f1=abc: 'abc' is not a finite number");
  refused({"register", "fraud", "--file", (dir / "m1.bin").string(), "--metric", "f1"}, 2, "expected NAME=VALUE");
  refused({"register", "fraud", "--file", (dir / "nope.bin").string()}, 1, "cannot open model file");
  refused({"register", "fraud", "--file", dir.path().string()}, 1, "is a directory");
  refused({"register", "fraud", "--file", (dir / "m1.bin").string(), "--label", "v1.0.0"}, 1, "already taken");
  refused({"register", "fraud", "--file", (dir / "m1.bin").string(), "--level", "42"}, 1, "level 42 is out of range");
  refused({"register", "fraud", "--file", (dir / "m1.bin").string(), "--parent", "fraud@9"}, 1, "no version 9");
  refused({"register", "-bad", "--file", (dir / "m1.bin").string()}, 2, "NAME is required");  // an option, not a name
  refused({"register", "fraud"}, 2, "--file is required");
  refused({"rollback", "ghost"}, 1, "does not exist");
  refused({"list", "--where", "f1>=0.8"}, 2, "give its NAME");
  refused({"list", "fraud", "--where", "f1>>0.8"}, 2, "metric condition");
  refused({"bogus"}, 2, "subcommand");
  refused({}, 2, "subcommand");

  // A file that is not SQLite, and a database that does not exist, for a read command.
  Cli junk;
  std::ofstream(junk.db) << std::string(4096, 'z');
  junk.refused({"list"}, 1, "not a modelreg database");
  CHECK(slurp(junk.db) == std::string(4096, 'z'));
  Cli missing;
  missing.refused({"list"}, 1, "does not exist");
  CHECK_FALSE(std::filesystem::exists(missing.db));

  // A read-only database: reads work, writes are refused.
  CHECK(run({"--read-only", "list"}).status == 0);
  refused({"--read-only", "promote", "fraud@3"}, 1, "read-only");
  refused({"--read-only", "register", "fraud", "--file", (dir / "m1.bin").string()}, 1, "read-only");
  if (::geteuid() != 0) {  // root ignores file permissions
    std::filesystem::permissions(db, std::filesystem::perms::owner_read);
    refused({"promote", "fraud@3"}, 1, "read-only");
    std::filesystem::permissions(db, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  }
}

TEST_CASE_FIXTURE(Cli, "every command has --help with examples") {
  for (const char* cmd : {"init", "migrate", "register", "list", "show", "compare", "promote", "rollback", "archive",
                          "unarchive", "delete", "tag", "history", "lineage", "get", "export", "import", "verify", "gc",
                          "sql"}) {
    CAPTURE(cmd);
    Result r = run({cmd, "--help"}, false);
    CHECK(r.status == 0);
    CHECK(r.out.find("Examples:") != std::string::npos);
  }
}

namespace {

// A labeled CSV from the library's generator.
std::filesystem::path write_data(Cli& cli, const std::string& name, std::size_t rows, std::uint64_t seed) {
  modelreg::ClassificationSpec spec;
  spec.rows = rows;
  spec.features = 6;
  spec.informative = 3;
  spec.redundant = 1;
  spec.positive_fraction = 0.2;
  spec.class_sep = 1.5;
  spec.seed = seed;
  const auto path = cli.dir / name;
  modelreg::write_csv(modelreg::make_classification(spec), path);
  return path;
}

}  // namespace

TEST_CASE_FIXTURE(Cli, "train registers every model type with metrics, features, dataset and probe") {
  const auto csv = write_data(*this, "train.csv", 1500, 1);
  for (const auto& type : modelreg::built_in_model_types()) {
    CAPTURE(type);
    if (type == "linear_regression") continue;  // regression only: the task tests below
    auto v = ok({"--json", "train", "fraud", "--csv", csv.string(), "--target", "is_fraud", "--type", type, "--param",
                 type == "logistic_regression" ? "C=0.5" : "max_depth=6", "--seed", "3", "--test-fraction", "0.25"})
                 .parsed();
    CHECK(v["type_name"] == type);
    CHECK(v["format"] == "modelreg-model");
    CHECK(v["features"].size() == 6);
    CHECK(v["features"][0]["name"] == "v1");
    CHECK(v["metrics"]["roc_auc"].get<double>() > 0.8);
    CHECK(v["metrics"]["test_rows"] == 375);
    CHECK(v["datasets"][0]["sha256"] == modelreg::sha256_file(csv));
    CHECK(v["tags"]["target"] == "is_fraud");
    CHECK(v["params"].contains(type == "logistic_regression" ? "C" : "max_depth"));
  }
  auto text = ok({"train", "fraud", "--csv", csv.string(), "--target", "is_fraud", "--type", "decision_tree",
                  "--test-csv", write_data(*this, "test.csv", 400, 2).string(), "--label", "v9",
                  "--parent", "fraud@1:retrained_from"})
                  .out;
  CHECK(text.find("on 400 test rows") != std::string::npos);
  CHECK(text.find("registered fraud@5 (v9)") != std::string::npos);
  auto v5 = ok({"--json", "show", "fraud@v9"}).parsed();
  CHECK(v5["parents"][0]["ref"] == "fraud@1");
  CHECK(v5["datasets"].size() == 2);
}

TEST_CASE_FIXTURE(Cli, "train infers multiclass from named labels, and --task regression reads whole numbers as values") {
  modelreg::ClassificationSpec spec{.rows = 600, .features = 5, .informative = 3, .redundant = 0,
                                    .clusters_per_class = 1, .classes = 3, .class_sep = 2.0, .seed = 4};
  modelreg::LabeledData animals = modelreg::make_classification(spec);
  animals.classes = modelreg::ClassLabels::strings({"bird", "cat", "dog"});
  animals.target_name = "animal";
  const auto animals_csv = dir / "animals.csv";
  modelreg::write_csv(animals, animals_csv);
  auto v = ok({"--json", "train", "zoo", "--csv", animals_csv.string(), "--target", "animal", "--type",
               "gradient_boosted_trees", "--param", "n_estimators=20", "--seed", "2"})
               .parsed();
  CHECK(v["metrics"]["accuracy"].get<double>() > 0.8);
  CHECK(v["metrics"].contains("f1_macro"));
  CHECK(v["metrics"].contains("log_loss"));
  CHECK(v["metrics"]["count_bird"].get<double>() + v["metrics"]["count_cat"].get<double>() +
            v["metrics"]["count_dog"].get<double>() ==
        120);
  CHECK(ok({"train", "zoo", "--csv", animals_csv.string(), "--target", "animal", "--type", "logistic_regression"})
            .out.find("(multiclass)") != std::string::npos);

  // Counts: many distinct whole numbers are neither taken for classes nor for a quantity unasked.
  modelreg::LabeledData counts = modelreg::make_regression({.rows = 300, .features = 4, .informative = 3, .seed = 2});
  for (double& t : counts.values) t = std::round(t);
  const auto counts_csv = dir / "counts.csv";
  modelreg::write_csv(counts, counts_csv);
  refused({"train", "visits", "--csv", counts_csv.string(), "--target", "target", "--type", "linear_regression"}, 1,
          "say whether it is a quantity (--task regression)");
  auto r = ok({"--json", "train", "visits", "--csv", counts_csv.string(), "--target", "target", "--type",
               "linear_regression", "--task", "regression"})
               .parsed();
  CHECK(r["metrics"]["r2"].get<double>() > 0.99);
  CHECK(r["metrics"].contains("rmse"));
  CHECK(r["metrics"].contains("mae"));
  CHECK_FALSE(r["metrics"].contains("accuracy"));
  refused({"train", "visits", "--csv", counts_csv.string(), "--target", "target", "--type", "linear_regression",
           "--task", "sideways"},
          2, "");
}

TEST_CASE_FIXTURE(Cli, "predict scores a CSV in input order with the validated model") {
  const auto csv = write_data(*this, "train.csv", 1500, 1);
  ok({"train", "fraud", "--csv", csv.string(), "--target", "is_fraud", "--type", "random_forest", "--param",
      "n_estimators=10", "--seed", "1"});
  ok({"promote", "fraud@1"});
  const auto rows = write_data(*this, "new.csv", 50, 9);
  auto out = ok({"predict", "fraud", "--csv", rows.string()}).out;
  std::istringstream lines(out);
  std::string line;
  std::getline(lines, line);
  CHECK(line == "probability,label");
  // The same numbers as the library gives for the same rows.
  modelreg::Registry reg(db);
  const auto loaded = reg.load_model(modelreg::ModelRef::parse("fraud"));
  const auto data = modelreg::read_csv(rows, {"is_fraud", true});
  const auto expected = loaded.model->predict_proba(data.x);
  std::size_t n = 0;
  while (std::getline(lines, line)) {
    const auto comma = line.find(',');
    REQUIRE(n < expected.size());
    CHECK(std::stod(line.substr(0, comma)) == expected[n]);  // full precision
    CHECK(line.substr(comma + 1) == (expected[n] > 0.5 ? "1" : "0"));
    ++n;
  }
  CHECK(n == 50);
  auto j = ok({"--json", "predict", "fraud@1", "--csv", rows.string()}).parsed();
  CHECK(j["ref"] == "fraud@1");
  CHECK(j["probabilities"].size() == 50);
  ok({"predict", "fraud@1", "--csv", rows.string(), "-o", (dir / "scores.csv").string()});
  CHECK(slurp(dir / "scores.csv") == out);

  // Columns are matched by name: a reordered file gives the same scores; missing or foreign ones fail.
  {
    std::ofstream reordered(dir / "reordered.csv");
    reordered << "v6,v5,v4,v3,v2,v1\n";
    for (std::size_t r = 0; r < data.rows(); ++r) {
      reordered << fmt::format("{},{},{},{},{},{}\n", data.x(r, 5), data.x(r, 4), data.x(r, 3), data.x(r, 2),
                               data.x(r, 1), data.x(r, 0));
    }
  }
  CHECK(ok({"--json", "predict", "fraud@1", "--csv", (dir / "reordered.csv").string()}).parsed()["probabilities"] ==
        j["probabilities"]);
  refused({"predict", "fraud@1", "--csv", file("missing.csv", "v1,v2,v3\n1,2,3\n").string()}, 1, "has no column 'v4'");
  refused({"predict", "fraud@1", "--csv", file("extra.csv", "v1,v2,v3,v4,v5,v6,zz\n1,2,3,4,5,6,7\n").string()}, 1,
          "column 'zz' that is not a feature");
}

TEST_CASE_FIXTURE(Cli, "train and predict refuse bad CSV files with the line and column") {
  const auto csv = write_data(*this, "train.csv", 300, 1);
  refused({"train", "m", "--csv", file("ragged.csv", "a,b,y\n1,2,0\n3,1\n").string(), "--target", "y", "--type",
           "decision_tree"},
          1, "ragged.csv:3: 2 cells, but the header has 3 columns");
  refused({"train", "m", "--csv", file("text.csv", "a,b,y\n1,x,0\n").string(), "--target", "y", "--type",
           "decision_tree"},
          1, "text.csv:2: column 2 ('b'): 'x' is not a number");
  refused({"train", "m", "--csv", csv.string(), "--target", "nope", "--type", "decision_tree"}, 1, "nope");
  refused({"train", "m", "--csv", (dir / "absent.csv").string(), "--target", "y", "--type", "decision_tree"}, 1,
          "absent.csv");
  refused({"train", "m", "--csv", csv.string(), "--target", "is_fraud", "--type", "neural_net"}, 2, "neural_net");
  refused({"train", "m", "--csv", csv.string(), "--target", "is_fraud", "--type", "random_forest", "--param",
           "n_estimators=lots"},
          1, "n_estimators");
  refused({"train", "m", "--csv", csv.string(), "--target", "is_fraud", "--type", "decision_tree", "--test-fraction",
           "1.5"},
          2, "--test-fraction");
  CHECK_FALSE(std::filesystem::exists(db));
  ok({"register", "blob", "--file", file("b.bin", "bytes").string()});
  refused({"predict", "blob@1", "--csv", csv.string()}, 1, "format check");
}

TEST_CASE_FIXTURE(Cli, "a progress bar appears on a terminal and never in a pipe") {
  const auto big = file("big.bin", test::compressible_bytes(12 << 20, 5));
  // Not a terminal: stderr stays empty.
  CHECK(ok({"register", "big", "--file", big.string()}).err.empty());
  // A terminal (script(1) gives the command a pseudo-terminal): the bar is drawn on it.
  const std::string cmd = fmt::format("script -qefc \"'{}' --db '{}' get big@1 -o '{}'\" /dev/null", std::getenv("MODELREG_BIN"),
                                      db.string(), (dir / "copy.bin").string());
  std::FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buffer[4096];
  while (std::size_t n = std::fread(buffer, 1, sizeof buffer, p)) out.append(buffer, n);
  CHECK(::pclose(p) == 0);
  CHECK(out.find("writing big@1 [") != std::string::npos);
  CHECK(out.find("100%") != std::string::npos);
  CHECK(slurp(dir / "copy.bin") == test::compressible_bytes(12 << 20, 5));
}

TEST_CASE_FIXTURE(Cli, "signed versions: keygen, sign, and --signing-key (or $MODELREG_SIGNING_KEY) on every command") {
  const std::string key = (dir / "key").string(), other = (dir / "other.key").string();
  const auto k = ok({"--json", "keygen", key}).parsed();
  CHECK(k["key_id"].get<std::string>().size() == 16);
  ok({"keygen", other});
  refused({"keygen", key}, 1, "never overwritten");

  const auto csv = write_data(*this, "train.csv", 800, 1);
  const std::vector<std::string> train = {"--json", "train", "fraud", "--csv", csv.string(), "--target", "is_fraud",
                                          "--type", "logistic_regression"};
  auto with = [](std::vector<std::string> args, const std::string& key_file) {
    args.push_back("--signing-key");
    args.push_back(key_file);
    return args;
  };
  auto v1 = ok(with(train, key)).parsed();
  CHECK(v1["signature"]["key_id"] == k["key_id"]);
  CHECK(v1["signature"]["algorithm"] == "hmac-sha256");
  auto v2 = ok(train).parsed();  // no key: unsigned
  CHECK(v2["signature"].is_null());
  env["MODELREG_SIGNING_KEY"] = key;
  auto blob = ok({"--json", "register", "blob", "--file", file("b.bin", "opaque bytes").string()}).parsed();
  CHECK(blob["signature"]["key_id"] == k["key_id"]);
  env.clear();

  const auto rows = write_data(*this, "new.csv", 20, 9);
  const std::string out = (dir / "out.bin").string();
  ok(with({"promote", "fraud@1"}, key));
  refused(with({"promote", "fraud@2"}, key), 1, "fraud@2 is not signed");
  refused(with({"get", "fraud@2", "-o", out}, key), 1, "fraud@2 is not signed");
  CHECK_FALSE(std::filesystem::exists(out));
  refused(with({"predict", "fraud@2", "--csv", rows.string()}, key), 1, "fraud@2 is not signed");
  refused(with({"predict", "fraud@1", "--csv", rows.string()}, other), 1, "is signed with key");
  env["MODELREG_SIGNING_KEY"] = other;
  refused({"get", "fraud@1", "-o", out}, 1, "is signed with key");
  env.clear();
  refused(with({"promote", "fraud@1"}, (dir / "missing.key").string()), 1, "does not exist");
  refused({"sign", "fraud@2"}, 2, "needs a key");
  auto bad = run(with({"--json", "verify"}, key));
  CHECK(bad.status == 1);
  CHECK(bad.parsed()["bad_versions"].size() == 1);  // fraud@2, unsigned

  auto signed_now = ok(with({"--json", "sign", "fraud@2"}, key)).parsed();
  CHECK(signed_now["signature"]["key_id"] == k["key_id"]);
  ok(with({"promote", "fraud@2"}, key));
  ok(with({"predict", "fraud@2", "--csv", rows.string()}, key));
  ok(with({"verify"}, key));
  CHECK(ok({"show", "fraud@2"}).out.find("hmac-sha256 with key " + k["key_id"].get<std::string>()) != std::string::npos);
  CHECK(ok({"show", "blob@1"}).out.find("signed") != std::string::npos);
  // Without a key nothing is checked: a registry that does not use signing works as before.
  ok({"get", "fraud@2", "-o", out});
}

TEST_CASE_FIXTURE(Cli, "reading commands leave a file that is not a registry byte-identical, and create nothing") {
  const auto app = dir / "app.db";
  {
    SQLite::Database d(app.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    d.exec("CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users(name) VALUES ('ada')");
  }
  const std::string before = slurp(app);
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"list"}, {"sql", "SELECT 1"}, {"history", "fraud"}, {"verify"}, {"register", "fraud", "--file",
                                                                             app.string()}}) {
    CAPTURE(args.front());
    std::vector<std::string> full{"--db", app.string()};
    full.insert(full.end(), args.begin(), args.end());
    refused(full, 1, "not a modelreg database", false);
    CHECK(slurp(app) == before);
  }
  const auto empty = dir / "empty.db";
  { std::ofstream touch(empty); }
  refused({"--db", empty.string(), "sql", "SELECT 1"}, 1, "empty file, not a modelreg database", false);
  refused({"--db", empty.string(), "list"}, 1, "empty file", false);
  CHECK(std::filesystem::file_size(empty) == 0);
}

TEST_CASE_FIXTURE(Cli, "an empty --require-better is a usage error, not a disabled guard") {
  seed();
  refused({"promote", "fraud@2", "--require-better", ""}, 2, "needs a metric name");
}

TEST_CASE_FIXTURE(Cli, "Mermaid lineage gives distinct node ids to names that differ only in punctuation") {
  for (const std::string name : {"a.b", "a-b", "a_b"}) {
    ok({"register", name, "--file", file(name + ".bin", name).string()});
  }
  ok({"register", "child", "--file", file("child.bin", "child").string(), "--parent", "a.b@1", "--parent", "a-b@1",
      "--parent", "a_b@1"});
  const std::string out = ok({"lineage", "child@1", "--format", "mermaid"}).out;
  std::set<std::string> ids;  // every node id: the word before each ["label"]
  for (std::size_t at = out.find("[\""); at != std::string::npos; at = out.find("[\"", at + 1)) {
    std::size_t start = at;
    while (start > 0 && (std::isalnum(static_cast<unsigned char>(out[start - 1])) || out[start - 1] == '_')) --start;
    ids.insert(out.substr(start, at - start));
  }
  CAPTURE(out);
  CHECK(ids.size() == 4);  // child@1, a.b@1, a-b@1, a_b@1
}

TEST_CASE_FIXTURE(Cli, "text that is not UTF-8 is refused at input, and never breaks --json output") {
  seed();
  refused({"tag", "fraud@1", std::string("note=caf\xe9")}, 1, "is not valid UTF-8");
  refused({"archive", "fraud@1", "--reason", "ok\x1b[2J"}, 1, "control character 0x1b");
  // Bytes another tool wrote into the file print as U+FFFD: the JSON stays valid.
  {
    SQLite::Database d(db.string(), SQLite::OPEN_READWRITE);
    d.exec("INSERT INTO tags(version_id, key, value) SELECT id, 'raw', x'636166e9' FROM versions WHERE number = 1");
  }
  const auto listed = ok({"--json", "list", "fraud"}).parsed();
  CHECK(listed.size() >= 1);
  const auto shown = ok({"--json", "show", "fraud@1"}).parsed();
  CHECK(shown["tags"]["raw"] == "caf\xef\xbf\xbd");
}

TEST_CASE_FIXTURE(Cli, "no raw library message reaches the user: a bad limit, a directory given as a file") {
  seed();
  refused({"list", "fraud", "--limit", "-1"}, 2, "--limit");
  refused({"list", "fraud", "--limit", "0"}, 2, "--limit");
  refused({"import", dir.path().string()}, 1, "is a directory");
  refused({"get", "fraud@1", "-o", dir.path().string(), "--force"}, 1, "is a directory");
  CHECK(ok({"--json", "list", "fraud", "--limit", "1"}).parsed().size() == 1);
}


// Bytes that drive a terminal: ESC sequences (clear the screen, retitle the window), BEL, a C1 CSI
// as UTF-8 (U+009B) and as one raw byte, DEL.
const std::string kTerminalControls = "\x1b[2J\x1b]0;owned\x07|\xc2\x9b" "31m|\x9b|\x7f";

bool has_raw_control(const std::string& text, bool line_feeds_allowed = true) {
  return std::any_of(text.begin(), text.end(), [&](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return (c < 0x20 && !(line_feeds_allowed && c == '\n')) || c == 0x7f || c == 0x9b || c == 0x9d;
  });
}

TEST_CASE_FIXTURE(Cli, "control characters are never printed raw: text read from the database, SQL results, errors") {
  seed();
  // Text no input check saw: written by the sqlite3 shell (tags and events accept inserts).
  {
    auto d = test::raw(db);
    SQLite::Statement tag(d, "INSERT INTO tags(version_id, key, value) SELECT id, ?, ? FROM versions WHERE number = 2");
    tag.bind(1, "key" + kTerminalControls);
    tag.bind(2, "value" + kTerminalControls + "\nFAKE LINE");
    tag.exec();
    SQLite::Statement event(d, "INSERT INTO events(model_id, kind, version, actor, reason, at, details) "
                               "SELECT model_id, 'tag', number, ?, ?, '2026-01-01T00:00:00.000Z', '' FROM versions "
                               "WHERE number = 2");
    event.bind(1, "actor" + kTerminalControls);
    event.bind(2, "reason" + kTerminalControls);
    event.exec();
  }
  const std::string before = test::dump(db);
  const Result listed = ok({"list", "fraud", "--tag", "key" + kTerminalControls});
  CHECK(listed.out.find("fraud@2") != std::string::npos);
  CHECK_FALSE(has_raw_control(listed.out));
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"show", "fraud@2"},
           {"history", "fraud"},
           {"sql", "SELECT key AS \"k" + kTerminalControls + "\", value, char(27, 155, 127) AS c FROM tags"},
           {"sql", "SELECT actor, reason FROM events"}}) {
    const Result r = ok(args);
    CAPTURE(r.out);
    CHECK_FALSE(has_raw_control(r.out));
    CHECK(r.out.find("\\x1b[2J") != std::string::npos);  // shown, escaped
  }
  const std::string shown = ok({"show", "fraud@2"}).out;
  CHECK(shown.find("\\u009b31m|\\x9b|\\x7f") != std::string::npos);
  CHECK(shown.find("\\nFAKE LINE") != std::string::npos);  // a line break in a value cannot fake a line
  CHECK(ok({"history", "fraud"}).out.find("actor\\x1b[2J\\x1b]0;owned\\x07") != std::string::npos);

  // JSON: the same text, escaped by JSON (C1 and DEL too), and valid.
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"--json", "show", "fraud@2"}, {"--json", "history", "fraud"}, {"--json", "sql", "SELECT * FROM tags"}}) {
    const Result r = ok(args);
    CAPTURE(r.out);
    CHECK_FALSE(has_raw_control(r.out));
    CHECK_NOTHROW((void)r.parsed());
  }
  // (The lone byte 0x9b is not UTF-8: JSON shows it as U+FFFD.)
  CHECK(ok({"--json", "show", "fraud@2"}).parsed()["tags"].contains(
      "key\x1b[2J\x1b]0;owned\x07|\xc2\x9b" "31m|\xef\xbf\xbd|\x7f"));

  // Error messages quoting what was typed or read: one escaped line on stderr.
  const Result bad_ref = run({"show", "fraud" + kTerminalControls});
  CHECK(bad_ref.status == 2);
  CHECK_FALSE(has_raw_control(bad_ref.err));
  CHECK(bad_ref.err.find("\\x1b[2J") != std::string::npos);
  const Result bad_db = run({"--db", (dir / ("x" + kTerminalControls + ".db")).string(), "list"}, false);
  CHECK(bad_db.status == 1);
  CHECK_FALSE(has_raw_control(bad_db.err));
  CHECK(std::count(bad_db.err.begin(), bad_db.err.end(), '\n') == 1);
  const Result bad_option = run({"list", "fraud", "--limit", kTerminalControls});  // CLI11's own message
  CHECK(bad_option.status == 2);
  CHECK_FALSE(has_raw_control(bad_option.err));
  const Result bad_sql = run({"sql", "SELECT nosuchcolumn" + kTerminalControls});
  CHECK(bad_sql.status == 1);
  CHECK_FALSE(has_raw_control(bad_sql.err));

  // CSV is data: exact in a pipe; escaped on a terminal (script(1) gives the command one).
  CHECK(ok({"sql", "--csv", "SELECT char(27) || '[2J' AS x"}).out == "x\n\x1b[2J\n");
  const std::string cmd = fmt::format("script -qefc \"'{}' --db '{}' sql --csv 'SELECT char(27) || char(91) AS x'\" /dev/null",
                                      std::getenv("MODELREG_BIN"), db.string());
  std::FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buffer[4096];
  while (std::size_t n = std::fread(buffer, 1, sizeof buffer, p)) out.append(buffer, n);
  CHECK(::pclose(p) == 0);
  CAPTURE(out);
  CHECK(out.find("\\x1b[") != std::string::npos);
  CHECK(out.find('\x1b') == std::string::npos);
  CHECK(test::dump(db) == before);
}

TEST_CASE_FIXTURE(Cli, "two exports racing to one path: a complete bundle, and the loser says why in our words") {
  seed();
  const auto bundle = dir / "race.bundle";
  const std::string binary = test::modelreg_binary();
  for (int round = 0; round < 10; ++round) {
    std::filesystem::remove(bundle);
    std::array<test::CommandResult, 2> results;
    std::vector<std::thread> racers;
    for (auto& r : results) {
      racers.emplace_back([&] {
        r = test::run_command({.args = {binary, "--db", db.string(), "export", "fraud@1", "fraud@2",
                                        "fraud@3", "-o", bundle.string()},
                               .env = {{"MODELREG_DB", std::nullopt}},
                               .capture_out = true,
                               .capture_err = true});
      });
    }
    for (auto& t : racers) t.join();
    int won = 0;
    for (const auto& r : results) {
      INFO("stderr: ", r.err);
      if (r.status == 0) {
        ++won;
        continue;
      }
      CHECK(r.status == 1);
      CHECK((r.err.find("already exists") != std::string::npos ||
             r.err.find("was created by someone else") != std::string::npos));
      CHECK(r.err.find("SQLite") == std::string::npos);
      CHECK(r.err.find("database disk image") == std::string::npos);
    }
    CHECK(won == 1);
    const auto imported = Cli{}.ok({"--json", "import", bundle.string()}).parsed();  // complete
    CHECK(imported["imported"].size() == 3);
  }
}

// ---- a registry in a read-only directory ---------------------------------------------------------

namespace {

// `source` seen read-only at `view`: a read-only bind mount in a mount namespace of this process's
// own (as root, where permissions do not bite), else the permissions of both dropped (0555 for
// directories, 0444 for files). False, with the reason in `why`, when neither can be done.
bool make_read_only_view(const std::filesystem::path& source, const std::filesystem::path& view, std::string& why) {
  std::filesystem::create_directories(view);
  if (::geteuid() != 0) {
    std::filesystem::remove(view);
    std::filesystem::create_directory_symlink(source, view);
    for (const auto& e : std::filesystem::recursive_directory_iterator(source)) {
      ::chmod(e.path().c_str(), e.is_directory() ? 0555 : 0444);
    }
    ::chmod(source.c_str(), 0555);
    return true;
  }
  // This process (and the commands it starts) stays in the namespace: the mount goes with it.
  static const bool private_namespace = ::unshare(CLONE_NEWNS) == 0 &&
                                        ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0;
  if (!private_namespace) {
    why = fmt::format("cannot create a private mount namespace ({}); needs CAP_SYS_ADMIN", std::strerror(errno));
    return false;
  }
  if (::mount(source.c_str(), view.c_str(), nullptr, MS_BIND, nullptr) != 0 ||
      ::mount(nullptr, view.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) != 0) {
    why = fmt::format("cannot bind-mount read-only ({})", std::strerror(errno));
    return false;
  }
  return true;
}

void drop_read_only_view(const std::filesystem::path& source, const std::filesystem::path& view) {
  if (::geteuid() == 0) {
    ::umount2(view.c_str(), MNT_DETACH);
    return;
  }
  ::chmod(source.c_str(), 0755);
  for (const auto& e : std::filesystem::recursive_directory_iterator(source)) {
    ::chmod(e.path().c_str(), e.is_directory() ? 0755 : 0644);
  }
}

}  // namespace

TEST_CASE_FIXTURE(Cli, "a registry in a read-only directory opens with --read-only, or fails naming the cause and the fix") {
  const auto source = dir / "writable";
  std::filesystem::create_directory(source);
  const auto writable_db = source / "reg.db";
  db = writable_db;
  seed();
  ok({"register", "other", "--file", file("o.bin", "other").string()});
  // A copy with a write-ahead log holding a commit but no -shm index (made below).
  std::filesystem::create_directory(source / "unindexed");
  {
    auto writer = test::raw(writable_db);
    writer.exec("PRAGMA wal_autocheckpoint = 0");
    writer.exec("INSERT INTO tags(version_id, key, value) SELECT id, 'late', 'yes' FROM versions WHERE number = 3");
    std::filesystem::copy_file(writable_db, source / "unindexed" / "reg.db");
    std::filesystem::copy_file(writable_db.string() + "-wal", source / "unindexed" / "reg.db-wal");
    writer.exec("DELETE FROM tags WHERE key = 'late'");
  }
  const std::string before = test::dump(writable_db);
  {  // the last read-write connection to close removes -wal and -shm
    auto last = test::raw(writable_db);
    (void)last.execAndGet("SELECT count(*) FROM sqlite_master");
  }
  REQUIRE_FALSE(std::filesystem::exists(writable_db.string() + "-wal"));
  REQUIRE_FALSE(std::filesystem::exists(writable_db.string() + "-shm"));

  const auto view = dir / "read-only";
  std::string why;
  if (!make_read_only_view(source, view, why)) {
    MESSAGE("skipped: ", why);
    return;
  }
  std::optional<std::string> after;  // the dump once the directory is writable again
  struct Restore {
    std::filesystem::path source, view, db;
    std::optional<std::string>& after;
    ~Restore() {
      drop_read_only_view(source, view);
      after = test::dump(db);
      CHECK(*after == before_dump);
    }
    std::string before_dump;
  } restore{source, view, writable_db, after, before};
  db = view / "reg.db";
  const std::string outside = (dir / "out").string();
  std::filesystem::create_directory(outside);

  auto reading_commands_work = [&](const std::string& expect_tag) {
    CHECK(ok({"--read-only", "--json", "list"}).parsed().size() == 2);
    const auto shown = ok({"--read-only", "--json", "show", "fraud@3"}).parsed();
    CHECK(shown["tags"].contains("late") == !expect_tag.empty());
    CHECK(ok({"--read-only", "list", "fraud"}).out.find("* fraud@2") != std::string::npos);
    CHECK(ok({"--read-only", "--json", "history", "fraud"}).parsed().size() >= 5);
    CHECK(ok({"--read-only", "--json", "sql", "SELECT count(*) AS n FROM versions"}).parsed()[0]["n"] == 4);
    CHECK(ok({"--read-only", "--json", "verify"}).parsed()["ok"] == true);
    ok({"--read-only", "lineage", "fraud@3"});
    ok({"--read-only", "compare", "fraud@1", "fraud@2"});
    ok({"--read-only", "get", "fraud@1", "-o", outside + "/m1.bin", "--force"});
    CHECK(slurp(outside + "/m1.bin") == test::compressible_bytes(50'000, 1));
    std::filesystem::remove(outside + "/b.bundle");
    ok({"--read-only", "export", "fraud@1", "-o", outside + "/b.bundle"});
    // The library too: a read-only Registry and its SQL connection.
    modelreg::Options o;
    o.read_only = true;
    modelreg::Registry reg(db, o);
    CHECK(reg.list_models().size() == 2);
    CHECK(std::get<std::int64_t>(reg.query("SELECT count(*) FROM versions").rows.at(0).at(0)) == 4);
  };

  SUBCASE("without -wal and -shm: read immutable; a plain open names the directory and --read-only") {
    reading_commands_work("");
    refused({"list"}, 1, "--read-only");
    const Result plain = run({"list"});
    CHECK((plain.err.find("read-only file system") != std::string::npos ||
           plain.err.find("is not writable") != std::string::npos));
    refused({"sql", "SELECT 1"}, 1, "--read-only");
    refused({"register", "fraud", "--file", (dir / "m1.bin").string()}, 1, "--read-only");
    refused({"--read-only", "register", "fraud", "--file", (dir / "m1.bin").string()}, 1, "read-only");
    refused({"--read-only", "promote", "fraud@3"}, 1, "read-only");
    CHECK_FALSE(std::filesystem::exists(writable_db.string() + "-wal"));
    CHECK_FALSE(std::filesystem::exists(writable_db.string() + "-shm"));
  }
  SUBCASE("with -wal and -shm (a writer has it open): reads see the latest commit; writes are refused") {
    if (::geteuid() != 0) {
      MESSAGE("skipped: a writer through another path needs a read-only mount (run as root)");
      return;
    }
    auto writer = test::raw(writable_db);  // through the writable path
    writer.exec("PRAGMA wal_autocheckpoint = 0");
    writer.exec("INSERT INTO tags(version_id, key, value) SELECT id, 'late', 'yes' FROM versions WHERE number = 3");
    REQUIRE(std::filesystem::exists(writable_db.string() + "-shm"));
    reading_commands_work("yes");
    const std::string now = test::dump(writable_db);
    refused({"--read-only", "register", "fraud", "--file", (dir / "m1.bin").string()}, 1, "read-only");
    refused({"register", "fraud", "--file", (dir / "m1.bin").string()}, 1, "read-only");
    CHECK(test::dump(writable_db) == now);
    writer.exec("DELETE FROM tags WHERE key = 'late'");
  }
  SUBCASE("with a -wal but no -shm: refused, naming the log and the fix, never read stale") {
    db = view / "unindexed" / "reg.db";
    refused({"--read-only", "list"}, 1, "write-ahead log");
    refused({"--read-only", "sql", "SELECT 1"}, 1, "copy the database with its -wal to a writable directory");
  }
}

TEST_CASE_FIXTURE(Cli, "register --format modelreg-model refuses garbage, and a model archive without a probe unless --no-probe") {
  const auto csv = write_data(*this, "train.csv", 400, 1);
  ok({"train", "fraud", "--csv", csv.string(), "--target", "is_fraud", "--type", "decision_tree"});
  const auto archive = dir / "model.archive";
  ok({"get", "fraud@1", "-o", archive.string()});
  const std::string type = ok({"--json", "show", "fraud@1"}).parsed()["type_name"];

  // Garbage, and an archive cut short: not stored, named as not a model archive.
  refused({"register", "m", "--file", file("junk.bin", "not a model at all").string(), "--format", "modelreg-model"}, 1,
          "is not a model archive");
  const std::string bytes = slurp(archive);
  refused({"register", "m", "--file", file("cut.bin", bytes.substr(0, bytes.size() / 2)).string(), "--format",
           "modelreg-model", "--no-probe"},
          1, "is not a model archive");
  // A real archive: refused by default, naming the fixes; a wrong --type or feature count refused too.
  refused({"register", "m", "--file", archive.string(), "--format", "modelreg-model"}, 1, "--no-probe");
  const Result r = run({"register", "m", "--file", archive.string(), "--format", "modelreg-model"});
  CHECK(r.err.find("modelreg train") != std::string::npos);
  CHECK(r.err.find("modelreg export") != std::string::npos);
  refused({"register", "m", "--file", archive.string(), "--format", "modelreg-model", "--no-probe", "--type", "Other"}, 1,
          "holds a '" + type + "' model");
  refused({"register", "m", "--file", archive.string(), "--format", "modelreg-model", "--no-probe", "--feature", "a"}, 1,
          "features are listed");
  CHECK(run({"--json", "list"}).parsed().size() == 1);  // nothing registered
  // --no-probe: registered, with a warning, and no load accepts it as a model.
  const Result unvalidated = run({"--json", "register", "m", "--file", archive.string(), "--format", "modelreg-model",
                                  "--no-probe"});
  REQUIRE(unvalidated.status == 0);
  CHECK(unvalidated.err.find("warning: m@1 has no validation probe") != std::string::npos);
  CHECK(unvalidated.parsed()["type_name"] == type);
  refused({"predict", "m@1", "--csv", csv.string()}, 1, "probe");
  // Other formats are opaque bytes, as before.
  ok({"register", "m", "--file", file("junk2.bin", "opaque").string(), "--format", "onnx"});
}
