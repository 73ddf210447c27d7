//! Email from the API's side: the digest opt-out on `PATCH /auth/me/` and by a digest's
//! unsubscribe link, and the invitation email queued with the invitation (sending is the
//! worker's; see worker/tests/email.rs).
//! Both engines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use testing::both_engines;

use chatboard_store::EmailKind;
use common::{Engine, TestApp};
use reqwest::StatusCode;
use serde_json::json;

both_engines!(
    digest_emails_can_be_switched_off,
    a_digests_unsubscribe_link_turns_digests_off,
    invitations_queue_an_email_carrying_the_token,
    switching_digests_off_is_all_or_nothing,
);

async fn digest_emails_can_be_switched_off(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let ada = app.user("ada@example.com").await;
    let me = app.get("/auth/me/", &ada.access).await;
    assert_eq!(me.body["email_notifications"], true);
    let off = app
        .patch(
            "/auth/me/",
            &ada.access,
            json!({"email_notifications": false}),
        )
        .await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.text);
    assert_eq!(off.body["email_notifications"], false);
    // Other fields leave it alone.
    let renamed = app
        .patch("/auth/me/", &ada.access, json!({"first_name": "Ada"}))
        .await;
    assert_eq!(renamed.body["email_notifications"], false);
    assert_eq!(
        app.get("/auth/me/", &ada.access).await.body["email_notifications"],
        false
    );
    let bad = app
        .patch(
            "/auth/me/",
            &ada.access,
            json!({"email_notifications": "nope"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
}

/// The link in a digest (see worker/tests/email.rs for the email itself) shows a page when
/// opened, and turns the recipient's digests off, and only theirs, when posted to: by its
/// page's button (an empty form) or by a mail client's one-click unsubscribe (RFC 8058).
async fn a_digests_unsubscribe_link_turns_digests_off(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let ada = app.user("ada@example.com").await;
    let bob = app.user("bob@example.com").await;
    let token_of = |id| {
        let store = app.state.store.clone();
        async move {
            let (recipient, _) = store.digest_of(id, 1).await.unwrap().unwrap();
            recipient.unsubscribe_token.unwrap()
        }
    };
    let (ada_token, bob_token) = (token_of(ada.id).await, token_of(bob.id).await);
    assert_ne!(ada_token, bob_token);
    assert_eq!(token_of(ada.id).await, ada_token, "one token per user");
    let link = format!("/api/email/unsubscribe/?token={ada_token}");
    let notifications = |user: &common::TestUser| {
        let token = user.access.clone();
        let app = &app;
        async move { app.get("/auth/me/", &token).await.body["email_notifications"].clone() }
    };

    // Opening the link (as a mail scanner does) changes nothing.
    let page = app.call(reqwest::Method::GET, &link, None, None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(
        page.text.contains("<form method=\"post\">"),
        "{}",
        page.text
    );
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert_eq!(notifications(&ada).await, true);

    // A mail client's one-click unsubscribe.
    let form = Some("application/x-www-form-urlencoded");
    let one_click = b"List-Unsubscribe=One-Click".to_vec();
    let done = app.post_raw(&link, form, one_click.clone()).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert!(
        done.text.contains("Email notifications are off"),
        "{}",
        done.text
    );
    assert_eq!(notifications(&ada).await, false);
    assert_eq!(notifications(&bob).await, true, "only the link's owner");
    // Used again (the page's button after the client's button): the same answer.
    let again = app.post_raw(&link, form, Vec::new()).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);

    // Links no account has: a page that says so, whatever their shape.
    let unknown = "A".repeat(43);
    for query in [
        format!("token={unknown}"),
        "token=short".into(),
        // Twice: still a page, not a bare 400 of the query parser.
        "token=short&token=again".into(),
        String::new(),
    ] {
        let path = format!("/api/email/unsubscribe/?{query}");
        let refused = app.post_raw(&path, form, one_click.clone()).await;
        assert_eq!(
            refused.status,
            StatusCode::NOT_FOUND,
            "{query}: {}",
            refused.text
        );
        assert!(refused.text.contains("not valid"), "{}", refused.text);
        // Opened, a link of the wrong shape says so at once; one of the right shape is not
        // looked up before its button is pressed.
        let page = app.call(reqwest::Method::GET, &path, None, None).await;
        let shaped = query.len() == "token=".len() + 43;
        let expected = if shaped {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        };
        assert_eq!(page.status, expected, "{query}: {}", page.text);
    }
    assert_eq!(notifications(&bob).await, true);
}

async fn invitations_queue_an_email_carrying_the_token(engine: Engine) {
    let Some(app) = TestApp::spawn_with(engine, |c| {
        c.email.public_url = Some("https://chat.example.com".into());
    })
    .await
    else {
        return;
    };
    let ada = app.user("ada@example.com").await;
    app.patch(
        "/auth/me/",
        &ada.access,
        json!({"first_name": "Ada", "last_name": "Lovelace"}),
    )
    .await;
    let org = app.org(&ada, "Analytical Engines").await;
    let r = app
        .post(
            &format!("/api/orgs/{org}/invite/"),
            Some(&ada.access),
            json!({"email": "Bob@Example.com", "role": "MANAGER"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let token = r.body["token"].as_str().unwrap();
    let now = chrono::Utc::now();
    let queued = app
        .state
        .store
        .claim_due_emails(now, now + chrono::Duration::seconds(60), 10)
        .await
        .unwrap();
    assert_eq!(queued.len(), 1, "{queued:?}");
    let email = &queued[0].email;
    assert_eq!(email.kind, EmailKind::Invitation);
    assert_eq!(email.to, "bob@example.com");
    assert_eq!(
        email.subject,
        "Ada Lovelace invited you to Analytical Engines on ChatBoard"
    );
    for text in [
        token,
        "Ada Lovelace (ada@example.com)",
        "as MANAGER",
        "https://chat.example.com/api/orgs/accept-invite/",
        "expires on",
    ] {
        assert!(
            email.body.contains(text),
            "{text:?} missing from {}",
            email.body
        );
    }
    // The web client's accept page, with the token.
    let link = format!("https://chat.example.com/#/invite/{token}");
    assert!(
        email.body.contains(&link),
        "{link} missing from {}",
        email.body
    );
    // A refused invitation queues nothing.
    let again = app
        .post(
            &format!("/api/orgs/{org}/invite/"),
            Some(&ada.access),
            json!({"email": "bob@example.com"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(app.state.store.email_backlog().await.unwrap(), 1);
}

/// Switching digests off also drops what was gathered for the next one and stops a digest
/// waiting to be sent; when that part fails, the setting is not changed either. It used to be
/// saved on its own, so a request answered 500 had switched emails off anyway (with a digest
/// still on its way).
async fn switching_digests_off_is_all_or_nothing(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let ada = app.user("ada@example.com").await;
    // The email queue is out of reach (renamed away) while the setting changes.
    testing::db::execute_sql(&app.db_url, "ALTER TABLE emails RENAME TO emails_away").await;
    let off = app
        .patch(
            "/auth/me/",
            &ada.access,
            json!({"email_notifications": false}),
        )
        .await;
    testing::db::execute_sql(&app.db_url, "ALTER TABLE emails_away RENAME TO emails").await;
    assert!(off.status.is_server_error(), "{} {}", off.status, off.text);
    let me = app.get("/auth/me/", &ada.access).await;
    assert_eq!(
        me.body["email_notifications"], true,
        "changed by a failed request"
    );
}
