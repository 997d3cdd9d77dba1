-- mobync: ids and owners compared byte for byte (no case folding, no
-- trailing-space padding, which even utf8mb4_bin applies on MariaDB).
ALTER TABLE diffs MODIFY id VARBINARY(255) NOT NULL, MODIFY owner VARBINARY(255) NOT NULL;
ALTER TABLE diffs_clocks MODIFY owner VARBINARY(255) NOT NULL;
ALTER TABLE diffs_dropped MODIFY owner VARBINARY(255) NOT NULL, MODIFY id VARBINARY(255) NOT NULL;
