// Every change to existing versions: rollback, archive, unarchive, delete, tags and gc — each one
// call of the write skeleton (Registry::Impl::write) — and the events they record. Promote and the
// other moves of an alias are in aliases.cpp.
#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "store/registry_impl.hpp"

namespace modelreg {

namespace {

constexpr std::pair<EventKind, std::string_view> kEventNames[] = {
    {EventKind::register_version, "register"}, {EventKind::promote, "promote"},
    {EventKind::rollback, "rollback"},         {EventKind::archive, "archive"},
    {EventKind::unarchive, "unarchive"},       {EventKind::delete_version, "delete"},
    {EventKind::tag, "tag"},                   {EventKind::untag, "untag"},
    {EventKind::alias_set, "alias_set"},       {EventKind::alias_remove, "alias_remove"},
};

}  // namespace

std::string_view to_string(EventKind kind) noexcept {
  for (const auto& [k, name] : kEventNames) {
    if (k == kind) return name;
  }
  return "unknown";
}

std::optional<EventKind> parse_event_kind(std::string_view name) noexcept {
  for (const auto& [k, n] : kEventNames) {
    if (n == name) return k;
  }
  return std::nullopt;
}

void Registry::Impl::record_event(std::int64_t model_id, EventKind kind, std::optional<std::int64_t> version,
                  std::optional<std::int64_t> from, std::optional<std::int64_t> to, const std::string& actor,
                  std::string_view reason, std::string_view details, std::string_view alias) {
  check_text("the reason", reason, 1 << 16, true);
  // Writes happen only at the current schema, which has events.alias.
  SQLite::Statement q(*db,
                      "INSERT INTO events(model_id, kind, version, from_version, to_version, actor, reason, at, details, "
                      "alias) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  q.bind(1, model_id);
  q.bind(2, std::string(to_string(kind)));
  if (version) q.bind(3, *version); else q.bind(3);
  if (from) q.bind(4, *from); else q.bind(4);
  if (to) q.bind(5, *to); else q.bind(5);
  q.bind(6, actor);
  q.bind(7, std::string(reason));
  q.bind(8, now());
  q.bind(9, std::string(details));
  if (alias.empty()) q.bind(10); else q.bind(10, std::string(alias));
  q.exec();
}

void Registry::Impl::check_activatable(const VersionRow& row, std::string_view verb) const {
  check_signature(row.id);  // (cheap: metadata rows only)
  const std::string name = version_id_of(row.id).to_string();
  try {
    detail::BlobStore(*db).read(row.blob_id, name, [](const char*, std::size_t) {}, {});
  } catch (const Error& e) {
    throw Error(e.code(), fmt::format("refusing to {} {}: its stored bytes fail verification ({}); register the "
                                      "original file again or restore the database from a backup",
                                      verb, name, e.what()));
  }
}

void Registry::Impl::set_active(const VersionRow& target, const std::optional<VersionRow>& current) {
  if (current) {
    SQLite::Statement off(*db, "UPDATE versions SET is_active = 0 WHERE id = ?");
    off.bind(1, current->id);
    off.exec();
  }
  SQLite::Statement on(*db, "UPDATE versions SET is_active = 1 WHERE id = ?");
  on.bind(1, target.id);
  on.exec();
}

Transition Registry::rollback(std::string_view model, const RollbackOptions& options) {
  if (options.to && options.to->model() != model) {
    throw Error(Errc::invalid_argument, fmt::format("cannot roll '{}' back to {}: it belongs to another model", model,
                                                    options.to->to_string()));
  }
  const std::string alias = Impl::alias_name(model, options.alias);
  const bool active = alias == "active";
  // How the alias is named in messages: "the active version", "fraud@champion".
  const std::string pointer = fmt::format("{}@{}", model, alias);
  const std::string context = active ? fmt::format("rolling back '{}'", model) : fmt::format("rolling back {}", pointer);
  return impl_->write(context, options.actor, [&](const std::string& who) {
    const std::int64_t mid = impl_->require_model(model);
    const auto current = impl_->alias_row(mid, alias);
    std::optional<VersionRow> target;
    if (options.to) {
      target = impl_->require_row(*options.to);
      if (target->archived) {
        throw Error(Errc::conflict, fmt::format("cannot roll back to {}@{}: it is archived; unarchive it first", model,
                                                target->number));
      }
      if (current && current->id == target->id) {
        throw Error(Errc::conflict, active ? fmt::format("{}@{} is already the active version", model, target->number)
                                           : fmt::format("{} already points at {}@{}", pointer, model, target->number));
      }
    } else {
      std::vector<std::int64_t> stack = impl_->alias_stack(mid, alias);
      // Walk back past the current version and any version archived or deleted since.
      std::vector<std::string> gone;  // earlier versions passed over, and why
      while (!stack.empty()) {
        const std::int64_t n = stack.back();
        stack.pop_back();
        if (current && n == current->number) continue;
        auto row = impl_->row_by_number(mid, n);
        if (row && !row->archived) {
          target = row;
          break;
        }
        gone.push_back(fmt::format("{}@{} {}", model, n, row ? "is archived" : "was deleted"));
      }
      if (!target) {
        if (active) {
          const std::string now =
              current ? fmt::format("{}@{} is active", model, current->number) : "nothing is active";
          const std::string before =
              gone.empty() ? "no other version was ever active"
                           : fmt::format("of the versions active before, {}", fmt::join(gone, ", "));
          throw Error(Errc::conflict, fmt::format("'{}' has no earlier active version to roll back to ({}; {}); "
                                                  "promote a version instead (see `modelreg history {}`)",
                                                  model, now, before, model));
        }
        const std::string now = current ? fmt::format("it points at {}@{}", model, current->number)
                                        : std::string("it points nowhere");
        const std::string before =
            gone.empty() ? "it never pointed at another version"
                         : fmt::format("of the versions it pointed at before, {}", fmt::join(gone, ", "));
        throw Error(Errc::conflict, fmt::format("{} has no earlier version to roll back to ({}; {}); set it instead "
                                                "(see `modelreg history {}`)",
                                                pointer, now, before, model));
      }
    }
    impl_->check_activatable(*target, active ? std::string("roll back to") : fmt::format("roll {} back to", pointer));
    impl_->point_alias(*target, alias, current, who);
    Transition t{std::string(model), current ? std::optional(current->number) : std::nullopt, target->number, alias};
    impl_->record_event(mid, EventKind::rollback, target->number, t.from_version, target->number, who, options.reason,
                        {}, alias);
    return t;
  });
}

void Registry::archive(const ModelRef& ref, const Change& change) {
  impl_->write(fmt::format("archiving {}", ref.to_string()), change.actor, [&](const std::string& who) {
    const VersionRow row = impl_->require_row(ref);
    if (row.active) {
      throw Error(Errc::conflict, fmt::format("{} is the active version and cannot be archived; promote or roll back "
                                              "to another version first",
                                              impl_->version_id_of(row.id).to_string()));
    }
    if (const auto held = impl_->aliases_of(row.id, false); !held.empty()) {
      const VersionId id = impl_->version_id_of(row.id);
      throw Error(Errc::conflict, fmt::format("{} holds the alias{} {} and cannot be archived; point {} at another "
                                              "version or remove {} first (modelreg alias remove {} {})",
                                              id.to_string(), held.size() == 1 ? "" : "es", fmt::join(held, ", "),
                                              held.size() == 1 ? "it" : "them", held.size() == 1 ? "it" : "them",
                                              id.model, held.front()));
    }
    if (row.archived) return;
    SQLite::Statement q(*impl_->db, "UPDATE versions SET status = 'archived' WHERE id = ?");
    q.bind(1, row.id);
    q.exec();
    impl_->record_event(row.model_id, EventKind::archive, row.number, std::nullopt, std::nullopt, who, change.reason);
  });
}

void Registry::unarchive(const ModelRef& ref, const Change& change) {
  impl_->write(fmt::format("unarchiving {}", ref.to_string()), change.actor, [&](const std::string& who) {
    const VersionRow row = impl_->require_row(ref);
    if (!row.archived) {
      throw Error(Errc::conflict, fmt::format("{} is not archived{}; there is nothing to unarchive",
                                              impl_->version_id_of(row.id).to_string(),
                                              row.active ? " (it is the active version)" : ""));
    }
    SQLite::Statement q(*impl_->db, "UPDATE versions SET status = 'ready' WHERE id = ?");
    q.bind(1, row.id);
    q.exec();
    impl_->record_event(row.model_id, EventKind::unarchive, row.number, std::nullopt, std::nullopt, who,
                        change.reason);
  });
}

void Registry::delete_version(const ModelRef& ref, const Change& change) {
  impl_->write(fmt::format("deleting {}", ref.to_string()), change.actor, [&](const std::string& who) {
    const VersionRow row = impl_->require_row(ref);
    const std::string name = impl_->version_id_of(row.id).to_string();
    if (!row.archived) {
      throw Error(Errc::conflict, fmt::format("{} is not archived; archive it first (deleting is permanent)", name));
    }
    SQLite::Statement children(*impl_->db, "SELECT child_id, relation FROM lineage WHERE parent_id = ? LIMIT 1");
    children.bind(1, row.id);
    if (children.executeStep()) {
      const VersionId child = impl_->version_id_of(children.getColumn(0).getInt64());
      throw Error(Errc::conflict, fmt::format("{} cannot be deleted: {} records it as a parent ({}); lineage is "
                                              "immutable, so keep {} archived",
                                              name, child.to_string(), children.getColumn(1).getString(), name));
    }
    children.reset();
    SQLite::Statement q(*impl_->db, "DELETE FROM versions WHERE id = ?");
    q.bind(1, row.id);
    q.exec();
    impl_->record_event(row.model_id, EventKind::delete_version, row.number, std::nullopt, std::nullopt, who,
                        change.reason);
  });
}

void Registry::set_tags(const ModelRef& ref, const std::map<std::string, std::string>& set,
                        const std::vector<std::string>& remove, const Change& change) {
  for (const auto& [key, value] : set) {
    check_text("tag key", key, 128, false);
    check_text(fmt::format("tag '{}'", key), value, 4096, true);
  }
  for (const auto& key : remove) {
    check_text("tag key", key, 128, false);
    if (set.count(key) != 0) {
      throw Error(Errc::invalid_argument,
                  fmt::format("tag '{}' is both set and removed; give it once", key));
    }
  }
  if (set.empty() && remove.empty()) {
    throw Error(Errc::invalid_argument, "no tag to set or remove; give KEY=VALUE to set or a KEY to remove");
  }
  impl_->write(fmt::format("tagging {}", ref.to_string()), change.actor, [&](const std::string& who) {
    const VersionRow row = impl_->require_row(ref);
    SQLite::Statement put(*impl_->db,
                          "INSERT INTO tags(version_id, key, value) VALUES (?, ?, ?) "
                          "ON CONFLICT(version_id, key) DO UPDATE SET value = excluded.value");
    for (const auto& [key, value] : set) {
      put.bind(1, row.id);
      put.bind(2, key);
      put.bind(3, value);
      put.exec();
      put.reset();
      impl_->record_event(row.model_id, EventKind::tag, row.number, std::nullopt, std::nullopt, who, change.reason,
                          fmt::format("{}={}", key, value));
    }
    SQLite::Statement drop(*impl_->db, "DELETE FROM tags WHERE version_id = ? AND key = ?");
    for (const auto& key : remove) {
      drop.bind(1, row.id);
      drop.bind(2, key);
      if (drop.exec() == 0) {  // the whole call rolls back: no tag was changed
        throw Error(Errc::not_found, fmt::format("{} has no tag '{}'; nothing was changed",
                                                 impl_->version_id_of(row.id).to_string(), key));
      }
      drop.reset();
      impl_->record_event(row.model_id, EventKind::untag, row.number, std::nullopt, std::nullopt, who, change.reason,
                          key);
    }
  });
}

void Registry::set_tag(const ModelRef& ref, std::string_view key, std::string_view value, const Change& change) {
  set_tags(ref, {{std::string(key), std::string(value)}}, {}, change);
}

void Registry::remove_tag(const ModelRef& ref, std::string_view key, const Change& change) {
  set_tags(ref, {}, {std::string(key)}, change);
}

GcReport Registry::gc(const GcOptions& options) {
  if (!options.dry_run) impl_->ensure_writable();
  const std::string who = impl_->actor(options.actor);
  return guarded("collecting garbage", [&] {
    std::lock_guard lock(impl_->mutex);
    SQLite::Database& db = *impl_->db;
    GcReport report;
    report.dry_run = options.dry_run;
    {
      // A dry run only reads, but inside a savepoint it can delete and measure, then undo.
      std::optional<SQLite::Transaction> txn;
      if (!options.dry_run) txn.emplace(db, SQLite::TransactionBehavior::IMMEDIATE);
      detail::Savepoint dry(db, "gc");
      if (options.delete_archived) {
        SQLite::Statement archived(db,
                                   "SELECT v.id, v.model_id, v.number, m.name FROM versions v JOIN models m ON m.id = "
                                   "v.model_id WHERE v.status = 'archived' ORDER BY m.name, v.number DESC");
        std::map<std::int64_t, std::vector<std::int64_t>> stacks;
        struct Candidate {
          std::int64_t id, model_id, number;
          std::string model;
        };
        std::vector<Candidate> candidates;
        while (archived.executeStep()) {
          candidates.push_back({archived.getColumn(0).getInt64(), archived.getColumn(1).getInt64(),
                                archived.getColumn(2).getInt64(), archived.getColumn(3).getString()});
        }
        // Newest first, so a chain of archived versions is deleted child before parent.
        for (const auto& c : candidates) {
          const VersionId id{c.model, c.number};
          if (!options.include_rollback_history) {
            auto [it, fresh] = stacks.try_emplace(c.model_id);
            if (fresh) it->second = impl_->alias_history_versions(c.model_id);
            if (std::find(it->second.begin(), it->second.end(), c.number) != it->second.end()) {
              report.versions_kept.push_back(id);
              continue;
            }
          }
          SQLite::Statement child(db, "SELECT 1 FROM lineage WHERE parent_id = ? LIMIT 1");
          child.bind(1, c.id);
          if (child.executeStep()) {
            report.versions_kept.push_back(id);
            continue;
          }
          SQLite::Statement del(db, "DELETE FROM versions WHERE id = ?");
          del.bind(1, c.id);
          del.exec();
          impl_->record_event(c.model_id, EventKind::delete_version, c.number, std::nullopt, std::nullopt, who,
                              options.reason.empty() ? "gc" : options.reason, "garbage collection");
          report.versions_deleted.push_back(id);
        }
      }
      SQLite::Statement q(db,
                          "SELECT count(*), coalesce(sum(stored_size), 0), coalesce(sum(chunk_count), 0) FROM blobs b "
                          "WHERE NOT EXISTS (SELECT 1 FROM versions v WHERE v.blob_id = b.id)");
      q.executeStep();
      report.blobs_removed = static_cast<std::uint64_t>(q.getColumn(0).getInt64());
      report.bytes_freed = static_cast<std::uint64_t>(q.getColumn(1).getInt64());
      report.chunks_removed = static_cast<std::uint64_t>(q.getColumn(2).getInt64());
      q.reset();
      if (options.dry_run) {
        dry.rollback();
        return report;
      }
      db.exec("DELETE FROM blobs WHERE NOT EXISTS (SELECT 1 FROM versions v WHERE v.blob_id = blobs.id)");
      dry.release();
      txn->commit();
    }
    // Hand the freed pages back to the file system (auto_vacuum = INCREMENTAL).
    if (report.blobs_removed > 0) db.exec("PRAGMA incremental_vacuum");
    return report;
  });
}

}  // namespace modelreg
