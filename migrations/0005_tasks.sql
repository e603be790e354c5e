-- modelreg schema, version 5: what a saved model predicts.
--
-- A model saved with save_model is one of three tasks: a binary classifier, a multiclass
-- classifier (k >= 3 classes) or a regression model. The task and the class labels (integers or
-- strings, in the order of the model's outputs) are stored with the version, sealed like its other
-- content, so clients know the output shape without loading the model; loading checks that the
-- model still says the same. Every model saved before this version was a binary classifier of
-- 0/1 labels, and is recorded as one here.
--
-- The probe's outputs become n_outputs values a row (the k class probabilities of a multiclass
-- model); the probes table is rebuilt with that column, its rows, triggers and view unchanged.

CREATE TABLE tasks (
    version_id INTEGER PRIMARY KEY
               REFERENCES versions(id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    task       TEXT    NOT NULL CHECK (task IN ('binary', 'multiclass', 'regression')),
    -- 'integer' or 'string' for a classifier; NULL for regression.
    label_type TEXT    CHECK (label_type IN ('integer', 'string')),
    -- A JSON array of the class labels in output order; NULL for regression.
    classes    TEXT,
    -- Values per row the model outputs: 1 (binary: P(second class); regression: the value) or k.
    n_outputs  INTEGER NOT NULL,
    CHECK ((task = 'regression') = (classes IS NULL) AND (classes IS NULL) = (label_type IS NULL)),
    CHECK (classes IS NULL OR (json_valid(classes) AND json_type(classes) = 'array')),
    CHECK (task != 'binary' OR json_array_length(classes) = 2),
    CHECK (task != 'multiclass' OR json_array_length(classes) >= 3),
    CHECK (n_outputs = CASE task WHEN 'multiclass' THEN json_array_length(classes) ELSE 1 END)
);

INSERT INTO tasks(version_id, task, label_type, classes, n_outputs)
SELECT id, 'binary', 'integer', '[0,1]', 1 FROM versions WHERE format = 'modelreg-model';

CREATE TRIGGER tasks_sealed BEFORE INSERT ON tasks
WHEN EXISTS (SELECT 1 FROM versions WHERE id = NEW.version_id)
BEGIN SELECT RAISE(ABORT, 'modelreg: a committed version''s task is immutable'); END;
CREATE TRIGGER tasks_immutable BEFORE UPDATE ON tasks
BEGIN SELECT RAISE(ABORT, 'modelreg: a committed version''s task is immutable'); END;
CREATE TRIGGER tasks_kept BEFORE DELETE ON tasks
WHEN EXISTS (SELECT 1 FROM versions WHERE id = OLD.version_id)
BEGIN SELECT RAISE(ABORT, 'modelreg: a committed version''s task is immutable'); END;

CREATE VIEW version_tasks AS
SELECT m.name AS model, v.number AS version, t.task AS task, t.label_type AS label_type,
       t.classes AS classes, t.n_outputs AS n_outputs
FROM tasks t JOIN versions v ON v.id = t.version_id JOIN models m ON m.id = v.model_id;

-- The probes, with n_outputs values a row. (DROP TABLE drops the old triggers first, so none fires.)
CREATE TABLE probes_v5 (
    version_id INTEGER PRIMARY KEY
               REFERENCES versions(id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    n_rows     INTEGER NOT NULL CHECK (n_rows BETWEEN 1 AND 16),
    n_features INTEGER NOT NULL CHECK (n_features >= 1),
    -- n_rows × n_features IEEE-754 doubles, little-endian, row after row.
    inputs     BLOB    NOT NULL,
    -- n_rows × n_outputs doubles: what the model output for each row when it was saved.
    outputs    BLOB    NOT NULL,
    n_outputs  INTEGER NOT NULL DEFAULT 1 CHECK (n_outputs BETWEEN 1 AND 100000),
    CHECK (length(inputs) = 8 * n_rows * n_features AND length(outputs) = 8 * n_rows * n_outputs)
);
INSERT INTO probes_v5(version_id, n_rows, n_features, inputs, outputs, n_outputs)
SELECT version_id, n_rows, n_features, inputs, outputs, 1 FROM probes;
DROP VIEW version_probes;
DROP TABLE probes;
ALTER TABLE probes_v5 RENAME TO probes;

CREATE TRIGGER probes_sealed BEFORE INSERT ON probes
WHEN EXISTS (SELECT 1 FROM versions WHERE id = NEW.version_id)
BEGIN SELECT RAISE(ABORT, 'modelreg: a committed version''s probe is immutable'); END;
CREATE TRIGGER probes_immutable BEFORE UPDATE ON probes
BEGIN SELECT RAISE(ABORT, 'modelreg: a committed version''s probe is immutable'); END;
CREATE TRIGGER probes_kept BEFORE DELETE ON probes
WHEN EXISTS (SELECT 1 FROM versions WHERE id = OLD.version_id)
BEGIN SELECT RAISE(ABORT, 'modelreg: a committed version''s probe is immutable'); END;

CREATE VIEW version_probes AS
SELECT m.name AS model, v.number AS version, p.n_rows AS n_rows, p.n_features AS n_features,
       p.n_outputs AS n_outputs
FROM probes p JOIN versions v ON v.id = p.version_id JOIN models m ON m.id = v.model_id;
