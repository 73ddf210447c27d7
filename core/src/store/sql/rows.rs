// Row shapes shared by both engines, and helpers that do not depend on the engine.

use chrono::{DateTime, Utc};

use crate::model::{OrgMember, OrgView, Role, User};
use crate::store::StoreError;

/// Columns selected for a user.
pub(super) const USER_COLUMNS: &str = "id, email, first_name, last_name, avatar_url, created_at";

#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    id: i64,
    email: String,
    first_name: String,
    last_name: String,
    avatar_url: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User {
            id: r.id,
            email: r.email,
            first_name: r.first_name,
            last_name: r.last_name,
            avatar_url: r.avatar_url,
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct UserWithHashRow {
    #[sqlx(flatten)]
    pub user: UserRow,
    pub password_hash: String,
}

/// The org object as a member sees it; `$1` is the member's user id.
pub(super) const ORG_VIEW_SELECT: &str =
    "SELECT o.id, o.name, o.slug, m.role, o.managed, o.created_at, \
       (SELECT COUNT(*) FROM org_members c WHERE c.org_id = o.id) AS member_count \
     FROM orgs o JOIN org_members m ON m.org_id = o.id AND m.user_id = $1";

#[derive(sqlx::FromRow)]
pub(super) struct OrgViewRow {
    id: i64,
    name: String,
    slug: String,
    role: String,
    managed: bool,
    created_at: DateTime<Utc>,
    member_count: i64,
}

impl TryFrom<OrgViewRow> for OrgView {
    type Error = StoreError;
    fn try_from(r: OrgViewRow) -> Result<Self, StoreError> {
        Ok(OrgView {
            id: r.id,
            name: r.name,
            slug: r.slug,
            role: parse_role(&r.role)?,
            member_count: r.member_count,
            managed: r.managed,
            created_at: r.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct OrgMemberRow {
    user_id: i64,
    email: String,
    first_name: String,
    last_name: String,
    role: String,
    joined_at: DateTime<Utc>,
}

impl TryFrom<OrgMemberRow> for OrgMember {
    type Error = StoreError;
    fn try_from(r: OrgMemberRow) -> Result<Self, StoreError> {
        Ok(OrgMember {
            user_id: r.user_id,
            email: r.email,
            first_name: r.first_name,
            last_name: r.last_name,
            role: parse_role(&r.role)?,
            joined_at: r.joined_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct InviteRow {
    pub id: i64,
    pub org_id: i64,
    pub email: String,
    pub role: String,
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A role column's value; the CHECK constraint makes anything else a corrupt row.
pub(super) fn parse_role(s: &str) -> Result<Role, StoreError> {
    Role::parse(s).ok_or_else(|| {
        StoreError::Database(sqlx::Error::Decode(format!("unknown role {s:?}").into()))
    })
}

/// True when the error is a unique-constraint violation.
pub(super) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// A URL-safe slug: lower-case ASCII letters and digits separated by single dashes.
pub(super) fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= 50 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        "org".to_owned()
    } else {
        slug.to_owned()
    }
}

/// The first of `base`, `base-2`, `base-3`, ... not among `taken`.
pub(super) fn free_slug(base: &str, taken: &[String]) -> String {
    if !taken.iter().any(|t| t == base) {
        return base.to_owned();
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|candidate| !taken.contains(candidate))
        .unwrap_or_else(|| base.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_url_safe() {
        assert_eq!(slugify("  Acme Corp!! 2026 "), "acme-corp-2026");
        assert_eq!(slugify("日本"), "org");
        assert_eq!(
            free_slug("acme", &["acme".into(), "acme-2".into()]),
            "acme-3"
        );
        assert_eq!(free_slug("acme", &["acme-2".into()]), "acme");
    }
}
