-- Search (issue 20): each message's words, kept by PostgreSQL itself (a generated column is
-- rewritten in the same statement as the body, so edits and deletes reach the index in their
-- own transaction), with the 'simple' configuration: lowercase words, no stemming or stop
-- words, the same words SQLite's unicode61 tokenizer finds, so both engines answer alike.
ALTER TABLE messages ADD COLUMN search_vector tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED;
CREATE INDEX messages_search ON messages USING GIN (search_vector);
-- The newest matches of an organization's messages, for frequent words.
CREATE INDEX messages_org_recent ON messages (org_id, id);
