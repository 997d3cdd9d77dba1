DROP INDEX hub_messages_record;
