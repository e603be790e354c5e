// The SQLite side of the registry: opening a connection with our pragmas, the migrations runner
// and the one place where SQLite::Exception becomes modelreg::Error.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Exception.h>

#include "modelreg/error.hpp"

namespace modelreg::detail {

// One numbered SQL file from migrations/, embedded at build time (see tools/embed_migrations.py).
struct Migration {
  int version;
  std::string_view name;
  std::string_view sql;
};

// The migrations compiled into this library, in order, numbered 1..N without gaps.
std::span<const Migration> embedded_migrations() noexcept;

// Applies every migration whose number is above PRAGMA user_version, each in its own IMMEDIATE
// transaction that re-reads user_version first (so concurrent openers apply each exactly once),
// and records it in schema_migrations. Returns the resulting user_version.
int apply_migrations(SQLite::Database& db, std::span<const Migration> migrations, std::string_view now);

// Converts an SQLite failure into an Error; `context` says what was being done ("registering fraud").
Error translate(const SQLite::Exception& e, std::string_view context);

// Runs `body`, converting SQLite exceptions into modelreg::Error (see translate). Other
// exceptions pass through unchanged.
template <class Body>
auto guarded(std::string_view context, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const SQLite::Exception& e) {
    throw translate(e, context);
  }
}

// A connection to the registry file at `path`, opened and read once (so that a file SQLite cannot
// use fails here). Read-write (created when missing) unless `read_only`.
//
// A database in WAL mode needs its -shm index, which SQLite creates beside the file: in a
// directory this process cannot write (a read-only mount, a directory without write permission)
// a read-only connection can use an existing -wal and -shm, and otherwise — when there is no
// -wal, or an empty one, so that the database file holds every commit — the file is opened
// immutable (no locks, no -shm; nobody can write a registry there). Every other case in such a
// directory is Error(io_error) naming the directory as the cause and the fix: --read-only
// (Options::read_only) to read, or a -wal that only a writable directory can fold in. Other
// failures are thrown as SQLite::Exception, for translate().
std::unique_ptr<SQLite::Database> open_connection(const std::filesystem::path& path, bool read_only,
                                                  int busy_timeout_ms);

// Why SQLite treats `path` as read-only ("its directory '/srv' is on a read-only file system"),
// for messages; empty when the file and its directory are writable.
std::string read_only_cause(const std::filesystem::path& path);

// PRAGMA user_version.
int user_version(SQLite::Database& db);

// Whether a non-empty database holds a modelreg schema: a user_version above 0, the models and
// versions tables, and migration 1 recorded in schema_migrations. Only reads.
bool is_modelreg_database(SQLite::Database& db);

// A named SAVEPOINT inside a transaction: released by release(), rolled back (to its start) by
// rollback() or by the destructor.
class Savepoint {
 public:
  Savepoint(SQLite::Database& db, std::string name);
  ~Savepoint();
  Savepoint(const Savepoint&) = delete;
  Savepoint& operator=(const Savepoint&) = delete;

  void release();
  void rollback();

 private:
  SQLite::Database& db_;
  std::string name_;
  bool done_ = false;
};

}  // namespace modelreg::detail
