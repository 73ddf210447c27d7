//! Uploads on local storage, as the upload suites drive them: presign, PUT, complete, post.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{Engine, Reply, TestApp, TestUser};

/// A server of `engine` keeping files under a directory of its own (kept while the `TempDir` is).
pub async fn app(engine: Engine) -> Option<(TestApp, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let app = TestApp::spawn_with(engine, |c| c.uploads.local_dir = Some(path)).await?;
    Some((app, dir))
}

/// `POST /api/uploads/presign/` as `user`, which must succeed: its body.
pub async fn presign(app: &TestApp, user: &TestUser, name: &str, ct: &str, size: usize) -> Value {
    let r = app
        .post(
            "/api/uploads/presign/",
            Some(&user.access),
            json!({"filename": name, "content_type": ct, "size": size}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body
}

/// PUTs `bytes` on the presigned URL: the answer's status.
pub async fn put(
    app: &TestApp,
    presigned: &Value,
    content_type: &str,
    bytes: Vec<u8>,
) -> StatusCode {
    app.client
        .put(presigned["upload_url"].as_str().unwrap())
        .header("Content-Type", content_type)
        .body(bytes)
        .send()
        .await
        .unwrap()
        .status()
}

/// `POST /api/uploads/{id}/complete/` as `user`: the answer, whatever it is.
pub async fn complete(app: &TestApp, user: &TestUser, id: &str) -> Reply {
    app.post(
        &format!("/api/uploads/{id}/complete/"),
        Some(&user.access),
        json!({}),
    )
    .await
}

/// A completed upload of `user`'s holding `bytes` as `name` (text/plain); its id.
pub async fn ready_text_upload(app: &TestApp, user: &TestUser, name: &str, bytes: &[u8]) -> String {
    let p = presign(app, user, name, "text/plain", bytes.len()).await;
    let id = p["id"].as_str().unwrap().to_owned();
    assert_eq!(
        put(app, &p, "text/plain", bytes.to_vec()).await,
        StatusCode::OK
    );
    let done = complete(app, user, &id).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    id
}

/// Posts upload `id` into `room` as `user`, as a message of its own.
pub async fn post_file(app: &TestApp, user: &TestUser, room: i64, id: &str) -> Reply {
    app.post(
        &format!("/api/rooms/{room}/messages/"),
        Some(&user.access),
        json!({"file_id": id}),
    )
    .await
}

/// `GET /api/uploads/{id}/download/` as `user`, redirects not followed.
pub async fn download_as(app: &TestApp, user: &TestUser, id: &str) -> reqwest::Response {
    app.client
        .get(format!("{}/api/uploads/{id}/download/", app.base))
        .bearer_auth(&user.access)
        .send()
        .await
        .unwrap()
}

/// GETs an upload view's `download_url` (a signed link straight to the file).
pub async fn fetch_download(app: &TestApp, upload: &Value) -> reqwest::Response {
    app.client
        .get(upload["download_url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
}
