//! A running operator (both controllers) against the fake Kubernetes API and a fresh database.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

pub mod cluster;
pub mod fake_api;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chat::{Chat, ChatSettings};
use chatboard_core::auth::hash_token;
use chatboard_core::bus::{Bus, LocalBus};
use chatboard_store::{NewUser, Store};
use chrono::Utc;
use operator::context::{Context, Settings};
use operator::metrics::Metrics;
use testing::{TestDb, TestEngine};
use tokio::sync::watch;

pub use fake_api::FakeApi;

/// How long a reconcile's API call may take here (the operator's is 30 s).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// The namespace tests put their resources in.
pub const NS: &str = "tenants";
/// Collections in the fake API.
pub const ORGS: &str = "chatboard.io/v1alpha1/organizations";
pub const WEBHOOKS: &str = "chatboard.io/v1alpha1/webhooks";
pub const SECRETS: &str = "v1/secrets";
pub const EVENTS: &str = "events.k8s.io/v1/events";

/// An operator under test.
pub struct Harness {
    pub api: FakeApi,
    pub store: Arc<dyn Store>,
    /// The bus the operator announces on (in-process here).
    pub bus: Arc<dyn Bus>,
    pub ctx: Arc<Context>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    /// The database's URL (for drift made behind the store's back).
    pub url: String,
    _db: TestDb,
}

impl Harness {
    /// Starts one (resync after `resync`); `None` when the engine is unavailable (skip).
    pub async fn start(engine: TestEngine, resync: Duration) -> Option<Self> {
        Self::start_with(engine, resync, None).await
    }

    /// Starts one whose controllers run only while `leading` says so.
    pub async fn start_following(
        engine: TestEngine,
        leading: watch::Receiver<bool>,
    ) -> Option<Self> {
        Self::start_with(engine, Duration::from_secs(60), Some(leading)).await
    }

    async fn start_with(
        engine: TestEngine,
        resync: Duration,
        leading: Option<watch::Receiver<bool>>,
    ) -> Option<Self> {
        let (db, url) = TestDb::create(engine).await?;
        let store = chatboard_store::connect(&url, 5).await.expect("connect");
        store.migrate().await.expect("migrate");
        let api = FakeApi::start().await;
        let bus: Arc<dyn Bus> = Arc::new(LocalBus::default());
        let ctx = context(
            api.bounded_client(CALL_TIMEOUT),
            api.client(),
            store.clone(),
            bus.clone(),
            resync,
        );
        let (stop, stopped) = watch::channel(false);
        let task = match leading {
            Some(leading) => tokio::spawn(operator::service::run_while_leading(
                ctx.clone(),
                vec![NS.into()],
                leading,
                stopped,
            )),
            None => tokio::spawn(operator::service::run_controllers(
                ctx.clone(),
                vec![NS.into()],
                async move {
                    let mut stopped = stopped;
                    let _ = stopped.wait_for(|s| *s).await;
                },
            )),
        };
        Some(Self {
            api,
            store,
            bus,
            ctx,
            stop,
            task,
            url,
            _db: db,
        })
    }

    /// `user_id` accepts the ADMIN invitation the operator emailed to `email` (the token read
    /// from the queued email), as a listed admin who is not ADMIN yet does.
    pub async fn accept_admin_invitation(&self, email: &str, user_id: i64) {
        let bodies = testing::query_texts(
            &self.url,
            &format!(
                "SELECT body FROM emails WHERE to_address = '{email}' AND kind = 'invitation' \
                 ORDER BY id DESC"
            ),
        )
        .await;
        let body = bodies.first().expect("an invitation email");
        let token = body
            .lines()
            .find_map(|line| line.strip_prefix("Invitation token: "))
            .expect("the token in the email");
        let joined = self
            .store
            .accept_invite(&hash_token(token), user_id, email, Utc::now())
            .await
            .expect("accepted");
        assert_eq!(joined.role, chatboard_core::model::Role::Admin);
    }

    /// Runs one SQL statement directly, as someone editing the database by hand would.
    pub async fn sql(&self, statement: &str) {
        testing::execute_sql(&self.url, statement).await;
    }

    /// The value of a counter or gauge line of the metrics, 0 when absent.
    pub fn metric(&self, series: &str) -> f64 {
        testing::process::series(&self.metrics(), series)
    }

    /// Waits until `series` satisfies `ok` (what a reconcile records after its status write
    /// can come after a test has seen that status) and returns its value.
    pub async fn metric_reaches(&self, series: &str, ok: impl Fn(f64) -> bool) -> f64 {
        eventually(series, || async {
            let value = self.metric(series);
            ok(value).then_some(value)
        })
        .await
    }

    /// Waits until an Event with `reason` about the object `name` has been published.
    pub async fn event_seen(&self, name: &str, reason: &str) {
        eventually(&format!("a {reason} Event about {name}"), || async {
            self.event_reasons(name)
                .iter()
                .any(|r| r == reason)
                .then_some(())
        })
        .await
    }

    /// A registered user.
    pub async fn user(&self, email: &str) -> i64 {
        let user = NewUser {
            email: email.into(),
            password_hash: "x".into(),
            first_name: String::new(),
            last_name: String::new(),
        };
        self.store
            .create_user(user, Utc::now())
            .await
            .expect("user")
            .id
    }

    /// The Prometheus text of the operator's metrics.
    pub fn metrics(&self) -> String {
        self.ctx.metrics.registry.render().unwrap()
    }

    /// Reasons of the Events published about the object `name`.
    pub fn event_reasons(&self, name: &str) -> Vec<String> {
        self.api
            .list(EVENTS, NS)
            .into_iter()
            .filter(|e| e["regarding"]["name"].as_str() == Some(name))
            .filter_map(|e| e["reason"].as_str().map(str::to_owned))
            .collect()
    }

    /// The notes of the Events about `name` for `reason`.
    #[allow(dead_code)] // not every suite reads notes
    pub fn event_notes(&self, name: &str, reason: &str) -> Vec<String> {
        self.api
            .list(EVENTS, NS)
            .into_iter()
            .filter(|e| e["regarding"]["name"].as_str() == Some(name))
            .filter(|e| e["reason"].as_str() == Some(reason))
            .filter_map(|e| e["note"].as_str().map(str::to_owned))
            .collect()
    }

    /// Stops the controllers and waits for them.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("controllers stop")
            .ok();
    }
}

/// The reconcilers' context as the operator builds it, calling the API on `client`, watching on
/// `watch_client`, on `store`, announcing on `bus`; resources are reconciled again every
/// `resync` and waiting ones rechecked every 500 ms.
pub fn context(
    client: kube::Client,
    watch_client: kube::Client,
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    resync: Duration,
) -> Arc<Context> {
    let settings = Settings {
        resync,
        recheck: Duration::from_millis(500),
        allow_private_webhooks: true,
        concurrency: 2,
    };
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let chat = Chat::new(
        store,
        bus,
        ChatSettings {
            posts_per_minute: 0,
            invites: Default::default(),
            public_url: Some("https://chat.example".into()),
            allow_private_webhooks: true,
            upload_quotas: Default::default(),
            room_mentions_max_members: chat::ROOM_MENTIONS_MAX_MEMBERS,
        },
        &metrics.registry,
    )
    .expect("chat");
    Arc::new(Context::new(
        client,
        watch_client,
        chat,
        settings,
        metrics,
        "operator-test",
    ))
}

/// The HMAC secret the worker would sign `webhook_id`'s deliveries with (read by queuing a
/// test delivery and claiming it, as the worker does).
pub async fn signing_secret(store: &Arc<dyn Store>, webhook_id: i64) -> String {
    let delivery = store
        .create_test_delivery(webhook_id, None, Utc::now())
        .await
        .unwrap();
    let now = Utc::now() + chrono::Duration::seconds(1);
    let due = store
        .claim_due_deliveries(now, now + chrono::Duration::minutes(1), 100, &[])
        .await
        .unwrap();
    due.into_iter()
        .find(|d| d.id == delivery)
        .expect("the test delivery")
        .secret
}

/// Polls `check` until it returns `Some`, failing after 20 s with `what`.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The Ready condition of a stored object: (status, reason, message).
pub fn ready_of(object: &serde_json::Value) -> Option<(String, String, String)> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("").to_owned(),
                c["reason"].as_str().unwrap_or("").to_owned(),
                c["message"].as_str().unwrap_or("").to_owned(),
            )
        })
}
