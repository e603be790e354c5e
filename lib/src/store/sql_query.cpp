// Registry::query: read-only SQL for analysts, on its own read-only connection guarded by an
// authorizer, so that nothing typed into `modelreg sql` can change the registry.
#include <sqlite3.h>

#include <strings.h>

#include <array>
#include <chrono>
#include <climits>
#include <map>
#include <new>

#include <fmt/format.h>

#include "store/registry_impl.hpp"

namespace modelreg {
namespace {

// PRAGMAs that only read. Those in kPragmasWithArgument take an argument that selects what to
// read (a table, an index, a row limit); any other PRAGMA with an argument sets a value.
constexpr std::array<std::string_view, 22> kReadPragmas = {
    "application_id", "collation_list", "compile_options", "data_version",  "database_list",
    "encoding",       "foreign_key_check", "foreign_key_list", "freelist_count", "function_list",
    "index_info",     "index_list",     "index_xinfo",     "integrity_check", "journal_mode",
    "page_count",     "page_size",      "pragma_list",     "quick_check",     "schema_version",
    "table_info",     "table_xinfo",
};
constexpr std::array<std::string_view, 9> kPragmasWithArgument = {
    "foreign_key_check", "foreign_key_list", "index_info", "index_list", "index_xinfo",
    "integrity_check",   "quick_check",      "table_info", "table_xinfo",
};

template <std::size_t N>
bool contains(const std::array<std::string_view, N>& list, std::string_view name) {
  return std::find(list.begin(), list.end(), name) != list.end();
}

struct AuthorizerState {
  std::string denied;  // what the last refusal refused, for the error message
};

int authorize(void* user, int action, const char* a1, const char* a2, const char*, const char*) {
  auto* state = static_cast<AuthorizerState*>(user);
  auto deny = [&](std::string what) {
    state->denied = std::move(what);
    return SQLITE_DENY;
  };
  switch (action) {
    case SQLITE_SELECT:
    case SQLITE_READ:
    case SQLITE_RECURSIVE:
      return SQLITE_OK;
    case SQLITE_FUNCTION: {
      const std::string_view name = a2 != nullptr ? a2 : "";
      if (name == "load_extension" || name == "fts3_tokenizer") return deny(fmt::format("the function {}()", name));
      return SQLITE_OK;
    }
    case SQLITE_PRAGMA: {
      std::string name = a1 != nullptr ? a1 : "";
      std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
      if (contains(kReadPragmas, name) && (a2 == nullptr || contains(kPragmasWithArgument, name))) return SQLITE_OK;
      return deny(a2 != nullptr ? fmt::format("PRAGMA {} = {}", name, a2) : fmt::format("PRAGMA {}", name));
    }
    case SQLITE_INSERT:
    case SQLITE_UPDATE:
    case SQLITE_DELETE:
      if (a1 != nullptr && std::string_view(a1).starts_with("sqlite_")) return deny("changing the schema");
      break;
    default:
      break;
  }
  switch (action) {
    case SQLITE_INSERT: return deny(fmt::format("INSERT into {}", a1 != nullptr ? a1 : "?"));
    case SQLITE_UPDATE: return deny(fmt::format("UPDATE of {}", a1 != nullptr ? a1 : "?"));
    case SQLITE_DELETE: return deny(fmt::format("DELETE from {}", a1 != nullptr ? a1 : "?"));
    case SQLITE_ATTACH: return deny("ATTACH");
    case SQLITE_DETACH: return deny("DETACH");
    case SQLITE_TRANSACTION:
    case SQLITE_SAVEPOINT:
      return SQLITE_OK;  // harmless on a read-only connection
    default:
      return deny("a statement that changes the schema or the data");
  }
}

SqlValue column_value(sqlite3_stmt* stmt, int i) {
  switch (sqlite3_column_type(stmt, i)) {
    case SQLITE_INTEGER: return static_cast<std::int64_t>(sqlite3_column_int64(stmt, i));
    case SQLITE_FLOAT: return sqlite3_column_double(stmt, i);
    case SQLITE_TEXT:
      return std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt, i)),
                         static_cast<std::size_t>(sqlite3_column_bytes(stmt, i)));
    case SQLITE_BLOB: return SqlBlob{static_cast<std::uint64_t>(sqlite3_column_bytes(stmt, i))};
    default: return std::monostate{};
  }
}

struct StatementCloser {
  void operator()(sqlite3_stmt* s) const noexcept { sqlite3_finalize(s); }
};

// What the progress handler watches: the deadline and SQLite's heap. It stops the statement
// (SQLITE_INTERRUPT) and records which bound was hit, so the error can name it.
struct Budget {
  const SqlOptions& options;
  std::chrono::steady_clock::time_point deadline;
  sqlite3_int64 memory_at_start = 0;
  enum class Hit { none, time, memory } hit = Hit::none;
};

// VM instructions between two checks: a few microseconds of work, so a stop is prompt while the
// clock and the (mutex-guarded) memory counter are read rarely.
constexpr int kProgressInterval = 1000;

int check_budget(void* user) {
  auto* budget = static_cast<Budget*>(user);
  if (budget->options.timeout.count() > 0 && std::chrono::steady_clock::now() >= budget->deadline) {
    budget->hit = Budget::Hit::time;
    return 1;
  }
  if (budget->options.max_memory > 0 &&
      static_cast<std::uint64_t>(std::max<sqlite3_int64>(0, sqlite3_memory_used() - budget->memory_at_start)) >
          budget->options.max_memory) {
    budget->hit = Budget::Hit::memory;
    return 1;
  }
  return 0;
}

// SQLite 3.40's printf()/format() write '%.Nc' one character at a time and go on looping after
// the value has passed SQLITE_LIMIT_LENGTH, so printf('%.*c', 2e9, 'x') holds the CPU ~25 s where
// the progress handler cannot stop it (and then returns ''). This guard replaces both functions on
// the query's connection: a %c whose precision exceeds the length limit is refused at once
// (SQLITE_TOOBIG); any other call is evaluated by the built-in function on a private in-memory
// connection, so the results are SQLite's own.
class PrintfGuard {
 public:
  explicit PrintfGuard(int length_limit) : length_limit_(length_limit) {}
  PrintfGuard(const PrintfGuard&) = delete;
  PrintfGuard& operator=(const PrintfGuard&) = delete;
  ~PrintfGuard() {
    for (auto& [arguments, stmt] : statements_) sqlite3_finalize(stmt);
    if (helper_ != nullptr) sqlite3_close(helper_);
  }

  void install(sqlite3* db) {
    for (const char* name : {"printf", "format"}) {
      sqlite3_create_function_v2(db, name, -1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, this, call, nullptr, nullptr,
                                 nullptr);
    }
  }

 private:
  static void call(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
    auto* self = static_cast<PrintfGuard*>(sqlite3_user_data(ctx));
    if (argc >= 1 && self->too_long(argc, argv)) {
      sqlite3_result_error_toobig(ctx);
      return;
    }
    sqlite3_stmt* stmt = self->statement(argc);
    if (stmt == nullptr) {
      sqlite3_result_error_nomem(ctx);
      return;
    }
    for (int i = 0; i < argc; ++i) sqlite3_bind_value(stmt, i + 1, argv[i]);
    const int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
      sqlite3_result_value(ctx, sqlite3_column_value(stmt, 0));
    } else {
      sqlite3_result_error(ctx, sqlite3_errmsg(self->helper_), -1);
      sqlite3_result_error_code(ctx, sqlite3_extended_errcode(self->helper_));
    }
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
  }

  // Whether a %c conversion asks for more characters than the length limit. Follows SQLite's
  // format syntax: flags, width (digits or *), .precision (digits or *), l/ll, conversion.
  bool too_long(int argc, sqlite3_value** argv) const {
    const auto* text = sqlite3_value_text(argv[0]);
    if (text == nullptr) return false;
    const std::string_view format(reinterpret_cast<const char*>(text));
    int next_argument = 1;
    auto star = [&]() -> std::int64_t { return next_argument < argc ? sqlite3_value_int64(argv[next_argument++]) : 0; };
    for (std::size_t i = 0; i < format.size(); ++i) {
      if (format[i] != '%') continue;
      if (++i >= format.size()) break;
      while (i < format.size() && std::string_view("-+ #!0,").find(format[i]) != std::string_view::npos) ++i;
      if (i < format.size() && format[i] == '*') {
        (void)star();
        ++i;
      } else {
        while (i < format.size() && format[i] >= '0' && format[i] <= '9') ++i;
      }
      std::int64_t precision = -1;
      if (i < format.size() && format[i] == '.') {
        ++i;
        if (i < format.size() && format[i] == '*') {
          precision = star();
          ++i;
        } else {
          precision = 0;
          while (i < format.size() && format[i] >= '0' && format[i] <= '9') {
            precision = std::min<std::int64_t>(precision * 10 + (format[i] - '0'), INT_MAX);
            ++i;
          }
        }
      }
      while (i < format.size() && format[i] == 'l') ++i;
      if (i >= format.size()) break;
      const char conversion = format[i];
      if (conversion == 'c' && precision > length_limit_) return true;
      if (conversion != '%' && conversion != 'n') ++next_argument;  // the value converted
    }
    return false;
  }

  sqlite3_stmt* statement(int argc) {
    if (helper_ == nullptr) {
      if (sqlite3_open_v2(":memory:", &helper_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_MEMORY, nullptr) != SQLITE_OK) {
        return nullptr;
      }
      sqlite3_limit(helper_, SQLITE_LIMIT_LENGTH, length_limit_);
    }
    auto& stmt = statements_[argc];
    if (stmt == nullptr) {
      std::string sql = "SELECT printf(";
      for (int i = 1; i <= argc; ++i) sql += fmt::format("{}?{}", i > 1 ? ", " : "", i);
      sql += ")";
      if (sqlite3_prepare_v2(helper_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) stmt = nullptr;
    }
    return stmt;
  }

  int length_limit_;
  sqlite3* helper_ = nullptr;                // opened on the first call
  std::map<int, sqlite3_stmt*> statements_;  // SELECT printf(?1, ..., ?N), by N
};

std::string size_text(std::uint64_t bytes) {
  if (bytes >= (1u << 20) && bytes % (1u << 20) == 0) return fmt::format("{} MiB", bytes >> 20);
  return fmt::format("{} bytes", bytes);
}

[[noreturn]] void throw_time_bound(const SqlOptions& o) {
  throw Error(Errc::invalid_argument,
              fmt::format("SQL stopped: the query ran past its time limit of {} ms; narrow it (WHERE, LIMIT) or "
                          "raise the limit (modelreg sql --timeout-ms N; SqlOptions::timeout)",
                          o.timeout.count()));
}

[[noreturn]] void throw_memory_bound(const SqlOptions& o) {
  throw Error(Errc::invalid_argument,
              fmt::format("SQL stopped: the query needed more than {} of memory (sorting, grouping, temporary "
                          "tables); narrow it (WHERE, LIMIT) or raise the limit (modelreg sql --max-memory N; "
                          "SqlOptions::max_memory)",
                          size_text(o.max_memory)));
}

[[noreturn]] void throw_value_bound(const SqlOptions& o) {
  throw Error(Errc::invalid_argument,
              fmt::format("SQL stopped: a value would be larger than the limit of {}; raise the limit "
                          "(modelreg sql --max-bytes N; SqlOptions::max_bytes)",
                          size_text(o.max_bytes)));
}

// Bytes a cell holds in the returned SqlResult: the variant itself, plus the text it owns.
std::uint64_t cell_bytes(const SqlValue& v) {
  const auto* text = std::get_if<std::string>(&v);
  return sizeof(SqlValue) + (text != nullptr ? text->capacity() : 0);
}

}  // namespace

SqlResult Registry::query(std::string_view sql, const SqlOptions& options) const {
  return guarded("running SQL", [&] {
    // Waiting for a lock counts against the time limit too.
    auto busy_timeout = impl_->options.busy_timeout;
    if (options.timeout.count() > 0) busy_timeout = std::min(busy_timeout, options.timeout);
    const auto connection = detail::open_connection(impl_->path, true, static_cast<int>(busy_timeout.count()));
    SQLite::Database& ro = *connection;
    sqlite3* db = ro.getHandle();
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, nullptr);
    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
    sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, 0);
    ro.exec("PRAGMA query_only = 1");
    // Sorts and temporary tables stay in memory, where max_memory bounds them, instead of growing
    // temporary files on disk for as long as the time limit allows.
    ro.exec("PRAGMA temp_store = MEMORY");
    // Parse the schema now, so that the memory bound measures the query, not the connection.
    ro.exec("SELECT count(*) FROM sqlite_schema");
    // No single value (zeroblob, randomblob, printf('%.*c', ...), group_concat, replace...) may
    // grow past max_bytes: SQLite refuses it with SQLITE_TOOBIG before allocating it.
    if (options.max_bytes > 0) {
      sqlite3_limit(db, SQLITE_LIMIT_LENGTH,
                    static_cast<int>(std::min<std::uint64_t>(options.max_bytes, INT_MAX)));
    }
    PrintfGuard printf_guard(sqlite3_limit(db, SQLITE_LIMIT_LENGTH, -1));
    printf_guard.install(db);
    // Time and SQLite's heap are checked by the progress handler. (sqlite3_hard_heap_limit64 would
    // be exact, but it is process-wide: it would fail the registry's own writes in this process.)
    Budget budget{options, std::chrono::steady_clock::now() + options.timeout, sqlite3_memory_used()};
    sqlite3_progress_handler(db, kProgressInterval, check_budget, &budget);
    AuthorizerState state;
    sqlite3_set_authorizer(db, authorize, &state);

    SqlResult result;
    std::string text(sql);
    const char* tail = text.c_str();
    const char* end = text.c_str() + text.size();
    bool any = false;
    while (tail < end) {
      sqlite3_stmt* raw = nullptr;
      const char* next = nullptr;
      state.denied.clear();
      int rc = sqlite3_prepare_v2(db, tail, static_cast<int>(end - tail), &raw, &next);
      std::unique_ptr<sqlite3_stmt, StatementCloser> stmt(raw);
      const std::string_view statement(tail, static_cast<std::size_t>((next != nullptr ? next : end) - tail));
      tail = next != nullptr ? next : end;
      if (rc == SQLITE_AUTH || !state.denied.empty()) {
        throw Error(Errc::invalid_argument,
                    fmt::format("SQL is read-only here: {} is not allowed; change the registry with modelreg's "
                                "commands (register, promote, archive, ...)",
                                state.denied.empty() ? "that statement" : state.denied));
      }
      if ((rc & 0xff) == SQLITE_TOOBIG) throw_value_bound(options);  // a literal past max_bytes
      if (rc != SQLITE_OK) {
        throw Error(Errc::invalid_argument, fmt::format("SQL error: {} (in: {})", sqlite3_errmsg(db), statement));
      }
      if (!stmt) continue;  // whitespace or a comment
      // Belt and braces: statements the authorizer does not see (VACUUM INTO writes a file).
      if (sqlite3_stmt_readonly(stmt.get()) == 0 && sqlite3_stmt_isexplain(stmt.get()) == 0) {
        const std::string_view verb = statement.substr(statement.find_first_not_of(" \t\r\n"));
        const bool transaction_control = verb.size() >= 5 && (strncasecmp(verb.data(), "BEGIN", 5) == 0 ||
                                                              strncasecmp(verb.data(), "COMMIT", 5) == 0 ||
                                                              strncasecmp(verb.data(), "END", 3) == 0 ||
                                                              strncasecmp(verb.data(), "ROLLBACK", 5) == 0);
        if (!transaction_control) {
          throw Error(Errc::invalid_argument,
                      fmt::format("SQL is read-only here: '{}' would write; change the registry with modelreg's "
                                  "commands (register, promote, archive, ...)",
                                  verb.substr(0, std::min<std::size_t>(verb.size(), 40))));
        }
      }
      any = true;
      const int columns = sqlite3_column_count(stmt.get());
      SqlResult current;
      for (int i = 0; i < columns; ++i) current.columns.emplace_back(sqlite3_column_name(stmt.get(), i));
      std::uint64_t bytes = 0;
      try {
        while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
          if (options.max_rows > 0 && current.rows.size() >= options.max_rows) {
            throw Error(Errc::invalid_argument,
                        fmt::format("SQL stopped: the result has more than {} rows (the limit); add a LIMIT or "
                                    "raise the limit (modelreg sql --max-rows N; SqlOptions::max_rows)",
                                    options.max_rows));
          }
          std::vector<SqlValue> row;
          row.reserve(static_cast<std::size_t>(columns));
          bytes += sizeof(row);
          for (int i = 0; i < columns; ++i) {
            row.push_back(column_value(stmt.get(), i));
            bytes += cell_bytes(row.back());
          }
          if (options.max_bytes > 0 && bytes > options.max_bytes) {
            throw Error(Errc::invalid_argument,
                        fmt::format("SQL stopped: the result is larger than {} (the limit, after {} rows); select "
                                    "fewer columns or rows (LIMIT), or raise the limit (modelreg sql --max-bytes "
                                    "N; SqlOptions::max_bytes)",
                                    size_text(options.max_bytes), current.rows.size()));
          }
          current.rows.push_back(std::move(row));
        }
      } catch (const std::bad_alloc&) {
        // Within max_bytes, yet more than this machine has: still an Error, never bad_alloc.
        throw Error(Errc::invalid_argument,
                    fmt::format("SQL stopped: out of memory after {} rows ({} held); select fewer rows (LIMIT) "
                                "or lower the limit (modelreg sql --max-bytes N; SqlOptions::max_bytes)",
                                current.rows.size(), size_text(bytes)));
      }
      if (rc != SQLITE_DONE) {
        const int code = rc & 0xff;
        if (code == SQLITE_INTERRUPT && budget.hit == Budget::Hit::time) throw_time_bound(options);
        if (code == SQLITE_INTERRUPT && budget.hit == Budget::Hit::memory) throw_memory_bound(options);
        if (code == SQLITE_NOMEM) throw_memory_bound(options);
        if (code == SQLITE_TOOBIG) throw_value_bound(options);
        if (code == SQLITE_READONLY || code == SQLITE_AUTH) {
          throw Error(Errc::invalid_argument,
                      fmt::format("SQL is read-only here: {} is not allowed", statement));
        }
        throw Error(Errc::invalid_argument, fmt::format("SQL error: {} (in: {})", sqlite3_errmsg(db), statement));
      }
      if (columns > 0) result = std::move(current);
    }
    if (!any) throw Error(Errc::invalid_argument, "no SQL statement given");
    return result;
  });
}

}  // namespace modelreg
