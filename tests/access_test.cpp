// Access tokens and roles (access.hpp): creation, listing, revocation and authentication through
// the library; the schema's rules from a raw SQL connection; the pure permission rule; keyset
// pagination of list_versions (VersionQuery::after), which the HTTP API pages with.
#include <algorithm>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "modelreg/access.hpp"
#include "model_test_support.hpp"
#include "test_support.hpp"

using namespace modelreg;
using test::spec;

namespace {

struct Fixture {
  test::TempDir dir;
  std::filesystem::path db = dir / "r.db";
  Registry reg{db, [] {
                 Options o;
                 o.default_actor = "ops";
                 return o;
               }()};
  TokenStore tokens{reg};
};

NewToken token(std::string name, Role role, std::optional<std::string> glob = std::nullopt) {
  NewToken t;
  t.name = std::move(name);
  t.role = role;
  t.model_glob = std::move(glob);
  return t;
}

}  // namespace

TEST_CASE("a created token authenticates as its name, role and glob; the registry keeps only its hash") {
  Fixture f;
  const std::string text = f.tokens.create(token("ci", Role::writer, "fraud*"));
  CHECK(text.size() == 68);
  CHECK(text.starts_with("mrt_"));
  const auto who = f.tokens.authenticate(text);
  REQUIRE(who);
  CHECK(who->name == "ci");
  CHECK(who->role == Role::writer);
  CHECK(who->model_glob == std::optional<std::string>("fraud*"));
  CHECK(who->created_by == "ops");
  CHECK(test::dump(f.db).find(text) == std::string::npos);
  auto raw = test::raw(f.db, false);
  CHECK(raw.execAndGet("SELECT hash FROM tokens").getString().size() == 64);
  // Two tokens never share a text.
  CHECK(f.tokens.create(token("ci2", Role::writer)) != text);
}

TEST_CASE("authenticate refuses a wrong, truncated, empty or revoked token alike") {
  Fixture f;
  const std::string text = f.tokens.create(token("ci", Role::admin));
  std::string wrong = text;
  wrong.back() = wrong.back() == '0' ? '1' : '0';
  CHECK_FALSE(f.tokens.authenticate(wrong));
  CHECK_FALSE(f.tokens.authenticate(text.substr(0, 60)));
  CHECK_FALSE(f.tokens.authenticate(""));
  CHECK_FALSE(f.tokens.authenticate(text + "0"));
  const TokenInfo revoked = f.tokens.revoke("ci", "alice");
  CHECK(revoked.revoked_by == std::optional<std::string>("alice"));
  CHECK_FALSE(f.tokens.authenticate(text));
  CHECK(f.tokens.list().size() == 1);
  CHECK(f.tokens.list()[0].revoked());
}

TEST_CASE("bad token names, globs, taken names and revoking twice are refused with the registry unchanged") {
  Fixture f;
  f.tokens.create(token("ci", Role::reader));
  const std::string before = test::dump(f.db);
  auto code_of = [](auto&& call) {
    try {
      call();
    } catch (const Error& e) {
      return e.code();
    }
    FAIL("no error");
    return Errc::io_error;
  };
  CHECK(code_of([&] { f.tokens.create(token("", Role::reader)); }) == Errc::invalid_argument);
  CHECK(code_of([&] { f.tokens.create(token("a b", Role::reader)); }) == Errc::invalid_argument);
  CHECK(code_of([&] { f.tokens.create(token(std::string(65, 'a'), Role::reader)); }) == Errc::invalid_argument);
  CHECK(code_of([&] { f.tokens.create(token("g", Role::reader, "")); }) == Errc::invalid_argument);
  CHECK(code_of([&] { f.tokens.create(token("g", Role::reader, "fr\naud")); }) == Errc::invalid_argument);
  CHECK(code_of([&] { f.tokens.create(token("ci", Role::admin)); }) == Errc::already_exists);
  CHECK(code_of([&] { f.tokens.revoke("nobody"); }) == Errc::not_found);
  CHECK(test::dump(f.db) == before);
  f.tokens.revoke("ci");
  const std::string revoked = test::dump(f.db);
  CHECK(code_of([&] { f.tokens.revoke("ci"); }) == Errc::conflict);
  // A revoked name is never reused.
  CHECK(code_of([&] { f.tokens.create(token("ci", Role::reader)); }) == Errc::already_exists);
  CHECK(test::dump(f.db) == revoked);
  CHECK_THROWS_WITH_AS(parse_role("boss"), doctest::Contains("reader, writer, promoter or admin"), Error);
}

TEST_CASE("the schema keeps tokens: no delete, no change of hash or role, a revoked token stays revoked") {
  Fixture f;
  f.tokens.create(token("ci", Role::reader));
  f.tokens.create(token("ops", Role::admin));
  f.tokens.revoke("ops");
  auto raw = test::raw(f.db);
  CHECK_THROWS_WITH(raw.exec("DELETE FROM tokens WHERE name = 'ci'"), doctest::Contains("never deleted"));
  CHECK_THROWS_WITH(raw.exec("UPDATE tokens SET role = 'admin' WHERE name = 'ci'"), doctest::Contains("keeps its name"));
  CHECK_THROWS_WITH(raw.exec("UPDATE tokens SET hash = '" + std::string(64, 'a') + "' WHERE name = 'ci'"),
                    doctest::Contains("keeps its name"));
  CHECK_THROWS_WITH(raw.exec("UPDATE tokens SET revoked_at = NULL, revoked_by = NULL WHERE name = 'ops'"),
                    doctest::Contains("stays revoked"));
  CHECK_THROWS_WITH(raw.exec("UPDATE tokens SET revoked_at = 'x' WHERE name = 'ci'"), doctest::Contains("CHECK"));
  CHECK_THROWS_WITH(raw.exec("INSERT INTO tokens(name, hash, role, created_at, created_by) VALUES ('x', 'abc', "
                             "'reader', 't', 'me')"),
                    doctest::Contains("CHECK"));
  CHECK_THROWS_WITH(raw.exec("INSERT INTO tokens(name, hash, role, created_at, created_by) VALUES ('x', '" +
                             std::string(64, 'b') + "', 'root', 't', 'me')"),
                    doctest::Contains("CHECK"));
  CHECK(f.reg.check().ok());
}

TEST_CASE("roles nest and a glob limits a token to matching models") {
  CHECK(permits(Role::reader, std::nullopt, Action::read, "fraud"));
  CHECK_FALSE(permits(Role::reader, std::nullopt, Action::write, "fraud"));
  CHECK(permits(Role::writer, std::nullopt, Action::write, "fraud"));
  CHECK_FALSE(permits(Role::writer, std::nullopt, Action::promote, "fraud"));
  CHECK(permits(Role::promoter, std::nullopt, Action::promote, "fraud"));
  CHECK_FALSE(permits(Role::promoter, std::nullopt, Action::delete_, "fraud"));
  CHECK(permits(Role::admin, std::nullopt, Action::delete_, "fraud"));
  CHECK(permits(Role::admin, std::nullopt, Action::tokens, ""));
  CHECK_FALSE(permits(Role::promoter, std::nullopt, Action::tokens, ""));
  const std::optional<std::string> glob = "fraud*";
  CHECK(permits(Role::admin, glob, Action::delete_, "fraud-eu"));
  CHECK_FALSE(permits(Role::admin, glob, Action::read, "pricing"));
  // A call on no one model (SQL, gc, tokens) could reach models outside the glob.
  CHECK_FALSE(permits(Role::admin, glob, Action::read, ""));
  CHECK_FALSE(permits(Role::admin, glob, Action::tokens, ""));
  CHECK(glob_matches("team-?-*", "team-a-x"));
  CHECK_FALSE(glob_matches("team-?-*", "team-ab-x"));
}

TEST_CASE("list_versions pages with a keyset cursor, by number and by a metric with versions lacking it last") {
  Fixture f;
  for (int i = 1; i <= 25; ++i) {
    NewVersion s = spec("fraud");
    if (i % 5 != 0) s.metrics = {{"f1", (i % 7) / 10.0}};
    f.reg.register_bytes(s, fmt::format("v{}", i));
  }
  auto walk = [&](VersionQuery q) {
    std::vector<std::int64_t> seen;
    q.limit = 4;
    for (;;) {
      const auto page = f.reg.list_versions("fraud", q);
      for (const auto& v : page) seen.push_back(v.id.number);
      if (page.size() < 4) break;
      VersionQuery::After after{page.back().id.number, std::nullopt};
      if (q.order_by_metric) {
        auto it = page.back().metrics.find(*q.order_by_metric);
        if (it != page.back().metrics.end()) after.metric = it->second;
      }
      q.after = after;
    }
    return seen;
  };
  auto all_of = [&](VersionQuery q) {
    std::vector<std::int64_t> out;
    for (const auto& v : f.reg.list_versions("fraud", q)) out.push_back(v.id.number);
    return out;
  };
  CHECK(walk({}) == all_of({}));
  CHECK(walk({}).size() == 25);
  for (bool desc : {true, false}) {
    VersionQuery by_f1;
    by_f1.order_by_metric = "f1";
    by_f1.descending = desc;
    CHECK(walk(by_f1) == all_of(by_f1));
  }
  VersionQuery filtered;
  filtered.where = {MetricCondition::parse("f1 >= 0.3")};
  CHECK(walk(filtered) == all_of(filtered));
  // Newest first: 25, 24, ... 1, page by page; with a filter, only the matching ones, still newest first.
  VersionQuery newest;
  newest.newest_first = true;
  std::vector<std::int64_t> descending(25);
  for (int i = 0; i < 25; ++i) descending[static_cast<std::size_t>(i)] = 25 - i;
  CHECK(walk(newest) == descending);
  CHECK(all_of(newest) == descending);
  filtered.newest_first = true;
  const auto newest_filtered = walk(filtered);
  CHECK(newest_filtered == all_of(filtered));
  CHECK(std::is_sorted(newest_filtered.rbegin(), newest_filtered.rend()));
  VersionQuery oldest_filtered;
  oldest_filtered.where = filtered.where;
  CHECK(newest_filtered.size() == all_of(oldest_filtered).size());
  // A metric order and newest_first are two orders: refused, naming both.
  VersionQuery both;
  both.order_by_metric = "f1";
  both.newest_first = true;
  CHECK(test::code_of([&] { f.reg.list_versions("fraud", both); }) == Errc::invalid_argument);
  CHECK(test::contains(test::message_of([&] { f.reg.list_versions("fraud", both); }), "newest_first"));
}
