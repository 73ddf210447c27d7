//! Rooms and their messages hold together under moves that used to leave them inconsistent:
//! a seat given to someone no longer in the organization (a removal committed between the
//! check and the insert), a direct message deleted by one of its two, a thread whose first
//! message retention took, and edits that ping a room without limit.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use chatboard_core::model::AccessLevel;
use chatboard_store::{JoinVia, NewRoom};
use chrono::Utc;
use common::{Engine, TestApp};
use reqwest::StatusCode;
use serde_json::json;
use testing::both_engines;

both_engines!(
    a_seat_is_given_only_to_who_is_still_admitted,
    a_room_made_private_takes_no_one_who_joins_by_themselves,
    a_direct_message_is_deleted_only_by_an_admin,
    retention_keeps_a_thread_root_while_its_replies_are_young,
    retention_takes_a_thread_root_only_after_its_replies,
    edits_that_mention_count_against_the_posting_limit,
    an_edit_that_pings_newcomers_counts_against_the_posting_limit,
    a_resend_past_the_posting_limit_gets_its_message,
    a_direct_message_opens_as_it_is_in_a_read_only_org,
);

/// The use cases check the role on a read; the seat's insert checks it again under the org's
/// lock, where a removal or a demotion committed meanwhile is seen (as in a join racing them).
async fn a_seat_is_given_only_to_who_is_still_admitted(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, room, alice, bob) = app.room_for_two().await;
    let managers = app.room(&alice, org, "managers", "MANAGER_ONLY").await;
    let store = &app.state.store;
    // Bob, a MEMBER, is not admitted to the MANAGER_ONLY room, whoever asks.
    let refused = store
        .add_room_member(managers, bob.id, JoinVia::Invite, None, Utc::now())
        .await;
    assert!(refused.is_err(), "{refused:?}");
    // Nor does a room he creates as a MEMBER (demoted after his role was read) seat him.
    let new_room = |name: &str| NewRoom {
        org_id: org,
        name: name.into(),
        access_level: AccessLevel::ManagerOnly,
        created_by: bob.id,
    };
    let refused = store.create_room(new_room("demoted"), Utc::now()).await;
    assert!(refused.is_err(), "{refused:?}");
    // Removed from the organization, he gets no seat anywhere in it.
    let r = app
        .delete(
            &format!("/api/orgs/{org}/members/{}/", bob.id),
            &alice.access,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let refused = store
        .add_room_member(room, bob.id, JoinVia::Join, None, Utc::now())
        .await;
    assert!(refused.is_err(), "{refused:?}");
    let refused = store.create_room(new_room("removed"), Utc::now()).await;
    assert!(refused.is_err(), "{refused:?}");
    assert!(!store
        .room_members(room)
        .await
        .unwrap()
        .iter()
        .any(|m| m.user_id == bob.id));
    // Nor a direct message with someone still there.
    let refused = store
        .open_dm(org, alice.id, bob.id, "alice & bob", Utc::now())
        .await;
    assert!(refused.is_err(), "{refused:?}");
}

/// A join reads the room's level, then takes the seat: a room made PRIVATE in between (to
/// close it) took the seat all the same. The seat's insert checks the level again, as it
/// stands once the seat is in.
async fn a_room_made_private_takes_no_one_who_joins_by_themselves(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, _room, alice, bob) = app.room_for_two().await;
    let closed = app.room(&alice, org, "closed", "PRIVATE").await;
    let store = &app.state.store;
    let refused = store
        .add_room_member(closed, bob.id, JoinVia::Join, None, Utc::now())
        .await;
    assert!(
        matches!(
            refused,
            Err(chatboard_store::StoreError::Forbidden(
                chatboard_core::error_code::ErrorCode::InviteOnly
            ))
        ),
        "{refused:?}"
    );
    // Invited, he is seated.
    let invited = store
        .add_room_member(closed, bob.id, JoinVia::Invite, None, Utc::now())
        .await;
    assert!(matches!(invited, Ok(true)), "{invited:?}");
}

async fn a_direct_message_is_deleted_only_by_an_admin(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, _room, alice, bob) = app.room_for_two().await;
    // Bob opens it, so he is its creator.
    let dm = app.dm(&bob, org, &alice).await;
    app.send(&alice, dm, "Alice's words, not Bob's to delete")
        .await;
    let r = app.delete(&format!("/api/rooms/{dm}/"), &bob.access).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "dm_immutable"),
        "{}",
        r.text
    );
    // The organization's ADMIN may (moderation).
    let r = app
        .delete(&format!("/api/rooms/{dm}/"), &alice.access)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    // The one who did not open a direct message is told the same as its opener: 409.
    let carol = app.user("carol@example.com").await;
    app.join(org, &alice, &carol, "MEMBER").await;
    let dm = app.dm(&carol, org, &bob).await;
    let refusals = [
        app.delete(&format!("/api/rooms/{dm}/"), &bob.access).await,
        app.patch(
            &format!("/api/rooms/{dm}/"),
            &bob.access,
            json!({"name": "ours"}),
        )
        .await,
        app.post(
            &format!("/api/rooms/{dm}/invite/"),
            Some(&bob.access),
            json!({"user_id": alice.id}),
        )
        .await,
    ];
    for r in refusals {
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::CONFLICT, "dm_immutable"),
            "{}",
            r.text
        );
    }
}

async fn retention_keeps_a_thread_root_while_its_replies_are_young(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, room, alice, bob) = app.room_for_two().await;
    let messages = format!("/api/rooms/{room}/messages/");
    let root = app
        .send(&alice, room, "an old question for @bob@example.com")
        .await;
    let old_alone = app.send(&alice, room, "old, with no thread").await;
    let old_reply = app
        .post(
            &messages,
            Some(&bob.access),
            json!({"body": "an old answer", "parent_id": root}),
        )
        .await;
    assert_eq!(old_reply.status, StatusCode::CREATED, "{}", old_reply.text);
    let old_reply = old_reply.body["id"].as_i64().unwrap();
    let reply = app
        .post(
            &messages,
            Some(&bob.access),
            json!({"body": "a fresh answer", "parent_id": root}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let reply = reply.body["id"].as_i64().unwrap();
    let purged = app.expire(org, &[root, old_alone, old_reply]).await;
    assert_eq!(
        purged, 2,
        "the old message alone and the old reply go; the root stays with its young reply"
    );
    let kept = app.state.store.message(room, root).await.unwrap().unwrap();
    assert_eq!(
        kept.reply_count, 1,
        "the thread counts the reply it still has"
    );
    // The thread goes on: a reply to the reply lands in it.
    let again = app
        .post(
            &messages,
            Some(&alice.access),
            json!({"body": "and more", "parent_id": reply}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.text);
    assert_eq!(again.body["parent_id"], root);
    // Bob's unread: Alice's reply only (the kept root is old news, his own reply is his), and
    // no mention (the kept root's is old news too).
    let general = app.unread_entry(&bob, room).await.unwrap();
    assert_eq!(general["unread_count"], 1, "{general}");
    assert_eq!(general["mentions"], 0, "{general}");
}

/// A thread past its retention goes replies first, root last, batch by batch: the root is the
/// oldest, and went in a batch of its own before its replies, which a sweep stopped there (a
/// shutdown, an error) left without their thread, its page answering 404.
async fn retention_takes_a_thread_root_only_after_its_replies(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, room, alice, bob) = app.room_for_two().await;
    let root = app.send(&alice, room, "an old question").await;
    let reply = app
        .post(
            &format!("/api/rooms/{room}/messages/"),
            Some(&bob.access),
            json!({"body": "an old answer", "parent_id": root}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let reply = reply.body["id"].as_i64().unwrap();
    for sql in [
        format!("UPDATE orgs SET retention_days = 30 WHERE id = {org}"),
        format!(
            "UPDATE messages SET created_at = '2020-01-01T00:00:00Z' WHERE id IN ({root}, {reply})"
        ),
        format!("UPDATE messages SET last_reply_at = '2020-01-01T00:00:01Z' WHERE id = {root}"),
    ] {
        testing::execute_sql(&app.db_url, &sql).await;
    }
    let store = &app.state.store;
    assert_eq!(
        store.purge_expired_messages(Utc::now(), 1).await.unwrap(),
        1
    );
    assert!(
        store.message(room, reply).await.unwrap().is_none(),
        "the reply first"
    );
    assert!(
        store.message(room, root).await.unwrap().is_some(),
        "the root after it"
    );
    assert_eq!(
        store.purge_expired_messages(Utc::now(), 1).await.unwrap(),
        1
    );
    assert!(store.message(room, root).await.unwrap().is_none());
}

async fn edits_that_mention_count_against_the_posting_limit(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, room, alice, _bob) = app.room_for_two().await;
    testing::execute_sql(
        &app.db_url,
        &format!("UPDATE orgs SET rate_limit_per_minute = 3 WHERE id = {org}"),
    )
    .await;
    let id = app.send(&alice, room, "hello").await;
    let path = format!("/api/rooms/{room}/messages/{id}/");
    // Plain edits are not posts.
    for n in 0..4 {
        let r = app
            .patch(&path, &alice.access, json!({"body": format!("hello {n}")}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    // Edits that ping the room anew are: two more fit in the minute (the post took one), the
    // third does not. Fixing a typo in a message that already pings takes none.
    for body in [
        "@room look",
        "plain again",
        "@room once more",
        "@room once more!",
        "plain",
    ] {
        let r = app.patch(&path, &alice.access, json!({"body": body})).await;
        assert_eq!(r.status, StatusCode::OK, "{body}: {}", r.text);
    }
    let r = app
        .patch(&path, &alice.access, json!({"body": "@room and again"}))
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
}

/// A client that lost a post's answer resends it with the same `client_msg_id`: past the
/// posting limit it must still hear that the message was taken (it was refused 429, telling the
/// client to send again what was already stored).
async fn a_resend_past_the_posting_limit_gets_its_message(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, room, alice, _bob) = app.room_for_two().await;
    testing::execute_sql(
        &app.db_url,
        &format!("UPDATE orgs SET rate_limit_per_minute = 2 WHERE id = {org}"),
    )
    .await;
    let path = format!("/api/rooms/{room}/messages/");
    let send = |cid: &'static str| {
        let body = json!({"body": format!("text of {cid}"), "client_msg_id": cid});
        app.post(&path, Some(&alice.access), body)
    };
    let first = send("a").await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    assert_eq!(send("b").await.status, StatusCode::CREATED);
    let third = send("c").await;
    assert_eq!(
        third.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        third.text
    );
    let again = send("a").await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.body, first.body, "the original, unchanged");
    // A key never used is a new message, still refused.
    let r = app
        .post(
            &path,
            Some(&alice.access),
            json!({"body": "new", "client_msg_id": "never-sent"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
}

/// A typo fixed in a message that pings the room pings those seated since (they were not
/// mentioned before), so it counts against the posting limits like a post; it used to be free,
/// re-resolving the old text compared with the new one and finding them in both.
async fn an_edit_that_pings_newcomers_counts_against_the_posting_limit(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, room, alice, _bob) = app.room_for_two().await;
    testing::execute_sql(
        &app.db_url,
        &format!("UPDATE orgs SET rate_limit_per_minute = 1 WHERE id = {org}"),
    )
    .await;
    let id = app.send(&alice, room, "@room hello").await;
    let path = format!("/api/rooms/{room}/messages/{id}/");
    // The same people: free.
    let r = app
        .patch(&path, &alice.access, json!({"body": "@room hello!"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Carol sits in the room now: the next typo fix pings her, and the minute's post is spent.
    let carol = app.user("carol@example.com").await;
    app.join(org, &alice, &carol, "MEMBER").await;
    let joined = app
        .post(
            &format!("/api/rooms/{room}/join/"),
            Some(&carol.access),
            json!({}),
        )
        .await;
    assert!(joined.status.is_success(), "{}", joined.text);
    let r = app
        .patch(&path, &alice.access, json!({"body": "@room hello!!"}))
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
}

/// Bob left and came back; the organization was then suspended. Alice, still seated in their
/// direct message, opens it: she gets it as it is (no seat can be given while the org is
/// read-only), not a refusal.
async fn a_direct_message_opens_as_it_is_in_a_read_only_org(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, _room, alice, bob) = app.room_for_two().await;
    let open = || {
        app.post(
            "/api/rooms/dm/",
            Some(&alice.access),
            json!({"org": org, "user_id": bob.id}),
        )
    };
    assert_eq!(open().await.status, StatusCode::CREATED);
    let r = app
        .delete(&format!("/api/orgs/{org}/members/{}/", bob.id), &bob.access)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    app.join(org, &alice, &bob, "MEMBER").await;
    testing::execute_sql(
        &app.db_url,
        &format!("UPDATE orgs SET suspended = TRUE WHERE id = {org}"),
    )
    .await;
    let r = open().await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}
