//! Cross-cutting behaviour: request ids, trailing slashes, rate limits, health, metrics, the
//! OpenAPI schema and docs page, unknown routes, a database outage. Both engines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use testing::both_engines;

use common::{Engine, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;

both_engines!(
    every_response_carries_a_request_id,
    paths_answer_with_and_without_trailing_slash,
    per_user_rate_limit_with_headers,
    a_removed_accounts_token_is_rate_limited_too,
    per_address_rate_limit_on_account_endpoints,
    a_password_change_counts_against_the_address_only,
    health_and_metrics,
    schema_and_docs_page,
    unknown_routes_and_methods_use_the_error_shape,
    database_outage_is_503_without_internals,
    refresh_has_a_budget_apart_from_sign_ins,
    ipv6_clients_are_counted_per_prefix,
    a_database_outage_fails_fast,
);

async fn every_response_carries_a_request_id(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let r = app
        .client
        .get(format!("{}/health/live", app.base))
        .send()
        .await
        .unwrap();
    let generated = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
    let r = app
        .client
        .get(format!("{}/health/live", app.base))
        .header("x-request-id", "trace-abc_123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-abc_123");
    // An id that could smuggle content into logs is replaced.
    let r = app
        .client
        .get(format!("{}/nope", app.base))
        .header("x-request-id", "a b\"c")
        .send()
        .await
        .unwrap();
    assert_ne!(r.headers()["x-request-id"], "a b\"c");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app
        .client
        .get(format!("{}/health/live", app.base))
        .header("x-request-id", "x".repeat(200))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"].len(), 36);
}

async fn paths_answer_with_and_without_trailing_slash(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let u = app.user("alice@example.com").await;
    for path in [
        "/auth/me/",
        "/auth/me",
        "/api/orgs/",
        "/api/orgs",
        "/health/live",
        "/health/live/",
    ] {
        let r = app.get(path, &u.access).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
    }
    let r = app
        .post("/api/orgs", Some(&u.access), json!({"name": "NoSlash"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.body["id"].as_i64().unwrap();
    assert_eq!(
        app.get(&format!("/api/orgs/{id}"), &u.access).await.status,
        StatusCode::OK
    );
    // Query strings survive the normalisation.
    assert_eq!(
        app.get("/api/orgs/?x=1", &u.access).await.status,
        StatusCode::OK
    );
}

async fn per_user_rate_limit_with_headers(engine: Engine) {
    let Some(app) = TestApp::spawn_with(engine, |c| c.rate_limit_per_user = 3).await else {
        return;
    };
    let u = app.user("alice@example.com").await;
    let v = app.user("bob@example.com").await;
    for remaining in ["2", "1", "0"] {
        let r = app.get("/auth/me/", &u.access).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers["x-ratelimit-limit"], "3");
        assert_eq!(r.headers["x-ratelimit-remaining"], remaining);
    }
    let r = app.get("/api/orgs/", &u.access).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.code(), "rate_limited");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "retry after {retry}s");
    assert_eq!(r.headers["x-ratelimit-remaining"], "0");
    // Another user has a budget of their own.
    assert_eq!(app.get("/auth/me/", &v.access).await.status, StatusCode::OK);
    // Logging out and changing the password are not counted: someone spending the budget
    // with a stolen token must not keep the owner from ending that login.
    let changed = app
        .post(
            "/auth/password/",
            Some(&u.access),
            serde_json::json!({"current_password": "password123", "new_password": "another long password"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    let out = app
        .post(
            "/auth/logout/",
            Some(&u.access),
            serde_json::json!({"refresh": changed.body["refresh"]}),
        )
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.text);
    let metrics = testing::process::scrape(&app.base).await;
    assert!(
        metrics.contains("chatboard_rate_limited_total{limit=\"user\"} 1"),
        "{metrics}"
    );
}

/// A removed account's token, still valid for its last minutes, costs a lookup per request:
/// it counts against the user's limit like any other (it used to pass uncounted, answered
/// 401 each time).
async fn a_removed_accounts_token_is_rate_limited_too(engine: Engine) {
    let Some(app) = TestApp::spawn_with(engine, |c| c.rate_limit_per_user = 2).await else {
        return;
    };
    let gone = app.user("gone@example.com").await;
    testing::execute_sql(
        &app.db_url,
        &format!("DELETE FROM users WHERE id = {}", gone.id),
    )
    .await;
    for _ in 0..2 {
        let r = app.get("/auth/me/", &gone.access).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    }
    let r = app.get("/auth/me/", &gone.access).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
}

/// A password change counts against the address's limit, which its headers show, and not the
/// user's: someone spending that with a stolen token must not keep the owner from changing the
/// password (which ends the thief's login).
async fn a_password_change_counts_against_the_address_only(engine: Engine) {
    let Some(app) = TestApp::spawn_with(engine, |c| {
        c.rate_limit_per_ip = 1000;
        c.rate_limit_per_user = 2;
    })
    .await
    else {
        return;
    };
    let u = app.user("carla@example.com").await;
    // The user's own budget spent.
    for _ in 0..3 {
        app.get("/auth/me/", &u.access).await;
    }
    let change = json!({"current_password": "not the password", "new_password": "whatever123"});
    for _ in 0..2 {
        let r = app
            .post("/auth/password/", Some(&u.access), change.clone())
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        assert_eq!(r.headers["x-ratelimit-limit"], "1000");
    }
}

async fn per_address_rate_limit_on_account_endpoints(engine: Engine) {
    let Some(app) = TestApp::spawn_with(engine, |c| c.rate_limit_per_ip = 2).await else {
        return;
    };
    let body = |n: u32| json!({"email": format!("u{n}@example.com"), "password": "password123"});
    let first = app.post("/auth/register/", None, body(1)).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(first.headers["x-ratelimit-limit"], "2");
    assert_eq!(first.headers["x-ratelimit-remaining"], "1");
    // Failed attempts count too (that is the point against guessing).
    let r = app
        .post(
            "/auth/token/",
            None,
            json!({"email": "u1@example.com", "password": "wrong-wrong"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app
        .post(
            "/auth/token/",
            None,
            json!({"email": "u1@example.com", "password": "password123"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers.contains_key("retry-after"));
    assert_eq!(
        app.post("/auth/register/", None, body(2)).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Other endpoints are not behind the per-address limit.
    assert_eq!(
        app.client
            .get(format!("{}/health/ready", app.base))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

async fn health_and_metrics(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let live = app.call(Method::GET, "/health/live", None, None).await;
    assert_eq!(live.body, json!({"status": "ok"}));
    let ready = app.call(Method::GET, "/health/ready", None, None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(
        ready.body,
        json!({"status": "ok", "checks": {"database": "ok"}})
    );

    let u = app.user("alice@example.com").await;
    app.get("/auth/me/", &u.access).await;
    app.get("/api/orgs/12345/", &u.access).await;
    // Any token is a method: each made a series of its own, kept for good.
    for made_up in ["ZZ1", "ZZ2"] {
        let method = Method::from_bytes(made_up.as_bytes()).unwrap();
        app.call(method, "/auth/me/", None, None).await;
    }
    let r = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = r.text().await.unwrap();
    assert!(
        text.contains(
            r#"chatboard_http_requests_total{method="GET",route="/auth/me",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"chatboard_http_requests_total{method="GET",route="/api/orgs/{id}",status="404"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"chatboard_http_request_duration_seconds_bucket{method="POST",route="/auth/register",status="201",le="#));
    assert!(!text.contains("ZZ1") && !text.contains("ZZ2"), "{text}");
    assert!(
        text.contains(r#"chatboard_http_requests_total{method="other","#),
        "{text}"
    );
    assert!(text.contains("chatboard_http_requests_in_flight"));
}

async fn schema_and_docs_page(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    for path in ["/api/schema/", "/api/schema"] {
        let r = app.call(Method::GET, path, None, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert!(r.body["openapi"].as_str().unwrap().starts_with("3."));
        let paths = r.body["paths"].as_object().unwrap();
        for p in [
            "/auth/register/",
            "/auth/token/",
            "/auth/token/refresh/",
            "/auth/logout/",
            "/auth/me/",
            "/api/orgs/",
            "/api/orgs/{id}/",
            "/api/orgs/{id}/members/",
            "/api/orgs/{id}/invite/",
            "/api/orgs/{id}/invitations/",
            "/api/orgs/{id}/invitations/{invite_id}/",
            "/api/orgs/accept-invite/",
            "/api/orgs/{id}/members/{user_id}/role/",
            "/api/orgs/{id}/members/{user_id}/",
            "/auth/me/unread-counts/",
            "/api/rooms/",
            "/api/rooms/dm/",
            "/api/rooms/{id}/",
            "/api/rooms/{id}/join/",
            "/api/rooms/{id}/leave/",
            "/api/rooms/{id}/invite/",
            "/api/rooms/{id}/members/",
            "/api/rooms/{id}/read/{msg_id}/",
            "/api/rooms/{id}/messages/",
            "/api/rooms/{id}/messages/{msg_id}/",
            "/api/webhooks/",
            "/api/webhooks/{id}/",
            "/api/webhooks/{id}/events/",
            "/api/webhooks/{id}/test/",
            "/api/uploads/presign/",
            "/api/uploads/my-uploads/",
            "/api/uploads/{id}/",
            "/api/uploads/{id}/complete/",
            "/api/uploads/{id}/download/",
            "/health/live",
            "/health/ready",
            "/metrics",
        ] {
            assert!(paths.contains_key(p), "schema lacks {p}");
        }
        // A path parameter is one the path names; paging and filters are optional queries.
        for (path, ops) in paths {
            for (method, op) in ops.as_object().unwrap() {
                for param in op["parameters"].as_array().into_iter().flatten() {
                    let name = param["name"].as_str().unwrap();
                    if param["in"] == "path" {
                        assert!(
                            path.contains(&format!("{{{name}}}")),
                            "{method} {path}: `{name}` is no path parameter"
                        );
                    }
                }
            }
        }
        // Every signed-in operation says it may answer 401, 429 and 503 (the database away);
        // every other one but the probes and the scrape, 503 `unavailable`.
        for (path, ops) in paths {
            for (method, op) in ops.as_object().unwrap() {
                if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
                    for status in ["401", "429", "503"] {
                        assert!(
                            op["responses"][status].is_object(),
                            "{method} {path} lacks {status}"
                        );
                    }
                } else if !path.starts_with("/health/") && path != "/metrics" {
                    let outage = op["responses"]["503"]["description"].as_str();
                    assert!(
                        outage.is_some_and(|d| d.contains("`unavailable`")),
                        "{method} {path}: {outage:?}"
                    );
                }
            }
        }
        // Refusals the handlers can give, as the README describes them.
        for (path, method, status) in [
            ("/api/rooms/{id}/messages/", "post", "409"),
            ("/api/rooms/dm/", "post", "403"),
            ("/api/rooms/dm/", "post", "409"),
            ("/api/rooms/{id}/", "delete", "409"),
        ] {
            assert!(
                paths[path][method]["responses"][status].is_object(),
                "{method} {path} lacks {status}"
            );
        }
        // The error map is described in place, not as a Rust type's name.
        let schemas = r.body["components"]["schemas"].as_object().unwrap();
        assert!(!schemas.contains_key("BTreeMap"), "{:?}", schemas.keys());
        let listing = &paths["/api/rooms/{id}/messages/"]["get"]["parameters"];
        for name in ["limit", "before", "after", "threads"] {
            let param = listing
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .unwrap_or_else(|| panic!("no `{name}` in {listing}"));
            assert_eq!(param["in"], "query", "{param}");
            assert_ne!(param["required"], true, "{param}");
        }
        assert!(r.body["components"]["securitySchemes"]["bearer"].is_object());
        assert!(r.body["components"]["schemas"]["ErrorBody"].is_object());
        for schema in [
            "Room",
            "Message",
            "MessagePage",
            "UnreadCounts",
            "RoomMember",
        ] {
            assert!(
                r.body["components"]["schemas"][schema].is_object(),
                "schema lacks {schema}"
            );
        }
    }
    let page = app.call(Method::GET, "/api/docs/", None, None).await;
    assert_eq!(page.status, StatusCode::OK);
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert!(page.text.contains("swagger-ui"), "{}", page.text);
    // The page's scripts are served by us, not a CDN.
    assert!(!page.text.contains("https://"), "{}", page.text);
    for asset in [
        "/api/docs/swagger-ui.css",
        "/api/docs/swagger-ui-bundle.js",
        "/api/docs/swagger-initializer.js",
    ] {
        let r = app
            .client
            .get(format!("{}{asset}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{asset}");
        let body = r.text().await.unwrap();
        if asset.ends_with("initializer.js") {
            assert!(body.contains("/api/schema"), "{body}");
        }
    }
}

async fn unknown_routes_and_methods_use_the_error_shape(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let r = app.call(Method::GET, "/no/such/thing/", None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "not_found");
    let r = app.call(Method::PUT, "/auth/me/", None, None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.code(), "method_not_allowed");
}

async fn database_outage_is_503_without_internals(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let u = app.user("alice@example.com").await;
    app.break_database().await;
    let ready = app.call(Method::GET, "/health/ready", None, None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.body["status"], "unavailable");
    assert_ne!(ready.body["checks"]["database"], "ok");
    assert_eq!(
        app.call(Method::GET, "/health/live", None, None)
            .await
            .status,
        StatusCode::OK
    );
    let r = app.get("/api/orgs/", &u.access).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(r.code(), "unavailable");
    let lower = r.text.to_lowercase();
    assert!(
        !lower.contains("sqlx") && !lower.contains("pool") && !lower.contains("select"),
        "{}",
        r.text
    );
}

/// Token refresh has a per-address budget of its own: failed sign-ins from one address (users
/// behind one NAT) do not starve the refreshes of those already signed in.
async fn refresh_has_a_budget_apart_from_sign_ins(engine: Engine) {
    let Some(app) = TestApp::spawn_with(engine, |c| {
        c.rate_limit_per_ip = 3;
        c.rate_limit_refresh_per_ip = 2;
    })
    .await
    else {
        return;
    };
    // Registering and signing in spend the sign-in budget (3).
    let user = app.user("ada@example.com").await;
    let r = app
        .post(
            "/auth/token/",
            None,
            json!({"email": "ada@example.com", "password": "wrong-wrong"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app
        .post(
            "/auth/token/",
            None,
            json!({"email": "ada@example.com", "password": "password123"}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "sign-ins are spent"
    );
    // Refreshing still works, twice, with limit headers of its own.
    let mut refresh = user.refresh.clone();
    for remaining in ["1", "0"] {
        let r = app
            .post("/auth/token/refresh/", None, json!({"refresh": refresh}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.headers["x-ratelimit-limit"], "2");
        assert_eq!(r.headers["x-ratelimit-remaining"], remaining);
        refresh = r.body["refresh"].as_str().unwrap().to_owned();
    }
    let r = app
        .post("/auth/token/refresh/", None, json!({"refresh": refresh}))
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    let metrics = testing::process::scrape(&app.base).await;
    assert!(
        metrics.contains("chatboard_rate_limited_total{limit=\"refresh\"} 1"),
        "{metrics}"
    );
}

/// An IPv6 client is counted by its /64: one host holds the whole prefix and could otherwise
/// rotate through addresses past the sign-in limit (and make the server hash a password for
/// each try).
async fn ipv6_clients_are_counted_per_prefix(engine: Engine) {
    let Some(app) = TestApp::spawn_with(engine, |c| {
        c.rate_limit_per_ip = 1;
        c.trust_forwarded_for = true;
    })
    .await
    else {
        return;
    };
    let register = |from: &'static str, n: u32| {
        let app = &app;
        async move {
            app.client
                .post(format!("{}/auth/register/", app.base))
                .header("x-forwarded-for", from)
                .json(&json!({"email": format!("u{n}@example.com"), "password": "password123"}))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(register("2001:db8:1:2::1", 1).await, StatusCode::CREATED);
    assert_eq!(
        register("2001:db8:1:2:ffff::9", 2).await,
        StatusCode::TOO_MANY_REQUESTS,
        "the same /64"
    );
    assert_eq!(register("2001:db8:1:3::1", 3).await, StatusCode::CREATED);
}

/// Once a request has found the database down, the others answer 503 at once with
/// `Retry-After` for `CHATBOARD_DB_OUTAGE_HOLD` instead of each waiting for a connection
/// (during a 12 s outage requests once waited 5-7 s each); probes still answer.
async fn a_database_outage_fails_fast(engine: Engine) {
    let Some(app) = TestApp::spawn_with(engine, |c| {
        c.db_outage_hold = std::time::Duration::from_secs(600);
    })
    .await
    else {
        return;
    };
    let u = app.user("alice@example.com").await;
    app.break_database().await;
    let first = app.get("/api/orgs/", &u.access).await;
    assert_eq!(
        first.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        first.text
    );
    // The next ones do not touch the database: refused at once, told when to come back.
    for path in ["/api/orgs/", "/auth/me/", "/api/rooms/"] {
        let r = app.get(path, &u.access).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
        assert_eq!(r.code(), "unavailable");
        assert!(r.headers.contains_key("retry-after"), "{path}");
    }
    let metrics = testing::process::scrape(&app.base).await;
    assert!(
        metrics.contains("chatboard_db_outage_refusals_total 3"),
        "{metrics}"
    );
    // Probes are never held off: readiness reports the database itself.
    let ready = app.call(Method::GET, "/health/ready", None, None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_ne!(ready.body["checks"]["database"], "ok");
}
