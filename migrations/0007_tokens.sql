-- modelreg schema, version 7: access tokens of the HTTP API (`modelreg ui`, `modelreg token`).
--
-- A token is a random secret a client sends as `Authorization: Bearer TOKEN`. It is shown once, when
-- created; the registry keeps only its SHA-256. A plain hash, not a slow password hash (bcrypt,
-- scrypt): the token is 256 bits from OpenSSL's RAND_bytes, so nobody can guess it or search for a
-- preimage however fast the hash is, and a fast hash lets every request be checked in microseconds.
-- Everyone who may read the registry (`modelreg sql`, a copy of the file) sees the hashes, and
-- cannot use them: a hash is not a token.
--
-- The rules, enforced here so that the sqlite3 shell cannot break them either:
--   a token's name is unique for ever (rows are never deleted; revoke one instead);
--   its hash, role, model glob and creation never change;
--   revocation sets revoked_at and revoked_by together, once: a revoked token stays revoked.
CREATE TABLE tokens (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE
                CHECK (length(name) BETWEEN 1 AND 64
                       AND substr(name, 1, 1) GLOB '[A-Za-z0-9]'
                       AND name NOT GLOB '*[^A-Za-z0-9_.@+-]*'),
    -- Lower-case hex of the SHA-256 of the token's text.
    hash        TEXT    NOT NULL UNIQUE
                CHECK (length(hash) = 64 AND hash NOT GLOB '*[^0-9a-f]*'),
    role        TEXT    NOT NULL CHECK (role IN ('reader', 'writer', 'promoter', 'admin')),
    -- fnmatch(3) pattern on model names (fraud*, team-?-*); NULL: every model.
    model_glob  TEXT    CHECK (model_glob IS NULL
                               OR (length(model_glob) BETWEEN 1 AND 256 AND model_glob NOT GLOB '*[^ -~]*')),
    created_at  TEXT    NOT NULL,
    created_by  TEXT    NOT NULL,
    revoked_at  TEXT,
    revoked_by  TEXT,
    CHECK ((revoked_at IS NULL) = (revoked_by IS NULL))
);

CREATE TRIGGER tokens_no_delete BEFORE DELETE ON tokens
BEGIN SELECT RAISE(ABORT, 'modelreg: tokens are never deleted; revoke one instead'); END;

CREATE TRIGGER tokens_checked_update BEFORE UPDATE ON tokens
BEGIN
    SELECT RAISE(ABORT, 'modelreg: a revoked token stays revoked')
    WHERE OLD.revoked_at IS NOT NULL;
    SELECT RAISE(ABORT, 'modelreg: a token keeps its name, hash, role, model glob and creation; only revocation changes it')
    WHERE NEW.id IS NOT OLD.id OR NEW.name IS NOT OLD.name OR NEW.hash IS NOT OLD.hash OR NEW.role IS NOT OLD.role
       OR NEW.model_glob IS NOT OLD.model_glob OR NEW.created_at IS NOT OLD.created_at
       OR NEW.created_by IS NOT OLD.created_by;
END;
