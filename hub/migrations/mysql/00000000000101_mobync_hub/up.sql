-- mobync's hub: networks, their nodes, the records of their models, the
-- nodes' own ids of records, messages to nodes and their state changes.
-- Ids and owners are VARBINARY: compared byte for byte.
CREATE TABLE hub_networks (
    id VARBINARY(36) NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    json_schema LONGTEXT NOT NULL,
    fetch_before_send BOOLEAN NOT NULL,
    owner VARBINARY(255) NOT NULL,
    model VARBINARY(255) NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (owner, model)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
CREATE TABLE hub_nodes (
    id VARBINARY(36) NOT NULL PRIMARY KEY,
    network_id VARBINARY(36) NOT NULL,
    name TEXT NOT NULL,
    can_create BOOLEAN NOT NULL,
    can_read BOOLEAN NOT NULL,
    can_update BOOLEAN NOT NULL,
    can_delete BOOLEAN NOT NULL,
    token_hash VARCHAR(64),
    created_at BIGINT NOT NULL,
    INDEX hub_nodes_network (network_id, created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
CREATE TABLE hub_records (
    seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    model VARBINARY(255) NOT NULL,
    id VARBINARY(255) NOT NULL,
    owner VARBINARY(255) NOT NULL,
    data LONGTEXT,
    deleted BOOLEAN NOT NULL,
    UNIQUE (model, id),
    INDEX hub_records_owner (owner, model, seq)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
CREATE TABLE hub_remotes (
    node_id VARBINARY(36) NOT NULL,
    remote_id VARBINARY(255) NOT NULL,
    record_id VARBINARY(255) NOT NULL,
    PRIMARY KEY (node_id, remote_id),
    INDEX hub_remotes_record (node_id, record_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
CREATE TABLE hub_messages (
    seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    id VARBINARY(36) NOT NULL UNIQUE,
    network_id VARBINARY(36) NOT NULL,
    origin_id VARBINARY(36),
    destination_id VARBINARY(36),
    parent_id VARBINARY(36),
    method VARCHAR(8) NOT NULL,
    payload LONGTEXT NOT NULL,
    record_id VARBINARY(255) NOT NULL,
    remote_id VARBINARY(255),
    state VARCHAR(16) NOT NULL,
    created_at BIGINT NOT NULL,
    lease_until BIGINT,
    INDEX hub_messages_destination (destination_id, state, seq),
    INDEX hub_messages_network (network_id, state, seq)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
CREATE TABLE hub_changes (
    seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    message_id VARBINARY(36) NOT NULL,
    state VARCHAR(16) NOT NULL,
    at BIGINT NOT NULL,
    note TEXT NOT NULL,
    INDEX hub_changes_message (message_id, seq)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
