//! Shared setup: a migrated store with one room, and posts into it (each writes outbox events).

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // tests fail loudly by design

use std::sync::Arc;
use std::time::Duration;

use chatboard_core::auth::hash_token;
use chatboard_core::config::{EmailSettings, WebhookSettings};
use chatboard_core::model::AccessLevel;
use chatboard_core::model::Role;
use chatboard_core::presence::{LocalPresence, Presence};
use chatboard_store::{
    AttemptOutcome, AttemptResult, NewInvite, NewMessage, NewRoom, NewUser, NewWebhook,
    ProfilePatch, Store,
};
use chrono::Utc;
use testing::smtp::SmtpSink;
use testing::{TestDb, TestEngine};
use worker::mail::EmailTiming;
use worker::runtime::{start_in_process, Parts, Running};
use worker::service::WorkerMetrics;

pub mod receiver;

/// A migrated store with an organization, a room in it and the room's author.
pub struct Setup {
    pub store: Arc<dyn Store>,
    pub org: i64,
    pub room: i64,
    pub author: i64,
}

/// A store with a room, returning (store, room, author).
pub async fn store_with_room(url: &str) -> (Arc<dyn Store>, i64, i64) {
    let s = setup(url).await;
    (s.store, s.room, s.author)
}

/// An account for `email` (no password that signs in); its id.
pub async fn user(store: &Arc<dyn Store>, email: &str, first_name: &str) -> i64 {
    store
        .create_user(
            NewUser {
                email: email.into(),
                password_hash: "!".into(),
                first_name: first_name.into(),
                last_name: String::new(),
            },
            Utc::now(),
        )
        .await
        .unwrap()
        .id
}

/// A store with an organization and a room.
pub async fn setup(url: &str) -> Setup {
    let store = chatboard_store::connect(url, 4).await.unwrap();
    store.migrate().await.unwrap();
    let now = Utc::now();
    let author = user(&store, "w@example.com", "").await;
    let org = store.create_org(author, "Work", now).await.unwrap();
    let room = room(&store, org.id, author, "jobs", AccessLevel::Public).await;
    Setup {
        store,
        org: org.id,
        room,
        author,
    }
}

/// Creates a room named `name` in `org`, `creator` its first member; returns its id.
pub async fn room(
    store: &Arc<dyn Store>,
    org: i64,
    creator: i64,
    name: &str,
    access_level: AccessLevel,
) -> i64 {
    store
        .create_room(
            NewRoom {
                org_id: org,
                name: name.to_owned(),
                access_level,
                created_by: creator,
            },
            Utc::now(),
        )
        .await
        .unwrap()
        .id
}

/// Hands every event written so far over (as a relay would), so that only the events a test
/// causes afterwards reach its jobs.
pub async fn settle_outbox(store: &Arc<dyn Store>) {
    let earlier: Vec<i64> = store
        .outbox_unpublished(1000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.position)
        .collect();
    store.mark_published(&earlier, Utc::now()).await.unwrap();
}

/// A webhook of `org` to `url` for `events`, signed with `secret`.
pub async fn webhook(
    store: &Arc<dyn Store>,
    org: i64,
    url: &str,
    events: &[&str],
    secret: &str,
) -> i64 {
    store
        .create_webhook(
            NewWebhook {
                org_id: org,
                url: url.to_owned(),
                events: events.iter().map(|e| e.to_string()).collect(),
                secret: secret.to_owned(),
                is_active: true,
                managed: false,
                max_attempts: None,
                created_by: None,
            },
            Utc::now(),
        )
        .await
        .unwrap()
        .id
}

pub async fn post(store: &Arc<dyn Store>, room: i64, sender: i64, n: usize) {
    for i in 0..n {
        let message = NewMessage {
            file: None,
            room_id: room,
            sender_id: sender,
            body: format!("m{i}"),
            client_msg_id: None,
            parent_id: None,
            mentions: Default::default(),
        };
        store.post_message(message, Utc::now()).await.unwrap();
    }
}

/// The single node's background tasks over `store`, with `email` sent as `timing` paces it.
pub fn start_jobs(
    store: &Arc<dyn Store>,
    presence: Arc<dyn Presence>,
    email: EmailSettings,
    timing: EmailTiming,
) -> Running {
    start_in_process(Parts {
        store: store.clone(),
        presence,
        webhooks: WebhookSettings::default(),
        email,
        email_timing: timing,
        objects: None,
        metrics: Arc::new(WorkerMetrics::new().unwrap()),
    })
    .unwrap()
}

/// Email through `sink`, with digests gathered for `window_secs`.
pub fn smtp(sink: &SmtpSink, window_secs: u64) -> EmailSettings {
    EmailSettings {
        smtp_url: Some(sink.url.clone()),
        from: "ChatBoard <noreply@chat.example.com>".into(),
        digest_window: Duration::from_secs(window_secs),
        mention_delay: Duration::from_secs(window_secs),
        outbox_dir: None,
        public_url: Some("https://chat.example.com".into()),
    }
}

/// Fast webhook settings: private targets allowed (receivers are on loopback), 50 ms backoff
/// base, 2 s timeout, 8 attempts in flight.
pub fn settings() -> WebhookSettings {
    WebhookSettings {
        allow_private: true,
        max_attempts: 8,
        backoff_base: Duration::from_millis(50),
        timeout: Duration::from_secs(2),
        concurrency: 8,
        ..WebhookSettings::default()
    }
}

/// The worker's parts over `store`, delivering webhooks per `settings`.
pub fn parts(store: &Arc<dyn Store>, settings: WebhookSettings) -> Parts {
    Parts {
        store: store.clone(),
        presence: Arc::new(LocalPresence::new()),
        webhooks: settings,
        email: EmailSettings::default(),
        email_timing: EmailTiming::quick(),
        objects: None,
        metrics: Arc::new(WorkerMetrics::new().unwrap()),
    }
}

/// The single node's background tasks over `store`, delivering webhooks per `settings`.
pub fn in_process(store: &Arc<dyn Store>, settings: WebhookSettings) -> Running {
    start_in_process(parts(store, settings)).unwrap()
}

/// A database with a room whose setup events (room.created) are already handed over, so
/// that only the events a test causes reach its webhooks.
pub async fn db(engine: TestEngine) -> Option<(TestDb, Setup)> {
    let (db, url) = TestDb::create(engine).await?;
    let s = setup(&url).await;
    settle_outbox(&s.store).await;
    Some((db, s))
}

/// A new member of the setup's organization (seated in its PUBLIC room on joining).
pub async fn member(s: &Setup, email: &str, first_name: &str) -> i64 {
    let now = Utc::now();
    let user = user(&s.store, email, first_name).await;
    let token = format!("t-{email}");
    s.store
        .create_invite(
            NewInvite {
                org_id: s.org,
                email: email.into(),
                role: Role::Member,
                token_hash: hash_token(&token),
                invited_by: Some(s.author),
                expires_at: now + chrono::Duration::days(1),
                email_message: None,
            },
            now,
        )
        .await
        .unwrap();
    s.store
        .accept_invite(&hash_token(&token), user, email, now)
        .await
        .unwrap();
    user
}

/// `user_id` turns email notifications off.
pub async fn turn_emails_off(s: &Setup, user_id: i64) {
    s.store
        .update_profile(
            user_id,
            ProfilePatch {
                email_notifications: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
}

/// A digest writer over `store` whose window (and mention delay) is `window`.
pub fn digest_writer(store: &Arc<dyn Store>, window: Duration) -> worker::digest::DigestWriter {
    let store: Arc<dyn chatboard_store::EmailStore> = store.clone();
    let wake = Arc::new(tokio::sync::Notify::new());
    worker::digest::DigestWriter::new(store, window, window, None, wake)
}

/// Notes `message` for `user`'s next digest, for the event `event`.
pub async fn note_for_digest(
    s: &Setup,
    user: i64,
    message: &chatboard_core::model::Message,
    event: &str,
) {
    let note = chatboard_store::DigestNote::new(event, user);
    s.store
        .add_digest_items(&[note], message.id, s.room, message.created_at, false)
        .await
        .unwrap();
}

/// The setup room's newest `count` messages, newest first.
pub async fn newest(s: &Setup, count: u32) -> Vec<chatboard_core::model::Message> {
    s.store
        .list_messages(
            s.room,
            s.author,
            chatboard_store::Timeline::All,
            chatboard_store::PageCursor::Newest,
            count,
        )
        .await
        .unwrap()
        .unwrap()
}

/// The retention sweeper over `store` as the worker makes it, keeping outbox events and settled
/// emails a week; with its metrics.
#[allow(dead_code)] // not every test binary sweeps
pub fn sweeper(
    store: &Arc<dyn Store>,
) -> (
    worker::retention::RetentionSweeper,
    Arc<worker::service::WorkerMetrics>,
) {
    let metrics = Arc::new(worker::service::WorkerMetrics::new().unwrap());
    let sweeper = worker::retention::RetentionSweeper::new(
        store.clone(),
        store.clone(),
        store.clone(),
        store.clone(),
        std::time::Duration::from_secs(7 * 24 * 3600),
        metrics.clone(),
    );
    (sweeper, metrics)
}

/// The outcome of an attempt at `delivery` under `lease`.
pub fn outcome_of(
    delivery: &chatboard_store::DueDelivery,
    lease: chrono::DateTime<Utc>,
    result: AttemptResult,
) -> AttemptOutcome {
    AttemptOutcome {
        delivery_id: delivery.id,
        webhook_id: delivery.webhook_id,
        url: delivery.url.clone(),
        claimed_until: lease,
        result,
    }
}
