//! Who may do what, in cases found by review: an ADMIN moderating a room they do not sit in, a
//! creator's rights after losing their seat, a direct message after one of its two left the
//! organization and came back, out-of-range search dates, and a refused post with a file.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use common::{Engine, TestApp};
use reqwest::StatusCode;
use serde_json::json;
use testing::both_engines;

both_engines!(
    an_admin_deletes_a_message_in_a_room_they_do_not_sit_in,
    a_creator_demoted_out_of_their_room_no_longer_manages_it,
    a_direct_message_reopens_for_someone_who_came_back,
    search_refuses_dates_no_database_can_hold,
    a_refused_post_does_not_charge_its_file,
);

async fn an_admin_deletes_a_message_in_a_room_they_do_not_sit_in(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, _general, alice, bob) = app.room_for_two().await;
    let carol = app.user("carol@example.com").await;
    app.join(org, &alice, &carol, "MEMBER").await;
    let private = app.room(&alice, org, "private", "PRIVATE").await;
    let r = app
        .post(
            &format!("/api/rooms/{private}/invite/"),
            Some(&alice.access),
            json!({"user_id": bob.id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let msg = app.send(&bob, private, "to be moderated").await;
    let r = app
        .post(
            &format!("/api/rooms/{private}/leave/"),
            Some(&alice.access),
            json!({}),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    let path = format!("/api/rooms/{private}/messages/{msg}/");
    // Carol, a MEMBER without a seat, learns nothing of the room.
    let r = app.delete(&path, &carol.access).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    // Alice, an ADMIN without a seat, may delete it (API.md: its sender, org ADMIN).
    let r = app.delete(&path, &alice.access).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let page = app
        .get(&format!("/api/rooms/{private}/messages/"), &bob.access)
        .await;
    assert_eq!(page.body["results"][0]["is_deleted"], true, "{}", page.text);
}

async fn a_creator_demoted_out_of_their_room_no_longer_manages_it(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, _general, alice, bob) = app.room_for_two().await;
    let r = app
        .post(
            &format!("/api/orgs/{org}/members/{}/role/", bob.id),
            Some(&alice.access),
            json!({"role": "MANAGER"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let managers = app.room(&bob, org, "managers", "MANAGER_ONLY").await;
    let r = app
        .post(
            &format!("/api/orgs/{org}/members/{}/role/", bob.id),
            Some(&alice.access),
            json!({"role": "MEMBER"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // The demotion took the seat; the room's creation no longer opens it to him.
    let opened = app
        .patch(
            &format!("/api/rooms/{managers}/"),
            &bob.access,
            json!({"access_level": "PUBLIC"}),
        )
        .await;
    assert_eq!(opened.status, StatusCode::NOT_FOUND, "{}", opened.text);
    let invited = app
        .post(
            &format!("/api/rooms/{managers}/invite/"),
            Some(&bob.access),
            json!({"user_id": bob.id}),
        )
        .await;
    assert_eq!(invited.status, StatusCode::NOT_FOUND, "{}", invited.text);
    let r = app
        .get(&format!("/api/rooms/{managers}/"), &alice.access)
        .await;
    assert_eq!(r.body["access_level"], "MANAGER_ONLY", "{}", r.text);
}

async fn a_direct_message_reopens_for_someone_who_came_back(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, _general, alice, bob) = app.room_for_two().await;
    let room = app.dm(&alice, org, &bob).await;
    app.send(&alice, room, "before you left").await;
    let r = app
        .delete(&format!("/api/orgs/{org}/members/{}/", bob.id), &bob.access)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    app.join(org, &alice, &bob, "MEMBER").await;
    // The same conversation, with both in it again.
    let again = app
        .post(
            "/api/rooms/dm/",
            Some(&bob.access),
            json!({"org": org, "user_id": alice.id}),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.body["id"], room);
    assert_eq!(again.body["members_count"], 2, "{}", again.text);
    app.send(&bob, room, "back again").await;
    let page = app
        .get(&format!("/api/rooms/{room}/messages/"), &alice.access)
        .await;
    assert_eq!(
        page.body["results"][0]["body"], "back again",
        "{}",
        page.text
    );
}

async fn search_refuses_dates_no_database_can_hold(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, room, alice, _bob) = app.room_for_two().await;
    app.send(&alice, room, "lunch").await;
    for date in ["-5000-01-01", "+10000-01-01", "0000-01-01"] {
        let r = app
            .get(
                &format!("/api/orgs/{org}/search/?q=lunch&after={date}"),
                &alice.access,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{date}: {}", r.text);
        assert!(r.body["errors"]["after"].is_array(), "{}", r.text);
    }
}

async fn a_refused_post_does_not_charge_its_file(engine: Engine) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let Some(app) = TestApp::spawn_with(engine, |c| c.uploads.local_dir = Some(path)).await else {
        return;
    };
    let (_org, room, alice, _bob) = app.room_for_two().await;
    let other_org = app.org(&alice, "Elsewhere").await;
    let elsewhere = app.room(&alice, other_org, "general", "PUBLIC").await;
    let bytes = b"notes".to_vec();
    let p = app
        .post(
            "/api/uploads/presign/",
            Some(&alice.access),
            json!({"filename": "notes.txt", "content_type": "text/plain", "size": bytes.len()}),
        )
        .await;
    assert_eq!(p.status, StatusCode::CREATED, "{}", p.text);
    let id = p.body["id"].as_str().unwrap().to_owned();
    let put = app
        .client
        .put(p.body["upload_url"].as_str().unwrap())
        .header("Content-Type", "text/plain")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    let done = app
        .post(
            &format!("/api/uploads/{id}/complete/"),
            Some(&alice.access),
            json!({}),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    // Refused for its client_msg_id: the file is still free to go elsewhere.
    let refused = app
        .post(
            &format!("/api/rooms/{room}/messages/"),
            Some(&alice.access),
            json!({"file_id": id, "client_msg_id": "x".repeat(65)}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);
    // A repeat of a message already sent (its client_msg_id) answers with that message, which
    // has no file: the file stays free too.
    let first = app
        .post(
            &format!("/api/rooms/{room}/messages/"),
            Some(&alice.access),
            json!({"body": "hi", "client_msg_id": "k"}),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let repeat = app
        .post(
            &format!("/api/rooms/{room}/messages/"),
            Some(&alice.access),
            json!({"file_id": id, "client_msg_id": "k"}),
        )
        .await;
    assert_eq!(repeat.status, StatusCode::OK, "{}", repeat.text);
    assert!(repeat.body["file"].is_null(), "{}", repeat.text);
    let posted = app
        .post(
            &format!("/api/rooms/{elsewhere}/messages/"),
            Some(&alice.access),
            json!({"file_id": id}),
        )
        .await;
    assert_eq!(posted.status, StatusCode::CREATED, "{}", posted.text);
}
