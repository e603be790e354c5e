// Signed versions: keys, the signed message, HMAC-SHA256 (OpenSSL), and the registry's checks.
//
// The message is built from the database rows alone (the same function when signing and when
// checking), as a sequence of length-prefixed fields, so no two different versions can produce
// the same bytes. docs/format.md, "Signatures", describes it field by field.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sqlite3.h>

#include <fmt/format.h>

#include "core/text_format.hpp"
#include "store/registry_impl.hpp"
#include "store/sha256.hpp"

namespace modelreg {
namespace {

constexpr std::size_t kMinKeyBytes = 16;
constexpr std::uint64_t kMaxKeyFileBytes = 64u << 10;
constexpr const char* kAlgorithm = "hmac-sha256";

// Length-prefixed fields: an 8-byte little-endian length, then the bytes.
class Message {
 public:
  void field(std::string_view bytes) {
    std::uint64_t n = bytes.size();
    for (int i = 0; i < 8; ++i) out_.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
    out_.append(bytes);
  }
  void field(std::int64_t value) { field(std::string_view(std::to_string(value))); }
  // A column: a type letter (n null, i integer, f float, t text, b blob), then its bytes
  // (an integer in decimal, a float as its 8 IEEE-754 bytes little-endian).
  void field(const SQLite::Column& c) {
    // Built by appending (GCC 12 at -O3 misreads "x" + std::string as an overlapping copy).
    std::string typed;
    switch (c.getType()) {
      case SQLITE_NULL: typed.push_back('n'); break;
      case SQLITE_INTEGER:
        typed.push_back('i');
        typed.append(std::to_string(c.getInt64()));
        break;
      case SQLITE_FLOAT: {
        const double d = c.getDouble();
        typed.push_back('f');
        typed.append(detail::encode_doubles(std::span<const double>(&d, 1)));
        break;
      }
      case SQLITE_BLOB:
        typed.push_back('b');
        typed.append(static_cast<const char*>(c.getBlob()), static_cast<std::size_t>(c.getBytes()));
        break;
      default:
        typed.push_back('t');
        typed.append(c.getString());
        break;
    }
    field(std::string_view(typed));
  }
  // A section: its name, then every row of `q` (count first, so rows cannot shift between sections).
  void rows(std::string_view name, SQLite::Statement& q) {
    std::int64_t count = 0;
    Message body;
    while (q.executeStep()) {
      ++count;
      for (int i = 0; i < q.getColumnCount(); ++i) body.field(q.getColumn(i));
    }
    field(name);
    field(count);
    out_ += body.out_;
  }
  const std::string& bytes() const { return out_; }

 private:
  std::string out_;
};

std::string signing_message(SQLite::Database& db, std::int64_t vid) {
  Message m;
  m.field(std::string_view("modelreg-signature-v1"));
  auto section = [&](std::string_view name, const char* sql) {
    SQLite::Statement q(db, sql);
    q.bind(1, vid);
    m.rows(name, q);
  };
  section("version",
          "SELECT m.name, v.number, v.label, v.format, v.type_name, v.feature_count, v.notes, v.created_at, "
          "v.created_by, b.sha256, b.raw_size FROM versions v JOIN models m ON m.id = v.model_id "
          "JOIN blobs b ON b.id = v.blob_id WHERE v.id = ?");
  section("metrics", "SELECT name, value FROM metrics WHERE version_id = ? ORDER BY name");
  section("params", "SELECT name, value FROM params WHERE version_id = ? ORDER BY name");
  section("features", "SELECT position, name, dtype FROM features WHERE version_id = ? ORDER BY position");
  section("lineage",
          "SELECT pm.name, p.number, l.relation FROM lineage l JOIN versions p ON p.id = l.parent_id "
          "JOIN models pm ON pm.id = p.model_id WHERE l.child_id = ? ORDER BY 1, 2, 3");
  section("datasets", "SELECT uri, sha256, role FROM datasets WHERE version_id = ? ORDER BY uri, role");
  section("probe", "SELECT n_rows, n_features, inputs, outputs FROM probes WHERE version_id = ?");
  return m.bytes();
}

std::string hmac_sha256_hex(std::string_view key, std::string_view message) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(message.data()),
           message.size(), mac, &size) == nullptr) {
    throw Error(Errc::io_error, "HMAC-SHA256 failed inside OpenSSL");
  }
  return detail::to_hex(mac, size);
}

bool equal_in_constant_time(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

std::string signing_key_id(std::string_view key) {
  detail::Sha256 h;
  const std::string_view prefix = "modelreg-key-id:";
  h.update(prefix.data(), prefix.size());
  h.update(key.data(), key.size());
  return h.hex_digest().substr(0, 16);
}

std::string read_signing_key(const std::filesystem::path& file) {
  const std::string name = file.string();
  // One open, then fstat on that descriptor: the checks and the read see the same file (a symlink
  // is followed, as ssh does, and the target is checked). O_NONBLOCK: opening a FIFO must not wait.
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    const int error = errno;
    if (error == ENOENT) {
      throw Error(Errc::not_found, fmt::format("signing key file '{}' does not exist; create one with `modelreg "
                                               "keygen {}` (and keep it secret)",
                                               name, name));
    }
    throw Error(Errc::io_error, fmt::format("cannot open signing key file '{}': {}", name, std::strerror(error)));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    throw Error(Errc::io_error, fmt::format("cannot stat signing key file '{}': {}", name, std::strerror(errno)));
  }
  if (S_ISDIR(st.st_mode)) {
    throw Error(Errc::invalid_argument, fmt::format("signing key file '{}' is a directory; give the key file", name));
  }
  if (!S_ISREG(st.st_mode)) {
    throw Error(Errc::invalid_argument,
                fmt::format("signing key file '{}' is not a regular file (a device, FIFO or socket); give the key "
                            "file",
                            name));
  }
  // A key is a few dozen bytes; reading a huge file as one would be work without bound.
  if (static_cast<std::uint64_t>(st.st_size) > kMaxKeyFileBytes) {
    throw Error(Errc::invalid_argument,
                fmt::format("signing key file '{}' holds {} bytes, more than a key file may ({}); is it the right "
                            "file? (create a key with `modelreg keygen FILE`)",
                            name, st.st_size, kMaxKeyFileBytes));
  }
  std::string key(static_cast<std::size_t>(st.st_size), '\0');
  std::size_t got = 0;
  while (got < key.size()) {
    const ssize_t n = ::read(fd, key.data() + got, key.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      throw Error(Errc::io_error, fmt::format("cannot read signing key file '{}': {}", name, std::strerror(errno)));
    }
    if (n == 0) break;  // shrank while being read
    got += static_cast<std::size_t>(n);
  }
  key.resize(got);
  while (!key.empty() && (key.back() == '\n' || key.back() == '\r' || key.back() == ' ' || key.back() == '\t')) {
    key.pop_back();
  }
  // A file too short to be a key is reported as that first: fixing its mode would not help.
  if (key.size() < kMinKeyBytes) {
    throw Error(Errc::invalid_argument,
                fmt::format("signing key file '{}' holds {} bytes; a key needs at least {} (create one with "
                            "`modelreg keygen FILE`)",
                            name, key.size(), kMinKeyBytes));
  }
  // As ssh with private keys: a key others can read (or replace) is no longer a secret of its owner.
  if ((st.st_mode & 077) != 0) {
    throw Error(Errc::invalid_argument,
                fmt::format("signing key file '{}' is accessible by {} (mode {:04o}); a key must be readable only "
                            "by its owner: chmod 600 {}",
                            name, (st.st_mode & 007) != 0 ? "others" : "its group", st.st_mode & 07777, name));
  }
  return key;
}

std::string create_signing_key(const std::filesystem::path& file) {
  unsigned char random[32];
  if (RAND_bytes(random, sizeof random) != 1) throw Error(Errc::io_error, "OpenSSL could not produce random bytes");
  const std::string key = detail::to_hex(random, sizeof random);
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) {
      throw Error(Errc::already_exists, fmt::format("'{}' already exists; a key file is never overwritten (choose "
                                                    "another path, or delete the old key if nothing is signed with it)",
                                                    file.string()));
    }
    throw Error(Errc::io_error, fmt::format("cannot create '{}': {}", file.string(), std::strerror(errno)));
  }
  const std::string text = key + "\n";
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  if (!ok) {
    std::error_code ec;
    std::filesystem::remove(file, ec);
    throw Error(Errc::io_error, fmt::format("cannot write '{}': {}", file.string(), std::strerror(saved)));
  }
  return key;
}

// ---- Registry::Impl -----------------------------------------------------------------------------

bool Registry::Impl::has_signature_table() const {
  // Looked up once per connection (it is read for every version listed). A connection that
  // opened a schema-2 database read-only sees no signatures until it is reopened after
  // `modelreg migrate`.
  if (!signature_table) {
    SQLite::Statement q(*db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'signatures'");
    signature_table = q.executeStep();
  }
  return *signature_table;
}

std::optional<Signature> Registry::Impl::signature_of(std::int64_t version_id) const {
  if (!has_signature_table()) return std::nullopt;
  Cached q(*this, "SELECT algorithm, key_id, signed_at, signed_by FROM signatures WHERE version_id = ?");
  q.bind(1, version_id);
  if (!q.executeStep()) return std::nullopt;
  return Signature{q.getColumn(0).getString(), q.getColumn(1).getString(), q.getColumn(2).getString(),
                   q.getColumn(3).getString()};
}

void Registry::Impl::check_signature(std::int64_t version_id) const {
  if (!options.signing_key) return;
  const std::string name = version_id_of(version_id).to_string();
  std::optional<std::string> mac, signer_key;
  if (has_signature_table()) {
    SQLite::Statement q(*db, "SELECT key_id, mac FROM signatures WHERE version_id = ?");
    q.bind(1, version_id);
    if (q.executeStep()) {
      signer_key = q.getColumn(0).getString();
      mac = q.getColumn(1).getString();
    }
  }
  if (!mac) {
    throw Error(Errc::validation_failed,
                fmt::format("{} is not signed, and this registry only accepts versions signed with key {}; if you "
                            "trust it, sign it with `modelreg sign {}` (with the key), or use a signed version",
                            name, key_id, name));
  }
  if (*signer_key != key_id) {
    throw Error(Errc::validation_failed,
                fmt::format("{} is signed with key {}, not with the configured key {}; use the key it was signed "
                            "with, or a version signed with yours",
                            name, *signer_key, key_id));
  }
  const std::string expected = hmac_sha256_hex(*options.signing_key, signing_message(*db, version_id));
  if (!equal_in_constant_time(expected, *mac)) {
    throw Error(Errc::validation_failed,
                fmt::format("{}'s signature does not verify: its metadata or stored checksum changed after it was "
                            "signed (tampering, or a damaged database); do not use it — restore it from a backup or "
                            "register the model again",
                            name));
  }
}

void Registry::Impl::sign_version(std::int64_t version_id, const std::string& at, const std::string& who) {
  if (!has_signature_table()) {
    throw Error(Errc::incompatible, fmt::format("'{}' has no signatures table (schema {} < 3); run `modelreg "
                                                "migrate` first",
                                                path.string(), detail::user_version(*db)));
  }
  SQLite::Statement q(*db,
                      "INSERT INTO signatures(version_id, algorithm, key_id, mac, signed_at, signed_by) "
                      "VALUES (?, ?, ?, ?, ?, ?)");
  q.bind(1, version_id);
  q.bind(2, kAlgorithm);
  q.bind(3, key_id);
  q.bind(4, hmac_sha256_hex(*options.signing_key, signing_message(*db, version_id)));
  q.bind(5, at);
  q.bind(6, who);
  q.exec();
}

// ---- Registry -----------------------------------------------------------------------------------

ModelVersion Registry::sign(const ModelRef& ref, const Change& change) {
  if (!impl_->options.signing_key) {
    throw Error(Errc::invalid_argument, fmt::format("cannot sign {} without a signing key; pass --signing-key FILE "
                                                    "(or set Options::signing_key)",
                                                    ref.to_string()));
  }
  return impl_->write(fmt::format("signing {}", ref.to_string()), change.actor, [&](const std::string& who) {
    const VersionRow row = impl_->require_row(ref);
    if (const auto existing = impl_->signature_of(row.id)) {
      const std::string name = impl_->version_id_of(row.id).to_string();
      if (existing->key_id != impl_->key_id) {
        throw Error(Errc::conflict, fmt::format("{} is already signed with key {}; a signature never changes", name,
                                                existing->key_id));
      }
      impl_->check_signature(row.id);  // already signed with this key: it must still verify
      return impl_->load_version(row.id);
    }
    impl_->sign_version(row.id, impl_->now(), who);
    return impl_->load_version(row.id);
  });
}

}  // namespace modelreg
