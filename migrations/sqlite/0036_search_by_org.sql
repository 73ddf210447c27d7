-- The FTS5 index holds each message's organization beside its words, so that a search looks
-- only at its organization's messages: FTS5 answered a word with every message of the whole
-- database holding it, every tenant's, which the search then joined and filtered, a cost that
-- grew with the other organizations' size. Rebuilt once from the messages (every message is
-- in it afterwards; the worker adds new ones as before). The edit and delete triggers name the
-- organization too: FTS5 takes a row out by the values it was put in with.
DROP TRIGGER messages_fts_delete;
DROP TRIGGER messages_fts_update;
DROP TABLE messages_fts;
CREATE VIRTUAL TABLE messages_fts USING fts5(
    body,
    org_id,
    content = 'messages',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 0'
);
INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
WHEN EXISTS (SELECT 1 FROM messages_fts_docsize WHERE id = old.id) BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body, org_id)
        VALUES ('delete', old.id, old.body, old.org_id);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body, org_id)
        SELECT 'delete', old.id, old.body, old.org_id
        WHERE EXISTS (SELECT 1 FROM messages_fts_docsize WHERE id = old.id);
    INSERT INTO messages_fts (rowid, body, org_id)
        SELECT new.id, new.body, new.org_id WHERE NOT new.is_deleted;
END;
