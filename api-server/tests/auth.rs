//! `/auth/`: registration, tokens, refresh rotation, logout, profile; on both engines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use testing::both_engines;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::{Engine, TestApp, TEST_SECRET};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both_engines!(
    register_creates_normalised_accounts,
    register_rejects_bad_input,
    malformed_and_oversized_bodies,
    login_gives_the_same_answer_for_unknown_email_and_wrong_password,
    profile_read_and_update,
    forged_and_misused_tokens_are_refused,
    refresh_rotates_and_reuse_revokes_the_family,
    logout_revokes_the_session,
    a_token_of_a_removed_account_is_refused,
    a_password_change_ends_every_other_login,
    a_sign_in_checked_against_the_old_password_does_not_outlive_a_change,
    of_two_changes_that_checked_one_password_the_later_is_refused,
    tokens_of_the_previous_key_pass_while_keys_are_rotated,
    a_login_ends_at_the_sessions_maximum_age,
    a_password_is_as_long_as_its_normal_form,
);

/// A login ends `CHATBOARD_SESSION_MAX_AGE` after its sign-in however often it is renewed: a
/// refresh token copied from a device and renewed within each token's lifetime kept its login
/// for good. Its tokens never outlive the login; past it the refresh is refused.
async fn a_login_ends_at_the_sessions_maximum_age(engine: Engine) {
    let Some(app) = TestApp::spawn_with(engine, |c| {
        c.tokens.session_max_age = std::time::Duration::from_secs(2);
    })
    .await
    else {
        return;
    };
    let signed_in = std::time::Instant::now();
    let u = app.user("mara@example.com").await;
    let claims = app
        .state
        .tokens
        .verify_refresh(&u.refresh)
        .expect("a refresh token");
    assert!(
        claims.exp <= chrono::Utc::now().timestamp() + 2,
        "{claims:?}"
    );
    // Waited out: the login is over, whatever its refresh token's own lifetime.
    tokio::time::sleep(std::time::Duration::from_secs(3).saturating_sub(signed_in.elapsed())).await;
    let r = app
        .post("/auth/token/refresh/", None, json!({"refresh": u.refresh}))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "token_not_valid"),
        "{}",
        r.text
    );
}

async fn register_creates_normalised_accounts(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let r = app
        .post("/auth/register/", None, json!({"email": "  Alice@Example.COM ", "password": "password123", "first_name": "Alice"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["email"], "alice@example.com");
    assert_eq!(r.body["first_name"], "Alice");
    assert_eq!(r.body["last_name"], "");
    assert!(r.body["avatar_url"].is_null());
    assert!(r.body["created_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert!(
        !r.text.contains("argon2") && !r.text.contains("password"),
        "no hash or password in {}",
        r.text
    );

    // Same address in another spelling: taken.
    let dup = app
        .post(
            "/auth/register/",
            None,
            json!({"email": "ALICE@example.com", "password": "password123"}),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert_eq!(dup.code(), "email_taken");

    // The normalised address logs in, whatever its spelling.
    let t = app
        .post(
            "/auth/token/",
            None,
            json!({"email": "Alice@example.com ", "password": "password123"}),
        )
        .await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.text);
    assert_eq!(t.body["token_type"], "Bearer");
    assert_eq!(t.body["expires_in"], 900);
}

async fn register_rejects_bad_input(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let cases: Vec<(Value, &str)> = vec![
        (json!({"password": "password123"}), "email"),
        (json!({"email": "a@b.co"}), "password"),
        (json!({"email": 5, "password": "password123"}), "email"),
        (json!({"email": "a@b.co", "password": ["x"]}), "password"),
        (json!({"email": null, "password": "password123"}), "email"),
        (
            json!({"email": "not-an-email", "password": "password123"}),
            "email",
        ),
        (
            json!({"email": format!("{}@b.co", "a".repeat(300)), "password": "password123"}),
            "email",
        ),
        (json!({"email": "a@b.co", "password": "short"}), "password"),
        (
            json!({"email": "a@b.co", "password": "p".repeat(129)}),
            "password",
        ),
        (
            json!({"email": "a@b.co", "password": "password123", "first_name": "x".repeat(151)}),
            "first_name",
        ),
        (
            json!({"email": "a@b.co", "password": "password123", "last_name": 12}),
            "last_name",
        ),
    ];
    for (body, field) in cases {
        let r = app.post("/auth/register/", None, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert_eq!(r.code(), "invalid", "{body}");
        assert!(r.body["detail"].is_string());
        assert!(
            r.body["errors"][field].is_array(),
            "{body} should blame {field}: {}",
            r.text
        );
    }
    // Exactly at the limits is fine; unknown fields are ignored.
    let ok = app
        .post(
            "/auth/register/",
            None,
            json!({"email": "edge@b.co", "password": "p".repeat(128), "first_name": "x".repeat(150), "is_admin": true}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text);
}

async fn malformed_and_oversized_bodies(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let r = app
        .post_raw(
            "/auth/register/",
            Some("application/json"),
            b"{\"email\": ".to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "malformed_json");
    // A body is an object: an array is not read field by field in some order, nor is any
    // other value, and the refusal does not speak of Rust's types.
    for body in [
        &br#"["a@b.co", "correct horse battery", "A", null]"#[..],
        b" [1,2]",
        b"42",
        b"\"a@b.co\"",
    ] {
        let r = app
            .post_raw("/auth/register/", Some("application/json"), body.to_vec())
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        assert_eq!(
            r.body["errors"]["non_field_errors"][0], "The body must be a JSON object.",
            "{}",
            r.text
        );
    }
    // A field given twice is named.
    let r = app
        .post_raw(
            "/auth/register/",
            Some("application/json"),
            br#"{"email": "a@b.co", "email": "c@d.co", "password": "password123"}"#.to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.body["errors"]["email"].is_array(), "{}", r.text);
    let r = app
        .post_raw("/auth/register/", Some("text/plain"), b"{}".to_vec())
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.code(), "unsupported_media_type");
    let r = app.post_raw("/auth/register/", None, b"{}".to_vec()).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Two MiB of valid JSON: refused for its size, before parsing.
    let huge =
        serde_json::to_vec(&json!({"email": "a@b.co", "password": "x".repeat(2 * 1024 * 1024)}))
            .unwrap();
    // Refused from its declared length, unread: the server answers and closes, and a client
    // still writing may see the connection go (a broken pipe, seen in CI) before the answer.
    let sent = app
        .client
        .post(format!("{}/auth/register/", app.base))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await;
    match sent {
        Ok(answer) => {
            let r = TestApp::read(answer).await;
            assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
            assert_eq!(r.code(), "body_too_large");
        }
        Err(e) => assert!(e.is_request(), "refused while sending, not {e}"),
    }
}

async fn login_gives_the_same_answer_for_unknown_email_and_wrong_password(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    app.user("bob@example.com").await;
    let wrong = app
        .post(
            "/auth/token/",
            None,
            json!({"email": "bob@example.com", "password": "nope-nope"}),
        )
        .await;
    let unknown = app
        .post(
            "/auth/token/",
            None,
            json!({"email": "nobody@example.com", "password": "nope-nope"}),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.body, unknown.body);
    let missing = app
        .post("/auth/token/", None, json!({"email": "bob@example.com"}))
        .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert!(missing.body["errors"]["password"].is_array());
}

async fn profile_read_and_update(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let u = app.user("carol@example.com").await;
    let me = app.get("/auth/me/", &u.access).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["id"], u.id);
    assert_eq!(me.body["email"], "carol@example.com");

    let r = app
        .patch(
            "/auth/me/",
            &u.access,
            json!({"first_name": " Carol ", "avatar_url": "https://img.example/c.png", "email": "evil@example.com"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["first_name"], "Carol");
    assert_eq!(r.body["avatar_url"], "https://img.example/c.png");
    assert_eq!(
        r.body["email"], "carol@example.com",
        "email is not changeable here"
    );

    // Absent fields stay; null clears the avatar.
    let r = app
        .patch("/auth/me/", &u.access, json!({"last_name": "Jones"}))
        .await;
    assert_eq!(r.body["first_name"], "Carol");
    assert_eq!(r.body["avatar_url"], "https://img.example/c.png");
    let r = app
        .patch("/auth/me/", &u.access, json!({"avatar_url": null}))
        .await;
    assert!(r.body["avatar_url"].is_null(), "{}", r.text);

    for bad in [
        json!({"avatar_url": "javascript:alert(1)"}),
        json!({"avatar_url": format!("https://x.example/{}", "a".repeat(600))}),
        json!({"first_name": "x".repeat(151)}),
        json!({"first_name": 3}),
    ] {
        let r = app.patch("/auth/me/", &u.access, bad.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
    }
    let r = app.call(Method::GET, "/auth/me/", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "not_authenticated");
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

fn sign(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

async fn forged_and_misused_tokens_are_refused(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let u = app.user("dave@example.com").await;
    let now = chrono::Utc::now().timestamp();
    let claims = |exp: i64, kind: &str| json!({"sub": u.id.to_string(), "user_id": u.id, "exp": exp, "iat": now, "jti": "x", "type": kind});

    // A correctly signed token works: the forging below is faithful.
    assert_eq!(
        app.get("/auth/me/", &sign(&claims(now + 60, "access"), TEST_SECRET))
            .await
            .status,
        StatusCode::OK
    );

    let mut tampered = u.access.clone();
    tampered.pop();
    tampered.push(if u.access.ends_with('A') { 'B' } else { 'A' });
    let (header, payload_sig) = u.access.split_once('.').unwrap();
    let (_, sig) = payload_sig.split_once('.').unwrap();
    let other_user = format!(
        "{header}.{}.{sig}",
        b64(
            &json!({"sub": "999", "user_id": 999, "exp": now + 600, "iat": now, "jti": "y", "type": "access"})
        )
    );
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims(now + 600, "access"))
    );
    let forged: Vec<(&str, String)> = vec![
        ("tampered signature", tampered),
        ("payload swapped", other_user),
        ("alg none", alg_none),
        ("expired", sign(&claims(now - 120, "access"), TEST_SECRET)),
        (
            "other key",
            sign(
                &claims(now + 600, "access"),
                b"another-secret-another-secret-0123456",
            ),
        ),
        ("refresh as access", u.refresh.clone()),
        (
            "wrong type claim",
            sign(&claims(now + 600, "refresh"), TEST_SECRET),
        ),
        ("garbage", "not.a.jwt".to_owned()),
        ("empty", String::new()),
    ];
    for (what, token) in forged {
        let r = app.get("/auth/me/", &token).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {}", r.text);
        assert_eq!(r.code(), "not_authenticated", "{what}");
    }
    let r = app
        .client
        .get(format!("{}/auth/me/", app.base))
        .header("authorization", format!("Basic {}", u.access))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // And the other way round: an access token never refreshes.
    let r = app
        .post("/auth/token/refresh/", None, json!({"refresh": u.access}))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let expired_refresh = sign(
        &json!({"sub": u.id.to_string(), "user_id": u.id, "exp": now - 120, "iat": now - 999, "jti": "z", "fam": "f", "type": "refresh"}),
        TEST_SECRET,
    );
    let r = app
        .post(
            "/auth/token/refresh/",
            None,
            json!({"refresh": expired_refresh}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // A well-signed refresh token the server never issued is refused too.
    let unknown_refresh = sign(
        &json!({"sub": u.id.to_string(), "user_id": u.id, "exp": now + 600, "iat": now, "jti": "z", "fam": "f", "type": "refresh"}),
        TEST_SECRET,
    );
    let r = app
        .post(
            "/auth/token/refresh/",
            None,
            json!({"refresh": unknown_refresh}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

async fn refresh_rotates_and_reuse_revokes_the_family(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let u = app.user("erin@example.com").await;
    let other_login = app
        .post(
            "/auth/token/",
            None,
            json!({"email": u.email, "password": "password123"}),
        )
        .await;
    let other_refresh = other_login.body["refresh"].as_str().unwrap().to_owned();

    let first = app
        .post("/auth/token/refresh/", None, json!({"refresh": u.refresh}))
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let second_refresh = first.body["refresh"].as_str().unwrap().to_owned();
    assert_ne!(second_refresh, u.refresh);
    assert_eq!(
        app.get("/auth/me/", first.body["access"].as_str().unwrap())
            .await
            .status,
        StatusCode::OK
    );

    let second = app
        .post(
            "/auth/token/refresh/",
            None,
            json!({"refresh": second_refresh}),
        )
        .await;
    assert_eq!(second.status, StatusCode::OK);
    let third_refresh = second.body["refresh"].as_str().unwrap().to_owned();

    // The first token again: reuse. The whole family dies, including the newest token.
    let reused = app
        .post("/auth/token/refresh/", None, json!({"refresh": u.refresh}))
        .await;
    assert_eq!(reused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reused.code(), "token_reused");
    let after = app
        .post(
            "/auth/token/refresh/",
            None,
            json!({"refresh": third_refresh}),
        )
        .await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED, "{}", after.text);

    // Another login of the same user is a separate family and keeps working.
    let other = app
        .post(
            "/auth/token/refresh/",
            None,
            json!({"refresh": other_refresh}),
        )
        .await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.text);
}

async fn logout_revokes_the_session(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let u = app.user("frank@example.com").await;
    let v = app.user("gina@example.com").await;

    // Someone else's refresh token cannot log them out.
    let r = app
        .post(
            "/auth/logout/",
            Some(&u.access),
            json!({"refresh": v.refresh}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .post("/auth/logout/", None, json!({"refresh": u.refresh}))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let r = app
        .post(
            "/auth/logout/",
            Some(&u.access),
            json!({"refresh": u.refresh}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = app
        .post("/auth/token/refresh/", None, json!({"refresh": u.refresh}))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Logging out again changes nothing and is not an error.
    let r = app
        .post(
            "/auth/logout/",
            Some(&u.access),
            json!({"refresh": u.refresh}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // Gina's session is untouched.
    assert_eq!(
        app.post("/auth/token/refresh/", None, json!({"refresh": v.refresh}))
            .await
            .status,
        StatusCode::OK
    );
}

/// An account removed from the database (by hand, or lost in a restore) takes its tokens with
/// it: a still-valid access token answers 401 on reads and writes alike. It once answered 500
/// on writes (a foreign-key error) and `200 []` on some reads.
async fn a_token_of_a_removed_account_is_refused(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let gone = app.user("gone@example.com").await;
    let stays = app.user("stays@example.com").await;
    testing::execute_sql(
        &app.db_url,
        &format!("DELETE FROM users WHERE id = {}", gone.id),
    )
    .await;
    let writes = [
        app.post(
            "/api/orgs/",
            Some(&gone.access),
            json!({"name": "Ghost Corp"}),
        )
        .await,
        app.patch("/auth/me/", &gone.access, json!({"first_name": "Ghost"}))
            .await,
    ];
    let reads = [
        app.get("/api/orgs/", &gone.access).await,
        app.get("/auth/me/unread-counts/", &gone.access).await,
        app.get("/auth/me/", &gone.access).await,
    ];
    for r in writes.iter().chain(&reads) {
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
        assert!(r.text.contains("no longer exists"), "{}", r.text);
    }
    // Other accounts are untouched.
    let r = app.get("/api/orgs/", &stays.access).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

/// Password hashing runs a bounded number at a time: a sign-up or sign-in that cannot get a
/// turn within the wait is answered 503 `server_busy` with `Retry-After`, and goes through once
/// a turn is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_past_the_hashing_slots_wait_then_get_503() {
    let Some(app) = TestApp::spawn_with(Engine::Sqlite, |c| {
        c.passwords.password_hash_concurrency = 1;
        c.passwords.password_hash_wait = std::time::Duration::from_millis(100);
    })
    .await
    else {
        return;
    };
    let ada = json!({"email": "ada@example.com", "password": "password123"});
    assert_eq!(
        app.post("/auth/register/", None, ada.clone()).await.status,
        StatusCode::CREATED
    );

    // The only slot is taken (as by a long hash) until the test lets it go.
    let (release, holder) = hold_the_hashing_slot(&app).await;
    for (path, body) in [
        (
            "/auth/register/",
            json!({"email": "bob@example.com", "password": "password123"}),
        ),
        ("/auth/token/", ada.clone()),
    ] {
        let busy = app.post(path, None, body).await;
        assert_eq!(
            busy.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{path}: {}",
            busy.text
        );
        assert_eq!(busy.code(), "server_busy");
        assert_eq!(busy.headers["retry-after"], "1");
    }
    release.send(()).unwrap();
    holder.await.unwrap().unwrap();
    let token = app.post("/auth/token/", None, ada).await;
    assert_eq!(token.status, StatusCode::OK, "{}", token.text);
}

/// Takes a password-hashing slot, as a long hash would, until something is sent on (or the
/// test drops) the returned sender; the returned task ends then.
async fn hold_the_hashing_slot(
    app: &TestApp,
) -> (
    std::sync::mpsc::Sender<()>,
    tokio::task::JoinHandle<Result<(), chatboard_core::auth::HashingError>>,
) {
    let (release, held) = std::sync::mpsc::channel::<()>();
    let (taken_tx, taken) = tokio::sync::oneshot::channel();
    let holder = tokio::spawn({
        let passwords = app.state.passwords.clone();
        async move {
            passwords
                .run(move || {
                    let _ = taken_tx.send(());
                    let _ = held.recv();
                })
                .await
        }
    });
    taken.await.unwrap();
    (release, holder)
}

/// Until a request waits for the hashing slot the test holds (`who`, for the failure).
async fn until_one_waits_for_the_slot(app: &TestApp, who: &str) {
    let waiting_since = std::time::Instant::now();
    while app.state.passwords.waiting() == 0 {
        assert!(
            waiting_since.elapsed() < std::time::Duration::from_secs(20),
            "{who} never waited for the slot"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// `POST /auth/password/` takes the current password and a new one: the old password stops
/// working, every login's refresh token is revoked (this browser's and another's), and the
/// answer is a new pair that works.
async fn a_password_change_ends_every_other_login(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let u = app.user("hana@example.com").await;
    // A second login, elsewhere.
    let other = app
        .post(
            "/auth/token/",
            None,
            json!({"email": "hana@example.com", "password": "password123"}),
        )
        .await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.text);

    let change = |current: &str, new: &str| {
        app.post(
            "/auth/password/",
            Some(&u.access),
            json!({"current_password": current, "new_password": new}),
        )
    };
    let wrong = change("not-my-password", "a new secret").await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{}", wrong.text);
    assert!(
        wrong.body["errors"]["current_password"].is_array(),
        "{}",
        wrong.text
    );
    let short = change("password123", "short").await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST);
    assert!(
        short.body["errors"]["new_password"].is_array(),
        "{}",
        short.text
    );
    let none = app
        .post(
            "/auth/password/",
            None,
            json!({"current_password": "password123", "new_password": "a new secret"}),
        )
        .await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);

    let changed = change("password123", "a new secret").await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    for refresh in [&u.refresh, other.body["refresh"].as_str().unwrap()] {
        let r = app
            .post("/auth/token/refresh/", None, json!({"refresh": refresh}))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "a login survived: {}",
            r.text
        );
    }
    let fresh = app
        .post(
            "/auth/token/refresh/",
            None,
            json!({"refresh": changed.body["refresh"]}),
        )
        .await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.text);
    let me = app
        .get("/auth/me/", changed.body["access"].as_str().unwrap())
        .await;
    assert_eq!(me.body["email"], "hana@example.com");

    let old = app
        .post(
            "/auth/token/",
            None,
            json!({"email": "hana@example.com", "password": "password123"}),
        )
        .await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    let new = app
        .post(
            "/auth/token/",
            None,
            json!({"email": "hana@example.com", "password": "a new secret"}),
        )
        .await;
    assert_eq!(new.status, StatusCode::OK, "{}", new.text);
}

/// A sign-in that checked the old password while the password was being changed gets no
/// login: the change ended every login it found, and one recorded after it would have lived on
/// (refreshed for good) with the old password. Here the sign-in reads the old hash, waits for
/// the hashing slot the test holds, and the password changes meanwhile.
async fn a_sign_in_checked_against_the_old_password_does_not_outlive_a_change(engine: Engine) {
    let Some(app) = TestApp::spawn_with(engine, |c| {
        c.passwords.password_hash_concurrency = 1;
        c.passwords.password_hash_wait = std::time::Duration::from_secs(30);
    })
    .await
    else {
        return;
    };
    let u = app.user("ines@example.com").await;
    let (release, holder) = hold_the_hashing_slot(&app).await;
    let sign_in = tokio::spawn({
        let base = app.base.clone();
        async move {
            reqwest::Client::new()
                .post(format!("{base}/auth/token/"))
                .json(&json!({"email": "ines@example.com", "password": "password123"}))
                .send()
                .await
                .unwrap()
        }
    });
    // The sign-in has read the old hash once it waits for the slot.
    until_one_waits_for_the_slot(&app, "the sign-in").await;
    let new_hash = chatboard_core::auth::hash_password("another password").unwrap();
    let (_, old_hash) = app
        .state
        .store
        .credentials_by_email("ines@example.com")
        .await
        .unwrap()
        .unwrap();
    let changed = app
        .state
        .store
        .change_password(u.id, &old_hash, &new_hash, chrono::Utc::now())
        .await
        .unwrap();
    assert!(changed);
    release.send(()).unwrap();
    holder.await.unwrap().unwrap();
    let r = TestApp::read(sign_in.await.unwrap()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    // Word for word a wrong password's answer: another would say the guess had been right.
    let wrong = app
        .post(
            "/auth/token/",
            None,
            json!({"email": "ines@example.com", "password": "not the password"}),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body, wrong.body);
    // The new password signs in.
    let r = app
        .post(
            "/auth/token/",
            None,
            json!({"email": "ines@example.com", "password": "another password"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

/// Two password changes that both checked the same current password: the one that writes
/// second is refused (that password is no longer in use), and the first one's password stays.
/// The second used to write its own over the first's, so whoever changed it first (say, the
/// owner locking out someone who knew the old password) lost the account to the other. Here
/// the HTTP change reads the old hash and waits for the hashing slot the test holds while the
/// other change lands.
async fn of_two_changes_that_checked_one_password_the_later_is_refused(engine: Engine) {
    let Some(app) = TestApp::spawn_with(engine, |c| {
        c.passwords.password_hash_concurrency = 1;
        c.passwords.password_hash_wait = std::time::Duration::from_secs(30);
    })
    .await
    else {
        return;
    };
    let u = app.user("jo@example.com").await;
    let (_, checked) = app
        .state
        .store
        .credentials_by_email("jo@example.com")
        .await
        .unwrap()
        .unwrap();
    let (release, holder) = hold_the_hashing_slot(&app).await;
    let later = tokio::spawn({
        let base = app.base.clone();
        let access = u.access.clone();
        async move {
            reqwest::Client::new()
                .post(format!("{base}/auth/password/"))
                .bearer_auth(access)
                .json(&json!({"current_password": "password123", "new_password": "the later one"}))
                .send()
                .await
                .unwrap()
        }
    });
    until_one_waits_for_the_slot(&app, "the change").await;
    // The first change, checked against the same password, lands meanwhile.
    let first = chatboard_core::auth::hash_password("the first one").unwrap();
    let changed = app
        .state
        .store
        .change_password(u.id, &checked, &first, chrono::Utc::now())
        .await
        .unwrap();
    assert!(changed);
    release.send(()).unwrap();
    holder.await.unwrap().unwrap();
    let r = TestApp::read(later.await.unwrap()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(
        r.body["errors"]["current_password"].is_array(),
        "{}",
        r.text
    );
    for (password, works) in [("the first one", true), ("the later one", false)] {
        let r = app
            .post(
                "/auth/token/",
                None,
                json!({"email": "jo@example.com", "password": password}),
            )
            .await;
        let expected = if works {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_eq!(r.status, expected, "{password}: {}", r.text);
    }
}

/// With the signing key changed and the old one kept as the previous key, tokens the old key
/// signed still work (a session refreshes onto the new key); a key never used does not.
async fn tokens_of_the_previous_key_pass_while_keys_are_rotated(engine: Engine) {
    const NEW_KEY: &[u8] = b"the-new-signing-key-of-at-least-32-bytes";
    let Some(app) = TestApp::spawn_with(engine, |c| {
        c.jwt_secret = chatboard_core::config::JwtSecret::new(NEW_KEY.to_vec()).unwrap();
        c.jwt_secret_previous =
            Some(chatboard_core::config::JwtSecret::new(TEST_SECRET.to_vec()).unwrap());
    })
    .await
    else {
        return;
    };
    let u = app.user("rota@example.com").await;
    let now = chrono::Utc::now().timestamp();
    let access = |key: &[u8]| {
        sign(
            &json!({"sub": u.id.to_string(), "user_id": u.id, "exp": now + 60, "iat": now, "jti": "x", "type": "access"}),
            key,
        )
    };
    assert_eq!(
        app.get("/auth/me/", &access(NEW_KEY)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/auth/me/", &access(TEST_SECRET)).await.status,
        StatusCode::OK
    );
    let stranger = b"a-key-this-deployment-never-had-0123456";
    assert_eq!(
        app.get("/auth/me/", &access(stranger)).await.status,
        StatusCode::UNAUTHORIZED
    );
    // This login's refresh token as the old key would have signed it: it refreshes.
    let payload = u.refresh.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let r = app
        .post(
            "/auth/token/refresh/",
            None,
            json!({"refresh": sign(&claims, TEST_SECRET)}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let renewed = r.body["access"].as_str().unwrap();
    let signed_with = |key: &[u8]| {
        jsonwebtoken::decode::<Value>(
            renewed,
            &jsonwebtoken::DecodingKey::from_secret(key),
            &jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256),
        )
        .is_ok()
    };
    assert!(
        signed_with(NEW_KEY),
        "new tokens are signed with the new key"
    );
    assert!(!signed_with(TEST_SECRET));
}

/// Passwords are compared in normalization form C, so their length limits count that form: a
/// password of 100 accented letters set composed signs in when typed decomposed (200
/// characters as sent), and four letters with combining accents are four characters, too few.
async fn a_password_is_as_long_as_its_normal_form(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let composed = "\u{e9}".repeat(100);
    let decomposed = "e\u{301}".repeat(100);
    let r = app
        .post(
            "/auth/register/",
            None,
            json!({"email": "eloise@example.com", "password": composed, "first_name": "Eloise"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = app
        .post(
            "/auth/token/",
            None,
            json!({"email": "eloise@example.com", "password": decomposed}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .post(
            "/auth/register/",
            None,
            json!({"email": "short@example.com", "password": "e\u{301}".repeat(4), "first_name": "S"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.body["errors"]["password"].is_array(), "{}", r.text);
}
