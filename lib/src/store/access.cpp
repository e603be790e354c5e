// Access tokens (access.hpp): the tokens table of migrations/0007_tokens.sql, written through the
// registry's write skeleton, and the pure rule of roles and model globs.
#include "modelreg/access.hpp"

#include <fnmatch.h>

#include <algorithm>
#include <cctype>
#include <mutex>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <fmt/format.h>

#include "store/registry_impl.hpp"
#include "store/sha256.hpp"

namespace modelreg {

namespace {

constexpr std::string_view kTokenPrefix = "mrt_";
constexpr std::size_t kTokenBytes = 32;

std::string sha256_hex(std::string_view text) {
  detail::Sha256 h;
  h.update(text.data(), text.size());
  return h.hex_digest();
}

bool has_token_table(SQLite::Database& db) {
  SQLite::Statement q(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tokens'");
  return q.executeStep();
}

void require_token_table(SQLite::Database& db, const std::filesystem::path& path) {
  if (!has_token_table(db)) {
    throw Error(Errc::incompatible, fmt::format("'{}' has no tokens table (schema older than 7); run `modelreg migrate` "
                                                "to upgrade it",
                                                path.string()));
  }
}

void check_token_name(std::string_view name) {
  const bool ok = !name.empty() && name.size() <= 64 && std::isalnum(static_cast<unsigned char>(name[0])) &&
                  std::all_of(name.begin(), name.end(), [](char c) {
                    return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("_.@+-").find(c) != std::string_view::npos;
                  });
  if (!ok) {
    throw Error(Errc::invalid_argument,
                fmt::format("token name '{}' is invalid: use 1 to 64 of A-Z a-z 0-9 _ . @ + -, starting with a letter or "
                            "digit (e.g. ci-deploy)",
                            name.substr(0, 80)));
  }
}

void check_glob(std::string_view glob) {
  const bool ok = !glob.empty() && glob.size() <= 256 &&
                  std::all_of(glob.begin(), glob.end(), [](char c) { return c >= ' ' && c <= '~'; });
  if (!ok) {
    throw Error(Errc::invalid_argument,
                "a model glob is 1 to 256 printable ASCII characters, e.g. 'fraud*' or 'team-?-*'");
  }
}

// The columns of TokenInfo, in this order, for the SELECTs below.
constexpr const char* kInfoColumns = "name, role, model_glob, created_at, created_by, revoked_at, revoked_by";

TokenInfo info_of(SQLite::Statement& q) {
  TokenInfo t;
  t.name = q.getColumn(0).getString();
  t.role = parse_role(q.getColumn(1).getString());
  if (!q.getColumn(2).isNull()) t.model_glob = q.getColumn(2).getString();
  t.created_at = q.getColumn(3).getString();
  t.created_by = q.getColumn(4).getString();
  if (!q.getColumn(5).isNull()) t.revoked_at = q.getColumn(5).getString();
  if (!q.getColumn(6).isNull()) t.revoked_by = q.getColumn(6).getString();
  return t;
}

std::optional<TokenInfo> token_by_name(SQLite::Database& db, std::string_view name) {
  SQLite::Statement q(db, fmt::format("SELECT {} FROM tokens WHERE name = ?", kInfoColumns));
  q.bind(1, std::string(name));
  if (!q.executeStep()) return std::nullopt;
  return info_of(q);
}

}  // namespace

std::string_view to_string(Role role) noexcept {
  switch (role) {
    case Role::reader: return "reader";
    case Role::writer: return "writer";
    case Role::promoter: return "promoter";
    case Role::admin: return "admin";
  }
  return "reader";
}

std::string_view to_string(Action action) noexcept {
  switch (action) {
    case Action::read: return "read";
    case Action::write: return "write";
    case Action::promote: return "promote";
    case Action::delete_: return "delete";
    case Action::tokens: return "tokens";
  }
  return "read";
}

Role parse_role(std::string_view text) {
  for (Role r : {Role::reader, Role::writer, Role::promoter, Role::admin}) {
    if (text == to_string(r)) return r;
  }
  throw Error(Errc::invalid_argument,
              fmt::format("unknown role '{}'; a role is reader, writer, promoter or admin", text.substr(0, 80)));
}

Role required_role(Action action) noexcept {
  switch (action) {
    case Action::read: return Role::reader;
    case Action::write: return Role::writer;
    case Action::promote: return Role::promoter;
    case Action::delete_:
    case Action::tokens: return Role::admin;
  }
  return Role::admin;
}

bool glob_matches(std::string_view glob, std::string_view model) noexcept {
  try {
    return ::fnmatch(std::string(glob).c_str(), std::string(model).c_str(), 0) == 0;
  } catch (...) {
    return false;
  }
}

bool permits(Role role, const std::optional<std::string>& model_glob, Action action, std::string_view model) noexcept {
  if (static_cast<int>(role) < static_cast<int>(required_role(action))) return false;
  if (!model_glob) return true;
  if (model.empty()) return false;
  return glob_matches(*model_glob, model);
}

std::string TokenStore::create(const NewToken& token) {
  check_token_name(token.name);
  if (token.model_glob) check_glob(*token.model_glob);
  auto& impl = *registry_->impl_;
  unsigned char random[kTokenBytes];
  if (RAND_bytes(random, sizeof random) != 1) throw Error(Errc::io_error, "OpenSSL could not produce random bytes");
  std::string text(kTokenPrefix);
  for (unsigned char b : random) text += fmt::format("{:02x}", b);
  OPENSSL_cleanse(random, sizeof random);
  impl.write(fmt::format("creating token '{}'", token.name), token.actor, [&](const std::string& who) {
    require_token_table(*impl.db, impl.path);
    if (token_by_name(*impl.db, token.name)) {
      throw Error(Errc::already_exists, fmt::format("a token named '{}' exists (or existed: names are never reused); "
                                                    "choose another name",
                                                    token.name));
    }
    SQLite::Statement q(*impl.db,
                        "INSERT INTO tokens(name, hash, role, model_glob, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)");
    q.bind(1, token.name);
    q.bind(2, sha256_hex(text));
    q.bind(3, std::string(to_string(token.role)));
    if (token.model_glob) {
      q.bind(4, *token.model_glob);
    } else {
      q.bind(4);
    }
    q.bind(5, impl.now());
    q.bind(6, who);
    q.exec();
  });
  return text;
}

std::vector<TokenInfo> TokenStore::list() const {
  auto& impl = *registry_->impl_;
  return guarded("listing tokens", [&] {
    std::lock_guard lock(impl.mutex);
    std::vector<TokenInfo> out;
    if (!has_token_table(*impl.db)) return out;
    SQLite::Statement q(*impl.db, fmt::format("SELECT {} FROM tokens ORDER BY name", kInfoColumns));
    while (q.executeStep()) out.push_back(info_of(q));
    return out;
  });
}

TokenInfo TokenStore::revoke(std::string_view name, const std::optional<std::string>& actor) {
  check_token_name(name);
  auto& impl = *registry_->impl_;
  return impl.write(fmt::format("revoking token '{}'", name), actor, [&](const std::string& who) {
    require_token_table(*impl.db, impl.path);
    const auto found = token_by_name(*impl.db, name);
    if (!found) throw Error(Errc::not_found, fmt::format("no token named '{}'; `modelreg token list` shows them", name));
    if (found->revoked()) {
      throw Error(Errc::conflict, fmt::format("token '{}' was already revoked at {} by {}", name, *found->revoked_at,
                                              found->revoked_by.value_or("")));
    }
    SQLite::Statement q(*impl.db, "UPDATE tokens SET revoked_at = ?, revoked_by = ? WHERE name = ?");
    q.bind(1, impl.now());
    q.bind(2, who);
    q.bind(3, std::string(name));
    q.exec();
    return *token_by_name(*impl.db, name);
  });
}

std::optional<TokenInfo> TokenStore::authenticate(std::string_view token) const {
  // Bounded before hashing: a request's header is at most 16 KiB anyway.
  if (token.size() != kTokenPrefix.size() + 2 * kTokenBytes) return std::nullopt;
  const std::string digest = sha256_hex(token);
  auto& impl = *registry_->impl_;
  return guarded("checking a token", [&]() -> std::optional<TokenInfo> {
    std::lock_guard lock(impl.mutex);
    if (!has_token_table(*impl.db)) return std::nullopt;
    // The row is found by the token's hash, not its text. The B-tree search's timing depends only
    // on how the guess's SHA-256 compares with stored hashes, which an attacker cannot steer
    // towards a real token's hash (that would need SHA-256 preimages), and learning a hash is no
    // use anyway: it is not a token. The final comparison is constant-time all the same.
    SQLite::Statement q(*impl.db, fmt::format("SELECT {}, hash FROM tokens WHERE hash = ?", kInfoColumns));
    q.bind(1, digest);
    if (!q.executeStep()) return std::nullopt;
    const std::string stored = q.getColumn(7).getString();
    if (stored.size() != digest.size() || CRYPTO_memcmp(stored.data(), digest.data(), digest.size()) != 0) {
      return std::nullopt;
    }
    TokenInfo t = info_of(q);
    if (t.revoked()) return std::nullopt;
    return t;
  });
}

}  // namespace modelreg
