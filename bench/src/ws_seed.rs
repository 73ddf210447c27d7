//! The WebSocket benchmark's population: `rooms` orgs of `members` users each, every org with
//! one PUBLIC room that seats all of them. Written straight through the store (so any number
//! of users is quick to create) into the database a running platform uses, with access tokens
//! minted with its signing key; nothing here goes around the rules the API enforces.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chatboard_core::auth::TokenIssuer;
use chatboard_core::config::{stored_secret, Env, JwtSecret};
use chatboard_core::model::{AccessLevel, Role};
use chatboard_store::{NewInvite, NewRoom, NewUser, Store};
use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

/// One room and who sits in it.
#[derive(Serialize, Deserialize)]
pub struct SeededRoom {
    /// Room id.
    pub id: i64,
    /// Access tokens of its members, the first one the room's sender.
    pub tokens: Vec<String>,
}

/// What `ws-run` needs.
#[derive(Serialize, Deserialize)]
pub struct WsSeeded {
    /// The rooms.
    pub rooms: Vec<SeededRoom>,
}

impl WsSeeded {
    /// Every member of every room as (room id, access token), room by room; an error when
    /// there is none.
    pub fn members(&self) -> anyhow::Result<Vec<(i64, &str)>> {
        let members: Vec<(i64, &str)> = self
            .rooms
            .iter()
            .flat_map(|r| r.tokens.iter().map(move |t| (r.id, t.as_str())))
            .collect();
        anyhow::ensure!(!members.is_empty(), "the state has no members");
        Ok(members)
    }
}

/// What seeding needs of the platform: its database and its signing key.
pub struct Config {
    /// The platform's database.
    pub database_url: String,
    /// The key its tokens are signed with.
    pub jwt_secret: JwtSecret,
}

/// Where the platform keeps its data: a single-node data directory (its SQLite database and
/// generated key), or the scale-out environment (`DATABASE_URL`, `CHATBOARD_JWT_SECRET`).
pub fn platform_config(data_dir: Option<&std::path::Path>) -> anyhow::Result<Config> {
    match data_dir {
        Some(dir) => Ok(Config {
            database_url: chatboard_core::config::sqlite_url(&dir.join("chatboard.db")),
            jwt_secret: stored_secret(dir)?,
        }),
        None => {
            let env = Env::from_process()?;
            let var = |name: &str| {
                env.get(name)
                    .map(str::to_owned)
                    .with_context(|| format!("{name} must be set (or give a data directory)"))
            };
            let jwt_secret = JwtSecret::new(var("CHATBOARD_JWT_SECRET")?.into_bytes())
                .map_err(|reason| anyhow::anyhow!("CHATBOARD_JWT_SECRET {reason}"))?;
            Ok(Config {
                database_url: var("DATABASE_URL")?,
                jwt_secret,
            })
        }
    }
}

/// Writes the population and returns it.
pub async fn seed(config: &Config, rooms: usize, members: usize) -> anyhow::Result<WsSeeded> {
    anyhow::ensure!(
        rooms > 0 && members > 0,
        "need at least one room and one member"
    );
    let store = chatboard_store::connect(&config.database_url, 8)
        .await
        .context("database")?;
    store.migrate().await?;
    // Long-lived tokens: a run holds its connections for as long as it likes.
    let tokens = TokenIssuer::new(
        &config.jwt_secret,
        Duration::from_secs(24 * 3600),
        Duration::from_secs(24 * 3600),
    );
    let tag = format!("{:x}", Utc::now().timestamp_micros());
    let seeded = futures::stream::iter(0..rooms)
        .map(|n| seed_room(store.clone(), &tokens, &tag, n, members))
        .buffered(8)
        .try_collect::<Vec<_>>()
        .await?;
    store.close().await;
    Ok(WsSeeded { rooms: seeded })
}

async fn seed_room(
    store: Arc<dyn Store>,
    tokens: &TokenIssuer,
    tag: &str,
    n: usize,
    members: usize,
) -> anyhow::Result<SeededRoom> {
    let now = Utc::now();
    let mut users = Vec::with_capacity(members);
    for m in 0..members {
        let email = format!("ws-{tag}-{n}-{m}@bench.example.com");
        let user = store
            .create_user(
                NewUser {
                    email,
                    // Not a valid hash: nobody logs in with a password, tokens are minted.
                    password_hash: "!".into(),
                    first_name: String::new(),
                    last_name: String::new(),
                },
                now,
            )
            .await?;
        users.push(user);
    }
    let owner = &users[0];
    let org = store
        .create_org(owner.id, &format!("ws bench {n}"), now)
        .await?;
    for user in &users[1..] {
        let token_hash = format!("bench-{tag}-{}", user.id);
        store
            .create_invite(
                NewInvite {
                    org_id: org.id,
                    email: user.email.clone(),
                    role: Role::Member,
                    token_hash: token_hash.clone(),
                    invited_by: Some(owner.id),
                    expires_at: now + chrono::Duration::days(1),
                    email_message: None,
                },
                now,
            )
            .await?;
        store
            .accept_invite(&token_hash, user.id, &user.email, now)
            .await?;
    }
    let room = store
        .create_room(
            NewRoom {
                org_id: org.id,
                name: "bench".into(),
                access_level: AccessLevel::Public,
                created_by: owner.id,
            },
            now,
        )
        .await?;
    let tokens = users
        .iter()
        .map(|u| tokens.issue_access(u.id, now))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SeededRoom {
        id: room.id,
        tokens,
    })
}
