// Registry::query: read-only SQL for analysts, on its own read-only connection guarded by an
// authorizer, so that nothing typed into `modelreg sql` can change the registry.
#include <sqlite3.h>

#include <strings.h>

#include <array>

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

}  // namespace

SqlResult Registry::query(std::string_view sql) const {
  return guarded("running SQL", [&] {
    SQLite::Database ro(impl_->path, SQLite::OPEN_READONLY, static_cast<int>(impl_->options.busy_timeout.count()));
    sqlite3* db = ro.getHandle();
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, nullptr);
    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
    sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, 0);
    ro.exec("PRAGMA query_only = 1");
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
      while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
        std::vector<SqlValue> row;
        row.reserve(static_cast<std::size_t>(columns));
        for (int i = 0; i < columns; ++i) row.push_back(column_value(stmt.get(), i));
        current.rows.push_back(std::move(row));
      }
      if (rc != SQLITE_DONE) {
        const int code = rc & 0xff;
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
