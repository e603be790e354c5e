-- modelreg schema, version 8: webhooks.
--
-- A webhook is a URL that is told, by an HTTP POST, about each event of the audit log whose kind it
-- subscribes to. The delivery worker (in `modelreg ui` and `modelreg webhook run`) reads the
-- events after the webhook's cursor in id order, posts each, and records every attempt; it moves
-- the cursor past an event only in the transaction that records the event's final attempt
-- (delivered, or failed after the retry budget). So a crash between the commit of an event and its
-- delivery, or between a POST and its record, delivers it again: at least once, in id order, which
-- is each model's order too.
--
-- The rules, enforced here so that the sqlite3 shell cannot break them either:
--   webhooks are never deleted (a removed one keeps its row, marked removed, and its delivery
--   records); what a webhook is (URL, secret file, kinds) never changes — add another instead;
--   a removed webhook stays removed and is given no more attempts;
--   kinds come from a fixed set, and the mapping from audit-log kinds to them is a table of its own;
--   delivery records are append-only, numbered 1, 2, 3… per (webhook, event), only for an event the
--   webhook subscribes to and has not settled, and 'delivered' exactly when the answer was 2xx;
--   the cursor only moves forward, never past the newest event, and never past a subscribed event
--   whose final attempt is not recorded.
--
-- The secret is not stored here: only the absolute path of a file (mode 600) holding it, read
-- by the delivering process. Everyone who may read the registry (`modelreg sql`, a reader token's
-- read-only SQL over the API, a copy of the file) could otherwise read the secret and forge
-- deliveries.

-- Which audit-log kinds (events.kind) each webhook kind covers. tag and untag are not delivered.
CREATE TABLE webhook_actions (
    action TEXT PRIMARY KEY,
    kind   TEXT NOT NULL CHECK (kind IN ('register', 'promote', 'rollback', 'alias', 'archive', 'delete'))
) WITHOUT ROWID;
INSERT INTO webhook_actions(action, kind) VALUES
    ('register', 'register'), ('promote', 'promote'), ('rollback', 'rollback'),
    ('alias_set', 'alias'), ('alias_remove', 'alias'),
    ('archive', 'archive'), ('unarchive', 'archive'), ('delete', 'delete');

CREATE TRIGGER webhook_actions_fixed_insert BEFORE INSERT ON webhook_actions
BEGIN SELECT RAISE(ABORT, 'modelreg: the webhook kinds are fixed by the schema'); END;
CREATE TRIGGER webhook_actions_fixed_update BEFORE UPDATE ON webhook_actions
BEGIN SELECT RAISE(ABORT, 'modelreg: the webhook kinds are fixed by the schema'); END;
CREATE TRIGGER webhook_actions_fixed_delete BEFORE DELETE ON webhook_actions
BEGIN SELECT RAISE(ABORT, 'modelreg: the webhook kinds are fixed by the schema'); END;

-- Ids are never reused (rows are never deleted), so a delivery record names one webhook forever.
CREATE TABLE webhooks (
    id          INTEGER PRIMARY KEY,
    -- http:// or https://, a host, printable ASCII without spaces. The C++ side also refuses
    -- credentials (user:password@) and malformed ports, with a message.
    url         TEXT    NOT NULL
                CHECK (length(url) BETWEEN 8 AND 2048
                       AND (url GLOB 'http://?*' OR url GLOB 'https://?*')
                       AND url NOT GLOB '*[^!-~]*'),
    -- The secret file's absolute path, or NULL: deliveries are then not signed.
    secret_file TEXT
                CHECK (secret_file IS NULL OR (length(secret_file) BETWEEN 2 AND 4096 AND substr(secret_file, 1, 1) = '/')),
    created_at  TEXT    NOT NULL,
    created_by  TEXT    NOT NULL,
    removed_at  TEXT,
    removed_by  TEXT,
    -- The cursor: every subscribed event up to this id is settled (delivered, or failed for good).
    -- A new webhook starts at the newest event: it is told about what happens from then on.
    delivered_through INTEGER NOT NULL CHECK (delivered_through >= 0),
    CHECK ((removed_at IS NULL) = (removed_by IS NULL))
);

-- The kinds a webhook subscribes to: written before their webhook row in the same transaction,
-- sealed by it (as a version seals its metrics).
CREATE TABLE webhook_kinds (
    webhook_id INTEGER NOT NULL REFERENCES webhooks(id) DEFERRABLE INITIALLY DEFERRED,
    kind       TEXT    NOT NULL CHECK (kind IN ('register', 'promote', 'rollback', 'alias', 'archive', 'delete')),
    PRIMARY KEY (webhook_id, kind)
) WITHOUT ROWID;

CREATE TRIGGER webhook_kinds_sealed BEFORE INSERT ON webhook_kinds
WHEN EXISTS (SELECT 1 FROM webhooks WHERE id = NEW.webhook_id)
BEGIN
    SELECT RAISE(ABORT, 'modelreg: a webhook''s kinds never change; add another webhook');
END;
CREATE TRIGGER webhook_kinds_no_update BEFORE UPDATE ON webhook_kinds
BEGIN SELECT RAISE(ABORT, 'modelreg: a webhook''s kinds never change; add another webhook'); END;
CREATE TRIGGER webhook_kinds_no_delete BEFORE DELETE ON webhook_kinds
BEGIN SELECT RAISE(ABORT, 'modelreg: a webhook''s kinds never change; add another webhook'); END;

CREATE TRIGGER webhooks_need_kinds BEFORE INSERT ON webhooks
WHEN NOT EXISTS (SELECT 1 FROM webhook_kinds WHERE webhook_id = NEW.id)
BEGIN
    SELECT RAISE(ABORT, 'modelreg: a webhook subscribes to at least one kind (insert its webhook_kinds first)');
END;

CREATE TRIGGER webhooks_new_cursor BEFORE INSERT ON webhooks
WHEN NEW.delivered_through > (SELECT coalesce(max(id), 0) FROM events)
BEGIN
    SELECT RAISE(ABORT, 'modelreg: a webhook''s cursor cannot pass the newest event');
END;

CREATE TRIGGER webhooks_immutable BEFORE UPDATE OF id, url, secret_file, created_at, created_by ON webhooks
BEGIN
    SELECT RAISE(ABORT, 'modelreg: a webhook''s URL, secret file and creation never change; add another webhook');
END;

CREATE TRIGGER webhooks_removed_once BEFORE UPDATE OF removed_at, removed_by ON webhooks
WHEN OLD.removed_at IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'modelreg: a removed webhook stays removed');
END;

CREATE TRIGGER webhooks_never_deleted BEFORE DELETE ON webhooks
BEGIN
    SELECT RAISE(ABORT, 'modelreg: webhooks are never deleted; remove them (their delivery records stay)');
END;

CREATE TRIGGER webhooks_cursor_moves BEFORE UPDATE OF delivered_through ON webhooks
WHEN NEW.delivered_through <> OLD.delivered_through
BEGIN
    SELECT RAISE(ABORT, 'modelreg: a webhook''s cursor only moves forward')
    WHERE NEW.delivered_through < OLD.delivered_through;
    SELECT RAISE(ABORT, 'modelreg: a removed webhook delivers nothing more')
    WHERE OLD.removed_at IS NOT NULL;
    SELECT RAISE(ABORT, 'modelreg: a webhook''s cursor cannot pass the newest event')
    WHERE NEW.delivered_through > (SELECT coalesce(max(id), 0) FROM events);
    SELECT RAISE(ABORT, 'modelreg: a webhook''s cursor cannot pass an event whose final attempt is not recorded')
    WHERE EXISTS (
        SELECT 1 FROM events e
        JOIN webhook_actions a ON a.action = e.kind
        JOIN webhook_kinds k ON k.webhook_id = NEW.id AND k.kind = a.kind
        WHERE e.id > OLD.delivered_through AND e.id <= NEW.delivered_through
          AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d
                          WHERE d.webhook_id = NEW.id AND d.event_id = e.id AND d.outcome IN ('delivered', 'failed')));
END;

-- Every attempt to deliver an event to a webhook, in the order they were made.
CREATE TABLE webhook_deliveries (
    id          INTEGER PRIMARY KEY,
    webhook_id  INTEGER NOT NULL REFERENCES webhooks(id),
    event_id    INTEGER NOT NULL REFERENCES events(id),
    attempt     INTEGER NOT NULL CHECK (attempt >= 1),
    at          TEXT    NOT NULL,
    -- The answer's status, or NULL when there was none (refused connection, timeout...): `error`
    -- then says what happened.
    http_status INTEGER CHECK (http_status IS NULL OR http_status BETWEEN 100 AND 599),
    error       TEXT    NOT NULL DEFAULT '',
    duration_ms INTEGER NOT NULL CHECK (duration_ms >= 0),
    -- delivered (a 2xx), retry (another attempt follows), failed (the last attempt: given up).
    outcome     TEXT    NOT NULL CHECK (outcome IN ('delivered', 'retry', 'failed')),
    CHECK ((outcome = 'delivered') = (http_status IS NOT NULL AND http_status BETWEEN 200 AND 299)),
    CHECK (http_status IS NOT NULL OR error <> ''),
    UNIQUE (webhook_id, event_id, attempt)
);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries(webhook_id, id);

CREATE TRIGGER webhook_deliveries_checked BEFORE INSERT ON webhook_deliveries
BEGIN
    SELECT RAISE(ABORT, 'modelreg: a removed webhook delivers nothing more')
    WHERE EXISTS (SELECT 1 FROM webhooks WHERE id = NEW.webhook_id AND removed_at IS NOT NULL);
    SELECT RAISE(ABORT, 'modelreg: the webhook does not subscribe to this event''s kind')
    WHERE NOT EXISTS (SELECT 1 FROM events e
                      JOIN webhook_actions a ON a.action = e.kind
                      JOIN webhook_kinds k ON k.webhook_id = NEW.webhook_id AND k.kind = a.kind
                      WHERE e.id = NEW.event_id);
    SELECT RAISE(ABORT, 'modelreg: the event is settled for this webhook (at or before its cursor)')
    WHERE NEW.event_id <= (SELECT delivered_through FROM webhooks WHERE id = NEW.webhook_id);
    SELECT RAISE(ABORT, 'modelreg: attempts are numbered 1, 2, 3... per webhook and event')
    WHERE NEW.attempt <> 1 + (SELECT count(*) FROM webhook_deliveries
                              WHERE webhook_id = NEW.webhook_id AND event_id = NEW.event_id);
END;

CREATE TRIGGER webhook_deliveries_no_update BEFORE UPDATE ON webhook_deliveries
BEGIN SELECT RAISE(ABORT, 'modelreg: webhook delivery records are append-only'); END;
CREATE TRIGGER webhook_deliveries_no_delete BEFORE DELETE ON webhook_deliveries
BEGIN SELECT RAISE(ABORT, 'modelreg: webhook delivery records are append-only'); END;

-- For SQL users: each attempt with the webhook's URL and the event's model and kind.
CREATE VIEW webhook_delivery_log AS
SELECT d.id AS id, d.webhook_id AS webhook, w.url AS url, d.event_id AS event, m.name AS model,
       e.kind AS action, a.kind AS kind, d.attempt AS attempt, d.at AS at, d.http_status AS http_status,
       d.error AS error, d.duration_ms AS duration_ms, d.outcome AS outcome
FROM webhook_deliveries d
JOIN webhooks w ON w.id = d.webhook_id
JOIN events e ON e.id = d.event_id
JOIN models m ON m.id = e.model_id
JOIN webhook_actions a ON a.action = e.kind;
