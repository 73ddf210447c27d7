//! Invitation emails against a real SMTP server (an in-process one speaking the protocol to
//! lettre): an invitation withdrawn before the worker came to its email is not mailed, nor one
//! withdrawn while the worker sent the emails claimed with it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::sync::Arc;
use std::time::Duration;

use chatboard_core::auth::hash_token;
use chatboard_core::model::Role;
use chatboard_core::presence::LocalPresence;
use chatboard_store::{EmailKind, NewInvite, OutgoingEmail};
use chrono::Utc;
use common::setup;
use testing::smtp::SmtpSink;
use testing::{TestDb, TestEngine};
use worker::mail::EmailTiming;

testing::both_engines!(
    withdrawn_invitations_are_not_mailed,
    an_invitation_withdrawn_after_its_email_was_claimed_is_not_mailed,
);

/// An invitation to `org_id` for `to` by the setup's author, with its email (token `t-<to>`).
fn invitation(s: &common::Setup, org_id: i64, to: &str) -> NewInvite {
    NewInvite {
        org_id,
        email: to.into(),
        role: Role::Member,
        token_hash: hash_token(&format!("t-{to}")),
        invited_by: Some(s.author),
        expires_at: Utc::now() + chrono::Duration::days(1),
        email_message: Some(OutgoingEmail {
            kind: EmailKind::Invitation,
            to: to.into(),
            subject: "You are invited".into(),
            body: format!("Invitation token: t-{to}\n"),
        }),
    }
}

/// An invitation's email is not sent once the invitation is revoked, accepted (through the
/// link its inviter was shown), or deleted with its organization, before the worker came to
/// it; an open invitation's email is.
async fn withdrawn_invitations_are_not_mailed(engine: TestEngine) {
    let Some((_db, url)) = TestDb::create(engine).await else {
        return;
    };
    let s = setup(&url).await;
    let now = Utc::now();
    let gone_org = s.store.create_org(s.author, "Gone", now).await.unwrap();
    let invite = |org_id: i64, to: &str| invitation(&s, org_id, to);
    let revoked = s
        .store
        .create_invite(invite(s.org, "revoked@example.com"), now)
        .await
        .unwrap();
    s.store
        .revoke_org_invite(s.org, revoked.id, None, now)
        .await
        .unwrap();
    s.store
        .create_invite(invite(s.org, "used@example.com"), now)
        .await
        .unwrap();
    let used = common::user(&s.store, "used@example.com", "").await;
    s.store
        .accept_invite(
            &hash_token("t-used@example.com"),
            used,
            "used@example.com",
            now,
        )
        .await
        .unwrap();
    s.store
        .create_invite(invite(gone_org.id, "gone@example.com"), now)
        .await
        .unwrap();
    s.store.delete_org(gone_org.id, s.author).await.unwrap();
    s.store
        .create_invite(invite(s.org, "open@example.com"), now)
        .await
        .unwrap();

    let sink = SmtpSink::start().await;
    let running = common::start_jobs(
        &s.store,
        Arc::new(LocalPresence::new()),
        common::smtp(&sink, 60),
        EmailTiming::quick(),
    );
    sink.wait_for(Duration::from_secs(20), |m| !m.is_empty())
        .await;
    // Nothing is left to send, so nothing more can arrive.
    for _ in 0..400 {
        if s.store.email_backlog().await.unwrap() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(s.store.email_backlog().await.unwrap(), 0);
    let to: Vec<Vec<String>> = sink.mails().into_iter().map(|m| m.to).collect();
    assert_eq!(to, [vec!["open@example.com".to_owned()]]);
    // The withdrawn ones are settled without their token; the deleted org's is gone.
    let rows = testing::query_texts(
        &url,
        "SELECT to_address || ' ' || status || ' ' || body FROM emails ORDER BY id",
    )
    .await;
    assert_eq!(
        rows,
        [
            "revoked@example.com failed ",
            "used@example.com failed ",
            "open@example.com sent ",
        ]
    );
    running.shut_down().await;
}

/// The mailer claims a batch of emails and sends them one after another: an invitation revoked
/// while an earlier email of its batch was being sent is not mailed either. Its email was
/// settled by the revocation, and was sent all the same.
async fn an_invitation_withdrawn_after_its_email_was_claimed_is_not_mailed(engine: TestEngine) {
    let Some((_db, url)) = TestDb::create(engine).await else {
        return;
    };
    let s = setup(&url).await;
    let now = Utc::now();
    let mut invites = Vec::new();
    for to in ["hana@example.com", "ivo@example.com"] {
        let invite = invitation(&s, s.org, to);
        invites.push((to, s.store.create_invite(invite, now).await.unwrap().id));
    }
    let sink = SmtpSink::start().await;
    // The first email sent is taken at once and answered 3 s later: the other one, claimed
    // with it, waits its turn meanwhile.
    sink.stall_next_message(Duration::from_secs(3));
    let running = common::start_jobs(
        &s.store,
        Arc::new(LocalPresence::new()),
        common::smtp(&sink, 60),
        EmailTiming::quick(),
    );
    let first = sink
        .wait_for(Duration::from_secs(20), |m| !m.is_empty())
        .await;
    let (other, other_invite) = invites
        .iter()
        .find(|(to, _)| first[0].to != vec![(*to).to_owned()])
        .copied()
        .unwrap();
    s.store
        .revoke_org_invite(s.org, other_invite, None, Utc::now())
        .await
        .unwrap();
    for _ in 0..800 {
        if s.store.email_backlog().await.unwrap() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(s.store.email_backlog().await.unwrap(), 0);
    running.shut_down().await;
    let to: Vec<Vec<String>> = sink.mails().into_iter().map(|m| m.to).collect();
    assert_eq!(
        to,
        [first[0].to.clone()],
        "{other}'s revoked invitation was mailed"
    );
}
