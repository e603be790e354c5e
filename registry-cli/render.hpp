// How modelreg shows things: the JSON shapes documented in README.md ("JSON output"), aligned
// tables, sizes, numbers and times as text, one-line version summaries and lineage graphs.
//
// Everything prints to stdout unless it says otherwise, and never a raw control character
// (printable_text.hpp): text through print_text and Table, JSON through print_json.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "modelreg/access.hpp"
#include "modelreg/registry.hpp"
#include "printable_text.hpp"

namespace modelreg::cli {

// Indented by 2, with a final newline. Invalid UTF-8 prints as U+FFFD, and C1 controls and DEL
// (which JSON allows raw in strings) as \u escapes: the same JSON, safe on a terminal.
void print_json(const nlohmann::json& j);
// What print_json prints.
std::string json_text(const nlohmann::json& j);

// The value, or JSON null when there is none.
template <class T>
nlohmann::json json_or_null(const std::optional<T>& value) {
  return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

nlohmann::json to_json(const ModelVersion& v);
nlohmann::json to_json(const ModelSummary& m);
nlohmann::json to_json(const Event& e);
nlohmann::json to_json(const LineageEdge& e);
nlohmann::json to_json(const Transition& t);
nlohmann::json to_json(const Alias& a);
nlohmann::json to_json(const SqlValue& v);  // a blob as {"blob_bytes": size}
nlohmann::json to_json(const TokenInfo& t);  // never the token or its hash
nlohmann::json to_json(const SqlResult& r);  // an array of objects, one a row, by column name

// The shapes of `show`, `compare` and `lineage` --json, shared with `modelreg ui`'s API.
// show: the version with "events" (those naming it) and "children" (direct descendants).
nlohmann::json show_json(const ModelVersion& v, const std::vector<Event>& events,
                         const std::vector<LineageEdge>& children);
// The events of v's model that name v (as its version, or as where an alias moved from or to).
std::vector<Event> version_events(const Registry& reg, const ModelVersion& v);
// The shapes of `archive`/`unarchive`/`delete` ({"ref", "done"}), `tag`, `alias remove` and `gc`
// with --json, shared with the API.
nlohmann::json change_json(const std::string& ref, std::string_view done);
nlohmann::json tags_json(const ModelVersion& v);
nlohmann::json alias_removed_json(const std::string& model, const std::string& alias, std::int64_t from_version);
nlohmann::json to_json(const GcReport& r);
// "higher" or "lower" (which value is better), null when the direction is unknown.
nlohmann::json direction_word(const std::optional<MetricDirection>& d);
nlohmann::json compare_json(const ModelVersion& a, const ModelVersion& b, const std::vector<MetricComparison>& rows);
// {"ref": root} with "ancestors" and "descendants" when given.
nlohmann::json lineage_json(const std::string& root, const std::vector<LineageEdge>* ancestors,
                            const std::vector<LineageEdge>* descendants);

// Columns padded to their widest cell; the first row is the header, not printed when all its
// cells are empty (a table used only for alignment). Cells print as printable() shows them.
class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::size_t size() const { return rows_.size() - 1; }
  void print() const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

std::string human_bytes(std::uint64_t bytes);                  // 512 B, 1.5 MiB
std::string format_number(double value);                       // shortest text that reads back as the same double
std::string number_or_dash(const std::optional<std::int64_t>& n);  // "-" when absent
std::string utc_timestamp_now();                               // format_utc(now): 2026-11-29T06:07:15.123Z

// What promote, rollback or `alias set` did, as JSON or one line: `verb` is "promoted", "set"...
void print_transition(const Transition& t, std::string_view verb, bool json);

// "active", "archived" or "ready".
std::string status_word(const ModelVersion& v);
// fraud@3 (v1.2.0) [active]
std::string version_line(const ModelVersion& v);
// "fraud@3" for each.
std::vector<std::string> ref_strings(const std::vector<VersionId>& ids);

// A SQL value as CSV and table cells show it: empty for NULL, a blob as "<blob N bytes>".
std::string sql_cell_text(const SqlValue& v);
// Quoted (with doubled quotes) only when it holds a comma, quote or line break.
std::string csv_quote(const std::string& s);

// The lineage edges around `root`: as a tree drawn from root towards parents (`up`) or children,
// each node shown once ("(see above)" on a repeat); as Graphviz dot; as a Mermaid flowchart.
void print_lineage_tree(const std::string& root, const std::vector<LineageEdge>& edges, bool up);
void print_lineage_dot(const std::string& root, const std::vector<LineageEdge>& edges);
void print_lineage_mermaid(const std::string& root, const std::vector<LineageEdge>& edges);

}  // namespace modelreg::cli
