//! The upload janitor on local storage, both engines: files of uploads past their retention are
//! deleted and the uploads marked expired; uploads never completed within a day are removed with
//! their files; everything else is left alone.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::sync::Arc;

use chatboard_core::error_code::ErrorCode;
use chatboard_core::model::UploadStatus;
use chatboard_store::{NewUpload, StoreError};
use chrono::{Duration, Utc};
use common::setup;
use objects::local::LocalObjects;
use objects::ObjectStore;
use testing::{TestDb, TestEngine};
use worker::service::WorkerMetrics;
use worker::uploads::{Swept, UploadJanitor};

async fn expired_and_abandoned_uploads_are_swept(engine: TestEngine) {
    let Some(Local {
        _db,
        s,
        dir,
        objects,
    }) = local(engine).await
    else {
        return;
    };
    let now = Utc::now();
    // (name, presigned how long ago, completed (when, expires), has a file)
    let cases = [
        ("abandoned", Duration::hours(25), None, true),
        ("pending", Duration::hours(1), None, false),
        (
            "expired",
            Duration::days(31),
            Some((now - Duration::days(31), now - Duration::hours(1))),
            true,
        ),
        (
            "kept",
            Duration::days(2),
            Some((now - Duration::days(2), now + Duration::days(28))),
            true,
        ),
    ];
    let mut ids = Vec::new();
    for (name, age, completed, file) in cases {
        let (id, key) = presigned(&s, name, now - age).await;
        if let Some((at, expires)) = completed {
            s.store.complete_upload(&id, at, expires).await.unwrap();
        }
        if file {
            std::fs::create_dir_all(dir.path().join("uploads")).unwrap();
            std::fs::write(dir.path().join(&key), b"data").unwrap();
            assert!(objects.head(&key).await.unwrap().is_some());
        }
        ids.push((id, key));
    }
    // Given up by their client, each with a file put for it and counted until its link could
    // no longer write (75 minutes after its presign): the one presigned an hour ago is kept
    // until then, the one presigned two hours ago is swept like an abandoned one.
    let mut given_up = Vec::new();
    for (name, age) in [("given-up-lately", 1), ("given-up-long-ago", 2)] {
        let presigned_at = now - Duration::hours(age);
        let (id, key) = presigned(&s, name, presigned_at).await;
        std::fs::write(dir.path().join(&key), b"data").unwrap();
        let counts_until = presigned_at + Duration::minutes(75);
        assert!(s
            .store
            .cancel_upload(&id, s.author, counts_until)
            .await
            .unwrap());
        given_up.push((id, key));
    }
    let janitor = janitor(&s, objects.clone());
    assert_eq!(
        janitor.sweep().await.unwrap(),
        Swept {
            expired: 1,
            abandoned: 2
        }
    );
    let [(lately, lately_key), (long_ago, long_ago_key)] = &given_up[..] else {
        unreachable!()
    };
    assert_eq!(
        s.store.upload(lately).await.unwrap().unwrap().status,
        UploadStatus::Expired
    );
    assert!(objects.head(lately_key).await.unwrap().is_some());
    assert!(s.store.upload(long_ago).await.unwrap().is_none());
    assert!(objects.head(long_ago_key).await.unwrap().is_none());

    let [(abandoned, abandoned_key), (pending, _), (expired, expired_key), (kept, kept_key)] =
        &ids[..]
    else {
        unreachable!()
    };
    assert!(s.store.upload(abandoned).await.unwrap().is_none());
    assert!(objects.head(abandoned_key).await.unwrap().is_none());
    assert_eq!(
        s.store.upload(pending).await.unwrap().unwrap().status,
        UploadStatus::Pending
    );
    assert_eq!(
        s.store.upload(expired).await.unwrap().unwrap().status,
        UploadStatus::Expired
    );
    assert!(objects.head(expired_key).await.unwrap().is_none());
    assert_eq!(
        s.store.upload(kept).await.unwrap().unwrap().status,
        UploadStatus::Ready
    );
    assert!(objects.head(kept_key).await.unwrap().is_some());
    // Nothing left to do.
    assert_eq!(janitor.sweep().await.unwrap(), Swept::default());
}

/// The janitor gives a stale upload up before deleting its file: completing it afterwards is
/// refused even by a process whose clock says it is still young (it used to turn ready with
/// its file gone), and a file that could not be deleted is deleted at a later sweep.
async fn an_abandoned_upload_stays_abandoned(engine: TestEngine) {
    let Some(Local {
        _db,
        s,
        dir,
        objects,
    }) = local(engine).await
    else {
        return;
    };
    let presigned_at = Utc::now() - Duration::hours(25);
    let (id, key) = presigned(&s, "stale", presigned_at).await;
    // Expired from the moment it can no longer be completed, before any sweep (it showed
    // pending until the janitor came, and its download said 409 not_uploaded).
    assert_eq!(
        s.store.upload(&id).await.unwrap().unwrap().status,
        UploadStatus::Expired
    );
    // A directory where the file would be: deleting it fails.
    std::fs::create_dir_all(dir.path().join(&key).join("stuck")).unwrap();
    let janitor = janitor(&s, objects.clone());
    assert_eq!(janitor.sweep().await.unwrap(), Swept::default());
    assert_eq!(
        s.store.upload(&id).await.unwrap().unwrap().status,
        UploadStatus::Expired
    );
    // An API process whose clock runs two hours behind the worker's.
    let lagging = presigned_at + Duration::hours(23);
    assert!(matches!(
        s.store
            .complete_upload(&id, lagging, lagging + Duration::days(30))
            .await,
        Err(StoreError::Conflict(ErrorCode::UploadExpired))
    ));
    // The file can go now: the next sweep deletes it and forgets the upload.
    std::fs::remove_dir_all(dir.path().join(&key)).unwrap();
    std::fs::write(dir.path().join(&key), b"data").unwrap();
    assert_eq!(
        janitor.sweep().await.unwrap(),
        Swept {
            expired: 0,
            abandoned: 1
        }
    );
    assert!(s.store.upload(&id).await.unwrap().is_none());
    assert!(objects.head(&key).await.unwrap().is_none());
}

/// Uploads whose files cannot be deleted (a bucket policy refusing deletes, files restored as
/// another user) come first in every page of the janitor's. A page of them (200) stopped every
/// sweep there, and nothing behind them was deleted again, expired files kept and quotas full.
/// The sweep walks on past them.
async fn undeletable_files_hold_nothing_up(engine: TestEngine) {
    let Some(Local {
        _db,
        s,
        dir,
        objects,
    }) = local(engine).await
    else {
        return;
    };
    let now = Utc::now();
    let stuck = 200;
    let (mut last_expired, mut last_abandoned) = (None, None);
    for i in 0..=stuck {
        // Oldest first: the stuck ones expired, or were given up, before the last one.
        let early = Duration::minutes(i64::from(stuck - i) + 1);
        let (expired, expired_key) =
            presigned(&s, &format!("expired-{i:03}"), now - Duration::days(31)).await;
        s.store
            .complete_upload(&expired, now - Duration::days(31), now - early)
            .await
            .unwrap();
        let (abandoned, abandoned_key) = presigned(
            &s,
            &format!("abandoned-{i:03}"),
            now - Duration::hours(25) - early,
        )
        .await;
        for key in [&expired_key, &abandoned_key] {
            if i < stuck {
                // A directory where the file would be: deleting it fails.
                std::fs::create_dir_all(dir.path().join(key).join("stuck")).unwrap();
            } else {
                std::fs::write(dir.path().join(key), b"data").unwrap();
            }
        }
        (last_expired, last_abandoned) = (Some(expired), Some(abandoned));
    }
    let janitor = janitor(&s, objects.clone());
    assert_eq!(
        janitor.sweep().await.unwrap(),
        Swept {
            expired: 1,
            abandoned: 1
        }
    );
    let (last_expired, last_abandoned) = (last_expired.unwrap(), last_abandoned.unwrap());
    assert_eq!(
        s.store.upload(&last_expired).await.unwrap().unwrap().status,
        UploadStatus::Expired
    );
    assert!(s.store.upload(&last_abandoned).await.unwrap().is_none());
}

/// A sweep through a backlog ends after the batch in hand once the worker is stopping (it
/// used to work through the whole backlog, keeping a shutdown waiting past a pod's grace).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_ends_between_batches_when_stopping() {
    let Some(Local {
        _db, s, objects, ..
    }) = local(TestEngine::Sqlite).await
    else {
        return;
    };
    let now = Utc::now();
    for i in 0..201 {
        let (id, _) = presigned(&s, &format!("due-{i:03}"), now - Duration::days(31)).await;
        s.store
            .complete_upload(&id, now - Duration::days(31), now - Duration::hours(1))
            .await
            .unwrap();
    }
    let janitor = janitor(&s, objects);
    let stopping = tokio::sync::watch::channel(true).1;
    assert_eq!(
        janitor.sweep_until(&stopping).await.unwrap(),
        Swept {
            expired: 200,
            abandoned: 0
        }
    );
    // The next sweep finishes the job.
    assert_eq!(janitor.sweep().await.unwrap().expired, 1);
}

/// Local storage: the temporary files of a write cut off by a crash (written aside, then
/// linked into place) were never removed by anything. A sweep removes those an hour old and
/// leaves a write in progress alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_of_writes_cut_off_are_removed() {
    let Some(Local {
        _db,
        s,
        dir,
        objects,
    }) = local(TestEngine::Sqlite).await
    else {
        return;
    };
    let uploads = dir.path().join("uploads");
    std::fs::create_dir_all(&uploads).unwrap();
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    let name = |n: &str| uploads.join(n);
    for old in [
        "0190-a.part-00000000000000a1",
        "0190-a.meta-part-00000000000000a1",
    ] {
        let file = std::fs::File::create(name(old)).unwrap();
        file.set_modified(two_hours_ago).unwrap();
    }
    // A write in progress, and a stored file as old as the leftovers.
    std::fs::write(name("0190-b.part-00000000000000b2"), b"half").unwrap();
    let stored = std::fs::File::create(name("0190-c")).unwrap();
    stored.set_modified(two_hours_ago).unwrap();
    let janitor = janitor(&s, objects);
    janitor.sweep().await.unwrap();
    let mut left: Vec<String> = std::fs::read_dir(&uploads)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["0190-b.part-00000000000000b2", "0190-c"]);
}

testing::both_engines!(
    expired_and_abandoned_uploads_are_swept,
    an_abandoned_upload_stays_abandoned,
    undeletable_files_hold_nothing_up,
);

/// A database with the worker's setup, and local storage in a directory of its own.
struct Local {
    _db: TestDb,
    s: common::Setup,
    dir: tempfile::TempDir,
    objects: Arc<LocalObjects>,
}

async fn local(engine: TestEngine) -> Option<Local> {
    let (db, url) = TestDb::create(engine).await?;
    let s = setup(&url).await;
    let dir = tempfile::tempdir().unwrap();
    let objects = Arc::new(LocalObjects::new(dir.path(), b"k"));
    Some(Local {
        _db: db,
        s,
        dir,
        objects,
    })
}

/// The janitor of the set-up's uploads, kept in `objects`.
fn janitor(s: &common::Setup, objects: Arc<dyn ObjectStore>) -> UploadJanitor {
    UploadJanitor::new(
        s.store.clone(),
        objects,
        Arc::new(WorkerMetrics::new().unwrap()),
    )
}

/// An upload `name` of the set-up's author, presigned `at`: its id and object key.
async fn presigned(s: &common::Setup, name: &str, at: chrono::DateTime<Utc>) -> (String, String) {
    let id = uuid_like(name);
    let key = format!("uploads/{id}");
    s.store
        .create_upload(
            NewUpload {
                id: id.clone(),
                owner_id: s.author,
                filename: format!("{name}.txt"),
                content_type: "text/plain".into(),
                size: 4,
                object_key: key.clone(),
                org_id: None,
            },
            &Default::default(),
            at,
        )
        .await
        .unwrap()
        .unwrap();
    (id, key)
}

/// A stable, sortable id per case.
fn uuid_like(name: &str) -> String {
    format!("0190-{name}")
}

/// The janitor deletes from S3 (s3s-fs) as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_files_are_deleted_from_s3() {
    let Some((_db, url)) = TestDb::create(TestEngine::Sqlite).await else {
        return;
    };
    let s = setup(&url).await;
    let server = testing::s3::S3Server::start().await;
    let s3 = Arc::new(objects::s3::S3Objects::new(&server.settings));
    let now = Utc::now();
    let key = "uploads/0190-s3".to_owned();
    let put = s3
        .presign_put(&key, "text/plain", 4, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    let mut request = reqwest::Client::new().put(&put.url).body(b"data".to_vec());
    for (name, value) in &put.headers {
        request = request.header(name, value);
    }
    assert!(request.send().await.unwrap().status().is_success());
    s.store
        .create_upload(
            NewUpload {
                id: "0190-s3".into(),
                owner_id: s.author,
                filename: "s3.txt".into(),
                content_type: "text/plain".into(),
                size: 4,
                object_key: key.clone(),
                org_id: None,
            },
            &Default::default(),
            now - Duration::days(31),
        )
        .await
        .unwrap()
        .unwrap();
    s.store
        .complete_upload(
            "0190-s3",
            now - Duration::days(31),
            now - Duration::minutes(1),
        )
        .await
        .unwrap();
    let janitor = janitor(&s, s3.clone());
    assert_eq!(
        janitor.sweep().await.unwrap(),
        Swept {
            expired: 1,
            abandoned: 0
        }
    );
    assert!(s3.head(&key).await.unwrap().is_none());
    assert_eq!(
        s.store.upload("0190-s3").await.unwrap().unwrap().status,
        UploadStatus::Expired
    );
}
