//! What an Organization resource sets, as the API enforces it: suspension and archiving make an
//! org read-only, member and room quotas, and message retention. The operator's store calls set
//! the org up here (operator/tests drive them from Kubernetes). Both engines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use testing::both_engines;

use chatboard_core::model::{OrgQuotas, Role};
use chatboard_store::ManagedOrg;
use chrono::Utc;
use common::{Engine, TestApp};
use reqwest::StatusCode;
use serde_json::json;

both_engines!(
    suspension_and_archiving_make_the_org_read_only,
    member_and_room_quotas,
    messages_past_retention_are_purged,
    a_managed_org_is_purged_a_batch_at_a_time,
    members_are_held_to_the_org_posting_limit,
    outsiders_learn_nothing_of_a_read_only_or_limited_org,
    admins_cannot_remove_members_of_a_read_only_org,
    idle_org_limiters_are_forgotten,
    a_purge_cut_off_after_its_commit_still_announces_it,
    a_room_deletion_the_bus_refused_is_announced_again,
    an_org_taken_back_takes_back_what_its_list_gave,
    the_list_does_not_adopt_an_admin_invitation_made_through_the_api,
    an_admin_promoted_through_the_api_keeps_the_role_when_dropped_from_the_list,
);

/// An Organization deleted under Retain and created again takes its org back with what its
/// admin list gave: an address dropped from the list afterwards loses the ADMIN role the list
/// gave it. The archiving forgot the list's grants, so the role stayed for good.
async fn an_org_taken_back_takes_back_what_its_list_gave(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let ops = app.user("ops@example.com").await;
    let org = app
        .managed_org(&ops, "acme", OrgQuotas::default(), false)
        .await;
    let boss = app.user("boss@example.com").await;
    let both = [("ops@example.com", "a"), ("boss@example.com", "b")];
    app.list_org_admins(org, &both).await;
    let r = app.accept_invite(&boss, "b").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let role = || async { app.state.store.member_role(org, boss.id).await.unwrap() };
    assert_eq!(role().await, Some(Role::Admin));

    // Deleted under Retain, then applied again with the same list: taken back.
    app.state
        .store
        .archive_managed_org("tenants/acme", Utc::now())
        .await
        .unwrap();
    let acme = ManagedOrg {
        resource_key: "tenants/acme".into(),
        name: "acme".into(),
        quotas: OrgQuotas::default(),
        suspended: false,
    };
    let applied = app
        .state
        .store
        .apply_managed_org(acme, Utc::now())
        .await
        .unwrap();
    assert_eq!(applied.org_id, org);
    app.list_org_admins(org, &both).await;
    assert_eq!(role().await, Some(Role::Admin));
    // Dropped from the list: the role it gave goes.
    app.list_org_admins(org, &[("ops@example.com", "a")]).await;
    assert_eq!(role().await, Some(Role::Member));
}

async fn suspension_and_archiving_make_the_org_read_only(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let admin = app.user("admin@acme.example").await;
    let org = app
        .managed_org(&admin, "acme", OrgQuotas::default(), false)
        .await;
    let room = app.room(&admin, org, "general", "PUBLIC").await;
    let msg = app.send(&admin, room, "before").await;
    let invite = app
        .post(
            &format!("/api/orgs/{org}/invite/"),
            Some(&admin.access),
            json!({"email": "early@acme.example", "role": "MEMBER"}),
        )
        .await
        .body["id"]
        .as_i64()
        .unwrap();

    app.managed_org(&admin, "acme", OrgQuotas::default(), true)
        .await;
    let r = app.get(&format!("/api/orgs/{org}/"), &admin.access).await;
    assert_eq!(
        (
            r.body["suspended"].clone(),
            r.body["archived"].clone(),
            r.body["managed"].clone()
        ),
        (json!(true), json!(false), json!(true))
    );
    // Reading works.
    let r = app
        .get(&format!("/api/rooms/{room}/messages/"), &admin.access)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Writing does not.
    let messages = format!("/api/rooms/{room}/messages/");
    let writes = [
        app.post(&messages, Some(&admin.access), json!({"body": "during"}))
            .await,
        app.patch(
            &format!("{messages}{msg}/"),
            &admin.access,
            json!({"body": "edited"}),
        )
        .await,
        app.delete(&format!("{messages}{msg}/"), &admin.access)
            .await,
        app.post(
            "/api/rooms/",
            Some(&admin.access),
            json!({"org": org, "name": "new", "access_level": "PUBLIC"}),
        )
        .await,
        app.patch(
            &format!("/api/rooms/{room}/"),
            &admin.access,
            json!({"name": "renamed"}),
        )
        .await,
        app.post(
            &format!("/api/orgs/{org}/invite/"),
            Some(&admin.access),
            json!({"email": "x@acme.example", "role": "MEMBER"}),
        )
        .await,
        app.post(
            "/api/webhooks/",
            Some(&admin.access),
            json!({"org": org, "url": "https://example.com/h", "events": ["*"]}),
        )
        .await,
        // An invitation made before the suspension stays as it is, too.
        app.delete(
            &format!("/api/orgs/{org}/invitations/{invite}/"),
            &admin.access,
        )
        .await,
    ];
    for r in writes {
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::FORBIDDEN, "org_suspended"),
            "{}",
            r.text
        );
    }

    // Lifted: writes work again.
    app.managed_org(&admin, "acme", OrgQuotas::default(), false)
        .await;
    app.send(&admin, room, "after").await;

    // Archived (its resource deleted with Retain): read-only, no longer managed, and deletable.
    app.state
        .store
        .archive_managed_org("tenants/acme", Utc::now())
        .await
        .unwrap();
    let r = app
        .post(&messages, Some(&admin.access), json!({"body": "archived"}))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "org_archived"),
        "{}",
        r.text
    );
    let r = app
        .patch(
            &format!("/api/orgs/{org}/"),
            &admin.access,
            json!({"name": "New name"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "org_archived"),
        "{}",
        r.text
    );
    let r = app.get(&messages, &admin.access).await;
    assert_eq!(
        r.body["results"].as_array().map(Vec::len),
        Some(2),
        "{}",
        r.text
    );
    let r = app
        .delete(&format!("/api/orgs/{org}/"), &admin.access)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
}

async fn member_and_room_quotas(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let admin = app.user("admin@acme.example").await;
    let quotas = OrgQuotas {
        max_members: Some(2),
        max_rooms: Some(2),
        ..OrgQuotas::default()
    };
    let org = app.managed_org(&admin, "acme", quotas, false).await;
    let r = app.get(&format!("/api/orgs/{org}/"), &admin.access).await;
    assert_eq!(r.body["quotas"]["max_members"], 2);

    let bob = app.user("bob@acme.example").await;
    app.join(org, &admin, &bob, "MEMBER").await;
    let carol = app.user("carol@acme.example").await;
    let r = app
        .post(
            &format!("/api/orgs/{org}/invite/"),
            Some(&admin.access),
            json!({"email": carol.email, "role": "MEMBER"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let token = r.body["token"].as_str().unwrap().to_owned();
    let r = app.accept_invite(&carol, &token).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "member_limit_reached"),
        "{}",
        r.text
    );
    // An admin the platform team lists is not counted against the limit (its ADMIN
    // invitation was refused like any other, and the org went without the admin it was given).
    let dana = app.user("dana@acme.example").await;
    app.list_org_admins(
        org,
        &[
            (&admin.email, "spec-admin-acme"),
            (&dana.email, "spec-dana"),
        ],
    )
    .await;
    let r = app.accept_invite(&dana, "spec-dana").await;
    assert!(r.status.is_success(), "{}", r.text);
    assert_eq!(r.body["role"], "ADMIN", "{}", r.text);

    app.room(&admin, org, "one", "PUBLIC").await;
    let r = app
        .post(
            "/api/rooms/dm/",
            Some(&admin.access),
            json!({"org": org, "user_id": bob.id}),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    let r = app
        .post(
            "/api/rooms/",
            Some(&admin.access),
            json!({"org": org, "name": "three", "access_level": "PUBLIC"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "room_limit_reached"),
        "{}",
        r.text
    );
}

async fn messages_past_retention_are_purged(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let admin = app.user("admin@acme.example").await;
    let quotas = OrgQuotas {
        retention_days: Some(30),
        ..OrgQuotas::default()
    };
    let kept_org = app
        .managed_org(&admin, "forever", OrgQuotas::default(), false)
        .await;
    let org = app.managed_org(&admin, "acme", quotas, false).await;
    let room = app.room(&admin, org, "general", "PUBLIC").await;
    let kept_room = app.room(&admin, kept_org, "general", "PUBLIC").await;
    for i in 0..5 {
        app.send(&admin, room, &format!("m{i}")).await;
        app.send(&admin, kept_room, &format!("k{i}")).await;
    }
    // Read once so the page is cached: purging must make it stale.
    let page = |room: i64| format!("/api/rooms/{room}/messages/");
    assert_eq!(
        app.get(&page(room), &admin.access).await.body["results"]
            .as_array()
            .map(Vec::len),
        Some(5)
    );

    // Nothing is old enough yet.
    assert_eq!(
        app.state
            .store
            .purge_expired_messages(Utc::now(), 100)
            .await
            .unwrap(),
        0
    );
    // Thirty-one days on, batch by batch.
    let later = Utc::now() + chrono::Duration::days(31);
    assert_eq!(
        app.state
            .store
            .purge_expired_messages(later, 3)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        app.state
            .store
            .purge_expired_messages(later, 100)
            .await
            .unwrap(),
        2
    );
    let r = app.get(&page(room), &admin.access).await;
    assert_eq!(
        r.body["results"].as_array().map(Vec::len),
        Some(0),
        "{}",
        r.text
    );
    let r = app.get(&page(kept_room), &admin.access).await;
    assert_eq!(
        r.body["results"].as_array().map(Vec::len),
        Some(5),
        "org without retention keeps everything"
    );
}

/// A `deletionPolicy: Delete` purge takes the org, its rooms and seats in one short
/// transaction, and its messages afterwards a batch per transaction, each kept once done (a
/// reconcile purging them a batch at a time held its slot for as long as they took); other
/// orgs keep theirs.
async fn a_managed_org_is_purged_a_batch_at_a_time(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let admin = app.user("admin@acme.example").await;
    let org = app
        .managed_org(&admin, "acme", OrgQuotas::default(), false)
        .await;
    let other = app
        .managed_org(&admin, "other", OrgQuotas::default(), false)
        .await;
    let room = app.room(&admin, org, "general", "PUBLIC").await;
    let other_room = app.room(&admin, other, "general", "PUBLIC").await;
    let root = app.send(&admin, room, "root").await;
    let r = app
        .post(
            &format!("/api/rooms/{room}/messages/"),
            Some(&admin.access),
            json!({"body": "a reply", "parent_id": root}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    for i in 0..3 {
        app.send(&admin, room, &format!("m{i}")).await;
    }
    app.send(&admin, other_room, "stays").await;
    let store = &app.state.store;
    // The org goes in one short transaction; its messages wait, unreadable, for their purge.
    assert!(store
        .purge_managed_org("tenants/acme")
        .await
        .unwrap()
        .is_some());
    let r = app
        .get(&format!("/api/rooms/{room}/messages/"), &admin.access)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let mut purged = Vec::new();
    while let Some(n) = store.purge_erased_messages(2).await.unwrap() {
        purged.push(n);
    }
    assert_eq!(purged, [2, 2, 1]);
    let left = testing::query_texts(
        &app.db_url,
        &format!("SELECT CAST(COUNT(*) AS TEXT) FROM messages WHERE room_id = {room}"),
    )
    .await;
    assert_eq!(left, ["0"]);
    let r = app
        .get(&format!("/api/rooms/{other_room}/messages/"), &admin.access)
        .await;
    assert_eq!(
        r.body["results"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text
    );
}

async fn members_are_held_to_the_org_posting_limit(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let admin = app.user("admin@acme.example").await;
    let quotas = OrgQuotas {
        rate_limit_per_minute: Some(3),
        ..OrgQuotas::default()
    };
    let org = app.managed_org(&admin, "acme", quotas, false).await;
    let bob = app.user("bob@acme.example").await;
    app.join(org, &admin, &bob, "MEMBER").await;
    let general = app.room(&admin, org, "general", "PUBLIC").await;
    let random = app.room(&admin, org, "random", "PUBLIC").await;
    for i in 0..3 {
        app.send(&admin, general, &format!("m{i}")).await;
    }
    // The fourth in a minute is refused, in any room of the org, with a time to wait.
    for room in [general, random] {
        let r = app
            .post(
                &format!("/api/rooms/{room}/messages/"),
                Some(&admin.access),
                json!({"body": "more"}),
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            "{}",
            r.text
        );
        assert!(r.headers.get("retry-after").is_some());
    }
    // Counted with the other limits' refusals.
    let metrics = testing::process::scrape(&app.base).await;
    assert!(
        metrics.contains("chatboard_rate_limited_total{limit=\"action\"} 2"),
        "{metrics}"
    );
    // Per member: Bob still may post.
    app.send(&bob, general, "hello").await;
    // Another organization's rooms are not counted against this one's limit.
    let other = app.org(&admin, "Elsewhere").await;
    let elsewhere = app.room(&admin, other, "general", "PUBLIC").await;
    app.send(&admin, elsewhere, "fine").await;
}

/// Every way an outsider (a user of another organization) can touch org A's room, message and
/// org: `(method, path, body)`.
fn outsider_requests(
    org: i64,
    room: i64,
    msg: i64,
    member: i64,
) -> Vec<(&'static str, String, serde_json::Value)> {
    let messages = format!("/api/rooms/{room}/messages/");
    vec![
        ("POST", messages.clone(), json!({"body": "hi"})),
        ("GET", messages.clone(), json!(null)),
        ("PATCH", format!("{messages}{msg}/"), json!({"body": "x"})),
        ("DELETE", format!("{messages}{msg}/"), json!(null)),
        ("POST", format!("/api/rooms/{room}/join/"), json!({})),
        ("POST", format!("/api/rooms/{room}/read/{msg}/"), json!({})),
        ("GET", format!("/api/rooms/{room}/members/"), json!(null)),
        ("PATCH", format!("/api/rooms/{room}/"), json!({"name": "x"})),
        ("GET", format!("/api/orgs/{org}/"), json!(null)),
        ("GET", format!("/api/orgs/{org}/members/"), json!(null)),
        (
            "POST",
            format!("/api/orgs/{org}/invite/"),
            json!({"email": "x@acme.example", "role": "MEMBER"}),
        ),
        (
            "DELETE",
            format!("/api/orgs/{org}/members/{member}/"),
            json!(null),
        ),
        (
            "POST",
            "/api/rooms/".to_owned(),
            json!({"org": org, "name": "x", "access_level": "PUBLIC"}),
        ),
    ]
}

/// A caller without a seat learns nothing about a room or its organization: not that it is
/// suspended, archived or rate-limited. Every request answers 404, whatever A's state.
async fn outsiders_learn_nothing_of_a_read_only_or_limited_org(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let admin = app.user("admin@acme.example").await;
    let mallory = app.user("mallory@other.example").await;
    app.org(&mallory, "Other").await;
    // Every request of Mallory's about `org`'s room and message answers 404.
    let check = |state: &'static str, org: i64, room: i64, msg: i64| {
        let (app, mallory, admin_id) = (&app, &mallory, admin.id);
        async move {
            for (method, path, body) in outsider_requests(org, room, msg, admin_id) {
                let r = match method {
                    "GET" => app.get(&path, &mallory.access).await,
                    "POST" => app.post(&path, Some(&mallory.access), body).await,
                    "PATCH" => app.patch(&path, &mallory.access, body).await,
                    _ => app.delete(&path, &mallory.access).await,
                };
                assert_eq!(
                    (r.status, r.code()),
                    (StatusCode::NOT_FOUND, "not_found"),
                    "{state}: {method} {path}: {}",
                    r.text
                );
            }
        }
    };

    // Acme allows one message a minute, and it has been posted.
    let limited = OrgQuotas {
        rate_limit_per_minute: Some(1),
        ..OrgQuotas::default()
    };
    let acme = app.managed_org(&admin, "acme", limited, false).await;
    let room = app.room(&admin, acme, "general", "PUBLIC").await;
    let msg = app.send(&admin, room, "the only one this minute").await;
    check("rate-limited", acme, room, msg).await;

    // Beta has no limit; it is suspended, then archived.
    let beta = app
        .managed_org(&admin, "beta", OrgQuotas::default(), false)
        .await;
    let room = app.room(&admin, beta, "general", "PUBLIC").await;
    let msg = app.send(&admin, room, "hello").await;
    app.managed_org(&admin, "beta", OrgQuotas::default(), true)
        .await;
    check("suspended", beta, room, msg).await;
    app.state
        .store
        .archive_managed_org("tenants/beta", Utc::now())
        .await
        .unwrap();
    check("archived", beta, room, msg).await;
}

/// Removing someone else is a member change, refused while the org is read-only; leaving is
/// still allowed (README: members may leave a suspended organization).
async fn admins_cannot_remove_members_of_a_read_only_org(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let admin = app.user("admin@acme.example").await;
    let org = app
        .managed_org(&admin, "acme", OrgQuotas::default(), false)
        .await;
    let bob = app.user("bob@acme.example").await;
    let carol = app.user("carol@acme.example").await;
    app.join(org, &admin, &bob, "MEMBER").await;
    app.join(org, &admin, &carol, "MEMBER").await;
    app.managed_org(&admin, "acme", OrgQuotas::default(), true)
        .await;

    let r = app
        .delete(
            &format!("/api/orgs/{org}/members/{}/", bob.id),
            &admin.access,
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "org_suspended"),
        "{}",
        r.text
    );
    let r = app
        .get(&format!("/api/orgs/{org}/members/"), &admin.access)
        .await;
    assert_eq!(r.body.as_array().map(Vec::len), Some(3), "{}", r.text);
    // Carol leaves on her own.
    let r = app
        .delete(
            &format!("/api/orgs/{org}/members/{}/", carol.id),
            &carol.access,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);

    app.state
        .store
        .archive_managed_org("tenants/acme", Utc::now())
        .await
        .unwrap();
    let r = app
        .delete(
            &format!("/api/orgs/{org}/members/{}/", bob.id),
            &admin.access,
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "org_archived"),
        "{}",
        r.text
    );
}

/// The per-organization posting limiters are dropped once their members are back at a full
/// allowance, so memory follows the organizations that post (the map only grew before).
async fn idle_org_limiters_are_forgotten(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let admin = app.user("admin@acme.example").await;
    // 100,000 a minute: one post is refilled within a millisecond.
    let quotas = OrgQuotas {
        rate_limit_per_minute: Some(100_000),
        ..OrgQuotas::default()
    };
    let org = app.managed_org(&admin, "acme", quotas, false).await;
    let room = app.room(&admin, org, "general", "PUBLIC").await;
    app.send(&admin, room, "hello").await;
    assert_eq!(app.state.chat.org_limiters(), 1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        app.state.chat.forget_idle();
        if app.state.chat.org_limiters() == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the idle limiter is forgotten"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The application layer on `app`'s store and settings, announcing on `bus`.
fn chat_on(app: &TestApp, bus: std::sync::Arc<dyn chatboard_core::bus::Bus>) -> chat::Chat {
    chat::Chat::new(
        app.state.store.clone(),
        bus,
        app.state.config.chat_settings(),
        &chatboard_core::metrics::MetricRegistry::new(),
    )
    .unwrap()
}

/// The in-process bus under the test's control: each publish says it began, refuses while
/// `refusals` are left (as NATS does while it restarts), then waits for a permit of `open`.
struct Gated {
    inner: chatboard_core::bus::LocalBus,
    entered: tokio::sync::Notify,
    refusals: std::sync::atomic::AtomicUsize,
    open: tokio::sync::Semaphore,
}

impl Gated {
    /// Refuses the first `refusals` publishes; lets through `permits` of the others.
    fn new(refusals: usize, permits: usize) -> Self {
        Self {
            inner: chatboard_core::bus::LocalBus::default(),
            entered: tokio::sync::Notify::new(),
            refusals: std::sync::atomic::AtomicUsize::new(refusals),
            open: tokio::sync::Semaphore::new(permits),
        }
    }
}

#[async_trait::async_trait]
impl chatboard_core::bus::Bus for Gated {
    async fn publish(
        &self,
        event: &chatboard_core::bus::BusEvent,
    ) -> Result<(), chatboard_core::bus::BusError> {
        use std::sync::atomic::Ordering;
        self.entered.notify_one();
        let refused = self
            .refusals
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if refused.is_ok() {
            return Err(chatboard_core::bus::BusError::Unavailable(
                "refused for the test".into(),
            ));
        }
        let _pass = self.open.acquire().await;
        self.inner.publish(event).await
    }
    async fn subscribe(
        &self,
    ) -> Result<chatboard_core::bus::BusStream, chatboard_core::bus::BusError> {
        self.inner.subscribe().await
    }
    async fn ping(&self) -> Result<(), chatboard_core::bus::BusError> {
        Ok(())
    }
    fn kind(&self) -> &'static str {
        "gated"
    }
}

/// The operator drops its reconciles in flight when it loses its Lease. A purge dropped after
/// its commit, while announcing, left the org's rooms followed by every open socket (the
/// announcement of a deleted room is the only thing that stops them, and the next leader finds
/// nothing left to purge): the announcement now runs to its end.
async fn a_purge_cut_off_after_its_commit_still_announces_it(engine: Engine) {
    use chatboard_core::bus::{Bus, BusEvent, Delivery};
    use futures::StreamExt;
    use std::sync::Arc;

    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let admin = app.user("admin@acme.example").await;
    let org = app
        .managed_org(&admin, "acme", OrgQuotas::default(), false)
        .await;
    let room = app.room(&admin, org, "general", "PUBLIC").await;
    let bus = Arc::new(Gated::new(0, 0));
    let mut heard = bus.subscribe().await.unwrap();
    let chat = chat_on(&app, bus.clone());
    let purge = tokio::spawn(async move { chat.purge_managed_org("tenants/acme").await });
    bus.entered.notified().await; // committed, announcing
    purge.abort();
    assert!(purge.await.unwrap_err().is_cancelled());
    bus.open.add_permits(1000);
    let deleted = tokio::time::timeout(std::time::Duration::from_secs(10), heard.next())
        .await
        .expect("announced though its caller was dropped")
        .unwrap();
    assert!(
        matches!(deleted, Delivery::Event(BusEvent::RoomDeleted { room: r }) if r == room),
        "{deleted:?}"
    );
}

/// A deleted room's announcement is the only thing that stops open sockets following it: one
/// the bus refused (NATS restarting) is tried again, as a lost seat's is. It was published
/// once, and a refusal left every socket on the room until it reconnected.
async fn a_room_deletion_the_bus_refused_is_announced_again(engine: Engine) {
    use chatboard_core::bus::{Bus, BusEvent, Delivery};
    use futures::StreamExt;
    use std::sync::Arc;

    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let admin = app.user("admin@acme.example").await;
    let org = app.org(&admin, "Acme").await;
    let room = app.room(&admin, org, "doomed", "PUBLIC").await;
    let bus = Arc::new(Gated::new(1, 1000));
    let mut heard = bus.subscribe().await.unwrap();
    let chat = chat_on(&app, bus.clone());
    chat.delete_room(admin.id, room).await.unwrap();
    let deleted = tokio::time::timeout(std::time::Duration::from_secs(20), heard.next())
        .await
        .expect("announced again after the refusal")
        .unwrap();
    assert!(
        matches!(deleted, Delivery::Event(BusEvent::RoomDeleted { room: r }) if r == room),
        "{deleted:?}"
    );
}

/// An ADMIN of a managed org revokes the operator's invitation of a listed address and invites
/// that address as ADMIN through the API, seeing the token. The operator's next look replaces
/// that invitation with its own (mailed to the address alone): it used to adopt it as its own,
/// so the ADMIN could take the listed address's role, one that no other ADMIN could remove.
async fn the_list_does_not_adopt_an_admin_invitation_made_through_the_api(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let ops = app.user("ops@example.com").await;
    let org = app
        .managed_org(&ops, "acme", OrgQuotas::default(), false)
        .await;
    let listed = [
        ("ops@example.com", "a"),
        ("cto@example.com", "operator-token"),
    ];
    app.list_org_admins(org, &listed).await;
    let open = app
        .get(&format!("/api/orgs/{org}/invitations/"), &ops.access)
        .await;
    let operators = open.body.as_array().unwrap()[0]["id"].as_i64().unwrap();
    let r = app
        .delete(
            &format!("/api/orgs/{org}/invitations/{operators}/"),
            &ops.access,
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    let r = app
        .post(
            &format!("/api/orgs/{org}/invite/"),
            Some(&ops.access),
            json!({"email": "cto@example.com", "role": "ADMIN"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let seen = r.body["token"].as_str().unwrap().to_owned();
    // The operator's next look, with a token of its own as each invitation has.
    app.list_org_admins(org, &[listed[0], ("cto@example.com", "operator-token-2")])
        .await;
    let squatter = app.user("cto@example.com").await;
    let r = app.accept_invite(&squatter, &seen).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = app.accept_invite(&squatter, "operator-token-2").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

/// A listed member whose operator invitation still waits is promoted through the API: the
/// role is the API's, and dropping the address from the list leaves it (the list takes back
/// only what it gave). It was taken back.
async fn an_admin_promoted_through_the_api_keeps_the_role_when_dropped_from_the_list(
    engine: Engine,
) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let ops = app.user("ops@example.com").await;
    let org = app
        .managed_org(&ops, "acme", OrgQuotas::default(), false)
        .await;
    let eve = app.user("eve@example.com").await;
    app.join(org, &ops, &eve, "MEMBER").await;
    app.list_org_admins(org, &[("ops@example.com", "a"), ("eve@example.com", "e")])
        .await;
    let r = app
        .post(
            &format!("/api/orgs/{org}/members/{}/role/", eve.id),
            Some(&ops.access),
            json!({"role": "ADMIN"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    app.list_org_admins(org, &[("ops@example.com", "a")]).await;
    assert_eq!(
        app.state.store.member_role(org, eve.id).await.unwrap(),
        Some(Role::Admin)
    );
    // The operator's invitation went with the promotion: demoted later through the API, eve
    // cannot make herself ADMIN again with its token from her mailbox.
    let r = app
        .post(
            &format!("/api/orgs/{org}/members/{}/role/", eve.id),
            Some(&ops.access),
            json!({"role": "MEMBER"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app.accept_invite(&eve, "e").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
}
