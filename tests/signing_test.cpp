// Signed versions: a registry with a key signs what it registers and refuses to promote, roll back
// to, load or serve a version that is unsigned, signed with another key, or changed after it was
// signed — before any of its bytes are deserialized — and leaves the database as it was.
#include <sys/stat.h>

#include <fstream>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "modelreg/active_watcher.hpp"
#include "modelreg/model_archive.hpp"
#include "modelreg/training.hpp"
#include "model_test_support.hpp"
#include "test_support.hpp"

using namespace modelreg;
using test::code_of;
using test::contains;
using test::message_of;

namespace {

const std::string kKeyA = "0123456789abcdef0123456789abcdef";
const std::string kKeyB = "fedcba9876543210fedcba9876543210";

Options with_key(const std::optional<std::string>& key) {
  Options o;
  o.signing_key = key;
  return o;
}

struct Fixture {
  test::TempDir dir;
  std::filesystem::path db = dir / "r.db";
  TrainTestSplit data = test::small_fraud();

  // fraud@N saved through a registry holding `key` (none: unsigned).
  ModelVersion save(const std::optional<std::string>& key, double c = 0.05) {
    Registry reg(db, with_key(key));
    auto m = train_model("logistic_regression", data.train, {{"C", fmt::format("{}", c)}});
    NewVersion spec;
    spec.model = "fraud";
    spec.metrics = {{"auc", 0.91}};
    spec.datasets = {{"s3://bucket/train.csv", std::nullopt, "train"}};
    return reg.save_model(*m, spec, data.test.x);
  }

  // fraud@1; fraud@2 with every signed field filled in (label, notes, a parent, hyperparameters,
  // typed features, metrics, data sets with and without a checksum, the probe); fraud@3 without a
  // parent. All signed with kKeyA.
  void save_three() {
    save(kKeyA);
    {
      Registry reg(db, with_key(kKeyA));
      auto m = train_model("logistic_regression", data.train, {{"C", "0.5"}});
      NewVersion spec;
      spec.model = "fraud";
      spec.label = "v2";
      spec.notes = "retrained on more data";
      spec.metrics = {{"auc", 0.93}, {"f1", 0.81}};
      spec.parents = {{ModelRef::parse("fraud@1"), "retrained_from"}};
      for (const auto& name : data.train.feature_names) spec.features.push_back({name, "float64"});
      spec.datasets = {{"s3://bucket/train.csv", std::string(64, 'a'), "train"},
                       {"s3://bucket/test.csv", std::nullopt, "test"}};
      reg.save_model(*m, spec, data.test.x);
    }
    save(kKeyA, 0.9);
  }

  // Tampering as someone with write access to the file would: first the triggers that seal a
  // committed version's rows (immutable, sealed against inserts, kept against deletes), then the
  // edit, which must change at least one row.
  void tamper(const std::string& sql) {
    auto d = test::raw(db);
    std::vector<std::string> seals;
    SQLite::Statement q(d, "SELECT name FROM sqlite_master WHERE type = 'trigger' AND (name GLOB '*_immutable' OR "
                           "name GLOB '*_sealed' OR name GLOB '*_kept') AND name NOT GLOB 'signatures_*'");
    while (q.executeStep()) seals.push_back(q.getColumn(0).getString());
    for (const auto& t : seals) d.exec(fmt::format("DROP TRIGGER {}", t));
    INFO(sql);
    REQUIRE(d.exec(sql) >= 1);
  }

  // What a refusal must leave untouched.
  std::string snapshot() {
    auto d = test::raw(db, false);
    return fmt::format("{}|{}|{}|{}", d.execAndGet("SELECT count(*) FROM events").getInt64(),
                       d.execAndGet("SELECT group_concat(number) FROM versions WHERE is_active = 1").getString(),
                       d.execAndGet("SELECT group_concat(number || status) FROM versions").getString(),
                       d.execAndGet("SELECT count(*) FROM signatures").getInt64());
  }

  // Every way of using `ref` through a registry holding `key` fails with validation_failed and a
  // message containing `needle` (or, for the uses named in `needle_for`, that needle), and the
  // database is unchanged.
  void refused(const std::optional<std::string>& key, const std::string& ref_text, const std::string& needle,
               const std::map<std::string, std::string>& needle_for = {}) {
    Registry reg(db, with_key(key));
    const ModelRef ref = ModelRef::parse(ref_text);
    const std::string before = snapshot();
    const std::vector<std::pair<const char*, std::function<void()>>> uses = {
        {"promote", [&] { reg.promote(ref); }},
        {"load_model", [&] { reg.load_model(ref); }},
        {"load_bytes", [&] { reg.load_bytes(ref); }},
        {"load_to_file", [&] { reg.load_to_file(ref, dir / "out.bin"); }},
        {"verify", [&] { reg.verify(ref); }},
    };
    for (const auto& [what, use] : uses) {
      INFO("use: ", std::string(what));
      CHECK(code_of(use) == Errc::validation_failed);
      const std::string message = message_of(use);
      INFO("message: ", message);
      CHECK(contains(message, ref_text));
      CHECK(contains(message, needle_for.contains(what) ? needle_for.at(what) : needle));
    }
    CHECK_FALSE(std::filesystem::exists(dir / "out.bin"));
    CHECK(snapshot() == before);
  }
};

}  // namespace

TEST_CASE_FIXTURE(Fixture, "a registry with a key signs what it registers and uses it") {
  const ModelVersion v = save(kKeyA);
  REQUIRE(v.signature.has_value());
  CHECK(v.signature->algorithm == "hmac-sha256");
  CHECK(v.signature->key_id == signing_key_id(kKeyA));
  CHECK(v.signature->key_id.size() == 16);
  CHECK(v.signature->signed_at == v.created_at);
  CHECK(v.signature->signed_by == v.created_by);

  Registry reg(db, with_key(kKeyA));
  CHECK(reg.promote(ModelRef::parse("fraud@1")).to_version == 1);
  const auto loaded = reg.load_model(ModelRef::parse("fraud"));
  CHECK(loaded.version.signature->key_id == signing_key_id(kKeyA));
  CHECK_NOTHROW(reg.verify(ModelRef::parse("fraud@1")));
  // A registry without a key reads signatures but does not check them.
  Registry plain(db);
  CHECK(plain.get(ModelRef::parse("fraud@1")).signature.has_value());
  CHECK_NOTHROW(plain.load_model(ModelRef::parse("fraud@1")));
  // The SQL view names the key.
  auto d = test::raw(db, false);
  CHECK(d.execAndGet("SELECT key_id FROM version_signatures WHERE model = 'fraud' AND version = 1").getString() ==
        signing_key_id(kKeyA));
}

TEST_CASE_FIXTURE(Fixture, "no signature: refused with the fix, until someone with the key signs it") {
  save(std::nullopt);
  CHECK_FALSE(Registry(db).get(ModelRef::parse("fraud@1")).signature.has_value());
  refused(kKeyA, "fraud@1", "is not signed");

  Registry reg(db, with_key(kKeyA));
  const ModelVersion signed_now = reg.sign(ModelRef::parse("fraud@1"), Change{"", "alice"});
  REQUIRE(signed_now.signature.has_value());
  CHECK(signed_now.signature->signed_by == "alice");
  CHECK(reg.sign(ModelRef::parse("fraud@1")).signature->signed_by == "alice");  // already signed: unchanged
  CHECK(reg.promote(ModelRef::parse("fraud@1")).to_version == 1);
  CHECK_NOTHROW(reg.load_model(ModelRef::parse("fraud@1")));
  // Signing needs a key.
  CHECK(code_of([&] { Registry(db).sign(ModelRef::parse("fraud@1")); }) == Errc::invalid_argument);
}

TEST_CASE_FIXTURE(Fixture, "wrong key: refused naming both keys; a signature never changes") {
  save(kKeyA);
  refused(kKeyB, "fraud@1", signing_key_id(kKeyA));
  refused(kKeyB, "fraud@1", signing_key_id(kKeyB));
  Registry b(db, with_key(kKeyB));
  CHECK(code_of([&] { b.sign(ModelRef::parse("fraud@1")); }) == Errc::conflict);
  auto d = test::raw(db);
  CHECK_THROWS_WITH(d.exec("UPDATE signatures SET key_id = '0000000000000000'"), doctest::Contains("immutable"));
  CHECK_THROWS_WITH(d.exec("DELETE FROM signatures"), doctest::Contains("deleted only with its version"));
}

TEST_CASE_FIXTURE(Fixture, "tampered metadata: every immutable field is covered by the signature") {
  // One edit of fraud@2 per field of the signed message (lib/src/store/signing.cpp,
  // signing_message): each column of each section, and rows added to or removed from a section.
  const std::string v2 = "(SELECT id FROM versions WHERE number = 2)";
  const std::string v3 = "(SELECT id FROM versions WHERE number = 3)";
  struct Edit {
    const char* what;
    std::string sql;
    const char* ref = "fraud@2";  // the edit may rename the version
    bool only_this_version = true;  // false: the edit changes every version's message
    std::map<std::string, std::string> needle_for = {};  // uses refused by an earlier check
  };
  const std::vector<Edit> edits = {
      // The version row and its blob's row.
      {"model name", "UPDATE models SET name = 'fraud2' WHERE name = 'fraud'", "fraud2@2", false},
      {"number", "UPDATE versions SET number = 9 WHERE number = 2", "fraud@9"},
      {"label", "UPDATE versions SET label = 'v9' WHERE number = 2"},
      {"label removed", "UPDATE versions SET label = NULL WHERE number = 2"},
      // load_model compares the format with its own before it reads the signature: also a refusal.
      {"format", "UPDATE versions SET format = 'onnx' WHERE number = 2", "fraud@2", true,
       {{"load_model", "validation failed at the format check"}}},
      {"type", "UPDATE versions SET type_name = 'random_forest' WHERE number = 2"},
      {"feature count", "UPDATE versions SET feature_count = feature_count + 1 WHERE number = 2"},
      {"notes", "UPDATE versions SET notes = 'approved by risk' WHERE number = 2"},
      {"created_at", "UPDATE versions SET created_at = '2020-01-01T00:00:00.000Z' WHERE number = 2"},
      {"created_by", "UPDATE versions SET created_by = 'mallory' WHERE number = 2"},
      {"blob size", "UPDATE blobs SET raw_size = raw_size + 1 WHERE id = (SELECT blob_id FROM versions WHERE number = 2)"},
      // (The blob's checksum and the blob itself: the next test case.)
      {"metric value", "UPDATE metrics SET value = 0.99 WHERE version_id = " + v2 + " AND name = 'auc'"},
      {"metric name", "UPDATE metrics SET name = 'roc_auc' WHERE version_id = " + v2 + " AND name = 'auc'"},
      {"metric added", "INSERT INTO metrics(version_id, name, value) VALUES (" + v2 + ", 'precision', 0.99)"},
      {"metric removed", "DELETE FROM metrics WHERE version_id = " + v2 + " AND name = 'f1'"},
      {"param value", "UPDATE params SET value = '1000' WHERE version_id = " + v2 + " AND name = 'C'"},
      {"param name", "UPDATE params SET name = 'lambda' WHERE version_id = " + v2 + " AND name = 'C'"},
      {"param added", "INSERT INTO params(version_id, name, value) VALUES (" + v2 + ", 'penalty', 'l1')"},
      {"param removed", "DELETE FROM params WHERE version_id = " + v2 + " AND name = 'C'"},
      {"feature name", "UPDATE features SET name = 'renamed' WHERE version_id = " + v2 + " AND position = 0"},
      {"feature dtype", "UPDATE features SET dtype = 'int32' WHERE version_id = " + v2 + " AND position = 0"},
      {"feature position", "UPDATE features SET position = 100 WHERE version_id = " + v2 + " AND position = 0"},
      {"feature removed", "DELETE FROM features WHERE version_id = " + v2 + " AND position = 0"},
      {"lineage relation", "UPDATE lineage SET relation = 'fine_tuned_from' WHERE child_id = " + v2},
      {"lineage parent", "UPDATE lineage SET parent_id = " + v3 + " WHERE child_id = " + v2},
      {"lineage added", "INSERT INTO lineage(child_id, parent_id, relation) VALUES (" + v2 + ", " + v3 + ", 'derived_from')"},
      {"lineage removed", "DELETE FROM lineage WHERE child_id = " + v2},
      {"dataset uri", "UPDATE datasets SET uri = 's3://elsewhere/train.csv' WHERE version_id = " + v2 + " AND role = 'train'"},
      {"dataset checksum", "UPDATE datasets SET sha256 = '" + std::string(64, 'b') + "' WHERE version_id = " + v2 +
                               " AND role = 'train'"},
      {"dataset checksum removed", "UPDATE datasets SET sha256 = NULL WHERE version_id = " + v2 + " AND role = 'train'"},
      {"dataset role", "UPDATE datasets SET role = 'validation' WHERE version_id = " + v2 + " AND role = 'test'"},
      {"dataset added", "INSERT INTO datasets(version_id, uri, sha256, role) VALUES (" + v2 +
                            ", 's3://bucket/extra.csv', NULL, 'train')"},
      {"dataset removed", "DELETE FROM datasets WHERE version_id = " + v2 + " AND role = 'test'"},
      {"probe outputs", "UPDATE probes SET outputs = zeroblob(length(outputs)) WHERE version_id = " + v2},
      {"probe inputs", "UPDATE probes SET inputs = zeroblob(length(inputs)) WHERE version_id = " + v2},
      {"probe rows", "UPDATE probes SET n_rows = n_rows - 1, inputs = substr(inputs, 1, 8 * (n_rows - 1) * n_features), "
                     "outputs = substr(outputs, 1, 8 * (n_rows - 1)) WHERE version_id = " + v2},
      {"probe width", "UPDATE probes SET n_features = n_features - 1, inputs = substr(inputs, 1, 8 * n_rows * "
                      "(n_features - 1)) WHERE version_id = " + v2},
      {"probe removed", "DELETE FROM probes WHERE version_id = " + v2},
  };
  // Each edit on its own copy of one registry (closed, so the file holds everything).
  test::TempDir original;
  db = original / "r.db";
  save_three();
  REQUIRE_FALSE(std::filesystem::exists(original / "r.db-wal"));
  for (const auto& edit : edits) {
    INFO("edit: ", std::string(edit.what));
    test::TempDir fresh;
    db = fresh / "r.db";
    std::filesystem::copy_file(original / "r.db", db);
    CHECK_NOTHROW(Registry(db, with_key(kKeyA)).verify(ModelRef::parse("fraud@2")));  // before the edit
    tamper(edit.sql);
    refused(kKeyA, edit.ref, "signature does not verify", edit.needle_for);
    // The other versions' signatures still verify (a renamed model renames them all: refused too).
    Registry reg(db, with_key(kKeyA));
    const auto versions = reg.list_versions(ModelRef::parse(edit.ref).model());
    CHECK(versions.size() == 3);
    for (const auto& v : versions) {
      if (v.ref_string() == edit.ref) continue;
      CAPTURE(v.ref_string());
      const auto use = [&] { reg.verify(ModelRef::number(v.id.model, v.id.number)); };
      if (edit.only_this_version) CHECK_NOTHROW(use());
      else CHECK(code_of(use) == Errc::validation_failed);
    }
  }
}

TEST_CASE_FIXTURE(Fixture, "tampered blob: damaged bytes fail the checksum, swapped bytes fail the signature") {
  save(kKeyA, 0.05);
  save(kKeyA, 0.5);
  {
    // fraud@1 now points at fraud@2's bytes (a valid model, a different one).
    tamper("UPDATE versions SET blob_id = (SELECT blob_id FROM versions WHERE number = 2) WHERE number = 1");
    refused(kKeyA, "fraud@1", "signature does not verify");
  }
  {
    // fraud@2's bytes changed, and its recorded checksum changed to match them.
    test::flip_chunk_byte(db, test::first_chunk_of_version(2), 0, 0x55);
    Registry reg(db, with_key(kKeyA));
    CHECK(code_of([&] { reg.load_model(ModelRef::parse("fraud@2")); }) == Errc::corruption);
    tamper("UPDATE blobs SET sha256 = '" + std::string(64, 'a') + "' WHERE id = (SELECT blob_id FROM versions WHERE number = 2)");
    refused(kKeyA, "fraud@2", "signature does not verify");
  }
}

TEST_CASE_FIXTURE(Fixture, "the signature is checked before any byte is deserialized") {
  // Bytes that claim to be a model archive but are not one: without a key the archive check
  // rejects them; with a key the missing signature does, first.
  {
    Registry reg(db);
    NewVersion spec;
    spec.model = "fraud";
    spec.format = std::string(kModelFormat);
    spec.type_name = "logistic_regression";
    reg.register_bytes(spec, "not an archive at all");
  }
  CHECK(code_of([&] { Registry(db).load_model(ModelRef::parse("fraud@1")); }) != Errc::validation_failed);
  Registry keyed(db, with_key(kKeyA));
  CHECK(code_of([&] { keyed.load_model(ModelRef::parse("fraud@1")); }) == Errc::validation_failed);
  CHECK(contains(message_of([&] { keyed.load_model(ModelRef::parse("fraud@1")); }), "is not signed"));
}

TEST_CASE_FIXTURE(Fixture, "rollback to an unsigned version is refused and changes nothing") {
  save(std::nullopt);
  save(kKeyA);
  Registry plain(db);
  plain.promote(ModelRef::parse("fraud@1"));
  Registry reg(db, with_key(kKeyA));
  reg.promote(ModelRef::parse("fraud@2"));
  const std::string before = snapshot();
  CHECK(code_of([&] { reg.rollback("fraud"); }) == Errc::validation_failed);
  CHECK(contains(message_of([&] { reg.rollback("fraud"); }), "fraud@1 is not signed"));
  CHECK(snapshot() == before);
}

TEST_CASE_FIXTURE(Fixture, "imported versions arrive unsigned; gc deletes a signed archived version") {
  save(kKeyA);
  save(kKeyA, 0.5);
  Registry reg(db, with_key(kKeyA));
  reg.export_bundle({ModelRef::parse("fraud@1")}, dir / "b.mrb");
  test::TempDir other;
  Registry target(other / "t.db", with_key(kKeyA));
  target.import_bundle(dir / "b.mrb");
  CHECK_FALSE(target.get(ModelRef::parse("fraud@1")).signature.has_value());
  CHECK(code_of([&] { target.promote(ModelRef::parse("fraud@1")); }) == Errc::validation_failed);
  target.sign(ModelRef::parse("fraud@1"));
  CHECK_NOTHROW(target.promote(ModelRef::parse("fraud@1")));

  reg.archive(ModelRef::parse("fraud@2"));
  GcOptions gc;
  gc.delete_archived = true;
  gc.include_rollback_history = true;
  CHECK(reg.gc(gc).versions_deleted.size() == 1);
  auto d = test::raw(db, false);
  CHECK(d.execAndGet("SELECT count(*) FROM signatures").getInt64() == 1);
  CHECK(test::integrity_check(db) == "ok");
}

TEST_CASE_FIXTURE(Fixture, "a watcher with a key keeps serving the signed version and reports why") {
  save(kKeyA);
  save(std::nullopt, 0.5);
  Registry plain(db);
  plain.promote(ModelRef::parse("fraud@1"));
  WatcherOptions o;
  o.background = false;
  o.signing_key = kKeyA;
  ActiveWatcher w(db, "fraud", o);
  w.poll_now();
  REQUIRE(w.current());
  CHECK(w.current()->version.id.number == 1);
  plain.promote(ModelRef::parse("fraud@2"));  // someone without the key
  w.poll_now();
  CHECK(w.current()->version.id.number == 1);
  const WatcherStatus s = w.status();
  CHECK(s.desired_version == 2);
  CHECK(s.load_failures == 1);
  REQUIRE(s.last_error.has_value());
  CHECK(contains(*s.last_error, "fraud@2 is not signed"));
}

TEST_CASE("key files: created secret and never overwritten; short, missing and empty keys refused") {
  test::TempDir dir;
  const auto file = dir / "key";
  const std::string key = create_signing_key(file);
  CHECK(key.size() == 64);
  struct stat st{};
  REQUIRE(::stat(file.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(read_signing_key(file) == key);  // the trailing newline is not part of the key
  CHECK(code_of([&] { create_signing_key(file); }) == Errc::already_exists);
  CHECK(read_signing_key(file) == key);

  std::ofstream(dir / "short") << "tooshort\n";
  CHECK(code_of([&] { read_signing_key(dir / "short"); }) == Errc::invalid_argument);
  CHECK(contains(message_of([&] { read_signing_key(dir / "short"); }), "modelreg keygen"));
  CHECK(code_of([&] { read_signing_key(dir / "missing"); }) == Errc::not_found);
  CHECK(code_of([&] { Registry(dir / "r.db", with_key("short")); }) == Errc::invalid_argument);
  CHECK(signing_key_id(kKeyA) != signing_key_id(kKeyB));
}
