-- mobync: compacted history (PROTOCOL.md, "History"): per owner the horizon
-- below which the log is squashed and the purge horizon of tombstones; one
-- net row per (model, row id) below the horizon; the ids of squashed diffs,
-- kept for retries.
ALTER TABLE diffs_clocks ADD COLUMN horizon BIGINT NOT NULL DEFAULT 0;
ALTER TABLE diffs_clocks ADD COLUMN purged BIGINT NOT NULL DEFAULT 0;
CREATE TABLE diffs_net (
    owner TEXT NOT NULL,
    model TEXT NOT NULL,
    row_id TEXT NOT NULL,
    created_clock BIGINT,
    created_ts BIGINT,
    created_id TEXT,
    deleted_clock BIGINT,
    deleted_ts BIGINT,
    deleted_id TEXT,
    born BIGINT,
    fields TEXT NOT NULL,
    last_clock BIGINT NOT NULL,
    PRIMARY KEY (owner, model, row_id)
);
CREATE INDEX diffs_net_last ON diffs_net (owner, last_clock);
CREATE TABLE diffs_squashed (
    owner TEXT NOT NULL,
    id TEXT NOT NULL,
    logical_clock BIGINT NOT NULL,
    squashed_at BIGINT NOT NULL,
    PRIMARY KEY (owner, id)
);
CREATE INDEX diffs_squashed_at ON diffs_squashed (owner, squashed_at);
