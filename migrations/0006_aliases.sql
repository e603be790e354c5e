-- modelreg schema, version 6: aliases.
--
-- An alias is a model's named pointer to one of its versions (fraud@champion, fraud@challenger).
-- `active` is the reserved default alias. It stays stored where version 1 put it, versions.is_active
-- with its partial unique index and its CHECK against archived versions: every reader already
-- looks there, and moving it would mean rebuilding versions, which nine tables reference. Every
-- other alias is a row of `aliases`; the model_aliases view lists both as one.
--
-- The rules, enforced here so that the sqlite3 shell cannot break them either:
--   one version per (model, alias): the primary key (the partial index for `active`);
--   an alias points at a version of its own model, never at an archived one, and a version that
--   holds an alias can be neither archived nor deleted;
--   aliases and labels share one namespace per model: an alias named like a label of its model is
--   refused, and so is a new version whose label is an alias of its model;
--   `active` and `latest`, in any case, are never a row here nor a label (the C++ side always
--   refused such labels; version 1's CHECK only knew the lower-case words).
--
-- Every move of an alias is an event. The events table is rebuilt with an `alias` column, set for
-- exactly the kinds that move one (promote, rollback, alias_set, alias_remove), and the two new
-- kinds. Rows keep their ids and the AUTOINCREMENT counter; the promote and rollback events of
-- older registries moved `active`, and say so.

CREATE TABLE aliases (
    model_id   INTEGER NOT NULL REFERENCES models(id),
    name       TEXT    NOT NULL
               CHECK (length(name) BETWEEN 1 AND 64
                      AND substr(name, 1, 1) GLOB '[A-Za-z]'
                      AND name NOT GLOB '*[^A-Za-z0-9_.+-]*'
                      AND lower(name) NOT IN ('active', 'latest')),
    version_id INTEGER NOT NULL REFERENCES versions(id),
    set_at     TEXT    NOT NULL,
    set_by     TEXT    NOT NULL,
    PRIMARY KEY (model_id, name)
) WITHOUT ROWID;
CREATE INDEX aliases_by_version ON aliases(version_id);

CREATE TRIGGER aliases_checked_insert BEFORE INSERT ON aliases
BEGIN
    SELECT RAISE(ABORT, 'modelreg: an alias points at a version of its own model')
    WHERE NOT EXISTS (SELECT 1 FROM versions WHERE id = NEW.version_id AND model_id = NEW.model_id);
    SELECT RAISE(ABORT, 'modelreg: an archived version cannot hold an alias; unarchive it first')
    WHERE EXISTS (SELECT 1 FROM versions WHERE id = NEW.version_id AND status = 'archived');
    SELECT RAISE(ABORT, 'modelreg: aliases and labels share one namespace per model, and this name is a label of the model')
    WHERE EXISTS (SELECT 1 FROM versions WHERE model_id = NEW.model_id AND label = NEW.name);
END;

-- Moving an alias changes its version (and when and by whom); its model and name stay.
CREATE TRIGGER aliases_checked_update BEFORE UPDATE ON aliases
BEGIN
    SELECT RAISE(ABORT, 'modelreg: an alias keeps its model and name; remove it and set another')
    WHERE NEW.model_id IS NOT OLD.model_id OR NEW.name IS NOT OLD.name;
    SELECT RAISE(ABORT, 'modelreg: an alias points at a version of its own model')
    WHERE NOT EXISTS (SELECT 1 FROM versions WHERE id = NEW.version_id AND model_id = NEW.model_id);
    SELECT RAISE(ABORT, 'modelreg: an archived version cannot hold an alias; unarchive it first')
    WHERE EXISTS (SELECT 1 FROM versions WHERE id = NEW.version_id AND status = 'archived');
END;

CREATE TRIGGER versions_label_namespace BEFORE INSERT ON versions
WHEN NEW.label IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'modelreg: active and latest, in any case, are reserved and cannot be labels')
    WHERE lower(NEW.label) IN ('active', 'latest');
    SELECT RAISE(ABORT, 'modelreg: labels and aliases share one namespace per model, and this label is an alias of the model')
    WHERE EXISTS (SELECT 1 FROM aliases WHERE model_id = NEW.model_id AND name = NEW.label);
END;

CREATE TRIGGER versions_archive_aliased BEFORE UPDATE OF status ON versions
WHEN NEW.status = 'archived' AND EXISTS (SELECT 1 FROM aliases WHERE version_id = NEW.id)
BEGIN
    SELECT RAISE(ABORT, 'modelreg: a version that holds an alias cannot be archived; move or remove the alias first');
END;

CREATE TRIGGER versions_delete_aliased BEFORE DELETE ON versions
WHEN EXISTS (SELECT 1 FROM aliases WHERE version_id = OLD.id)
BEGIN
    SELECT RAISE(ABORT, 'modelreg: a version that holds an alias cannot be deleted; move or remove the alias first');
END;

-- The audit log with the alias each move concerns. (DROP TABLE drops the old triggers and index.)
CREATE TABLE events_v6 (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    model_id     INTEGER NOT NULL REFERENCES models(id),
    kind         TEXT    NOT NULL
                 CHECK (kind IN ('register', 'promote', 'rollback', 'archive', 'unarchive',
                                 'delete', 'tag', 'untag', 'alias_set', 'alias_remove')),
    version      INTEGER,
    from_version INTEGER,
    to_version   INTEGER,
    actor        TEXT    NOT NULL,
    reason       TEXT    NOT NULL DEFAULT '',
    at           TEXT    NOT NULL,
    details      TEXT    NOT NULL DEFAULT '',
    -- The alias moved: `active` for promote, any alias for rollback, another alias for alias_set
    -- and alias_remove (whose to_version is NULL: the alias points at nothing from then on).
    alias        TEXT,
    CHECK ((alias IS NOT NULL) = (kind IN ('promote', 'rollback', 'alias_set', 'alias_remove'))),
    CHECK (kind <> 'promote' OR alias = 'active'),
    CHECK (kind NOT IN ('alias_set', 'alias_remove') OR lower(alias) NOT IN ('active', 'latest'))
);
INSERT INTO events_v6(id, model_id, kind, version, from_version, to_version, actor, reason, at, details, alias)
SELECT id, model_id, kind, version, from_version, to_version, actor, reason, at, details,
       CASE WHEN kind IN ('promote', 'rollback') THEN 'active' END
FROM events ORDER BY id;
-- AUTOINCREMENT: never reuse an id the old table gave out, even one whose insert rolled back.
DELETE FROM sqlite_sequence WHERE name = 'events_v6';
INSERT INTO sqlite_sequence(name, seq) SELECT 'events_v6', seq FROM sqlite_sequence WHERE name = 'events';
DROP VIEW model_events;
DROP TABLE events;
ALTER TABLE events_v6 RENAME TO events;
CREATE INDEX events_by_model ON events(model_id, id);
-- An alias's history, walked by rollback and by "what did the alias point to at time T".
CREATE INDEX events_by_alias ON events(model_id, alias, id) WHERE alias IS NOT NULL;

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'modelreg: the events table is append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'modelreg: the events table is append-only'); END;

CREATE VIEW model_events AS
SELECT e.id AS id, m.name AS model, e.kind AS kind, e.version AS version,
       e.from_version AS from_version, e.to_version AS to_version,
       e.actor AS actor, e.reason AS reason, e.at AS at, e.details AS details, e.alias AS alias
FROM events e JOIN models m ON m.id = e.model_id;

-- Every current alias, `active` included: when and by whom it was last moved (for `active`, its
-- last promote or rollback event).
CREATE VIEW model_aliases AS
SELECT m.name AS model, 'active' AS alias, v.number AS version, e.at AS set_at, e.actor AS set_by
FROM versions v
JOIN models m ON m.id = v.model_id
LEFT JOIN events e ON e.id = (SELECT max(x.id) FROM events x WHERE x.model_id = v.model_id AND x.alias = 'active')
WHERE v.is_active = 1
UNION ALL
SELECT m.name, a.name, v.number, a.set_at, a.set_by
FROM aliases a JOIN models m ON m.id = a.model_id JOIN versions v ON v.id = a.version_id;
