//! The `chatboard` binary started under another service's name is that service: the container
//! image ships it once, linked as `api-server`, `gateway`, `worker` and `operator`.
//!
//! Each case sets an environment to which only the intended service answers with its own
//! complaint (the variable it alone requires or reads), so a wrong dispatch fails the test.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

/// Environment variables of one run.
type Vars<'a> = &'a [(&'a str, &'a str)];

/// Unreachable on purpose: every case fails in its configuration, before connecting.
const DB: &str = "postgres://postgres@127.0.0.1:1/unused";
const SECRET: &str = "a-signing-key-of-at-least-thirty-two-bytes";

/// `chatboard` linked under `name` in `dir`.
fn linked_as(dir: &Path, name: &str) -> PathBuf {
    let link = dir.join(name);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_chatboard"), &link).unwrap();
    link
}

/// Runs `program` with only `vars` (and PATH) set, from `dir`, so no `.env` or CI variable
/// leaks in. Kills it after a minute: a process still running then started a server instead
/// of refusing its configuration.
fn run(dir: &Path, program: &Path, args: &[&str], vars: Vars) -> Output {
    let mut child = testing::process::bare_command(program, dir)
        .args(args)
        .env("CHATBOARD_DATA_DIR", dir.join("data"))
        .env("CHATBOARD_ADDR", "127.0.0.1:0")
        .envs(vars.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!(
                "{} kept running: it did not act as the named service",
                program.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn answers_to_each_service_name() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();

    // Only the api-server (and the single node, under its own name) has a CLI with --version.
    let out = run(dir, &linked_as(dir, "api-server"), &["--version"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("api-server "),
        "{stdout}"
    );

    // (name, environment, what only that service complains about)
    let cases: [(&str, Vars, &str); 4] = [
        // The api-server wants a signing key; the worker and operator need none.
        (
            "api-server",
            &[("DATABASE_URL", DB)],
            "CHATBOARD_JWT_SECRET",
        ),
        // With a key the api-server would connect; the gateway insists on NATS first.
        (
            "gateway",
            &[("DATABASE_URL", DB), ("CHATBOARD_JWT_SECRET", SECRET)],
            "gateways hear about new messages from NATS",
        ),
        // Without a key the api-server and gateway would name it; the worker names NATS.
        (
            "worker",
            &[("DATABASE_URL", DB)],
            "the worker hands jobs over",
        ),
        // Only the operator reads its Lease settings.
        (
            "operator",
            &[
                ("DATABASE_URL", DB),
                ("CHATBOARD_OPERATOR_LEASE_TTL", "soon"),
            ],
            "CHATBOARD_OPERATOR_LEASE_TTL",
        ),
    ];
    for (name, vars, complaint) in cases {
        let program = dir.join(name);
        if !program.exists() {
            linked_as(dir, name);
        }
        let out = run(dir, &program, &[], vars);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{name} should refuse this configuration"
        );
        assert!(stderr.contains(complaint), "{name}: {stderr}");
    }
}

#[test]
fn under_its_own_name_it_is_the_single_node() {
    let dir = tempfile::tempdir().unwrap();
    let program = Path::new(env!("CARGO_BIN_EXE_chatboard"));
    let out = run(dir.path(), program, &["--version"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("chatboard "),
        "{stdout}"
    );
}

/// The working directory's `.env` is read, and one that cannot be parsed stops start-up
/// naming it: loading used to stop silently at the bad line, every setting after it taking
/// its default, and the node started.
#[test]
fn a_malformed_env_file_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let program = Path::new(env!("CARGO_BIN_EXE_chatboard"));
    std::fs::write(dir.path().join(".env"), "CHATBOARD_RATE_LIMIT_PER_IP=ten\n").unwrap();
    let out = run(dir.path(), program, &[], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("CHATBOARD_RATE_LIMIT_PER_IP is invalid"),
        "the .env is read: {stderr}"
    );

    std::fs::write(
        dir.path().join(".env"),
        "CHATBOARD_RATE_LIMIT_PER_IP=5\nthis line is not a setting\n",
    )
    .unwrap();
    let out = run(dir.path(), program, &[], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains(".env"),
        "a malformed .env is refused: {stderr}"
    );
}

/// A data directory whose name holds `%`, `?` or `#` keeps its database inside it: the URL made
/// from it escapes them (the driver decoded `%41` to `A` and took `?...` as options, so the
/// database went to another file).
#[test]
fn a_data_directory_named_with_url_characters_holds_its_database() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data %41 #1 ?mode=ro");
    let program = Path::new(env!("CARGO_BIN_EXE_chatboard"));
    let out = run(
        dir.path(),
        program,
        &["migrate"],
        &[("CHATBOARD_DATA_DIR", data.to_str().unwrap())],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        data.join("chatboard.db").is_file(),
        "no database in {data:?}"
    );
}
