-- modelreg schema, version 4: blobs that failed verification are repaired in place.
--
-- A blob is named by the SHA-256 of its raw bytes and shared by every version with those bytes.
-- When stored bytes rot, registering (or importing) the same bytes again must heal every version
-- that shares the blob, so the chunks of a committed blob may be replaced — but only inside a
-- repair: a row of blob_repairs, opened and closed in the one transaction that replaces the
-- chunks, after the new bytes were verified against the blob's SHA-256. The blob keeps its id,
-- its SHA-256 and its creation time (so versions and signatures still name it); its chunks, sizes
-- and codec may change. Repairs are an append-only record: who repaired which blob, when, why.

CREATE TABLE blob_repairs (
    id          INTEGER PRIMARY KEY,
    -- No foreign key: the record outlives the blob (gc may delete it later).
    blob_id     INTEGER NOT NULL,
    sha256      TEXT    NOT NULL CHECK (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*'),
    -- What verification of the stored bytes found.
    reason      TEXT    NOT NULL,
    repaired_at TEXT    NOT NULL,
    repaired_by TEXT    NOT NULL,
    -- 1 while the chunks are being replaced; 0 once the repair is complete (same transaction).
    in_progress INTEGER NOT NULL DEFAULT 1 CHECK (in_progress IN (0, 1))
);

-- At most one repair is ever in progress.
CREATE UNIQUE INDEX blob_repairs_one_in_progress ON blob_repairs(in_progress) WHERE in_progress = 1;

CREATE TRIGGER blob_repairs_open BEFORE INSERT ON blob_repairs
WHEN NEW.in_progress != 1
  OR NOT EXISTS (SELECT 1 FROM blobs WHERE id = NEW.blob_id AND sha256 = NEW.sha256)
BEGIN
    SELECT RAISE(ABORT, 'modelreg: a blob repair starts in progress and names an existing blob by its id and sha256');
END;

CREATE TRIGGER blob_repairs_close BEFORE UPDATE ON blob_repairs
WHEN NOT (OLD.in_progress = 1 AND NEW.in_progress = 0 AND NEW.id = OLD.id AND NEW.blob_id = OLD.blob_id
          AND NEW.sha256 = OLD.sha256 AND NEW.reason = OLD.reason AND NEW.repaired_at = OLD.repaired_at
          AND NEW.repaired_by = OLD.repaired_by)
BEGIN
    SELECT RAISE(ABORT, 'modelreg: a blob repair can only be completed; its record is immutable');
END;

CREATE TRIGGER blob_repairs_kept BEFORE DELETE ON blob_repairs
BEGIN
    SELECT RAISE(ABORT, 'modelreg: blob repairs are an append-only record');
END;

-- The blob and chunk triggers of version 1, with the one exception a repair in progress makes.
DROP TRIGGER blobs_immutable;
CREATE TRIGGER blobs_immutable BEFORE UPDATE ON blobs
WHEN NOT (NEW.id = OLD.id AND NEW.sha256 = OLD.sha256 AND NEW.created_at = OLD.created_at
          AND EXISTS (SELECT 1 FROM blob_repairs WHERE in_progress = 1 AND blob_id = OLD.id))
BEGIN
    SELECT RAISE(ABORT, 'modelreg: blobs are immutable');
END;

DROP TRIGGER blob_chunks_sealed;
CREATE TRIGGER blob_chunks_sealed BEFORE INSERT ON blob_chunks
WHEN EXISTS (SELECT 1 FROM blobs WHERE id = NEW.blob_id)
 AND NOT EXISTS (SELECT 1 FROM blob_repairs WHERE in_progress = 1 AND blob_id = NEW.blob_id)
BEGIN
    SELECT RAISE(ABORT, 'modelreg: a committed blob cannot gain chunks');
END;

DROP TRIGGER blob_chunks_kept;
CREATE TRIGGER blob_chunks_kept BEFORE DELETE ON blob_chunks
WHEN EXISTS (SELECT 1 FROM blobs WHERE id = OLD.blob_id)
 AND NOT EXISTS (SELECT 1 FROM blob_repairs WHERE in_progress = 1 AND blob_id = OLD.blob_id)
BEGIN
    SELECT RAISE(ABORT, 'modelreg: chunks of a committed blob cannot be deleted; delete the blob (modelreg gc)');
END;
