//! The `api-server` binary: configuration errors, `migrate`, and serving on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::process::Command;

use testing::process::Service;

use common::{Engine, TestDb};

const SECRET: &str = "0123456789abcdef0123456789abcdef-binary";

fn bare_command() -> Command {
    testing::process::bare_command(env!("CARGO_BIN_EXE_api-server"), &std::env::temp_dir())
}

#[test]
fn required_settings_are_named_when_missing_or_invalid() {
    let cases: [(&[(&str, &str)], &str); 3] = [
        (&[("CHATBOARD_JWT_SECRET", SECRET)], "DATABASE_URL"),
        (
            &[("DATABASE_URL", "postgres://postgres@127.0.0.1/x")],
            "CHATBOARD_JWT_SECRET",
        ),
        (
            &[
                ("DATABASE_URL", "postgres://postgres@127.0.0.1/x"),
                ("CHATBOARD_JWT_SECRET", "short"),
            ],
            "CHATBOARD_JWT_SECRET",
        ),
    ];
    for (vars, named) in cases {
        let out = bare_command().envs(vars.iter().copied()).output().unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(named), "{named}: {stderr}");
    }
}

#[tokio::test]
async fn migrates_and_serves_on_postgres() {
    let Some((_db, url)) = TestDb::create(Engine::Postgres).await else {
        return;
    };
    // `migrate` needs only the database: the chart's migration Job runs before NATS may be up.
    migrate(&url, &[("NATS_URL", "nats://127.0.0.1:1")]);
    serve_until_ready_then_stop(&url).await;
}

#[tokio::test]
async fn an_older_release_migrates_and_serves_on_a_schema_a_newer_one_migrated() {
    let Some((_db, url)) = TestDb::create(Engine::Postgres).await else {
        return;
    };
    migrate(&url, &[]);
    // What a later release leaves behind: a migration this binary does not know. A rolling
    // upgrade or a rollback starts this binary on such a schema.
    testing::execute_sql(
        &url,
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990101000000, 'from a newer release', TRUE, '\\x00', 0)",
    )
    .await;
    migrate(&url, &[]);
    serve_until_ready_then_stop(&url).await;
}

/// While another process holds the migration lock (the migration Job of a newer release, in
/// the middle of a long migration), a pod of this release that starts (rescheduled, or scaled
/// up) on a schema it needs nothing more of serves at once instead of waiting for the lock.
#[tokio::test]
async fn a_migrated_schema_serves_while_another_holds_the_migration_lock() {
    let Some((_db, url)) = TestDb::create(Engine::Postgres).await else {
        return;
    };
    migrate(&url, &[]);
    let mut holder = testing::SqlSession::open(&url).await;
    holder
        .execute(&format!(
            "SELECT pg_advisory_lock({})",
            migration_lock_id(&url)
        ))
        .await;
    serve_until_ready_then_stop(&url).await;
    drop(holder);
}

/// A log line written while a request is handled names the request's id (and its route),
/// so the cause of a failed request can be found from the `X-Request-Id` its client saw.
#[tokio::test]
async fn log_lines_carry_their_requests_id() {
    let Some((_db, url)) = TestDb::create(Engine::Postgres).await else {
        return;
    };
    migrate(&url, &[]);
    let mut cmd = bare_command();
    cmd.env("DATABASE_URL", &url)
        .env("CHATBOARD_JWT_SECRET", SECRET)
        .env("CHATBOARD_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "info");
    let mut server = Service::start(cmd);
    let base = server.wait_for_address("its address");
    let client = reqwest::Client::new();
    let account = serde_json::json!({"email": "lea@example.com", "password": "password123"});
    let r = client
        .post(format!("{base}/auth/register/"))
        .json(&account)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let tokens: serde_json::Value = client
        .post(format!("{base}/auth/token/"))
        .json(&account)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = client
        .post(format!("{base}/api/orgs/"))
        .bearer_auth(tokens["access"].as_str().unwrap())
        .header("x-request-id", "req-log-lines-1")
        .json(&serde_json::json!({"name": "Logged"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let line = server.wait_for("the organization's creation", |l| {
        l.contains("organization created")
    });
    server.stop();
    assert!(line.contains("req-log-lines-1"), "{line}");
}

/// The advisory lock sqlx's migrations take on PostgreSQL: a multiple of the CRC-32 of the
/// database's name.
fn migration_lock_id(url: &str) -> i64 {
    let name = url
        .rsplit('/')
        .next()
        .and_then(|tail| tail.split('?').next())
        .unwrap();
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    0x3d32_ad9e * i64::from(crc.checksum(name.as_bytes()))
}

/// Runs `api-server migrate` on the database and asserts it succeeds.
fn migrate(url: &str, extra_env: &[(&str, &str)]) {
    // Only what the chart's migration Job sets: the database URL, no signing key.
    let out = bare_command()
        .arg("migrate")
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "info")
        .envs(extra_env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts `api-server`, waits until `/health/ready` answers 200, stops it with SIGTERM and
/// asserts a clean exit.
async fn serve_until_ready_then_stop(url: &str) {
    let mut cmd = bare_command();
    cmd.env("DATABASE_URL", url)
        .env("CHATBOARD_JWT_SECRET", SECRET)
        .env("CHATBOARD_ADDR", "127.0.0.1:0")
        .env("CHATBOARD_HTTP_HEADER_TIMEOUT_MS", "300");
    let mut server = Service::start(cmd);
    let base = server.wait_for_address("its address");
    testing::slow_client::assert_half_a_head_is_hung_up_on(&base).await;
    let r = reqwest::get(format!("{base}/health/ready")).await.unwrap();
    let status = r.status();
    let body = r.text().await.unwrap();
    let exit = server.stop();
    assert_eq!(status, 200, "{body}");
    assert!(exit.success(), "graceful shutdown exits 0, got {exit}");
}
