-- New messages reach the FTS5 index through the worker, many in one statement, as on
-- PostgreSQL: indexing each in its posting transaction cost a third of the single node's posts
-- per second (every small transaction left a segment of its own for FTS5 to merge). Edits and
-- deletes still reach the index in their own transaction: an edit takes out the old words of a
-- message the index holds (it has a row in FTS5's docsize table) and puts the new ones in,
-- indexed or not yet; the worker then skips it. A delete takes the message out.
DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_delete;
DROP TRIGGER messages_fts_update;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
WHEN EXISTS (SELECT 1 FROM messages_fts_docsize WHERE id = old.id) BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body)
        SELECT 'delete', old.id, old.body
        WHERE EXISTS (SELECT 1 FROM messages_fts_docsize WHERE id = old.id);
    INSERT INTO messages_fts (rowid, body) SELECT new.id, new.body WHERE NOT new.is_deleted;
END;
