-- A node's messages of one record, in order: what `next` looks for to
-- hand out a record's changes one at a time.
CREATE INDEX hub_messages_record ON hub_messages (destination_id, record_id, seq);
