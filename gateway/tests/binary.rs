//! The `gateway` binary: configuration errors, and serving health on a real database and NATS.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::process::{Command, Stdio};

use testing::process::Service;

use api_server::config::Config;
use chatboard_core::config::JwtSecret;

const SECRET: &str = "gateway-binary-secret-gateway-binary-secret";

fn gateway(dir: &std::path::Path) -> Command {
    testing::process::bare_command(env!("CARGO_BIN_EXE_gateway"), dir)
}

#[test]
fn missing_settings_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("g.db").display());
    for (env, missing) in [
        (
            vec![
                ("CHATBOARD_JWT_SECRET", SECRET),
                ("NATS_URL", "nats://127.0.0.1:4222"),
            ],
            "DATABASE_URL",
        ),
        (
            vec![
                ("DATABASE_URL", db.as_str()),
                ("NATS_URL", "nats://127.0.0.1:4222"),
            ],
            "CHATBOARD_JWT_SECRET",
        ),
        (
            vec![
                ("DATABASE_URL", db.as_str()),
                ("CHATBOARD_JWT_SECRET", SECRET),
            ],
            "NATS_URL",
        ),
        (
            vec![
                ("DATABASE_URL", db.as_str()),
                ("CHATBOARD_JWT_SECRET", SECRET),
                ("NATS_URL", "http://x"),
            ],
            "NATS_URL",
        ),
    ] {
        let out = gateway(dir.path()).envs(env).output().unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(missing), "{missing}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_health_on_a_real_database_and_nats_and_stops_on_sigterm() {
    let Some(nats) = testing::nats_url() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("g.db").display());
    // The api-server migrates; the gateway only reads.
    let secret = JwtSecret::new(SECRET.as_bytes().to_vec()).unwrap();
    api_server::build_state(Config::for_tests(db.clone(), secret))
        .await
        .unwrap()
        .store
        .close()
        .await;
    let prefix = format!("gwbin{}", std::process::id());
    let mut cmd = gateway(dir.path());
    cmd.env("DATABASE_URL", &db)
        .env("CHATBOARD_JWT_SECRET", SECRET)
        .env("NATS_URL", &nats)
        .env("CHATBOARD_NATS_PREFIX", &prefix)
        .env("CHATBOARD_ADDR", "127.0.0.1:0")
        .env("CHATBOARD_HTTP_HEADER_TIMEOUT_MS", "300")
        .stderr(Stdio::inherit());
    let mut server = Service::start(cmd);
    let base = server.wait_for_address("its banner");
    testing::slow_client::assert_half_a_head_is_hung_up_on(&base).await;
    let ready: serde_json::Value = reqwest::get(format!("{base}/health/ready"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        ready,
        serde_json::json!({"status": "ok", "checks": {"database": "ok", "nats": "ok"}})
    );
    let live = reqwest::get(format!("{base}/health/live")).await.unwrap();
    assert_eq!(live.status().as_u16(), 200);
    assert!(server.stop().success());
    chatboard_core::bus::NatsBus::connect(&nats, &prefix)
        .await
        .unwrap()
        .delete_stream()
        .await
        .unwrap();
}
