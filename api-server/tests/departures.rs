//! Every way of losing seats writes `member.left` to the outbox in the same transaction, with
//! the rooms that went: webhooks hear of departures, and a restarting API can announce them
//! again to the gateways.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use common::{Engine, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use testing::both_engines;

both_engines!(every_departure_writes_member_left);

async fn every_departure_writes_member_left(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let store = app.state.store.clone();
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let carol = app.user("carol@example.com").await;
    let org = app.org(&alice, "Acme").await;
    app.join(org, &alice, &bob, "MANAGER").await;
    app.join(org, &alice, &carol, "MEMBER").await;
    let open = app.room(&alice, org, "open", "PUBLIC").await;
    let managers = app.room(&alice, org, "managers", "MANAGER_ONLY").await;
    for room in [open, managers] {
        app.room_action(&bob, room, "join").await;
    }
    app.room_action(&carol, open, "join").await;
    let mark = store.outbox_latest(1).await.unwrap()[0].position;
    let member_left = || async {
        store
            .outbox_after(mark, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.event_type == "member.left")
            .map(|e| {
                assert_eq!(e.org_id, org);
                assert_eq!(e.room_id, e.data["room_id"].as_i64());
                e.data
            })
            .collect::<Vec<Value>>()
    };

    // Bob, demoted to MEMBER, loses the MANAGER_ONLY room.
    app.set_role(org, &alice, &bob, "MEMBER").await;
    // Carol leaves a room, then Bob is removed from the organization, then Carol leaves it.
    app.room_action(&carol, open, "leave").await;
    let seats = |user: i64| {
        let store = store.clone();
        async move {
            let mut ids: Vec<i64> = store
                .rooms_for_user(user, Some(org))
                .await
                .unwrap()
                .into_iter()
                .map(|room| room.id)
                .collect();
            ids.sort_unstable();
            ids
        }
    };
    let bob_rooms = seats(bob.id).await;
    assert!(bob_rooms.contains(&open), "{bob_rooms:?}");
    let r = app
        .delete(
            &format!("/api/orgs/{org}/members/{}/", bob.id),
            &alice.access,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let carol_rooms = seats(carol.id).await;
    let r = app
        .delete(
            &format!("/api/orgs/{org}/members/{}/", carol.id),
            &carol.access,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // A refused leave writes nothing.
    let r = app
        .post(
            &format!("/api/rooms/{open}/leave/"),
            Some(&carol.access),
            json!({}),
        )
        .await;
    assert_ne!(r.status, StatusCode::OK, "no seat to leave");

    assert_eq!(
        member_left().await,
        vec![
            json!({"org_id": org, "room_id": managers, "user_id": bob.id, "rooms": [managers], "via": "role_changed"}),
            json!({"org_id": org, "room_id": open, "user_id": carol.id, "rooms": [open], "via": "left"}),
            json!({"org_id": org, "room_id": null, "user_id": bob.id, "rooms": bob_rooms, "via": "removed"}),
            json!({"org_id": org, "room_id": null, "user_id": carol.id, "rooms": carol_rooms, "via": "left"}),
        ]
    );
}
