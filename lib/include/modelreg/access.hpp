// modelreg/access.hpp — who may do what over HTTP: access tokens, their roles, and the rule that
// decides whether a role may act on a model.
//
// A token is a random secret (mrt_ and 64 hex digits, 256 bits from OpenSSL's RAND_bytes) that a
// client of `modelreg ui` sends as `Authorization: Bearer TOKEN`. The registry stores only its
// SHA-256 (migrations/0007_tokens.sql says why that is enough), so the text is shown once, by
// TokenStore::create. A token has a unique name (the actor recorded for what it changes), a role
// and, optionally, a glob limiting it to the models whose names match. Tokens are revoked, never
// deleted; a name is never reused.
//
// Roles nest: reader (read) < writer (+ register, tags) < promoter (+ promote, rollback, aliases,
// archive/unarchive) < admin (+ delete, gc, tokens).
//
// Thread-safety: permits() and the parsers are pure. A TokenStore calls through its Registry,
// which serializes calls; it may be shared as the Registry may. Every failure is a modelreg::Error.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "modelreg/export.hpp"
#include "modelreg/registry.hpp"

namespace modelreg {

enum class Role { reader, writer, promoter, admin };

// What a call does, for permits(). Each needs the role written beside it.
enum class Action {
  read,      // reader: models, versions, lineage, history, compare, bytes, read-only SQL
  write,     // writer: register a version, set and remove tags
  promote,   // promoter: promote, rollback, set and remove aliases, archive, unarchive
  delete_,   // admin: delete a version, gc
  tokens,    // admin: create, list and revoke tokens
};

MODELREG_API std::string_view to_string(Role role) noexcept;
MODELREG_API std::string_view to_string(Action action) noexcept;
// "reader", "writer", "promoter", "admin"; Error(invalid_argument) naming the four otherwise.
MODELREG_API Role parse_role(std::string_view text);
// The least role that may do `action`.
MODELREG_API Role required_role(Action action) noexcept;

// Whether a token of `role`, limited to models matching `model_glob` (fnmatch(3), no flags; none:
// every model), may do `action` on `model`. `model` is empty for a call on no one model (SQL, gc,
// tokens): a limited token may not make it, since it could reach models outside its glob. (A list
// of models is filtered to the token's models by the caller instead.)
MODELREG_API bool permits(Role role, const std::optional<std::string>& model_glob, Action action,
                          std::string_view model) noexcept;
// Whether `model` matches `glob` (fnmatch(3), no flags).
MODELREG_API bool glob_matches(std::string_view glob, std::string_view model) noexcept;

// A token as listed: never its text nor its hash.
struct MODELREG_API TokenInfo {
  std::string name;
  Role role = Role::reader;
  std::optional<std::string> model_glob;
  std::string created_at;
  std::string created_by;
  std::optional<std::string> revoked_at;
  std::optional<std::string> revoked_by;

  bool revoked() const noexcept { return revoked_at.has_value(); }
};

struct MODELREG_API NewToken {
  // [A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}; unique among all tokens ever created (revoked ones too).
  std::string name{};
  Role role = Role::reader;
  // At most 256 printable ASCII characters; none: every model.
  std::optional<std::string> model_glob{};
  std::optional<std::string> actor{};  // default Options::default_actor
};

// The tokens of a registry, through that registry's connection (which must outlive this).
class MODELREG_API TokenStore {
 public:
  explicit TokenStore(Registry& registry) noexcept : registry_(&registry) {}

  // Creates a token and returns its text, which is not stored and cannot be shown again.
  // Error(invalid_argument) for a bad name or glob, Error(already_exists) for a name taken (now
  // or ever), Error(conflict) on a read-only registry; nothing is written then.
  std::string create(const NewToken& token);
  // Every token, by name; empty on a registry older than schema 7.
  std::vector<TokenInfo> list() const;
  // Revokes the token `name`: it authenticates no more. Error(not_found) for an unknown name,
  // Error(conflict) when it is already revoked.
  TokenInfo revoke(std::string_view name, const std::optional<std::string>& actor = std::nullopt);
  // The live (unrevoked) token whose text is `token`, else nullopt (malformed, unknown or
  // revoked alike, so that a caller cannot tell them apart). The text is hashed, the row found
  // by its hash, and the digests compared with CRYPTO_memcmp.
  std::optional<TokenInfo> authenticate(std::string_view token) const;

 private:
  Registry* registry_;
};

}  // namespace modelreg
