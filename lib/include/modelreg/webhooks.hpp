// modelreg/webhooks.hpp — webhooks: URLs told about the registry's events by HTTP POST.
//
// A webhook subscribes to kinds of events (register, promote, rollback, alias, archive, delete) of
// every model. A delivery process (`modelreg ui`, `modelreg webhook run`) reads each webhook's
// pending events — those after its cursor, in event-id order, which is also each model's order —
// posts each one's payload (webhook_payload) signed with the webhook's secret (webhook_signature),
// and records every attempt (record_attempt). The cursor moves past an event only in the
// transaction that records its final attempt, so an event is delivered at least once even when the
// process stops between the commit of the event and its delivery. See README.md, "Webhooks", and
// migrations/0008_webhooks.sql for the rules the schema enforces.
//
// The secret is never stored in the registry: a webhook records the absolute path of a secret
// file (mode 600, the rules of signing key files: read_signing_key), read by the delivering process.
//
// Thread-safety: a WebhookStore may be shared by threads; calls are serialized on its own
// connection (protected by an internal mutex). Every write is one transaction. Every failure is a
// modelreg::Error.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "modelreg/export.hpp"
#include "modelreg/metadata.hpp"
#include "modelreg/registry.hpp"

namespace modelreg {

// The kinds a webhook may subscribe to, in this order: register, promote, rollback, alias
// (alias_set, alias_remove), archive (archive, unarchive), delete. Tag changes are not delivered.
MODELREG_API const std::vector<std::string>& webhook_kinds();
// The webhook kind that covers an audit-log kind; nullopt for tag and untag.
MODELREG_API std::optional<std::string> webhook_kind_of(EventKind kind);

struct MODELREG_API NewWebhook {
  // http://HOST[:PORT][/PATH] or https://…: no credentials (user:password@), no spaces or control
  // characters, at most 2048 bytes.
  std::string url{};
  // One or more of webhook_kinds(), each at most once.
  std::vector<std::string> kinds{};
  // A file holding the secret (read as read_signing_key reads a key: a regular file readable only
  // by its owner, at least 16 bytes). Stored as an absolute path. None: deliveries are not signed.
  std::optional<std::filesystem::path> secret_file{};
  std::optional<std::string> actor{};  // default Options::default_actor
};

struct MODELREG_API Webhook {
  std::int64_t id = 0;
  std::string url;
  std::vector<std::string> kinds;  // in webhook_kinds() order
  std::optional<std::filesystem::path> secret_file;
  std::string created_at;
  std::string created_by;
  std::optional<std::string> removed_at;
  std::optional<std::string> removed_by;
  // Every subscribed event with an id up to this one is settled (delivered, or failed for good).
  std::int64_t delivered_through = 0;
};

enum class DeliveryOutcome {
  delivered,  // "delivered": the receiver answered 2xx
  retry,      // "retry": no answer or another status; another attempt follows
  failed,     // "failed": the last attempt, the retry budget spent; the cursor moved past the event
};
MODELREG_API std::string_view to_string(DeliveryOutcome outcome) noexcept;

// What one attempt to deliver an event gave.
struct MODELREG_API AttemptResult {
  std::int64_t webhook_id = 0;
  std::int64_t event_id = 0;
  std::optional<int> http_status{};  // none: no answer (then `error` says why)
  std::string error{};               // why there was no answer, or what was wrong with it
  std::chrono::milliseconds duration{0};
  // Whether this is the last attempt when it does not deliver (the budget is spent).
  bool last = false;
};

// One recorded attempt.
struct MODELREG_API Delivery {
  std::int64_t id = 0;
  std::int64_t webhook_id = 0;
  std::int64_t event_id = 0;
  std::string model;
  std::string kind;  // the webhook kind
  int attempt = 1;
  std::string at;
  std::optional<int> http_status;
  std::string error;
  std::chrono::milliseconds duration{0};
  DeliveryOutcome outcome = DeliveryOutcome::retry;
};

// The body POSTed for an event: one line of JSON,
//   {"id":42,"kind":"promote","action":"promote","model":"fraud","version":null,"from_version":2,
//    "to_version":3,"alias":"active","actor":"ci","reason":"better f1","at":"2026-12-02T14:00:00.000Z"}
// with `kind` the webhook kind, `action` the audit-log kind (alias_set, unarchive...), absent
// values null. The same bytes on every attempt.
MODELREG_API std::string webhook_payload(const Event& event);

// The lower-case hex HMAC-SHA256 of `body` keyed with `secret`: the header is
// `X-Modelreg-Signature: sha256=<this>`.
MODELREG_API std::string webhook_signature(std::string_view secret, std::string_view body);

// The secret in a webhook's secret file, with read_signing_key's rules and messages that name it
// a webhook secret file.
MODELREG_API std::string read_webhook_secret(const std::filesystem::path& file);

class MODELREG_API WebhookStore {
 public:
  // Opens the registry at `path` as Registry does (same options, migrations applied), with a
  // connection of its own. Throws as Registry's constructor.
  explicit WebhookStore(const std::filesystem::path& path, Options options = {});
  ~WebhookStore();
  WebhookStore(WebhookStore&&) noexcept;
  WebhookStore& operator=(WebhookStore&&) noexcept;
  WebhookStore(const WebhookStore&) = delete;
  WebhookStore& operator=(const WebhookStore&) = delete;

  // Adds a webhook whose cursor is the newest event: it is told about events from now on.
  // Error(invalid_argument) for a bad URL, an unknown or repeated kind, no kinds, or a secret file
  // that read_webhook_secret refuses (Error(not_found) when it does not exist); the registry is
  // then unchanged.
  Webhook add_webhook(const NewWebhook& spec);
  // The webhooks by id; removed ones only with include_removed.
  std::vector<Webhook> webhooks(bool include_removed = false) const;
  // Error(not_found) for an id that was never given out.
  Webhook webhook(std::int64_t id) const;
  // Marks a webhook removed (its row and delivery records stay): no more deliveries.
  // Error(not_found) for an unknown id, Error(conflict) when it was removed already.
  Webhook remove_webhook(std::int64_t id, const Change& change = {});

  // The next `limit` events the webhook subscribes to after its cursor, by id (empty for a
  // removed webhook). Error(not_found) for an unknown id.
  std::vector<Event> pending_events(std::int64_t webhook_id, std::size_t limit = 100) const;
  // The number of attempts recorded for (webhook, event) so far.
  int attempts(std::int64_t webhook_id, std::int64_t event_id) const;
  // Records one attempt, numbered after those recorded, in one transaction: delivered for a 2xx,
  // else failed when result.last, else retry; delivered or failed also moves the cursor to the
  // event. Error(conflict) when the schema refuses it (the webhook removed meanwhile, the event
  // settled, not subscribed); Error(invalid_argument) for a status outside 100..599 or no status
  // and no error.
  Delivery record_attempt(const AttemptResult& result);
  // Moves the cursor to the newest event when no subscribed event is pending (so that later
  // polls do not scan unsubscribed events again). Returns whether it moved.
  bool skip_idle(std::int64_t webhook_id);
  // The latest `limit` attempts (all webhooks, or one), newest first. Error(not_found) for an
  // unknown webhook.
  std::vector<Delivery> deliveries(std::optional<std::int64_t> webhook_id = std::nullopt,
                                   std::size_t limit = 50) const;

  // PRAGMA data_version of this store's connection (see Registry::data_version): it changes
  // when another connection commits, never for this store's own writes.
  std::int64_t data_version() const;
  const std::filesystem::path& path() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace modelreg
