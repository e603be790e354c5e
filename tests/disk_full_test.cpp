// Fault suite, disk full and write errors: a large registration that runs out of room fails with a
// clear Errc::io_error, leaves the database intact, and the database takes writes again once there
// is room.
//
// Always on: a file-size limit (RLIMIT_FSIZE, with SIGXFSZ ignored so write() fails with EFBIG) in
// a forked child. Where the test may create a mount namespace and mount a small tmpfs (root in a
// container or VM), also a really full file system (ENOSPC); elsewhere that case is skipped with a
// message.
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "test_support.hpp"

using namespace modelreg;
using test::spec;

namespace {

constexpr std::size_t kLarge = 32u << 20;  // incompressible, so the whole of it has to be written

// What the failing registration threw, as seen in the child that ran it.
struct Outcome {
  bool threw_error = false;  // a modelreg::Error (anything else is reported in `message`)
  Errc code = Errc::io_error;
  std::string message;
};

// Runs `body` in a forked child and returns the Error it threw; `limit` (when set) is applied to
// the child's file sizes first.
Outcome in_child(const std::function<void()>& body, std::optional<rlim_t> limit) {
  int out[2];
  REQUIRE(::pipe(out) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(out[0]);
    std::string result = "none\nthe registration succeeded";
    try {
      if (limit) {
        ::signal(SIGXFSZ, SIG_IGN);
        const rlimit r{*limit, *limit};
        if (::setrlimit(RLIMIT_FSIZE, &r) != 0) throw std::runtime_error("setrlimit failed");
      }
      body();
    } catch (const Error& e) {
      result = fmt::format("{}\n{}", static_cast<int>(e.code()), e.what());
    } catch (const std::exception& e) {
      result = fmt::format("other\n{}", e.what());
    }
    (void)::write(out[1], result.data(), result.size());
    ::_exit(0);
  }
  ::close(out[1]);
  std::string text;
  char buf[4096];
  ssize_t n = 0;
  while ((n = ::read(out[0], buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
  ::close(out[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  const auto nl = text.find('\n');
  REQUIRE(nl != std::string::npos);
  Outcome o;
  o.message = text.substr(nl + 1);
  const std::string head = text.substr(0, nl);
  if (head != "none" && head != "other") {
    o.threw_error = true;
    o.code = static_cast<Errc>(std::stoi(head));
  }
  return o;
}

// A registry with two small versions (one active) to check afterwards.
void seed_registry(const std::filesystem::path& db) {
  Registry reg(db);
  NewVersion s = spec("fraud");
  s.metrics = {{"f1", 0.8}};
  reg.register_bytes(s, test::random_bytes(200'000, 1));
  reg.register_bytes(s, test::random_bytes(200'000, 2));
  reg.promote(test::ref("fraud@2"));
}

// The database after the failed registration: intact, nothing partial, the old versions load.
void check_intact(const std::filesystem::path& db) {
  CHECK(test::integrity_check(db) == "ok");
  auto d = test::raw(db, false);
  CHECK(d.execAndGet("SELECT count(*) FROM pragma_foreign_key_check").getInt() == 0);
  CHECK(d.execAndGet("SELECT count(*) FROM versions").getInt() == 2);
  CHECK(d.execAndGet("SELECT count(*) FROM blobs").getInt() == 2);
  CHECK(d.execAndGet("SELECT count(*) FROM blob_chunks WHERE blob_id NOT IN (SELECT id FROM blobs)").getInt() == 0);
  CHECK(d.execAndGet("SELECT count(*) FROM events WHERE kind = 'register'").getInt() == 2);
  CHECK(d.execAndGet("SELECT last_number FROM models WHERE name = 'fraud'").getInt() == 2);
  Registry reg(db);
  CHECK(reg.load_bytes(test::ref("fraud@1")) == test::random_bytes(200'000, 1));
  CHECK(reg.load_bytes(test::ref("fraud")) == test::random_bytes(200'000, 2));
  CHECK(reg.check().ok());
}

void register_large(const std::filesystem::path& db) {
  Registry reg(db);
  NewVersion s = spec("fraud");
  s.level = 1;
  s.notes = "too large for the space left";
  reg.register_bytes(s, test::random_bytes(kLarge, 3));
}

}  // namespace

TEST_CASE("a file-size limit during a large registration is a clear io_error and the database stays writable") {
  test::TempDir dir;
  const auto db = dir / "r.db";
  seed_registry(db);
  // Room for a few MiB more than the database holds now, far less than the new version needs.
  const auto limit = static_cast<rlim_t>(std::filesystem::file_size(db) + (4u << 20));
  const Outcome o = in_child([&] { register_large(db); }, limit);
  MESSAGE(o.message);
  REQUIRE(o.threw_error);
  CHECK(o.code == Errc::io_error);
  // What happened, and the fix.
  CHECK(o.message.find("registering") != std::string::npos);
  CHECK(o.message.find("file size limit") != std::string::npos);
  CHECK(o.message.find("free space") != std::string::npos);

  check_intact(db);
  // Without the limit, the same registration goes through.
  register_large(db);
  Registry reg(db);
  CHECK(reg.get(test::ref("fraud@latest")).id.number == 3);
  CHECK(reg.load_bytes(test::ref("fraud@3")) == test::random_bytes(kLarge, 3));
  CHECK(test::integrity_check(db) == "ok");
}

// Last in this file: it moves the test process into a mount namespace of its own (so the tmpfs
// disappears with the process, whatever happens).
TEST_CASE("a full file system during a large registration is a clear io_error and the database stays writable") {
  if (::unshare(CLONE_NEWNS) != 0) {
    MESSAGE("skipped: cannot create a mount namespace (", std::strerror(errno), "); needs CAP_SYS_ADMIN");
    return;
  }
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    MESSAGE("skipped: cannot make mounts private (", std::strerror(errno), ")");
    return;
  }
  test::TempDir dir;
  const auto mnt = dir / "small";
  std::filesystem::create_directory(mnt);
  if (::mount("modelreg-test", mnt.c_str(), "tmpfs", 0, "size=16m") != 0) {
    MESSAGE("skipped: cannot mount a tmpfs (", std::strerror(errno), ")");
    return;
  }
  struct Unmount {
    std::filesystem::path path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{mnt};

  const auto db = mnt / "r.db";
  seed_registry(db);
  const Outcome o = in_child([&] { register_large(db); }, std::nullopt);
  MESSAGE(o.message);
  REQUIRE(o.threw_error);
  CHECK(o.code == Errc::io_error);
  CHECK(o.message.find("registering") != std::string::npos);
  CHECK(o.message.find("disk is full") != std::string::npos);
  CHECK(o.message.find("free space") != std::string::npos);

  check_intact(db);
  // The failed transaction's log was discarded when its connection closed: there is room again,
  // and the next registration (2 MiB) goes through.
  {
    Registry reg(db);
    NewVersion s = spec("fraud");
    s.level = 1;
    const auto v = reg.register_bytes(s, test::random_bytes(2u << 20, 4));
    CHECK(v.id.number == 3);
    CHECK(reg.load_bytes(test::ref("fraud@3")) == test::random_bytes(2u << 20, 4));
  }
  CHECK(test::integrity_check(db) == "ok");
}
