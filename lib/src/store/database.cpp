#include "store/database.hpp"

#include <ctime>

#include <fmt/format.h>
#include <sqlite3.h>

#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>

namespace modelreg::detail {

Error translate(const SQLite::Exception& e, std::string_view context) {
  const int code = e.getErrorCode() & 0xff;
  const std::string what = e.what();
  switch (code) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Error(Errc::busy, fmt::format("{}: the database stayed locked by another writer past the "
                                           "busy timeout; retry, or raise the busy timeout ({})",
                                           context, what));
    case SQLITE_CONSTRAINT: {
      // Our triggers prefix their messages with "modelreg: "; show the sentence without it.
      std::string_view message = what;
      if (message.starts_with("modelreg: ")) message.remove_prefix(10);
      return Error(Errc::conflict, fmt::format("{}: {}", context, message));
    }
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Error(Errc::corruption,
                   fmt::format("{}: the file is not a modelreg database or is damaged ({}); check the "
                               "path, or restore it from a backup",
                               context, what));
    case SQLITE_FULL:
      return Error(Errc::io_error, fmt::format("{}: the disk is full ({}); free space and retry — "
                                               "nothing was written",
                                               context, what));
    case SQLITE_IOERR: {
      // SQLite reports SQLITE_FULL only for ENOSPC; a write refused for another reason (EFBIG
      // past a file-size limit, EDQUOT, EIO) is SQLITE_IOERR_WRITE and the like.
      const int extended = e.getExtendedErrorCode();
      if (extended == SQLITE_IOERR_WRITE || extended == SQLITE_IOERR_FSYNC || extended == SQLITE_IOERR_TRUNCATE ||
          extended == SQLITE_IOERR_DIR_FSYNC || extended == SQLITE_IOERR_SHMSIZE) {
        return Error(Errc::io_error,
                     fmt::format("{}: the operating system refused to write the database ({}): the disk is full, "
                                 "a quota or file size limit (ulimit -f) was reached, or the disk failed; free space "
                                 "or raise the limit and retry — nothing was committed",
                                 context, what));
      }
      return Error(Errc::io_error, fmt::format("{}: the operating system refused to read or write the database ({}); "
                                               "check the disk and the file's permissions",
                                               context, what));
    }
    case SQLITE_READONLY:
      return Error(Errc::io_error, fmt::format("{}: the database is read-only ({}); check the file's "
                                               "and its directory's permissions",
                                               context, what));
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return Error(Errc::io_error, fmt::format("{}: cannot open the database ({})", context, what));
    default:
      return Error(Errc::io_error, fmt::format("{}: {}", context, what));
  }
}

bool is_modelreg_database(SQLite::Database& db) {
  const int version = user_version(db);
  if (version <= 0) return false;
  const auto tables =
      db.execAndGet("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('schema_migrations', "
                    "'models', 'versions')")
          .getInt();
  if (tables != 3) return false;
  // The first migration is recorded in every registry (a newer one records more this build
  // does not know).
  SQLite::Statement q(db, "SELECT 1 FROM schema_migrations WHERE version = 1");
  return q.executeStep();
}

int user_version(SQLite::Database& db) {
  return db.execAndGet("PRAGMA user_version").getInt();
}

int apply_migrations(SQLite::Database& db, std::span<const Migration> migrations, std::string_view now) {
  int expected = 1;
  for (const auto& m : migrations) {
    if (m.version != expected++) {
      throw Error(Errc::incompatible, fmt::format("migration {} is out of order; migrations must be "
                                                  "numbered 1..N without gaps",
                                                  m.name));
    }
  }
  int current = user_version(db);
  for (const auto& m : migrations) {
    if (m.version <= current) continue;
    SQLite::Transaction txn(db, SQLite::TransactionBehavior::IMMEDIATE);
    // Another process may have applied it while we waited for the write lock.
    current = user_version(db);
    if (m.version <= current) continue;
    db.exec(std::string(m.sql));
    db.exec(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)");
    SQLite::Statement record(db, "INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)");
    record.bind(1, m.version);
    record.bind(2, std::string(m.name));
    record.bind(3, std::string(now));
    record.exec();
    db.exec(fmt::format("PRAGMA user_version = {}", m.version));
    txn.commit();
    current = m.version;
  }
  return current;
}

Savepoint::Savepoint(SQLite::Database& db, std::string name) : db_(db), name_(std::move(name)) {
  db_.exec("SAVEPOINT " + name_);
}

Savepoint::~Savepoint() {
  if (done_) return;
  std::string sql = "ROLLBACK TO " + name_ + "; RELEASE " + name_;
  sqlite3_exec(db_.getHandle(), sql.c_str(), nullptr, nullptr, nullptr);
}

void Savepoint::release() {
  db_.exec("RELEASE " + name_);
  done_ = true;
}

void Savepoint::rollback() {
  db_.exec("ROLLBACK TO " + name_ + "; RELEASE " + name_);
  done_ = true;
}

}  // namespace modelreg::detail
