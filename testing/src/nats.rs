//! NATS for one test: the server `NATS_URL` names, and names no other test uses, or a server
//! of its own.

use std::time::Duration;

/// `NATS_URL`, or `None` (with a note) on a laptop without NATS; a failure when CI requires the
/// services (`CHATBOARD_REQUIRE_SERVICES=1`).
pub fn nats_url() -> Option<String> {
    match std::env::var("NATS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => crate::skip("NATS_URL is not set; NATS variants are skipped"),
    }
}

/// A NATS subject prefix (and stream/bucket name stem) no other test uses.
pub fn unique_prefix() -> String {
    format!("test{}{}", crate::db::uuid_like(), std::process::id())
}

/// A NATS server of one test's own, so it can be killed and restarted.
pub struct OwnNats {
    binary: std::path::PathBuf,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
    /// A configuration file, for settings with no command-line flag.
    config: Option<std::path::PathBuf>,
}

impl OwnNats {
    /// Starts one, or `None` (with a note) when no `nats-server` binary is installed.
    pub fn start() -> Option<Self> {
        Self::start_configured("")
    }

    /// Starts one with `config` (nats-server's configuration format, e.g. `max_payload: 4096`)
    /// besides the command line's settings.
    pub fn start_configured(config: &str) -> Option<Self> {
        Self::start_on(free_ports(1)[0], config)
    }

    /// As [`OwnNats::start_configured`], listening for clients on `port`.
    fn start_on(port: u16, config: &str) -> Option<Self> {
        let binary = std::env::var_os("NATS_SERVER_BIN")
            .map(std::path::PathBuf::from)
            .or_else(|| {
                [
                    "/usr/sbin/nats-server",
                    "/usr/bin/nats-server",
                    "/usr/local/bin/nats-server",
                ]
                .iter()
                .map(std::path::PathBuf::from)
                .find(|p| p.exists())
            });
        let Some(binary) = binary else {
            assert!(
                std::env::var("CHATBOARD_REQUIRE_SERVICES").map_or(true, |v| v != "1"),
                "CHATBOARD_REQUIRE_SERVICES=1 but no nats-server binary (set NATS_SERVER_BIN)"
            );
            eprintln!("note: no nats-server binary; a test of NATS going away is skipped");
            return None;
        };
        let mut nats = Self {
            binary,
            port,
            dir: tempfile::tempdir().unwrap(),
            child: None,
            config: None,
        };
        if !config.is_empty() {
            let path = nats.dir.path().join("nats.conf");
            std::fs::write(&path, config).unwrap();
            nats.config = Some(path);
        }
        nats.run();
        Some(nats)
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again, after [`OwnNats::kill`]) and waits until it listens.
    pub fn run(&mut self) {
        let mut command = std::process::Command::new(&self.binary);
        if let Some(config) = &self.config {
            command.arg("-c").arg(config);
        }
        let child = command
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("nats-server did not start");
    }

    /// Freezes the server (SIGSTOP): its connections stay open and take bytes, but nothing
    /// answers, as across a partition that closes nothing.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("the server runs");
        let status = std::process::Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Stops the server at once, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three NATS servers of one test's own, routed to each other as one JetStream cluster, so a
/// test can kill the one that leads a stream.
pub struct NatsCluster {
    servers: Vec<OwnNats>,
}

impl NatsCluster {
    /// Starts them, or `None` (with a note) when no `nats-server` binary is installed. They
    /// listen at once; JetStream answers only once they have elected a leader among them, a
    /// few seconds later, so callers retry what they first ask of it.
    pub fn start() -> Option<Self> {
        // Every port at once, so that no server's client port is another's route port.
        let ports = free_ports(6);
        let (clients, routes) = ports.split_at(3);
        let mut servers = Vec::with_capacity(routes.len());
        for (index, port) in routes.iter().enumerate() {
            let others: Vec<String> = routes
                .iter()
                .filter(|other| *other != port)
                .map(|other| format!("nats://127.0.0.1:{other}"))
                .collect();
            let config = format!(
                "server_name: n{index}\ncluster {{\n  name: test\n  listen: 127.0.0.1:{port}\n  \
                 routes: [{}]\n}}\n",
                others.join(", ")
            );
            servers.push(OwnNats::start_on(clients[index], &config)?);
        }
        Some(Self { servers })
    }

    /// Every server's URL, comma-separated: a client given them all moves to another when one
    /// goes.
    pub fn urls(&self) -> String {
        self.servers
            .iter()
            .map(OwnNats::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Kills the server JetStream calls `name` (`n0` to `n2`), as a crash would.
    pub fn kill(&mut self, name: &str) {
        let index: usize = name
            .strip_prefix('n')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no server named {name}"));
        self.servers[index].kill();
    }
}

/// `n` ports free at once on 127.0.0.1 (all held until each is known, so they differ).
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|listener| listener.local_addr().unwrap().port())
        .collect()
}
