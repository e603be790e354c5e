// Fuzzes Registry::import_bundle (modelreg/registry.hpp): the fuzz input is written to a file and
// imported into a fresh copy of a small registry (bundle_fixture.hpp), both in a directory
// created once per process under $MODELREG_FUZZ_TMP, else /dev/shm (tmpfs: no disk I/O).
//
// Properties:
// - every failure is a modelreg::Error, never busy (nothing else uses the files);
// - a refused import leaves the registry unchanged: the row count of every table is the same;
// - an accepted import adds exactly the versions it reports as imported, and the registry then
//   passes Registry::check (integrity, foreign keys, every version's checksums).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "bundle_fixture.hpp"
#include "fuzz_check.hpp"
#include "modelreg/registry.hpp"

namespace {

namespace fs = std::filesystem;
using modelreg::Errc;
using modelreg::fuzz::check;

struct Scratch {
  fs::path dir;
  fs::path fixture;
  fs::path db;
  fs::path bundle;
  std::string count_sql;      // one row: the row count of every table
  std::string fixture_bytes;  // the fixture database file, copied to `db` before every input

  Scratch() {
    // fuzz/run.sh names a directory it removes afterwards (an aborted run skips our destructor).
    const char* parent = std::getenv("MODELREG_FUZZ_TMP");
    std::string pattern = (parent != nullptr ? std::string(parent)
                           : fs::exists("/dev/shm") ? std::string("/dev/shm")
                                                    : fs::temp_directory_path().string()) +
                          "/modelreg-bundle-fuzz-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) modelreg::fuzz::fail("mkdtemp failed", pattern);
    dir = pattern;
    fixture = dir / "fixture.db";
    db = dir / "registry.db";
    bundle = dir / "input.mrb";
    modelreg::fuzz::make_fixture(fixture);
    modelreg::Registry reg(fixture, modelreg::fuzz::fixture_options());
    const auto tables = reg.query("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name");
    for (const auto& row : tables.rows) {
      const auto& name = std::get<std::string>(row.at(0));
      count_sql += (count_sql.empty() ? "SELECT " : ", ") + std::string("(SELECT count(*) FROM \"") + name + "\")";
    }
    std::ifstream in(fixture, std::ios::binary);
    fixture_bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    check(!fixture_bytes.empty(), "reading the fixture");
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }

  std::vector<std::int64_t> counts(const modelreg::Registry& reg) const {
    std::vector<std::int64_t> out;
    const modelreg::SqlResult result = reg.query(count_sql);
    for (const auto& v : result.rows.at(0)) out.push_back(std::get<std::int64_t>(v));
    return out;
  }
};

Scratch& scratch() {
  static Scratch s;  // destroyed at exit: the directory goes with it
  return s;
}

std::int64_t version_count(const modelreg::Registry& reg) {
  return std::get<std::int64_t>(reg.query("SELECT count(*) FROM versions").rows.at(0).at(0));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Scratch& s = scratch();
  {
    std::ofstream out(s.bundle, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    check(static_cast<bool>(out.flush()), "writing the input file");
  }
  for (const char* suffix : {"-wal", "-shm", "-journal"}) fs::remove(s.db.string() + suffix);
  {
    // Not fs::copy_file: its sendfile() gives up on EINTR, and libFuzzer's -timeout timer is a
    // signal every second. (std::ofstream retries.)
    std::ofstream out(s.db, std::ios::binary | std::ios::trunc);
    out.write(s.fixture_bytes.data(), static_cast<std::streamsize>(s.fixture_bytes.size()));
    check(static_cast<bool>(out.flush()), "writing the registry file");
  }

  modelreg::Registry reg(s.db, modelreg::fuzz::fixture_options());
  const auto before = s.counts(reg);
  const std::int64_t versions_before = version_count(reg);
  try {
    const modelreg::ImportReport report = reg.import_bundle(s.bundle);
    check(version_count(reg) == versions_before + static_cast<std::int64_t>(report.imported.size()),
          "an import adds exactly the versions it reports");
    const modelreg::IntegrityReport integrity = reg.check();
    std::string problems;
    for (const auto& p : integrity.database_problems) problems += p + "; ";
    for (const auto& [id, what] : integrity.bad_versions) problems += id.to_string() + ": " + what + "; ";
    check(integrity.ok(), "the registry is consistent after an import", problems);
  } catch (const modelreg::Error& e) {
    // Any code but busy: nothing else holds the files. (A damaged bundle is sometimes io_error
    // rather than corruption, where an SQLite error is converted generically: see docs/fuzzing.md.)
    check(e.code() != Errc::busy, "a refused bundle is not busy", e.what());
    check(s.counts(reg) == before, "a refused import leaves every table as it was", e.what());
  }
  return 0;
}
