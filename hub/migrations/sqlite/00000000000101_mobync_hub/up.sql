-- mobync's hub: networks, their nodes, the records of their models, the
-- nodes' own ids of records, messages to nodes and their state changes.
CREATE TABLE hub_networks (
    id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    json_schema TEXT NOT NULL,
    fetch_before_send BOOLEAN NOT NULL,
    owner TEXT NOT NULL,
    model TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (owner, model)
);
CREATE TABLE hub_nodes (
    id TEXT NOT NULL PRIMARY KEY,
    network_id TEXT NOT NULL,
    name TEXT NOT NULL,
    can_create BOOLEAN NOT NULL,
    can_read BOOLEAN NOT NULL,
    can_update BOOLEAN NOT NULL,
    can_delete BOOLEAN NOT NULL,
    token_hash TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX hub_nodes_network ON hub_nodes (network_id, created_at);
CREATE TABLE hub_records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    model TEXT NOT NULL,
    id TEXT NOT NULL,
    owner TEXT NOT NULL,
    data TEXT,
    deleted BOOLEAN NOT NULL,
    UNIQUE (model, id)
);
CREATE INDEX hub_records_owner ON hub_records (owner, model, seq);
CREATE TABLE hub_remotes (
    node_id TEXT NOT NULL,
    remote_id TEXT NOT NULL,
    record_id TEXT NOT NULL,
    PRIMARY KEY (node_id, remote_id)
);
CREATE INDEX hub_remotes_record ON hub_remotes (node_id, record_id);
CREATE TABLE hub_messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    network_id TEXT NOT NULL,
    origin_id TEXT,
    destination_id TEXT,
    parent_id TEXT,
    method TEXT NOT NULL,
    payload TEXT NOT NULL,
    record_id TEXT NOT NULL,
    remote_id TEXT,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    lease_until BIGINT
);
CREATE INDEX hub_messages_destination ON hub_messages (destination_id, state, seq);
CREATE INDEX hub_messages_network ON hub_messages (network_id, state, seq);
CREATE TABLE hub_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL,
    state TEXT NOT NULL,
    at BIGINT NOT NULL,
    note TEXT NOT NULL
);
CREATE INDEX hub_changes_message ON hub_changes (message_id, seq);
