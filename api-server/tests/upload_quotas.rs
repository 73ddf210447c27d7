//! Upload quotas as the API enforces them: the deployment's per-user and per-organization
//! limits on unfinished and stored bytes, an Organization resource's own, and a file counted
//! against the organization it is first posted in; an unfinished upload given up by its client.
//! Both engines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use testing::both_engines;

use chatboard_core::config::UploadQuotaSettings;
use chatboard_core::model::OrgQuotas;
use common::{Engine, Reply, TestApp, TestUser};
use reqwest::StatusCode;
use serde_json::{json, Value};

both_engines!(
    uploads_are_held_to_user_quotas,
    uploads_are_held_to_org_quotas,
    attachments_over_the_org_upload_limit_are_refused,
    uploads_past_their_time_count_no_more,
    an_upload_given_up_counts_until_its_link_can_no_longer_write,
    an_upload_given_up_on_s3_counts_for_the_day,
    an_upload_given_up_counts_a_little_past_its_links_last_write,
);

/// Uploads `bytes` as a text file of `user`'s and returns the ready upload's id.
async fn uploaded(app: &TestApp, user: &TestUser, bytes: &[u8]) -> String {
    let r = presign(app, user, bytes.len(), None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    finish_upload(app, user, &r.body, bytes).await
}

/// `POST /api/uploads/presign/` of a text file of `size` bytes, for `org` if given.
async fn presign(app: &TestApp, user: &TestUser, size: usize, org: Option<i64>) -> Reply {
    let mut body = json!({"filename": "a.txt", "content_type": "text/plain", "size": size});
    if let Some(org) = org {
        body["org"] = json!(org);
    }
    app.post("/api/uploads/presign/", Some(&user.access), body)
        .await
}

/// PUTs `bytes` to a presigned upload and completes it: its id.
async fn finish_upload(app: &TestApp, user: &TestUser, presigned: &Value, bytes: &[u8]) -> String {
    let id = presigned["id"].as_str().unwrap().to_owned();
    let put = app
        .client
        .put(presigned["upload_url"].as_str().unwrap())
        .header("Content-Type", "text/plain")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    let r = app
        .post(
            &format!("/api/uploads/{id}/complete/"),
            Some(&user.access),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    id
}

/// An app with local uploads and `quotas` as the deployment's upload quotas.
async fn app_with_upload_quotas(
    engine: Engine,
    quotas: UploadQuotaSettings,
) -> Option<(TestApp, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let app = TestApp::spawn_with(engine, |c| {
        c.uploads.local_dir = Some(path);
        c.upload_quotas = quotas;
    })
    .await?;
    Some((app, dir))
}

fn assert_refused(r: &Reply, status: StatusCode, code: &str) {
    assert_eq!((r.status, r.code()), (status, code), "{}", r.text);
}

async fn uploads_are_held_to_user_quotas(engine: Engine) {
    let quotas = UploadQuotaSettings {
        user_pending_bytes: 100,
        user_stored_bytes: 150,
        ..UploadQuotaSettings::default()
    };
    let Some((app, _dir)) = app_with_upload_quotas(engine, quotas).await else {
        return;
    };
    let ada = app.user("ada@example.com").await;
    // Unfinished uploads: 60 bytes fit, 60 more do not, and 101 never could.
    let first = presign(&app, &ada, 60, None).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let r = presign(&app, &ada, 60, None).await;
    assert_refused(&r, StatusCode::CONFLICT, "upload_quota_exceeded");
    assert!(
        r.text.contains("100 bytes"),
        "the detail names the quota: {}",
        r.text
    );
    let r = presign(&app, &ada, 101, None).await;
    assert_refused(&r, StatusCode::PAYLOAD_TOO_LARGE, "file_too_large");
    // Finishing one frees the pending quota; everything held counts against the stored one.
    finish_upload(&app, &ada, &first.body, &[b'a'; 60]).await;
    let second = presign(&app, &ada, 60, None).await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.text);
    finish_upload(&app, &ada, &second.body, &[b'b'; 60]).await;
    let r = presign(&app, &ada, 60, None).await;
    assert_refused(&r, StatusCode::CONFLICT, "upload_quota_exceeded");
    // Another user has quotas of their own.
    let bob = app.user("bob@example.com").await;
    assert_eq!(
        presign(&app, &bob, 60, None).await.status,
        StatusCode::CREATED
    );
}

async fn uploads_are_held_to_org_quotas(engine: Engine) {
    let quotas = UploadQuotaSettings {
        org_pending_bytes: 1000,
        org_stored_bytes: 1000,
        ..UploadQuotaSettings::default()
    };
    let Some((app, _dir)) = app_with_upload_quotas(engine, quotas).await else {
        return;
    };
    let admin = app.user("admin@acme.example").await;
    // The Organization's own quotas override the deployment's.
    let limited = OrgQuotas {
        upload_pending_bytes: Some(50),
        upload_stored_bytes: Some(100),
        ..OrgQuotas::default()
    };
    let org = app.managed_org(&admin, "acme", limited, false).await;
    let room = app.room(&admin, org, "general", "PUBLIC").await;
    let r = app.get(&format!("/api/orgs/{org}/"), &admin.access).await;
    assert_eq!(r.body["quotas"]["upload_stored_bytes"], 100);
    // Named at presign: the org's pending and stored quotas apply at once.
    let first = presign(&app, &admin, 40, Some(org)).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let r = presign(&app, &admin, 40, Some(org)).await;
    assert_refused(&r, StatusCode::CONFLICT, "upload_quota_exceeded");
    let first = finish_upload(&app, &admin, &first.body, &[b'a'; 40]).await;
    let second = presign(&app, &admin, 40, Some(org)).await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.text);
    finish_upload(&app, &admin, &second.body, &[b'b'; 40]).await;
    // Not named: the file counts against the org it is first posted in, if it fits there.
    let loose = uploaded(&app, &admin, &[b'c'; 40]).await;
    let messages = format!("/api/rooms/{room}/messages/");
    let r = app
        .post(&messages, Some(&admin.access), json!({"file_id": loose}))
        .await;
    assert_refused(&r, StatusCode::CONFLICT, "upload_quota_exceeded");
    let r = app
        .post(&messages, Some(&admin.access), json!({"file_id": first}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // A file counted against one org cannot be posted in another.
    let other = app.org(&admin, "Elsewhere").await;
    let elsewhere = app.room(&admin, other, "general", "PUBLIC").await;
    let r = app
        .post(
            &format!("/api/rooms/{elsewhere}/messages/"),
            Some(&admin.access),
            json!({"file_id": first}),
        )
        .await;
    assert_refused(&r, StatusCode::BAD_REQUEST, "invalid");
    assert!(r.text.contains("another organization"), "{}", r.text);
    let r = app
        .post(
            &format!("/api/rooms/{elsewhere}/messages/"),
            Some(&admin.access),
            json!({"file_id": loose}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // An outsider cannot name the org; nobody can while it is suspended.
    let eve = app.user("eve@example.com").await;
    assert_refused(
        &presign(&app, &eve, 10, Some(org)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    app.managed_org(&admin, "acme", OrgQuotas::default(), true)
        .await;
    assert_refused(
        &presign(&app, &admin, 10, Some(org)).await,
        StatusCode::FORBIDDEN,
        "org_suspended",
    );
}

async fn attachments_over_the_org_upload_limit_are_refused(engine: Engine) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let Some(app) = TestApp::spawn_with(engine, |c| c.uploads.local_dir = Some(path)).await else {
        return;
    };
    let admin = app.user("admin@acme.example").await;
    let quotas = OrgQuotas {
        upload_max_bytes: Some(10),
        ..OrgQuotas::default()
    };
    let org = app.managed_org(&admin, "acme", quotas, false).await;
    let room = app.room(&admin, org, "general", "PUBLIC").await;
    let big = uploaded(&app, &admin, b"twenty bytes of text").await;
    let small = uploaded(&app, &admin, b"tiny").await;
    let messages = format!("/api/rooms/{room}/messages/");
    let r = app
        .post(&messages, Some(&admin.access), json!({"file_id": big}))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "file_too_large"),
        "{}",
        r.text
    );
    let r = app
        .post(&messages, Some(&admin.access), json!({"file_id": small}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // Presigned for the organization: refused at once, as its post would be (charged to it,
    // it could neither be posted anywhere nor given up).
    assert_refused(
        &presign(&app, &admin, 20, Some(org)).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "file_too_large",
    );
    assert_eq!(
        presign(&app, &admin, 10, Some(org)).await.status,
        StatusCode::CREATED
    );
    // The same file may go to an organization without that limit.
    let other = app.org(&admin, "Elsewhere").await;
    let elsewhere = app.room(&admin, other, "general", "PUBLIC").await;
    let r = app
        .post(
            &format!("/api/rooms/{elsewhere}/messages/"),
            Some(&admin.access),
            json!({"file_id": big}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

/// An upload whose time is up shows as expired, and counts against no quota from then on: it
/// counted until the janitor came to it (every 10 minutes, never without a worker), refusing
/// new uploads with `upload_quota_exceeded` while the old ones were listed as expired.
async fn uploads_past_their_time_count_no_more(engine: Engine) {
    let quotas = UploadQuotaSettings {
        user_stored_bytes: 100,
        org_stored_bytes: 100,
        ..UploadQuotaSettings::default()
    };
    let Some((app, _dir)) = app_with_upload_quotas(engine, quotas).await else {
        return;
    };
    let ada = app.user("ada@example.com").await;
    let org = app.org(&ada, "Files").await;
    let room = app.room(&ada, org, "docs", "PUBLIC").await;
    let old = uploaded(&app, &ada, &[b'a'; 80]).await;
    let messages = format!("/api/rooms/{room}/messages/");
    let r = app
        .post(&messages, Some(&ada.access), json!({"file_id": old}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // Full, for the user and for the org.
    assert_refused(
        &presign(&app, &ada, 80, None).await,
        StatusCode::CONFLICT,
        "upload_quota_exceeded",
    );
    testing::db::execute_sql(
        &app.db_url,
        &format!("UPDATE uploads SET expires_at = '2000-01-01 00:00:00+00:00' WHERE id = '{old}'"),
    )
    .await;
    let seen = app.get(&format!("/api/uploads/{old}/"), &ada.access).await;
    assert_eq!(seen.body["status"], "expired", "{}", seen.text);
    // Its bytes are free again, for the user and for the org, before any janitor.
    let new = uploaded(&app, &ada, &[b'b'; 80]).await;
    let r = app
        .post(&messages, Some(&ada.access), json!({"file_id": new}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

/// An upload its client gives up (a PUT that failed on a flaky link, to be tried again with a
/// new one) cannot be completed, and stops counting once its link can no longer write: each
/// retry reserved its size anew for a day, and after a few the user could upload nothing until
/// the next day. Until then its bytes count (its link still takes a file: freeing them at once
/// let a file in past every quota). A completed upload cannot be given up; another's is not
/// found.
async fn an_upload_given_up_counts_until_its_link_can_no_longer_write(engine: Engine) {
    let quotas = UploadQuotaSettings {
        user_pending_bytes: 100,
        ..UploadQuotaSettings::default()
    };
    let Some((app, _dir)) = app_with_upload_quotas(engine, quotas).await else {
        return;
    };
    let ada = app.user("ada@example.com").await;
    let bob = app.user("bob@example.com").await;
    let failed = presign(&app, &ada, 60, None).await;
    assert_eq!(failed.status, StatusCode::CREATED, "{}", failed.text);
    let id = failed.body["id"].as_str().unwrap().to_owned();
    let path = format!("/api/uploads/{id}/");
    assert_eq!(
        app.delete(&path, &bob.access).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&path, &ada.access).await.status,
        StatusCode::NO_CONTENT
    );
    // Again: nothing changes.
    assert_eq!(
        app.delete(&path, &ada.access).await.status,
        StatusCode::NO_CONTENT
    );
    let shown = app.get(&path, &ada.access).await;
    assert_eq!(shown.body["status"], "expired", "{}", shown.text);
    let r = app
        .post(
            &format!("/api/uploads/{id}/complete/"),
            Some(&ada.access),
            json!({}),
        )
        .await;
    assert_refused(&r, StatusCode::CONFLICT, "upload_expired");
    // Its link may still be writing a file: its bytes still count.
    assert_refused(
        &presign(&app, &ada, 60, None).await,
        StatusCode::CONFLICT,
        "upload_quota_exceeded",
    );
    // Once the link can no longer write, they count no more.
    testing::execute_sql(
        &app.db_url,
        &format!("UPDATE uploads SET expires_at = '2020-01-01T00:00:00Z' WHERE id = '{id}'"),
    )
    .await;
    let retry = presign(&app, &ada, 60, None).await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.text);
    let done = finish_upload(&app, &ada, &retry.body, &[b'a'; 60]).await;
    let r = app
        .delete(&format!("/api/uploads/{done}/"), &ada.access)
        .await;
    assert_refused(&r, StatusCode::CONFLICT, "already_uploaded");
}

/// A local link is good through its expiry's last second, and replicas' clocks differ: an
/// upload given up just after its link's last possible write (its 15 minutes and the hour of
/// grace, ten seconds ago) still counts for a little while, as a file may yet be landing.
async fn an_upload_given_up_counts_a_little_past_its_links_last_write(engine: Engine) {
    let quotas = UploadQuotaSettings {
        user_pending_bytes: 100,
        ..UploadQuotaSettings::default()
    };
    let Some((app, _dir)) = app_with_upload_quotas(engine, quotas).await else {
        return;
    };
    let ada = app.user("ada@example.com").await;
    let failed = presign(&app, &ada, 60, None).await;
    assert_eq!(failed.status, StatusCode::CREATED, "{}", failed.text);
    let id = failed.body["id"].as_str().unwrap().to_owned();
    let writable_until_ten_seconds_ago =
        (chrono::Utc::now() - chrono::Duration::minutes(75) - chrono::Duration::seconds(10))
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false);
    testing::execute_sql(
        &app.db_url,
        &format!(
            "UPDATE uploads SET created_at = '{writable_until_ten_seconds_ago}' WHERE id = '{id}'"
        ),
    )
    .await;
    assert_eq!(
        app.delete(&format!("/api/uploads/{id}/"), &ada.access)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_refused(
        &presign(&app, &ada, 60, None).await,
        StatusCode::CONFLICT,
        "upload_quota_exceeded",
    );
}

/// On S3 a given-up upload counts for the day an unfinished upload is kept: S3 checks a link
/// only when a PUT begins, so one begun in time may land long after. (It was freed after the
/// local store's 75 minutes, which let a slow PUT land uncounted.)
async fn an_upload_given_up_on_s3_counts_for_the_day(engine: Engine) {
    let s3 = testing::s3::S3Server::start().await;
    let settings = s3.settings.clone();
    let Some(app) = TestApp::spawn_with(engine, move |c| {
        c.uploads.s3 = Some(settings);
        c.upload_quotas = UploadQuotaSettings {
            user_pending_bytes: 100,
            ..UploadQuotaSettings::default()
        };
    })
    .await
    else {
        return;
    };
    let ada = app.user("ada@example.com").await;
    let failed = presign(&app, &ada, 60, None).await;
    assert_eq!(failed.status, StatusCode::CREATED, "{}", failed.text);
    let id = failed.body["id"].as_str().unwrap().to_owned();
    // Presigned two hours ago: past the local store's 75 minutes, well within the day.
    let two_hours_ago = (chrono::Utc::now() - chrono::Duration::hours(2))
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false);
    testing::execute_sql(
        &app.db_url,
        &format!("UPDATE uploads SET created_at = '{two_hours_ago}' WHERE id = '{id}'"),
    )
    .await;
    assert_eq!(
        app.delete(&format!("/api/uploads/{id}/"), &ada.access)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_refused(
        &presign(&app, &ada, 60, None).await,
        StatusCode::CONFLICT,
        "upload_quota_exceeded",
    );
}
