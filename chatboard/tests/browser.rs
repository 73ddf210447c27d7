//! The web client in a real browser: runs the tests in `web/e2e` (node's test runner, with
//! playwright-core driving Debian's chromium) against this crate's `chatboard` binary, each
//! test on a single node of its own.
//!
//! Without chromium, node or `web/e2e/node_modules` the test prints a note and passes, unless
//! `CHATBOARD_REQUIRE_SERVICES=1` (set by `.ci/run`, which installs all three).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A failed test's block is cut here in the final summary (its stack is the long part).
const MAX_FAILURE_LINES: usize = 40;

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
    let child = Command::new("node")
        // TAP, which the summary below reads (newer nodes print "spec" by default).
        .args([
            "--test",
            "--test-reporter=tap",
            "--test-concurrency=1",
            "--test-timeout=300000",
        ])
        .current_dir(&e2e)
        .env("CHATBOARD_BIN", env!("CARGO_BIN_EXE_chatboard"))
        .env("CHROMIUM", chromium())
        .stdout(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(error) => panic!("cannot run node: {error}"),
    };
    let failures = match child.stdout.take() {
        Some(out) => pass_through_keeping_failures(BufReader::new(out)),
        None => Vec::new(),
    };
    let status = child.wait();
    match status {
        Ok(status) => assert!(
            status.success(),
            "the browser tests failed (whole output above); the failures:\n{}",
            failures.join("\n")
        ),
        Err(error) => panic!("cannot wait for node: {error}"),
    }
}

/// Copies node's TAP output to our stdout as it comes, and keeps each failed test's block
/// ("not ok" to its closing "..."), so the panic repeats them at the end of a long log, where a
/// CI summary that shows only the tail still says what failed and why.
fn pass_through_keeping_failures(mut out: impl BufRead) -> Vec<String> {
    let mut failures = Vec::new();
    let mut block: Option<Failure> = None;
    let mut stdout = std::io::stdout();
    let mut bytes = Vec::new();
    // Read to the end whatever comes (bytes that are not UTF-8 included): node blocks on a
    // full pipe, and the run with it.
    while out.read_until(b'\n', &mut bytes).is_ok_and(|n| n > 0) {
        let line = String::from_utf8_lossy(&bytes)
            .trim_end_matches(['\n', '\r'])
            .to_owned();
        bytes.clear();
        // A closed or full stdout must not stop the reading: node would block on its pipe.
        let _ = writeln!(stdout, "{line}");
        let indent = line.len() - line.trim_start().len();
        if line.trim_start().starts_with("not ok ") {
            block = Some(Failure {
                indent,
                lines: vec![line],
                stack_lines: None,
            });
            continue;
        }
        let Some(failure) = block.as_mut() else {
            continue;
        };
        if line.trim() == "..." && indent <= failure.indent + 2 {
            failures.push(failure.lines.join("\n"));
            block = None;
        } else {
            failure.keep(line);
        }
    }
    if let Some(failure) = block {
        failures.push(failure.lines.join("\n"));
    }
    failures
}

/// A failed test's TAP block as the summary keeps it.
struct Failure {
    /// The indentation of its "not ok" line.
    indent: usize,
    lines: Vec<String>,
    /// Lines of the stack kept so far, once it began.
    stack_lines: Option<usize>,
}

impl Failure {
    /// Keeps what says what failed and where: not the timings, and of the stack its first line.
    fn keep(&mut self, line: String) {
        let key = line.trim_start().split(':').next().unwrap_or_default();
        if let Some(kept) = self.stack_lines.as_mut() {
            *kept += 1;
            if *kept > 1 {
                return;
            }
        } else if key == "stack" {
            self.stack_lines = Some(0);
        } else if ["duration_ms", "failureType", "code"].contains(&key) {
            return;
        }
        if self.lines.len() < MAX_FAILURE_LINES {
            self.lines.push(line);
        }
    }
}
