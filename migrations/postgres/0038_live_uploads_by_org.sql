-- The organization's live uploads, for its upload quota; see 0037.
CREATE INDEX uploads_live_by_org ON uploads (org_id)
    WHERE status IN ('pending', 'ready');
