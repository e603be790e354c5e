// Several processes writing one database at once.
#include <sys/wait.h>
#include <unistd.h>

#include <set>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "test_support.hpp"

using namespace modelreg;
using test::spec;

namespace {

// Runs `body` in a child process; the child exits 0 when body returns, 1 when it throws.
pid_t spawn(const std::function<void()>& body) {
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int status = 0;
    try {
      body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child %d: %s\n", static_cast<int>(::getpid()), e.what());
      status = 1;
    }
    ::_exit(status);
  }
  return pid;
}

int wait_for(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

TEST_CASE("4 processes registering 50 versions each get 200 distinct consecutive numbers") {
  test::TempDir dir;
  const auto db = dir / "r.db";
  constexpr int kProcesses = 4;
  constexpr int kEach = 50;
  // A pipe as a starting gun, so the children start (and create the database) together.
  int gun[2];
  REQUIRE(::pipe(gun) == 0);
  std::vector<pid_t> children;
  for (int p = 0; p < kProcesses; ++p) {
    children.push_back(spawn([&, p] {
      ::close(gun[1]);
      char c;
      (void)::read(gun[0], &c, 1);
      Registry reg(db);
      for (int i = 0; i < kEach; ++i) {
        NewVersion s = spec("shared");
        s.metrics = {{"writer", p}, {"i", i}};
        s.tags = {{"writer", std::to_string(p)}};
        reg.register_bytes(s, fmt::format("process {} version {} {}", p, i, std::string(1000 + i, 'x')));
      }
    }));
  }
  ::close(gun[0]);
  ::close(gun[1]);  // fires
  for (pid_t pid : children) CHECK(wait_for(pid) == 0);

  Registry reg(db);
  auto versions = reg.list_versions("shared");
  REQUIRE(versions.size() == kProcesses * kEach);
  std::set<std::int64_t> numbers;
  std::map<int, int> per_writer;
  for (const auto& v : versions) {
    numbers.insert(v.id.number);
    ++per_writer[static_cast<int>(v.metrics.at("writer"))];
    const int p = static_cast<int>(v.metrics.at("writer"));
    const int i = static_cast<int>(v.metrics.at("i"));
    CHECK(reg.load_bytes(ModelRef::number("shared", v.id.number)) ==
          fmt::format("process {} version {} {}", p, i, std::string(1000 + i, 'x')));
  }
  CHECK(numbers.size() == kProcesses * kEach);
  CHECK(*numbers.begin() == 1);
  CHECK(*numbers.rbegin() == kProcesses * kEach);
  for (int p = 0; p < kProcesses; ++p) CHECK(per_writer[p] == kEach);
  CHECK(reg.history("shared").size() == kProcesses * kEach);
  CHECK(test::integrity_check(db) == "ok");
}

TEST_CASE("promotions from several processes leave exactly one active version and a consistent log") {
  test::TempDir dir;
  const auto db = dir / "r.db";
  {
    Registry reg(db);
    for (int i = 0; i < 4; ++i) reg.register_bytes(spec("fraud"), fmt::format("v{}", i));
  }
  std::vector<pid_t> children;
  for (int p = 0; p < 4; ++p) {
    children.push_back(spawn([&, p] {
      Registry reg(db);
      for (int i = 0; i < 25; ++i) reg.promote(ModelRef::number("fraud", 1 + (p + i) % 4), {.reason = "race"});
    }));
  }
  for (pid_t pid : children) CHECK(wait_for(pid) == 0);
  Registry reg(db);
  auto d = test::raw(db, false);
  CHECK(d.execAndGet("SELECT count(*) FROM versions WHERE is_active = 1").getInt() == 1);
  // The last promote or rollback event names the active version.
  const auto history = reg.history("fraud");
  REQUIRE_FALSE(history.empty());
  CHECK(history.back().to_version == reg.get(test::ref("fraud")).id.number);
  CHECK(test::integrity_check(db) == "ok");
}
