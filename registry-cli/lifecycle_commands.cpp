// The commands that change versions or keys: promote, alias (set, remove, list), rollback, archive,
// unarchive, delete, tag, gc, sign, keygen.
#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "arguments.hpp"
#include "commands.hpp"
#include "modelreg/signing.hpp"
#include "render.hpp"

namespace modelreg::cli {
namespace {

using nlohmann::json;

// promote and `alias set`: a version, where it goes, the guard.
struct PromoteArgs {
  std::string ref, reason;
  std::string alias = "active";
  std::optional<std::string> require_better;  // given, even empty: the guard is on
  bool higher_is_better = false, lower_is_better = false;
};

AliasOptions alias_options(const Globals& g, const PromoteArgs& a) {
  AliasOptions o{a.reason, actor_of(g), std::nullopt};
  if (a.require_better) {
    if (a.require_better->empty()) {
      throw UsageError("--require-better needs a metric name, e.g. --require-better f1 (an empty one would disable "
                       "the guard)");
    }
    o.require_better = a.require_better;
  }
  if (a.higher_is_better) o.direction = MetricDirection::higher_is_better;
  if (a.lower_is_better) o.direction = MetricDirection::lower_is_better;
  if (o.direction && !o.require_better) {
    throw UsageError("--higher-is-better and --lower-is-better say which way --require-better's metric improves; "
                     "give --require-better METRIC too");
  }
  return o;
}

void add_guard_options(CLI::App* cmd, PromoteArgs* a, std::string_view what) {
  cmd->add_option("--reason", a->reason, "Why (recorded in the audit log)");
  cmd->add_option("--require-better", a->require_better,
                  fmt::format("Refuse unless this metric is at least as good as {}'s (known metrics: f1, accuracy, "
                              "auc, r2 higher; rmse, mae, log_loss lower is better)",
                              what));
  auto* higher = cmd->add_flag("--higher-is-better", a->higher_is_better, "--require-better's metric: higher wins");
  cmd->add_flag("--lower-is-better", a->lower_is_better, "--require-better's metric: lower wins (rmse, a custom loss)")
      ->excludes(higher);
}

int cmd_promote(const Globals& g, const PromoteArgs& a) {
  const ModelRef ref = parse_ref(a.ref);
  const AliasOptions o = alias_options(g, a);
  Registry r = open_registry(g, false);
  print_transition(r.promote(ref, o), "promoted", g.json);
  return 0;
}

int cmd_alias_set(const Globals& g, const PromoteArgs& a) {
  const ModelRef ref = parse_ref(a.ref);
  if (!is_valid_alias(a.alias)) {
    throw UsageError(fmt::format("'{}' is not a valid alias: it must match [A-Za-z][A-Za-z0-9_.+-]{{0,63}} and not be "
                                 "'latest'",
                                 a.alias));
  }
  const AliasOptions o = alias_options(g, a);
  Registry r = open_registry(g, false);
  print_transition(r.set_alias(ref, a.alias, o), is_active_alias(a.alias) ? "promoted" : "set", g.json);
  return 0;
}

struct AliasRemoveArgs {
  std::string name, alias, reason;
};

int cmd_alias_remove(const Globals& g, const AliasRemoveArgs& a) {
  if (!is_valid_model_name(a.name)) throw UsageError(fmt::format("'{}' is not a valid model name", a.name));
  if (!is_valid_alias(a.alias)) throw UsageError(fmt::format("'{}' is not a valid alias", a.alias));
  Registry r = open_registry(g, false);
  const std::int64_t was = r.remove_alias(a.name, a.alias, Change{a.reason, actor_of(g)});
  if (g.json) {
    print_json(alias_removed_json(a.name, a.alias, was));
  } else {
    print_text("removed {}@{} (it pointed at {}@{})\n", a.name, a.alias, a.name, was);
  }
  return 0;
}

int cmd_alias_list(const Globals& g, const std::string& name) {
  if (!name.empty() && !is_valid_model_name(name)) throw UsageError(fmt::format("'{}' is not a valid model name", name));
  Registry r = open_registry(g, false);
  const std::vector<Alias> list = name.empty() ? r.aliases() : r.aliases(name);
  if (g.json) {
    json out = json::array();
    for (const auto& a : list) out.push_back(to_json(a));
    print_json(out);
    return 0;
  }
  if (list.empty()) {
    print_text("{} no aliases\n", name.empty() ? std::string("the registry has") : fmt::format("'{}' has", name));
    return 0;
  }
  Table t({"ALIAS", "VERSION", "SET", "BY"});
  for (const auto& a : list) t.add({a.ref_string(), fmt::format("{}@{}", a.model, a.version), a.set_at, a.set_by});
  t.print();
  return 0;
}

struct RollbackArgs {
  std::string name, to, reason, alias = "active";
};

int cmd_rollback(const Globals& g, const RollbackArgs& a) {
  if (!is_valid_model_name(a.name)) throw UsageError(fmt::format("'{}' is not a valid model name", a.name));
  if (!is_valid_alias(a.alias)) throw UsageError(fmt::format("'{}' is not a valid alias", a.alias));
  RollbackOptions o{a.reason, actor_of(g), std::nullopt, a.alias};
  if (!a.to.empty()) o.to = parse_ref(a.to);
  Registry r = open_registry(g, false);
  print_transition(r.rollback(a.name, o), "rolled back", g.json);
  return 0;
}

// archive, unarchive and delete: one version, a reason, one call of the library.
struct ChangeArgs {
  std::string ref, reason;
};
using ChangeCall = void (*)(Registry&, const ModelRef&, const Change&);

int cmd_change(const Globals& g, const ChangeArgs& a, const char* done, ChangeCall call) {
  const ModelRef ref = parse_ref(a.ref);
  Registry r = open_registry(g, false);
  const std::string exact = r.get(ref).ref_string();
  call(r, ref, Change{a.reason, actor_of(g)});
  if (g.json) print_json(change_json(exact, done));
  else print_text("{} {}\n", done, exact);
  return 0;
}

void add_change_command(CLI::App& app, Globals& g, const char* name, const char* help, const char* done,
                        ChangeCall call) {
  auto [cmd, a] = add_command<ChangeArgs>(
      app, g, name, help, fmt::format("  modelreg {} fraud@3 --reason 'superseded'", name),
      [done, call](const Globals& globals, const ChangeArgs& a) { return cmd_change(globals, a, done, call); });
  cmd->add_option("REF", a->ref, "Version")->required();
  cmd->add_option("--reason", a->reason, "Why (recorded in the audit log)");
}

struct TagArgs {
  std::string ref;
  std::vector<std::string> tags;
  bool remove = false;
};

int cmd_tag(const Globals& g, const TagArgs& a) {
  const ModelRef ref = parse_ref(a.ref);
  std::map<std::string, std::string> set;
  std::vector<std::string> remove;
  for (const auto& t : a.tags) {
    const std::string key = a.remove ? t : split_assignment("tag", t).first;
    const bool repeated = a.remove ? std::find(remove.begin(), remove.end(), key) != remove.end() : set.count(key) != 0;
    if (repeated) throw UsageError(fmt::format("tag '{}' is given twice; give each key once", key));
    if (a.remove) {
      remove.push_back(key);
    } else {
      set[key] = split_assignment("tag", t).second;
    }
  }
  Registry r = open_registry(g, false);
  r.set_tags(ref, set, remove, Change{"", actor_of(g)});  // all or nothing
  const ModelVersion v = r.get(ref);
  if (g.json) {
    print_json(tags_json(v));
    return 0;
  }
  std::vector<std::string> kv;
  for (const auto& [k, val] : v.tags) kv.push_back(k + "=" + val);
  print_text("{} tags: {}\n", v.ref_string(), kv.empty() ? "none" : fmt::format("{}", fmt::join(kv, " ")));
  return 0;
}

struct GcArgs {
  bool dry_run = false, include_history = false;
  std::string reason;
};

int cmd_gc(const Globals& g, const GcArgs& a) {
  Registry reg = open_registry(g, false);
  GcOptions o;
  o.dry_run = a.dry_run;
  o.delete_archived = true;
  o.include_rollback_history = a.include_history;
  o.reason = a.reason;
  o.actor = actor_of(g);
  const GcReport r = reg.gc(o);
  if (g.json) {
    print_json(to_json(r));
    return 0;
  }
  const char* would = r.dry_run ? "would delete" : "deleted";
  print_text(
      "{} {} archived version{}{}\n", would, r.versions_deleted.size(), r.versions_deleted.size() == 1 ? "" : "s",
      r.versions_deleted.empty() ? "" : ": " + fmt::format("{}", fmt::join(ref_strings(r.versions_deleted), ", ")));
  if (!r.versions_kept.empty()) {
    print_text("kept (lineage parent or in the rollback history; --include-history to drop the latter): {}\n",
               fmt::join(ref_strings(r.versions_kept), ", "));
  }
  print_text("{} {} blob{}, {} stored\n", r.dry_run ? "would free" : "freed", r.blobs_removed,
             r.blobs_removed == 1 ? "" : "s", human_bytes(r.bytes_freed));
  return 0;
}

int cmd_sign(const Globals& g, const std::string& ref) {
  if (signing_key_of(g) == std::nullopt) {
    throw UsageError("sign needs a key: pass --signing-key FILE or set MODELREG_SIGNING_KEY");
  }
  Registry r = open_registry(g, false);
  const ModelVersion v = r.sign(parse_ref(ref), Change{"", actor_of(g)});
  if (g.json) {
    print_json(to_json(v));
  } else {
    print_text("{} signed with key {}\n", v.ref_string(), v.signature->key_id);
  }
  return 0;
}

int cmd_keygen(const Globals& g, const std::string& file) {
  const std::string key = create_signing_key(file);
  if (g.json) {
    print_json(json{{"file", file}, {"key_id", signing_key_id(key)}});
  } else {
    print_text("wrote a new signing key to {} (key id {}); keep it secret\n", file, signing_key_id(key));
  }
  return 0;
}

}  // namespace

void add_promote_command(CLI::App& app, Globals& g) {
  auto [cmd, a] = add_command<PromoteArgs>(
      app, g, "promote", "Make a version the model's active version",
      "  modelreg promote fraud@7 --reason 'better recall'\n  modelreg promote fraud@v1.3.0 --require-better f1",
      cmd_promote);
  cmd->add_option("REF", a->ref, "Version to activate")->required();
  add_guard_options(cmd, a, "the active version");
}

void add_alias_command(CLI::App& app, Globals& g) {
  CLI::App* alias = app.add_subcommand("alias", "Set, remove or list aliases: a model's named pointers to versions");
  alias->require_subcommand(1);
  alias->footer(
      "Examples:\n  modelreg alias set fraud@7 champion --require-better f1\n  modelreg alias remove fraud challenger\n"
      "  modelreg alias list fraud");
  {
    auto [cmd, a] = add_command<PromoteArgs>(
        *alias, g, "set", "Point an alias at a version (`active` is what promote moves)",
        "  modelreg alias set fraud@7 champion --reason 'best recall'\n"
        "  modelreg alias set fraud@v1.3.0 challenger --require-better auc",
        cmd_alias_set);
    cmd->add_option("REF", a->ref, "Version the alias will point at")->required();
    cmd->add_option("ALIAS", a->alias, "Alias: [A-Za-z][A-Za-z0-9_.+-]*, not a label of the model, not latest")
        ->required();
    add_guard_options(cmd, a, "the version the alias points at now");
  }
  {
    auto [cmd, a] = add_command<AliasRemoveArgs>(*alias, g, "remove", "Remove an alias (not active)",
                                                 "  modelreg alias remove fraud challenger --reason 'test over'",
                                                 cmd_alias_remove);
    cmd->add_option("NAME", a->name, "Model")->required();
    cmd->add_option("ALIAS", a->alias, "Alias")->required();
    cmd->add_option("--reason", a->reason, "Why (recorded in the audit log)");
  }
  {
    auto [cmd, name] = add_command<std::string>(*alias, g, "list", "The aliases of one model, or of every model",
                                                "  modelreg alias list\n  modelreg --json alias list fraud",
                                                cmd_alias_list);
    cmd->add_option("NAME", *name, "Model (default: every model)");
  }
}

void add_rollback_command(CLI::App& app, Globals& g) {
  auto [cmd, a] = add_command<RollbackArgs>(
      app, g, "rollback", "Re-activate the previously active version (or --to one); --alias: any alias",
      "  modelreg rollback fraud --reason 'false positives'\n  modelreg rollback fraud --to fraud@4\n"
      "  modelreg rollback fraud --alias champion",
      cmd_rollback);
  cmd->add_option("NAME", a->name, "Model")->required();
  cmd->add_option("--to", a->to, "Roll back to this version instead");
  cmd->add_option("--alias", a->alias, "The alias to roll back (default: active)");
  cmd->add_option("--reason", a->reason, "Why (recorded in the audit log)");
}

void add_archive_command(CLI::App& app, Globals& g) {
  add_change_command(app, g, "archive", "Archive a version (it can no longer be promoted)", "archived",
                     [](Registry& r, const ModelRef& ref, const Change& c) { r.archive(ref, c); });
}

void add_unarchive_command(CLI::App& app, Globals& g) {
  add_change_command(app, g, "unarchive", "Make an archived version ready again", "unarchived",
                     [](Registry& r, const ModelRef& ref, const Change& c) { r.unarchive(ref, c); });
}

void add_delete_command(CLI::App& app, Globals& g) {
  add_change_command(app, g, "delete", "Delete an archived version (permanent; its number is never reused)", "deleted",
                     [](Registry& r, const ModelRef& ref, const Change& c) { r.delete_version(ref, c); });
}

void add_tag_command(CLI::App& app, Globals& g) {
  auto [cmd, a] = add_command<TagArgs>(
      app, g, "tag", "Set (KEY=VALUE) or remove (--remove KEY) tags of a version",
      "  modelreg tag fraud@3 stage=canary owner=risk\n  modelreg tag fraud@3 --remove stage", cmd_tag);
  cmd->add_option("REF", a->ref, "Version")->required();
  cmd->add_option("TAGS", a->tags, "KEY=VALUE, or KEY with --remove")->required();
  cmd->add_flag("--remove", a->remove, "Remove the named tags");
}

void add_gc_command(CLI::App& app, Globals& g) {
  auto [cmd, a] = add_command<GcArgs>(app, g, "gc", "Delete archived versions and unreferenced blobs, reclaim space",
                                      "  modelreg gc --dry-run\n  modelreg gc", cmd_gc);
  cmd->add_flag("--dry-run", a->dry_run, "Only report what would be removed");
  cmd->add_flag("--include-history", a->include_history,
                "Also delete archived versions that the rollback history still names");
  cmd->add_option("--reason", a->reason, "Recorded with each deletion");
}

void add_sign_command(CLI::App& app, Globals& g) {
  auto [cmd, ref] =
      add_command<std::string>(app, g, "sign", "Sign an unsigned version (imported, or registered without a key)",
                               "  modelreg sign fraud@7 --signing-key /etc/modelreg/key", cmd_sign);
  cmd->add_option("REF", *ref, "Version to sign")->required();
}

void add_keygen_command(CLI::App& app, Globals& g) {
  auto [cmd, file] = add_command<std::string>(
      app, g, "keygen", "Create a new random signing key file (mode 0600, never overwritten)",
      "  modelreg keygen /etc/modelreg/key\n  export MODELREG_SIGNING_KEY=/etc/modelreg/key", cmd_keygen);
  cmd->add_option("FILE", *file, "Where to write the key")->required();
}

}  // namespace modelreg::cli
