DROP INDEX hub_nodes_token ON hub_nodes;
