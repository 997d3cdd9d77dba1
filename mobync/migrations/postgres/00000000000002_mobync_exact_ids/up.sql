-- mobync: ids and owners are compared byte for byte here already (TEXT
-- with the database's deterministic comparison); nothing to change.
SELECT 1;
