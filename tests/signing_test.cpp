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

  // Tampering as someone with write access to the file would: the immutability triggers first.
  void tamper(const std::string& sql) {
    auto d = test::raw(db);
    for (const char* t : {"versions_immutable", "metrics_immutable", "blobs_immutable", "features_immutable",
                          "probes_immutable", "datasets_immutable"}) {
      d.exec(fmt::format("DROP TRIGGER IF EXISTS {}", t));
    }
    d.exec(sql);
  }

  // What a refusal must leave untouched.
  std::string snapshot() {
    auto d = test::raw(db, false);
    return fmt::format("{}|{}|{}", d.execAndGet("SELECT count(*) FROM events").getInt64(),
                       d.execAndGet("SELECT group_concat(number) FROM versions WHERE is_active = 1").getString(),
                       d.execAndGet("SELECT count(*) FROM signatures").getInt64());
  }

  // Every way of using `ref` through a registry holding `key` fails with validation_failed and a
  // message containing `needle`, and the database is unchanged.
  void refused(const std::optional<std::string>& key, const std::string& ref_text, const std::string& needle) {
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
      CAPTURE(what);
      CHECK(code_of(use) == Errc::validation_failed);
      const std::string message = message_of(use);
      CHECK(contains(message, ref_text));
      CHECK(contains(message, needle));
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
  const std::vector<std::pair<const char*, std::string>> edits = {
      {"notes", "UPDATE versions SET notes = 'approved by risk' WHERE number = 1"},
      {"created_by", "UPDATE versions SET created_by = 'mallory' WHERE number = 1"},
      {"type", "UPDATE versions SET type_name = 'random_forest' WHERE number = 1"},
      {"metric", "UPDATE metrics SET value = 0.99 WHERE name = 'auc'"},
      {"feature", "UPDATE features SET name = 'renamed' WHERE position = 0"},
      {"dataset", "UPDATE datasets SET uri = 's3://elsewhere/train.csv'"},
      {"probe", "UPDATE probes SET outputs = zeroblob(length(outputs))"},
  };
  for (const auto& [what, sql] : edits) {
    CAPTURE(what);
    test::TempDir fresh;
    db = fresh / "r.db";
    save(kKeyA);
    tamper(sql);
    refused(kKeyA, "fraud@1", "signature does not verify");
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
