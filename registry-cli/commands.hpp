// The commands of `modelreg`: each is added to the command line by its own add_*_command, which
// declares its arguments and options and, when it is the one chosen, sets what main runs.
// Defined by area:
//   catalog_commands.cpp    list, show, compare, history, lineage, sql (reading)
//   lifecycle_commands.cpp  promote, alias, rollback, archive, unarchive, delete, tag, gc, sign, keygen
//   transfer_commands.cpp   init, migrate, register, get, export, import, verify
//   model_commands.cpp      train, predict
//   import_command.cpp      import-model
//   serve.cpp               serve
//   webhook_commands.cpp    webhook add, list, remove, deliveries, run
//   token_commands.cpp      token create, list, revoke
//   ui.cpp                  ui (the REST API: api_*.cpp)
// A command returns its exit status; it throws UsageError (arguments.hpp) for a usage error and
// modelreg::Error for anything else, which main turns into one line on stderr.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <CLI/CLI.hpp>

#include "modelreg/registry.hpp"

namespace modelreg::cli {

// The global options, and the command the command line chose.
struct Globals {
  std::string db;                // --db, else $MODELREG_DB, else ./modelreg.db
  bool json = false;             // --json: the documented JSON on stdout instead of text
  bool read_only = false;        // --read-only
  std::string actor;             // --actor; empty: the library's default (the OS user)
  std::string signing_key_file;  // --signing-key; empty: $MODELREG_SIGNING_KEY
  // Set while parsing by the chosen subcommand; run by main once parsing is done.
  std::function<int()> command;
};

// The registry at g.db, read-only with --read-only; `create` makes a missing database (a writing
// command), otherwise a missing one is an error.
Registry open_registry(const Globals& g, bool create);
std::optional<std::string> actor_of(const Globals& g);
// The key in the file named by --signing-key or $MODELREG_SIGNING_KEY; none when neither is set.
std::optional<std::string> signing_key_of(const Globals& g);

// Adds subcommand `name` with `examples` (lines of shell) in its --help; when the command line
// chooses it, `run` becomes g.command. Returns it, for the command's own arguments and options.
CLI::App* add_command(CLI::App& app, Globals& g, const std::string& name, const std::string& help,
                      const std::string& examples, std::function<int()> run);

// The same for a command with arguments: an `Args` that the returned pointer fills while parsing
// (it lives as long as `app`), passed to `run` with the globals.
template <class Args>
std::pair<CLI::App*, Args*> add_command(CLI::App& app, Globals& g, const std::string& name, const std::string& help,
                                        const std::string& examples,
                                        std::function<int(const Globals&, const Args&)> run) {
  auto args = std::make_shared<Args>();
  CLI::App* sub = add_command(app, g, name, help, examples, [&g, args, run = std::move(run)] { return run(g, *args); });
  return {sub, args.get()};
}

void add_init_command(CLI::App& app, Globals& g);
void add_migrate_command(CLI::App& app, Globals& g);
void add_register_command(CLI::App& app, Globals& g);
void add_get_command(CLI::App& app, Globals& g);
void add_export_command(CLI::App& app, Globals& g);
void add_import_command(CLI::App& app, Globals& g);
void add_verify_command(CLI::App& app, Globals& g);

void add_list_command(CLI::App& app, Globals& g);
void add_show_command(CLI::App& app, Globals& g);
void add_compare_command(CLI::App& app, Globals& g);
void add_history_command(CLI::App& app, Globals& g);
void add_lineage_command(CLI::App& app, Globals& g);
void add_sql_command(CLI::App& app, Globals& g);

void add_promote_command(CLI::App& app, Globals& g);
void add_alias_command(CLI::App& app, Globals& g);
void add_rollback_command(CLI::App& app, Globals& g);
void add_archive_command(CLI::App& app, Globals& g);
void add_unarchive_command(CLI::App& app, Globals& g);
void add_delete_command(CLI::App& app, Globals& g);
void add_tag_command(CLI::App& app, Globals& g);
void add_gc_command(CLI::App& app, Globals& g);
void add_sign_command(CLI::App& app, Globals& g);
void add_keygen_command(CLI::App& app, Globals& g);

void add_train_command(CLI::App& app, Globals& g);
void add_predict_command(CLI::App& app, Globals& g);
void add_import_model_command(CLI::App& app, Globals& g);

void add_serve_command(CLI::App& app, Globals& g);
void add_webhook_command(CLI::App& app, Globals& g);
void add_token_command(CLI::App& app, Globals& g);
void add_ui_command(CLI::App& app, Globals& g);

}  // namespace modelreg::cli
