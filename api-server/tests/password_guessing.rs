//! Guessing one account's password: past an address's hour of failures on the account, that
//! address is not checked; past the account's hour from all addresses (five times as many),
//! only addresses that signed in to it are. Password changes count on an hour of their own.
//! Both engines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use testing::both_engines;

use common::{Engine, Reply, TestApp};
use reqwest::StatusCode;
use serde_json::json;

both_engines!(
    failures_from_one_address_keep_out_that_address_only,
    failures_from_many_addresses_keep_out_addresses_the_account_does_not_know,
    a_success_forgets_its_own_addresss_failures_only,
    password_changes_have_an_hour_of_their_own,
    a_login_failing_changes_cannot_keep_the_owner_from_changing_the_password,
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

/// The account's budget per address in these tests, and from all addresses together.
const PER_ADDRESS: usize = 3;
const PER_ACCOUNT: usize = 5 * PER_ADDRESS;

/// Wrong passwords for `email`, one from each of `count` addresses starting at `203.0.113.<first>`.
async fn guesses_from_many(app: &TestApp, email: &str, first: usize, count: usize) {
    for n in first..first + count {
        let r = sign_in(app, &format!("203.0.113.{n}"), email, "wrong-guess").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    }
}

/// Someone failing to sign in as another, from their own address, keeps only themselves out.
async fn failures_from_one_address_keep_out_that_address_only(engine: Engine) {
    let Some(app) = app(engine).await else {
        return;
    };
    app.user("ada@example.com").await;
    for _ in 0..PER_ADDRESS {
        let r = sign_in(&app, "198.51.100.1", "ada@example.com", "wrong-guess").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    }
    // That address is not checked again for the hour, even with the right password.
    let r = sign_in(&app, "198.51.100.1", " ADA@example.com", "password123").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert_eq!(r.code(), "rate_limited");
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((3500..=3600).contains(&wait), "retry after {wait} s");
    // The owner, elsewhere, signs in.
    let r = sign_in(&app, "198.51.100.2", "ada@example.com", "password123").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // An address with no account is counted the same way, so the refusal tells nothing.
    for _ in 0..PER_ADDRESS {
        let r = sign_in(&app, "198.51.100.1", "nobody@example.com", "wrong-guess").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    }
    let r = sign_in(&app, "198.51.100.1", "nobody@example.com", "wrong-guess").await;
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

/// Guesses spread over many addresses use up the account's hour: then only the addresses the
/// account has signed in from are still checked.
async fn failures_from_many_addresses_keep_out_addresses_the_account_does_not_know(engine: Engine) {
    let Some(app) = app(engine).await else {
        return;
    };
    app.user("ada@example.com").await;
    app.user("bob@example.com").await;
    let r = sign_in(&app, "198.51.100.7", "ada@example.com", "password123").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    guesses_from_many(&app, "ada@example.com", 1, PER_ACCOUNT).await;
    let r = sign_in(&app, "203.0.113.200", "ada@example.com", "password123").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((3500..=3600).contains(&wait), "retry after {wait} s");
    // The owner's usual address is still checked; other accounts are not held up.
    let r = sign_in(&app, "198.51.100.7", "ada@example.com", "password123").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = sign_in(&app, "203.0.113.200", "bob@example.com", "password123").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

/// A success forgets the failures of its own address, not the account's hour: addresses the
/// account does not know stay out until it is over. Forgetting it told whoever had spent it
/// that the account exists, and when its owner signed in (their next guess was answered), and
/// gave them a budget of guesses anew.
async fn a_success_forgets_its_own_addresss_failures_only(engine: Engine) {
    let Some(app) = app(engine).await else {
        return;
    };
    app.user("ada@example.com").await;
    let r = sign_in(&app, "198.51.100.7", "ada@example.com", "password123").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for _ in 0..PER_ADDRESS - 1 {
        let r = sign_in(&app, "198.51.100.7", "ada@example.com", "wrong-guess").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    }
    guesses_from_many(&app, "ada@example.com", 1, PER_ACCOUNT - PER_ADDRESS + 1).await;
    let r = sign_in(&app, "203.0.113.200", "ada@example.com", "wrong-guess").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    // The owner signs in from their address; its own failures are forgotten...
    let r = sign_in(&app, "198.51.100.7", "ada@example.com", "password123").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for _ in 0..PER_ADDRESS {
        let r = sign_in(&app, "198.51.100.7", "ada@example.com", "wrong-guess").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    }
    // ...and the others' hour stands.
    let r = sign_in(&app, "203.0.113.200", "ada@example.com", "wrong-guess").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
}

/// Changes the password of the login `access` from the client address `from`.
async fn change_from(app: &TestApp, from: &str, access: &str, current: &str, new: &str) -> Reply {
    let r = app
        .client
        .post(format!("{}/auth/password/", app.base))
        .header("x-forwarded-for", from)
        .bearer_auth(access)
        .json(&json!({"current_password": current, "new_password": new}))
        .send()
        .await
        .unwrap();
    TestApp::read(r).await
}

/// Someone holding a login of the account (a session left open on a shared computer) spends
/// the account's hour of wrong current passwords from several addresses. The owner, from an
/// address they sign in from, can still change the password: the one way to end that login.
/// The addresses known to password changes were only those that had changed it.
async fn a_login_failing_changes_cannot_keep_the_owner_from_changing_the_password(engine: Engine) {
    let Some(app) = app(engine).await else {
        return;
    };
    let left_open = app.user("ada@example.com").await.access;
    let r = sign_in(&app, "198.51.100.7", "ada@example.com", "password123").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let owner = r.body["access"].as_str().unwrap().to_owned();
    for n in 1..=PER_ACCOUNT / PER_ADDRESS {
        for _ in 0..PER_ADDRESS {
            let from = format!("203.0.113.{n}");
            let r = change_from(&app, &from, &left_open, "wrong-guess", "taken-over-1").await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        }
    }
    let r = change_from(
        &app,
        "203.0.113.99",
        &left_open,
        "password123",
        "taken-over-1",
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    let r = change_from(&app, "198.51.100.7", &owner, "password123", "brand-new-1").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

/// Failed sign-ins, which anyone can send, never keep the owner from changing the password;
/// someone holding a stolen access token gets an hour's budget of guesses through changes.
async fn password_changes_have_an_hour_of_their_own(engine: Engine) {
    let Some(app) = app(engine).await else {
        return;
    };
    let u = app.user("ada@example.com").await;
    guesses_from_many(&app, "ada@example.com", 1, PER_ACCOUNT).await;
    for _ in 0..PER_ADDRESS {
        let r = sign_in(&app, "127.0.0.1", "ada@example.com", "wrong-guess").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    }
    let change =
        |current: &str, new: &str| json!({"current_password": current, "new_password": new});
    let r = app
        .post(
            "/auth/password/",
            Some(&u.access),
            change("password123", "brand-new-1"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let access = r.body["access"].as_str().unwrap().to_owned();
    for _ in 0..PER_ADDRESS {
        let r = app
            .post(
                "/auth/password/",
                Some(&access),
                change("wrong-guess", "brand-new-2"),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    }
    let r = app
        .post(
            "/auth/password/",
            Some(&access),
            change("brand-new-1", "brand-new-2"),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
}
