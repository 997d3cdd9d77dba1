DROP TABLE hub_changes;
DROP TABLE hub_messages;
DROP TABLE hub_remotes;
DROP TABLE hub_records;
DROP TABLE hub_nodes;
DROP TABLE hub_networks;
