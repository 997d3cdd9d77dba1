DROP INDEX hub_messages_done;
ALTER TABLE hub_messages DROP COLUMN done_at;
