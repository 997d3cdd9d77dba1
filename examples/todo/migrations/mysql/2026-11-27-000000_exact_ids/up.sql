-- Ids and owners compared byte for byte, as PROTOCOL.md requires (MariaDB's
-- utf8mb4_bin still ignores trailing spaces).
ALTER TABLE users MODIFY id VARBINARY(255) NOT NULL;
ALTER TABLE tasks MODIFY id VARBINARY(255) NOT NULL, MODIFY owner VARBINARY(255) NOT NULL;
ALTER TABLE projects MODIFY id VARBINARY(255) NOT NULL, MODIFY owner VARBINARY(255) NOT NULL;
