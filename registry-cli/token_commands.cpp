// `modelreg token create|list|revoke`: the access tokens of `modelreg ui`'s API (access.hpp).
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "arguments.hpp"
#include "commands.hpp"
#include "modelreg/access.hpp"
#include "render.hpp"

namespace modelreg::cli {
namespace {

using nlohmann::json;

struct TokenCreateArgs {
  std::string name, role, model;
};

// Prints the token alone on its line (even with --json: a script captures it with $(...)).
int cmd_token_create(const Globals& g, const TokenCreateArgs& a) {
  NewToken spec;
  spec.name = a.name;
  try {
    spec.role = parse_role(a.role);
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
  if (!a.model.empty()) spec.model_glob = a.model;
  spec.actor = actor_of(g);
  Registry r = open_registry(g, true);
  const std::string token = TokenStore(r).create(spec);
  print_text("{}\n", token);
  return 0;
}

int cmd_token_list(const Globals& g) {
  Registry r = open_registry(g, false);
  const auto tokens = TokenStore(r).list();
  if (g.json) {
    json out = json::array();
    for (const auto& t : tokens) out.push_back(to_json(t));
    print_json(out);
    return 0;
  }
  if (tokens.empty()) {
    print_text("no tokens; create one with `modelreg token create NAME --role ROLE`\n");
    return 0;
  }
  Table t({"NAME", "ROLE", "MODELS", "CREATED", "BY", "REVOKED"});
  for (const auto& k : tokens) {
    t.add({k.name, std::string(to_string(k.role)), k.model_glob.value_or("*"), k.created_at, k.created_by,
           k.revoked_at ? fmt::format("{} by {}", *k.revoked_at, k.revoked_by.value_or("")) : "-"});
  }
  t.print();
  return 0;
}

int cmd_token_revoke(const Globals& g, const std::string& name) {
  Registry r = open_registry(g, false);
  const TokenInfo t = TokenStore(r).revoke(name, actor_of(g));
  if (g.json) {
    print_json(to_json(t));
  } else {
    print_text("revoked token '{}'\n", t.name);
  }
  return 0;
}

}  // namespace

void add_token_command(CLI::App& app, Globals& g) {
  CLI::App* token = app.add_subcommand("token", "Create, list or revoke the access tokens of `modelreg ui`");
  token->require_subcommand(1);
  token->footer(
      "Roles nest: reader (read) < writer (+ register, tags) < promoter (+ promote, rollback, aliases,\n"
      "archive) < admin (+ delete, gc, tokens). --model limits a token to models matching a glob.\n"
      "Examples:\n  TOKEN=$(modelreg token create ci --role writer --model 'fraud*')\n  modelreg token list\n"
      "  modelreg token revoke ci");
  {
    auto [cmd, a] = add_command<TokenCreateArgs>(
        *token, g, "create", "Create a token and print it (once: only its hash is stored)",
        "  modelreg token create ci --role writer --model 'fraud*'\n  TOKEN=$(modelreg token create ops --role admin)",
        cmd_token_create);
    cmd->add_option("NAME", a->name, "Token name, recorded as the actor of its changes")->required();
    cmd->add_option("--role", a->role, "reader, writer, promoter or admin")->required();
    cmd->add_option("--model", a->model, "Only models matching this glob (fnmatch: fraud*, team-?-*)");
  }
  add_command(*token, g, "list", "The tokens (never their text or hash)", "  modelreg --json token list",
              [&g] { return cmd_token_list(g); });
  {
    auto [cmd, name] = add_command<std::string>(*token, g, "revoke", "Revoke a token (for good; it stays listed)",
                                                "  modelreg token revoke ci", cmd_token_revoke);
    cmd->add_option("NAME", *name, "Token name")->required();
  }
}

}  // namespace modelreg::cli
