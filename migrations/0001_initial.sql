-- modelreg schema, version 1.
--
-- Invariants live here, not only in C++: a user with the sqlite3 shell gets an error when they
-- try to break one. Content rows (metrics, params, features, lineage, datasets, blob chunks) are
-- written *before* the row that seals them (the version row, the blob row) in the same
-- transaction; once the sealing row exists, triggers refuse every insert, update or delete of
-- its content. Foreign keys from content to the sealing row are therefore DEFERRABLE.

CREATE TABLE models (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE
                CHECK (length(name) BETWEEN 1 AND 128
                       AND substr(name, 1, 1) GLOB '[A-Za-z0-9]'
                       AND name NOT GLOB '*[^A-Za-z0-9_.-]*'),
    created_at  TEXT    NOT NULL,
    -- Highest version number ever given out; numbers are never reused, even after a delete.
    last_number INTEGER NOT NULL DEFAULT 0 CHECK (last_number >= 0)
);

CREATE TRIGGER models_immutable BEFORE UPDATE OF id, name, created_at ON models
BEGIN
    SELECT RAISE(ABORT, 'modelreg: a model''s id, name and created_at never change');
END;

CREATE TRIGGER models_numbers_only_grow BEFORE UPDATE OF last_number ON models
WHEN NEW.last_number < OLD.last_number
BEGIN
    SELECT RAISE(ABORT, 'modelreg: version numbers are never reused (last_number only grows)');
END;

CREATE TRIGGER models_never_deleted BEFORE DELETE ON models
BEGIN
    SELECT RAISE(ABORT, 'modelreg: models are never deleted; delete their archived versions instead');
END;

-- A blob is the serialized bytes of a model, identified by the SHA-256 of the raw bytes and
-- stored as independent chunks (each its own zstd frame, or raw when codec = 'none').
CREATE TABLE blobs (
    id          INTEGER PRIMARY KEY,
    sha256      TEXT    NOT NULL UNIQUE
                CHECK (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*'),
    raw_size    INTEGER NOT NULL CHECK (raw_size >= 0),
    stored_size INTEGER NOT NULL CHECK (stored_size >= 0),
    codec       TEXT    NOT NULL CHECK (codec IN ('none', 'zstd')),
    level       INTEGER NOT NULL CHECK (level BETWEEN 0 AND 22),
    chunk_size  INTEGER NOT NULL CHECK (chunk_size > 0),
    chunk_count INTEGER NOT NULL CHECK (chunk_count >= 0),
    created_at  TEXT    NOT NULL
);

CREATE TRIGGER blobs_immutable BEFORE UPDATE ON blobs
BEGIN
    SELECT RAISE(ABORT, 'modelreg: blobs are immutable');
END;

CREATE TABLE blob_chunks (
    blob_id  INTEGER NOT NULL REFERENCES blobs(id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    seq      INTEGER NOT NULL CHECK (seq >= 0),
    raw_size INTEGER NOT NULL CHECK (raw_size >= 0),
    -- XXH3-64 of `data` (as stored), checked before the chunk is decompressed or emitted.
    checksum INTEGER NOT NULL,
    data     BLOB    NOT NULL,
    PRIMARY KEY (blob_id, seq)
);

CREATE TRIGGER blob_chunks_sealed BEFORE INSERT ON blob_chunks
WHEN EXISTS (SELECT 1 FROM blobs WHERE id = NEW.blob_id)
BEGIN
    SELECT RAISE(ABORT, 'modelreg: a committed blob cannot gain chunks');
END;

CREATE TRIGGER blob_chunks_immutable BEFORE UPDATE ON blob_chunks
BEGIN
    SELECT RAISE(ABORT, 'modelreg: blob chunks are immutable');
END;

CREATE TRIGGER blob_chunks_kept BEFORE DELETE ON blob_chunks
WHEN EXISTS (SELECT 1 FROM blobs WHERE id = OLD.blob_id)
BEGIN
    SELECT RAISE(ABORT, 'modelreg: chunks of a committed blob cannot be deleted; delete the blob (modelreg gc)');
END;

CREATE TABLE versions (
    id            INTEGER PRIMARY KEY,
    model_id      INTEGER NOT NULL REFERENCES models(id),
    number        INTEGER NOT NULL CHECK (number >= 1),
    label         TEXT
                  CHECK (label IS NULL
                         OR (length(label) BETWEEN 1 AND 64
                             AND substr(label, 1, 1) GLOB '[A-Za-z]'
                             AND label NOT GLOB '*[^A-Za-z0-9_.+-]*'
                             AND label NOT IN ('active', 'latest'))),
    format        TEXT    NOT NULL CHECK (length(format) BETWEEN 1 AND 64),
    type_name     TEXT    NOT NULL DEFAULT '',
    blob_id       INTEGER NOT NULL REFERENCES blobs(id),
    feature_count INTEGER NOT NULL DEFAULT 0 CHECK (feature_count >= 0),
    notes         TEXT    NOT NULL DEFAULT '',
    created_at    TEXT    NOT NULL,
    created_by    TEXT    NOT NULL,
    status        TEXT    NOT NULL DEFAULT 'ready' CHECK (status IN ('ready', 'archived')),
    is_active     INTEGER NOT NULL DEFAULT 0 CHECK (is_active IN (0, 1)),
    CHECK (NOT (is_active = 1 AND status = 'archived')),
    UNIQUE (model_id, number),
    UNIQUE (model_id, label)
);

-- At most one active version per model.
CREATE UNIQUE INDEX versions_one_active ON versions(model_id) WHERE is_active = 1;
CREATE INDEX versions_by_blob ON versions(blob_id);

CREATE TRIGGER versions_number_issued BEFORE INSERT ON versions
WHEN NEW.number > (SELECT last_number FROM models WHERE id = NEW.model_id)
BEGIN
    SELECT RAISE(ABORT, 'modelreg: version number not issued; raise models.last_number first');
END;

CREATE TRIGGER versions_feature_count BEFORE INSERT ON versions
WHEN NEW.feature_count <> (SELECT count(*) FROM features WHERE version_id = NEW.id)
BEGIN
    SELECT RAISE(ABORT, 'modelreg: feature_count must equal the number of feature rows');
END;

CREATE TRIGGER versions_immutable
BEFORE UPDATE OF id, model_id, number, label, format, type_name, blob_id, feature_count, notes,
                 created_at, created_by ON versions
BEGIN
    SELECT RAISE(ABORT, 'modelreg: a committed version is immutable (only status and active change)');
END;

CREATE TRIGGER versions_delete_archived_only BEFORE DELETE ON versions
WHEN OLD.status <> 'archived'
BEGIN
    SELECT RAISE(ABORT, 'modelreg: only archived versions can be deleted; archive it first');
END;

CREATE TABLE metrics (
    version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    name       TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    value      REAL    NOT NULL,
    PRIMARY KEY (version_id, name)
) WITHOUT ROWID;
CREATE INDEX metrics_by_name ON metrics(name, value);

CREATE TABLE params (
    version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    name       TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    value      TEXT    NOT NULL,
    PRIMARY KEY (version_id, name)
) WITHOUT ROWID;

CREATE TABLE features (
    version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    position   INTEGER NOT NULL CHECK (position >= 0),
    name       TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 256),
    dtype      TEXT    NOT NULL CHECK (length(dtype) BETWEEN 1 AND 32),
    PRIMARY KEY (version_id, position),
    UNIQUE (version_id, name)
) WITHOUT ROWID;

CREATE TABLE lineage (
    child_id  INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    parent_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE RESTRICT,
    relation  TEXT    NOT NULL
              CHECK (length(relation) BETWEEN 1 AND 64 AND relation NOT GLOB '*[^a-z0-9_]*'),
    PRIMARY KEY (child_id, parent_id, relation),
    CHECK (child_id <> parent_id)
) WITHOUT ROWID;
CREATE INDEX lineage_by_parent ON lineage(parent_id);

CREATE TABLE datasets (
    version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    uri        TEXT    NOT NULL CHECK (length(uri) >= 1),
    sha256     TEXT    CHECK (sha256 IS NULL OR (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*')),
    role       TEXT    NOT NULL CHECK (length(role) BETWEEN 1 AND 32),
    PRIMARY KEY (version_id, uri, role)
) WITHOUT ROWID;

-- Content written with a version is sealed by the version row: once it exists, nothing changes.
CREATE TRIGGER metrics_sealed BEFORE INSERT ON metrics
WHEN EXISTS (SELECT 1 FROM versions WHERE id = NEW.version_id)
BEGIN SELECT RAISE(ABORT, 'modelreg: a committed version''s metrics are immutable'); END;
CREATE TRIGGER metrics_immutable BEFORE UPDATE ON metrics
BEGIN SELECT RAISE(ABORT, 'modelreg: a committed version''s metrics are immutable'); END;
CREATE TRIGGER metrics_kept BEFORE DELETE ON metrics
WHEN EXISTS (SELECT 1 FROM versions WHERE id = OLD.version_id)
BEGIN SELECT RAISE(ABORT, 'modelreg: a committed version''s metrics are immutable'); END;

CREATE TRIGGER params_sealed BEFORE INSERT ON params
WHEN EXISTS (SELECT 1 FROM versions WHERE id = NEW.version_id)
BEGIN SELECT RAISE(ABORT, 'modelreg: a committed version''s params are immutable'); END;
CREATE TRIGGER params_immutable BEFORE UPDATE ON params
BEGIN SELECT RAISE(ABORT, 'modelreg: a committed version''s params are immutable'); END;
CREATE TRIGGER params_kept BEFORE DELETE ON params
WHEN EXISTS (SELECT 1 FROM versions WHERE id = OLD.version_id)
BEGIN SELECT RAISE(ABORT, 'modelreg: a committed version''s params are immutable'); END;

CREATE TRIGGER features_sealed BEFORE INSERT ON features
WHEN EXISTS (SELECT 1 FROM versions WHERE id = NEW.version_id)
BEGIN SELECT RAISE(ABORT, 'modelreg: a committed version''s features are immutable'); END;
CREATE TRIGGER features_immutable BEFORE UPDATE ON features
BEGIN SELECT RAISE(ABORT, 'modelreg: a committed version''s features are immutable'); END;
CREATE TRIGGER features_kept BEFORE DELETE ON features
WHEN EXISTS (SELECT 1 FROM versions WHERE id = OLD.version_id)
BEGIN SELECT RAISE(ABORT, 'modelreg: a committed version''s features are immutable'); END;

CREATE TRIGGER lineage_sealed BEFORE INSERT ON lineage
WHEN EXISTS (SELECT 1 FROM versions WHERE id = NEW.child_id)
BEGIN SELECT RAISE(ABORT, 'modelreg: a committed version''s lineage is immutable'); END;
CREATE TRIGGER lineage_immutable BEFORE UPDATE ON lineage
BEGIN SELECT RAISE(ABORT, 'modelreg: a committed version''s lineage is immutable'); END;
CREATE TRIGGER lineage_kept BEFORE DELETE ON lineage
WHEN EXISTS (SELECT 1 FROM versions WHERE id = OLD.child_id)
BEGIN SELECT RAISE(ABORT, 'modelreg: a committed version''s lineage is immutable'); END;

CREATE TRIGGER datasets_sealed BEFORE INSERT ON datasets
WHEN EXISTS (SELECT 1 FROM versions WHERE id = NEW.version_id)
BEGIN SELECT RAISE(ABORT, 'modelreg: a committed version''s datasets are immutable'); END;
CREATE TRIGGER datasets_immutable BEFORE UPDATE ON datasets
BEGIN SELECT RAISE(ABORT, 'modelreg: a committed version''s datasets are immutable'); END;
CREATE TRIGGER datasets_kept BEFORE DELETE ON datasets
WHEN EXISTS (SELECT 1 FROM versions WHERE id = OLD.version_id)
BEGIN SELECT RAISE(ABORT, 'modelreg: a committed version''s datasets are immutable'); END;

-- Tags are the one mutable annotation: they can be set and removed after commit (with an event).
CREATE TABLE tags (
    version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    key        TEXT    NOT NULL CHECK (length(key) BETWEEN 1 AND 128),
    value      TEXT    NOT NULL,
    PRIMARY KEY (version_id, key)
) WITHOUT ROWID;
CREATE INDEX tags_by_key ON tags(key, value);

-- The audit log: append-only. Model name and version numbers are copied (not foreign keys) so
-- the history of a deleted version stays readable.
CREATE TABLE events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    model_id     INTEGER NOT NULL REFERENCES models(id),
    kind         TEXT    NOT NULL
                 CHECK (kind IN ('register', 'promote', 'rollback', 'archive', 'unarchive',
                                 'delete', 'tag', 'untag')),
    version      INTEGER,
    from_version INTEGER,
    to_version   INTEGER,
    actor        TEXT    NOT NULL,
    reason       TEXT    NOT NULL DEFAULT '',
    at           TEXT    NOT NULL,
    details      TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX events_by_model ON events(model_id, id);

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'modelreg: the events table is append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'modelreg: the events table is append-only'); END;

-- Views for SQL users: names and numbers instead of ids.
CREATE VIEW model_versions AS
SELECT m.name        AS model,
       v.number      AS version,
       v.label       AS label,
       v.status      AS status,
       v.is_active   AS active,
       v.format      AS format,
       v.type_name   AS type_name,
       v.feature_count AS feature_count,
       b.raw_size    AS raw_size,
       b.stored_size AS stored_size,
       round(CAST(b.raw_size AS REAL) / max(b.stored_size, 1), 3) AS ratio,
       b.codec       AS codec,
       b.level       AS level,
       b.chunk_count AS chunk_count,
       b.sha256      AS sha256,
       v.notes       AS notes,
       v.created_at  AS created_at,
       v.created_by  AS created_by
FROM versions v
JOIN models m ON m.id = v.model_id
JOIN blobs  b ON b.id = v.blob_id;

CREATE VIEW model_summary AS
SELECT m.name AS model,
       (SELECT count(*) FROM versions v WHERE v.model_id = m.id) AS versions,
       (SELECT v.number FROM versions v WHERE v.model_id = m.id AND v.is_active = 1) AS active_version,
       (SELECT max(v.number) FROM versions v WHERE v.model_id = m.id) AS latest_version,
       m.created_at AS created_at
FROM models m;

CREATE VIEW version_metrics AS
SELECT m.name AS model, v.number AS version, x.name AS metric, x.value AS value
FROM metrics x JOIN versions v ON v.id = x.version_id JOIN models m ON m.id = v.model_id;

CREATE VIEW version_params AS
SELECT m.name AS model, v.number AS version, x.name AS param, x.value AS value
FROM params x JOIN versions v ON v.id = x.version_id JOIN models m ON m.id = v.model_id;

CREATE VIEW version_features AS
SELECT m.name AS model, v.number AS version, x.position AS position, x.name AS feature, x.dtype AS dtype
FROM features x JOIN versions v ON v.id = x.version_id JOIN models m ON m.id = v.model_id;

CREATE VIEW version_tags AS
SELECT m.name AS model, v.number AS version, x.key AS key, x.value AS value
FROM tags x JOIN versions v ON v.id = x.version_id JOIN models m ON m.id = v.model_id;

CREATE VIEW version_datasets AS
SELECT m.name AS model, v.number AS version, x.uri AS uri, x.sha256 AS sha256, x.role AS role
FROM datasets x JOIN versions v ON v.id = x.version_id JOIN models m ON m.id = v.model_id;

CREATE VIEW lineage_edges AS
SELECT cm.name AS child_model, c.number AS child_version,
       pm.name AS parent_model, p.number AS parent_version,
       l.relation AS relation
FROM lineage l
JOIN versions c  ON c.id = l.child_id  JOIN models cm ON cm.id = c.model_id
JOIN versions p  ON p.id = l.parent_id JOIN models pm ON pm.id = p.model_id;

CREATE VIEW model_events AS
SELECT e.id AS id, m.name AS model, e.kind AS kind, e.version AS version,
       e.from_version AS from_version, e.to_version AS to_version,
       e.actor AS actor, e.reason AS reason, e.at AS at, e.details AS details
FROM events e JOIN models m ON m.id = e.model_id;
