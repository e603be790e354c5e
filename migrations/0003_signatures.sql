-- modelreg schema, version 3: signed versions.
--
-- A signature is an HMAC-SHA256, under a key only its holders have, over a version's blob
-- checksum and its immutable metadata (see docs/format.md, "Signatures", for the exact message).
-- A registry opened with a signing key signs every version it writes and refuses to promote,
-- roll back to or load a version whose signature is missing or does not verify, before any
-- byte of it is deserialized.
--
-- A version has at most one signature. It may be added after the version was committed (an
-- imported or older version, signed with `modelreg sign`), but once there it never changes and
-- is deleted only with its version. Anyone who can write this file can add a row; nobody without
-- the key can add one that verifies.

CREATE TABLE signatures (
    version_id INTEGER PRIMARY KEY
               REFERENCES versions(id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    algorithm  TEXT    NOT NULL CHECK (algorithm = 'hmac-sha256'),
    -- The first 16 hex digits of SHA-256("modelreg-key-id:" || key): names the key, reveals nothing.
    key_id     TEXT    NOT NULL CHECK (length(key_id) = 16 AND key_id NOT GLOB '*[^0-9a-f]*'),
    -- 64 lower-case hex digits.
    mac        TEXT    NOT NULL CHECK (length(mac) = 64 AND mac NOT GLOB '*[^0-9a-f]*'),
    signed_at  TEXT    NOT NULL,
    signed_by  TEXT    NOT NULL
);

CREATE TRIGGER signatures_immutable BEFORE UPDATE ON signatures
BEGIN SELECT RAISE(ABORT, 'modelreg: a signature is immutable'); END;
CREATE TRIGGER signatures_kept BEFORE DELETE ON signatures
WHEN EXISTS (SELECT 1 FROM versions WHERE id = OLD.version_id)
BEGIN SELECT RAISE(ABORT, 'modelreg: a signature is deleted only with its version'); END;

CREATE VIEW version_signatures AS
SELECT m.name AS model, v.number AS version, s.algorithm AS algorithm, s.key_id AS key_id,
       s.signed_at AS signed_at, s.signed_by AS signed_by
FROM signatures s JOIN versions v ON v.id = s.version_id JOIN models m ON m.id = v.model_id;
