// read_signing_key refuses key files that are not secret (as ssh refuses private keys), not a key,
// or not a regular file, each with a message that says what to do.
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <fstream>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "model_test_support.hpp"
#include "modelreg/signing.hpp"
#include "test_support.hpp"

using namespace modelreg;
using test::code_of;
using test::contains;
using test::message_of;

namespace {

const std::string kKey = "0123456789abcdef0123456789abcdef";

// Writes `text` to `file` and sets its mode exactly (umask does not apply to chmod).
std::filesystem::path key_file(const test::TempDir& dir, const std::string& name, const std::string& text,
                               mode_t mode) {
  const auto file = dir / name;
  std::ofstream(file, std::ios::binary) << text;
  REQUIRE(::chmod(file.c_str(), mode) == 0);
  return file;
}

}  // namespace

TEST_CASE("a key file readable only by its owner is accepted") {
  test::TempDir dir;
  CHECK(read_signing_key(key_file(dir, "0600", kKey + "\n", 0600)) == kKey);
  CHECK(read_signing_key(key_file(dir, "0400", kKey, 0400)) == kKey);
  CHECK(read_signing_key(key_file(dir, "0700", kKey, 0700)) == kKey);
  // The file create_signing_key writes is accepted as it is.
  const std::string created = create_signing_key(dir / "created");
  CHECK(read_signing_key(dir / "created") == created);
}

TEST_CASE("a key file others or its group may access is refused, saying chmod 600 FILE") {
  test::TempDir dir;
  for (const mode_t mode : {0644, 0640, 0604, 0660, 0620, 0602, 0610, 0666, 0777}) {
    CAPTURE(mode);
    const auto file = key_file(dir, fmt::format("key-{:o}", mode), kKey, mode);
    CHECK(code_of([&] { (void)read_signing_key(file); }) == Errc::invalid_argument);
    const std::string m = message_of([&] { (void)read_signing_key(file); });
    CHECK(contains(m, "chmod 600 " + file.string()));
    CHECK(contains(m, fmt::format("mode 0{:o}", mode)));
    CHECK(contains(m, (mode & 007) != 0 ? "accessible by others" : "accessible by its group"));
    // The fix works.
    REQUIRE(::chmod(file.c_str(), 0600) == 0);
    CHECK(read_signing_key(file) == kKey);
  }
}

TEST_CASE("a symlink to a key is followed, and the target's mode decides") {
  test::TempDir dir;
  const auto secret = key_file(dir, "secret", kKey, 0600);
  std::filesystem::create_symlink(secret, dir / "link");
  CHECK(read_signing_key(dir / "link") == kKey);
  REQUIRE(::chmod(secret.c_str(), 0644) == 0);
  const std::string m = message_of([&] { (void)read_signing_key(dir / "link"); });
  CHECK(contains(m, "chmod 600 " + (dir / "link").string()));  // chmod follows the link too
  // A dangling link is a missing key.
  std::filesystem::create_symlink(dir / "nowhere", dir / "dangling");
  CHECK(code_of([&] { (void)read_signing_key(dir / "dangling"); }) == Errc::not_found);
}

TEST_CASE("a directory, a device, an empty file and a too-short key are refused as not being a key") {
  test::TempDir dir;
  std::filesystem::create_directory(dir / "keys");
  REQUIRE(::chmod((dir / "keys").c_str(), 0700) == 0);
  CHECK(code_of([&] { (void)read_signing_key(dir / "keys"); }) == Errc::invalid_argument);
  CHECK(contains(message_of([&] { (void)read_signing_key(dir / "keys"); }), "is a directory"));

  CHECK(code_of([&] { (void)read_signing_key("/dev/null"); }) == Errc::invalid_argument);
  CHECK(contains(message_of([&] { (void)read_signing_key("/dev/null"); }), "not a regular file"));

  const auto empty = key_file(dir, "empty", "", 0600);
  CHECK(code_of([&] { (void)read_signing_key(empty); }) == Errc::invalid_argument);
  CHECK(contains(message_of([&] { (void)read_signing_key(empty); }), "holds 0 bytes; a key needs at least 16"));

  const auto blank = key_file(dir, "blank", "  \n\n", 0600);  // whitespace only: empty too
  CHECK(contains(message_of([&] { (void)read_signing_key(blank); }), "holds 0 bytes"));

  const auto short_key = key_file(dir, "short", "0123456789abcde\n", 0600);  // 15 bytes
  CHECK(code_of([&] { (void)read_signing_key(short_key); }) == Errc::invalid_argument);
  CHECK(contains(message_of([&] { (void)read_signing_key(short_key); }), "holds 15 bytes"));
  CHECK(contains(message_of([&] { (void)read_signing_key(short_key); }), "modelreg keygen"));
  CHECK(read_signing_key(key_file(dir, "just", "0123456789abcdef", 0600)).size() == 16);

  // Short and exposed: the length is reported (fixing the mode would not make it a key).
  const auto short_exposed = key_file(dir, "short-exposed", "tooshort", 0644);
  CHECK(contains(message_of([&] { (void)read_signing_key(short_exposed); }), "holds 8 bytes"));

  CHECK(code_of([&] { (void)read_signing_key(dir / "missing"); }) == Errc::not_found);
}

TEST_CASE("a key file far larger than any key is refused without reading it all") {
  test::TempDir dir;
  const auto big = key_file(dir, "big", std::string(1u << 20, 'k'), 0600);
  CHECK(code_of([&] { (void)read_signing_key(big); }) == Errc::invalid_argument);
  CHECK(contains(message_of([&] { (void)read_signing_key(big); }), "more than a key file may"));
  CHECK(read_signing_key(key_file(dir, "large", std::string(64u << 10, 'k'), 0600)).size() == 64u << 10);
}

TEST_CASE("a key file its owner cannot read is an io_error") {
  if (::geteuid() == 0) return;  // root reads anything
  test::TempDir dir;
  const auto file = key_file(dir, "locked", kKey, 0000);
  CHECK(code_of([&] { (void)read_signing_key(file); }) == Errc::io_error);
  CHECK(contains(message_of([&] { (void)read_signing_key(file); }), "Permission denied"));
}
