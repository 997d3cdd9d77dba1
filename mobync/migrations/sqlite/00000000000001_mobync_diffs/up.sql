-- mobync: the diff log, the per-owner clocks, the ids a merge dropped.
CREATE TABLE diffs (
    id TEXT NOT NULL,
    owner TEXT NOT NULL,
    logical_clock BIGINT NOT NULL,
    utc_timestamp BIGINT NOT NULL,
    type TEXT NOT NULL,
    model TEXT NOT NULL,
    json_data TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (owner, id)
);
CREATE INDEX diffs_owner_clock ON diffs (owner, logical_clock, seq);
CREATE TABLE diffs_clocks (
    owner TEXT NOT NULL PRIMARY KEY,
    logical_clock BIGINT NOT NULL
);
CREATE TABLE diffs_dropped (
    owner TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (owner, id)
);
