//! The mailer against a real SMTP server (an in-process one speaking the protocol to lettre):
//! queued emails are retried on temporary refusals and on refusals of the sender, and given up
//! on when the recipient or the message is refused for good; a send cut off by its timeout
//! leaves nothing behind for the next one, an outcome the database refuses for a while is
//! recorded later rather than the email sent twice, a mailer stopping hands back what it has not
//! started sending, and without SMTP emails are written to files.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::sync::Arc;
use std::time::Duration;

use chatboard_core::config::EmailSettings;
use chatboard_core::presence::LocalPresence;
use chatboard_store::{EmailKind, OutgoingEmail, Store};
use chrono::Utc;
use common::setup;
use testing::smtp::SmtpSink;
use testing::{TestDb, TestEngine};
use worker::mail::EmailTiming;
use worker::runtime::Running;

/// The worker's tasks over `store`, retrying emails after 50 ms.
fn start(store: &Arc<dyn Store>, email: EmailSettings) -> Running {
    start_timed(store, email, EmailTiming::quick())
}

fn start_timed(store: &Arc<dyn Store>, email: EmailSettings, timing: EmailTiming) -> Running {
    common::start_jobs(store, Arc::new(LocalPresence::new()), email, timing)
}

/// An invitation email to `to`, its token in the body.
fn invitation(to: &str, token: &str) -> OutgoingEmail {
    OutgoingEmail {
        kind: EmailKind::Invitation,
        to: to.into(),
        subject: "You are invited".into(),
        body: format!("Invitation token: {token}\n"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_emails_are_retried_unless_refused_for_good() {
    let Some((_db, url)) = TestDb::create(TestEngine::Sqlite).await else {
        return;
    };
    let s = setup(&url).await;
    let sink = SmtpSink::start().await;
    // Temporary refusals, and refusals of the sender rather than of the email (a wrong or
    // rotated SMTP password, a relay policy): given up on as permanent, those failed every
    // email queued while they lasted, for good, tokens and digests gone with them.
    sink.refuse_next(&[
        "451 4.3.0 try again later",
        "535 5.7.8 authentication credentials invalid",
        "550 5.7.1 relaying denied",
    ]);
    let email = |to: &str| invitation(to, "secret-token");
    s.store
        .queue_email(email("eve@example.com"), Utc::now())
        .await
        .unwrap();
    let running = start(&s.store, common::smtp(&sink, 60));
    let mails = sink
        .wait_for(Duration::from_secs(20), |m| !m.is_empty())
        .await;
    assert_eq!(mails[0].to, vec!["eve@example.com".to_owned()]);
    assert!(mails[0].body().contains("Invitation token: secret-token"));

    // A permanent refusal is not retried.
    sink.refuse_next(&["550 5.1.1 no such mailbox"]);
    s.store
        .queue_email(email("nobody@example.com"), Utc::now())
        .await
        .unwrap();
    s.store
        .queue_email(email("frank@example.com"), Utc::now())
        .await
        .unwrap();
    sink.wait_for(Duration::from_secs(20), |m| m.len() == 2)
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mails = sink.mails();
    assert_eq!(mails.len(), 2, "{mails:#?}");
    assert_eq!(mails[1].to, vec!["frank@example.com".to_owned()]);
    assert_eq!(s.store.email_backlog().await.unwrap(), 0);
    // Settled, sent or not, an email keeps no body: an invitation's carries its token.
    let bodies = testing::query_texts(&url, "SELECT body FROM emails ORDER BY id").await;
    assert_eq!(bodies, ["", "", ""], "bodies kept after settling");
    running.shut_down().await;
}

/// A mail server away for hours (maintenance, an outage) delays mail without losing it: an
/// email that has failed eight times already, as it had an hour or so into such an outage, is
/// still retried on a temporary refusal, and sent once the server takes it. Eight attempts
/// were all it had, and every email queued in an outage's first half hour was given up on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_server_away_for_hours_delays_mail_without_losing_it() {
    let Some((_db, url)) = TestDb::create(TestEngine::Sqlite).await else {
        return;
    };
    let s = setup(&url).await;
    let sink = SmtpSink::start().await;
    sink.refuse_next(&["421 4.3.2 service not available, closing channel"]);
    s.store
        .queue_email(invitation("gil@example.com", "late-token"), Utc::now())
        .await
        .unwrap();
    testing::execute_sql(&url, "UPDATE emails SET attempts = 8").await;
    let running = start(&s.store, common::smtp(&sink, 60));
    // Its ninth retry waits 50 ms doubled eight times: 6.4 to 12.8 s.
    let mails = sink
        .wait_for(Duration::from_secs(60), |m| !m.is_empty())
        .await;
    assert_eq!(mails[0].to, vec!["gil@example.com".to_owned()]);
    running.shut_down().await;
}

/// An email sent whose outcome the database did not take at once is recorded once it does,
/// not sent again: the failed write was only logged, and the email went again when its claim
/// lapsed (ten minutes on), a second invitation for a database away a moment. On PostgreSQL,
/// whose sequences count the refusals (a sequence does not roll back with its transaction).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcome_the_database_refused_at_first_is_recorded_later() {
    let Some((_db, url)) = TestDb::create(TestEngine::Postgres).await else {
        return;
    };
    let s = setup(&url).await;
    // The database refuses to record an email as sent, until the test lets it.
    for statement in [
        "CREATE SEQUENCE refusals",
        "CREATE FUNCTION refuse_sent() RETURNS trigger AS $$ \
         BEGIN PERFORM nextval('refusals'); RAISE EXCEPTION 'not now'; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER refuse_sent BEFORE UPDATE OF status ON emails FOR EACH ROW \
         WHEN (NEW.status = 'sent') EXECUTE FUNCTION refuse_sent()",
    ] {
        testing::execute_sql(&url, statement).await;
    }
    s.store
        .queue_email(invitation("heidi@example.com", "her-token"), Utc::now())
        .await
        .unwrap();
    let sink = SmtpSink::start().await;
    let running = start(&s.store, common::smtp(&sink, 60));
    sink.wait_for(Duration::from_secs(20), |m| !m.is_empty())
        .await;
    // Let it be only once the recording was refused at least once.
    let refused = || testing::query_texts(&url, "SELECT is_called::text FROM refusals");
    for _ in 0..800 {
        if refused().await == ["true"] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(refused().await, ["true"], "the recording was never refused");
    testing::execute_sql(&url, "DROP TRIGGER refuse_sent ON emails").await;
    let status = || testing::query_texts(&url, "SELECT status FROM emails");
    for _ in 0..800 {
        if status().await == ["sent"] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(status().await, ["sent"]);
    assert_eq!(sink.mails().len(), 1);
    running.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_smtp_emails_are_written_to_files() {
    let Some((_db, url)) = TestDb::create(TestEngine::Sqlite).await else {
        return;
    };
    let s = setup(&url).await;
    let dir = tempfile::tempdir().unwrap();
    let settings = EmailSettings {
        outbox_dir: Some(dir.path().join("emails")),
        ..EmailSettings::default()
    };
    s.store
        .queue_email(invitation("gina@example.com", "file-token"), Utc::now())
        .await
        .unwrap();
    let running = start(&s.store, settings);
    let mut written = None;
    for _ in 0..200 {
        // Only whole emails carry the `.eml` name (they are written aside, then renamed).
        let eml = std::fs::read_dir(dir.path().join("emails"))
            .ok()
            .and_then(|mut d| {
                d.find_map(|e| {
                    e.ok()
                        .map(|e| e.path())
                        .filter(|p| p.extension() == Some("eml".as_ref()))
                })
            });
        if let Some(path) = eml {
            written = Some(std::fs::read_to_string(path).unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let written = written.expect("an .eml file");
    assert!(written.contains("To: gina@example.com"), "{written}");
    assert!(written.contains("Subject: You are invited"), "{written}");
    assert!(written.contains("file-token"), "{written}");
    assert!(written.contains("Message-ID: <"), "{written}");
    running.shut_down().await;
}

/// A send cut off by the mailer's timeout was waiting for the server's answer, and lettre put
/// its connection back in the pool as if whole: the next email on it read that late answer (and
/// each later one) as its own. Reported sent while the server's answers were out of step, or
/// refused for good on an answer meant for another command. The next email now starts on a
/// new connection: sent once, answered for itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_cut_off_by_its_timeout_leaves_its_connection_behind() {
    let Some((_db, url)) = TestDb::create(TestEngine::Sqlite).await else {
        return;
    };
    let s = setup(&url).await;
    let sink = SmtpSink::start().await;
    // The first email is taken and answered long after the mailer's 5 s; the one after it,
    // claimed in the same batch, is sent straight after the first is given up on (5 s: a
    // healthy send is never that slow, however busy the machine).
    sink.stall_next_message(Duration::from_secs(15));
    for (to, token) in [
        ("slow@example.com", "first"),
        ("next@example.com", "second"),
    ] {
        s.store
            .queue_email(invitation(to, token), Utc::now())
            .await
            .unwrap();
    }
    let timing = EmailTiming {
        retry_base: Duration::from_secs(60),
        send_timeout: Duration::from_secs(5),
    };
    let running = start_timed(&s.store, common::smtp(&sink, 60), timing);
    let settled = "SELECT to_address || ' ' || status || ' ' || attempts FROM emails \
                   WHERE status <> 'pending' OR attempts > 0 ORDER BY id";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let states = loop {
        let states = testing::query_texts(&url, settled).await;
        if states.len() == 2 || tokio::time::Instant::now() > deadline {
            break states;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The first waits for its retry (the server did take it: at-least-once); the second went
    // once, on its own.
    assert_eq!(
        states,
        ["slow@example.com pending 1", "next@example.com sent 1"],
        "{:#?}",
        sink.mails()
    );
    let mails = sink.mails();
    let to_next: Vec<_> = mails
        .iter()
        .filter(|m| m.to == ["next@example.com"])
        .collect();
    assert_eq!(to_next.len(), 1, "{mails:#?}");
    assert!(to_next[0].body().contains("Invitation token: second"));
    running.shut_down().await;
}

/// Stopping while a slow send is under way: that send finishes, and the rest of the claimed
/// batch is handed back at once, unsent, for another worker (it used to be sent first, each
/// send up to its timeout, past the time a pod is given to stop; killed, the emails it had sent
/// went again after the lease).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailer_stopping_hands_back_what_it_has_not_sent() {
    let Some((_db, url)) = TestDb::create(TestEngine::Sqlite).await else {
        return;
    };
    let s = setup(&url).await;
    let sink = SmtpSink::start().await;
    sink.stall_next_message(Duration::from_secs(3));
    for n in 0..3 {
        s.store
            .queue_email(invitation(&format!("u{n}@example.com"), "t"), Utc::now())
            .await
            .unwrap();
    }
    let timing = EmailTiming {
        retry_base: Duration::from_secs(60),
        send_timeout: Duration::from_secs(30),
    };
    let running = start_timed(&s.store, common::smtp(&sink, 60), timing);
    // All three claimed (a claim moves an email's next attempt to its lease's end), the first
    // on its way.
    let claimed = "SELECT to_address FROM emails WHERE next_attempt_at <> created_at";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while testing::query_texts(&url, claimed).await.len() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "never claimed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.shut_down().await;
    // The send under way went (unless the stop came before it started); the rest are due
    // now, for whoever claims next.
    let sent: Vec<String> = sink.mails().iter().flat_map(|m| m.to.clone()).collect();
    assert!(sent.len() <= 1, "{sent:?}");
    let far = Utc::now() + chrono::Duration::hours(1);
    let due = s.store.claim_due_emails(Utc::now(), far, 10).await.unwrap();
    let mut all: Vec<String> = due.iter().map(|e| e.email.to.clone()).collect();
    all.extend(sent);
    all.sort();
    assert_eq!(all, ["u0@example.com", "u1@example.com", "u2@example.com"]);
}
