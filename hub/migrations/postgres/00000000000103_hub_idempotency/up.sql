-- The `Idempotency-Key`s of nodes' sends, with the message each answered.
CREATE TABLE hub_idempotency (
    node_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    message_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (node_id, idempotency_key)
);
CREATE INDEX hub_idempotency_age ON hub_idempotency (created_at);
