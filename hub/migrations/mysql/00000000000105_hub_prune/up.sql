-- When a message was answered (acknowledged, failed, superseded): what
-- pruning goes by. Messages answered before this migration count from
-- their creation.
ALTER TABLE hub_messages ADD COLUMN done_at BIGINT;
UPDATE hub_messages SET done_at = created_at WHERE state IN ('acknowledged', 'failed', 'superseded');
CREATE INDEX hub_messages_done ON hub_messages (state, done_at);
