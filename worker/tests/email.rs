//! Digests against a real SMTP server (an in-process one speaking the protocol to lettre):
//! digests go to members who are offline when messages arrive, one per member per window, never
//! one per message, and not to those who opted out. How the mailer sends is in `mailer.rs`,
//! invitation emails in `invitation_email.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::sync::Arc;
use std::time::Duration;

use chatboard_core::config::EmailSettings;
use chatboard_core::model::AccessLevel;
use chatboard_core::presence::{LocalPresence, Presence};
use chatboard_store::{DigestNote, EmailKind, JoinVia, OutgoingEmail, Store};
use chrono::Utc;
use common::{member, newest, post, room, setup, turn_emails_off, Setup};
use testing::smtp::SmtpSink;
use testing::{TestDb, TestEngine};
use worker::mail::EmailTiming;
use worker::runtime::Running;

testing::both_engines!(
    digests_go_to_offline_members_once_per_window,
    one_round_over_several_rooms_notes_each_rooms_offline_members,
    a_message_noted_again_after_its_digest_is_not_mailed_twice,
    a_mention_sends_the_digest_before_the_window,
    a_message_deleted_while_its_digest_waits_is_not_mailed,
    a_queued_digest_follows_its_recipient_and_its_claim,
    a_mention_deleted_before_its_digest_mails_nothing,
    a_mention_edited_out_no_longer_hurries_the_digest,
    a_digest_whose_every_message_was_deleted_is_withdrawn,
);

/// The worker's tasks over the setup's store, digests gathered for `window_secs`, sending to
/// an SMTP server of the test's; once mail came, what came.
async fn first_mails(s: &Setup, window_secs: u64) -> (Running, Vec<testing::smtp::Mail>) {
    let sink = SmtpSink::start().await;
    let running = start(
        &s.store,
        Arc::new(LocalPresence::new()),
        common::smtp(&sink, window_secs),
    );
    let mails = sink
        .wait_for(Duration::from_secs(20), |m| !m.is_empty())
        .await;
    (running, mails)
}

/// The worker's tasks over `store`, retrying emails after 50 ms.
fn start(store: &Arc<dyn Store>, presence: Arc<dyn Presence>, email: EmailSettings) -> Running {
    common::start_jobs(store, presence, email, EmailTiming::quick())
}

async fn digests_go_to_offline_members_once_per_window(engine: TestEngine) {
    let Some((_db, url)) = TestDb::create(engine).await else {
        return;
    };
    let s = setup(&url).await;
    member(&s, "bob@example.com", "Bob").await; // offline, digests on
    let opted_out = member(&s, "carol@example.com", "Carol").await;
    let online = member(&s, "dave@example.com", "Dave").await;
    turn_emails_off(&s, opted_out).await;
    let presence = Arc::new(LocalPresence::new());
    presence.connected(online).await;
    let sink = SmtpSink::start().await;
    let running = start(&s.store, presence, common::smtp(&sink, 1));

    post(&s.store, s.room, s.author, 3).await;
    sink.wait_for(Duration::from_secs(20), |m| !m.is_empty())
        .await;
    // Give a wrongly split digest, or mail to the others, time to show up.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mails = sink.mails();
    assert_eq!(mails.len(), 1, "one digest, to Bob only: {mails:#?}");
    let digest = &mails[0];
    assert_eq!(digest.to, vec!["bob@example.com".to_owned()]);
    assert_eq!(digest.from, "noreply@chat.example.com");
    assert_eq!(
        digest.header("Subject").as_deref(),
        Some("3 new messages in Work on ChatBoard")
    );
    let body = digest.body();
    assert_eq!(body.matches(" UTC: m").count(), 3, "{body}");
    for text in [
        ": m0",
        ": m1",
        ": m2",
        "#jobs (Work)",
        "https://chat.example.com/",
    ] {
        assert!(body.contains(text), "{text} missing from {body}");
    }
    assert!(
        !body.contains("Bob"),
        "the digest does not quote the reader: {body}"
    );
    // The way out is a link, in the text and in the headers mail clients make a button of.
    let link = unsubscribe_link(&body);
    assert_eq!(
        digest.header("List-Unsubscribe").as_deref(),
        Some(format!("<{link}>").as_str())
    );
    assert_eq!(
        digest.header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );

    // The next messages make the next digest, not a resend of the first.
    post(&s.store, s.room, s.author, 2).await;
    let mails = sink
        .wait_for(Duration::from_secs(20), |m| m.len() >= 2)
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sink.mails().len(), 2);
    assert_eq!(
        mails[1].header("Subject").as_deref(),
        Some("2 new messages in Work on ChatBoard")
    );
    assert_eq!(
        mails[1].body().matches(" UTC: m").count(),
        2,
        "{}",
        mails[1].body()
    );
    assert_eq!(mails[1].to, vec!["bob@example.com".to_owned()]);
    // Bob's link stays the same from one digest to the next, and turns his digests off.
    assert_eq!(unsubscribe_link(&mails[1].body()), link);
    running.shut_down().await;
    assert_eq!(s.store.email_backlog().await.unwrap(), 0);
    let token = link.rsplit_once("?token=").map(|(_, t)| t).unwrap();
    assert!(!s.store.unsubscribe("not-a-token").await.unwrap());
    assert!(s.store.unsubscribe(token).await.unwrap());
    let bob = s.store.credentials_by_email("bob@example.com").await;
    assert!(!bob.unwrap().unwrap().0.email_notifications);
}

/// A plain-http public URL still gives the link (RFC 2369), but not the one-click header, which
/// RFC 8058 allows for HTTPS links only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_click_unsubscribe_is_for_https_links_only() {
    let Some((_db, url)) = TestDb::create(TestEngine::Sqlite).await else {
        return;
    };
    let s = setup(&url).await;
    member(&s, "bob@example.com", "Bob").await;
    let sink = SmtpSink::start().await;
    let mut settings = common::smtp(&sink, 0);
    settings.public_url = Some("http://chat.internal".into());
    let running = start(&s.store, Arc::new(LocalPresence::new()), settings);
    post(&s.store, s.room, s.author, 1).await;
    let mails = sink
        .wait_for(Duration::from_secs(20), |m| !m.is_empty())
        .await;
    let link = mails[0].header("List-Unsubscribe").unwrap_or_default();
    assert!(
        link.starts_with("<http://chat.internal/api/email/unsubscribe/?token="),
        "{link}"
    );
    assert_eq!(mails[0].header("List-Unsubscribe-Post"), None);
    running.shut_down().await;
}

/// The unsubscribe link a digest's text gives.
fn unsubscribe_link(body: &str) -> String {
    let start = body
        .find("https://chat.example.com/api/email/unsubscribe/?token=")
        .unwrap_or_else(|| panic!("no unsubscribe link in {body}"));
    body[start..].split_whitespace().next().unwrap().to_owned()
}

/// The worker reads a round's recipients once per room (not per message): messages of two rooms
/// with shared members, posted before it starts so that one round hands them all over, each go
/// into the digests of their own room's offline members, never their sender's, and an online
/// member's digest stays empty.
async fn one_round_over_several_rooms_notes_each_rooms_offline_members(engine: TestEngine) {
    let Some((_db, url)) = TestDb::create(engine).await else {
        return;
    };
    let s = setup(&url).await;
    let (author, jobs) = (s.author, s.room);
    // Everyone joining the organization is seated in the public room `jobs`.
    let bob = member(&s, "bob@example.com", "Bob").await;
    let eve = member(&s, "eve@example.com", "Eve").await;
    let dan = member(&s, "dan@example.com", "Dan").await; // online
    let ops = room(&s.store, s.org, author, "ops", AccessLevel::Private).await;
    for user in [bob, dan] {
        s.store
            .add_room_member(ops, user, JoinVia::Invite, None, Utc::now())
            .await
            .unwrap();
    }
    post(&s.store, jobs, author, 2).await;
    post(&s.store, ops, bob, 1).await;
    post(&s.store, jobs, eve, 1).await;
    let presence = Arc::new(LocalPresence::new());
    presence.connected(dan).await;
    // A long window: the lines stay in the digests for the test to read.
    let sink = SmtpSink::start().await;
    let running = start(&s.store, presence, common::smtp(&sink, 3600));
    let mut waited = 0;
    while !s.store.outbox_unpublished(10).await.unwrap().is_empty() {
        assert!(waited < 2000, "the worker never handed the events over");
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    running.shut_down().await;
    let lines = |user: i64| {
        let store = s.store.clone();
        async move {
            let (_, lines) = store.digest_of(user, 100).await.unwrap().unwrap();
            lines
                .iter()
                .map(|l| format!("{}:{}:{}", l.room_name, l.sender, l.body))
                .collect::<Vec<_>>()
        }
    };
    let from_author = "jobs:w@example.com:m0 jobs:w@example.com:m1";
    assert_eq!(
        lines(author).await.join(" "),
        "ops:Bob:m0 jobs:Eve:m0",
        "the author: the others' messages in both rooms"
    );
    assert_eq!(
        lines(bob).await.join(" "),
        format!("{from_author} jobs:Eve:m0"),
        "Bob: not his own message in ops"
    );
    assert_eq!(
        lines(eve).await.join(" "),
        from_author,
        "Eve: jobs only, not her own"
    );
    assert!(lines(dan).await.is_empty(), "Dan is online");
    assert!(sink.mails().is_empty());
}

/// Turning digests off drops what was already gathered for the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_digests_off_drops_the_gathered_messages() {
    let Some((_db, url)) = TestDb::create(TestEngine::Sqlite).await else {
        return;
    };
    let s = setup(&url).await;
    let erin = member(&s, "erin@example.com", "Erin").await;
    let sink = SmtpSink::start().await;
    let running = start(
        &s.store,
        Arc::new(LocalPresence::new()),
        common::smtp(&sink, 2),
    );
    post(&s.store, s.room, s.author, 1).await;
    // Wait until the message is noted for Erin's digest, then she turns digests off.
    let far = Utc::now() + chrono::Duration::days(1);
    for _ in 0..200 {
        if s.store
            .due_digests(far, far, 10)
            .await
            .unwrap()
            .contains(&erin)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(s
        .store
        .due_digests(far, far, 10)
        .await
        .unwrap()
        .contains(&erin));
    turn_emails_off(&s, erin).await;
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert!(sink.mails().is_empty(), "{:#?}", sink.mails());
    running.shut_down().await;
}

/// A digest never carries a room's messages to someone who no longer sits in it, nor mail to
/// someone who turned emails off after the messages were noted (a job noting them just as the
/// user turned emails off used to put them back for the next digest).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digests_go_only_to_seated_members_who_want_them() {
    let Some((_db, url)) = TestDb::create(TestEngine::Sqlite).await else {
        return;
    };
    let s = setup(&url).await;
    let erin = member(&s, "erin@example.com", "Erin").await;
    let fay = member(&s, "fay@example.com", "Fay").await;
    post(&s.store, s.room, s.author, 1).await;
    let page = newest(&s, 1).await;
    let noted = page[0].created_at;
    // A digest of Fay's already written, waiting for the mailer.
    let waiting = OutgoingEmail {
        kind: EmailKind::Digest,
        to: "fay@example.com".into(),
        subject: "1 new message".into(),
        body: "m0".into(),
    };
    assert!(s
        .store
        .queue_digest(fay, &[], waiting, noted)
        .await
        .unwrap());
    assert_eq!(s.store.email_backlog().await.unwrap(), 1);
    // Noted for both (as the job does), then Erin loses her seat and Fay turns emails off.
    let created = [DigestNote::new("e1", erin), DigestNote::new("e1", fay)];
    s.store
        .add_digest_items(&created, page[0].id, s.room, noted, false)
        .await
        .unwrap();
    assert!(s.store.remove_room_member(s.room, erin).await.unwrap());
    turn_emails_off(&s, fay).await;
    // The job that raced with her: it read her as a recipient before she turned emails off.
    s.store
        .add_digest_items(
            &[DigestNote::new("e2", fay)],
            page[0].id,
            s.room,
            noted,
            false,
        )
        .await
        .unwrap();
    let far = Utc::now() + chrono::Duration::days(1);
    assert_eq!(
        s.store.due_digests(far, far, 10).await.unwrap(),
        Vec::<i64>::new()
    );
    assert!(s.store.digest_of(fay, 10).await.unwrap().is_none());
    assert_eq!(
        s.store.email_backlog().await.unwrap(),
        0,
        "the written digest stays unsent"
    );
}

/// The README's recovery after lost jobs hands the outbox's events over again; each message's
/// event then noted it for the offline members' digests a second time, and a message whose
/// digest had gone out was mailed again in the next one. An event is noted once for as long
/// as the outbox keeps events; an edit's new mention is an event of its own and is noted.
async fn a_message_noted_again_after_its_digest_is_not_mailed_twice(engine: TestEngine) {
    let Some((_db, url)) = TestDb::create(engine).await else {
        return;
    };
    let s = setup(&url).await;
    let bob = member(&s, "bob@example.com", "Bob").await;
    post(&s.store, s.room, s.author, 2).await;
    let page = newest(&s, 2).await;
    let (newer, older) = (&page[0], &page[1]);
    let note = |event: &'static str, message: &chatboard_core::model::Message, mention: bool| {
        let (store, id, room, at) = (
            s.store.clone(),
            message.id,
            message.room,
            message.created_at,
        );
        async move {
            store
                .add_digest_items(&[DigestNote::new(event, bob)], id, room, at, mention)
                .await
                .unwrap();
        }
    };
    let waiting = |store: Arc<dyn Store>| async move {
        match store.digest_of(bob, 10).await.unwrap() {
            Some((_, lines)) => lines.iter().map(|l| l.message_id).collect::<Vec<_>>(),
            None => Vec::new(),
        }
    };
    let sent = |ids: Vec<i64>| {
        let store = s.store.clone();
        async move {
            let digest = OutgoingEmail {
                kind: EmailKind::Digest,
                to: "bob@example.com".into(),
                subject: "a digest".into(),
                body: "…".into(),
            };
            assert!(store
                .queue_digest(bob, &ids, digest, Utc::now())
                .await
                .unwrap());
        }
    };
    note("older-created", older, false).await;
    sent(vec![older.id]).await;
    // The events handed over again: the older message's, then the newer one's (never noted).
    note("older-created", older, false).await;
    note("newer-created", newer, false).await;
    assert_eq!(waiting(s.store.clone()).await, vec![newer.id]);
    sent(vec![newer.id]).await;
    // An edit mentions Bob in the older message: that is news.
    note("older-mentioned", older, true).await;
    assert_eq!(waiting(s.store.clone()).await, vec![older.id]);

    // Once the outbox's events of that time are gone, so is the record.
    let far = Utc::now() + chrono::Duration::days(1);
    s.store.prune_outbox(far, 100).await.unwrap();
    note("newer-created", newer, false).await;
    assert_eq!(waiting(s.store.clone()).await, vec![older.id, newer.id]);
}

/// Decided (issue 17, point 19): a digest quotes each message as it stands when the digest is
/// written, as the room shows it: an edit made after the reader went offline is the sender's
/// correction and is what they read. A message deleted before the digest is written is left
/// out (one deleted after it was written shows as deleted, its text never leaving in an email:
/// see below). Here the edit and the deletion come before the worker runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digests_quote_messages_as_they_stand() {
    let Some((_db, url)) = TestDb::create(TestEngine::Sqlite).await else {
        return;
    };
    let s = setup(&url).await;
    member(&s, "bob@example.com", "Bob").await; // offline, digests on
    post(&s.store, s.room, s.author, 2).await;
    let now = Utc::now();
    let page = newest(&s, 10).await;
    let (first, second) = (page[0].id.min(page[1].id), page[0].id.max(page[1].id));
    s.store
        .edit_message(s.room, first, "corrected text", &Default::default(), now)
        .await
        .unwrap();
    s.store
        .delete_message(s.room, second, s.author, now)
        .await
        .unwrap();

    let (running, mails) = first_mails(&s, 1).await;
    let body = mails[0].body();
    assert!(body.contains(": corrected text"), "{body}");
    assert!(!body.contains(": m0") && !body.contains(": m1"), "{body}");
    // Deleted before the digest was written: no longer news, not even as "(deleted)".
    assert!(!body.contains("(deleted)"), "{body}");
    assert_eq!(
        mails[0].header("Subject").as_deref(),
        Some("1 new message in Work on ChatBoard")
    );
    running.shut_down().await;
}

/// A mention of an offline member, posted and deleted before the mention delay was up (an
/// `@room` sent by mistake): no email at all; it mailed every offline member a digest of one
/// "(deleted)" line naming the room, the sender and the time. What comes after is mailed as
/// usual, without it.
async fn a_mention_deleted_before_its_digest_mails_nothing(engine: TestEngine) {
    let Some((_db, url)) = TestDb::create(engine).await else {
        return;
    };
    let s = setup(&url).await;
    let bob = member(&s, "bob@example.com", "Bob").await;
    let sink = SmtpSink::start().await;
    let mut settings = common::smtp(&sink, 1);
    settings.mention_delay = Duration::from_secs(1);
    let posted = s
        .store
        .post_message(mention_of(&s, bob, "@room look at this"), Utc::now())
        .await
        .unwrap();
    s.store
        .delete_message(s.room, posted.0.id, s.author, Utc::now())
        .await
        .unwrap();
    let running = start(&s.store, Arc::new(LocalPresence::new()), settings);
    // Noted for Bob (its two events), then let go by the digest writer.
    let noted = "SELECT CAST((SELECT COUNT(*) FROM digest_events) AS TEXT) || '/' || \
                 CAST((SELECT COUNT(*) FROM digest_items) AS TEXT)";
    until(&url, noted, "the deleted mention noted and let go", |n| {
        n == ["2/0"]
    })
    .await;
    assert!(
        testing::query_texts(&url, "SELECT CAST(id AS TEXT) FROM emails")
            .await
            .is_empty(),
        "a digest of a deleted message was written"
    );
    post(&s.store, s.room, s.author, 1).await;
    let mails = sink
        .wait_for(Duration::from_secs(20), |m| !m.is_empty())
        .await;
    assert_eq!(mails.len(), 1, "{mails:#?}");
    let body = mails[0].body();
    assert!(
        body.contains(": m0") && !body.contains("(deleted)"),
        "{body}"
    );
    running.shut_down().await;
}

/// A mention an edit took back before the mention delay was up: the message still waits for
/// the digest window, but no longer hurries the digest (it went a minute later, for a mention
/// the message no longer makes).
async fn a_mention_edited_out_no_longer_hurries_the_digest(engine: TestEngine) {
    let Some((_db, url)) = TestDb::create(engine).await else {
        return;
    };
    let s = setup(&url).await;
    let bob = member(&s, "bob@example.com", "Bob").await;
    let sink = SmtpSink::start().await;
    let mut settings = common::smtp(&sink, 3600);
    settings.mention_delay = Duration::from_secs(1);
    let posted = s
        .store
        .post_message(mention_of(&s, bob, "@bob@example.com look"), Utc::now())
        .await
        .unwrap();
    s.store
        .edit_message(s.room, posted.0.id, "look", &Default::default(), Utc::now())
        .await
        .unwrap();
    let running = start(&s.store, Arc::new(LocalPresence::new()), settings);
    // Both its events noted (the message's, then the mention's, in commits of their own),
    // and the message waiting without hurrying (the digest was mailed a second later, the item
    // with it).
    let urgency = format!(
        "SELECT CAST((SELECT COUNT(*) FROM digest_events) AS TEXT) || '/' || COALESCE( \
           (SELECT CASE WHEN mentioned THEN 'mentioned' ELSE 'waiting' END FROM digest_items \
            WHERE user_id = {bob}), 'none')"
    );
    let waiting = |u: &[String]| u == ["2/waiting"];
    until(
        &url,
        &urgency,
        "the message to stop hurrying the digest",
        waiting,
    )
    .await;
    assert!(
        testing::query_texts(&url, "SELECT CAST(id AS TEXT) FROM emails")
            .await
            .is_empty(),
        "a digest was written for a mention edited out"
    );
    running.shut_down().await;
}

/// A digest written, then its only message deleted before the mailer came to it: nothing is
/// left to tell, and it is settled unsent (it went as one "(deleted)" line).
async fn a_digest_whose_every_message_was_deleted_is_withdrawn(engine: TestEngine) {
    let Some((_db, url)) = TestDb::create(engine).await else {
        return;
    };
    let s = setup(&url).await;
    let bob = member(&s, "bob@example.com", "Bob").await;
    post(&s.store, s.room, s.author, 1).await;
    let page = newest(&s, 1).await;
    common::note_for_digest(&s, bob, &page[0], "e0").await;
    let writer = common::digest_writer(&s.store, Duration::ZERO);
    assert_eq!(writer.write_due().await.unwrap(), 1);
    s.store
        .delete_message(s.room, page[0].id, s.author, Utc::now())
        .await
        .unwrap();
    let sink = SmtpSink::start().await;
    // An hour's window: the relay's own note of the message stays unsent.
    let running = start(
        &s.store,
        Arc::new(LocalPresence::new()),
        common::smtp(&sink, 3600),
    );
    let settled = |status: &[String]| status != ["pending"];
    until(
        &url,
        "SELECT status FROM emails",
        "the digest to be settled",
        settled,
    )
    .await;
    assert!(sink.mails().is_empty(), "{:#?}", sink.mails());
    running.shut_down().await;
}

/// A message by the setup's author mentioning `user`.
fn mention_of(s: &Setup, user: i64, body: &str) -> chatboard_store::NewMessage {
    chatboard_store::NewMessage {
        room_id: s.room,
        sender_id: s.author,
        body: body.into(),
        client_msg_id: None,
        file: None,
        parent_id: None,
        mentions: chatboard_store::Mentioned {
            named: vec![user],
            everyone: vec![user],
        },
    }
}

/// Waits (up to 20 s) until `done` holds for the texts `query` reads.
async fn until(url: &str, query: &str, what: &str, done: impl Fn(&[String]) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = testing::query_texts(url, query).await;
        if done(&now) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: {now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A digest written, then one of its messages deleted before the mailer came to it (the mail
/// server down, retries): the email goes with the message shown as deleted, its text never
/// leaving; the email was sent as written, text and all.
async fn a_message_deleted_while_its_digest_waits_is_not_mailed(engine: TestEngine) {
    let Some((_db, url)) = TestDb::create(engine).await else {
        return;
    };
    let s = setup(&url).await;
    let bob = member(&s, "bob@example.com", "Bob").await;
    post(&s.store, s.room, s.author, 2).await;
    let page = newest(&s, 2).await;
    for (i, message) in page.iter().enumerate() {
        common::note_for_digest(&s, bob, message, &format!("e{i}")).await;
    }
    let writer = common::digest_writer(&s.store, Duration::ZERO);
    assert_eq!(writer.write_due().await.unwrap(), 1);
    let deleted = page.iter().find(|m| m.body == "m1").unwrap();
    s.store
        .delete_message(s.room, deleted.id, s.author, Utc::now())
        .await
        .unwrap();

    // An hour's window: the relay's own notes of the two messages stay unsent.
    let (running, mails) = first_mails(&s, 3600).await;
    assert_eq!(mails[0].to, vec!["bob@example.com".to_owned()]);
    let body = mails[0].body();
    assert!(body.contains(": m0"), "{body}");
    assert!(body.contains("(deleted)"), "{body}");
    assert!(!body.contains(": m1"), "deleted text mailed: {body}");
    running.shut_down().await;
    let lines = testing::query_texts(
        &url,
        "SELECT CAST(email_id AS TEXT) FROM digest_email_lines",
    )
    .await;
    assert!(lines.is_empty(), "lines kept after sending: {lines:?}");
}

/// What the mailer finds of a queued digest just before sending it: withdrawn once its
/// recipient is deleted, or turned emails off (also while a mailer held it claimed: it found
/// no lines then and sent the text as written); its lines kept through a claim that lapsed
/// (the late claim's record deleted them under the claim that took the email over); a digest
/// queued without lines (an older release's) as written.
async fn a_queued_digest_follows_its_recipient_and_its_claim(engine: TestEngine) {
    use chatboard_store::{EmailResult, QueuedDigest};
    use chrono::SubsecRound;
    let Some((_db, url)) = TestDb::create(engine).await else {
        return;
    };
    let s = setup(&url).await;
    let bob = member(&s, "bob@example.com", "Bob").await;
    let carol = member(&s, "carol@example.com", "Carol").await;
    post(&s.store, s.room, s.author, 1).await;
    let message = &newest(&s, 1).await[0];
    for (i, user) in [bob, carol].into_iter().enumerate() {
        common::note_for_digest(&s, user, message, &format!("e{i}")).await;
    }
    let writer = common::digest_writer(&s.store, Duration::ZERO);
    assert_eq!(writer.write_due().await.unwrap(), 2);
    let now = Utc::now().trunc_subsecs(6);
    let ms = chrono::Duration::milliseconds;
    let (lapsing, held) = (now + ms(1), now + ms(600_000));
    let first = s.store.claim_due_emails(now, lapsing, 10).await.unwrap();
    let taken = s
        .store
        .claim_due_emails(now + ms(2), held, 10)
        .await
        .unwrap();
    assert_eq!((first.len(), taken.len()), (2, 2));
    let email_of = |to: &str| taken.iter().find(|e| e.email.to == to).unwrap().id;
    let (bobs, carols) = (email_of("bob@example.com"), email_of("carol@example.com"));
    // The first claim, lapsed, records a failure: nothing is recorded, nothing deleted.
    let failed = EmailResult::Failed {
        error: "late".into(),
    };
    s.store
        .record_email(bobs, lapsing, failed, Utc::now())
        .await
        .unwrap();
    match s.store.queued_digest(bobs).await.unwrap() {
        QueuedDigest::Lines(to, lines) => {
            assert_eq!((to.address.as_str(), lines.len()), ("bob@example.com", 1));
        }
        other => panic!("Bob's digest as it stands: {other:?}"),
    }
    // Bob turns emails off while the second claim holds his digest; Carol's account goes.
    turn_emails_off(&s, bob).await;
    assert_eq!(
        s.store.queued_digest(bobs).await.unwrap(),
        QueuedDigest::Withdrawn
    );
    testing::execute_sql(&url, &format!("DELETE FROM users WHERE id = {carol}")).await;
    assert_eq!(
        s.store.queued_digest(carols).await.unwrap(),
        QueuedDigest::Withdrawn
    );
    // Settled by the claim that holds it, Carol's digest leaves no lines behind.
    s.store
        .record_email(carols, held, EmailResult::Sent, Utc::now())
        .await
        .unwrap();
    let left = testing::query_texts(
        &url,
        "SELECT CAST(email_id AS TEXT) FROM digest_email_lines",
    )
    .await;
    assert!(left.is_empty(), "{left:?}");
    // An email settled by a mailer that leaves its lines (an older release's): they are swept.
    post(&s.store, s.room, s.author, 1).await;
    let dave = member(&s, "dave@example.com", "Dave").await;
    let newer = &newest(&s, 1).await[0];
    common::note_for_digest(&s, dave, newer, "e-dave").await;
    assert_eq!(writer.write_due().await.unwrap(), 1);
    testing::execute_sql(
        &url,
        "UPDATE emails SET status = 'sent' WHERE status = 'pending'",
    )
    .await;
    assert_eq!(s.store.prune_digest_lines().await.unwrap(), 1);
    assert_eq!(s.store.prune_digest_lines().await.unwrap(), 0);
    // A digest queued without its lines goes as it was written.
    let old = s
        .store
        .queue_email(
            OutgoingEmail {
                kind: EmailKind::Digest,
                to: "dave@example.com".into(),
                subject: "1 new message".into(),
                body: "written before".into(),
            },
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(
        s.store.queued_digest(old).await.unwrap(),
        QueuedDigest::AsWritten
    );
}

/// With an hour's digest window and a one-second mention delay, a mentioned offline member
/// gets their digest at once (with what else they missed), the others not yet.
async fn a_mention_sends_the_digest_before_the_window(engine: TestEngine) {
    let Some((_db, url)) = TestDb::create(engine).await else {
        return;
    };
    let s = setup(&url).await;
    let bob = member(&s, "bob@example.com", "Bob").await;
    member(&s, "carol@example.com", "Carol").await;
    let sink = SmtpSink::start().await;
    let mut settings = common::smtp(&sink, 3600);
    settings.mention_delay = Duration::from_secs(1);
    post(&s.store, s.room, s.author, 1).await;
    s.store
        .post_message(
            chatboard_store::NewMessage {
                room_id: s.room,
                sender_id: s.author,
                body: "@bob@example.com can you look?".into(),
                client_msg_id: None,
                file: None,
                parent_id: None,
                mentions: chatboard_store::Mentioned {
                    named: vec![bob],
                    everyone: vec![bob],
                },
            },
            Utc::now(),
        )
        .await
        .unwrap();
    let running = start(&s.store, Arc::new(LocalPresence::new()), settings);
    let mails = sink
        .wait_for(Duration::from_secs(20), |m| !m.is_empty())
        .await;
    // Give mail to Carol, whose digest is an hour away, time to show up wrongly.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sink.mails().len(), 1, "{:#?}", sink.mails());
    assert_eq!(mails[0].to, vec!["bob@example.com".to_owned()]);
    let body = mails[0].body();
    assert!(body.contains("can you look?"), "{body}");
    assert!(
        body.contains(": m0"),
        "what else was missed goes too: {body}"
    );
    running.shut_down().await;
}
