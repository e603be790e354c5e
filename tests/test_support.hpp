// Helpers shared by the tests: a temporary directory, deterministic bytes, raw SQL access.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

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

// Flips bits of one byte of a stored blob chunk, as a failing disk would: the incremental blob API
// bypasses the triggers that keep chunks immutable, and the length never changes. `file` is the
// registry (or a bundle); `rowid_sql` selects the chunk's rowid. Returns nothing; REQUIREs success.
inline void flip_chunk_byte(const std::filesystem::path& file, const std::string& rowid_sql, int offset = 0,
                            unsigned char mask = 0x80) {
  SQLite::Database d(file, SQLite::OPEN_READWRITE);
  const auto rowid = d.execAndGet(rowid_sql).getInt64();
  sqlite3_blob* b = nullptr;
  if (sqlite3_blob_open(d.getHandle(), "main", "blob_chunks", "data", rowid, 1, &b) != SQLITE_OK) {
    throw std::runtime_error("flip_chunk_byte: cannot open the chunk");
  }
  unsigned char byte = 0;
  sqlite3_blob_read(b, &byte, 1, offset);
  byte ^= mask;
  sqlite3_blob_write(b, &byte, 1, offset);
  sqlite3_blob_close(b);
}

// The rowid of the first chunk of version NUMBER (of any model).
inline std::string first_chunk_of_version(int number) {
  return "SELECT c.rowid FROM blob_chunks c JOIN versions v ON v.blob_id = c.blob_id WHERE v.number = " +
         std::to_string(number) + " ORDER BY c.seq LIMIT 1";
}

inline std::string integrity_check(const std::filesystem::path& db) {
  auto d = raw(db, false);
  return d.execAndGet("PRAGMA integrity_check").getString();
}

// Every table of a database, each row in full (blobs as hex), rows sorted: equal dumps mean
// equal content.
inline std::string dump(const std::filesystem::path& db) {
  SQLite::Database d(db, SQLite::OPEN_READONLY);
  std::string out = "user_version=" + d.execAndGet("PRAGMA user_version").getString() + "\n";
  std::vector<std::string> tables;
  {
    SQLite::Statement q(d, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
    while (q.executeStep()) tables.push_back(q.getColumn(0).getString());
  }
  for (const auto& t : tables) {
    std::vector<std::string> rows;
    SQLite::Statement q(d, "SELECT * FROM \"" + t + "\"");
    while (q.executeStep()) {
      std::string row;
      for (int i = 0; i < q.getColumnCount(); ++i) {
        const auto c = q.getColumn(i);
        if (c.isBlob()) {
          const auto* p = static_cast<const unsigned char*>(c.getBlob());
          for (int j = 0; j < c.getBytes(); ++j) {
            static const char* hex = "0123456789abcdef";
            row += hex[p[j] >> 4];
            row += hex[p[j] & 15];
          }
        } else {
          row += c.isNull() ? "NULL" : c.getString();
        }
        row += '|';
      }
      rows.push_back(std::move(row));
    }
    std::sort(rows.begin(), rows.end());
    out += t + " (" + std::to_string(rows.size()) + " rows)\n";
    for (const auto& r : rows) out += r + '\n';
  }
  return out;
}

// Tests that need Python packages (scikit-learn, XGBoost through /usr/bin/python3) pass with a
// message when they are missing, except under ./run.sh test, which installs them and sets
// MODELREG_REQUIRE_PYTHON_DEPS: there a missing package is a failure, never a silent skip.
inline bool python_deps_required() { return std::getenv("MODELREG_REQUIRE_PYTHON_DEPS") != nullptr; }

}  // namespace test
