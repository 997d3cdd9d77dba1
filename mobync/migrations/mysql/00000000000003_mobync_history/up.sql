-- mobync: compacted history (PROTOCOL.md, "History"): per owner the horizon
-- below which the log is squashed and the purge horizon of tombstones; one
-- net row per (model, row id) below the horizon; the ids of squashed diffs,
-- kept for retries.
ALTER TABLE diffs_clocks ADD COLUMN horizon BIGINT NOT NULL DEFAULT 0, ADD COLUMN purged BIGINT NOT NULL DEFAULT 0;
CREATE TABLE diffs_net (
    owner VARBINARY(255) NOT NULL,
    model VARBINARY(255) NOT NULL,
    row_id VARBINARY(255) NOT NULL,
    created_clock BIGINT,
    created_ts BIGINT,
    created_id VARBINARY(255),
    deleted_clock BIGINT,
    deleted_ts BIGINT,
    deleted_id VARBINARY(255),
    born BIGINT,
    fields LONGTEXT NOT NULL,
    last_clock BIGINT NOT NULL,
    PRIMARY KEY (owner, model, row_id),
    INDEX diffs_net_last (owner, last_clock)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE TABLE diffs_squashed (
    owner VARBINARY(255) NOT NULL,
    id VARBINARY(255) NOT NULL,
    logical_clock BIGINT NOT NULL,
    squashed_at BIGINT NOT NULL,
    PRIMARY KEY (owner, id),
    INDEX diffs_squashed_at (owner, squashed_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
