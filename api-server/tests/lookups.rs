//! The lookups by prefix: the quick switcher's rooms and members, "Browse rooms", and a room's
//! members for a mention, in any alphabet. Both engines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use testing::both_engines;

use common::{Engine, TestApp, TestUser};
use reqwest::StatusCode;
use serde_json::json;

both_engines!(
    rooms_and_members_are_found_by_prefix,
    joinable_rooms_are_those_the_caller_may_join,
    lookups_fold_case_in_every_alphabet,
);

/// The names (or another text field, `key`) of a lookup's answer.
fn listed(r: &common::Reply, key: &str) -> Vec<String> {
    r.body
        .as_array()
        .unwrap_or_else(|| panic!("{}", r.text))
        .iter()
        .map(|v| v[key].as_str().unwrap().to_owned())
        .collect()
}

async fn rooms_and_members_are_found_by_prefix(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, _room, alice, bob) = app.room_for_two().await;
    app.room(&alice, org, "General Ops", "PUBLIC").await;
    app.room(&alice, org, "gen-private", "PRIVATE").await;
    let r = app
        .get(&format!("/api/orgs/{org}/search/rooms/?q=GEN"), &bob.access)
        .await;
    assert_eq!(
        listed(&r, "name"),
        ["general", "General Ops"],
        "no private room of others"
    );
    let r = app
        .get(
            &format!("/api/orgs/{org}/search/rooms/?q=gen"),
            &alice.access,
        )
        .await;
    assert_eq!(listed(&r, "name").len(), 3);
    let r = app
        .get(
            &format!("/api/orgs/{org}/search/members/?q=b"),
            &alice.access,
        )
        .await;
    assert_eq!(listed(&r, "email"), ["bob@example.com"]);
    let r = app
        .get(
            &format!("/api/orgs/{org}/search/members/?limit=1"),
            &alice.access,
        )
        .await;
    assert_eq!(listed(&r, "email"), ["alice@example.com"]);
    let mallory = app.user("mallory@example.com").await;
    let r = app
        .get(
            &format!("/api/orgs/{org}/search/rooms/?q=g"),
            &mallory.access,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// "Browse rooms" lists what the caller may join and does not sit in: a room they left, and a
/// MANAGER_ONLY room once they are a MANAGER; never a private room, a direct message or a room
/// they sit in. The switcher's lookup (without `joinable`) is unchanged.
async fn joinable_rooms_are_those_the_caller_may_join(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, _general, alice, bob) = app.room_for_two().await;
    let ops = app.room(&alice, org, "Gen Ops", "PUBLIC").await;
    let managers = app.room(&alice, org, "gen-managers", "MANAGER_ONLY").await;
    app.room(&alice, org, "gen-private", "PRIVATE").await;
    app.dm(&alice, org, &bob).await;
    app.room_action(&bob, ops, "leave").await;
    let joinable = |user: &TestUser, query: &str| {
        let path = format!("/api/orgs/{org}/search/rooms/?joinable=true&limit=50{query}");
        let token = user.access.clone();
        let app = &app;
        async move {
            let r = app.get(&path, &token).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            r.body
                .as_array()
                .unwrap_or_else(|| panic!("{}", r.text))
                .iter()
                .map(|v| v["name"].as_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(joinable(&bob, "").await, ["Gen Ops"], "a MEMBER");
    assert_eq!(joinable(&bob, "&q=x").await, Vec::<String>::new());
    assert_eq!(
        joinable(&alice, "").await,
        Vec::<String>::new(),
        "seated in all"
    );
    app.set_role(org, &alice, &bob, "MANAGER").await;
    assert_eq!(joinable(&bob, "&q=GEN").await, ["Gen Ops", "gen-managers"]);
    app.joined(&bob, managers).await;
    assert_eq!(joinable(&bob, "").await, ["Gen Ops"]);
    // The switcher still offers every room the caller may open.
    let r = app
        .get(&format!("/api/orgs/{org}/search/rooms/?q=gen"), &bob.access)
        .await;
    assert_eq!(r.body.as_array().map(Vec::len), Some(3), "{}", r.text);
    let r = app
        .get(
            &format!("/api/orgs/{org}/search/rooms/?joinable=yes"),
            &bob.access,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.text.contains("joinable"), "{}", r.text);
}

/// A lookup in capitals or small letters finds a name written in the other, in any alphabet:
/// SQLite's own `lower()` changed ASCII letters only, so "élodie" missed "Élodie" on the single
/// node (PostgreSQL found her).
async fn lookups_fold_case_in_every_alphabet(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, room, alice, bob) = app.room_for_two().await;
    let elodie = app.user("elodie@example.com").await;
    app.join(org, &alice, &elodie, "MEMBER").await;
    // Joining the organization seated her in its PUBLIC room.
    let r = app
        .patch(
            "/auth/me/",
            &elodie.access,
            json!({"first_name": "Élodie", "last_name": "ØSTERGAARD"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Greek's final sigma: written "ς" in small letters, while "Σ" lowercases to "σ" letter by
    // letter; a name typed whole in either finds the other.
    let papas = app.user("papas@example.com").await;
    app.join(org, &alice, &papas, "MEMBER").await;
    let r = app
        .patch("/auth/me/", &papas.access, json!({"last_name": "ΠΑΠΑΣ"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    app.room(&alice, org, "Équipe Ωmega", "PUBLIC").await;
    app.room(&alice, org, "ÉTÉ", "PUBLIC").await;
    app.room(&alice, org, "συναντησης", "PUBLIC").await;
    for (q, rooms) in [
        ("%C3%A9qu", vec!["Équipe Ωmega"]),             // équ
        ("%C3%89QUIPE%20%CF%89", vec!["Équipe Ωmega"]), // ÉQUIPE ω
        ("%C3%A9t%C3%A9", vec!["ÉTÉ"]),                 // été
        (
            "%CE%A3%CE%A5%CE%9D%CE%91%CE%9D%CE%A4%CE%97%CE%A3%CE%97%CE%A3", // ΣΥΝΑΝΤΗΣΗΣ
            vec!["συναντησης"],
        ),
    ] {
        let r = app
            .get(&format!("/api/orgs/{org}/search/rooms/?q={q}"), &bob.access)
            .await;
        assert_eq!(
            listed(&r, "name"),
            rooms,
            "rooms for {q} (PostgreSQL folds case by its LC_CTYPE: a C one folds ASCII only)"
        );
    }
    for q in ["%C3%A9lo", "%C3%B8ster"] {
        // élo, øster
        let r = app
            .get(
                &format!("/api/orgs/{org}/search/members/?q={q}"),
                &bob.access,
            )
            .await;
        assert_eq!(
            listed(&r, "email"),
            ["elodie@example.com"],
            "members for {q}"
        );
        let r = app
            .get(&format!("/api/rooms/{room}/members/?q={q}"), &bob.access)
            .await;
        assert_eq!(
            listed(&r, "email"),
            ["elodie@example.com"],
            "mention for {q}"
        );
    }
    let q = "%CE%A0%CE%B1%CF%80%CE%B1%CF%82"; // Παπας
    let r = app
        .get(
            &format!("/api/orgs/{org}/search/members/?q={q}"),
            &bob.access,
        )
        .await;
    assert_eq!(listed(&r, "email"), ["papas@example.com"], "members");
    let r = app
        .get(&format!("/api/rooms/{room}/members/?q={q}"), &bob.access)
        .await;
    assert_eq!(listed(&r, "email"), ["papas@example.com"], "mention");
    // A limit without q is refused rather than ignored (the whole list was answered).
    let r = app
        .get(&format!("/api/rooms/{room}/members/?limit=1"), &bob.access)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.body["errors"]["limit"].is_array(), "{}", r.text);
}
