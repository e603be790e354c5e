// `modelreg alias set|remove|list` and `rollback --alias`: exit 0 with text or --json, 1 with one
// line on stderr and the database unchanged on every refusal, 2 on a usage error.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "process_harness.hpp"
#include "test_support.hpp"

using nlohmann::json;

namespace {

struct Result {
  int status = -1;
  std::string out, err;
  json parsed() const { return json::parse(out); }
};

struct AliasCli {
  test::TempDir dir;
  std::filesystem::path db = dir / "reg.db";

  Result run(std::vector<std::string> args) {
    args.insert(args.begin(), {"--db", db.string(), "--actor", "ops"});
    test::Command command{.args = {test::modelreg_binary()},
                          .env = {{"MODELREG_DB", std::nullopt}, {"MODELREG_SIGNING_KEY", std::nullopt}},
                          .cwd = dir.path(),
                          .capture_out = true,
                          .capture_err = true};
    command.args.insert(command.args.end(), args.begin(), args.end());
    const test::CommandResult r = test::run_command(command);
    REQUIRE_MESSAGE(r.start_error.empty(), r.start_error);
    REQUIRE_FALSE(r.timed_out);
    return {r.status, r.out, r.err};
  }

  Result ok(std::vector<std::string> args) {
    Result r = run(args);
    INFO(fmt::format("{}\nstdout: {}\nstderr: {}", fmt::join(args, " "), r.out, r.err));
    REQUIRE(r.status == 0);
    return r;
  }

  // Exits `status` with `message` on stderr (one line for an error; a usage error adds a hint), and
  // changes nothing.
  void refused(std::vector<std::string> args, int status, const std::string& message) {
    const std::string before = test::dump(db);
    Result r = run(args);
    INFO(fmt::format("{}\nstdout: {}\nstderr: {}", fmt::join(args, " "), r.out, r.err));
    CHECK(r.status == status);
    CHECK(r.err.find(message) != std::string::npos);
    if (status == 1) CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    CHECK(test::dump(db) == before);
  }

  // fraud@1..3 with f1 0.80, 0.90, 0.85 (fraud@2 labelled v2); fraud@1 active.
  AliasCli() {
    const double f1[] = {0.80, 0.90, 0.85};
    for (int i = 1; i <= 3; ++i) {
      const auto file = dir / fmt::format("m{}.bin", i);
      std::ofstream(file) << "model " << i;
      std::vector<std::string> args = {"register", "fraud", "--file", file.string(), "--metric",
                                       fmt::format("f1={}", f1[i - 1]), "--metric", fmt::format("score={}", i)};
      if (i == 2) args.insert(args.end(), {"--label", "v2"});
      ok(args);
    }
    ok({"promote", "fraud@1"});
  }
};

}  // namespace

TEST_CASE_FIXTURE(AliasCli, "alias set points an alias at a version and list/show print it") {
  Result r = ok({"alias", "set", "fraud@v2", "champion", "--reason", "best f1"});
  CHECK(r.out == "set fraud@champion: now fraud@2 (was none)\n");
  json t = ok({"--json", "alias", "set", "fraud@3", "challenger"}).parsed();
  CHECK(t == json{{"model", "fraud"}, {"alias", "challenger"}, {"from_version", nullptr}, {"to_version", 3}});
  CHECK(ok({"alias", "set", "fraud@3", "challenger"}).out == "fraud@challenger already points at fraud@3\n");
  // `alias set REF active` is promote.
  CHECK(ok({"alias", "set", "fraud@3", "active"}).out == "promoted fraud: fraud@3 is now active (was fraud@1)\n");
  CHECK(ok({"--json", "show", "fraud"}).parsed()["aliases"] == json{"active", "challenger"});

  json list = ok({"--json", "alias", "list", "fraud"}).parsed();
  REQUIRE(list.size() == 3);
  CHECK(list[0]["alias"] == "active");
  CHECK(list[0]["version"] == 3);
  CHECK(list[1]["ref"] == "fraud@challenger");
  CHECK(list[2]["alias"] == "champion");
  CHECK(list[2]["version_ref"] == "fraud@2");
  CHECK(list[2]["set_by"] == "ops");
  CHECK(ok({"--json", "alias", "list"}).parsed() == list);
  const std::string table = ok({"alias", "list"}).out;
  CHECK(table.find("fraud@champion    fraud@2") != std::string::npos);

  CHECK(ok({"--json", "show", "fraud@champion"}).parsed()["version"] == 2);
  CHECK(ok({"show", "fraud@2"}).out.find("  aliases  champion\n") != std::string::npos);
  json versions = ok({"--json", "list", "fraud"}).parsed();
  CHECK(versions[1]["aliases"] == json{"champion"});
  CHECK(versions[0]["aliases"] == json::array());
  CHECK(ok({"list", "fraud"}).out.find("active,challenger") != std::string::npos);

  json history = ok({"--json", "history", "fraud"}).parsed();
  const json& set = history[4];
  CHECK(set["kind"] == "alias_set");
  CHECK(set["alias"] == "champion");
  CHECK(set["to_version"] == 2);
  CHECK(set["reason"] == "best f1");
  CHECK(history[0]["alias"] == nullptr);
  CHECK(history[3]["alias"] == "active");
}

TEST_CASE_FIXTURE(AliasCli, "alias set keeps the guard with its direction; refusals exit 1 and change nothing") {
  ok({"alias", "set", "fraud@2", "champion"});
  refused({"alias", "set", "fraud@3", "champion", "--require-better", "f1"}, 1, "f1 0.85 is below");
  refused({"alias", "set", "fraud@3", "champion", "--require-better", "score"}, 1, "is not known");
  refused({"alias", "set", "fraud@1", "champion", "--require-better", "score", "--higher-is-better"}, 1,
          "score 1 is below");
  CHECK(ok({"alias", "set", "fraud@1", "champion", "--require-better", "score", "--lower-is-better"}).out ==
        "set fraud@champion: now fraud@1 (was fraud@2)\n");
  refused({"alias", "set", "fraud@1", "v2"}, 1, "'v2' is the label of fraud@2");
  refused({"alias", "set", "fraud@9", "champion"}, 1, "no version 9");
  ok({"archive", "fraud@3"});
  refused({"alias", "set", "fraud@3", "champion"}, 1, "archived and cannot hold an alias");
  ok({"alias", "set", "fraud@2", "shadow"});
  refused({"archive", "fraud@2"}, 1, "fraud@2 holds the alias shadow and cannot be archived");
  refused({"register", "fraud", "--file", (dir / "m1.bin").string(), "--label", "champion"}, 1,
          "'champion' is an alias of 'fraud'");
  // Usage errors: exit 2.
  refused({"alias", "set", "fraud@1", "latest"}, 2, "not a valid alias");
  refused({"alias", "set", "fraud@1"}, 2, "ALIAS");
  refused({"alias", "set", "fraud@1", "x", "--higher-is-better"}, 2, "give --require-better METRIC too");
  refused({"alias"}, 2, "");
  refused({"alias", "remove", "fraud"}, 2, "ALIAS");
}

TEST_CASE_FIXTURE(AliasCli, "alias remove and rollback --alias walk an alias's history") {
  for (const char* v : {"fraud@1", "fraud@2", "fraud@3"}) ok({"alias", "set", v, "champion"});
  CHECK(ok({"rollback", "fraud", "--alias", "champion", "--reason", "bad"}).out ==
        "rolled back fraud@champion: now fraud@2 (was fraud@3)\n");
  json t = ok({"--json", "rollback", "fraud", "--alias", "champion"}).parsed();
  CHECK(t == json{{"model", "fraud"}, {"alias", "champion"}, {"from_version", 2}, {"to_version", 1}});
  refused({"rollback", "fraud", "--alias", "champion"}, 1, "fraud@champion has no earlier version to roll back to");
  refused({"rollback", "fraud"}, 1, "no earlier active version");  // active has its own history
  CHECK(ok({"rollback", "fraud", "--alias", "champion", "--to", "fraud@3"}).out ==
        "rolled back fraud@champion: now fraud@3 (was fraud@1)\n");

  CHECK(ok({"alias", "remove", "fraud", "champion", "--reason", "done"}).out ==
        "removed fraud@champion (it pointed at fraud@3)\n");
  refused({"alias", "remove", "fraud", "champion"}, 1, "model 'fraud' has no alias 'champion'");
  refused({"alias", "remove", "fraud", "active"}, 1, "cannot be removed");
  refused({"alias", "remove", "nope", "champion"}, 1, "model 'nope' does not exist");
  refused({"show", "fraud@champion"}, 1, "no alias 'champion'");
  ok({"alias", "set", "fraud@2", "shadow"});
  json removed = ok({"--json", "alias", "remove", "fraud", "shadow"}).parsed();
  CHECK(removed == json{{"model", "fraud"}, {"alias", "shadow"}, {"removed", true}, {"from_version", 2}});
  const json last = ok({"--json", "history", "fraud"}).parsed().back();
  CHECK(last["kind"] == "alias_remove");
  CHECK(last["from_version"] == 2);
  CHECK(last["to_version"] == nullptr);
  CHECK(ok({"alias", "list", "fraud"}).out.find("shadow") == std::string::npos);

  // The SQL view of current aliases.
  ok({"alias", "set", "fraud@2", "champion"});
  json rows = ok({"--json", "sql", "SELECT model, alias, version FROM model_aliases ORDER BY alias"}).parsed();
  CHECK(rows.dump().find("champion") != std::string::npos);
  ok({"verify"});
}

TEST_CASE_FIXTURE(AliasCli, "alias commands have --help with examples and are refused on a read-only registry") {
  for (const char* sub : {"set", "remove", "list"}) {
    CAPTURE(sub);
    Result r = run({"alias", sub, "--help"});
    CHECK(r.status == 0);
    CHECK(r.out.find("Examples:") != std::string::npos);
  }
  refused({"--read-only", "alias", "set", "fraud@2", "champion"}, 1, "read-only");
  CHECK(ok({"--read-only", "--json", "alias", "list"}).parsed().size() == 1);
}
