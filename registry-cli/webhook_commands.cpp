// webhook add, list, remove, deliveries, run: the registry's webhooks from the shell (README.md,
// "Webhooks").
#include <pthread.h>
#include <signal.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "arguments.hpp"
#include "commands.hpp"
#include "modelreg/time_format.hpp"
#include "modelreg/webhooks.hpp"
#include "render.hpp"
#include "webhook_dispatcher.hpp"
#include "webhook_render.hpp"

namespace modelreg::cli {

using nlohmann::json;

json to_json(const Webhook& w) {
  json j;
  j["id"] = w.id;
  j["url"] = w.url;
  j["events"] = w.kinds;
  j["secret_file"] = w.secret_file ? json(w.secret_file->string()) : json(nullptr);
  j["created_at"] = w.created_at;
  j["created_by"] = w.created_by;
  j["removed_at"] = json_or_null(w.removed_at);
  j["removed_by"] = json_or_null(w.removed_by);
  j["delivered_through"] = w.delivered_through;
  return j;
}

json to_json(const Delivery& d) {
  json j;
  j["id"] = d.id;
  j["webhook"] = d.webhook_id;
  j["event"] = d.event_id;
  j["model"] = d.model;
  j["kind"] = d.kind;
  j["attempt"] = d.attempt;
  j["at"] = d.at;
  j["http_status"] = json_or_null(d.http_status);
  j["error"] = d.error;
  j["duration_ms"] = d.duration.count();
  j["outcome"] = std::string(to_string(d.outcome));
  return j;
}

namespace {

Options store_options(const Globals& g, bool create) {
  Options o;
  o.create_if_missing = create && !g.read_only;
  o.read_only = g.read_only;
  if (!g.actor.empty()) o.default_actor = g.actor;
  return o;
}

// "register,promote" -> {"register", "promote"}; empty items are a usage error.
std::vector<std::string> split_kinds(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    if (item.empty()) throw UsageError(fmt::format("--events '{}' has an empty item; give e.g. register,promote", text));
    out.push_back(item);
  }
  if (out.empty() || text.ends_with(',')) {
    throw UsageError(fmt::format("--events '{}' has an empty item; give e.g. register,promote", text));
  }
  return out;
}

std::int64_t parse_id(const std::string& text) {
  std::int64_t id = 0;
  if (text.empty() || text.size() > 18 || text.find_first_not_of("0123456789") != std::string::npos ||
      (id = std::stoll(text)) < 1) {
    throw UsageError(fmt::format("'{}' is not a webhook id (a number from `modelreg webhook list`)", text));
  }
  return id;
}

void print_webhook_line(const Webhook& w) {
  print_text("webhook {}: {} [{}]{}\n", w.id, w.url, fmt::join(w.kinds, ","),
             w.secret_file ? fmt::format(" signed with {}", w.secret_file->string()) : std::string(" unsigned"));
}

struct AddArgs {
  std::string url, events, secret_file;
};

int cmd_webhook_add(const Globals& g, const AddArgs& a) {
  NewWebhook spec;
  spec.url = a.url;
  spec.kinds = split_kinds(a.events);
  if (!a.secret_file.empty()) spec.secret_file = a.secret_file;
  WebhookStore store(g.db, store_options(g, true));
  const Webhook w = store.add_webhook(spec);
  if (g.json) {
    print_json(to_json(w));
  } else {
    print_text("added ");
    print_webhook_line(w);
  }
  return 0;
}

struct ListArgs {
  bool all = false;
};

int cmd_webhook_list(const Globals& g, const ListArgs& a) {
  WebhookStore store(g.db, store_options(g, false));
  const std::vector<Webhook> list = store.webhooks(a.all);
  if (g.json) {
    json out = json::array();
    for (const auto& w : list) out.push_back(to_json(w));
    print_json(out);
    return 0;
  }
  if (list.empty()) {
    print_text("no webhooks (add one with `modelreg webhook add URL --events KINDS`)\n");
    return 0;
  }
  Table t({"ID", "URL", "EVENTS", "SECRET FILE", "DELIVERED THROUGH", "CREATED", "BY", "REMOVED"});
  for (const auto& w : list) {
    t.add({std::to_string(w.id), w.url, fmt::format("{}", fmt::join(w.kinds, ",")),
           w.secret_file ? w.secret_file->string() : "-", std::to_string(w.delivered_through), w.created_at,
           w.created_by, w.removed_at.value_or("-")});
  }
  t.print();
  return 0;
}

int cmd_webhook_remove(const Globals& g, const std::string& id) {
  WebhookStore store(g.db, store_options(g, false));
  const Webhook w = store.remove_webhook(parse_id(id), Change{{}, actor_of(g)});
  if (g.json) {
    print_json(to_json(w));
  } else {
    print_text("removed ");
    print_webhook_line(w);
  }
  return 0;
}

struct DeliveriesArgs {
  std::string id;
  int limit = 50;
};

int cmd_webhook_deliveries(const Globals& g, const DeliveriesArgs& a) {
  if (a.limit < 1) throw UsageError(fmt::format("--limit {} is not a positive number", a.limit));
  std::optional<std::int64_t> id;
  if (!a.id.empty()) id = parse_id(a.id);
  WebhookStore store(g.db, store_options(g, false));
  const std::vector<Delivery> list = store.deliveries(id, static_cast<std::size_t>(a.limit));
  if (g.json) {
    json out = json::array();
    for (const auto& d : list) out.push_back(to_json(d));
    print_json(out);
    return 0;
  }
  if (list.empty()) {
    print_text("no delivery attempts yet\n");
    return 0;
  }
  Table t({"WEBHOOK", "EVENT", "KIND", "MODEL", "ATTEMPT", "AT", "STATUS", "MS", "OUTCOME", "ERROR"});
  for (const auto& d : list) {
    t.add({std::to_string(d.webhook_id), std::to_string(d.event_id), d.kind, d.model, std::to_string(d.attempt), d.at,
           d.http_status ? std::to_string(*d.http_status) : "-", std::to_string(d.duration.count()),
           std::string(to_string(d.outcome)), d.error.empty() ? "-" : d.error});
  }
  t.print();
  return 0;
}

struct RunArgs {
  int poll_ms = 200;
  int connect_timeout_ms = 3'000;
  int read_timeout_ms = 10'000;
  int first_retry_ms = 1'000;
  int max_retry_ms = 300'000;
  int give_up_after_s = 3'600;
};

int cmd_webhook_run(const Globals& g, const RunArgs& a) {
  auto positive = [](const char* option, int value) {
    if (value < 1) throw UsageError(fmt::format("{} {} is not a positive number", option, value));
  };
  positive("--poll-ms", a.poll_ms);
  positive("--connect-timeout-ms", a.connect_timeout_ms);
  positive("--read-timeout-ms", a.read_timeout_ms);
  positive("--first-retry-ms", a.first_retry_ms);
  positive("--max-retry-ms", a.max_retry_ms);
  positive("--give-up-after-s", a.give_up_after_s);
  if (g.read_only) throw UsageError("webhook run records every attempt: it cannot run with --read-only");
  DispatcherOptions o;
  o.poll_interval = std::chrono::milliseconds(a.poll_ms);
  o.connect_timeout = std::chrono::milliseconds(a.connect_timeout_ms);
  o.read_timeout = std::chrono::milliseconds(a.read_timeout_ms);
  o.first_retry = std::chrono::milliseconds(a.first_retry_ms);
  o.max_retry_delay = std::chrono::milliseconds(a.max_retry_ms);
  o.give_up_after = std::chrono::seconds(a.give_up_after_s);
  o.log = [](std::string_view line) {
    print_text(stderr, "{} {}\n", format_utc(std::chrono::system_clock::now()), line);
  };
  // SIGINT and SIGTERM are taken by sigwait below, on this thread: blocked before any thread
  // starts, so every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  int received = 0;
  {
    WebhookDispatcher dispatcher(g.db, store_options(g, false), o);
    std::fprintf(stdout, "delivering the webhooks of %s\n", g.db.c_str());
    std::fflush(stdout);
    while (sigwait(&signals, &received) != 0) {
    }
  }
  print_text(stderr, "stopped ({})\n", received == SIGINT ? "SIGINT" : "SIGTERM");
  return 0;
}

}  // namespace

void add_webhook_command(CLI::App& app, Globals& g) {
  CLI::App* webhook = app.add_subcommand("webhook", "Add, list or remove webhooks; show their deliveries; deliver");
  webhook->require_subcommand(1);
  webhook->footer(
      "Examples:\n  modelreg webhook add https://deploy.example/hook --events promote,rollback --secret-file hook.key\n"
      "  modelreg webhook list\n  modelreg webhook deliveries 1 --limit 20\n  modelreg webhook remove 1");
  {
    auto [cmd, a] = add_command<AddArgs>(
        *webhook, g, "add", "Add a webhook: POST each event of the given kinds to URL",
        "  modelreg keygen hook.key && modelreg webhook add https://deploy.example/hook --events promote,rollback "
        "--secret-file hook.key\n  modelreg webhook add http://127.0.0.1:9000/ --events register,promote,rollback,alias,"
        "archive,delete",
        cmd_webhook_add);
    cmd->add_option("URL", a->url, "http:// or https:// URL, without credentials")->required();
    cmd->add_option("--events", a->events,
                    "Comma-separated kinds: register, promote, rollback, alias, archive, delete")
        ->required();
    cmd->add_option("--secret-file", a->secret_file,
                    "File (mode 600, >= 16 bytes; `modelreg keygen FILE` makes one) whose contents sign each "
                    "delivery: X-Modelreg-Signature: sha256=HMAC-SHA256 hex");
  }
  {
    auto [cmd, a] = add_command<ListArgs>(*webhook, g, "list", "The webhooks and their cursors",
                                          "  modelreg webhook list\n  modelreg --json webhook list --all",
                                          cmd_webhook_list);
    cmd->add_flag("--all", a->all, "Also removed webhooks");
  }
  {
    auto [cmd, id] = add_command<std::string>(*webhook, g, "remove",
                                              "Remove a webhook (no more deliveries; its records stay)",
                                              "  modelreg webhook remove 2", cmd_webhook_remove);
    cmd->add_option("ID", *id, "Webhook id (webhook list)")->required();
  }
  {
    auto [cmd, a] = add_command<DeliveriesArgs>(*webhook, g, "deliveries",
                                                "Delivery attempts, newest first (all webhooks, or one)",
                                                "  modelreg webhook deliveries\n  modelreg --json webhook deliveries 2 "
                                                "--limit 10",
                                                cmd_webhook_deliveries);
    cmd->add_option("ID", a->id, "Webhook id (default: every webhook)");
    cmd->add_option("--limit", a->limit, "At most this many attempts (default: 50)");
  }
  {
    auto [cmd, a] = add_command<RunArgs>(
        *webhook, g, "run",
        "Deliver webhooks in the foreground until SIGINT/SIGTERM (modelreg ui does it too)",
        "  modelreg webhook run\n  modelreg webhook run --first-retry-ms 200 --give-up-after-s 60", cmd_webhook_run);
    cmd->add_option("--poll-ms", a->poll_ms, "How often to look for new events (default: 200)");
    cmd->add_option("--connect-timeout-ms", a->connect_timeout_ms, "Connecting to a receiver (default: 3000)");
    cmd->add_option("--read-timeout-ms", a->read_timeout_ms, "Waiting for a receiver's answer (default: 10000)");
    cmd->add_option("--first-retry-ms", a->first_retry_ms,
                    "Wait before the second attempt; doubles each time (default: 1000)");
    cmd->add_option("--max-retry-ms", a->max_retry_ms, "Longest wait between attempts (default: 300000)");
    cmd->add_option("--give-up-after-s", a->give_up_after_s,
                    "Record an event failed once this long has passed since its first attempt (default: 3600)");
  }
}

}  // namespace modelreg::cli
