-- Search (issue 20): each message's words, kept by PostgreSQL itself (a generated column is
-- rewritten in the same statement as the body, so edits and deletes reach the index in their
-- own transaction), with the 'simple' configuration: lowercase words, no stemming or stop
-- words, the same words SQLite's unicode61 tokenizer finds, so both engines answer alike.
ALTER TABLE messages ADD COLUMN search_vector tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED;
-- Searches look room by room (the reader's rooms): one GIN index over (room, words), so a rare
-- word is an index lookup in each room, while a frequent one walks the room's newest messages.
-- btree_gin ships with PostgreSQL (contrib) and is a trusted extension since PostgreSQL 13: the
-- database's owner may create it.
-- fastupdate off: every change goes into the index at once. With it on, changes wait in a
-- pending list that every search scans in full, and messages change often (reactions, thread
-- counters, edits): 10,000 pending entries made each room's lookup 2 ms instead of 0.02 ms.
CREATE EXTENSION IF NOT EXISTS btree_gin;
CREATE INDEX messages_search ON messages USING GIN (room_id, search_vector)
    WITH (fastupdate = off);
