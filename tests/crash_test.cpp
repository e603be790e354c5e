// A writer killed with SIGKILL at random moments never leaves a partial version behind.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <random>
#include <set>
#include <thread>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "test_support.hpp"

using namespace modelreg;
using test::spec;

namespace {

// Every check the crash suite makes after a kill.
void check_consistent(const std::filesystem::path& db) {
  CHECK(test::integrity_check(db) == "ok");
  auto d = test::raw(db, false);
  CHECK(d.execAndGet("SELECT count(*) FROM pragma_foreign_key_check").getInt() == 0);
  CHECK(d.execAndGet("SELECT count(*) FROM blob_chunks WHERE blob_id NOT IN (SELECT id FROM blobs)").getInt() == 0);
  CHECK(d.execAndGet("SELECT count(*) FROM (SELECT model_id FROM versions WHERE is_active = 1 GROUP BY model_id "
                     "HAVING count(*) > 1)")
            .getInt() == 0);
  // Every version has its register event, and blob rows agree with their chunks.
  CHECK(d.execAndGet("SELECT count(*) FROM versions v WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.model_id = "
                     "v.model_id AND e.kind = 'register' AND e.version = v.number)")
            .getInt() == 0);
  CHECK(d.execAndGet("SELECT count(*) FROM blobs b WHERE chunk_count <> (SELECT count(*) FROM blob_chunks c WHERE "
                     "c.blob_id = b.id)")
            .getInt() == 0);
}

}  // namespace

TEST_CASE("SIGKILL at random moments while registering large blobs leaves no partial version") {
  test::TempDir dir;
  const auto db = dir / "r.db";
  { Registry reg(db); }
  std::mt19937 rng(20261129);
  constexpr int kKills = 24;
  int killed_mid_write = 0;
  std::int64_t committed = 0;
  std::set<std::int64_t> verified;  // each version's bytes are checked once, after the kill that follows it

  for (int round = 0; round < kKills; ++round) {
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    const unsigned seed = rng();
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(ready[0]);
      try {
        Options o;
        o.chunk_size = 256 << 10;
        Registry reg(db, o);
        (void)::write(ready[1], "r", 1);
        for (unsigned i = 0;; ++i) {
          (void)::write(ready[1], "s", 1);  // starting a registration
          NewVersion s = spec("big");
          s.level = 1;
          s.metrics = {{"i", i}};
          s.features = {{"a"}, {"b"}};
          // 6 MB, different every time (no dedupe), in 24 chunks.
          reg.register_bytes(s, test::compressible_bytes(6 << 20, seed + i));
          (void)::write(ready[1], "d", 1);  // committed
          if (i % 3 == 2) reg.promote(ModelRef::latest("big"));
        }
      } catch (...) {
      }
      ::_exit(1);
    }
    ::close(ready[1]);
    char c;
    REQUIRE(::read(ready[0], &c, 1) == 1);
    // The moment to kill at: anywhere within a few registrations.
    std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, 400'000)(rng)));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    REQUIRE(WIFSIGNALED(status));

    // The child's last word says whether the kill landed inside a registration.
    char last = 'r';
    while (::read(ready[0], &c, 1) == 1) last = c;
    ::close(ready[0]);
    if (last == 's') ++killed_mid_write;

    check_consistent(db);
    Registry reg(db);
    // The first kill may come before the first registration created the model.
    const auto models = reg.list_models();
    auto versions = models.empty() ? std::vector<ModelVersion>{} : reg.list_versions("big");
    CHECK(static_cast<std::int64_t>(versions.size()) >= committed);
    committed = static_cast<std::int64_t>(versions.size());
    for (const auto& v : versions) {
      CAPTURE(v.ref_string());
      CHECK(v.features.size() == 2);
      if (verified.insert(v.id.number).second) CHECK_NOTHROW(reg.verify(ModelRef::number("big", v.id.number)));
    }
  }
  MESSAGE(kKills, " kills, ", killed_mid_write, " of them inside a registration; ", committed,
          " versions committed in all");
  CHECK(committed > 0);
  CHECK(killed_mid_write >= kKills / 2);
}
