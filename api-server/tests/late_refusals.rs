//! PostgreSQL: a change whose checks passed on a read is still refused when its organization is
//! suspended, its author's seat is lost, or a moderator's role, before it is written; and an
//! invitation revoked while its acceptance waits is not accepted. The room's row is held so the
//! change waits inside its transaction; the suspension (or the removal) commits meanwhile; the
//! room is let go. Edits, deletions, reactions and room updates used to go through regardless,
//! as posts never did (they read the organization inside their own transaction).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use common::{Engine, TestApp, TestUser};
use futures::FutureExt;
use reqwest::StatusCode;
use serde_json::json;
use testing::http::Reply;
use testing::{waiting_for_locks, HeldLocks};

/// A change to make on `room`'s message `msg` as `user`.
#[derive(Clone, Copy, Debug)]
enum Change {
    Edit,
    Delete,
    React,
    Rename,
}

async fn make(app: &TestApp, change: Change, user: &TestUser, room: i64, msg: i64) -> Reply {
    let message = format!("/api/rooms/{room}/messages/{msg}/");
    match change {
        Change::Edit => {
            app.patch(&message, &user.access, json!({"body": "edited late"}))
                .await
        }
        Change::Delete => app.delete(&message, &user.access).await,
        Change::React => {
            app.post(
                &format!("{message}reactions/"),
                Some(&user.access),
                json!({"emoji": "👍"}),
            )
            .await
        }
        Change::Rename => {
            app.patch(
                &format!("/api/rooms/{room}/"),
                &user.access,
                json!({"name": "renamed-late"}),
            )
            .await
        }
    }
}

/// Takes the locks of `hold`, starts `pending`, waits until it waits for them, runs
/// `meanwhile` (committed while the request waits), lets the locks go and returns the answer.
async fn answer_after(
    app: &TestApp,
    hold: &str,
    pending: impl std::future::Future<Output = Reply>,
    meanwhile: &str,
) -> Reply {
    let held = HeldLocks::take(&app.db_url, hold).await;
    tokio::pin!(pending);
    until_waiting(app, hold, pending.as_mut()).await;
    testing::db::execute_sql(&app.db_url, meanwhile).await;
    held.release().await;
    pending.await
}

/// Runs `write` in a transaction, starts `pending`, waits until it waits for the write's locks,
/// commits the write and returns the answer.
async fn answer_after_committed(
    app: &TestApp,
    write: &str,
    pending: impl std::future::Future<Output = Reply>,
) -> Reply {
    let held = HeldLocks::take(&app.db_url, write).await;
    tokio::pin!(pending);
    until_waiting(app, write, pending.as_mut()).await;
    held.commit().await;
    pending.await
}

/// Until a session waits for a lock, failing if `pending` is answered first (it must wait for
/// the locks of `hold`).
async fn until_waiting<F: std::future::Future<Output = Reply>>(
    app: &TestApp,
    hold: &str,
    pending: std::pin::Pin<&mut F>,
) {
    let waiting = async {
        while waiting_for_locks(&app.db_url).await < 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        reply = pending => panic!("answered while `{hold}` is held: {}", reply.text),
        () = waiting => {}
    }
}

/// Asserts that `reply` (to `what`) refused the change as the organization is suspended, then
/// resumes the organization.
async fn refused_as_suspended_then_resumed(app: &TestApp, org: i64, reply: &Reply, what: &str) {
    assert_eq!(
        (reply.status, reply.body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("org_suspended")),
        "{what}: {}",
        reply.text
    );
    testing::db::execute_sql(
        &app.db_url,
        &format!("UPDATE orgs SET suspended = FALSE WHERE id = {org}"),
    )
    .await;
}

/// A webhook of `org` made by `by` (an ADMIN), every event to a local port: its id.
async fn webhook(app: &TestApp, by: &TestUser, org: i64) -> i64 {
    let created = app
        .post(
            "/api/webhooks/",
            Some(&by.access),
            json!({"org": org, "url": "http://127.0.0.1:9/hook", "events": ["*"]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    created.body["id"].as_i64().expect("a webhook id")
}

/// `change` made while the room is held and `meanwhile` commits (see [`answer_after`]).
async fn change_while(
    app: &TestApp,
    change: Change,
    user: &TestUser,
    room: i64,
    msg: i64,
    meanwhile: &str,
) -> Reply {
    let hold = format!("SELECT id FROM rooms WHERE id = {room} FOR NO KEY UPDATE");
    answer_after(app, &hold, make(app, change, user, room, msg), meanwhile).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspension_stops_a_change_already_under_way() {
    let Some(app) = TestApp::spawn(Engine::Postgres).await else {
        return;
    };
    let (org, room, alice, _bob) = app.room_for_two().await;
    let suspend = format!("UPDATE orgs SET suspended = TRUE WHERE id = {org}");
    for change in [Change::Edit, Change::Delete, Change::React, Change::Rename] {
        let msg = app.send(&alice, room, "before the suspension").await;
        let reply = if let Change::Rename = change {
            // A room's change takes the organization's lock first: it waits for the
            // suspension's own, and reads the organization once that has committed.
            let pending = make(&app, change, &alice, room, msg);
            answer_after_committed(&app, &suspend, pending).await
        } else {
            change_while(&app, change, &alice, room, msg, &suspend).await
        };
        refused_as_suspended_then_resumed(&app, org, &reply, &format!("{change:?}")).await;
    }
    let page = app
        .get(&format!("/api/rooms/{room}/messages/"), &alice.access)
        .await;
    for message in page.body["results"].as_array().unwrap() {
        assert_eq!(message["body"], "before the suspension", "{message}");
        assert_eq!(message["reactions"], json!([]), "{message}");
    }
    let room_now = app.get(&format!("/api/rooms/{room}/"), &alice.access).await;
    assert_eq!(room_now.body["name"], "general");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seat_lost_stops_an_edit_a_reaction_or_a_deletion_under_way() {
    let Some(app) = TestApp::spawn(Engine::Postgres).await else {
        return;
    };
    let (_org, room, alice, bob) = app.room_for_two().await;
    for change in [Change::Edit, Change::React, Change::Delete] {
        let msg = app.send(&bob, room, "before the removal").await;
        let reply = change_while(
            &app,
            change,
            &bob,
            room,
            msg,
            &format!(
                "DELETE FROM room_members WHERE room_id = {room} AND user_id = {}",
                bob.id
            ),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{change:?}: {}",
            reply.text
        );
        app.joined(&bob, room).await;
    }
    let page = app
        .get(&format!("/api/rooms/{room}/messages/"), &alice.access)
        .await;
    for message in page.body["results"].as_array().unwrap() {
        assert_eq!(message["body"], "before the removal", "{message}");
        assert_eq!(message["reactions"], json!([]), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demotion_stops_a_moderators_deletion_under_way() {
    let Some(app) = TestApp::spawn(Engine::Postgres).await else {
        return;
    };
    let (org, room, alice, bob) = app.room_for_two().await;
    let msg = app.send(&bob, room, "Bob's").await;
    let reply = change_while(
        &app,
        Change::Delete,
        &alice,
        room,
        msg,
        &format!(
            "UPDATE org_members SET role = 'MEMBER' WHERE org_id = {org} AND user_id = {}",
            alice.id
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
    let page = app
        .get(&format!("/api/rooms/{room}/messages/"), &bob.access)
        .await;
    assert_eq!(page.body["results"][0]["body"], "Bob's");
}

/// An ADMIN demoted while renaming a room, deleting it or seating someone in it (the rights
/// checked on a read, the change waiting for the organization's lock) changes nothing: 403.
/// Each went through from the earlier read, so an ADMIN on their way out could still erase a
/// room and its messages, or seat someone in a PRIVATE room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demotion_stops_a_room_change_under_way() {
    let Some(app) = TestApp::spawn(Engine::Postgres).await else {
        return;
    };
    let (org, _general, alice, bob) = app.room_for_two().await;
    let carol = app.user("carol@example.com").await;
    app.join(org, &alice, &carol, "ADMIN").await;
    let private = app.room(&alice, org, "secrets", "PRIVATE").await;
    let path = format!("/api/rooms/{private}/");
    let invite = format!("{path}invite/");
    let changes = [
        (
            "rename",
            app.patch(&path, &carol.access, json!({"name": "taken"}))
                .boxed(),
        ),
        ("delete", app.delete(&path, &carol.access).boxed()),
        (
            "invite",
            app.post(&invite, Some(&carol.access), json!({"user_id": bob.id}))
                .boxed(),
        ),
    ];
    for (what, change) in changes {
        let reply = answer_after(
            &app,
            &format!("SELECT id FROM orgs WHERE id = {org} FOR UPDATE"),
            change,
            &format!(
                "UPDATE org_members SET role = 'MEMBER' WHERE org_id = {org} AND user_id = {}",
                carol.id
            ),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{what}: {}",
            reply.text
        );
        testing::db::execute_sql(
            &app.db_url,
            &format!(
                "UPDATE org_members SET role = 'ADMIN' WHERE org_id = {org} AND user_id = {}",
                carol.id
            ),
        )
        .await;
    }
    let room = app.get(&path, &alice.access).await;
    assert_eq!(room.body["name"], "secrets", "{}", room.text);
    let members = app.get(&format!("{path}members/"), &alice.access).await;
    assert!(
        !members.text.contains("bob@example.com"),
        "{}",
        members.text
    );
}

/// An invitation revoked while its acceptance waits for the organization's lock is not
/// accepted: 404, and no membership. (The acceptance went on from its earlier read.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_revoked_while_accepted_lets_nobody_in() {
    let Some(app) = TestApp::spawn(Engine::Postgres).await else {
        return;
    };
    let alice = app.user("alice@example.com").await;
    let carol = app.user("carol@example.com").await;
    let org = app.org(&alice, "Acme").await;
    let invite = app
        .post(
            &format!("/api/orgs/{org}/invite/"),
            Some(&alice.access),
            json!({"email": "carol@example.com"}),
        )
        .await;
    assert_eq!(invite.status, StatusCode::CREATED, "{}", invite.text);
    let token = invite.body["token"].as_str().unwrap().to_owned();
    let invite_id = invite.body["id"].as_i64().unwrap();

    let reply = answer_after(
        &app,
        &format!("SELECT id FROM orgs WHERE id = {org} FOR UPDATE"),
        app.post(
            "/api/orgs/accept-invite/",
            Some(&carol.access),
            json!({"token": token}),
        ),
        &format!("UPDATE org_invites SET revoked_at = now() WHERE id = {invite_id}"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
    let members = app
        .get(&format!("/api/orgs/{org}/members/"), &alice.access)
        .await;
    assert!(
        !members.text.contains("carol@example.com"),
        "{}",
        members.text
    );
}

/// An ADMIN removed while their own change to a member waits for the org's lock: the change is
/// refused (403), as it would have been a moment later. (It went through on the role read
/// before the removal.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_admin_changes_nobody() {
    let Some(app) = TestApp::spawn(Engine::Postgres).await else {
        return;
    };
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let mallory = app.user("mallory@example.com").await;
    let org = app.org(&alice, "Acme").await;
    app.join(org, &alice, &bob, "ADMIN").await;
    app.join(org, &alice, &mallory, "MEMBER").await;

    let role_path = format!("/api/orgs/{org}/members/{}/role/", mallory.id);
    let reply = answer_after(
        &app,
        &format!("SELECT id FROM orgs WHERE id = {org} FOR UPDATE"),
        app.post(&role_path, Some(&bob.access), json!({"role": "ADMIN"})),
        &format!(
            "DELETE FROM org_members WHERE org_id = {org} AND user_id = {}",
            bob.id
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    let members = app
        .get(&format!("/api/orgs/{org}/members/"), &alice.access)
        .await;
    let mallory_role = members.body.as_array().and_then(|all| {
        all.iter()
            .find(|m| m["user"]["id"] == mallory.id || m["user_id"] == mallory.id)
            .map(|m| m["role"].clone())
    });
    assert_eq!(mallory_role, Some(json!("MEMBER")), "{}", members.text);
}

/// An ADMIN demoted while their webhook deletion, webhook test or revocation of an ADMIN
/// invitation waits for the organization's lock is refused (403), and the webhook and the
/// invitation stay as they were. (All three went through on the role read before the lock.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_admin_deletes_tests_and_revokes_nothing() {
    let Some(app) =
        TestApp::spawn_with(Engine::Postgres, |c| c.webhooks.allow_private = true).await
    else {
        return;
    };
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let org = app.org(&alice, "Acme").await;
    app.join(org, &alice, &bob, "ADMIN").await;
    let hook = webhook(&app, &alice, org).await;
    let invited = app
        .post(
            &format!("/api/orgs/{org}/invite/"),
            Some(&alice.access),
            json!({"email": "carol@example.com", "role": "ADMIN"}),
        )
        .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.text);
    let invite = invited.body["id"].as_i64().unwrap();

    let demote = format!(
        "UPDATE org_members SET role = 'MEMBER' WHERE org_id = {org} AND user_id = {}",
        bob.id
    );
    let promote_again = format!(
        "UPDATE org_members SET role = 'ADMIN' WHERE org_id = {org} AND user_id = {}",
        bob.id
    );
    let hold = format!("SELECT id FROM orgs WHERE id = {org} FOR UPDATE");
    let hook_path = format!("/api/webhooks/{hook}/");
    let test_path = format!("/api/webhooks/{hook}/test/");
    let invite_path = format!("/api/orgs/{org}/invitations/{invite}/");
    let changes = [
        ("delete", app.delete(&hook_path, &bob.access).boxed()),
        (
            "test",
            app.post(&test_path, Some(&bob.access), json!({})).boxed(),
        ),
        ("revoke", app.delete(&invite_path, &bob.access).boxed()),
    ];
    for (what, change) in changes {
        let reply = answer_after(&app, &hold, change, &demote).await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{what}: {}",
            reply.text
        );
        testing::db::execute_sql(&app.db_url, &promote_again).await;
    }
    let log = app
        .get(&format!("/api/webhooks/{hook}/events/"), &alice.access)
        .await;
    assert_eq!(
        log.status,
        StatusCode::OK,
        "the webhook stays: {}",
        log.text
    );
    let tests = log
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["event_type"] == "webhook.test")
        .count();
    assert_eq!(tests, 0, "{}", log.text);
    let open = app
        .get(&format!("/api/orgs/{org}/invitations/"), &alice.access)
        .await;
    let ids: Vec<i64> = open
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["id"].as_i64())
        .collect();
    assert_eq!(ids, vec![invite], "{}", open.text);
}

/// Webhooks created, changed or deleted while a suspension commits are refused (403
/// `org_suspended`) and leave the webhooks as they were. The suspension holds the
/// organization's row until it commits; the change waits for its own lock of that row. (They
/// went through on the read of the org made before.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspension_stops_a_webhook_change_under_way() {
    let Some(app) =
        TestApp::spawn_with(Engine::Postgres, |c| c.webhooks.allow_private = true).await
    else {
        return;
    };
    let alice = app.user("alice@example.com").await;
    let org = app.org(&alice, "Acme").await;
    let hook = format!("/api/webhooks/{}/", webhook(&app, &alice, org).await);
    let suspend = format!("UPDATE orgs SET suspended = TRUE WHERE id = {org}");

    let changes = [
        (
            "create",
            app.post(
                "/api/webhooks/",
                Some(&alice.access),
                json!({"org": org, "url": "http://127.0.0.1:9/another", "events": ["*"]}),
            )
            .boxed(),
        ),
        (
            "update",
            app.patch(&hook, &alice.access, json!({"is_active": false}))
                .boxed(),
        ),
        ("delete", app.delete(&hook, &alice.access).boxed()),
    ];
    for (what, change) in changes {
        let reply = answer_after_committed(&app, &suspend, change).await;
        refused_as_suspended_then_resumed(&app, org, &reply, what).await;
    }
    let list = app
        .get(&format!("/api/webhooks/?org={org}"), &alice.access)
        .await;
    let hooks = list.body.as_array().unwrap();
    assert_eq!(hooks.len(), 1, "{}", list.text);
    assert_eq!(hooks[0]["is_active"], true, "{}", list.text);
}

/// A room deleted while a suspension of its organization commits is refused (403
/// `org_suspended`) and stays, messages and all. The deletion waits for the organization's
/// lock, which the suspension holds until it commits. (It went through on the read of the org
/// made before.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspension_stops_a_room_deletion_under_way() {
    let Some(app) = TestApp::spawn(Engine::Postgres).await else {
        return;
    };
    let (org, room, alice, _bob) = app.room_for_two().await;
    app.send(&alice, room, "still here").await;
    let room_path = format!("/api/rooms/{room}/");
    let reply = answer_after_committed(
        &app,
        &format!("UPDATE orgs SET suspended = TRUE WHERE id = {org}"),
        app.delete(&room_path, &alice.access),
    )
    .await;
    refused_as_suspended_then_resumed(&app, org, &reply, "room deletion").await;
    let page = app
        .get(&format!("{room_path}messages/"), &alice.access)
        .await;
    assert_eq!(
        page.body["results"][0]["body"], "still here",
        "{}",
        page.text
    );
}
