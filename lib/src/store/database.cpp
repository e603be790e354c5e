#include "store/database.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <system_error>

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

namespace {

// "its directory '/srv' is on a read-only file system"; empty when the directory is writable.
std::string directory_cause(const std::filesystem::path& path) {
  std::error_code ec;
  std::filesystem::path dir = std::filesystem::absolute(path, ec).parent_path();
  if (dir.empty()) dir = ".";
  if (::access(dir.c_str(), W_OK | X_OK) == 0) return {};
  const int err = errno;
  if (err == EROFS) return fmt::format("its directory '{}' is on a read-only file system", dir.string());
  return fmt::format("its directory '{}' is not writable ({})", dir.string(), std::strerror(err));
}

// A file URI for sqlite3_open_v2: the absolute path, with the bytes a URI gives meaning to escaped.
std::string file_uri(const std::filesystem::path& path, std::string_view parameters) {
  std::error_code ec;
  const std::string absolute = std::filesystem::absolute(path, ec).string();
  std::string uri = "file:";
  for (char c : absolute) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '%' || c == '?' || c == '#' || byte < 0x21 || byte >= 0x7f) {
      uri += fmt::format("%{:02X}", byte);
    } else {
      uri += c;
    }
  }
  return uri + "?" + std::string(parameters);
}

bool has_log(const std::filesystem::path& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path.string() + "-wal", ec);
  return !ec && size > 0;
}

}  // namespace

std::string read_only_cause(const std::filesystem::path& path) {
  if (std::string cause = directory_cause(path); !cause.empty()) return cause;
  if (::access(path.c_str(), W_OK) != 0) {
    return fmt::format("the file is not writable ({})", std::strerror(errno));
  }
  return {};
}

std::unique_ptr<SQLite::Database> open_connection(const std::filesystem::path& path, bool read_only,
                                                  int busy_timeout_ms) {
  const int flags = read_only ? SQLite::OPEN_READONLY : (SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  try {
    auto db = std::make_unique<SQLite::Database>(path, flags, busy_timeout_ms);
    // Opening is lazy: the first read opens the file, its -wal and -shm, and fails with
    // SQLITE_NOTADB when the file is not SQLite at all.
    db->exec("PRAGMA schema_version");
    return db;
  } catch (const SQLite::Exception& e) {
    const int code = e.getErrorCode() & 0xff;
    if (code != SQLITE_CANTOPEN && code != SQLITE_READONLY) throw;
    const std::string cause = directory_cause(path);
    if (cause.empty()) throw;
    if (!read_only) {
      throw Error(Errc::io_error,
                  fmt::format("cannot open '{}': {}, and SQLite must create '{}-wal' and '{}-shm' there to use the "
                              "database; to read it, open it read-only (modelreg --read-only, Options::read_only); "
                              "to change it, make the directory writable",
                              path.string(), cause, path.filename().string(), path.filename().string()));
    }
    if (has_log(path)) {
      throw Error(Errc::io_error,
                  fmt::format("cannot read '{}': {}, and its write-ahead log '{}-wal' holds commits that are not in "
                              "the database file yet, which SQLite can read only with a '-shm' index it cannot "
                              "create there; run any modelreg command on it where the directory is writable (that "
                              "folds the log in), or copy the database with its -wal to a writable directory",
                              path.string(), cause, path.filename().string()));
    }
  }
  // No log: the database file holds every commit, and nothing can write it while its directory
  // stays read-only.
  auto db = std::make_unique<SQLite::Database>(file_uri(path, "immutable=1"), SQLite::OPEN_READONLY | SQLite::OPEN_URI,
                                               busy_timeout_ms);
  db->exec("PRAGMA schema_version");
  return db;
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
