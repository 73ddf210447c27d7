//! `/api/uploads/` on local storage (the single node's: files under a directory behind signed
//! URLs this server serves), both engines: presign, the PUT itself, completion checked against
//! what was stored, my-uploads, visibility, attachments on messages and the download redirect.
//! (S3 runs the same API against an S3 server: worker/tests/uploads_s3.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use testing::both_engines;

use common::uploads::{app, complete, download_as, fetch_download, post_file, presign, put};
use common::{Engine, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

both_engines!(
    uploads_work_the_same_on_s3,
    a_file_goes_up_completes_and_comes_back,
    presign_refuses_bad_files,
    completion_checks_what_was_stored,
    uploads_are_private_until_posted,
    file_names_hide_nothing_and_download_as_written,
);

async fn a_file_goes_up_completes_and_comes_back(engine: Engine) {
    let Some((app, _dir)) = app(engine).await else {
        return;
    };
    let ada = app.user("ada@example.com").await;
    let bytes = b"%PDF-1.7 pretend this is a report".to_vec();
    let p = presign(&app, &ada, "Q3 report.pdf", "application/pdf", bytes.len()).await;
    let id = p["id"].as_str().unwrap().to_owned();
    assert_eq!(p["method"], "PUT");
    assert_eq!(p["headers"], json!({"Content-Type": "application/pdf"}));
    assert_eq!(p["expires_in"], 900);
    assert!(
        p["upload_url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/files/uploads/{id}?", app.base)),
        "{p}"
    );

    let early = complete(&app, &ada, &id).await;
    assert_eq!(
        (early.status, early.code()),
        (StatusCode::CONFLICT, "not_uploaded")
    );
    // Not there yet, not gone: its download says so (it said 410 upload_expired).
    let pending = download_as(&app, &ada, &id).await;
    assert_eq!(pending.status(), StatusCode::CONFLICT);
    let code = pending.json::<Value>().await.unwrap()["code"].clone();
    assert_eq!(code, "not_uploaded");
    assert_eq!(
        put(&app, &p, "application/pdf", bytes.clone()).await,
        StatusCode::OK
    );

    let done = complete(&app, &ada, &id).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert_eq!(done.body["status"], "ready");
    assert_eq!(done.body["filename"], "Q3 report.pdf");
    assert_eq!(done.body["size"], bytes.len());
    let uploaded =
        chrono::DateTime::parse_from_rfc3339(done.body["uploaded_at"].as_str().unwrap()).unwrap();
    let expires =
        chrono::DateTime::parse_from_rfc3339(done.body["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!((expires - uploaded).num_days(), 30);
    // Completing again changes nothing.
    let again = complete(&app, &ada, &id).await;
    assert_eq!(
        (again.status, again.body["expires_at"].clone()),
        (StatusCode::OK, done.body["expires_at"].clone())
    );

    let download = fetch_download(&app, &done.body).await;
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(download.headers()["content-type"], "application/pdf");
    assert_eq!(
        download.headers()["content-disposition"],
        "attachment; filename=\"Q3 report.pdf\"; filename*=UTF-8''Q3%20report.pdf"
    );
    assert_eq!(download.bytes().await.unwrap().to_vec(), bytes);

    // A signature that does not match is refused.
    let forged = done.body["download_url"]
        .as_str()
        .unwrap()
        .replace("sig=", "sig=00");
    let refused = app.client.get(forged.as_str()).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    // In the API's error shape, with one of its codes (the schema's enum).
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "permission_denied", "{body}");
    assert_eq!(body["detail"], "bad signature");
    let forged: String = forged.split('?').next().unwrap().to_owned();
    let unsigned = app.client.get(forged).send().await.unwrap();
    assert_eq!(unsigned.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = unsigned.json().await.unwrap();
    assert_eq!(body["code"], "permission_denied", "{body}");

    // Attached to a message: the message carries the file with its stable download link.
    let org = app.org(&ada, "Files").await;
    let room = app.room(&ada, org, "docs", "PUBLIC").await;
    let posted = post_file(&app, &ada, room, &id).await;
    assert_eq!(posted.status, StatusCode::CREATED, "{}", posted.text);
    assert_eq!(posted.body["body"], "");
    let event = app.state.store.outbox_latest(1).await.unwrap().remove(0);
    assert_eq!(event.event_type, "message.created");
    assert_eq!(
        event.data, posted.body,
        "the event carries the message and its file as the API shows them"
    );
    assert_eq!(
        posted.body["file"],
        json!({"id": id, "filename": "Q3 report.pdf", "content_type": "application/pdf",
               "size": bytes.len(), "download_url": format!("/api/uploads/{id}/download/")})
    );
    let listed = app
        .get(&format!("/api/rooms/{room}/messages/"), &ada.access)
        .await;
    assert_eq!(listed.body["results"][0]["file"]["id"], id.as_str());
    // A caption may be given and taken away again, as the file went up without one (an
    // empty body was refused); a message without a file keeps needing its text.
    let message = format!("/api/rooms/{room}/messages/{}/", posted.body["id"]);
    let captioned = app
        .patch(&message, &ada.access, json!({"body": "Q3"}))
        .await;
    assert_eq!(captioned.body["body"], "Q3", "{}", captioned.text);
    let uncaptioned = app
        .patch(&message, &ada.access, json!({"body": "  "}))
        .await;
    assert_eq!(uncaptioned.status, StatusCode::OK, "{}", uncaptioned.text);
    assert_eq!(uncaptioned.body["body"], "");
    assert_eq!(uncaptioned.body["file"]["id"], id.as_str());
    let text = app
        .post(
            &format!("/api/rooms/{room}/messages/"),
            Some(&ada.access),
            json!({"body": "words"}),
        )
        .await;
    let emptied = app
        .patch(
            &format!("/api/rooms/{room}/messages/{}/", text.body["id"]),
            &ada.access,
            json!({"body": ""}),
        )
        .await;
    assert_eq!(emptied.status, StatusCode::BAD_REQUEST, "{}", emptied.text);
    assert!(
        emptied.body["errors"]["body"].is_array(),
        "{}",
        emptied.text
    );
    let redirect = download_as(&app, &ada, &id).await;
    assert_eq!(redirect.status(), StatusCode::TEMPORARY_REDIRECT);
    let location = redirect.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(
        app.client
            .get(location)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec(),
        bytes
    );

    // my-uploads: newest first, paged by id.
    let p2 = presign(&app, &ada, "notes.txt", "text/plain", 3).await;
    let mine = app.get("/api/uploads/my-uploads/", &ada.access).await;
    let ids: Vec<&str> = mine
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![p2["id"].as_str().unwrap(), id.as_str()]);
    assert_eq!(mine.body[0]["status"], "pending");
    assert!(mine.body[0]["download_url"].is_null());
    let older = app
        .get(
            &format!(
                "/api/uploads/my-uploads/?limit=1&before={}",
                p2["id"].as_str().unwrap()
            ),
            &ada.access,
        )
        .await;
    assert_eq!(older.body.as_array().unwrap().len(), 1);
    assert_eq!(older.body[0]["id"], id.as_str());
    // The same cursor spelled otherwise (upper case, braces) pages from the same place (it
    // was compared as text: upper case sorted before every id, braces after).
    let p2_id = p2["id"].as_str().unwrap();
    for spelling in [p2_id.to_uppercase(), format!("{{{p2_id}}}")] {
        let other = app
            .get(
                &format!("/api/uploads/my-uploads/?limit=1&before={spelling}"),
                &ada.access,
            )
            .await;
        assert_eq!(other.body, older.body, "before={spelling}");
    }
    // An upload left pending past its day is the janitor's, whose deletion of the file it
    // would race: completing it is refused.
    let late = presign(&app, &ada, "late.txt", "text/plain", 4).await;
    assert!(put(&app, &late, "text/plain", b"late".to_vec())
        .await
        .is_success());
    let late_id = late["id"].as_str().unwrap();
    testing::execute_sql(
        &app.db_url,
        &format!("UPDATE uploads SET created_at = '2020-01-01T00:00:00Z' WHERE id = '{late_id}'"),
    )
    .await;
    let r = complete(&app, &ada, late_id).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.code(), "upload_expired");
    // A cursor that is no upload id is refused, not read as some place in the list.
    let wrong = app
        .get("/api/uploads/my-uploads/?before=xyz", &ada.access)
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{}", wrong.text);
    assert_eq!(wrong.body["errors"]["before"][0], "Must be an upload id.");
}

/// The same API on an S3-compatible server (s3s-fs): the client PUTs straight to the store with
/// the presigned URL and headers, completion checks the stored object, downloads come from it.
async fn uploads_work_the_same_on_s3(engine: Engine) {
    let s3 = testing::s3::S3Server::start().await;
    let settings = s3.settings.clone();
    let Some(app) = TestApp::spawn_with(engine, |c| c.uploads.s3 = Some(settings)).await else {
        return;
    };
    let ada = app.user("ada@example.com").await;
    let bytes = b"col1,col2\n1,2\n".to_vec();
    let p = presign(&app, &ada, "numbers.csv", "text/csv", bytes.len()).await;
    let id = p["id"].as_str().unwrap();
    let url = p["upload_url"].as_str().unwrap();
    assert!(
        url.starts_with(s3.settings.endpoint.as_deref().unwrap()),
        "{url}"
    );
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let early = complete(&app, &ada, id).await;
    assert_eq!(early.code(), "not_uploaded");
    let stored = put_as_signed(&app, &p, bytes.clone()).await;
    assert!(stored.status().is_success(), "{}", stored.status());
    let done = complete(&app, &ada, id).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    let download = fetch_download(&app, &done.body).await;
    assert!(download.status().is_success());
    assert_eq!(download.bytes().await.unwrap().to_vec(), bytes);

    // The presigned URL still works for minutes, but the stored file cannot be swapped: the
    // store refuses a PUT over an existing object, and what comes back is what was completed.
    let swapped = put_as_signed(&app, &p, b"col1,col2\n6,6\n".to_vec()).await;
    assert_eq!(swapped.status().as_u16(), 412, "a second PUT is refused");
    let again = fetch_download(&app, &done.body).await;
    assert_eq!(again.bytes().await.unwrap().to_vec(), bytes);

    // An object that is not what was declared (put there behind the API's back, straight into
    // the store's files) is refused on completion.
    let p = presign(&app, &ada, "big.csv", "text/csv", 100).await;
    let id = p["id"].as_str().unwrap();
    let object = s3.dir.path().join("uploads").join("uploads").join(id);
    std::fs::create_dir_all(object.parent().unwrap()).unwrap();
    std::fs::write(&object, b"only a few bytes").unwrap();
    let r = complete(&app, &ada, id).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "size_mismatch"),
        "{}",
        r.text
    );
}

/// PUTs `bytes` to a presigned upload with exactly the headers the presign named.
async fn put_as_signed(app: &TestApp, presigned: &Value, bytes: Vec<u8>) -> reqwest::Response {
    let url = presigned["upload_url"].as_str().unwrap();
    let mut request = app.client.put(url).body(bytes);
    for (name, value) in presigned["headers"].as_object().unwrap() {
        request = request.header(name.as_str(), value.as_str().unwrap());
    }
    request.send().await.unwrap()
}

async fn presign_refuses_bad_files(engine: Engine) {
    let Some((app, _dir)) = app(engine).await else {
        return;
    };
    let ada = app.user("ada@example.com").await;
    for (body, status, code) in [
        (
            json!({"filename": "a.png", "content_type": "image/png", "size": 0}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "file_too_large",
        ),
        (
            json!({"filename": "a.png", "content_type": "image/png", "size": 100 * 1024 * 1024 + 1}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "file_too_large",
        ),
        (
            json!({"filename": "a.html", "content_type": "text/html", "size": 10}),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_type",
        ),
        (
            json!({"filename": "a.svg", "content_type": "image/svg+xml", "size": 10}),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_type",
        ),
        (
            json!({"filename": "  ", "content_type": "image/png", "size": 10}),
            StatusCode::BAD_REQUEST,
            "invalid",
        ),
    ] {
        let r = app
            .post("/api/uploads/presign/", Some(&ada.access), body.clone())
            .await;
        assert_eq!((r.status, r.code()), (status, code), "{body}: {}", r.text);
    }
    assert_eq!(
        app.post(
            "/api/uploads/presign/",
            None,
            json!({"filename": "a", "content_type": "image/png", "size": 1})
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
    // Names lose their path and control characters.
    let p = presign(&app, &ada, "../../etc/pass\u{7}wd", "text/plain", 4).await;
    let mine = app.get("/api/uploads/my-uploads/", &ada.access).await;
    assert_eq!(mine.body[0]["id"], p["id"]);
    assert_eq!(mine.body[0]["filename"], "passwd");
}

async fn completion_checks_what_was_stored(engine: Engine) {
    let Some((app, _dir)) = app(engine).await else {
        return;
    };
    let ada = app.user("ada@example.com").await;
    // The PUT itself holds the client to what it declared.
    let p = presign(&app, &ada, "a.txt", "text/plain", 5).await;
    assert_eq!(
        put(&app, &p, "image/png", b"hello".to_vec()).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        put(&app, &p, "text/plain", b"hello world".to_vec()).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // Fewer bytes than declared are refused too, and nothing is stored.
    assert_eq!(
        put(&app, &p, "text/plain", b"hi".to_vec()).await,
        StatusCode::BAD_REQUEST
    );
    let id = p["id"].as_str().unwrap();
    let r = complete(&app, &ada, id).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "not_uploaded"),
        "{}",
        r.text
    );
    // Once stored, the file is never replaced through the same URL.
    assert_eq!(
        put(&app, &p, "text/plain", b"hello".to_vec()).await,
        StatusCode::OK
    );
    assert_eq!(
        put(&app, &p, "text/plain", b"HELLO".to_vec()).await,
        StatusCode::CONFLICT
    );
    // Someone else's upload is not found; a pending one cannot be attached.
    let bob = app.user("bob@example.com").await;
    let r = complete(&app, &bob, id).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let org = app.org(&ada, "Files").await;
    let room = app.room(&ada, org, "docs", "PUBLIC").await;
    let r = app
        .post(
            &format!("/api/rooms/{room}/messages/"),
            Some(&ada.access),
            json!({"file_id": id, "body": "see"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.body["errors"]["file_id"].is_array());
}

async fn uploads_are_private_until_posted(engine: Engine) {
    let Some((app, _dir)) = app(engine).await else {
        return;
    };
    let ada = app.user("ada@example.com").await;
    let bob = app.user("bob@example.com").await;
    let eve = app.user("eve@example.com").await;
    let org = app.org(&ada, "Files").await;
    app.join(org, &ada, &bob, "MEMBER").await;
    let room = app.room(&ada, org, "docs", "PUBLIC").await;
    let p = presign(&app, &ada, "pic.png", "image/png", 4).await;
    let id = p["id"].as_str().unwrap();
    assert_eq!(
        put(&app, &p, "image/png", b"\x89PNG".to_vec()).await,
        StatusCode::OK
    );
    complete(&app, &ada, id).await;
    assert_eq!(
        app.get(&format!("/api/uploads/{id}/"), &bob.access)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Bob cannot attach Ada's file either.
    let r = post_file(&app, &bob, room, id).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    let posted = app
        .post(
            &format!("/api/rooms/{room}/messages/"),
            Some(&ada.access),
            json!({"file_id": id, "body": "look"}),
        )
        .await;
    assert_eq!(posted.status, StatusCode::CREATED);
    let seen = app.get(&format!("/api/uploads/{id}/"), &bob.access).await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.text);
    assert!(seen.body["download_url"]
        .as_str()
        .unwrap()
        .contains("/files/uploads/"));
    // Not in the room: still nothing.
    assert_eq!(
        app.get(&format!("/api/uploads/{id}/"), &eve.access)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = download_as(&app, &eve, id).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Deleting the message takes the file off it.
    let msg = posted.body["id"].as_i64().unwrap();
    app.delete(&format!("/api/rooms/{room}/messages/{msg}/"), &ada.access)
        .await;
    let listed = app
        .get(&format!("/api/rooms/{room}/messages/"), &bob.access)
        .await;
    assert!(listed.body["results"][0]["file"].is_null());
}

/// A name's invisible characters are dropped: `invoice\u{202E}fdp.exe` showed in the room as
/// "invoiceexe.pdf" (the override reverses what follows it) and was saved as `invoice_fdp.exe`.
/// A name in another script downloads as written (it was saved as `__.pdf`), on local storage
/// and on S3.
async fn file_names_hide_nothing_and_download_as_written(engine: Engine) {
    let s3 = testing::s3::S3Server::start().await;
    let settings = s3.settings.clone();
    let Some((local, _dir)) = app(engine).await else {
        return;
    };
    let Some(on_s3) = TestApp::spawn_with(engine, |c| c.uploads.s3 = Some(settings)).await else {
        return;
    };
    for (app, signed) in [(&local, false), (&on_s3, true)] {
        let ada = app.user("ada@example.com").await;
        let bytes = b"%PDF-1.7".to_vec();
        for (name, stored, disposition) in [
            (
                "invoice\u{202E}fdp.exe",
                "invoicefdp.exe",
                "attachment; filename=\"invoicefdp.exe\"; filename*=UTF-8''invoicefdp.exe",
            ),
            (
                "\u{5831}\u{544A}.pdf",
                "\u{5831}\u{544A}.pdf",
                "attachment; filename=\"__.pdf\"; filename*=UTF-8''%E5%A0%B1%E5%91%8A.pdf",
            ),
        ] {
            let p = presign(app, &ada, name, "application/pdf", bytes.len()).await;
            let id = p["id"].as_str().unwrap().to_owned();
            let status = if signed {
                put_as_signed(app, &p, bytes.clone()).await.status()
            } else {
                put(app, &p, "application/pdf", bytes.clone()).await
            };
            assert!(status.is_success(), "{status}");
            let done = complete(app, &ada, &id).await;
            assert_eq!(done.body["filename"], stored, "{}", done.text);
            let download = fetch_download(app, &done.body).await;
            assert!(download.status().is_success());
            assert_eq!(download.headers()["content-disposition"], disposition);
        }
    }
}
