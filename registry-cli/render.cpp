#include "render.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <set>
#include <variant>

#include <fmt/format.h>

#include "modelreg/time_format.hpp"

namespace modelreg::cli {
namespace {

// Mermaid node ids allow only letters, digits and underscores: every other byte (and '_' itself)
// becomes _XX (its hex), so distinct refs (a.b@1, a-b@1, a_b@1) get distinct ids.
std::string mermaid_id(const std::string& ref) {
  std::string id;
  for (char c : ref) {
    const auto byte = static_cast<unsigned char>(c);
    id += std::isalnum(byte) ? std::string(1, c) : fmt::format("_{:02X}", byte);
  }
  return id;
}

}  // namespace

// Text stored before input was checked (or by another tool) may hold bytes that are not UTF-8:
// they print as U+FFFD, so the JSON stays valid whatever the database holds.
// Outside strings JSON is ASCII, so each C1 sequence (C2 80..C2 9F) or DEL is inside a string,
// where its \u escape means the same character.
std::string json_text(const nlohmann::json& j) {
  const std::string text = j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string out;
  out.reserve(text.size() + 1);
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    const auto next = i + 1 < text.size() ? static_cast<unsigned char>(text[i + 1]) : 0;
    if (c == 0x7f) {
      out += "\\u007f";
    } else if (c == 0xc2 && next >= 0x80 && next < 0xa0) {
      out += fmt::format("\\u{:04x}", next);
      ++i;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '\n';
  return out;
}

void print_json(const nlohmann::json& j) { std::fputs(json_text(j).c_str(), stdout); }

nlohmann::json to_json(const ModelVersion& v) {
  using nlohmann::json;
  json features = json::array();
  for (const auto& f : v.features) features.push_back({{"name", f.name}, {"dtype", f.dtype}});
  json datasets = json::array();
  for (const auto& d : v.datasets) {
    datasets.push_back({{"uri", d.uri}, {"sha256", json_or_null(d.sha256)}, {"role", d.role}});
  }
  json parents = json::array();
  for (const auto& [id, relation] : v.parents) {
    parents.push_back({{"ref", id.to_string()}, {"model", id.model}, {"version", id.number}, {"relation", relation}});
  }
  return json{{"ref", v.ref_string()},
              {"model", v.id.model},
              {"version", v.id.number},
              {"label", json_or_null(v.label)},
              {"status", v.status == VersionStatus::archived ? "archived" : "ready"},
              {"active", v.active},
              {"aliases", v.aliases},
              {"format", v.format},
              {"type_name", v.type_name},
              {"task", v.task ? json(to_string(v.task->task)) : json(nullptr)},
              {"classes", !v.task || v.task->task == Task::regression ? json(nullptr)
                          : v.task->classes.are_integers()            ? json(v.task->classes.integer_values())
                                                                      : json(v.task->classes.string_values())},
              {"notes", v.notes},
              {"created_at", v.created_at},
              {"created_by", v.created_by},
              {"blob",
               {{"sha256", v.blob.sha256},
                {"raw_size", v.blob.raw_size},
                {"stored_size", v.blob.stored_size},
                {"ratio", v.blob.ratio()},
                {"codec", v.blob.codec},
                {"level", v.blob.level},
                {"chunk_count", v.blob.chunk_count}}},
              {"metrics", v.metrics},
              {"params", v.params},
              {"features", features},
              {"tags", v.tags},
              {"datasets", datasets},
              {"parents", parents},
              {"signature", v.signature ? json{{"algorithm", v.signature->algorithm},
                                               {"key_id", v.signature->key_id},
                                               {"signed_at", v.signature->signed_at},
                                               {"signed_by", v.signature->signed_by}}
                                        : json(nullptr)}};
}

nlohmann::json to_json(const ModelSummary& m) {
  using nlohmann::json;
  return json{{"model", m.name},
              {"versions", m.version_count},
              {"active_version", json_or_null(m.active_version)},
              {"latest_version", json_or_null(m.latest_version)},
              {"created_at", m.created_at}};
}

nlohmann::json to_json(const Event& e) {
  using nlohmann::json;
  return json{{"id", e.id},           {"model", e.model},        {"kind", to_string(e.kind)},   {"version", json_or_null(e.version)},
              {"from_version", json_or_null(e.from_version)}, {"to_version", json_or_null(e.to_version)}, {"actor", e.actor},
              {"reason", e.reason},   {"at", e.at},              {"details", e.details},
              {"alias", json_or_null(e.alias)}};
}

nlohmann::json to_json(const Alias& a) {
  return nlohmann::json{{"model", a.model},   {"alias", a.name},    {"ref", a.ref_string()}, {"version", a.version},
                        {"version_ref", fmt::format("{}@{}", a.model, a.version)},
                        {"set_at", a.set_at}, {"set_by", a.set_by}};
}

nlohmann::json to_json(const TokenInfo& t) {
  return nlohmann::json{{"name", t.name},
                        {"role", std::string(to_string(t.role))},
                        {"model_glob", json_or_null(t.model_glob)},
                        {"created_at", t.created_at},
                        {"created_by", t.created_by},
                        {"revoked_at", json_or_null(t.revoked_at)},
                        {"revoked_by", json_or_null(t.revoked_by)}};
}

nlohmann::json to_json(const SqlResult& r) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& row : r.rows) {
    nlohmann::json obj = nlohmann::json::object();
    for (std::size_t i = 0; i < row.size(); ++i) obj[r.columns[i]] = to_json(row[i]);
    out.push_back(obj);
  }
  return out;
}

nlohmann::json show_json(const ModelVersion& v, const std::vector<Event>& events,
                         const std::vector<LineageEdge>& children) {
  nlohmann::json out = to_json(v);
  nlohmann::json ev = nlohmann::json::array();
  for (const auto& e : events) ev.push_back(to_json(e));
  out["events"] = ev;
  nlohmann::json ch = nlohmann::json::array();
  for (const auto& c : children) ch.push_back({{"ref", c.child.to_string()}, {"relation", c.relation}});
  out["children"] = ch;
  return out;
}

std::vector<Event> version_events(const Registry& reg, const ModelVersion& v) {
  std::vector<Event> events;
  for (const auto& e : reg.history(v.id.model)) {
    if (e.version == v.id.number || e.to_version == v.id.number || e.from_version == v.id.number) events.push_back(e);
  }
  return events;
}

nlohmann::json change_json(const std::string& ref, std::string_view done) { return {{"ref", ref}, {"done", done}}; }

nlohmann::json tags_json(const ModelVersion& v) { return {{"ref", v.ref_string()}, {"tags", v.tags}}; }

nlohmann::json alias_removed_json(const std::string& model, const std::string& alias, std::int64_t from_version) {
  return {{"model", model}, {"alias", alias}, {"removed", true}, {"from_version", from_version}};
}

nlohmann::json to_json(const GcReport& r) {
  return {{"dry_run", r.dry_run},
          {"versions_deleted", ref_strings(r.versions_deleted)},
          {"versions_kept", ref_strings(r.versions_kept)},
          {"blobs_removed", r.blobs_removed},
          {"chunks_removed", r.chunks_removed},
          {"bytes_freed", r.bytes_freed}};
}

nlohmann::json direction_word(const std::optional<MetricDirection>& d) {
  if (!d) return nullptr;
  return *d == MetricDirection::lower_is_better ? "lower" : "higher";
}

nlohmann::json compare_json(const ModelVersion& a, const ModelVersion& b, const std::vector<MetricComparison>& rows) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& c : rows) {
    list.push_back({{"metric", c.metric},
                    {"a", json_or_null(c.a)},
                    {"b", json_or_null(c.b)},
                    {"difference", json_or_null(c.difference())},
                    {"better", direction_word(c.direction)},
                    {"improvement", json_or_null(c.improvement())}});
  }
  return {{"a", a.ref_string()}, {"b", b.ref_string()}, {"metrics", list}};
}

nlohmann::json lineage_json(const std::string& root, const std::vector<LineageEdge>* ancestors,
                            const std::vector<LineageEdge>* descendants) {
  nlohmann::json out = {{"ref", root}};
  for (auto [key, edges] : {std::pair{"ancestors", ancestors}, std::pair{"descendants", descendants}}) {
    if (!edges) continue;
    nlohmann::json list = nlohmann::json::array();
    for (const auto& e : *edges) list.push_back(to_json(e));
    out[key] = list;
  }
  return out;
}

void print_transition(const Transition& t, std::string_view verb, bool json) {
  if (json) {
    print_json(to_json(t));
    return;
  }
  const bool active = t.alias == "active";
  if (t.from_version && *t.from_version == t.to_version) {
    if (active) print_text("{}@{} is already the active version\n", t.model, t.to_version);
    else print_text("{}@{} already points at {}@{}\n", t.model, t.alias, t.model, t.to_version);
    return;
  }
  const std::string was = t.from_version ? fmt::format("{}@{}", t.model, *t.from_version) : "none";
  if (active) print_text("{} {}: {}@{} is now active (was {})\n", verb, t.model, t.model, t.to_version, was);
  else print_text("{} {}@{}: now {}@{} (was {})\n", verb, t.model, t.alias, t.model, t.to_version, was);
}

nlohmann::json to_json(const LineageEdge& e) {
  return nlohmann::json{
      {"child", e.child.to_string()}, {"parent", e.parent.to_string()}, {"relation", e.relation}, {"depth", e.depth}};
}

nlohmann::json to_json(const Transition& t) {
  using nlohmann::json;
  return json{{"model", t.model},
              {"from_version", json_or_null(t.from_version)},
              {"to_version", t.to_version},
              {"alias", t.alias}};
}

nlohmann::json to_json(const SqlValue& v) {
  using nlohmann::json;
  if (std::holds_alternative<std::int64_t>(v)) return std::get<std::int64_t>(v);
  if (std::holds_alternative<double>(v)) return std::get<double>(v);
  if (std::holds_alternative<std::string>(v)) return std::get<std::string>(v);
  if (std::holds_alternative<SqlBlob>(v)) return json{{"blob_bytes", std::get<SqlBlob>(v).size}};
  return nullptr;
}

void Table::print() const {
  std::vector<std::vector<std::string>> rows;
  rows.reserve(rows_.size());
  for (const auto& row : rows_) {
    std::vector<std::string> cells;
    for (const auto& cell : row) cells.push_back(printable(cell));
    rows.push_back(std::move(cells));
  }
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  // A header of empty cells is not printed (tables used only for alignment).
  const bool headless = std::all_of(rows[0].begin(), rows[0].end(), [](const std::string& c) { return c.empty(); });
  for (std::size_t r = headless ? 1 : 0; r < rows.size(); ++r) {
    const auto& row = rows[r];
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::fputs(line.c_str(), stdout);
    std::fputc('\n', stdout);
  }
}

std::string human_bytes(std::uint64_t bytes) {
  if (bytes < 1024) return fmt::format("{} B", bytes);
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes) / 1024.0;
  int u = 0;
  while (v >= 1024.0 && u < 3) {
    v /= 1024.0;
    ++u;
  }
  return fmt::format("{:.1f} {}", v, units[u]);
}

std::string format_number(double value) { return fmt::format("{}", value); }

std::string number_or_dash(const std::optional<std::int64_t>& n) { return n ? std::to_string(*n) : "-"; }

std::string utc_timestamp_now() { return format_utc(std::chrono::system_clock::now()); }

std::string status_word(const ModelVersion& v) {
  return v.active ? "active" : v.status == VersionStatus::archived ? "archived" : "ready";
}

std::string version_line(const ModelVersion& v) {
  return fmt::format("{}{}{}", v.ref_string(), v.label ? " (" + *v.label + ")" : std::string(),
                     v.active ? " [active]" : v.status == VersionStatus::archived ? " [archived]" : "");
}

std::vector<std::string> ref_strings(const std::vector<VersionId>& ids) {
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (const auto& id : ids) out.push_back(id.to_string());
  return out;
}

std::string sql_cell_text(const SqlValue& v) {
  if (std::holds_alternative<std::int64_t>(v)) return std::to_string(std::get<std::int64_t>(v));
  if (std::holds_alternative<double>(v)) return format_number(std::get<double>(v));
  if (std::holds_alternative<std::string>(v)) return std::get<std::string>(v);
  if (std::holds_alternative<SqlBlob>(v)) return fmt::format("<blob {} bytes>", std::get<SqlBlob>(v).size);
  return "";
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

void print_lineage_tree(const std::string& root, const std::vector<LineageEdge>& edges, bool up) {
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
      print_text("{}{}{} ({}){}\n", prefix, last ? "└─ " : "├─ ", other, relation, repeat ? " (see above)" : "");
      if (!repeat) walk(other, prefix + (last ? "   " : "│  "));
    }
  };
  print_text("{}\n", root);
  walk(root, "");
}

void print_lineage_dot(const std::string& root, const std::vector<LineageEdge>& edges) {
  print_text("digraph lineage {{\n  rankdir=BT;\n  \"{}\" [style=bold];\n", root);
  for (const auto& e : edges) {
    print_text("  \"{}\" -> \"{}\" [label=\"{}\"];\n", e.child.to_string(), e.parent.to_string(), e.relation);
  }
  print_text("}}\n");
}

void print_lineage_mermaid(const std::string& root, const std::vector<LineageEdge>& edges) {
  print_text("graph BT\n  {}[\"{}\"]\n", mermaid_id(root), root);
  for (const auto& e : edges) {
    print_text("  {}[\"{}\"] -->|{}| {}[\"{}\"]\n", mermaid_id(e.child.to_string()), e.child.to_string(), e.relation,
               mermaid_id(e.parent.to_string()), e.parent.to_string());
  }
}

}  // namespace modelreg::cli
