//! Configuration from environment variables (and an optional `.env` file).
//!
//! Each service declares its configuration in its own crate as a `clap` parser whose arguments
//! name their variable once (`#[arg(long, env = "CHATBOARD_...")]`), with their defaults; the
//! groups several services share live in [`settings`]. [`parse`] fills such a parser from an
//! [`Env`] (the process environment, or a map in tests), so `--help` lists every variable with
//! its default and a bad value stops start-up with an error that names the variable. README.md
//! lists every variable too (a test keeps the two in step).

mod parse;
pub mod settings;
pub mod values;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rand::RngCore;

pub use parse::{asks_for_help, parse, parse_with, variables, variables_of, Variable};
pub use settings::{
    DatabaseConfig, EmailSettings, GatewaySettings, HttpSettings, NatsSettings, PasswordSettings,
    S3Settings, UploadQuotaSettings, UploadSettings, WebhookSettings,
};
pub use values::{redact_url, JwtSecret};

/// A configuration problem, always naming the variable at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The variable is set to something that cannot be used.
    #[error("{var} is invalid ({value:?}): {reason}")]
    Invalid {
        /// The variable's name.
        var: String,
        /// The value found.
        value: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The variable must be set for this service.
    #[error("{var} must be set: {reason}")]
    Missing {
        /// The variable's name.
        var: String,
        /// What it is for here.
        reason: String,
    },
    /// The data directory or the key file inside it could not be used.
    #[error("CHATBOARD_DATA_DIR ({path}): {source}")]
    DataDir {
        /// The path that failed.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The working directory's `.env` could not be read or parsed.
    #[error(".env: {0}")]
    EnvFile(String),
    /// The command line asked for help or the version, or was not understood: the message to
    /// print (`clap::Error::exit` prints it and exits with the right code).
    #[error("{0}")]
    CommandLine(#[from] clap::Error),
}

impl ConfigError {
    /// Ends the process for `--help`, `--version` and command-line mistakes, as `clap` does
    /// (printing them; exit code 0 for help and version, 2 for mistakes); other errors pass.
    pub fn exit_on_command_line(self) -> Self {
        match self {
            ConfigError::CommandLine(e) => e.exit(),
            other => other,
        }
    }

    /// `Invalid` for `var`.
    pub fn invalid(var: &str, value: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            var: var.to_owned(),
            value: value.into(),
            reason: reason.into(),
        }
    }
}

/// Where configuration values come from: the process environment, or a map in tests.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// Reads the process environment, after loading `.env` from the working directory if
    /// present (only there: not from a parent directory, which may belong to another project).
    /// A `.env` that cannot be read or parsed is an error: loading stopped at its bad line, and
    /// every setting after it would silently take its default.
    pub fn from_process() -> Result<Self, ConfigError> {
        match dotenvy::from_path(".env") {
            Ok(()) => {}
            Err(dotenvy::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ConfigError::EnvFile(e.to_string())),
        }
        Ok(Self {
            vars: std::env::vars().collect(),
        })
    }

    /// Uses the given variables only (for tests and embedding).
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// Sets a variable (for defaults a process derives before parsing).
    pub fn set(&mut self, var: &str, value: impl Into<String>) {
        self.vars.insert(var.to_owned(), value.into());
    }

    /// The raw value of a variable; an empty value counts as unset.
    pub fn get(&self, var: &str) -> Option<&str> {
        self.vars
            .get(var)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }
}

/// The `sqlite://` URL of the database file at `path`. The driver percent-decodes a URL's path
/// and takes what follows `?` as options, so `%`, `?` and `#` in the path are escaped: written
/// as they are, a data directory named with them opened another file, or none.
pub fn sqlite_url(path: &Path) -> String {
    let escaped = path
        .display()
        .to_string()
        .replace('%', "%25")
        .replace('?', "%3F")
        .replace('#', "%23");
    format!("sqlite://{escaped}")
}

/// Reads the signing key kept in the data directory, creating it on first start so that tokens
/// stay valid across restarts.
pub fn stored_secret(data_dir: &Path) -> Result<JwtSecret, ConfigError> {
    let path = data_dir.join("jwt-secret");
    let io_err = |source| ConfigError::DataDir {
        path: path.clone(),
        source,
    };
    let hex_key = match std::fs::read_to_string(&path) {
        Ok(existing) => existing.trim().to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 64];
            rand::rngs::OsRng.fill_bytes(&mut key);
            let hex_key = hex::encode(key);
            write_private_file(&path, &hex_key).map_err(io_err)?;
            hex_key
        }
        Err(e) => return Err(io_err(e)),
    };
    JwtSecret::new(hex_key.into_bytes()).map_err(|reason| {
        ConfigError::invalid(
            "CHATBOARD_DATA_DIR",
            path.display().to_string(),
            format!("stored signing key {reason}"),
        )
    })
}

fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(contents.as_bytes())
}
