-- The node a token opens, found by its hash (401 before 404).
CREATE INDEX hub_nodes_token ON hub_nodes (token_hash);
