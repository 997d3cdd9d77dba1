DROP TABLE diffs_squashed;
DROP TABLE diffs_net;
ALTER TABLE diffs_clocks DROP COLUMN purged;
ALTER TABLE diffs_clocks DROP COLUMN horizon;
