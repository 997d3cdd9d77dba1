DROP INDEX hub_messages_record ON hub_messages;
