//! Uploads racing or failing at the edges, on local storage, both engines: two PUTs on one
//! signed URL, a post refused at its commit, an upload whose time is up, one file posted into
//! two organizations at once.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use testing::both_engines;

use common::uploads::{app, complete, download_as, post_file, presign, ready_text_upload};
use common::Engine;
use reqwest::StatusCode;
use serde_json::json;

both_engines!(
    a_stored_upload_is_never_replaced,
    a_post_refused_at_its_commit_leaves_its_file_unclaimed,
    an_upload_is_expired_once_its_time_is_up,
);

/// Starts a PUT of `first` on `url` over a raw connection that declares `total` bytes, and
/// leaves the rest of the body to the caller.
async fn start_put(
    url: &str,
    content_type: &str,
    total: usize,
    first: &[u8],
) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let url = url::Url::parse(url).unwrap();
    let addr = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let target = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let head = format!(
        "PUT {target} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n",
        url.host_str().unwrap()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(first).await.unwrap();
    stream
}

/// Sends the rest of a started PUT and reads the answer's status.
async fn finish_put(mut stream: tokio::net::TcpStream, rest: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(rest).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A whole PDF PUT of `body` on `url` that the server may refuse before reading it: the
/// answer's status, the connection's errors (a refusal closes it) tolerated.
async fn refused_put(url: &str, body: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let url = url::Url::parse(url).unwrap();
    let addr = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT {}?{} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/pdf\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        url.path(),
        url.query().unwrap_or_default(),
        url.host_str().unwrap(),
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Files under `dir` whose name holds `part`: the uploads being written.
fn files_being_written(dir: &std::path::Path) -> usize {
    let mut count = 0;
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.to_string_lossy().contains(".part-") {
                count += 1;
            }
        }
    }
    count
}

/// Two PUTs on one signed URL at once: the second is refused (409) while the first is being
/// written, the first stores its bytes, and no temporary file is left. Both once answered 200
/// and the second body replaced the first; later both were written, each to a file of its own,
/// and one won. (Two replicas sharing the volume: `objects/tests/local.rs`.)
async fn a_stored_upload_is_never_replaced(engine: Engine) {
    let Some((app, dir)) = app(engine).await else {
        return;
    };
    let ada = app.user("ada@example.com").await;
    let p = presign(&app, &ada, "race.pdf", "application/pdf", 8).await;
    let url = p["upload_url"].as_str().unwrap();
    let first = start_put(url, "application/pdf", 8, b"AAAA").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while files_being_written(dir.path()) < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the first PUT under way"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        refused_put(url, b"BBBBbbbb").await,
        409,
        "refused while the first writes"
    );
    assert_eq!(finish_put(first, b"aaaa").await, 200);
    let winner: &[u8] = b"AAAAaaaa";

    let id = p["id"].as_str().unwrap();
    let done = complete(&app, &ada, id).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    let stored = app
        .client
        .get(done.body["download_url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(stored.as_ref(), winner);
    assert_eq!(
        files_being_written(dir.path()),
        0,
        "no temporary file is left"
    );
}

/// A post refused at its commit (after its checks passed and its file was charged to the
/// organization) gives the charge back: the file can then be posted in another organization.
/// It used to stay counted against the first one, and posting it elsewhere was refused.
async fn a_post_refused_at_its_commit_leaves_its_file_unclaimed(engine: Engine) {
    let Some((app, _dir)) = app(engine).await else {
        return;
    };
    let ada = app.user("ada@example.com").await;
    let first = app.org(&ada, "First").await;
    let second = app.org(&ada, "Second").await;
    let refused_room = app.room(&ada, first, "refused", "PUBLIC").await;
    let other_room = app.room(&ada, second, "other", "PUBLIC").await;
    let id = ready_text_upload(&app, &ada, "plan.txt", b"plan").await;
    let id = id.as_str();

    // The commit fails as a lost seat or a suspension would, after every check has passed.
    let (refuse, allow) = match app.engine {
        Engine::Postgres => (
            format!(
                "ALTER TABLE messages ADD CONSTRAINT not_in_refused \
                 CHECK (room_id <> {refused_room}) NOT VALID"
            ),
            "ALTER TABLE messages DROP CONSTRAINT not_in_refused".to_owned(),
        ),
        Engine::Sqlite => (
            format!(
                "CREATE TRIGGER not_in_refused BEFORE INSERT ON messages \
                 WHEN new.room_id = {refused_room} BEGIN SELECT RAISE(ABORT, 'refused'); END"
            ),
            "DROP TRIGGER not_in_refused".to_owned(),
        ),
    };
    testing::db::execute_sql(&app.db_url, &refuse).await;
    let refused = app
        .post(
            &format!("/api/rooms/{refused_room}/messages/"),
            Some(&ada.access),
            json!({"file_id": id}),
        )
        .await;
    assert!(
        refused.status.is_server_error(),
        "{} {}",
        refused.status,
        refused.text
    );
    testing::db::execute_sql(&app.db_url, &allow).await;

    let elsewhere = app
        .post(
            &format!("/api/rooms/{other_room}/messages/"),
            Some(&ada.access),
            json!({"file_id": id}),
        )
        .await;
    assert_eq!(elsewhere.status, StatusCode::CREATED, "{}", elsewhere.text);
    assert_eq!(elsewhere.body["file"]["id"], id);
}

/// An upload whose time is up is expired at once: no download link, 410 on the download, and
/// it cannot be attached any more. (It stayed downloadable and attachable until the worker's
/// janitor came by, every ten minutes, or never without a worker.)
async fn an_upload_is_expired_once_its_time_is_up(engine: Engine) {
    let Some((app, _dir)) = app(engine).await else {
        return;
    };
    let ada = app.user("ada@example.com").await;
    let org = app.org(&ada, "Files").await;
    let room = app.room(&ada, org, "docs", "PUBLIC").await;
    let id = ready_text_upload(&app, &ada, "old.txt", b"old").await;
    let id = id.as_str();

    testing::db::execute_sql(
        &app.db_url,
        &format!("UPDATE uploads SET expires_at = '2000-01-01 00:00:00+00:00' WHERE id = '{id}'"),
    )
    .await;
    let seen = app.get(&format!("/api/uploads/{id}/"), &ada.access).await;
    assert_eq!(seen.body["status"], "expired", "{}", seen.text);
    assert!(seen.body["download_url"].is_null(), "{}", seen.text);
    let gone = download_as(&app, &ada, id).await;
    assert_eq!(gone.status(), StatusCode::GONE);
    let posted = post_file(&app, &ada, room, id).await;
    assert_eq!(posted.status, StatusCode::BAD_REQUEST, "{}", posted.text);
}

/// PostgreSQL: the same file posted at once into rooms of two organizations. Each post locks
/// its own organization to charge the file, so both read it uncharged; the second to write
/// finds it charged to the first and is refused. (It was told "charged" all the same: the file
/// went into both organizations' messages, counted against one.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_posted_into_two_organizations_at_once_goes_into_one() {
    let Some((app, _dir)) = app(Engine::Postgres).await else {
        return;
    };
    let ada = app.user("ada@example.com").await;
    let first = app.org(&ada, "First").await;
    let second = app.org(&ada, "Second").await;
    let one = app.room(&ada, first, "one", "PUBLIC").await;
    let two = app.room(&ada, second, "two", "PUBLIC").await;
    let id = ready_text_upload(&app, &ada, "twice.txt", b"twice").await;

    // The upload's row is held, so both charges read it uncharged and wait to write it.
    let held = testing::HeldLocks::take(
        &app.db_url,
        &format!("SELECT id FROM uploads WHERE id = '{id}' FOR UPDATE"),
    )
    .await;
    let post = |room: i64| {
        let path = format!("/api/rooms/{room}/messages/");
        let body = json!({"file_id": id});
        let (app, ada) = (&app, &ada);
        async move { app.post(&path, Some(&ada.access), body).await }
    };
    let both = futures::future::join(post(one), post(two));
    tokio::pin!(both);
    let waiting = async {
        while testing::waiting_for_locks(&app.db_url).await < 2 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        answers = &mut both => panic!("answered while the upload is held: {} {}", answers.0.text, answers.1.text),
        () = waiting => {}
    }
    held.release().await;
    let (a, b) = both.await;
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::CREATED, StatusCode::BAD_REQUEST],
        "{} / {}",
        a.text,
        b.text
    );
    let refused = if a.status == StatusCode::BAD_REQUEST {
        &a
    } else {
        &b
    };
    assert!(
        refused.text.contains("another organization"),
        "{}",
        refused.text
    );
}
