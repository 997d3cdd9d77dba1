DROP INDEX hub_messages_done ON hub_messages;
ALTER TABLE hub_messages DROP COLUMN done_at;
