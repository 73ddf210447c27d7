//! The API server on a loopback port, backed by a fresh database of either engine, driven over
//! HTTP with reqwest; and the fixtures tests build on (a signed-in user, an org, a member, a
//! room, a message).

use std::net::SocketAddr;

use api_server::config::Config;
use api_server::AppState;
use chatboard_core::auth::hash_token;
use chatboard_core::config::JwtSecret;
use chatboard_core::model::{OrgQuotas, Role};
use chatboard_store::{AppliedAdmins, EmailKind, ManagedOrg, OutgoingEmail, SpecAdmin};
use chrono::Utc;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// The key every test server signs with, so tests can forge tokens on purpose.
pub const TEST_SECRET: &[u8] = b"test-secret-test-secret-test-secret-0123";

use crate::db::{TestDb, TestEngine as Engine};

/// A running API server and a client for it.
pub struct TestApp {
    pub base: String,
    /// Its database.
    pub db_url: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub engine: Engine,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    _db: TestDb,
}

/// A registered, logged-in user.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: i64,
    pub email: String,
    pub access: String,
    pub refresh: String,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// The error code of an error body.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

impl TestApp {
    /// A server with the test defaults (no rate limits).
    pub async fn spawn(engine: Engine) -> Option<Self> {
        Self::spawn_with(engine, |_| {}).await
    }

    /// A server whose configuration `tune` may adjust first.
    pub async fn spawn_with(engine: Engine, tune: impl FnOnce(&mut Config)) -> Option<Self> {
        let (db, url) = TestDb::create(engine).await?;
        let mut config = Config::for_tests(
            url.clone(),
            JwtSecret::new(TEST_SECRET.to_vec()).expect("secret"),
        );
        tune(&mut config);
        let state = api_server::build_state(config).await.expect("build state");
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let serve_state = state.clone();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.await;
            };
            api_server::serve(listener, serve_state, shutdown)
                .await
                .expect("serve");
        });
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Some(Self {
            base: format!("http://{addr}"),
            db_url: url,
            client,
            state,
            engine,
            shutdown: Some(tx),
            _db: db,
        })
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Self::read(req.send().await.expect("request")).await
    }

    /// Reads a response into a [`Reply`].
    pub async fn read(resp: reqwest::Response) -> Reply {
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// Sends raw bytes with the given content type.
    pub async fn post_raw(&self, path: &str, content_type: Option<&str>, body: Vec<u8>) -> Reply {
        let mut req = self
            .client
            .post(format!("{}{}", self.base, path))
            .body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        Self::read(req.send().await.expect("request")).await
    }

    /// Registers `email` with a fixed password and logs in.
    pub async fn user(&self, email: &str) -> TestUser {
        let r = self
            .post(
                "/auth/register/",
                None,
                json!({"email": email, "password": "password123"}),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "register {email}: {}",
            r.text
        );
        let id = r.body["id"].as_i64().expect("id");
        let t = self
            .post(
                "/auth/token/",
                None,
                json!({"email": email, "password": "password123"}),
            )
            .await;
        assert_eq!(t.status, StatusCode::OK, "login {email}: {}", t.text);
        TestUser {
            id,
            email: email.to_owned(),
            access: t.body["access"].as_str().expect("access").to_owned(),
            refresh: t.body["refresh"].as_str().expect("refresh").to_owned(),
        }
    }

    /// Creates an org owned by `owner` and returns its id.
    pub async fn org(&self, owner: &TestUser, name: &str) -> i64 {
        let r = self
            .post("/api/orgs/", Some(&owner.access), json!({"name": name}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body["id"].as_i64().expect("org id")
    }

    /// Invites `member` into `org` with `role` and has them accept.
    pub async fn join(&self, org: i64, inviter: &TestUser, member: &TestUser, role: &str) {
        let r = self
            .post(
                &format!("/api/orgs/{org}/invite/"),
                Some(&inviter.access),
                json!({"email": member.email, "role": role}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let token = r.body["token"].as_str().expect("token").to_owned();
        let a = self.accept_invite(member, &token).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    }

    /// `POST /api/orgs/accept-invite/` with `token` as `user`.
    pub async fn accept_invite(&self, user: &TestUser, token: &str) -> Reply {
        self.post(
            "/api/orgs/accept-invite/",
            Some(&user.access),
            json!({"token": token}),
        )
        .await
    }

    /// Creates a room in `org` as `by` and returns its id.
    pub async fn room(&self, by: &TestUser, org: i64, name: &str, level: &str) -> i64 {
        let r = self
            .post(
                "/api/rooms/",
                Some(&by.access),
                json!({"org": org, "name": name, "access_level": level}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body["id"].as_i64().expect("room id")
    }

    /// An org with an ADMIN (alice) and a MEMBER (bob) sharing a PUBLIC room "general":
    /// (org, room, alice, bob).
    pub async fn room_for_two(&self) -> (i64, i64, TestUser, TestUser) {
        let alice = self.user("alice@example.com").await;
        let bob = self.user("bob@example.com").await;
        let org = self.org(&alice, "Acme").await;
        self.join(org, &alice, &bob, "MEMBER").await;
        let room = self.room(&alice, org, "general", "PUBLIC").await;
        (org, room, alice, bob)
    }

    /// The direct message `by` opens with `with` in `org` (which must be new): its id.
    pub async fn dm(&self, by: &TestUser, org: i64, with: &TestUser) -> i64 {
        let r = self
            .post(
                "/api/rooms/dm/",
                Some(&by.access),
                json!({"org": org, "user_id": with.id}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body["id"].as_i64().expect("room id")
    }

    /// A managed org (resource `tenants/<name>`, as the operator applies it) with `admin` as
    /// its ADMIN (who accepts the invitation the operator sends): its id.
    pub async fn managed_org(
        &self,
        admin: &TestUser,
        name: &str,
        quotas: OrgQuotas,
        suspended: bool,
    ) -> i64 {
        let now = Utc::now();
        let org = |suspended| ManagedOrg {
            resource_key: format!("tenants/{name}"),
            name: name.into(),
            quotas,
            suspended,
        };
        // Suspended only once the admin is in: a suspended org takes no one.
        let applied = self
            .state
            .store
            .apply_managed_org(org(false), now)
            .await
            .expect("apply the org");
        let token = format!("spec-admin-{name}");
        self.list_org_admins(applied.org_id, &[(&admin.email, &token)])
            .await;
        let member = self
            .state
            .store
            .member_role(applied.org_id, admin.id)
            .await
            .expect("the admin's role");
        if member != Some(Role::Admin) {
            let r = self.accept_invite(admin, &token).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        }
        if suspended {
            self.state
                .store
                .apply_managed_org(org(true), now)
                .await
                .expect("suspend the org");
        }
        applied.org_id
    }

    /// Applies an Organization's `admins` to `org` as the operator does, each address with the
    /// token its invitation (if one is sent) carries: what that did.
    pub async fn list_org_admins(&self, org: i64, admins: &[(&str, &str)]) -> AppliedAdmins {
        let now = Utc::now();
        let listed = admins
            .iter()
            .map(|(email, token)| SpecAdmin {
                email: (*email).to_owned(),
                token_hash: hash_token(token),
                expires_at: now + chrono::Duration::days(1),
                email_message: OutgoingEmail {
                    kind: EmailKind::Invitation,
                    to: (*email).to_owned(),
                    subject: String::new(),
                    body: String::new(),
                },
            })
            .collect();
        self.state
            .store
            .apply_org_admins(org, listed, now)
            .await
            .expect("apply the org's admins")
    }

    /// `POST /api/rooms/{room}/{action}/` as `user` (`join`, `leave`), which must succeed.
    pub async fn room_action(&self, user: &TestUser, room: i64, action: &str) {
        let path = format!("/api/rooms/{room}/{action}/");
        let r = self.post(&path, Some(&user.access), json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{action}: {}", r.text);
    }

    /// `user` joins `room`, which must answer `201 Created`; the answer (the room).
    pub async fn joined(&self, user: &TestUser, room: i64) -> Reply {
        let path = format!("/api/rooms/{room}/join/");
        let r = self.post(&path, Some(&user.access), json!({})).await;
        assert_eq!(r.status, StatusCode::CREATED, "join: {}", r.text);
        r
    }

    /// Sets `member`'s role in `org` as `admin`, which must succeed.
    pub async fn set_role(&self, org: i64, admin: &TestUser, member: &TestUser, role: &str) {
        let path = format!("/api/orgs/{org}/members/{}/role/", member.id);
        let r = self
            .post(&path, Some(&admin.access), json!({ "role": role }))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }

    /// `user`'s entry for `room` in their unread counts (`None` without a seat there).
    pub async fn unread_entry(&self, user: &TestUser, room: i64) -> Option<Value> {
        let r = self.get("/auth/me/unread-counts/", &user.access).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body["unread_counts"]
            .as_array()
            .expect("unread_counts")
            .iter()
            .find(|c| c["room_id"] == room)
            .cloned()
    }

    /// `user`'s unread count in `room` (`None` without a seat there).
    pub async fn unread_in(&self, user: &TestUser, room: i64) -> Option<i64> {
        let entry = self.unread_entry(user, room).await?;
        entry["unread_count"].as_i64()
    }

    /// Gives `org` a 30-day retention, dates `messages` back to 2020 and runs one purge, as
    /// the worker does; how many messages went.
    pub async fn expire(&self, org: i64, messages: &[i64]) -> u64 {
        let retention = format!("UPDATE orgs SET retention_days = 30 WHERE id = {org}");
        crate::execute_sql(&self.db_url, &retention).await;
        let ids: Vec<String> = messages.iter().map(i64::to_string).collect();
        let old = format!(
            "UPDATE messages SET created_at = '2020-01-01T00:00:00Z' WHERE id IN ({})",
            ids.join(", ")
        );
        crate::execute_sql(&self.db_url, &old).await;
        self.state
            .store
            .purge_expired_messages(chrono::Utc::now(), 100)
            .await
            .expect("purge")
    }

    /// Posts `body` to `room` as `by` and returns the message id.
    pub async fn send(&self, by: &TestUser, room: i64, body: &str) -> i64 {
        let r = self
            .post(
                &format!("/api/rooms/{room}/messages/"),
                Some(&by.access),
                json!({ "body": body }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body["id"].as_i64().expect("message id")
    }

    /// Ids of the items of a JSON array under `key` ("" for the body itself).
    pub fn ids(value: &Value, key: &str) -> Vec<i64> {
        value
            .as_array()
            .expect("array")
            .iter()
            .map(|v| v[key].as_i64().expect("id"))
            .collect()
    }

    /// Closes the database pools, as if the database went away.
    pub async fn break_database(&self) {
        self.state.store.close().await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
