DROP INDEX hub_nodes_token;
