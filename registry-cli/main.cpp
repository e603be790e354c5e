// modelreg — the registry from the shell. This first cut creates and migrates a database; the full
// command set (register, list, show, promote, rollback, lineage, sql, ...) is its own issue.
#include <cstdlib>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "modelreg/registry.hpp"

namespace {

std::string default_db() {
  if (const char* env = std::getenv("MODELREG_DB"); env != nullptr && *env != '\0') return env;
  return "modelreg.db";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"modelreg — an embedded, SQLite-backed registry for machine-learning models"};
  app.set_version_flag("--version", "modelreg 0.1.0");
  std::string db = default_db();
  app.add_option("--db", db, "Database file (default: $MODELREG_DB, else ./modelreg.db)");
  app.require_subcommand(1);

  auto* init = app.add_subcommand("init", "Create the database (idempotent) and apply migrations");
  auto* migrate = app.add_subcommand("migrate", "Apply pending migrations and print the schema version");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  try {
    modelreg::Registry registry(db);
    if (init->parsed()) {
      fmt::print("{}: schema version {}\n", db, registry.schema_version());
    } else if (migrate->parsed()) {
      fmt::print("schema version {} (this modelreg supports {})\n", registry.schema_version(),
                 modelreg::Registry::supported_schema_version());
    }
  } catch (const modelreg::Error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
