// Webhooks: the webhooks, webhook_kinds and webhook_deliveries tables (migrations/0008_webhooks.sql),
// the payload of an event and its HMAC-SHA256 signature (OpenSSL). The delivering itself (HTTP,
// retries, threads) is the command's: registry-cli/webhook_dispatcher.cpp.
#include "modelreg/webhooks.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <mutex>
#include <utility>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sqlite3.h>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/text_format.hpp"
#include "modelreg/time_format.hpp"
#include "store/database.hpp"
#include "store/registry_impl.hpp"

namespace modelreg {
namespace {

constexpr std::size_t kMaxUrlBytes = 2048;

// Audit-log kinds and the webhook kind that covers each (the table webhook_actions says the same
// to SQL; schema_test checks that both agree).
constexpr std::array<std::pair<EventKind, std::string_view>, 8> kActions{{
    {EventKind::register_version, "register"},
    {EventKind::promote, "promote"},
    {EventKind::rollback, "rollback"},
    {EventKind::alias_set, "alias"},
    {EventKind::alias_remove, "alias"},
    {EventKind::archive, "archive"},
    {EventKind::unarchive, "archive"},
    {EventKind::delete_version, "delete"},
}};

std::string joined_kinds() {
  std::string out;
  for (const auto& k : webhook_kinds()) out += (out.empty() ? "" : ", ") + k;
  return out;
}

bool is_host_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '-' || c == '_';
}

// http(s)://HOST[:PORT][/...]: the rules of NewWebhook::url, each refusal naming the problem.
void check_url(std::string_view url) {
  auto refuse = [&](std::string_view why) {
    throw Error(Errc::invalid_argument,
                fmt::format("webhook URL '{}' {}; give http://HOST[:PORT]/PATH or https://…", url, why));
  };
  if (url.empty()) throw Error(Errc::invalid_argument, "the webhook URL is empty; give http://HOST[:PORT]/PATH or https://…");
  if (url.size() > kMaxUrlBytes) {
    throw Error(Errc::invalid_argument, fmt::format("the webhook URL has {} bytes, more than {}", url.size(), kMaxUrlBytes));
  }
  for (char c : url) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte >= 0x7f) {
      throw Error(Errc::invalid_argument,
                  "the webhook URL holds a space, a control character or a non-ASCII byte; percent-encode it");
    }
  }
  std::string_view rest;
  if (url.starts_with("http://")) {
    rest = url.substr(7);
  } else if (url.starts_with("https://")) {
    rest = url.substr(8);
  } else {
    const auto colon = url.find("://");
    if (colon == std::string_view::npos) refuse("has no scheme");
    refuse(fmt::format("has scheme '{}': only http and https are delivered to", url.substr(0, colon)));
  }
  const std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  if (authority.find('@') != std::string_view::npos) {
    refuse("holds credentials (USER:PASSWORD@); a URL is shown to every reader of the registry: authenticate "
           "the receiver with the signature (--secret-file) instead");
  }
  if (rest.find('#') != std::string_view::npos) refuse("has a fragment (#...), which is never sent");
  std::string_view host = authority;
  std::string_view port;
  if (host.starts_with('[')) {
    const auto close = host.find(']');
    if (close == std::string_view::npos) refuse("has an IPv6 address without its closing ]");
    const std::string_view inside = host.substr(1, close - 1);
    if (inside.empty() || !std::all_of(inside.begin(), inside.end(), [](char c) {
          return std::isxdigit(static_cast<unsigned char>(c)) != 0 || c == ':' || c == '.';
        })) {
      refuse("has a malformed IPv6 address");
    }
    const std::string_view after = host.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') refuse("has something after its IPv6 address that is not :PORT");
      port = after.substr(1);
      if (port.empty()) refuse("has an empty port after ':'");
    }
  } else {
    if (const auto colon = host.find(':'); colon != std::string_view::npos) {
      port = host.substr(colon + 1);
      host = host.substr(0, colon);
      if (port.empty()) refuse("has an empty port after ':'");
    }
    if (host.empty()) refuse("has no host");
    if (!std::all_of(host.begin(), host.end(), is_host_char)) refuse("has a host with characters a host name cannot have");
  }
  if (!port.empty()) {
    int value = 0;
    for (char c : port) {
      if (std::isdigit(static_cast<unsigned char>(c)) == 0 || value > 65535) refuse("has a port that is not a number from 1 to 65535");
      value = value * 10 + (c - '0');
    }
    if (value < 1 || value > 65535) refuse("has a port that is not a number from 1 to 65535");
  }
}

// The kinds in webhook_kinds() order; refuses unknown, repeated or no kinds.
std::vector<std::string> checked_kinds(const std::vector<std::string>& kinds) {
  if (kinds.empty()) {
    throw Error(Errc::invalid_argument,
                fmt::format("a webhook needs at least one kind of event: give some of {}", joined_kinds()));
  }
  std::vector<std::string> out;
  for (const auto& k : kinds) {
    const auto& known = webhook_kinds();
    if (std::find(known.begin(), known.end(), k) == known.end()) {
      std::string hint;
      if (k == "alias_set" || k == "alias_remove") hint = " (alias covers alias_set and alias_remove)";
      if (k == "unarchive") hint = " (archive covers archive and unarchive)";
      if (k == "tag" || k == "untag") hint = " (tag changes are not delivered)";
      throw Error(Errc::invalid_argument,
                  fmt::format("unknown webhook event kind '{}'{}; the kinds are {}", k, hint, joined_kinds()));
    }
    if (std::find(out.begin(), out.end(), k) != out.end()) {
      throw Error(Errc::invalid_argument, fmt::format("webhook event kind '{}' is given twice", k));
    }
    out.push_back(k);
  }
  std::sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) {
    const auto& known = webhook_kinds();
    return std::find(known.begin(), known.end(), a) < std::find(known.begin(), known.end(), b);
  });
  return out;
}

std::optional<DeliveryOutcome> parse_outcome(std::string_view s) {
  if (s == "delivered") return DeliveryOutcome::delivered;
  if (s == "retry") return DeliveryOutcome::retry;
  if (s == "failed") return DeliveryOutcome::failed;
  return std::nullopt;
}

}  // namespace

const std::vector<std::string>& webhook_kinds() {
  static const std::vector<std::string> kinds{"register", "promote", "rollback", "alias", "archive", "delete"};
  return kinds;
}

std::optional<std::string> webhook_kind_of(EventKind kind) {
  for (const auto& [k, name] : kActions) {
    if (k == kind) return std::string(name);
  }
  return std::nullopt;
}

std::string_view to_string(DeliveryOutcome outcome) noexcept {
  switch (outcome) {
    case DeliveryOutcome::delivered: return "delivered";
    case DeliveryOutcome::retry: return "retry";
    case DeliveryOutcome::failed: return "failed";
  }
  return "retry";
}

std::string webhook_payload(const Event& e) {
  auto number = [](const std::optional<std::int64_t>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); };
  // An ordered_json keeps the documented field order, so the bytes are the same on every attempt
  // and in every build.
  nlohmann::ordered_json j;
  j["id"] = e.id;
  const auto kind = webhook_kind_of(e.kind);
  j["kind"] = kind ? nlohmann::json(*kind) : nlohmann::json(nullptr);
  j["action"] = std::string(to_string(e.kind));
  j["model"] = e.model;
  j["version"] = number(e.version);
  j["from_version"] = number(e.from_version);
  j["to_version"] = number(e.to_version);
  j["alias"] = e.alias ? nlohmann::json(*e.alias) : nlohmann::json(nullptr);
  j["actor"] = e.actor;
  j["reason"] = e.reason;
  j["at"] = e.at;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string webhook_signature(std::string_view secret, std::string_view body) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
           reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &size) == nullptr) {
    throw Error(Errc::io_error, "OpenSSL could not compute an HMAC-SHA256");
  }
  return detail::to_hex(mac, size);
}

std::string read_webhook_secret(const std::filesystem::path& file) {
  try {
    return read_signing_key(file);
  } catch (const Error& e) {
    // The same rules as a signing key file; the message names what the file is for here.
    std::string message = e.what();
    const std::string_view from = "signing key file";
    for (auto at = message.find(from); at != std::string::npos; at = message.find(from, at)) {
      message.replace(at, from.size(), "webhook secret file");
    }
    throw Error(e.code(), message);
  }
}

// ---- WebhookStore -------------------------------------------------------------------------------

struct __attribute__((visibility("hidden"))) WebhookStore::Impl {
  std::filesystem::path path;
  Options options;
  std::string write_refusal;  // empty when writes are allowed
  Errc write_refusal_code = Errc::conflict;
  bool has_tables = false;    // schema 8 or later
  mutable std::mutex mutex;   // protects db
  std::unique_ptr<SQLite::Database> db;  // protected by mutex

  std::string now() const {
    return format_utc(options.clock ? options.clock() : std::chrono::system_clock::now());
  }
  std::string actor(const std::optional<std::string>& given) const {
    std::string a = given.value_or(options.default_actor);
    check_text("actor", a, 256, false);
    return a;
  }
  void ensure_writable() const {
    if (!write_refusal.empty()) throw Error(write_refusal_code, write_refusal);
    if (!has_tables) {
      throw Error(Errc::incompatible,
                  fmt::format("'{}' has no webhook tables yet; run `modelreg migrate`", path.string()));
    }
  }

  // One write: under the lock, in one IMMEDIATE transaction, SQLite errors translated.
  template <class Body>
  auto write(std::string_view context, Body&& body) {
    ensure_writable();
    return guarded(context, [&] {
      std::lock_guard lock(mutex);
      SQLite::Transaction txn(*db, SQLite::TransactionBehavior::IMMEDIATE);
      auto result = body();
      txn.commit();
      return result;
    });
  }

  std::optional<Webhook> find(std::int64_t id) const {
    SQLite::Statement q(*db,
                        "SELECT id, url, secret_file, created_at, created_by, removed_at, removed_by, delivered_through "
                        "FROM webhooks WHERE id = ?");
    q.bind(1, id);
    if (!q.executeStep()) return std::nullopt;
    return read_webhook(q);
  }

  Webhook require(std::int64_t id) const {
    auto w = has_tables ? find(id) : std::nullopt;
    if (!w) {
      throw Error(Errc::not_found, fmt::format("there is no webhook {} (see `modelreg webhook list`)", id));
    }
    return *w;
  }

  Webhook read_webhook(SQLite::Statement& q) const {
    Webhook w;
    w.id = q.getColumn(0).getInt64();
    w.url = q.getColumn(1).getString();
    if (!q.getColumn(2).isNull()) w.secret_file = q.getColumn(2).getString();
    w.created_at = q.getColumn(3).getString();
    w.created_by = q.getColumn(4).getString();
    if (!q.getColumn(5).isNull()) w.removed_at = q.getColumn(5).getString();
    if (!q.getColumn(6).isNull()) w.removed_by = q.getColumn(6).getString();
    w.delivered_through = q.getColumn(7).getInt64();
    SQLite::Statement k(*db, "SELECT kind FROM webhook_kinds WHERE webhook_id = ?");
    k.bind(1, w.id);
    std::vector<std::string> kinds;
    while (k.executeStep()) kinds.push_back(k.getColumn(0).getString());
    w.kinds = checked_kinds(kinds);
    return w;
  }

  std::int64_t newest_event() const {
    return db->execAndGet("SELECT coalesce(max(id), 0) FROM events").getInt64();
  }

  std::vector<Event> pending(const Webhook& w, std::size_t limit) const {
    std::vector<Event> out;
    if (w.removed_at || limit == 0) return out;
    // By events' primary key from the cursor on; each event joined to the kinds the webhook takes.
    SQLite::Statement q(*db,
                        "SELECT e.id, m.name, e.kind, e.version, e.from_version, e.to_version, e.actor, e.reason, "
                        "e.at, e.details, e.alias "
                        "FROM events e "
                        "JOIN webhook_actions a ON a.action = e.kind "
                        "JOIN webhook_kinds k ON k.webhook_id = ? AND k.kind = a.kind "
                        "JOIN models m ON m.id = e.model_id "
                        "WHERE e.id > ? ORDER BY e.id LIMIT ?");
    q.bind(1, w.id);
    q.bind(2, w.delivered_through);
    q.bind(3, static_cast<std::int64_t>(limit));
    while (q.executeStep()) {
      Event e;
      e.id = q.getColumn(0).getInt64();
      e.model = q.getColumn(1).getString();
      const std::string kind = q.getColumn(2).getString();
      const auto parsed = parse_event_kind(kind);
      if (!parsed) {
        throw Error(Errc::corruption, fmt::format("event {} has kind '{}', which this modelreg does not know", e.id, kind));
      }
      e.kind = *parsed;
      e.version = detail::optional_int(q.getColumn(3));
      e.from_version = detail::optional_int(q.getColumn(4));
      e.to_version = detail::optional_int(q.getColumn(5));
      e.actor = q.getColumn(6).getString();
      e.reason = q.getColumn(7).getString();
      e.at = q.getColumn(8).getString();
      e.details = q.getColumn(9).getString();
      if (!q.getColumn(10).isNull()) e.alias = q.getColumn(10).getString();
      out.push_back(std::move(e));
    }
    return out;
  }

  int attempts(std::int64_t webhook_id, std::int64_t event_id) const {
    SQLite::Statement q(*db, "SELECT count(*) FROM webhook_deliveries WHERE webhook_id = ? AND event_id = ?");
    q.bind(1, webhook_id);
    q.bind(2, event_id);
    q.executeStep();
    return q.getColumn(0).getInt();
  }

  std::vector<Delivery> deliveries(std::optional<std::int64_t> webhook_id, std::size_t limit) const {
    std::vector<Delivery> out;
    if (!has_tables || limit == 0) return out;
    const char* sql = webhook_id
        ? "SELECT d.id, d.webhook_id, d.event_id, m.name, a.kind, d.attempt, d.at, d.http_status, d.error, "
          "d.duration_ms, d.outcome FROM webhook_deliveries d JOIN events e ON e.id = d.event_id "
          "JOIN models m ON m.id = e.model_id JOIN webhook_actions a ON a.action = e.kind "
          "WHERE d.webhook_id = ? ORDER BY d.id DESC LIMIT ?"
        : "SELECT d.id, d.webhook_id, d.event_id, m.name, a.kind, d.attempt, d.at, d.http_status, d.error, "
          "d.duration_ms, d.outcome FROM webhook_deliveries d JOIN events e ON e.id = d.event_id "
          "JOIN models m ON m.id = e.model_id JOIN webhook_actions a ON a.action = e.kind "
          "ORDER BY d.id DESC LIMIT ?";
    SQLite::Statement q(*db, sql);
    int i = 1;
    if (webhook_id) q.bind(i++, *webhook_id);
    q.bind(i, static_cast<std::int64_t>(limit));
    while (q.executeStep()) {
      Delivery d;
      d.id = q.getColumn(0).getInt64();
      d.webhook_id = q.getColumn(1).getInt64();
      d.event_id = q.getColumn(2).getInt64();
      d.model = q.getColumn(3).getString();
      d.kind = q.getColumn(4).getString();
      d.attempt = q.getColumn(5).getInt();
      d.at = q.getColumn(6).getString();
      if (!q.getColumn(7).isNull()) d.http_status = q.getColumn(7).getInt();
      d.error = q.getColumn(8).getString();
      d.duration = std::chrono::milliseconds(q.getColumn(9).getInt64());
      d.outcome = parse_outcome(q.getColumn(10).getString()).value_or(DeliveryOutcome::retry);
      out.push_back(std::move(d));
    }
    return out;
  }
};

WebhookStore::WebhookStore(const std::filesystem::path& path, Options options) : impl_(std::make_unique<Impl>()) {
  // Registry opens, checks and migrates the file; then this store opens a connection of its own
  // (the delivery worker needs one: data_version changes only for other connections' commits).
  int schema = 0;
  {
    Registry registry(path, options);
    schema = registry.schema_version();
  }
  impl_->path = path;
  impl_->options = std::move(options);
  Options& o = impl_->options;
  if (o.default_actor.empty()) o.default_actor = detail::os_user();
  if (o.read_only) {
    impl_->write_refusal = fmt::format("'{}' was opened read-only", path.string());
  } else if (schema > Registry::supported_schema_version()) {
    impl_->write_refusal = fmt::format("'{}' has schema version {}, newer than this modelreg supports ({}); upgrade "
                                       "modelreg to write to it (reading still works)",
                                       path.string(), schema, Registry::supported_schema_version());
    impl_->write_refusal_code = Errc::incompatible;
  }
  guarded(fmt::format("opening '{}'", path.string()), [&] {
    impl_->db = detail::open_connection(path, o.read_only, static_cast<int>(o.busy_timeout.count()));
    // A registry opened read-only may predate the webhook tables: it then has no webhooks.
    impl_->has_tables =
        impl_->db->execAndGet("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'webhooks'").getInt() == 1;
    impl_->db->exec("PRAGMA foreign_keys = ON");
    impl_->db->exec(o.synchronous_full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
    if (impl_->write_refusal.empty() && sqlite3_db_readonly(impl_->db->getHandle(), "main") == 1) {
      impl_->write_refusal = fmt::format("'{}' is read-only; make it writable to change its webhooks", path.string());
      impl_->write_refusal_code = Errc::io_error;
    }
  });
}

WebhookStore::~WebhookStore() = default;
WebhookStore::WebhookStore(WebhookStore&&) noexcept = default;
WebhookStore& WebhookStore::operator=(WebhookStore&&) noexcept = default;

Webhook WebhookStore::add_webhook(const NewWebhook& spec) {
  // Everything is checked before the transaction: a refusal leaves the registry as it was.
  check_url(spec.url);
  const std::vector<std::string> kinds = checked_kinds(spec.kinds);
  std::optional<std::string> secret_file;
  if (spec.secret_file) {
    if (spec.secret_file->empty()) {
      throw Error(Errc::invalid_argument, "the webhook secret file name is empty; give the file's path");
    }
    read_webhook_secret(*spec.secret_file);
    std::error_code ec;
    const auto absolute = std::filesystem::absolute(*spec.secret_file, ec).lexically_normal();
    if (ec) {
      throw Error(Errc::io_error, fmt::format("cannot make '{}' an absolute path: {}", spec.secret_file->string(),
                                              ec.message()));
    }
    secret_file = absolute.string();
  }
  const std::string who = impl_->actor(spec.actor);
  return impl_->write("adding a webhook", [&] {
    const std::int64_t id = impl_->db->execAndGet("SELECT coalesce(max(id), 0) + 1 FROM webhooks").getInt64();
    // The kinds first: the webhook row seals them.
    SQLite::Statement k(*impl_->db, "INSERT INTO webhook_kinds(webhook_id, kind) VALUES (?, ?)");
    for (const auto& kind : kinds) {
      k.bind(1, id);
      k.bind(2, kind);
      k.exec();
      k.reset();
    }
    SQLite::Statement w(*impl_->db,
                        "INSERT INTO webhooks(id, url, secret_file, created_at, created_by, delivered_through) "
                        "VALUES (?, ?, ?, ?, ?, ?)");
    w.bind(1, id);
    w.bind(2, spec.url);
    if (secret_file) {
      w.bind(3, *secret_file);
    } else {
      w.bind(3);
    }
    w.bind(4, impl_->now());
    w.bind(5, who);
    w.bind(6, impl_->newest_event());
    w.exec();
    return impl_->require(id);
  });
}

std::vector<Webhook> WebhookStore::webhooks(bool include_removed) const {
  if (!impl_->has_tables) return {};
  return guarded("listing webhooks", [&] {
    std::lock_guard lock(impl_->mutex);
    SQLite::Transaction txn(*impl_->db, SQLite::TransactionBehavior::DEFERRED);
    SQLite::Statement q(*impl_->db,
                        include_removed
                            ? "SELECT id, url, secret_file, created_at, created_by, removed_at, removed_by, "
                              "delivered_through FROM webhooks ORDER BY id"
                            : "SELECT id, url, secret_file, created_at, created_by, removed_at, removed_by, "
                              "delivered_through FROM webhooks WHERE removed_at IS NULL ORDER BY id");
    std::vector<Webhook> out;
    while (q.executeStep()) out.push_back(impl_->read_webhook(q));
    txn.commit();
    return out;
  });
}

Webhook WebhookStore::webhook(std::int64_t id) const {
  return guarded(fmt::format("reading webhook {}", id), [&] {
    std::lock_guard lock(impl_->mutex);
    return impl_->require(id);
  });
}

Webhook WebhookStore::remove_webhook(std::int64_t id, const Change& change) {
  const std::string who = impl_->actor(change.actor);
  return impl_->write(fmt::format("removing webhook {}", id), [&] {
    const Webhook w = impl_->require(id);
    if (w.removed_at) {
      throw Error(Errc::conflict, fmt::format("webhook {} was removed already, at {} by {}", id, *w.removed_at,
                                              w.removed_by.value_or("")));
    }
    SQLite::Statement q(*impl_->db, "UPDATE webhooks SET removed_at = ?, removed_by = ? WHERE id = ?");
    q.bind(1, impl_->now());
    q.bind(2, who);
    q.bind(3, id);
    q.exec();
    return impl_->require(id);
  });
}

std::vector<Event> WebhookStore::pending_events(std::int64_t webhook_id, std::size_t limit) const {
  return guarded(fmt::format("reading the pending events of webhook {}", webhook_id), [&] {
    std::lock_guard lock(impl_->mutex);
    SQLite::Transaction txn(*impl_->db, SQLite::TransactionBehavior::DEFERRED);
    auto out = impl_->pending(impl_->require(webhook_id), limit);
    txn.commit();
    return out;
  });
}

int WebhookStore::attempts(std::int64_t webhook_id, std::int64_t event_id) const {
  if (!impl_->has_tables) return 0;
  return guarded("counting delivery attempts", [&] {
    std::lock_guard lock(impl_->mutex);
    return impl_->attempts(webhook_id, event_id);
  });
}

Delivery WebhookStore::record_attempt(const AttemptResult& r) {
  if (r.http_status && (*r.http_status < 100 || *r.http_status > 599)) {
    throw Error(Errc::invalid_argument, fmt::format("HTTP status {} is not one (100 to 599)", *r.http_status));
  }
  if (!r.http_status && r.error.empty()) {
    throw Error(Errc::invalid_argument, "an attempt without an HTTP status must say what happened (error)");
  }
  if (r.duration.count() < 0) throw Error(Errc::invalid_argument, "an attempt's duration cannot be negative");
  const bool delivered = r.http_status && *r.http_status >= 200 && *r.http_status <= 299;
  const DeliveryOutcome outcome =
      delivered ? DeliveryOutcome::delivered : (r.last ? DeliveryOutcome::failed : DeliveryOutcome::retry);
  // What the receiver or the network said may be anything: keep it readable and bounded.
  std::string error = r.error.substr(0, 1024);
  for (char& c : error) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  if (detail::first_invalid_utf8(error)) error = "(an error message that is not UTF-8)";
  return impl_->write(fmt::format("recording the delivery of event {} to webhook {}", r.event_id, r.webhook_id), [&] {
    Delivery d;
    d.webhook_id = r.webhook_id;
    d.event_id = r.event_id;
    d.attempt = impl_->attempts(r.webhook_id, r.event_id) + 1;
    d.at = impl_->now();
    d.http_status = r.http_status;
    d.error = error;
    d.duration = r.duration;
    d.outcome = outcome;
    SQLite::Statement q(*impl_->db,
                        "INSERT INTO webhook_deliveries(webhook_id, event_id, attempt, at, http_status, error, "
                        "duration_ms, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    q.bind(1, d.webhook_id);
    q.bind(2, d.event_id);
    q.bind(3, d.attempt);
    q.bind(4, d.at);
    if (d.http_status) {
      q.bind(5, *d.http_status);
    } else {
      q.bind(5);
    }
    q.bind(6, d.error);
    q.bind(7, static_cast<std::int64_t>(d.duration.count()));
    q.bind(8, std::string(to_string(outcome)));
    q.exec();
    d.id = impl_->db->getLastInsertRowid();
    if (outcome != DeliveryOutcome::retry) {
      SQLite::Statement c(*impl_->db, "UPDATE webhooks SET delivered_through = ? WHERE id = ?");
      c.bind(1, d.event_id);
      c.bind(2, d.webhook_id);
      c.exec();
    }
    SQLite::Statement info(*impl_->db,
                           "SELECT m.name, a.kind FROM events e JOIN models m ON m.id = e.model_id "
                           "JOIN webhook_actions a ON a.action = e.kind WHERE e.id = ?");
    info.bind(1, d.event_id);
    if (info.executeStep()) {
      d.model = info.getColumn(0).getString();
      d.kind = info.getColumn(1).getString();
    }
    return d;
  });
}

bool WebhookStore::skip_idle(std::int64_t webhook_id) {
  // Looked at first without the write lock: the delivery worker calls this at every wake-up, and
  // there is usually nothing to move.
  const bool idle_behind = guarded(fmt::format("reading the cursor of webhook {}", webhook_id), [&] {
    std::lock_guard lock(impl_->mutex);
    SQLite::Transaction txn(*impl_->db, SQLite::TransactionBehavior::DEFERRED);
    const Webhook w = impl_->require(webhook_id);
    const bool behind = !w.removed_at && impl_->newest_event() > w.delivered_through && impl_->pending(w, 1).empty();
    txn.commit();
    return behind;
  });
  if (!idle_behind) return false;
  return impl_->write(fmt::format("moving the cursor of webhook {}", webhook_id), [&] {
    const Webhook w = impl_->require(webhook_id);
    if (w.removed_at || !impl_->pending(w, 1).empty()) return false;
    const std::int64_t newest = impl_->newest_event();
    if (newest <= w.delivered_through) return false;
    SQLite::Statement c(*impl_->db, "UPDATE webhooks SET delivered_through = ? WHERE id = ?");
    c.bind(1, newest);
    c.bind(2, webhook_id);
    c.exec();
    return true;
  });
}

std::vector<Delivery> WebhookStore::deliveries(std::optional<std::int64_t> webhook_id, std::size_t limit) const {
  return guarded("listing webhook deliveries", [&] {
    std::lock_guard lock(impl_->mutex);
    SQLite::Transaction txn(*impl_->db, SQLite::TransactionBehavior::DEFERRED);
    if (webhook_id) impl_->require(*webhook_id);
    auto out = impl_->deliveries(webhook_id, limit);
    txn.commit();
    return out;
  });
}

std::int64_t WebhookStore::data_version() const {
  return guarded("reading the data version", [&] {
    std::lock_guard lock(impl_->mutex);
    return impl_->db->execAndGet("PRAGMA data_version").getInt64();
  });
}

const std::filesystem::path& WebhookStore::path() const noexcept { return impl_->path; }

}  // namespace modelreg
