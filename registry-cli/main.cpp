// modelreg — the registry from the shell: the global options, the commands (commands.hpp), and
// the exit status. Every command uses only the public library API.
//
// Exit status: 0 success, 1 error (one line on stderr), 2 usage error. `--json` on every command
// prints the documented JSON (README.md, "JSON output") on stdout instead of text.
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <utility>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "arguments.hpp"
#include "commands.hpp"
#include "modelreg/signing.hpp"
#include "printable_text.hpp"

namespace modelreg::cli {

std::optional<std::string> signing_key_of(const Globals& g) {
  std::string file = g.signing_key_file;
  if (file.empty()) {
    if (const char* env = std::getenv("MODELREG_SIGNING_KEY"); env != nullptr && *env != '\0') file = env;
  }
  if (file.empty()) return std::nullopt;
  return read_signing_key(file);
}

std::optional<std::string> actor_of(const Globals& g) {
  return g.actor.empty() ? std::nullopt : std::optional(g.actor);
}

Registry open_registry(const Globals& g, bool create) {
  Options o;
  o.create_if_missing = create && !g.read_only;
  o.read_only = g.read_only;
  if (!g.actor.empty()) o.default_actor = g.actor;
  o.signing_key = signing_key_of(g);
  return Registry(g.db, o);
}

CLI::App* add_command(CLI::App& app, Globals& g, const std::string& name, const std::string& help,
                      const std::string& examples, std::function<int()> run) {
  CLI::App* sub = app.add_subcommand(name, help);
  sub->footer("Examples:\n" + examples);
  // Only chosen here: it runs after parsing, in main's error handling.
  sub->callback([&g, run = std::move(run)] { g.command = run; });
  return sub;
}

namespace {

std::string default_db() {
  if (const char* env = std::getenv("MODELREG_DB"); env != nullptr && *env != '\0') return env;
  return "modelreg.db";
}

int run(int argc, char** argv) {
  CLI::App app{"modelreg — an embedded, SQLite-backed registry for machine-learning models"};
  app.set_version_flag("--version", "modelreg 0.1.0");
  app.require_subcommand(1);
  app.fallthrough();
  // A usage error may quote what was typed: printed without raw control characters, as all text.
  app.failure_message([](const CLI::App* a, const CLI::Error& e) {
    return printable_lines(CLI::FailureMessage::simple(a, e));
  });
  app.footer(
      "Database: --db PATH, else $MODELREG_DB, else ./modelreg.db. REF: NAME (active), NAME@active, NAME@7, "
      "NAME@v1.2.0 (label), NAME@champion (alias), NAME@latest.\nExit status: 0 ok, 1 error, 2 usage error. Run "
      "`modelreg COMMAND --help` for examples.");
  Globals g;
  g.db = default_db();
  app.add_option("--db", g.db, "Database file (default: $MODELREG_DB, else ./modelreg.db)");
  app.add_flag("--json", g.json, "Print JSON on stdout instead of text");
  app.add_flag("--read-only", g.read_only, "Open the database read-only (every write is refused)");
  app.add_option("--actor", g.actor, "Who acts, for the audit log (default: the OS user)");
  app.add_option("--signing-key", g.signing_key_file,
                 "Key file (default: $MODELREG_SIGNING_KEY): sign what is registered; refuse to promote, load or "
                 "serve unsigned or wrongly signed versions");

  // In the order `modelreg --help` lists them.
  add_init_command(app, g);
  add_migrate_command(app, g);
  add_register_command(app, g);
  add_list_command(app, g);
  add_show_command(app, g);
  add_compare_command(app, g);
  add_promote_command(app, g);
  add_alias_command(app, g);
  add_rollback_command(app, g);
  add_archive_command(app, g);
  add_unarchive_command(app, g);
  add_delete_command(app, g);
  add_tag_command(app, g);
  add_history_command(app, g);
  add_lineage_command(app, g);
  add_get_command(app, g);
  add_export_command(app, g);
  add_import_command(app, g);
  add_import_model_command(app, g);
  add_verify_command(app, g);
  add_gc_command(app, g);
  add_train_command(app, g);
  add_predict_command(app, g);
  add_serve_command(app, g);
  add_webhook_command(app, g);
  add_token_command(app, g);
  add_ui_command(app, g);
  add_sign_command(app, g);
  add_keygen_command(app, g);
  add_sql_command(app, g);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  try {
    return g.command ? g.command() : 2;
  } catch (const UsageError& e) {
    print_text(stderr, "error: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    // One line whatever the message quotes (a name, a path, a value read from the database).
    print_text(stderr, "error: {}\n", e.what());
    return 1;
  }
}

}  // namespace
}  // namespace modelreg::cli

int main(int argc, char** argv) { return modelreg::cli::run(argc, argv); }
