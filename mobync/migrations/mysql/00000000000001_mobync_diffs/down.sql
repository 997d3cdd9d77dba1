DROP TABLE diffs_dropped;
DROP TABLE diffs_clocks;
DROP TABLE diffs;
