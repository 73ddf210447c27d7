-- Messages change after they are written: reactions, thread counters, edits. Leaving a tenth of
-- each page free lets PostgreSQL write the new row version beside the old one ("HOT"), so a
-- change that leaves the indexed columns alone touches no index; on a full page it must add an
-- entry to every index of the table, the GIN index of words included. Rows written from now on
-- leave the space; older pages get it as they are rewritten.
ALTER TABLE messages SET (fillfactor = 90);
