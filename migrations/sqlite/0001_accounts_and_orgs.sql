-- Accounts, refresh-token families and organizations (issue: foundation).

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    email         TEXT        NOT NULL UNIQUE,
    password_hash TEXT        NOT NULL,
    first_name    TEXT        NOT NULL DEFAULT '',
    last_name     TEXT        NOT NULL DEFAULT '',
    avatar_url    TEXT,
    created_at    TEXT        NOT NULL
);

-- One row per login; every rotation of that login's refresh token stays in the family, so a
-- reused token can revoke the whole chain with one update.
CREATE TABLE refresh_families (
    id         TEXT        PRIMARY KEY,
    user_id INTEGER      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT        NOT NULL,
    revoked_at TEXT       
);
CREATE INDEX refresh_families_user ON refresh_families (user_id);

CREATE TABLE refresh_tokens (
    jti        TEXT        PRIMARY KEY,
    family_id  TEXT        NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    expires_at TEXT        NOT NULL,
    used_at    TEXT       
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE orgs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT        NOT NULL,
    slug       TEXT        NOT NULL UNIQUE,
    managed    INTEGER     NOT NULL DEFAULT 0,
    created_by INTEGER      REFERENCES users (id) ON DELETE SET NULL,
    created_at TEXT        NOT NULL
);

CREATE TABLE org_members (
    org_id INTEGER      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id INTEGER      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role      TEXT        NOT NULL CHECK (role IN ('ADMIN', 'MANAGER', 'MEMBER')),
    joined_at TEXT        NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
-- "Which orgs is this user in" is the scoping query behind every org call.
CREATE INDEX org_members_user ON org_members (user_id, org_id);

CREATE TABLE org_invites (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id INTEGER      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    email       TEXT        NOT NULL,
    role        TEXT        NOT NULL CHECK (role IN ('ADMIN', 'MANAGER', 'MEMBER')),
    token_hash  TEXT        NOT NULL UNIQUE,
    invited_by INTEGER      REFERENCES users (id) ON DELETE SET NULL,
    created_at  TEXT        NOT NULL,
    expires_at  TEXT        NOT NULL,
    accepted_at TEXT       ,
    revoked_at  TEXT       
);
-- At most one open invitation per address and org, even under concurrent requests.
CREATE UNIQUE INDEX org_invites_open ON org_invites (org_id, email)
    WHERE accepted_at IS NULL AND revoked_at IS NULL;
