-- mobync: the diff log, the per-owner clocks, the ids a merge dropped.
CREATE TABLE diffs (
    id VARCHAR(255) NOT NULL,
    owner VARCHAR(255) NOT NULL,
    logical_clock BIGINT NOT NULL,
    `utc_timestamp` BIGINT NOT NULL,
    type VARCHAR(16) NOT NULL,
    model VARCHAR(255) NOT NULL,
    json_data LONGTEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (owner, id),
    INDEX diffs_owner_clock (owner, logical_clock, seq)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE TABLE diffs_clocks (
    owner VARCHAR(255) NOT NULL PRIMARY KEY,
    logical_clock BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE TABLE diffs_dropped (
    owner VARCHAR(255) NOT NULL,
    id VARCHAR(255) NOT NULL,
    PRIMARY KEY (owner, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
