-- modelreg schema, version 2: validation probes.
--
-- A probe is a few input rows (up to 16) and the outputs the model gave on them when it was saved.
-- On load, the rows are predicted again and must reproduce the outputs, so a model that loads but
-- computes something else never reaches production. Sealed with its version like the other
-- content (see 0001_initial.sql).

CREATE TABLE probes (
    version_id INTEGER PRIMARY KEY
               REFERENCES versions(id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    n_rows     INTEGER NOT NULL CHECK (n_rows BETWEEN 1 AND 16),
    n_features INTEGER NOT NULL CHECK (n_features >= 1),
    -- n_rows × n_features IEEE-754 doubles, little-endian, row after row.
    inputs     BLOB    NOT NULL,
    -- n_rows doubles: the probability of the positive class for each row.
    outputs    BLOB    NOT NULL,
    CHECK (length(inputs) = 8 * n_rows * n_features AND length(outputs) = 8 * n_rows)
);

CREATE TRIGGER probes_sealed BEFORE INSERT ON probes
WHEN EXISTS (SELECT 1 FROM versions WHERE id = NEW.version_id)
BEGIN SELECT RAISE(ABORT, 'modelreg: a committed version''s probe is immutable'); END;
CREATE TRIGGER probes_immutable BEFORE UPDATE ON probes
BEGIN SELECT RAISE(ABORT, 'modelreg: a committed version''s probe is immutable'); END;
CREATE TRIGGER probes_kept BEFORE DELETE ON probes
WHEN EXISTS (SELECT 1 FROM versions WHERE id = OLD.version_id)
BEGIN SELECT RAISE(ABORT, 'modelreg: a committed version''s probe is immutable'); END;

CREATE VIEW version_probes AS
SELECT m.name AS model, v.number AS version, p.n_rows AS n_rows, p.n_features AS n_features
FROM probes p JOIN versions v ON v.id = p.version_id JOIN models m ON m.id = v.model_id;
