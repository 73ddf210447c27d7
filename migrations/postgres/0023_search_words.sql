-- A message's words for search are its runs of letters and digits, as SQLite's unicode61
-- tokenizer finds them and as queries are split. PostgreSQL's own parser kept an address, a
-- link, a host name, a path or a decimal whole ('bob@example.com', 'docs.example.com/v1.5',
-- '1.5'): searching `example`, `bob` or even `bob@example.com` (queried as the phrase
-- `bob example com`) found nothing there, while SQLite found them.
--
-- Only ASCII is replaced here: what counts as alphanumeric beyond it follows the database's
-- locale (in a `C` one none of it does, and "naïve" would become `na ve`), so other characters
-- are left to the text-search parser, as before.
--
-- A generated column's expression cannot be changed in place before PostgreSQL 17: the column
-- is made again (the table is rewritten once, under its lock), and the index's words with it.
ALTER TABLE messages DROP COLUMN search_vector;
ALTER TABLE messages ADD COLUMN search_vector tsvector
    GENERATED ALWAYS AS (
        to_tsvector('simple', regexp_replace(body, '[^[:alnum:]\u0080-\U0010FFFF]+', ' ', 'g'))
    ) STORED;
UPDATE message_words w SET words = m.search_vector
    FROM messages m WHERE m.room_id = w.room_id AND m.id = w.message_id;
ANALYZE messages;
ANALYZE message_words;
