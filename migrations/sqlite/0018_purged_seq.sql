-- The highest seq retention has purged from the room (its first messages go first): unread
-- counts start after it for readers who had not read that far, members who joined since
-- included.
ALTER TABLE rooms ADD COLUMN purged_seq INTEGER NOT NULL DEFAULT 0;
