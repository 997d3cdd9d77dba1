-- The `Idempotency-Key`s of nodes' sends, with the message each answered.
CREATE TABLE hub_idempotency (
    node_id VARBINARY(36) NOT NULL,
    idempotency_key VARBINARY(255) NOT NULL,
    message_id VARBINARY(36) NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (node_id, idempotency_key),
    INDEX hub_idempotency_age (created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
