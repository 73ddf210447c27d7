//! The `gateway` binary: configuration errors, and serving health on a real database and NATS.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use api_server::config::Config;
use chatboard_core::config::JwtSecret;

const SECRET: &str = "gateway-binary-secret-gateway-binary-secret";

fn gateway(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(dir);
    cmd
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
    let nats = match std::env::var("NATS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            assert!(
                std::env::var("CHATBOARD_REQUIRE_SERVICES").map_or(true, |v| v != "1"),
                "CHATBOARD_REQUIRE_SERVICES=1 but NATS_URL is not set"
            );
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "note: NATS_URL is not set; NATS variants are skipped"
            );
            return;
        }
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
    let mut child = gateway(dir.path())
        .env("DATABASE_URL", &db)
        .env("CHATBOARD_JWT_SECRET", SECRET)
        .env("NATS_URL", &nats)
        .env("CHATBOARD_NATS_PREFIX", &prefix)
        .env("CHATBOARD_ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let banner = loop {
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        if line.starts_with("ChatBoard gateway is running at ") {
            break line;
        }
    };
    let base = banner
        .rsplit(' ')
        .next()
        .unwrap()
        .replace("ws://", "http://")
        .trim_end_matches('/')
        .to_owned();
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
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    chatboard_core::bus::NatsBus::connect(&nats, &prefix)
        .await
        .unwrap()
        .delete_stream()
        .await
        .unwrap();
}
