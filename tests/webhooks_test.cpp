// WebhookStore: adding (and refusing) webhooks, the pending events of each in id order, the
// payload and its signature, attempts and the cursor, and the schema's rules against the sqlite3
// shell. Delivery over HTTP: tests/cli/webhook_test.cpp.
#include <sys/stat.h>

#include <chrono>
#include <fstream>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "model_test_support.hpp"
#include "modelreg/webhooks.hpp"
#include "test_support.hpp"

using namespace modelreg;
using test::code_of;
using test::contains;
using test::message_of;

namespace {

const std::string kSecret = "0123456789abcdef0123456789abcdef";

std::filesystem::path secret_file(const test::TempDir& dir, const std::string& name, mode_t mode,
                                  const std::string& text = kSecret + "\n") {
  const auto file = dir / name;
  std::ofstream(file, std::ios::binary) << text;
  REQUIRE(::chmod(file.c_str(), mode) == 0);
  return file;
}

Options fixed_clock() {
  Options o;
  o.default_actor = "tester";
  o.clock = [] { return std::chrono::system_clock::time_point(std::chrono::milliseconds(1'800'000'000'000)); };
  return o;
}

NewWebhook hook(std::string url, std::vector<std::string> kinds) {
  NewWebhook n;
  n.url = std::move(url);
  n.kinds = std::move(kinds);
  return n;
}

// The three webhook tables, row by row.
std::string webhook_rows(const std::filesystem::path& db) {
  const std::string all = test::dump(db);
  std::string out;
  bool keep = false;
  std::size_t at = 0;
  while (at < all.size()) {
    const std::size_t end = all.find('\n', at);
    const std::string line = all.substr(at, end - at);
    if (line.find(" rows)") != std::string::npos) keep = line.starts_with("webhook");
    if (keep) out += line + "\n";
    at = end + 1;
  }
  return out;
}

AttemptResult attempt(std::int64_t webhook, std::int64_t event, std::optional<int> status, std::string error = {},
                      bool last = false) {
  AttemptResult r;
  r.webhook_id = webhook;
  r.event_id = event;
  r.http_status = status;
  r.error = std::move(error);
  r.duration = std::chrono::milliseconds(7);
  r.last = last;
  return r;
}

std::vector<std::int64_t> ids(const std::vector<Event>& events) {
  std::vector<std::int64_t> out;
  for (const auto& e : events) out.push_back(e.id);
  return out;
}

}  // namespace

TEST_CASE("the HMAC-SHA256 signature is RFC 4231's") {
  // RFC 4231, test case 2.
  CHECK(webhook_signature("Jefe", "what do ya want for nothing?") ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST_CASE("every audit-log kind maps to the webhook kind the schema's webhook_actions table gives") {
  test::TempDir dir;
  WebhookStore store(dir / "r.db");
  auto d = test::raw(dir / "r.db");
  for (const EventKind k : {EventKind::register_version, EventKind::promote, EventKind::rollback, EventKind::archive,
                            EventKind::unarchive, EventKind::delete_version, EventKind::tag, EventKind::untag,
                            EventKind::alias_set, EventKind::alias_remove}) {
    SQLite::Statement q(d, "SELECT kind FROM webhook_actions WHERE action = ?");
    q.bind(1, std::string(to_string(k)));
    const std::optional<std::string> in_schema = q.executeStep() ? std::optional(q.getColumn(0).getString()) : std::nullopt;
    CHECK_MESSAGE(webhook_kind_of(k) == in_schema, to_string(k));
  }
  CHECK(webhook_kinds() == std::vector<std::string>{"register", "promote", "rollback", "alias", "archive", "delete"});
}

TEST_CASE("add_webhook stores the URL, the kinds in their order, the secret file's absolute path and the newest event") {
  test::TempDir dir;
  Registry reg(dir / "r.db", fixed_clock());
  reg.register_bytes(test::spec("fraud"), "a");
  reg.register_bytes(test::spec("fraud"), "b");
  WebhookStore store(dir / "r.db", fixed_clock());
  NewWebhook n = hook("https://deploy.example:8443/hooks/modelreg?team=risk", {"delete", "promote", "register"});
  n.secret_file = secret_file(dir, "hook.key", 0600);
  const Webhook w = store.add_webhook(n);
  CHECK(w.id == 1);
  CHECK(w.url == "https://deploy.example:8443/hooks/modelreg?team=risk");
  CHECK(w.kinds == std::vector<std::string>{"register", "promote", "delete"});
  CHECK(w.secret_file == dir / "hook.key");
  CHECK(w.created_at == "2027-01-15T08:00:00.000Z");
  CHECK(w.created_by == "tester");
  CHECK_FALSE(w.removed_at);
  CHECK(w.delivered_through == 2);  // told about what happens from now on
  const Webhook plain = store.add_webhook(hook("http://[::1]:9000", {"alias"}));
  CHECK(plain.id == 2);
  CHECK_FALSE(plain.secret_file);
  CHECK(store.webhooks().size() == 2);
  CHECK(store.webhook(1).url == w.url);
}

TEST_CASE("add_webhook refuses a bad URL, unknown or repeated kinds and unusable secret files, changing nothing") {
  test::TempDir dir;
  Registry reg(dir / "r.db");
  reg.register_bytes(test::spec("fraud"), "a");
  WebhookStore store(dir / "r.db");
  store.add_webhook(hook("http://127.0.0.1:9/", {"promote"}));
  const std::string before = webhook_rows(dir / "r.db");
  REQUIRE(contains(before, "webhooks (1 rows)"));

  struct Case {
    NewWebhook spec;
    Errc code;
    std::string message;
  };
  NewWebhook missing = hook("http://h/", {"promote"});
  missing.secret_file = dir / "nope.key";
  NewWebhook others = hook("http://h/", {"promote"});
  others.secret_file = secret_file(dir, "others.key", 0644);
  NewWebhook group = hook("http://h/", {"promote"});
  group.secret_file = secret_file(dir, "group.key", 0640);
  NewWebhook short_secret = hook("http://h/", {"promote"});
  short_secret.secret_file = secret_file(dir, "short.key", 0600, "tiny\n");
  NewWebhook directory = hook("http://h/", {"promote"});
  directory.secret_file = dir.path();
  const std::vector<Case> cases = {
      {hook("", {"promote"}), Errc::invalid_argument, "the webhook URL is empty"},
      {hook("ftp://h/x", {"promote"}), Errc::invalid_argument, "has scheme 'ftp': only http and https"},
      {hook("h/x", {"promote"}), Errc::invalid_argument, "'h/x' has no scheme"},
      {hook("file:///etc/passwd", {"promote"}), Errc::invalid_argument, "has scheme 'file'"},
      {hook("http://", {"promote"}), Errc::invalid_argument, "has no host"},
      {hook("http:///path", {"promote"}), Errc::invalid_argument, "has no host"},
      {hook("http://:80/", {"promote"}), Errc::invalid_argument, "has no host"},
      {hook("http://user:pw@h/", {"promote"}), Errc::invalid_argument, "holds credentials"},
      {hook("http://token@h/", {"promote"}), Errc::invalid_argument, "holds credentials"},
      {hook("http://h:0/", {"promote"}), Errc::invalid_argument, "port that is not a number from 1 to 65535"},
      {hook("http://h:65536/", {"promote"}), Errc::invalid_argument, "port that is not a number from 1 to 65535"},
      {hook("http://h:8x/", {"promote"}), Errc::invalid_argument, "port that is not a number"},
      {hook("http://h:/", {"promote"}), Errc::invalid_argument, "empty port"},
      {hook("http://h o/", {"promote"}), Errc::invalid_argument, "holds a space, a control character"},
      {hook("http://h/\n", {"promote"}), Errc::invalid_argument, "holds a space, a control character"},
      {hook("http://h\xc3\xa9/", {"promote"}), Errc::invalid_argument, "non-ASCII byte"},
      {hook("http://h!/", {"promote"}), Errc::invalid_argument, "host with characters"},
      {hook("http://[::1/", {"promote"}), Errc::invalid_argument, "without its closing ]"},
      {hook("http://h/#frag", {"promote"}), Errc::invalid_argument, "has a fragment"},
      {hook("http://h/" + std::string(2048, 'a'), {"promote"}), Errc::invalid_argument, "more than 2048"},
      {hook("http://h/", {}), Errc::invalid_argument, "needs at least one kind of event"},
      {hook("http://h/", {"promot"}), Errc::invalid_argument,
       "unknown webhook event kind 'promot'; the kinds are register, promote, rollback, alias, archive, delete"},
      {hook("http://h/", {"tag"}), Errc::invalid_argument, "(tag changes are not delivered)"},
      {hook("http://h/", {"alias_set"}), Errc::invalid_argument, "(alias covers alias_set and alias_remove)"},
      {hook("http://h/", {"unarchive"}), Errc::invalid_argument, "(archive covers archive and unarchive)"},
      {hook("http://h/", {"promote", "promote"}), Errc::invalid_argument, "'promote' is given twice"},
      {missing, Errc::not_found, "webhook secret file '" + (dir / "nope.key").string() + "' does not exist"},
      {others, Errc::invalid_argument, "is accessible by others (mode 0644)"},
      {group, Errc::invalid_argument, "is accessible by its group (mode 0640)"},
      {short_secret, Errc::invalid_argument, "holds 4 bytes; a key needs at least 16"},
      {directory, Errc::invalid_argument, "is a directory"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.spec.url);
    CAPTURE(c.message);
    CHECK(code_of([&] { store.add_webhook(c.spec); }) == c.code);
    CHECK(contains(message_of([&] { store.add_webhook(c.spec); }), c.message));
  }
  CHECK(contains(message_of([&] { store.add_webhook(others); }), "chmod 600"));
  CHECK(webhook_rows(dir / "r.db") == before);
}

TEST_CASE("pending events are the subscribed kinds after the cursor, in id order, across models") {
  test::TempDir dir;
  Registry reg(dir / "r.db", fixed_clock());
  WebhookStore store(dir / "r.db", fixed_clock());
  const Webhook all = store.add_webhook(hook("http://h/all", webhook_kinds()));
  const Webhook lifecycle = store.add_webhook(hook("http://h/life", {"alias", "archive"}));
  reg.register_bytes(test::spec("fraud"), "a");                            // 1 register
  reg.register_bytes(test::spec("churn"), "b");                            // 2 register
  reg.promote(test::ref("fraud@1"), {.reason = "first"});                  // 3 promote
  reg.set_tag(test::ref("fraud@1"), "stage", "prod");                      // 4 tag: never delivered
  reg.register_bytes(test::spec("fraud"), "c");                            // 5 register
  reg.set_alias(test::ref("fraud@2"), "champion", {.reason = "try"});      // 6 alias_set
  reg.remove_alias("fraud", "champion", {.reason = "done"});              // 7 alias_remove
  reg.archive(test::ref("fraud@2"));                                       // 8 archive
  reg.unarchive(test::ref("fraud@2"));                                     // 9 unarchive
  reg.promote(test::ref("fraud@2"));                                       // 10 promote
  reg.rollback("fraud", {.reason = "bad"});                                // 11 rollback
  reg.archive(test::ref("churn@1"));                                       // 12 archive
  reg.delete_version(test::ref("churn@1"), {.reason = "gone"});            // 13 delete

  CHECK(ids(store.pending_events(all.id)) == std::vector<std::int64_t>{1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13});
  CHECK(ids(store.pending_events(all.id, 3)) == std::vector<std::int64_t>{1, 2, 3});
  CHECK(ids(store.pending_events(lifecycle.id)) == std::vector<std::int64_t>{6, 7, 8, 9, 12});

  const auto events = store.pending_events(all.id);
  CHECK(webhook_payload(events[2]) ==
        R"({"id":3,"kind":"promote","action":"promote","model":"fraud","version":1,"from_version":null,)"
        R"("to_version":1,"alias":"active","actor":"tester","reason":"first","at":"2027-01-15T08:00:00.000Z"})");
  CHECK(webhook_payload(events[5]) ==
        R"({"id":7,"kind":"alias","action":"alias_remove","model":"fraud","version":2,"from_version":2,)"
        R"("to_version":null,"alias":"champion","actor":"tester","reason":"done","at":"2027-01-15T08:00:00.000Z"})");
  CHECK(webhook_payload(events[7]) ==
        R"({"id":9,"kind":"archive","action":"unarchive","model":"fraud","version":2,"from_version":null,)"
        R"("to_version":null,"alias":null,"actor":"tester","reason":"","at":"2027-01-15T08:00:00.000Z"})");
  CHECK(webhook_payload(events[9]) ==
        R"({"id":11,"kind":"rollback","action":"rollback","model":"fraud","version":1,"from_version":2,)"
        R"("to_version":1,"alias":"active","actor":"tester","reason":"bad","at":"2027-01-15T08:00:00.000Z"})");
  CHECK(webhook_payload(events[11]) ==
        R"({"id":13,"kind":"delete","action":"delete","model":"churn","version":1,"from_version":null,)"
        R"("to_version":null,"alias":null,"actor":"tester","reason":"gone","at":"2027-01-15T08:00:00.000Z"})");
}

TEST_CASE("attempts are numbered, and only a delivered or failed one moves the cursor") {
  test::TempDir dir;
  Registry reg(dir / "r.db", fixed_clock());
  WebhookStore store(dir / "r.db", fixed_clock());
  const Webhook w = store.add_webhook(hook("http://h/", {"register"}));
  reg.register_bytes(test::spec("fraud"), "a");  // 1
  reg.register_bytes(test::spec("fraud"), "b");  // 2
  reg.register_bytes(test::spec("fraud"), "c");  // 3

  const Delivery first = store.record_attempt(attempt(w.id, 1, 500, "the receiver answered 500"));
  CHECK(first.attempt == 1);
  CHECK(first.outcome == DeliveryOutcome::retry);
  CHECK(first.model == "fraud");
  CHECK(first.kind == "register");
  CHECK(store.webhook(w.id).delivered_through == 0);
  const Delivery second = store.record_attempt(attempt(w.id, 1, std::nullopt, "Connection"));
  CHECK(second.attempt == 2);
  CHECK(second.outcome == DeliveryOutcome::retry);
  const Delivery third = store.record_attempt(attempt(w.id, 1, 204));
  CHECK(third.attempt == 3);
  CHECK(third.outcome == DeliveryOutcome::delivered);
  CHECK(store.webhook(w.id).delivered_through == 1);
  CHECK(ids(store.pending_events(w.id)) == std::vector<std::int64_t>{2, 3});

  const Delivery given_up = store.record_attempt(attempt(w.id, 2, 503, "the receiver answered 503", true));
  CHECK(given_up.outcome == DeliveryOutcome::failed);
  CHECK(store.webhook(w.id).delivered_through == 2);
  // A 2xx delivers even on the last attempt.
  CHECK(store.record_attempt(attempt(w.id, 3, 200, {}, true)).outcome == DeliveryOutcome::delivered);
  CHECK(store.pending_events(w.id).empty());

  const auto list = store.deliveries(w.id);
  REQUIRE(list.size() == 5);
  CHECK(list[0].event_id == 3);  // newest first
  CHECK(list[4].http_status == 500);
  CHECK(list[3].http_status == std::nullopt);
  CHECK(list[3].error == "Connection");
  CHECK(list[3].duration == std::chrono::milliseconds(7));
  CHECK(store.deliveries(std::nullopt, 2).size() == 2);

  const std::string before = webhook_rows(dir / "r.db");
  // Settled events, bad results, unknown webhooks: refused, nothing recorded.
  CHECK(contains(message_of([&] { store.record_attempt(attempt(w.id, 1, 200)); }), "the event is settled"));
  CHECK(code_of([&] { store.record_attempt(attempt(w.id, 1, 200)); }) == Errc::conflict);
  CHECK(code_of([&] { store.record_attempt(attempt(w.id, 3, 99)); }) == Errc::invalid_argument);
  CHECK(code_of([&] { store.record_attempt(attempt(w.id, 3, 600)); }) == Errc::invalid_argument);
  CHECK(code_of([&] { store.record_attempt(attempt(w.id, 3, std::nullopt)); }) == Errc::invalid_argument);
  CHECK(code_of([&] { store.deliveries(9); }) == Errc::not_found);
  CHECK(code_of([&] { store.pending_events(9); }) == Errc::not_found);
  CHECK(webhook_rows(dir / "r.db") == before);
}

TEST_CASE("a removed webhook keeps its records, has nothing pending and takes no attempts") {
  test::TempDir dir;
  Registry reg(dir / "r.db", fixed_clock());
  WebhookStore store(dir / "r.db", fixed_clock());
  const Webhook w = store.add_webhook(hook("http://h/", {"register"}));
  reg.register_bytes(test::spec("fraud"), "a");
  store.record_attempt(attempt(w.id, 1, 500, "the receiver answered 500"));
  const Webhook removed = store.remove_webhook(w.id, {.actor = "ops"});
  CHECK(removed.removed_at == "2027-01-15T08:00:00.000Z");
  CHECK(removed.removed_by == "ops");
  CHECK(store.webhooks().empty());
  CHECK(store.webhooks(true).size() == 1);
  CHECK(store.pending_events(w.id).empty());
  CHECK(store.deliveries(w.id).size() == 1);
  CHECK(code_of([&] { store.record_attempt(attempt(w.id, 1, 200)); }) == Errc::conflict);
  CHECK(contains(message_of([&] { store.record_attempt(attempt(w.id, 1, 200)); }), "a removed webhook delivers nothing"));
  CHECK(code_of([&] { store.remove_webhook(w.id); }) == Errc::conflict);
  CHECK(code_of([&] { store.remove_webhook(2); }) == Errc::not_found);
  CHECK_FALSE(store.skip_idle(w.id));
}

TEST_CASE("skip_idle moves the cursor past unsubscribed events only when nothing is pending") {
  test::TempDir dir;
  Registry reg(dir / "r.db", fixed_clock());
  WebhookStore store(dir / "r.db", fixed_clock());
  const Webhook w = store.add_webhook(hook("http://h/", {"delete"}));
  reg.register_bytes(test::spec("fraud"), "a");
  reg.register_bytes(test::spec("fraud"), "b");
  CHECK(store.skip_idle(w.id));
  CHECK(store.webhook(w.id).delivered_through == 2);
  CHECK_FALSE(store.skip_idle(w.id));
  reg.archive(test::ref("fraud@1"));
  reg.delete_version(test::ref("fraud@1"));  // 4: pending
  reg.register_bytes(test::spec("fraud"), "c");
  CHECK_FALSE(store.skip_idle(w.id));
  CHECK(store.webhook(w.id).delivered_through == 2);
  CHECK(ids(store.pending_events(w.id)) == std::vector<std::int64_t>{4});
}

TEST_CASE("the schema refuses what breaks the webhook rules, from the sqlite3 shell") {
  test::TempDir dir;
  Registry reg(dir / "r.db", fixed_clock());
  WebhookStore store(dir / "r.db", fixed_clock());
  const Webhook w = store.add_webhook(hook("http://h/", {"register", "promote"}));
  reg.register_bytes(test::spec("fraud"), "a");  // 1
  reg.register_bytes(test::spec("fraud"), "b");  // 2
  reg.set_tag(test::ref("fraud@1"), "k", "v");   // 3: tag
  store.record_attempt(attempt(w.id, 1, 500, "the receiver answered 500"));
  auto d = test::raw(dir / "r.db");
  auto refused = [&](const std::string& sql, const std::string& message) {
    CAPTURE(sql);
    try {
      d.exec(sql);
      FAIL("the schema accepted it");
    } catch (const SQLite::Exception& e) {
      CHECK(contains(e.what(), message));
    }
  };
  refused("UPDATE webhook_deliveries SET http_status = 200", "append-only");
  refused("DELETE FROM webhook_deliveries", "append-only");
  refused("DELETE FROM webhooks", "webhooks are never deleted");
  refused("UPDATE webhooks SET url = 'http://evil/'", "never change");
  refused("UPDATE webhooks SET secret_file = '/tmp/other'", "never change");
  refused("INSERT INTO webhook_kinds VALUES (1, 'delete')", "kinds never change");
  refused("DELETE FROM webhook_kinds", "kinds never change");
  refused("UPDATE webhook_kinds SET kind = 'delete'", "kinds never change");
  refused("INSERT INTO webhook_actions VALUES ('tag', 'register')", "fixed by the schema");
  refused("UPDATE webhook_actions SET kind = 'delete' WHERE action = 'register'", "fixed by the schema");
  refused("DELETE FROM webhook_actions", "fixed by the schema");
  // The cursor: never past an event without its final attempt, never back, never past the newest.
  refused("UPDATE webhooks SET delivered_through = 1", "whose final attempt is not recorded");
  refused("UPDATE webhooks SET delivered_through = 9", "cannot pass the newest event");
  // Attempts: numbered in turn, for subscribed and unsettled events, 'delivered' exactly for 2xx.
  const std::string insert =
      "INSERT INTO webhook_deliveries(webhook_id, event_id, attempt, at, http_status, error, duration_ms, outcome) ";
  refused(insert + "VALUES (1, 1, 3, 't', 500, '', 1, 'retry')", "numbered 1, 2, 3");
  refused(insert + "VALUES (1, 3, 1, 't', 500, '', 1, 'retry')", "does not subscribe to this event's kind");
  refused(insert + "VALUES (1, 1, 2, 't', 500, '', 1, 'delivered')", "CHECK constraint failed");
  refused(insert + "VALUES (1, 1, 2, 't', 200, '', 1, 'retry')", "CHECK constraint failed");
  refused(insert + "VALUES (1, 1, 2, 't', NULL, '', 1, 'retry')", "CHECK constraint failed");
  refused(insert + "VALUES (1, 1, 2, 't', 200, '', 1, 'sent')", "CHECK constraint failed");
  refused(insert + "VALUES (1, 1, 2, 't', 200, '', -1, 'delivered')", "CHECK constraint failed");
  // New webhooks: kinds first, from the set, and a URL the schema accepts.
  refused("INSERT INTO webhooks(id, url, created_at, created_by, delivered_through) VALUES (2, 'http://h/', 't', 'a', 0)",
          "at least one kind");
  refused("INSERT INTO webhook_kinds VALUES (2, 'tag')", "CHECK constraint failed");
  refused("BEGIN; INSERT INTO webhook_kinds VALUES (2, 'register'); INSERT INTO webhooks(id, url, created_at, "
          "created_by, delivered_through) VALUES (2, 'gopher://h/', 't', 'a', 0)",
          "CHECK constraint failed");
  d.exec("ROLLBACK");
  refused("BEGIN; INSERT INTO webhook_kinds VALUES (2, 'register'); INSERT INTO webhooks(id, url, secret_file, "
          "created_at, created_by, delivered_through) VALUES (2, 'http://h/', 'relative.key', 't', 'a', 0)",
          "CHECK constraint failed");
  d.exec("ROLLBACK");
  d.exec("UPDATE webhooks SET removed_at = 't', removed_by = 'a'");
  refused("UPDATE webhooks SET removed_at = NULL, removed_by = NULL", "stays removed");
  refused(insert + "VALUES (1, 1, 2, 't', 200, '', 1, 'delivered')", "a removed webhook delivers nothing");
}

TEST_CASE("a read-only store reads webhooks and refuses every write") {
  test::TempDir dir;
  {
    WebhookStore store(dir / "r.db");
    store.add_webhook(hook("http://h/", {"register"}));
  }
  Options o;
  o.read_only = true;
  WebhookStore store(dir / "r.db", o);
  CHECK(store.webhooks().size() == 1);
  CHECK(code_of([&] { store.add_webhook(hook("http://h/", {"register"})); }) == Errc::conflict);
  CHECK(code_of([&] { store.remove_webhook(1); }) == Errc::conflict);
  CHECK(contains(message_of([&] { store.remove_webhook(1); }), "read-only"));
}
