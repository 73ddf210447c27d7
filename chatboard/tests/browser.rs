//! The web client in a real browser: runs the tests in `web/e2e` (node's test runner, with
//! playwright-core driving Debian's chromium) against this crate's `chatboard` binary, each
//! test on a single node of its own.
//!
//! Without chromium, node or `web/e2e/node_modules` the test prints a note and passes, unless
//! `CHATBOARD_REQUIRE_SERVICES=1` (set by `.ci/run`, which installs all three).

use std::path::{Path, PathBuf};
use std::process::Command;

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

fn node_available() -> bool {
    Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success())
}

#[test]
fn web_client_in_a_browser() {
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/e2e");
    if !chromium().exists() {
        testing::skip::<()>(
            "chromium is not installed (apt-get install chromium): browser tests skipped",
        );
        return;
    }
    if !node_available() {
        testing::skip::<()>("node is not installed: browser tests skipped");
        return;
    }
    if !e2e.join("node_modules/playwright-core").exists() {
        testing::skip::<()>(
            "web/e2e/node_modules is missing (cd web/e2e && npm ci): browser tests skipped",
        );
        return;
    }
    let status = Command::new("node")
        .args(["--test", "--test-concurrency=1", "--test-timeout=300000"])
        .current_dir(&e2e)
        .env("CHATBOARD_BIN", env!("CARGO_BIN_EXE_chatboard"))
        .env("CHROMIUM", chromium())
        .status();
    match status {
        Ok(status) => assert!(status.success(), "the browser tests failed (output above)"),
        Err(error) => panic!("cannot run node: {error}"),
    }
}
