// modelreg — the registry from the shell. Every command uses only the public library API.
//
// Exit status: 0 success, 1 error (one line on stderr), 2 usage error. `--json` on every command
// prints the documented JSON (README.md, "JSON output") on stdout instead of text.
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli_support.hpp"
#include "serve.hpp"
#include "modelreg/checksum.hpp"
#include "modelreg/labeled_data.hpp"
#include "modelreg/metrics.hpp"
#include "modelreg/registry.hpp"
#include "modelreg/training.hpp"

namespace modelreg::cli {
namespace {

using nlohmann::json;

struct Globals {
  std::string db;
  bool json = false;
  bool read_only = false;
  std::string actor;
  std::string signing_key_file;  // --signing-key, else $MODELREG_SIGNING_KEY
};

// The signing key named by --signing-key or $MODELREG_SIGNING_KEY, if any.
std::optional<std::string> signing_key_of(const Globals& g) {
  std::string file = g.signing_key_file;
  if (file.empty()) {
    if (const char* env = std::getenv("MODELREG_SIGNING_KEY"); env != nullptr && *env != '\0') file = env;
  }
  if (file.empty()) return std::nullopt;
  return read_signing_key(file);
}

void print_json(const json& j) { fmt::print("{}\n", j.dump(2)); }

std::optional<std::string> actor_of(const Globals& g) {
  return g.actor.empty() ? std::nullopt : std::optional(g.actor);
}

Registry open_registry(const Globals& g, bool create) {
  Options o;
  o.create_if_missing = create && !g.read_only;
  o.read_only = g.read_only;
  if (!g.actor.empty()) o.default_actor = g.actor;
  o.signing_key = signing_key_of(g);
  return Registry(g.db, o);
}

std::string version_line(const ModelVersion& v) {
  return fmt::format("{}{}{}", v.ref_string(), v.label ? " (" + *v.label + ")" : std::string(),
                     v.active ? " [active]" : v.status == VersionStatus::archived ? " [archived]" : "");
}

std::string opt_number(const std::optional<std::int64_t>& n) { return n ? std::to_string(*n) : "-"; }

// ---- lineage rendering ----------------------------------------------------------------------

void render_tree(const std::string& root, const std::vector<LineageEdge>& edges, bool up) {
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> next;  // node -> (neighbour, relation)
  for (const auto& e : edges) {
    if (up) next[e.child.to_string()].emplace_back(e.parent.to_string(), e.relation);
    else next[e.parent.to_string()].emplace_back(e.child.to_string(), e.relation);
  }
  for (auto& [_, list] : next) std::sort(list.begin(), list.end());
  std::set<std::string> shown;
  std::function<void(const std::string&, const std::string&)> walk = [&](const std::string& node,
                                                                          const std::string& prefix) {
    const auto it = next.find(node);
    if (it == next.end()) return;
    for (std::size_t i = 0; i < it->second.size(); ++i) {
      const auto& [other, relation] = it->second[i];
      const bool last = i + 1 == it->second.size();
      const bool repeat = !shown.insert(other).second;
      fmt::print("{}{}{} ({}){}\n", prefix, last ? "└─ " : "├─ ", other, relation, repeat ? " (see above)" : "");
      if (!repeat) walk(other, prefix + (last ? "   " : "│  "));
    }
  };
  fmt::print("{}\n", root);
  walk(root, "");
}

std::string mermaid_id(const std::string& ref) {
  std::string id;
  for (char c : ref) id += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return id;
}

// ---- commands -------------------------------------------------------------------------------

int cmd_init(const Globals& g) {
  Registry reg = open_registry(g, true);
  if (g.json) {
    print_json({{"db", g.db}, {"schema_version", reg.schema_version()}});
  } else {
    fmt::print("{}: modelreg database at schema version {}\n", g.db, reg.schema_version());
  }
  return 0;
}

int cmd_migrate(const Globals& g) {
  Registry reg = open_registry(g, true);
  const int version = reg.schema_version();
  const int supported = Registry::supported_schema_version();
  if (g.json) {
    print_json({{"db", g.db}, {"schema_version", version}, {"supported_schema_version", supported}});
  } else if (version > supported) {
    fmt::print("{}: schema version {} is newer than this modelreg ({}); upgrade modelreg to write to it\n", g.db,
               version, supported);
  } else {
    fmt::print("{}: schema version {} (up to date)\n", g.db, version);
  }
  return 0;
}

struct RegisterArgs {
  std::string name, file, format = "bytes", type, label, notes, features_file;
  std::vector<std::string> metrics, params, features, tags, parents, datasets;
  int level = 3;
};

int cmd_register(const Globals& g, const RegisterArgs& a) {
  NewVersion spec;
  spec.model = a.name;
  spec.format = a.format;
  spec.type_name = a.type;
  spec.notes = a.notes;
  spec.level = a.level;
  if (!a.label.empty()) spec.label = a.label;
  for (const auto& m : a.metrics) {
    auto [k, v] = split_assignment("--metric", m);
    spec.metrics[k] = parse_number(fmt::format("--metric {}", m), v);
  }
  for (const auto& p : a.params) {
    auto [k, v] = split_assignment("--param", p);
    spec.params[k] = v;
  }
  for (const auto& t : a.tags) {
    auto [k, v] = split_assignment("--tag", t);
    spec.tags[k] = v;
  }
  if (!a.features.empty() && !a.features_file.empty()) {
    throw UsageError("give either --feature (repeated) or --features-file, not both");
  }
  for (const auto& f : a.features) spec.features.push_back(parse_feature(f));
  if (!a.features_file.empty()) spec.features = read_features_file(a.features_file);
  for (const auto& p : a.parents) spec.parents.push_back(parse_parent(p));
  for (const auto& d : a.datasets) spec.datasets.push_back(parse_dataset(d));
  if (auto who = actor_of(g)) spec.created_by = who;

  Registry reg = open_registry(g, true);
  ModelVersion v = [&] {
    ProgressBar bar(fmt::format("registering {}", a.name));
    return reg.register_file(spec, a.file, bar.callback());
  }();
  if (g.json) {
    print_json(to_json(v));
  } else {
    fmt::print("registered {}  {} -> {} ({:.2f}x, {} level {})  sha256 {}\n", version_line(v),
               human_bytes(v.blob.raw_size), human_bytes(v.blob.stored_size), v.blob.ratio(), v.blob.codec,
               v.blob.level, v.blob.sha256);
  }
  return 0;
}

struct ListArgs {
  std::string name;
  std::vector<std::string> where;
  std::string tag, order_by;
  bool all = false, ascending = false;
  std::size_t limit = 0;
};

int cmd_list(const Globals& g, const ListArgs& a) {
  VersionQuery q;
  for (const auto& w : a.where) {
    try {
      q.where.push_back(MetricCondition::parse(w));
    } catch (const Error& e) {
      throw UsageError(fmt::format("--where: {}", e.what()));
    }
  }
  if (!a.tag.empty()) {
    const auto eq = a.tag.find('=');
    q.tag = eq == std::string::npos
                ? std::pair<std::string, std::optional<std::string>>{a.tag, std::nullopt}
                : std::pair<std::string, std::optional<std::string>>{a.tag.substr(0, eq), a.tag.substr(eq + 1)};
  }
  if (!a.order_by.empty()) q.order_by_metric = a.order_by;
  q.descending = !a.ascending;
  if (a.limit > 0) q.limit = a.limit;
  if (!a.all) q.status = VersionStatus::ready;
  if (a.name.empty() && (!a.where.empty() || !a.tag.empty() || !a.order_by.empty())) {
    throw UsageError("--where, --tag and --order-by filter the versions of one model: give its NAME");
  }

  Registry reg = open_registry(g, false);
  if (a.name.empty()) {
    const auto models = reg.list_models();
    if (g.json) {
      json out = json::array();
      for (const auto& m : models) out.push_back(to_json(m));
      print_json(out);
      return 0;
    }
    if (models.empty()) {
      fmt::print("no models yet; add one with `modelreg register NAME --file PATH`\n");
      return 0;
    }
    Table t({"MODEL", "VERSIONS", "ACTIVE", "LATEST", "CREATED"});
    for (const auto& m : models) {
      t.add({m.name, std::to_string(m.version_count), opt_number(m.active_version), opt_number(m.latest_version),
             m.created_at});
    }
    t.print();
    return 0;
  }
  const auto versions = reg.list_versions(a.name, q);
  if (g.json) {
    json out = json::array();
    for (const auto& v : versions) out.push_back(to_json(v));
    print_json(out);
    return 0;
  }
  // Metric columns: the ordering metric and the ones in conditions first, then the rest (up to 6).
  std::vector<std::string> metrics;
  auto add_metric = [&](const std::string& m) {
    if (std::find(metrics.begin(), metrics.end(), m) == metrics.end()) metrics.push_back(m);
  };
  if (!a.order_by.empty()) add_metric(a.order_by);
  for (const auto& c : q.where) add_metric(c.metric);
  for (const auto& v : versions) {
    for (const auto& [m, _] : v.metrics) {
      if (metrics.size() < 6) add_metric(m);
    }
  }
  std::vector<std::string> header = {"VERSION", "LABEL", "STATUS"};
  for (const auto& m : metrics) header.push_back(m);
  header.insert(header.end(), {"SIZE", "CREATED", "BY"});
  Table t(header);
  for (const auto& v : versions) {
    std::vector<std::string> row = {fmt::format("{}{}", v.active ? "* " : "  ", v.ref_string()), v.label.value_or("-"),
                                    v.active ? "active" : v.status == VersionStatus::archived ? "archived" : "ready"};
    for (const auto& m : metrics) {
      auto it = v.metrics.find(m);
      row.push_back(it == v.metrics.end() ? "-" : format_number(it->second));
    }
    row.insert(row.end(), {human_bytes(v.blob.stored_size), v.created_at, v.created_by});
    t.add(std::move(row));
  }
  if (t.size() == 0) {
    fmt::print("no versions of '{}' match{}\n", a.name, a.all ? "" : " (archived ones are hidden; add --all)");
    return 0;
  }
  t.print();
  return 0;
}

int cmd_show(const Globals& g, const std::string& ref_text) {
  const ModelRef ref = parse_ref(ref_text);
  Registry reg = open_registry(g, false);
  const ModelVersion v = reg.get(ref);
  std::vector<Event> events;
  for (const auto& e : reg.history(v.id.model)) {
    if (e.version == v.id.number || e.to_version == v.id.number || e.from_version == v.id.number) events.push_back(e);
  }
  const auto children = reg.descendants(ModelRef::number(v.id.model, v.id.number), 1);
  if (g.json) {
    json out = to_json(v);
    json ev = json::array();
    for (const auto& e : events) ev.push_back(to_json(e));
    out["events"] = ev;
    json ch = json::array();
    for (const auto& c : children) ch.push_back({{"ref", c.child.to_string()}, {"relation", c.relation}});
    out["children"] = ch;
    print_json(out);
    return 0;
  }
  fmt::print("{}\n", version_line(v));
  Table meta({"", ""});
  meta.add({"  format", v.format});
  if (!v.type_name.empty()) meta.add({"  type", v.type_name});
  meta.add({"  status", v.active ? "active" : v.status == VersionStatus::archived ? "archived" : "ready"});
  meta.add({"  created", fmt::format("{} by {}", v.created_at, v.created_by)});
  meta.add({"  size", fmt::format("{} raw, {} stored ({:.2f}x, {}{}, {} chunk{})", human_bytes(v.blob.raw_size),
                                  human_bytes(v.blob.stored_size), v.blob.ratio(), v.blob.codec,
                                  v.blob.codec == "zstd" ? fmt::format(" level {}", v.blob.level) : "",
                                  v.blob.chunk_count, v.blob.chunk_count == 1 ? "" : "s")});
  meta.add({"  sha256", v.blob.sha256});
  meta.add({"  signed", v.signature ? fmt::format("{} with key {} at {} by {}", v.signature->algorithm,
                                                  v.signature->key_id, v.signature->signed_at, v.signature->signed_by)
                                    : std::string("no")});
  meta.print();
  if (!v.notes.empty()) fmt::print("notes\n  {}\n", v.notes);
  auto section = [](const char* title, const std::map<std::string, std::string>& kv) {
    if (kv.empty()) return;
    fmt::print("{}\n", title);
    Table t({"", ""});
    for (const auto& [k, val] : kv) t.add({"  " + k, val});
    t.print();
  };
  std::map<std::string, std::string> metrics;
  for (const auto& [k, val] : v.metrics) metrics[k] = format_number(val);
  section("metrics", metrics);
  section("params", v.params);
  if (!v.features.empty()) {
    fmt::print("features ({})\n", v.features.size());
    Table t({"", "", ""});
    for (std::size_t i = 0; i < v.features.size(); ++i) {
      t.add({fmt::format("  {}", i), v.features[i].name, v.features[i].dtype});
    }
    t.print();
  }
  section("tags", v.tags);
  if (!v.datasets.empty()) {
    fmt::print("datasets\n");
    for (const auto& d : v.datasets) {
      fmt::print("  {:<6} {}{}\n", d.role, d.uri, d.sha256 ? "  sha256 " + *d.sha256 : "");
    }
  }
  if (!v.parents.empty() || !children.empty()) {
    fmt::print("lineage\n");
    for (const auto& [p, relation] : v.parents) fmt::print("  {} {}\n", relation, p.to_string());
    for (const auto& c : children) fmt::print("  parent of {} ({})\n", c.child.to_string(), c.relation);
  }
  if (!events.empty()) {
    fmt::print("events\n");
    Table t({"", "", "", "", ""});
    for (const auto& e : events) {
      std::string what = e.kind;
      if (e.kind == "promote" || e.kind == "rollback") {
        what += fmt::format(" {} -> {}", opt_number(e.from_version), opt_number(e.to_version));
      }
      t.add({"  " + e.at, what, "by " + e.actor, e.reason, e.details});
    }
    t.print();
  }
  return 0;
}

int cmd_compare(const Globals& g, const std::string& a_text, const std::string& b_text,
                const std::vector<std::string>& metrics) {
  const ModelRef a = parse_ref(a_text), b = parse_ref(b_text);
  Registry reg = open_registry(g, false);
  const ModelVersion va = reg.get(a), vb = reg.get(b);
  std::vector<MetricComparison> rows;
  if (metrics.empty()) {
    rows = reg.compare(a, b);
  } else {
    for (const auto& m : metrics) {
      auto one = reg.compare(a, b, m);
      rows.insert(rows.end(), one.begin(), one.end());
    }
  }
  if (g.json) {
    json list = json::array();
    for (const auto& c : rows) {
      list.push_back({{"metric", c.metric},
                      {"a", c.a ? json(*c.a) : json(nullptr)},
                      {"b", c.b ? json(*c.b) : json(nullptr)},
                      {"difference", c.difference() ? json(*c.difference()) : json(nullptr)}});
    }
    print_json({{"a", va.ref_string()}, {"b", vb.ref_string()}, {"metrics", list}});
    return 0;
  }
  Table t({"METRIC", va.ref_string(), vb.ref_string(), "DIFFERENCE"});
  for (const auto& c : rows) {
    t.add({c.metric, c.a ? format_number(*c.a) : "-", c.b ? format_number(*c.b) : "-",
           c.difference() ? fmt::format("{:+.6g}", *c.difference()) : "-"});
  }
  t.add({"(stored size)", human_bytes(va.blob.stored_size), human_bytes(vb.blob.stored_size), ""});
  t.add({"(created)", va.created_at, vb.created_at, ""});
  t.print();
  return 0;
}

int print_transition(const Globals& g, const Transition& t, std::string_view verb) {
  if (g.json) {
    print_json(to_json(t));
  } else if (t.from_version && *t.from_version == t.to_version) {
    fmt::print("{}@{} is already the active version\n", t.model, t.to_version);
  } else {
    fmt::print("{} {}: {}@{} is now active (was {})\n", verb, t.model, t.model, t.to_version,
               t.from_version ? fmt::format("{}@{}", t.model, *t.from_version) : "none");
  }
  return 0;
}

int cmd_history(const Globals& g, const std::string& name) {
  Registry reg = open_registry(g, false);
  const auto events = reg.history(name);
  if (g.json) {
    json out = json::array();
    for (const auto& e : events) out.push_back(to_json(e));
    print_json(out);
    return 0;
  }
  Table t({"AT", "EVENT", "VERSION", "FROM", "TO", "ACTOR", "REASON"});
  for (const auto& e : events) {
    t.add({e.at, e.kind, opt_number(e.version), opt_number(e.from_version), opt_number(e.to_version), e.actor,
           e.reason.empty() ? e.details : e.reason});
  }
  t.print();
  return 0;
}

int cmd_lineage(const Globals& g, const std::string& ref_text, bool ancestors_only, bool descendants_only,
                const std::string& format) {
  const ModelRef ref = parse_ref(ref_text);
  Registry reg = open_registry(g, false);
  const std::string root = reg.get(ref).ref_string();
  const bool up = !descendants_only, down = !ancestors_only;
  const auto ancestors = up ? reg.ancestors(ref) : std::vector<LineageEdge>{};
  const auto descendants = down ? reg.descendants(ref) : std::vector<LineageEdge>{};
  if (g.json) {
    json a = json::array(), d = json::array();
    for (const auto& e : ancestors) a.push_back(to_json(e));
    for (const auto& e : descendants) d.push_back(to_json(e));
    json out = {{"ref", root}};
    if (up) out["ancestors"] = a;
    if (down) out["descendants"] = d;
    print_json(out);
    return 0;
  }
  std::vector<LineageEdge> all = ancestors;
  all.insert(all.end(), descendants.begin(), descendants.end());
  if (format == "dot") {
    fmt::print("digraph lineage {{\n  rankdir=BT;\n  \"{}\" [style=bold];\n", root);
    for (const auto& e : all) {
      fmt::print("  \"{}\" -> \"{}\" [label=\"{}\"];\n", e.child.to_string(), e.parent.to_string(), e.relation);
    }
    fmt::print("}}\n");
  } else if (format == "mermaid") {
    fmt::print("graph BT\n  {}[\"{}\"]\n", mermaid_id(root), root);
    for (const auto& e : all) {
      fmt::print("  {}[\"{}\"] -->|{}| {}[\"{}\"]\n", mermaid_id(e.child.to_string()), e.child.to_string(), e.relation,
                 mermaid_id(e.parent.to_string()), e.parent.to_string());
    }
  } else {
    if (up) {
      fmt::print("ancestors{}\n", ancestors.empty() ? ": none" : "");
      if (!ancestors.empty()) render_tree(root, ancestors, true);
    }
    if (down) {
      fmt::print("{}descendants{}\n", up ? "\n" : "", descendants.empty() ? ": none" : "");
      if (!descendants.empty()) render_tree(root, descendants, false);
    }
  }
  return 0;
}

int cmd_get(const Globals& g, const std::string& ref_text, const std::string& output) {
  const ModelRef ref = parse_ref(ref_text);
  Registry reg = open_registry(g, false);
  const ModelVersion v = reg.get(ref);
  const ModelRef exact = ModelRef::number(v.id.model, v.id.number);
  if (output == "-") {
    if (g.json) throw UsageError("--json cannot be combined with -o - (the bytes go to stdout)");
    reg.load_to(exact, std::cout);
    std::cout.flush();
    return 0;
  }
  {
    ProgressBar bar(fmt::format("writing {}", v.ref_string()));
    reg.load_to_file(exact, output, bar.callback());
  }
  if (g.json) {
    print_json({{"ref", v.ref_string()}, {"path", output}, {"bytes", v.blob.raw_size}, {"sha256", v.blob.sha256}});
  } else {
    fmt::print("wrote {} ({}, sha256 verified) to {}\n", v.ref_string(), human_bytes(v.blob.raw_size), output);
  }
  return 0;
}

int cmd_export(const Globals& g, const std::vector<std::string>& refs, const std::string& output) {
  std::vector<ModelRef> parsed;
  for (const auto& r : refs) parsed.push_back(parse_ref(r));
  Registry reg = open_registry(g, false);
  ExportReport report;
  {
    ProgressBar bar("exporting");
    report = reg.export_bundle(parsed, output, bar.callback());
  }
  if (g.json) {
    json v = json::array();
    for (const auto& id : report.versions) v.push_back(id.to_string());
    print_json({{"bundle", output}, {"versions", v}, {"stored_bytes", report.stored_bytes}});
  } else {
    std::vector<std::string> names;
    for (const auto& id : report.versions) names.push_back(id.to_string());
    fmt::print("exported {} version{} ({}) to {}: {}\n", names.size(), names.size() == 1 ? "" : "s",
               human_bytes(report.stored_bytes), output, fmt::join(names, ", "));
  }
  return 0;
}

int cmd_import(const Globals& g, const std::string& bundle) {
  Registry reg = open_registry(g, true);
  ImportReport report;
  {
    ProgressBar bar("verifying and importing");
    report = reg.import_bundle(bundle, bar.callback());
  }
  auto names = [](const std::vector<VersionId>& ids) {
    std::vector<std::string> out;
    for (const auto& id : ids) out.push_back(id.to_string());
    return out;
  };
  if (g.json) {
    print_json({{"imported", names(report.imported)},
                {"already_present", names(report.already_present)},
                {"dropped_lineage", report.dropped_lineage}});
    return 0;
  }
  fmt::print("imported {} version{}{}\n", report.imported.size(), report.imported.size() == 1 ? "" : "s",
             report.imported.empty() ? "" : ": " + fmt::format("{}", fmt::join(names(report.imported), ", ")));
  if (!report.already_present.empty()) {
    fmt::print("already here (skipped): {}\n", fmt::join(names(report.already_present), ", "));
  }
  for (const auto& d : report.dropped_lineage) fmt::print("lineage not kept (parent not here): {}\n", d);
  return 0;
}

int cmd_verify(const Globals& g, const std::string& ref_text) {
  std::optional<ModelRef> only;
  if (!ref_text.empty()) only = parse_ref(ref_text);
  Registry reg = open_registry(g, false);
  IntegrityReport report;
  {
    ProgressBar bar("verifying");
    report = reg.check(only, bar.callback());
  }
  if (g.json) {
    json bad = json::array();
    for (const auto& [id, why] : report.bad_versions) bad.push_back({{"ref", id.to_string()}, {"error", why}});
    print_json({{"ok", report.ok()},
                {"versions_checked", report.versions_checked},
                {"database_problems", report.database_problems},
                {"bad_versions", bad}});
  } else {
    for (const auto& p : report.database_problems) fmt::print("database: {}\n", p);
    for (const auto& [id, why] : report.bad_versions) fmt::print("BAD {}: {}\n", id.to_string(), why);
    fmt::print("{}: {} version{} checked, {} bad, database {}\n", report.ok() ? "ok" : "FAILED",
               report.versions_checked, report.versions_checked == 1 ? "" : "s", report.bad_versions.size(),
               report.database_problems.empty() ? "ok" : "has problems");
  }
  return report.ok() ? 0 : 1;
}

int cmd_gc(const Globals& g, bool dry_run, bool include_history, const std::string& reason) {
  Registry reg = open_registry(g, false);
  GcOptions o;
  o.dry_run = dry_run;
  o.delete_archived = true;
  o.include_rollback_history = include_history;
  o.reason = reason;
  o.actor = actor_of(g);
  const GcReport r = reg.gc(o);
  auto names = [](const std::vector<VersionId>& ids) {
    std::vector<std::string> out;
    for (const auto& id : ids) out.push_back(id.to_string());
    return out;
  };
  if (g.json) {
    print_json({{"dry_run", r.dry_run},
                {"versions_deleted", names(r.versions_deleted)},
                {"versions_kept", names(r.versions_kept)},
                {"blobs_removed", r.blobs_removed},
                {"chunks_removed", r.chunks_removed},
                {"bytes_freed", r.bytes_freed}});
    return 0;
  }
  const char* would = r.dry_run ? "would delete" : "deleted";
  fmt::print("{} {} archived version{}{}\n", would, r.versions_deleted.size(), r.versions_deleted.size() == 1 ? "" : "s",
             r.versions_deleted.empty() ? "" : ": " + fmt::format("{}", fmt::join(names(r.versions_deleted), ", ")));
  if (!r.versions_kept.empty()) {
    fmt::print("kept (lineage parent or in the rollback history; --include-history to drop the latter): {}\n",
               fmt::join(names(r.versions_kept), ", "));
  }
  fmt::print("{} {} blob{}, {} stored\n", r.dry_run ? "would free" : "freed", r.blobs_removed,
             r.blobs_removed == 1 ? "" : "s", human_bytes(r.bytes_freed));
  return 0;
}

std::string csv_cell(const SqlValue& v) {
  std::string text;
  if (std::holds_alternative<std::int64_t>(v)) text = std::to_string(std::get<std::int64_t>(v));
  else if (std::holds_alternative<double>(v)) text = format_number(std::get<double>(v));
  else if (std::holds_alternative<std::string>(v)) text = std::get<std::string>(v);
  else if (std::holds_alternative<SqlBlob>(v)) text = fmt::format("<blob {} bytes>", std::get<SqlBlob>(v).size);
  return text;
}

std::string csv_quote(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

int cmd_sql(const Globals& g, const std::string& sql, bool csv) {
  Registry reg = open_registry(g, false);
  const SqlResult r = reg.query(sql);
  if (g.json) {
    json out = json::array();
    for (const auto& row : r.rows) {
      json obj = json::object();
      for (std::size_t i = 0; i < row.size(); ++i) obj[r.columns[i]] = to_json(row[i]);
      out.push_back(obj);
    }
    print_json(out);
  } else if (csv) {
    std::vector<std::string> header;
    for (const auto& c : r.columns) header.push_back(csv_quote(c));
    fmt::print("{}\n", fmt::join(header, ","));
    for (const auto& row : r.rows) {
      std::vector<std::string> cells;
      for (const auto& v : row) cells.push_back(std::holds_alternative<std::monostate>(v) ? "" : csv_quote(csv_cell(v)));
      fmt::print("{}\n", fmt::join(cells, ","));
    }
  } else {
    Table t(r.columns);
    for (const auto& row : r.rows) {
      std::vector<std::string> cells;
      for (const auto& v : row) cells.push_back(std::holds_alternative<std::monostate>(v) ? "NULL" : csv_cell(v));
      t.add(std::move(cells));
    }
    t.print();
  }
  return 0;
}

struct TrainArgs {
  std::string name, csv, target, type, test_csv, label, notes;
  std::vector<std::string> params, parents;
  double test_fraction = 0.2;
  std::optional<std::uint64_t> seed;
};

int cmd_train(const Globals& g, const TrainArgs& a) {
  std::map<std::string, std::string> params;
  for (const auto& p : a.params) {
    auto [k, v] = split_assignment("--param", p);
    params[k] = v;
  }
  if (a.seed) params["seed"] = std::to_string(*a.seed);
  if (!(a.test_fraction > 0 && a.test_fraction < 1)) {
    throw UsageError(fmt::format("--test-fraction {} must be between 0 and 1 (exclusive)", a.test_fraction));
  }
  NewVersion spec;
  spec.model = a.name;
  if (!a.label.empty()) spec.label = a.label;
  spec.notes = a.notes;
  for (const auto& p : a.parents) spec.parents.push_back(parse_parent(p));
  if (auto who = actor_of(g)) spec.created_by = who;
  spec.tags["target"] = a.target;

  const LabeledData data = read_csv(a.csv, CsvReadOptions{a.target, true});
  TrainTestSplit split;
  if (!a.test_csv.empty()) {
    split.train = data;
    split.test = read_csv(a.test_csv, CsvReadOptions{a.target, true});
    if (split.test.feature_names != data.feature_names) {
      throw Error(Errc::invalid_argument, fmt::format("'{}' and '{}' have different feature columns; they must match "
                                                      "in name and order",
                                                      a.test_csv, a.csv));
    }
  } else {
    split = stratified_split(data, a.test_fraction, a.seed.value_or(0));
  }
  const auto started = std::chrono::steady_clock::now();
  const std::unique_ptr<Model> model = train_model(a.type, split.train, params);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const BinaryMetrics m = evaluate(*model, split.test);

  spec.metrics = m.to_map();
  spec.metrics["train_seconds"] = seconds;
  spec.metrics["train_rows"] = static_cast<double>(split.train.rows());
  spec.metrics["test_rows"] = static_cast<double>(split.test.rows());
  for (const auto& f : data.feature_names) spec.features.push_back({f, "float64"});
  spec.datasets.push_back({std::filesystem::absolute(a.csv).string(), sha256_file(a.csv), "train"});
  if (!a.test_csv.empty()) {
    spec.datasets.push_back({std::filesystem::absolute(a.test_csv).string(), sha256_file(a.test_csv), "test"});
  }
  Registry reg = open_registry(g, true);
  const ModelVersion v = reg.save_model(*model, spec, split.test.x);
  if (g.json) {
    print_json(to_json(v));
    return 0;
  }
  fmt::print("trained {} on {} rows in {:.2f} s; on {} test rows: accuracy {:.4f}  precision {:.4f}  recall {:.4f}  "
             "f1 {:.4f}  auc {:.4f}\n",
             a.type, split.train.rows(), seconds, split.test.rows(), m.accuracy, m.precision, m.recall, m.f1,
             m.roc_auc);
  fmt::print("registered {}  {} -> {} ({:.2f}x)\n", version_line(v), human_bytes(v.blob.raw_size),
             human_bytes(v.blob.stored_size), v.blob.ratio());
  return 0;
}

int cmd_predict(const Globals& g, const std::string& ref_text, const std::string& csv, const std::string& output,
                const std::string& target_option) {
  const ModelRef ref = parse_ref(ref_text);
  Registry reg = open_registry(g, false);
  const LoadedModel loaded = reg.load_model(ref);
  const ModelVersion& v = loaded.version;
  // Every column is read; the registered features are picked by name, in the registered order.
  const LabeledData table = read_csv(csv, CsvReadOptions{"", false});
  std::string target = target_option;
  if (target.empty()) {
    if (auto it = v.tags.find("target"); it != v.tags.end()) target = it->second;
  }
  std::map<std::string, std::size_t> column;
  for (std::size_t i = 0; i < table.feature_names.size(); ++i) column[table.feature_names[i]] = i;
  std::vector<std::size_t> pick;
  for (const auto& f : v.features) {
    auto it = column.find(f.name);
    if (it == column.end()) {
      throw Error(Errc::invalid_argument, fmt::format("'{}' has no column '{}', a feature of {} ({} features expected)",
                                                      csv, f.name, v.ref_string(), v.features.size()));
    }
    pick.push_back(it->second);
  }
  for (const auto& name : table.feature_names) {
    const bool is_feature = std::any_of(v.features.begin(), v.features.end(), [&](const Feature& f) { return f.name == name; });
    if (!is_feature && name != target) {
      throw Error(Errc::invalid_argument,
                  fmt::format("'{}' has a column '{}' that is not a feature of {}{}; remove it", csv, name,
                              v.ref_string(), target.empty() ? "" : fmt::format(" (nor its target '{}')", target)));
    }
  }
  Matrix x(table.rows(), pick.size());
  for (std::size_t r = 0; r < table.rows(); ++r) {
    for (std::size_t c = 0; c < pick.size(); ++c) x(r, c) = table.x(r, pick[c]);
  }
  const std::vector<double> proba = loaded.model->predict_proba(x);
  const std::vector<int> labels = loaded.model->predict(x);
  std::string text;
  if (g.json) {
    text = json{{"ref", v.ref_string()}, {"probabilities", proba}, {"labels", labels}}.dump(2) + "\n";
  } else {
    text = "probability,label\n";
    for (std::size_t i = 0; i < proba.size(); ++i) text += fmt::format("{},{}\n", proba[i], labels[i]);
  }
  if (output.empty() || output == "-") {
    fmt::print("{}", text);
  } else {
    const std::string tmp = output + ".modelreg-partial";
    {
      std::ofstream out(tmp, std::ios::binary);
      out << text;
      if (!out.flush()) throw Error(Errc::io_error, fmt::format("cannot write '{}'", output));
    }
    std::filesystem::rename(tmp, output);
    fmt::print(stderr, "wrote {} predictions of {} to {}\n", proba.size(), v.ref_string(), output);
  }
  return 0;
}

// ---- wiring ---------------------------------------------------------------------------------

std::string default_db() {
  if (const char* env = std::getenv("MODELREG_DB"); env != nullptr && *env != '\0') return env;
  return "modelreg.db";
}

int run(int argc, char** argv) {
  CLI::App app{"modelreg — an embedded, SQLite-backed registry for machine-learning models"};
  app.set_version_flag("--version", "modelreg 0.1.0");
  app.require_subcommand(1);
  app.fallthrough();
  app.footer(
      "Database: --db PATH, else $MODELREG_DB, else ./modelreg.db. REF: NAME (active), NAME@active, NAME@7, "
      "NAME@v1.2.0, NAME@latest.\nExit status: 0 ok, 1 error, 2 usage error. Run `modelreg COMMAND --help` for "
      "examples.");
  Globals g;
  g.db = default_db();
  app.add_option("--db", g.db, "Database file (default: $MODELREG_DB, else ./modelreg.db)");
  app.add_flag("--json", g.json, "Print JSON on stdout instead of text");
  app.add_flag("--read-only", g.read_only, "Open the database read-only (every write is refused)");
  app.add_option("--actor", g.actor, "Who acts, for the audit log (default: the OS user)");
  app.add_option("--signing-key", g.signing_key_file,
                 "Key file (default: $MODELREG_SIGNING_KEY): sign what is registered; refuse to promote, load or "
                 "serve unsigned or wrongly signed versions");

  std::function<int()> action;
  auto examples = [](CLI::App* sub, std::string text) { sub->footer("Examples:\n" + text); };

  auto* init = app.add_subcommand("init", "Create the database (idempotent) at the newest schema");
  examples(init, "  modelreg --db models.db init");
  init->callback([&] { action = [&] { return cmd_init(g); }; });

  auto* migrate = app.add_subcommand("migrate", "Apply pending migrations and print the schema version");
  examples(migrate, "  modelreg migrate");
  migrate->callback([&] { action = [&] { return cmd_migrate(g); }; });

  RegisterArgs reg_args;
  auto* reg = app.add_subcommand("register", "Register a file as a new version of a model");
  reg->add_option("NAME", reg_args.name, "Model name ([A-Za-z0-9][A-Za-z0-9_.-]*)")->required();
  reg->add_option("--file,-f", reg_args.file, "The model's bytes")->required();
  reg->add_option("--format", reg_args.format, "Format string, e.g. onnx (default: bytes)");
  reg->add_option("--type", reg_args.type, "Type name, e.g. RandomForest");
  reg->add_option("--metric", reg_args.metrics, "Metric NAME=NUMBER (repeatable)");
  reg->add_option("--param", reg_args.params, "Hyperparameter NAME=VALUE (repeatable)");
  reg->add_option("--feature", reg_args.features, "Input feature NAME[:DTYPE], in order (repeatable)");
  reg->add_option("--features-file", reg_args.features_file,
                  "File with one NAME[:DTYPE] per line, or a CSV header line");
  reg->add_option("--tag", reg_args.tags, "Tag KEY=VALUE (repeatable)");
  reg->add_option("--label", reg_args.label, "Label unique within the model, e.g. v1.2.0");
  reg->add_option("--notes", reg_args.notes, "Free text");
  reg->add_option("--parent", reg_args.parents, "Lineage REF[:RELATION], e.g. fraud@3:retrained_from (repeatable)");
  reg->add_option("--dataset", reg_args.datasets,
                  "Data set URI[:ROLE] (role default train; local files get their SHA-256) (repeatable)");
  reg->add_option("--level", reg_args.level, "zstd level 0-19 (0 stores raw; default 3)");
  examples(reg,
           "  modelreg register fraud --file fraud.onnx --format onnx --metric f1=0.86 --metric auc=0.93 \\\n"
           "      --feature amount --feature hour:int32 --label v1.1.0 --parent fraud@1:retrained_from \\\n"
           "      --dataset s3://data/fraud-2026-10.csv:train --notes 'October retrain'");
  reg->callback([&] { action = [&] { return cmd_register(g, reg_args); }; });

  ListArgs list_args;
  auto* list = app.add_subcommand("list", "List models, or the versions of one model");
  list->add_option("NAME", list_args.name, "Model whose versions to list");
  list->add_option("--where", list_args.where, "Metric condition, e.g. \"f1>=0.8\" (repeatable; all must hold)");
  list->add_option("--tag", list_args.tag, "Only versions with tag KEY or KEY=VALUE");
  list->add_option("--order-by", list_args.order_by, "Order by a metric, best (highest) first");
  list->add_flag("--ascending", list_args.ascending, "With --order-by: lowest first");
  list->add_option("--limit", list_args.limit, "At most N versions");
  list->add_flag("--all", list_args.all, "Include archived versions");
  examples(list, "  modelreg list\n  modelreg list fraud --where 'f1>=0.8' --order-by f1\n  modelreg list fraud --all --json");
  list->callback([&] { action = [&] { return cmd_list(g, list_args); }; });

  std::string show_ref;
  auto* show = app.add_subcommand("show", "Everything about one version");
  show->add_option("REF", show_ref, "Version, e.g. fraud@3")->required();
  examples(show, "  modelreg show fraud@3\n  modelreg show fraud --json     # the active version");
  show->callback([&] { action = [&] { return cmd_show(g, show_ref); }; });

  std::string cmp_a, cmp_b;
  std::vector<std::string> cmp_metrics;
  auto* compare = app.add_subcommand("compare", "Two versions side by side, with metric differences");
  compare->add_option("A", cmp_a, "First version")->required();
  compare->add_option("B", cmp_b, "Second version")->required();
  compare->add_option("--metric", cmp_metrics, "Only these metrics (repeatable)");
  examples(compare, "  modelreg compare fraud@2 fraud@3\n  modelreg compare fraud@active fraud@latest --metric f1");
  compare->callback([&] { action = [&] { return cmd_compare(g, cmp_a, cmp_b, cmp_metrics); }; });

  std::string promote_ref, promote_reason, require_better;
  auto* promote = app.add_subcommand("promote", "Make a version the model's active version");
  promote->add_option("REF", promote_ref, "Version to activate")->required();
  promote->add_option("--reason", promote_reason, "Why (recorded in the audit log)");
  promote->add_option("--require-better", require_better,
                      "Refuse unless this metric is at least the active version's");
  examples(promote, "  modelreg promote fraud@7 --reason 'better recall'\n  modelreg promote fraud@v1.3.0 --require-better f1");
  promote->callback([&] {
    action = [&] {
      const ModelRef ref = parse_ref(promote_ref);
      Registry r = open_registry(g, false);
      PromoteOptions o{promote_reason, actor_of(g), std::nullopt};
      if (!require_better.empty()) o.require_better = require_better;
      return print_transition(g, r.promote(ref, o), "promoted");
    };
  });

  std::string rb_name, rb_to, rb_reason;
  auto* rollback = app.add_subcommand("rollback", "Re-activate the previously active version (or --to one)");
  rollback->add_option("NAME", rb_name, "Model")->required();
  rollback->add_option("--to", rb_to, "Roll back to this version instead");
  rollback->add_option("--reason", rb_reason, "Why (recorded in the audit log)");
  examples(rollback, "  modelreg rollback fraud --reason 'false positives'\n  modelreg rollback fraud --to fraud@4");
  rollback->callback([&] {
    action = [&] {
      if (!is_valid_model_name(rb_name)) throw UsageError(fmt::format("'{}' is not a valid model name", rb_name));
      RollbackOptions o{rb_reason, actor_of(g), std::nullopt};
      if (!rb_to.empty()) o.to = parse_ref(rb_to);
      Registry r = open_registry(g, false);
      return print_transition(g, r.rollback(rb_name, o), "rolled back");
    };
  });

  struct SimpleChange {
    std::string ref, reason;
  };
  auto add_change = [&](const char* name, const char* help, const char* done, auto call) {
    auto* sub = app.add_subcommand(name, help);
    auto args = std::make_shared<SimpleChange>();
    sub->add_option("REF", args->ref, "Version")->required();
    sub->add_option("--reason", args->reason, "Why (recorded in the audit log)");
    examples(sub, fmt::format("  modelreg {} fraud@3 --reason 'superseded'", name));
    sub->callback([&, args, done, call] {
      action = [&, args, done, call] {
        const ModelRef ref = parse_ref(args->ref);
        Registry r = open_registry(g, false);
        const std::string exact = r.get(ref).ref_string();
        call(r, ref, Change{args->reason, actor_of(g)});
        if (g.json) print_json({{"ref", exact}, {"done", done}});
        else fmt::print("{} {}\n", done, exact);
        return 0;
      };
    });
  };
  add_change("archive", "Archive a version (it can no longer be promoted)", "archived",
             [](Registry& r, const ModelRef& ref, const Change& c) { r.archive(ref, c); });
  add_change("unarchive", "Make an archived version ready again", "unarchived",
             [](Registry& r, const ModelRef& ref, const Change& c) { r.unarchive(ref, c); });
  add_change("delete", "Delete an archived version (permanent; its number is never reused)", "deleted",
             [](Registry& r, const ModelRef& ref, const Change& c) { r.delete_version(ref, c); });

  std::string tag_ref;
  std::vector<std::string> tag_values;
  bool tag_remove = false;
  auto* tag = app.add_subcommand("tag", "Set (KEY=VALUE) or remove (--remove KEY) tags of a version");
  tag->add_option("REF", tag_ref, "Version")->required();
  tag->add_option("TAGS", tag_values, "KEY=VALUE, or KEY with --remove")->required();
  tag->add_flag("--remove", tag_remove, "Remove the named tags");
  examples(tag, "  modelreg tag fraud@3 stage=canary owner=risk\n  modelreg tag fraud@3 --remove stage");
  tag->callback([&] {
    action = [&] {
      const ModelRef ref = parse_ref(tag_ref);
      std::vector<std::pair<std::string, std::string>> parsed;
      for (const auto& t : tag_values) parsed.push_back(tag_remove ? std::pair{t, std::string()} : split_assignment("tag", t));
      Registry r = open_registry(g, false);
      for (const auto& [k, v] : parsed) {
        if (tag_remove) r.remove_tag(ref, k, Change{"", actor_of(g)});
        else r.set_tag(ref, k, v, Change{"", actor_of(g)});
      }
      const ModelVersion v = r.get(ref);
      if (g.json) print_json({{"ref", v.ref_string()}, {"tags", v.tags}});
      else fmt::print("{} tags: {}\n", v.ref_string(), v.tags.empty() ? "none" : fmt::format("{}", fmt::join([&] {
        std::vector<std::string> kv;
        for (const auto& [k, val] : v.tags) kv.push_back(k + "=" + val);
        return kv;
      }(), " ")));
      return 0;
    };
  });

  std::string history_name;
  auto* history = app.add_subcommand("history", "The audit log of a model");
  history->add_option("NAME", history_name, "Model")->required();
  examples(history, "  modelreg history fraud\n  modelreg history fraud --json");
  history->callback([&] { action = [&] { return cmd_history(g, history_name); }; });

  std::string lineage_ref, lineage_format = "tree";
  bool lineage_up = false, lineage_down = false;
  auto* lineage = app.add_subcommand("lineage", "Ancestors and descendants of a version");
  lineage->add_option("REF", lineage_ref, "Version")->required();
  auto* up_flag = lineage->add_flag("--ancestors", lineage_up, "Only ancestors");
  lineage->add_flag("--descendants", lineage_down, "Only descendants")->excludes(up_flag);
  lineage->add_option("--format", lineage_format, "tree (default), dot or mermaid")
      ->check(CLI::IsMember({"tree", "dot", "mermaid"}));
  examples(lineage, "  modelreg lineage fraud@7\n  modelreg lineage fraud@7 --ancestors --format dot | dot -Tpng > lineage.png");
  lineage->callback([&] { action = [&] { return cmd_lineage(g, lineage_ref, lineage_up, lineage_down, lineage_format); }; });

  std::string get_ref, get_out;
  auto* get = app.add_subcommand("get", "Write a version's bytes to a file (checksum verified)");
  get->add_option("REF", get_ref, "Version")->required();
  get->add_option("-o,--output", get_out, "Output file, or - for stdout")->required();
  examples(get, "  modelreg get fraud -o fraud.onnx          # the active version\n  modelreg get fraud@3 -o - | sha256sum");
  get->callback([&] { action = [&] { return cmd_get(g, get_ref, get_out); }; });

  std::vector<std::string> export_refs;
  std::string export_out;
  auto* exp = app.add_subcommand("export", "Write versions with metadata, lineage and bytes into one bundle file");
  exp->add_option("REFS", export_refs, "Versions")->required();
  exp->add_option("-o,--output", export_out, "Bundle file to create")->required();
  examples(exp, "  modelreg export fraud@3 fraud@4 -o fraud.bundle");
  exp->callback([&] { action = [&] { return cmd_export(g, export_refs, export_out); }; });

  std::string import_path;
  auto* imp = app.add_subcommand("import", "Import a bundle (all or nothing, every checksum verified)");
  imp->add_option("BUNDLE", import_path, "Bundle file")->required();
  examples(imp, "  modelreg --db prod.db import fraud.bundle");
  imp->callback([&] { action = [&] { return cmd_import(g, import_path); }; });

  std::string verify_ref;
  auto* verify = app.add_subcommand("verify", "Check the database and every (or one) version's checksums");
  verify->add_option("REF", verify_ref, "Only this version");
  examples(verify, "  modelreg verify\n  modelreg verify fraud@3");
  verify->callback([&] { action = [&] { return cmd_verify(g, verify_ref); }; });

  bool gc_dry = false, gc_history = false;
  std::string gc_reason;
  auto* gc = app.add_subcommand("gc", "Delete archived versions and unreferenced blobs, reclaim space");
  gc->add_flag("--dry-run", gc_dry, "Only report what would be removed");
  gc->add_flag("--include-history", gc_history,
               "Also delete archived versions that the rollback history still names");
  gc->add_option("--reason", gc_reason, "Recorded with each deletion");
  examples(gc, "  modelreg gc --dry-run\n  modelreg gc");
  gc->callback([&] { action = [&] { return cmd_gc(g, gc_dry, gc_history, gc_reason); }; });

  TrainArgs train_args;
  auto* train = app.add_subcommand("train", "Train a built-in model on a CSV file and register it");
  train->add_option("NAME", train_args.name, "Model name")->required();
  train->add_option("--csv", train_args.csv, "Training data: a header row, numeric cells")->required();
  train->add_option("--target", train_args.target, "The 0/1 label column")->required();
  train->add_option("--type", train_args.type, "Model type")
      ->required()
      ->check(CLI::IsMember(built_in_model_types()));
  train->add_option("--param", train_args.params, "Hyperparameter NAME=VALUE (repeatable)");
  auto* test_csv = train->add_option("--test-csv", train_args.test_csv, "Held-out rows to measure on");
  train->add_option("--test-fraction", train_args.test_fraction, "Else hold out this stratified fraction (default 0.2)")
      ->excludes(test_csv);
  train->add_option("--seed", train_args.seed, "Seed for the split and the model");
  train->add_option("--label", train_args.label, "Version label, e.g. v1.0.0");
  train->add_option("--notes", train_args.notes, "Free text");
  train->add_option("--parent", train_args.parents, "Lineage REF[:RELATION] (repeatable)");
  examples(train,
           "  modelreg train fraud --csv transactions.csv --target is_fraud --type random_forest \\\n"
           "      --param n_estimators=100 --seed 42 --label v1.1.0 --parent fraud@1:retrained_from");
  train->callback([&] { action = [&] { return cmd_train(g, train_args); }; });

  std::string predict_ref, predict_csv, predict_out, predict_target;
  auto* predict = app.add_subcommand("predict", "Score a CSV file with a version (loaded and validated)");
  predict->add_option("REF", predict_ref, "Version (default: the active one)")->required();
  predict->add_option("--csv", predict_csv, "Rows to score; columns by name, the target column is ignored")->required();
  predict->add_option("-o,--output", predict_out, "Write here instead of stdout");
  predict->add_option("--target", predict_target, "Label column to ignore (default: the one recorded by train)");
  examples(predict, "  modelreg predict fraud --csv new.csv -o scores.csv\n  modelreg predict fraud@3 --csv new.csv --json");
  predict->callback([&] { action = [&] { return cmd_predict(g, predict_ref, predict_csv, predict_out, predict_target); }; });

  ServeArgs serve_args;
  auto* serve = app.add_subcommand("serve", "Serve the model's active version over HTTP, hot-swapping on promotion");
  serve->add_option("NAME", serve_args.model, "Model to serve")->required();
  serve->add_option("--host", serve_args.host, "Address to bind (default 127.0.0.1)");
  serve->add_option("--port", serve_args.port, "Port (default 8080; 0 picks a free one and prints it)");
  serve->add_option("--poll-ms", serve_args.poll_ms, "How often to look for a new active version (default 100)");
  serve->add_option("--threads", serve_args.threads, "HTTP worker threads; each open connection holds one (default 8 per core, at least 64)");
  serve->add_option("--max-body-bytes", serve_args.max_body_bytes, "Largest request body (default 8 MiB)");
  examples(serve,
           "  modelreg serve fraud --port 8080\n"
           "  curl -s localhost:8080/predict -d '{\"instances\": [[0.1, 2.3, ...]]}'\n"
           "  curl -s localhost:8080/status");
  serve->callback([&] {
    action = [&] {
      serve_args.db = g.db;
      serve_args.signing_key = signing_key_of(g);
      if (!is_valid_model_name(serve_args.model)) {
        throw UsageError(fmt::format("'{}' is not a valid model name", serve_args.model));
      }
      return run_serve(serve_args);
    };
  });

  std::string sign_ref;
  auto* sign = app.add_subcommand("sign", "Sign an unsigned version (imported, or registered without a key)");
  sign->add_option("REF", sign_ref, "Version to sign")->required();
  examples(sign, "  modelreg sign fraud@7 --signing-key /etc/modelreg/key");
  sign->callback([&] {
    action = [&] {
      if (signing_key_of(g) == std::nullopt) {
        throw UsageError("sign needs a key: pass --signing-key FILE or set MODELREG_SIGNING_KEY");
      }
      Registry r = open_registry(g, false);
      const ModelVersion v = r.sign(parse_ref(sign_ref), Change{"", actor_of(g)});
      if (g.json) {
        print_json(to_json(v));
      } else {
        fmt::print("{} signed with key {}\n", v.ref_string(), v.signature->key_id);
      }
      return 0;
    };
  });

  std::string keygen_file;
  auto* keygen = app.add_subcommand("keygen", "Create a new random signing key file (mode 0600, never overwritten)");
  keygen->add_option("FILE", keygen_file, "Where to write the key")->required();
  examples(keygen, "  modelreg keygen /etc/modelreg/key\n  export MODELREG_SIGNING_KEY=/etc/modelreg/key");
  keygen->callback([&] {
    action = [&] {
      const std::string key = create_signing_key(keygen_file);
      if (g.json) {
        print_json(json{{"file", keygen_file}, {"key_id", signing_key_id(key)}});
      } else {
        fmt::print("wrote a new signing key to {} (key id {}); keep it secret\n", keygen_file, signing_key_id(key));
      }
      return 0;
    };
  });

  std::string sql_text;
  bool sql_csv = false;
  auto* sql = app.add_subcommand("sql", "Run read-only SQL (see the README for the views)");
  sql->add_option("SQL", sql_text, "SELECT statement(s)")->required();
  sql->add_flag("--csv", sql_csv, "CSV output");
  examples(sql, "  modelreg sql \"SELECT model, version, value FROM version_metrics WHERE metric = 'f1'\" --csv");
  sql->callback([&] { action = [&] { return cmd_sql(g, sql_text, sql_csv); }; });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  try {
    return action ? action() : 2;
  } catch (const UsageError& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  } catch (const Error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
}

}  // namespace
}  // namespace modelreg::cli

int main(int argc, char** argv) { return modelreg::cli::run(argc, argv); }
