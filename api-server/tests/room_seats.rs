//! A room's `members_count` is kept as seats come and go (by the database's triggers, no longer
//! counted on each read): creation by access level, joining and leaving, invitations, an
//! organization's new member, a demotion out of a MANAGER_ONLY room, a removal from the
//! organization, and a room's deletion. Each count is checked against the room's member list,
//! in the room's own answer and in the listing. Both engines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::collections::BTreeMap;

use testing::both_engines;

use common::{Engine, TestApp, TestUser};
use reqwest::StatusCode;
use serde_json::json;

both_engines!(members_count_follows_every_change_of_seats);

/// Every room `viewer` sits in, with the count the listing gives and the room's own answer
/// gives; both must equal the room's member list.
async fn counts(app: &TestApp, viewer: &TestUser) -> BTreeMap<i64, i64> {
    let list = app.get("/api/rooms/", &viewer.access).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let mut counts = BTreeMap::new();
    for room in list.body.as_array().unwrap() {
        let id = room["id"].as_i64().unwrap();
        let listed = room["members_count"].as_i64().unwrap();
        let own = app.get(&format!("/api/rooms/{id}/"), &viewer.access).await;
        assert_eq!(
            own.body["members_count"].as_i64(),
            Some(listed),
            "{}",
            own.text
        );
        let members = app
            .get(&format!("/api/rooms/{id}/members/"), &viewer.access)
            .await;
        let seated = i64::try_from(members.body.as_array().unwrap().len()).unwrap();
        assert_eq!(listed, seated, "room {} ({})", id, room["name"]);
        counts.insert(id, listed);
    }
    counts
}

async fn members_count_follows_every_change_of_seats(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let alice = app.user("alice@example.com").await;
    let org = app.org(&alice, "Acme").await;
    let (bob, carol, dave) = (
        app.user("bob@example.com").await,
        app.user("carol@example.com").await,
        app.user("dave@example.com").await,
    );
    app.join(org, &alice, &bob, "MEMBER").await;
    app.join(org, &alice, &carol, "MANAGER").await;
    app.join(org, &alice, &dave, "MEMBER").await;
    let general = app.room(&alice, org, "general", "PUBLIC").await;
    let leads = app.room(&alice, org, "leads", "MANAGER_ONLY").await;
    let secret = app.room(&alice, org, "secret", "PRIVATE").await;
    let dm = app.dm(&alice, org, &bob).await;
    let expected = BTreeMap::from([(general, 4), (leads, 2), (secret, 1), (dm, 2)]);
    assert_eq!(counts(&app, &alice).await, expected);

    app.room_action(&bob, general, "leave").await;
    assert_eq!(counts(&app, &alice).await[&general], 3);
    let r = app.joined(&bob, general).await;
    assert_eq!(r.body["members_count"], 4, "{}", r.text);
    // Invited twice: the second time he is seated already, and nothing more is counted.
    for status in [StatusCode::CREATED, StatusCode::OK] {
        let r = app
            .post(
                &format!("/api/rooms/{secret}/invite/"),
                Some(&alice.access),
                json!({"user_id": dave.id}),
            )
            .await;
        assert_eq!(r.status, status, "{}", r.text);
        assert_eq!(r.body["members_count"], 2, "{}", r.text);
    }

    // A demotion takes carol out of the MANAGER_ONLY room; a removal takes dave out of all.
    app.set_role(org, &alice, &carol, "MEMBER").await;
    let r = app
        .delete(
            &format!("/api/orgs/{org}/members/{}/", dave.id),
            &alice.access,
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    let expected = BTreeMap::from([(general, 3), (leads, 1), (secret, 1), (dm, 2)]);
    assert_eq!(counts(&app, &alice).await, expected);

    // A new member of the organization takes a seat in its PUBLIC rooms.
    let erin = app.user("erin@example.com").await;
    app.join(org, &alice, &erin, "MEMBER").await;
    assert_eq!(counts(&app, &erin).await, BTreeMap::from([(general, 4)]));

    // A room's deletion takes its seats along and leaves the others' counts as they were.
    let r = app
        .delete(&format!("/api/rooms/{secret}/"), &alice.access)
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    let expected = BTreeMap::from([(general, 4), (leads, 1), (dm, 2)]);
    assert_eq!(counts(&app, &alice).await, expected);
}
