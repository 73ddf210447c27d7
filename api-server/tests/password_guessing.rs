//! Guessing one account's password from many addresses: past its hour of failures the account's
//! password is not checked, whoever asks. Both engines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use testing::both_engines;

use common::{Engine, Reply, TestApp};
use reqwest::StatusCode;
use serde_json::json;

both_engines!(
    failures_from_many_addresses_use_up_the_accounts_hour,
    a_success_forgets_the_accounts_failures,
    password_changes_share_the_accounts_hour,
);

/// Signs in as `email` with `password` from the client address `from`.
async fn sign_in(app: &TestApp, from: &str, email: &str, password: &str) -> Reply {
    let r = app
        .client
        .post(format!("{}/auth/token/", app.base))
        .header("x-forwarded-for", from)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    TestApp::read(r).await
}

async fn app(engine: Engine) -> Option<TestApp> {
    TestApp::spawn_with(engine, |c| {
        c.sign_in_failures_per_hour = 3;
        c.trust_forwarded_for = true;
    })
    .await
}

async fn failures_from_many_addresses_use_up_the_accounts_hour(engine: Engine) {
    let Some(app) = app(engine).await else {
        return;
    };
    app.user("ada@example.com").await;
    app.user("bob@example.com").await;
    for n in 1..=3 {
        let from = format!("198.51.100.{n}");
        let r = sign_in(&app, &from, "ada@example.com", "wrong-guess").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    }
    // The right password from a fourth address is not checked: the account's hour is spent.
    let r = sign_in(&app, "198.51.100.4", " ADA@example.com", "password123").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert_eq!(r.code(), "rate_limited");
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((3500..=3600).contains(&wait), "retry after {wait} s");
    // Other accounts are not held up.
    let r = sign_in(&app, "198.51.100.4", "bob@example.com", "password123").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // An address with no account is counted the same way, so the refusal tells nothing.
    for n in 1..=3 {
        let from = format!("203.0.113.{n}");
        let r = sign_in(&app, &from, "nobody@example.com", "wrong-guess").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    }
    let r = sign_in(&app, "203.0.113.4", "nobody@example.com", "wrong-guess").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    let metrics = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"chatboard_rate_limited_total{limit="sign_in_failures"} 2"#),
        "{metrics}"
    );
}

async fn a_success_forgets_the_accounts_failures(engine: Engine) {
    let Some(app) = app(engine).await else {
        return;
    };
    app.user("ada@example.com").await;
    for _ in 0..2 {
        let r = sign_in(&app, "198.51.100.1", "ada@example.com", "wrong-guess").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    }
    let r = sign_in(&app, "198.51.100.2", "ada@example.com", "password123").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // A whole new budget: three more failures are answered as failures.
    for _ in 0..3 {
        let r = sign_in(&app, "198.51.100.1", "ada@example.com", "wrong-guess").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    }
    let r = sign_in(&app, "198.51.100.1", "ada@example.com", "password123").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
}

/// Someone holding a stolen access token cannot guess the current password faster by asking
/// to change it: those checks spend the same hour.
async fn password_changes_share_the_accounts_hour(engine: Engine) {
    let Some(app) = app(engine).await else {
        return;
    };
    let u = app.user("ada@example.com").await;
    let change =
        |current: &str| json!({"current_password": current, "new_password": "brand-new-1"});
    for _ in 0..2 {
        let r = app
            .post("/auth/password/", Some(&u.access), change("wrong-guess"))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    }
    let r = sign_in(&app, "198.51.100.1", "ada@example.com", "wrong-guess").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let r = app
        .post("/auth/password/", Some(&u.access), change("password123"))
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    let r = sign_in(&app, "198.51.100.2", "ada@example.com", "password123").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
}
