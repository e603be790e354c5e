// Aliases: a model's named pointers to its versions. `active` lives in versions.is_active and every
// other alias in the aliases table (migrations/0006_aliases.sql says why); both move only through
// move_alias and rollback, each move one call of the write skeleton with its event.
#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>

#include "store/registry_impl.hpp"

namespace modelreg {

namespace {

constexpr std::string_view kActive = "active";

// The events that moved `active`: before schema 6 every promote and rollback did.
std::string_view active_events_condition(bool alias_column) {
  return alias_column ? "alias = 'active'" : "kind IN ('promote', 'rollback')";
}

// The way require_better's metric improves: given, else known; unknown is Error(invalid_argument).
std::optional<MetricDirection> guard_direction(const AliasOptions& options) {
  if (!options.require_better) return std::nullopt;
  check_key("metric", *options.require_better);
  if (options.direction) return options.direction;
  if (auto known = known_direction(*options.require_better)) return known;
  throw Error(Errc::invalid_argument,
              fmt::format("whether a higher or a lower '{}' is better is not known; say which "
                          "(AliasOptions::direction, or --higher-is-better / --lower-is-better)",
                          *options.require_better));
}

}  // namespace

bool Registry::Impl::has_alias_table() const {
  if (!alias_table) {
    SQLite::Statement q(*db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'aliases'");
    alias_table = q.executeStep();
  }
  return *alias_table;
}

std::string Registry::Impl::alias_name(std::string_view model, std::string_view alias) {
  const ModelRef ref = ModelRef::alias(model, alias);  // validates the name
  return ref.kind() == ModelRef::Kind::active ? std::string(kActive) : ref.label_text();
}

std::optional<VersionRow> Registry::Impl::alias_row(std::int64_t model_id, std::string_view alias) const {
  if (alias == kActive) return active_row(model_id);
  if (!has_alias_table()) return std::nullopt;
  SQLite::Statement q(*db,
                      "SELECT v.number FROM aliases a JOIN versions v ON v.id = a.version_id "
                      "WHERE a.model_id = ? AND a.name = ?");
  q.bind(1, model_id);
  q.bind(2, std::string(alias));
  if (!q.executeStep()) return std::nullopt;
  return row_by_number(model_id, q.getColumn(0).getInt64());
}

std::vector<std::string> Registry::Impl::aliases_of(std::int64_t version_id, bool active) const {
  std::vector<std::string> out;
  if (active) out.emplace_back(kActive);
  if (has_alias_table()) {
    Cached q(*this, "SELECT name FROM aliases WHERE version_id = ? ORDER BY name");
    q.bind(1, version_id);
    while (q.executeStep()) out.push_back(q.getColumn(0).getString());
  }
  return out;
}

std::vector<Alias> Registry::Impl::aliases_of_model(std::int64_t model_id, const std::string& model) const {
  std::vector<Alias> out;
  if (const auto active = active_row(model_id)) {
    Alias a{model, std::string(kActive), active->number, {}, {}};
    SQLite::Statement q(*db, fmt::format("SELECT at, actor FROM events WHERE model_id = ? AND {} ORDER BY id DESC LIMIT 1",
                                         active_events_condition(has_alias_table())));
    q.bind(1, model_id);
    if (q.executeStep()) {
      a.set_at = q.getColumn(0).getString();
      a.set_by = q.getColumn(1).getString();
    }
    out.push_back(std::move(a));
  }
  if (has_alias_table()) {
    SQLite::Statement q(*db,
                        "SELECT a.name, v.number, a.set_at, a.set_by FROM aliases a JOIN versions v ON v.id = a.version_id "
                        "WHERE a.model_id = ? ORDER BY a.name");
    q.bind(1, model_id);
    while (q.executeStep()) {
      out.push_back(Alias{model, q.getColumn(0).getString(), q.getColumn(1).getInt64(), q.getColumn(2).getString(),
                          q.getColumn(3).getString()});
    }
  }
  return out;
}

void Registry::Impl::check_not_a_label(std::int64_t model_id, std::string_view name, std::string_view model) const {
  SQLite::Statement q(*db, "SELECT number FROM versions WHERE model_id = ? AND label = ?");
  q.bind(1, model_id);
  q.bind(2, std::string(name));
  if (q.executeStep()) {
    throw Error(Errc::already_exists,
                fmt::format("'{}' is the label of {}@{}; labels and aliases share one namespace per model, so choose "
                            "another alias name",
                            name, model, q.getColumn(0).getInt64()));
  }
}

void Registry::Impl::check_not_an_alias(std::int64_t model_id, std::string_view name, std::string_view model) const {
  if (!has_alias_table()) return;
  SQLite::Statement q(*db,
                      "SELECT v.number FROM aliases a JOIN versions v ON v.id = a.version_id "
                      "WHERE a.model_id = ? AND a.name = ?");
  q.bind(1, model_id);
  q.bind(2, std::string(name));
  if (q.executeStep()) {
    throw Error(Errc::already_exists,
                fmt::format("'{}' is an alias of '{}' (pointing at {}@{}); labels and aliases share one namespace per "
                            "model, so choose another label",
                            name, model, model, q.getColumn(0).getInt64()));
  }
}

void Registry::Impl::point_alias(const VersionRow& target, const std::string& alias,
                                 const std::optional<VersionRow>& current, const std::string& who) {
  if (alias == kActive) {
    set_active(target, current);
    return;
  }
  check_not_a_label(target.model_id, alias, version_id_of(target.id).model);
  SQLite::Statement q(*db, current ? "UPDATE aliases SET version_id = ?1, set_at = ?2, set_by = ?3 "
                                     "WHERE model_id = ?4 AND name = ?5"
                                   : "INSERT INTO aliases(version_id, set_at, set_by, model_id, name) "
                                     "VALUES (?1, ?2, ?3, ?4, ?5)");
  q.bind(1, target.id);
  q.bind(2, now());
  q.bind(3, who);
  q.bind(4, target.model_id);
  q.bind(5, alias);
  q.exec();
}

Transition Registry::Impl::move_alias(const ModelRef& ref, const std::string& alias, const AliasOptions& options,
                                      const std::optional<MetricDirection>& direction, const std::string& who) {
  const VersionRow target = require_row(ref);
  const VersionId id = version_id_of(target.id);
  const std::string name = id.to_string();
  const bool active = alias == kActive;
  const std::string pointer = fmt::format("{}@{}", id.model, alias);
  if (target.archived) {
    throw Error(Errc::conflict,
                active ? fmt::format("{} is archived and cannot be promoted; unarchive it first", name)
                       : fmt::format("{} is archived and cannot hold an alias ({}); unarchive it first", name, pointer));
  }
  if (!active) check_not_a_label(target.model_id, alias, id.model);
  const auto current = alias_row(target.model_id, alias);
  Transition t{id.model, current ? std::optional(current->number) : std::nullopt, target.number, alias};
  if (current && current->id == target.id) return t;  // already there: nothing to record
  check_signature(target.id);
  const std::string verb = active ? fmt::format("promote {}", name) : fmt::format("point {} at {}", pointer, name);
  if (options.require_better && current) {
    const std::string& m = *options.require_better;
    const std::string holder = active ? fmt::format("the active {}@{}", id.model, current->number)
                                      : fmt::format("{} ({}@{})", pointer, id.model, current->number);
    const auto candidate = metric(target.id, m);
    if (!candidate) {
      throw Error(Errc::conflict, fmt::format("refusing to {}: it has no metric '{}' to compare with {}", verb, m, holder));
    }
    const auto incumbent = metric(current->id, m);
    const bool lower = *direction == MetricDirection::lower_is_better;
    if (incumbent && (lower ? *candidate > *incumbent : *candidate < *incumbent)) {
      throw Error(Errc::conflict, fmt::format("refusing to {}: {} {} is {} {}'s {} ({} is better; {} without "
                                              "require_better to override)",
                                              verb, m, *candidate, lower ? "above" : "below", holder, *incumbent,
                                              lower ? "lower" : "higher", active ? "promote" : "set the alias"));
    }
  }
  check_activatable(target, active ? std::string("promote") : fmt::format("point {} at", pointer));
  point_alias(target, alias, current, who);
  record_event(target.model_id, active ? EventKind::promote : EventKind::alias_set, target.number, t.from_version,
               target.number, who, options.reason, {}, alias);
  return t;
}

std::vector<std::int64_t> Registry::Impl::alias_stack(std::int64_t model_id, std::string_view alias) const {
  std::vector<std::int64_t> stack;
  const bool by_alias = has_alias_table();
  if (!by_alias && alias != kActive) return stack;
  SQLite::Statement q(*db, by_alias ? "SELECT kind, to_version FROM events WHERE model_id = ?1 AND alias = ?2 "
                                      "AND kind IN ('promote', 'rollback', 'alias_set') AND to_version IS NOT NULL "
                                      "ORDER BY id"
                                    : "SELECT kind, to_version FROM events WHERE model_id = ?1 "
                                      "AND kind IN ('promote', 'rollback') AND to_version IS NOT NULL ORDER BY id");
  q.bind(1, model_id);
  if (by_alias) q.bind(2, std::string(alias));
  while (q.executeStep()) {
    const std::string kind = q.getColumn(0).getString();
    const std::int64_t to = q.getColumn(1).getInt64();
    auto it = std::find(stack.rbegin(), stack.rend(), to);
    if (kind == "rollback" && it != stack.rend()) {
      stack.erase(it.base(), stack.end());
    } else {
      stack.push_back(to);
    }
  }
  return stack;
}

std::vector<std::int64_t> Registry::Impl::alias_history_versions(std::int64_t model_id) const {
  std::vector<std::string> names{std::string(kActive)};
  if (has_alias_table()) {
    SQLite::Statement q(*db, "SELECT DISTINCT alias FROM events WHERE model_id = ? AND alias IS NOT NULL "
                             "AND alias <> 'active'");
    q.bind(1, model_id);
    while (q.executeStep()) names.push_back(q.getColumn(0).getString());
  }
  std::set<std::int64_t> numbers;
  for (const auto& n : names) {
    for (std::int64_t v : alias_stack(model_id, n)) numbers.insert(v);
  }
  return {numbers.begin(), numbers.end()};
}

// ---- Registry ---------------------------------------------------------------------------------

Transition Registry::set_alias(const ModelRef& ref, std::string_view alias, const AliasOptions& options) {
  const std::string name = Impl::alias_name(ref.model(), alias);
  const auto direction = guard_direction(options);
  const std::string context = name == kActive ? fmt::format("promoting {}", ref.to_string())
                                              : fmt::format("pointing {}@{} at {}", ref.model(), name, ref.to_string());
  return impl_->write(context, options.actor,
                      [&](const std::string& who) { return impl_->move_alias(ref, name, options, direction, who); });
}

Transition Registry::promote(const ModelRef& ref, const PromoteOptions& options) {
  return set_alias(ref, kActive, options);
}

std::int64_t Registry::remove_alias(std::string_view model, std::string_view alias, const Change& change) {
  const std::string name = Impl::alias_name(model, alias);
  if (name == kActive) {
    throw Error(Errc::invalid_argument,
                fmt::format("'{}@active' cannot be removed: the active alias is moved by promote and rollback", model));
  }
  return impl_->write(fmt::format("removing {}@{}", model, name), change.actor, [&](const std::string& who) {
    const std::int64_t mid = impl_->require_model(model);
    const auto current = impl_->alias_row(mid, name);
    if (!current) {
      std::vector<std::string> names;
      for (const auto& a : impl_->aliases_of_model(mid, std::string(model))) names.push_back(a.name);
      throw Error(Errc::not_found, fmt::format("model '{}' has no alias '{}' ({}); nothing was changed", model, name,
                                               names.empty() ? std::string("it has none")
                                                             : fmt::format("its aliases: {}", fmt::join(names, ", "))));
    }
    SQLite::Statement q(*impl_->db, "DELETE FROM aliases WHERE model_id = ? AND name = ?");
    q.bind(1, mid);
    q.bind(2, name);
    q.exec();
    impl_->record_event(mid, EventKind::alias_remove, current->number, current->number, std::nullopt, who,
                        change.reason, {}, name);
    return current->number;
  });
}

std::vector<Alias> Registry::aliases(std::string_view model) const {
  return guarded(fmt::format("reading the aliases of '{}'", model), [&] {
    std::lock_guard lock(impl_->mutex);
    SQLite::Transaction txn(*impl_->db, SQLite::TransactionBehavior::DEFERRED);
    return impl_->aliases_of_model(impl_->require_model(model), std::string(model));
  });
}

std::vector<Alias> Registry::aliases() const {
  // Two statements for the whole registry, whatever the number of models (a server following a
  // thousand models reads this after every commit): the active versions with their last promote or
  // rollback, then every other alias; merged per model as aliases(model) orders them.
  return guarded("reading the aliases", [&] {
    std::lock_guard lock(impl_->mutex);
    SQLite::Transaction txn(*impl_->db, SQLite::TransactionBehavior::DEFERRED);
    std::map<std::string, std::vector<Alias>> by_model;
    SQLite::Statement active(*impl_->db,
                             fmt::format("SELECT m.name, v.number, e.at, e.actor FROM models m "
                                         "JOIN versions v ON v.model_id = m.id AND v.is_active = 1 "
                                         "LEFT JOIN events e ON e.id = (SELECT max(id) FROM events "
                                         "WHERE model_id = m.id AND {})",
                                         active_events_condition(impl_->has_alias_table())));
    while (active.executeStep()) {
      by_model[active.getColumn(0).getString()].push_back(
          Alias{active.getColumn(0).getString(), std::string(kActive), active.getColumn(1).getInt64(),
                active.getColumn(2).isNull() ? std::string() : active.getColumn(2).getString(),
                active.getColumn(3).isNull() ? std::string() : active.getColumn(3).getString()});
    }
    if (impl_->has_alias_table()) {
      SQLite::Statement q(*impl_->db,
                          "SELECT m.name, a.name, v.number, a.set_at, a.set_by FROM aliases a "
                          "JOIN models m ON m.id = a.model_id JOIN versions v ON v.id = a.version_id "
                          "ORDER BY m.name, a.name");
      while (q.executeStep()) {
        by_model[q.getColumn(0).getString()].push_back(Alias{q.getColumn(0).getString(), q.getColumn(1).getString(),
                                                             q.getColumn(2).getInt64(), q.getColumn(3).getString(),
                                                             q.getColumn(4).getString()});
      }
    }
    std::vector<Alias> out;
    for (auto& [name, list] : by_model) out.insert(out.end(), std::make_move_iterator(list.begin()), std::make_move_iterator(list.end()));
    return out;
  });
}

}  // namespace modelreg
