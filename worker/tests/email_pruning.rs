//! Settled emails (sent, or given up on) go after `CHATBOARD_OUTBOX_RETENTION_DAYS`, as the
//! outbox's events do: their addresses and subjects (which name organizations) stayed for good.
//! Emails still to be sent stay however old they are.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use chatboard_store::{EmailKind, OutgoingEmail};
use chrono::Utc;
use testing::{TestDb, TestEngine};

testing::both_engines!(settled_emails_go_after_retention);

async fn settled_emails_go_after_retention(engine: TestEngine) {
    let Some((_db, url)) = TestDb::create(engine).await else {
        return;
    };
    let s = common::setup(&url).await;
    for to in ["old-sent", "old-failed", "old-pending", "new-sent"] {
        let email = OutgoingEmail {
            kind: EmailKind::Invitation,
            to: format!("{to}@example.com"),
            subject: "You are invited to Acme".into(),
            body: String::new(),
        };
        s.store.queue_email(email, Utc::now()).await.unwrap();
    }
    for (to, status, created) in [
        ("old-sent", "sent", "2020-01-01T00:00:00Z"),
        ("old-failed", "failed", "2020-01-01T00:00:00Z"),
        ("old-pending", "pending", "2020-01-01T00:00:00Z"),
    ] {
        testing::execute_sql(
            &url,
            &format!(
                "UPDATE emails SET status = '{status}', created_at = '{created}' \
                 WHERE to_address = '{to}@example.com'"
            ),
        )
        .await;
    }
    testing::execute_sql(
        &url,
        "UPDATE emails SET status = 'sent' WHERE to_address = 'new-sent@example.com'",
    )
    .await;
    let (sweeper, _) = common::sweeper(&s.store);
    assert_eq!(sweeper.prune_emails().await.unwrap(), 2);
    let left =
        testing::query_texts(&url, "SELECT to_address FROM emails ORDER BY to_address").await;
    assert_eq!(left, ["new-sent@example.com", "old-pending@example.com"]);
    // Nothing more the next time.
    assert_eq!(sweeper.prune_emails().await.unwrap(), 0);
}
