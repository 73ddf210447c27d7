//! Committed changes are announced on the bus, on the in-process bus and on NATS JetStream
//! (`NATS_URL`; skipped with a note without it, a failure under `CHATBOARD_REQUIRE_SERVICES=1`);
//! an api-server stays ready while NATS is away.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use chatboard_core::bus::{BusEvent, BusStream, Delivery, NatsBus};
use common::{Engine, TestApp};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::json;

/// The next event for clients (seat notices, which only steer the gateways, are skipped).
async fn next_event(stream: &mut BusStream) -> BusEvent {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
            Ok(Some(Delivery::Event(BusEvent::MemberSeated { .. }))) => continue,
            Ok(Some(Delivery::Event(event))) => return event,
            other => panic!("expected an event, got {other:?}"),
        }
    }
}

async fn quiet(stream: &mut BusStream) -> bool {
    tokio::time::timeout(Duration::from_millis(300), stream.next())
        .await
        .is_err()
}

/// Posts, edits, deletes and reads through HTTP and checks what the bus carried.
async fn changes_are_announced(app: &TestApp) {
    let mut events = app.state.bus.subscribe().await.unwrap();
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let org = app.org(&alice, "Acme").await;
    app.join(org, &alice, &bob, "MEMBER").await;
    let room = app.room(&alice, org, "general", "PUBLIC").await;
    let path = format!("/api/rooms/{room}/messages/");

    let r = app
        .post(
            &path,
            Some(&bob.access),
            json!({"body": "hi", "client_msg_id": "k1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.body["id"].as_i64().unwrap();
    match next_event(&mut events).await {
        BusEvent::Message { message, seq } => {
            assert_eq!((message.id, message.room, seq), (id, room, 1));
            assert_eq!(serde_json::to_value(&message).unwrap(), r.body);
        }
        other => panic!("expected the message, got {other:?}"),
    }
    // A repeated send is not news.
    let again = app
        .post(
            &path,
            Some(&bob.access),
            json!({"body": "hi", "client_msg_id": "k1"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert!(quiet(&mut events).await);

    let second = app.send(&alice, room, "second").await;
    assert!(matches!(next_event(&mut events).await,
        BusEvent::Message { message, seq: 2 } if message.id == second));
    app.patch(&format!("{path}{id}/"), &bob.access, json!({"body": "hi!"}))
        .await;
    assert!(matches!(next_event(&mut events).await,
        BusEvent::MessageUpdated(m) if m.id == id && m.body == "hi!"));
    app.delete(&format!("{path}{id}/"), &bob.access).await;
    assert_eq!(
        next_event(&mut events).await,
        BusEvent::MessageDeleted { id, room }
    );
    // Deleting it again succeeds and is not news (every socket got the deletion twice).
    let again = app.delete(&format!("{path}{id}/"), &bob.access).await;
    assert_eq!(again.status, StatusCode::NO_CONTENT);
    assert!(quiet(&mut events).await);
    app.post(
        &format!("/api/rooms/{room}/read/{second}/"),
        Some(&bob.access),
        json!({}),
    )
    .await;
    assert_eq!(
        next_event(&mut events).await,
        BusEvent::Read {
            room,
            user_id: bob.id,
            last_read_msg_id: second,
            reader_only: false,
        }
    );
    // Refused changes announce nothing.
    app.post(&path, Some(&bob.access), json!({"body": ""}))
        .await;
    assert!(quiet(&mut events).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_announced_on_the_local_bus() {
    let app = TestApp::spawn(Engine::Sqlite).await.unwrap();
    assert_eq!(app.state.bus.kind(), "local");
    changes_are_announced(&app).await;
    let ready = app
        .call(reqwest::Method::GET, "/health/ready", None, None)
        .await;
    assert_eq!(ready.body["checks"], json!({"database": "ok"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_announced_on_nats() {
    let Some(url) = testing::nats_url() else {
        return;
    };
    let prefix = testing::unique_prefix();
    let (nats_url, nats_prefix) = (url.clone(), prefix.clone());
    let app = TestApp::spawn_with(Engine::Sqlite, move |c| {
        c.nats_url = Some(nats_url);
        c.nats.nats_prefix = nats_prefix;
    })
    .await
    .unwrap();
    assert_eq!(app.state.bus.kind(), "nats");
    changes_are_announced(&app).await;
    let ready = app
        .call(reqwest::Method::GET, "/health/ready", None, None)
        .await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(
        ready.body["checks"],
        json!({"database": "ok", "nats": "ok"})
    );
    NatsBus::connect(&url, &prefix)
        .await
        .unwrap()
        .delete_stream()
        .await
        .unwrap();
}

/// NATS goes away: the api-server stays ready (saying so in `checks.nats`) and goes on taking
/// posts. Its readiness failed on NATS, so an outage took every api-server out of its Service
/// and answered 503 at the Ingress, where the README promises that posting carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_stays_ready_while_nats_is_away() {
    let Some(mut nats) = testing::OwnNats::start() else {
        return;
    };
    let nats_url = nats.url();
    let app = TestApp::spawn_with(Engine::Sqlite, move |c| {
        c.nats_url = Some(nats_url);
        c.nats.nats_prefix = testing::unique_prefix();
    })
    .await
    .unwrap();
    let ada = app.user("ada@example.com").await;
    let org = app
        .post("/api/orgs/", Some(&ada.access), json!({"name": "Away"}))
        .await;
    let room = app
        .post(
            "/api/rooms/",
            Some(&ada.access),
            json!({"org": org.body["id"], "name": "general"}),
        )
        .await;
    let path = format!("/api/rooms/{}/messages/", room.body["id"]);
    nats.kill();
    let mut ready = app
        .call(reqwest::Method::GET, "/health/ready", None, None)
        .await;
    // The client notices the lost connection on its own time: wait for the check to say so.
    for _ in 0..200 {
        if ready.body["checks"]["nats"] != "ok" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        ready = app
            .call(reqwest::Method::GET, "/health/ready", None, None)
            .await;
    }
    assert_ne!(ready.body["checks"]["nats"], "ok", "{}", ready.text);
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
    assert_eq!(ready.body["checks"]["database"], "ok");
    let posted = app
        .post(
            &path,
            Some(&ada.access),
            json!({"body": "while NATS is away"}),
        )
        .await;
    assert_eq!(posted.status, StatusCode::CREATED, "{}", posted.text);
}

/// Holds `row` (a locking query), sends `body` to `path` as a raw POST, waits for it to wait for
/// the lock, then hangs up and waits for the server to drop the request; returns the lock.
async fn hang_up_while_held(
    app: &TestApp,
    row: &str,
    path: &str,
    token: &str,
    body: serde_json::Value,
) -> testing::HeldLocks {
    use tokio::io::AsyncWriteExt;
    let held = testing::HeldLocks::take(&app.db_url, row).await;
    let body = body.to_string();
    let host = app.base.trim_start_matches("http://").to_owned();
    let mut client = tokio::net::TcpStream::connect(&host).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    client.write_all(request.as_bytes()).await.unwrap();
    while testing::waiting_for_locks(&app.db_url).await < 1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The client goes; the server drops the request once it sees the connection end (the
    // request no longer counts as in flight), while the change still waits for the lock.
    drop(client);
    let dropped = async {
        while app.state.metrics.in_flight().get() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), dropped)
        .await
        .expect("the request still counted in flight 20 s after its client left");
    held
}

/// A room created for a client that hangs up while the creation waits for its organization is
/// created and its seats announced all the same (the members' sockets follow it): the creation
/// used to be dropped with the request, and with it, after its commit, the announcements.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_created_for_a_client_that_hung_up_is_announced() {
    let Some(app) = TestApp::spawn(Engine::Postgres).await else {
        return;
    };
    let (org, room, alice, bob) = app.room_for_two().await;
    let mut events = app.state.bus.subscribe().await.unwrap();
    let row = format!("SELECT id FROM orgs WHERE id = {org} FOR NO KEY UPDATE");
    let body = json!({"org": org, "name": "made while away"});
    let held = hang_up_while_held(&app, &row, "/api/rooms/", &alice.access, body).await;
    held.release().await;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.next()).await {
            Ok(Some(Delivery::Event(BusEvent::MemberSeated {
                room: seated,
                user_id,
                ..
            }))) if seated != room && user_id == bob.id => break,
            Ok(Some(_)) => continue,
            other => panic!("expected Bob's seat in the new room, got {other:?}"),
        }
    }
}

/// A post whose client hangs up while it waits for its commit is stored (the write queue's
/// task commits it) and announced all the same: open sockets hear of it. The room's row is
/// held so that the post waits; PostgreSQL only, which can hold one row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_whose_client_hung_up_is_announced() {
    let Some(app) = TestApp::spawn(Engine::Postgres).await else {
        return;
    };
    let (_org, room, alice, _bob) = app.room_for_two().await;
    let mut events = app.state.bus.subscribe().await.unwrap();
    let row = format!("SELECT id FROM rooms WHERE id = {room} FOR NO KEY UPDATE");
    let body = json!({"body": "said, then the line went dead"});
    let held = hang_up_while_held(
        &app,
        &row,
        &format!("/api/rooms/{room}/messages/"),
        &alice.access,
        body,
    )
    .await;
    held.release().await;
    match next_event(&mut events).await {
        BusEvent::Message { message, .. } => {
            assert_eq!(
                (message.room, message.body.as_str()),
                (room, "said, then the line went dead")
            );
        }
        other => panic!("expected the message, got {other:?}"),
    }
}
