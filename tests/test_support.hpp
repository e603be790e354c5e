// Helpers shared by the tests: a temporary directory, deterministic bytes, raw SQL access.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>

#include <sqlite3.h>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include "modelreg/registry.hpp"

namespace test {

// A fresh directory under $TMPDIR, removed with everything in it when the object dies.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "modelreg-test-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// Incompressible bytes (uniformly random) from a seed.
inline std::string random_bytes(std::size_t size, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::string out(size, '\0');
  for (std::size_t i = 0; i < size; i += 8) {
    std::uint64_t v = rng();
    for (std::size_t j = 0; j < 8 && i + j < size; ++j) out[i + j] = static_cast<char>(v >> (8 * j));
  }
  return out;
}

// Bytes that compress (a few symbols, some structure), from a seed.
inline std::string compressible_bytes(std::size_t size, unsigned seed) {
  std::mt19937 rng(seed);
  std::string out(size, '\0');
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<char>('a' + (rng() % 8) + (i % 97 == 0 ? 10 : 0));
  return out;
}

inline modelreg::NewVersion spec(const std::string& model, std::string format = "bytes") {
  modelreg::NewVersion s;
  s.model = model;
  s.format = std::move(format);
  return s;
}

inline modelreg::ModelRef ref(const std::string& text) { return modelreg::ModelRef::parse(text); }

// A second, raw connection to the same file, as a user of the sqlite3 shell would have.
inline SQLite::Database raw(const std::filesystem::path& db, bool writable = true) {
  SQLite::Database d(db, writable ? SQLite::OPEN_READWRITE : SQLite::OPEN_READONLY, 10'000);
  d.exec("PRAGMA foreign_keys = ON");
  return d;
}

inline std::string integrity_check(const std::filesystem::path& db) {
  auto d = raw(db, false);
  return d.execAndGet("PRAGMA integrity_check").getString();
}

}  // namespace test
