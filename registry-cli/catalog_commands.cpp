// The commands that read the registry: list, show, compare, history, lineage, sql.
#include <algorithm>
#include <map>
#include <string_view>
#include <string>
#include <variant>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "arguments.hpp"
#include "commands.hpp"
#include "render.hpp"

namespace modelreg::cli {
namespace {

using nlohmann::json;

struct ListArgs {
  std::string name;
  std::vector<std::string> where;
  std::string tag, order_by;
  bool all = false, ascending = false, newest_first = false;
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
  q.newest_first = a.newest_first;
  if (a.limit > 0) q.limit = a.limit;
  if (!a.all) q.status = VersionStatus::ready;
  if (a.name.empty() && (!a.where.empty() || !a.tag.empty() || !a.order_by.empty() || a.newest_first)) {
    throw UsageError("--where, --tag, --order-by and --newest-first list the versions of one model: give its NAME");
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
      print_text("no models yet; add one with `modelreg register NAME --file PATH`\n");
      return 0;
    }
    Table t({"MODEL", "VERSIONS", "ACTIVE", "LATEST", "CREATED"});
    for (const auto& m : models) {
      t.add({m.name, std::to_string(m.version_count), number_or_dash(m.active_version), number_or_dash(m.latest_version),
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
  std::vector<std::string> header = {"VERSION", "LABEL", "ALIASES", "STATUS"};
  for (const auto& m : metrics) header.push_back(m);
  header.insert(header.end(), {"SIZE", "CREATED", "BY"});
  Table t(header);
  for (const auto& v : versions) {
    std::vector<std::string> row = {fmt::format("{}{}", v.active ? "* " : "  ", v.ref_string()), v.label.value_or("-"),
                                    v.aliases.empty() ? "-" : fmt::format("{}", fmt::join(v.aliases, ",")),
                                    status_word(v)};
    for (const auto& m : metrics) {
      auto it = v.metrics.find(m);
      row.push_back(it == v.metrics.end() ? "-" : format_number(it->second));
    }
    row.insert(row.end(), {human_bytes(v.blob.stored_size), v.created_at, v.created_by});
    t.add(std::move(row));
  }
  if (t.size() == 0) {
    print_text("no versions of '{}' match{}\n", a.name, a.all ? "" : " (archived ones are hidden; add --all)");
    return 0;
  }
  t.print();
  return 0;
}

int cmd_show(const Globals& g, const std::string& ref_text) {
  const ModelRef ref = parse_ref(ref_text);
  Registry reg = open_registry(g, false);
  const ModelVersion v = reg.get(ref);
  const std::vector<Event> events = version_events(reg, v);
  const auto children = reg.descendants(ModelRef::number(v.id.model, v.id.number), 1);
  if (g.json) {
    print_json(show_json(v, events, children));
    return 0;
  }
  print_text("{}\n", version_line(v));
  Table meta({"", ""});
  meta.add({"  format", v.format});
  if (!v.type_name.empty()) meta.add({"  type", v.type_name});
  if (v.task) {
    meta.add({"  task", v.task->task == Task::regression
                            ? std::string("regression")
                            : fmt::format("{} ({} classes: {})", to_string(v.task->task), v.task->classes.size(),
                                          fmt::join(v.task->classes.texts(), ", "))});
  }
  meta.add({"  status", status_word(v)});
  if (!v.aliases.empty()) meta.add({"  aliases", fmt::format("{}", fmt::join(v.aliases, ", "))});
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
  if (!v.notes.empty()) {
    print_text("notes\n");
    for (std::size_t start = 0; start <= v.notes.size();) {  // each line of the notes indented
      const std::size_t end = std::min(v.notes.find('\n', start), v.notes.size());
      print_text("  {}\n", std::string_view(v.notes).substr(start, end - start));
      start = end + 1;
    }
  }
  auto section = [](const char* title, const std::map<std::string, std::string>& kv) {
    if (kv.empty()) return;
    print_text("{}\n", title);
    Table t({"", ""});
    for (const auto& [k, val] : kv) t.add({"  " + k, val});
    t.print();
  };
  std::map<std::string, std::string> metrics;
  for (const auto& [k, val] : v.metrics) metrics[k] = format_number(val);
  section("metrics", metrics);
  section("params", v.params);
  if (!v.features.empty()) {
    print_text("features ({})\n", v.features.size());
    Table t({"", "", ""});
    for (std::size_t i = 0; i < v.features.size(); ++i) {
      t.add({fmt::format("  {}", i), v.features[i].name, v.features[i].dtype});
    }
    t.print();
  }
  section("tags", v.tags);
  if (!v.datasets.empty()) {
    print_text("datasets\n");
    for (const auto& d : v.datasets) {
      print_text("  {:<6} {}{}\n", d.role, d.uri, d.sha256 ? "  sha256 " + *d.sha256 : "");
    }
  }
  if (!v.parents.empty() || !children.empty()) {
    print_text("lineage\n");
    for (const auto& [p, relation] : v.parents) print_text("  {} {}\n", relation, p.to_string());
    for (const auto& c : children) print_text("  parent of {} ({})\n", c.child.to_string(), c.relation);
  }
  if (!events.empty()) {
    print_text("events\n");
    Table t({"", "", "", "", ""});
    for (const auto& e : events) {
      std::string what(to_string(e.kind));
      if (e.alias) {
        if (*e.alias != "active") what += " " + *e.alias;
        what += fmt::format(" {} -> {}", number_or_dash(e.from_version), number_or_dash(e.to_version));
      }
      t.add({"  " + e.at, what, "by " + e.actor, e.reason, e.details});
    }
    t.print();
  }
  return 0;
}

struct CompareArgs {
  std::string a, b;
  std::vector<std::string> metrics;
};

int cmd_compare(const Globals& g, const CompareArgs& args) {
  const ModelRef a = parse_ref(args.a), b = parse_ref(args.b);
  Registry reg = open_registry(g, false);
  const ModelVersion va = reg.get(a), vb = reg.get(b);
  std::vector<MetricComparison> rows;
  if (args.metrics.empty()) {
    rows = reg.compare(a, b);
  } else {
    for (const auto& m : args.metrics) {
      auto one = reg.compare(a, b, m);
      rows.insert(rows.end(), one.begin(), one.end());
    }
  }
  if (g.json) {
    print_json(compare_json(va, vb, rows));
    return 0;
  }
  Table t({"METRIC", va.ref_string(), vb.ref_string(), "DIFFERENCE", "BETTER", "IMPROVEMENT"});
  for (const auto& c : rows) {
    const auto better = direction_word(c.direction);
    t.add({c.metric, c.a ? format_number(*c.a) : "-", c.b ? format_number(*c.b) : "-",
           c.difference() ? fmt::format("{:+.6g}", *c.difference()) : "-", better.is_null() ? "?" : better.get<std::string>(),
           c.improvement() ? fmt::format("{:+.6g}", *c.improvement()) : "-"});
  }
  t.add({"(stored size)", human_bytes(va.blob.stored_size), human_bytes(vb.blob.stored_size), "", "", ""});
  t.add({"(created)", va.created_at, vb.created_at, "", "", ""});
  t.print();
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
  Table t({"AT", "EVENT", "ALIAS", "VERSION", "FROM", "TO", "ACTOR", "REASON"});
  for (const auto& e : events) {
    t.add({e.at, std::string(to_string(e.kind)), e.alias.value_or("-"), number_or_dash(e.version),
           number_or_dash(e.from_version), number_or_dash(e.to_version), e.actor, e.reason.empty() ? e.details : e.reason});
  }
  t.print();
  return 0;
}

struct LineageArgs {
  std::string ref, format = "tree";
  bool ancestors_only = false, descendants_only = false;
};

int cmd_lineage(const Globals& g, const LineageArgs& a) {
  const ModelRef ref = parse_ref(a.ref);
  Registry reg = open_registry(g, false);
  const std::string root = reg.get(ref).ref_string();
  const bool up = !a.descendants_only, down = !a.ancestors_only;
  const auto ancestors = up ? reg.ancestors(ref) : std::vector<LineageEdge>{};
  const auto descendants = down ? reg.descendants(ref) : std::vector<LineageEdge>{};
  if (g.json) {
    print_json(lineage_json(root, up ? &ancestors : nullptr, down ? &descendants : nullptr));
    return 0;
  }
  std::vector<LineageEdge> all = ancestors;
  all.insert(all.end(), descendants.begin(), descendants.end());
  if (a.format == "dot") {
    print_lineage_dot(root, all);
  } else if (a.format == "mermaid") {
    print_lineage_mermaid(root, all);
  } else {
    if (up) {
      print_text("ancestors{}\n", ancestors.empty() ? ": none" : "");
      if (!ancestors.empty()) print_lineage_tree(root, ancestors, true);
    }
    if (down) {
      print_text("{}descendants{}\n", up ? "\n" : "", descendants.empty() ? ": none" : "");
      if (!descendants.empty()) print_lineage_tree(root, descendants, false);
    }
  }
  return 0;
}

struct SqlArgs {
  std::string sql;
  bool csv = false;
  SqlOptions bounds;
  std::int64_t timeout_ms = SqlOptions{}.timeout.count();
};

int cmd_sql(const Globals& g, const SqlArgs& a) {
  Registry reg = open_registry(g, false);
  SqlOptions bounds = a.bounds;
  bounds.timeout = std::chrono::milliseconds(a.timeout_ms);
  const SqlResult r = reg.query(a.sql, bounds);
  if (g.json) {
    print_json(to_json(r));
  } else if (a.csv) {
    // CSV is data: exact in a pipe or a file; on a terminal, escaped like all text.
    const bool terminal = is_terminal(stdout);
    auto cell = [&](const std::string& text) { return csv_quote(terminal ? printable(text) : text); };
    std::vector<std::string> header;
    for (const auto& c : r.columns) header.push_back(cell(c));
    fmt::print("{}\n", fmt::join(header, ","));
    for (const auto& row : r.rows) {
      std::vector<std::string> cells;
      for (const auto& v : row) cells.push_back(cell(sql_cell_text(v)));
      fmt::print("{}\n", fmt::join(cells, ","));
    }
  } else {
    Table t(r.columns);
    for (const auto& row : r.rows) {
      std::vector<std::string> cells;
      for (const auto& v : row) cells.push_back(std::holds_alternative<std::monostate>(v) ? "NULL" : sql_cell_text(v));
      t.add(std::move(cells));
    }
    t.print();
  }
  return 0;
}

}  // namespace

void add_list_command(CLI::App& app, Globals& g) {
  auto [cmd, a] = add_command<ListArgs>(
      app, g, "list", "List models, or the versions of one model",
      "  modelreg list\n  modelreg list fraud --where 'f1>=0.8' --order-by f1\n  modelreg list fraud --newest-first --limit 10\n"
      "  modelreg list fraud --all --json",
      cmd_list);
  cmd->add_option("NAME", a->name, "Model whose versions to list");
  cmd->add_option("--where", a->where, "Metric condition, e.g. \"f1>=0.8\" (repeatable; all must hold)");
  cmd->add_option("--tag", a->tag, "Only versions with tag KEY or KEY=VALUE");
  auto* order_by = cmd->add_option("--order-by", a->order_by, "Order by a metric, best (highest) first");
  auto* ascending = cmd->add_flag("--ascending", a->ascending, "With --order-by: lowest first");
  cmd->add_flag("--newest-first", a->newest_first, "Highest version number first (default: oldest first)")
      ->excludes(order_by)
      ->excludes(ascending);
  cmd->add_option("--limit", a->limit, "At most N versions (N >= 1)")->check(CLI::Range(std::size_t{1}, std::size_t{1} << 62));
  cmd->add_flag("--all", a->all, "Include archived versions");
}

void add_show_command(CLI::App& app, Globals& g) {
  auto [cmd, ref] = add_command<std::string>(
      app, g, "show", "Everything about one version",
      "  modelreg show fraud@3\n  modelreg show fraud --json     # the active version", cmd_show);
  cmd->add_option("REF", *ref, "Version, e.g. fraud@3")->required();
}

void add_compare_command(CLI::App& app, Globals& g) {
  auto [cmd, a] = add_command<CompareArgs>(
      app, g, "compare", "Two versions side by side, with metric differences",
      "  modelreg compare fraud@2 fraud@3\n  modelreg compare fraud@active fraud@latest --metric f1", cmd_compare);
  cmd->add_option("A", a->a, "First version")->required();
  cmd->add_option("B", a->b, "Second version")->required();
  cmd->add_option("--metric", a->metrics, "Only these metrics (repeatable)");
}

void add_history_command(CLI::App& app, Globals& g) {
  auto [cmd, name] = add_command<std::string>(app, g, "history", "The audit log of a model",
                                              "  modelreg history fraud\n  modelreg history fraud --json", cmd_history);
  cmd->add_option("NAME", *name, "Model")->required();
}

void add_lineage_command(CLI::App& app, Globals& g) {
  auto [cmd, a] = add_command<LineageArgs>(
      app, g, "lineage", "Ancestors and descendants of a version",
      "  modelreg lineage fraud@7\n  modelreg lineage fraud@7 --ancestors --format dot | dot -Tpng > lineage.png",
      cmd_lineage);
  cmd->add_option("REF", a->ref, "Version")->required();
  auto* up = cmd->add_flag("--ancestors", a->ancestors_only, "Only ancestors");
  cmd->add_flag("--descendants", a->descendants_only, "Only descendants")->excludes(up);
  cmd->add_option("--format", a->format, "tree (default), dot or mermaid")
      ->check(CLI::IsMember({"tree", "dot", "mermaid"}));
}

void add_sql_command(CLI::App& app, Globals& g) {
  auto [cmd, a] = add_command<SqlArgs>(
      app, g, "sql", "Run read-only SQL (see the README for the views)",
      "  modelreg sql \"SELECT model, version, value FROM version_metrics WHERE metric = 'f1'\" --csv", cmd_sql);
  cmd->add_option("SQL", a->sql, "SELECT statement(s)")->required();
  cmd->add_flag("--csv", a->csv, "CSV output");
  cmd->add_option("--timeout-ms", a->timeout_ms, "Stop the query after N milliseconds (0: no limit)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--max-rows", a->bounds.max_rows, "Refuse a result of more than N rows (0: no limit)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--max-bytes", a->bounds.max_bytes,
                  "Refuse a result, or any one value, larger than N bytes (0: no limit)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--max-memory", a->bounds.max_memory,
                  "Stop the query when SQLite needs more than N bytes for sorting and temporary tables (0: no limit)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
}

}  // namespace modelreg::cli
