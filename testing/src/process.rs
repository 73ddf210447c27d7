//! Service binaries started as a user would start them: a clean environment, the banner or log
//! line that names their address, SIGTERM to stop them; and their `/metrics` read.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a service may take to print what a test waits for.
const STARTUP: Duration = Duration::from_secs(30);

/// `program` run from `dir` with only `PATH` set, so no `.env` or CI variable leaks in; the test
/// adds the variables it means.
pub fn bare_command(program: impl AsRef<OsStr>, dir: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(dir);
    cmd
}

/// A running service process whose standard output is read line by line.
pub struct Service {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Service {
    /// Starts `cmd` with its standard output piped.
    pub fn start(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the service");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// The first line from now on that `matches` (within 30 s); `what` names it in the failure.
    pub fn wait_for(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(STARTUP)
                .unwrap_or_else(|_| panic!("the service never printed {what}"));
            if matches(&line) {
                return line;
            }
        }
    }

    /// The `http://host:port` base of the first line naming one (`what` names that line in the
    /// failure): a banner (`... at ws://127.0.0.1:4321/`) or a JSON log line.
    pub fn wait_for_address(&mut self, what: &str) -> String {
        let line = self.wait_for(what, |l| base_url_in(l).is_some());
        base_url_in(&line).expect("a URL")
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process (SIGKILL: no chance to clean up) and waits for it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits up to `grace` for the process to end: its exit status, or `None`
    /// if it was still running then (it is killed).
    pub fn stop_within(mut self, grace: Duration) -> Option<ExitStatus> {
        terminate(self.child.id());
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait for the service") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Sends SIGTERM and waits for the process to end.
    pub fn stop(mut self) -> ExitStatus {
        terminate(self.child.id());
        self.child.wait().expect("wait for the service")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // A test that failed half way leaves no process behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends SIGTERM to a process (as Kubernetes and systemd do to stop one).
pub fn terminate(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}

/// The `http://host:port` a line names (a `ws://` address read as its `http://` twin), if any.
pub fn base_url_in(line: &str) -> Option<String> {
    let (scheme_at, skip) = ["http://", "ws://"]
        .iter()
        .filter_map(|s| line.find(s).map(|at| (at, s.len())))
        .min()?;
    let host: String = line[scheme_at + skip..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']' | '-'))
        .collect();
    (!host.is_empty()).then(|| format!("http://{host}"))
}

/// The text of `base`'s `/metrics`.
pub async fn scrape(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text")
}

/// The value of one series (`name` or `name{labels}`, exactly as exposed) in a scrape; 0 when
/// it is not there.
pub fn series(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series)
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_read_from_banners_and_log_lines() {
        assert_eq!(
            base_url_in("ChatBoard gateway is running at ws://127.0.0.1:4321/").as_deref(),
            Some("http://127.0.0.1:4321")
        );
        assert_eq!(
            base_url_in(r#"{"message":"api-server listening on http://127.0.0.1:80","x":1}"#)
                .as_deref(),
            Some("http://127.0.0.1:80")
        );
        assert_eq!(base_url_in("no address here"), None);
        assert_eq!(series("a 1\nb{x=\"y\"} 2.5\n", "b{x=\"y\"}"), 2.5);
        assert_eq!(series("a 1\n", "c"), 0.0);
    }
}
