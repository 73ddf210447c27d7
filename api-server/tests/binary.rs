//! The `api-server` binary: configuration errors, `migrate`, and serving on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Engine, TestDb};

const SECRET: &str = "0123456789abcdef0123456789abcdef-binary";

fn bare_command() -> Command {
    let dir = std::env::temp_dir();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_api-server"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(dir);
    cmd
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
    chatboard_core::testing::execute_sql(
        &url,
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990101000000, 'from a newer release', TRUE, '\\x00', 0)",
    )
    .await;
    migrate(&url, &[]);
    serve_until_ready_then_stop(&url).await;
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
    let mut child = bare_command()
        .env("DATABASE_URL", url)
        .env("CHATBOARD_JWT_SECRET", SECRET)
        .env("CHATBOARD_ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("api-server should log its address");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest
                .trim_end_matches(['"', '}', ','])
                .split('"')
                .next()
                .unwrap()
                .to_owned();
        }
    };
    let r = reqwest::get(format!("http://{addr}/health/ready"))
        .await
        .unwrap();
    let status = r.status();
    let body = r.text().await.unwrap();
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let exit = child.wait().unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(exit.success(), "graceful shutdown exits 0, got {exit}");
}
