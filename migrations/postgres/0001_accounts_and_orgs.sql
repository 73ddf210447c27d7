-- Accounts, refresh-token families and organizations (issue: foundation).

CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email         TEXT        NOT NULL UNIQUE,
    password_hash TEXT        NOT NULL,
    first_name    TEXT        NOT NULL DEFAULT '',
    last_name     TEXT        NOT NULL DEFAULT '',
    avatar_url    TEXT,
    created_at    TIMESTAMPTZ NOT NULL
);

-- One row per login; every rotation of that login's refresh token stays in the family, so a
-- reused token can revoke the whole chain with one update.
CREATE TABLE refresh_families (
    id         TEXT        PRIMARY KEY,
    user_id    BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX refresh_families_user ON refresh_families (user_id);

CREATE TABLE refresh_tokens (
    jti        TEXT        PRIMARY KEY,
    family_id  TEXT        NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE orgs (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT        NOT NULL,
    slug       TEXT        NOT NULL UNIQUE,
    managed    BOOLEAN     NOT NULL DEFAULT FALSE,
    created_by BIGINT      REFERENCES users (id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE org_members (
    org_id    BIGINT      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id   BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role      TEXT        NOT NULL CHECK (role IN ('ADMIN', 'MANAGER', 'MEMBER')),
    joined_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
-- "Which orgs is this user in" is the scoping query behind every org call.
CREATE INDEX org_members_user ON org_members (user_id, org_id);

CREATE TABLE org_invites (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id      BIGINT      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    email       TEXT        NOT NULL,
    role        TEXT        NOT NULL CHECK (role IN ('ADMIN', 'MANAGER', 'MEMBER')),
    token_hash  TEXT        NOT NULL UNIQUE,
    invited_by  BIGINT      REFERENCES users (id) ON DELETE SET NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    accepted_at TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ
);
-- At most one open invitation per address and org, even under concurrent requests.
CREATE UNIQUE INDEX org_invites_open ON org_invites (org_id, email)
    WHERE accepted_at IS NULL AND revoked_at IS NULL;
