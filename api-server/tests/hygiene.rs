//! Input hygiene: NUL and control characters, bidirectional overrides, invisible names and
//! odd email forms are refused with 400 naming the field, the same on both engines (PostgreSQL
//! refuses NUL in text, SQLite would store it), before anything reaches the store.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use common::{Engine, Reply, TestApp};
use reqwest::StatusCode;
use serde_json::json;
use testing::both_engines;

both_engines!(
    nul_is_refused_everywhere_naming_the_field,
    names_must_be_one_visible_line,
    emails_are_plain_dot_atom_addresses,
);

/// A 400 whose field errors name `field`.
fn refused_naming(r: &Reply, field: &str) {
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{field}: {}", r.text);
    assert_eq!(r.code(), "invalid", "{field}: {}", r.text);
    assert!(r.body["errors"][field].is_array(), "{field}: {}", r.text);
}

async fn nul_is_refused_everywhere_naming_the_field(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let nul = "a\u{0}b";
    // Without signing in.
    let r = app
        .post(
            "/auth/token/",
            None,
            json!({"email": format!("{nul}@example.com"), "password": "x"}),
        )
        .await;
    refused_naming(&r, "email");
    let r = app
        .post(
            "/auth/register/",
            None,
            json!({"email": "new@example.com", "password": "password123", "first_name": nul}),
        )
        .await;
    refused_naming(&r, "first_name");

    let alice = app.user("alice@example.com").await;
    let r = app
        .post("/api/orgs/", Some(&alice.access), json!({"name": nul}))
        .await;
    refused_naming(&r, "name");
    let org = app.org(&alice, "Acme").await;
    let room = app.room(&alice, org, "general", "PUBLIC").await;
    let messages = format!("/api/rooms/{room}/messages/");
    let r = app
        .post(&messages, Some(&alice.access), json!({"body": nul}))
        .await;
    refused_naming(&r, "body");
    let r = app
        .post(
            &messages,
            Some(&alice.access),
            json!({"body": "fine", "client_msg_id": nul}),
        )
        .await;
    refused_naming(&r, "client_msg_id");
    let r = app
        .patch("/auth/me/", &alice.access, json!({"first_name": nul}))
        .await;
    refused_naming(&r, "first_name");
    // Other control characters in a body too; tab and line breaks are text.
    let r = app
        .post(&messages, Some(&alice.access), json!({"body": "bell\u{7}"}))
        .await;
    refused_naming(&r, "body");
    app.send(&alice, room, "two\nlines\tand a tab").await;

    // A query parameter names its field; a path segment names nothing, so it is not found.
    let r = app
        .get(&format!("{messages}?before=%00"), &alice.access)
        .await;
    refused_naming(&r, "before");
    let r = app.get("/api/uploads/a%00b/", &alice.access).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);

    // Nothing with a NUL was stored, and the server still answers normally.
    let r = app.get(&messages, &alice.access).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(!r.text.contains("\\u0000"), "{}", r.text);
}

async fn names_must_be_one_visible_line(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let alice = app.user("alice@example.com").await;
    for bad in [
        "two\nlines",
        "carriage\rreturn",
        "\u{202E}txt.exe",
        "isolate\u{2066}d",
        "\u{200B}\u{200B}",
        "\u{3164}",
    ] {
        let r = app
            .post("/api/orgs/", Some(&alice.access), json!({"name": bad}))
            .await;
        refused_naming(&r, "name");
        let r = app
            .patch("/auth/me/", &alice.access, json!({"last_name": bad}))
            .await;
        refused_naming(&r, "last_name");
    }
    // Names are stored normalised (NFC): a decomposed "ë" becomes one character.
    let r = app
        .post(
            "/api/orgs/",
            Some(&alice.access),
            json!({"name": "Zoe\u{0308} & Co"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["name"], "Zo\u{eb} & Co");
    // Scripts other than Latin, and joiners inside words, are names like any other.
    let r = app
        .post(
            "/api/orgs/",
            Some(&alice.access),
            json!({"name": "日本 チーム"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

async fn emails_are_plain_dot_atom_addresses(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    for bad in [
        "a@[127.0.0.1]",
        "\"a b\"@example.com",
        "\u{ff41}@example.com",
        "a..b@example.com",
    ] {
        let r = app
            .post(
                "/auth/register/",
                None,
                json!({"email": bad, "password": "password123"}),
            )
            .await;
        refused_naming(&r, "email");
    }
    let alice = app.user("alice@example.com").await;
    let org = app.org(&alice, "Acme").await;
    let r = app
        .post(
            &format!("/api/orgs/{org}/invite/"),
            Some(&alice.access),
            json!({"email": "a@[10.0.0.1]", "role": "MEMBER"}),
        )
        .await;
    refused_naming(&r, "email");
    // Ordinary addresses, tags and subdomains included, are fine.
    app.user("first.last+tag@mail.example.co").await;
}
