DROP TABLE hub_idempotency;
