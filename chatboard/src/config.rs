//! The single node's configuration: the api-server's, the gateway's connection settings, and a
//! data directory that gives the database, the signing key, uploads and emails their defaults.

use std::path::PathBuf;

use api_server::config::Config;
use api_server::process::Command;
use chatboard_core::config::{
    asks_for_help, parse_with, stored_secret, ConfigError, Env, GatewaySettings,
};
use clap::{CommandFactory, Parser};

/// ChatBoard, single node.
#[derive(Debug, Parser)]
#[command(
    name = "chatboard",
    version,
    about = "ChatBoard, single node: the whole platform in one process. Every setting is an environment variable (shown with each flag); see README.md."
)]
pub struct SingleNode {
    /// Where the SQLite database, the generated signing key, uploads and emails live; created
    /// if missing.
    #[arg(
        long = "data-dir",
        env = "CHATBOARD_DATA_DIR",
        default_value = "./chatboard-data"
    )]
    pub data_dir: PathBuf,
    /// The API's settings.
    #[command(flatten)]
    pub api: Config,
    /// The gateway's connection settings.
    #[command(flatten)]
    pub gateway: GatewaySettings,
    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl SingleNode {
    /// Reads the configuration from `env` and the command line `args`; what is unset defaults
    /// to files under the data directory, which is created if needed (with a generated signing
    /// key kept there, so tokens stay valid across restarts).
    pub fn from_env(
        env: &Env,
        args: impl IntoIterator<Item = impl Into<std::ffi::OsString>>,
    ) -> Result<Self, ConfigError> {
        let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
        if asks_for_help(&args) {
            // Help and the version touch no file.
            return parse_with(command(), env, args);
        }
        let missing = |env: &Env, var: &str| env.get(var).is_none();
        // Everything is checked before the data directory and its key are made (a mistyped
        // setting leaves no files behind), and the directory is learnt as the command line
        // and the environment give it (`--data-dir` wins over CHATBOARD_DATA_DIR).
        let mut probe = env.clone();
        if missing(&probe, "CHATBOARD_JWT_SECRET") {
            probe.set("CHATBOARD_JWT_SECRET", "k".repeat(64));
        }
        if missing(&probe, "DATABASE_URL") {
            probe.set("DATABASE_URL", "sqlite::memory:");
        }
        let data_dir = parse_with::<Self>(command(), &probe, args.clone())?.data_dir;
        let mut env = env.clone();
        if missing(&env, "DATABASE_URL") {
            let url = chatboard_core::config::sqlite_url(&data_dir.join("chatboard.db"));
            env.set("DATABASE_URL", url);
        }
        if missing(&env, "CHATBOARD_SMTP_URL") && missing(&env, "CHATBOARD_EMAIL_OUTBOX_DIR") {
            env.set(
                "CHATBOARD_EMAIL_OUTBOX_DIR",
                data_dir.join("emails").display().to_string(),
            );
        }
        if missing(&env, "CHATBOARD_S3_BUCKET") && missing(&env, "CHATBOARD_UPLOAD_DIR") {
            env.set(
                "CHATBOARD_UPLOAD_DIR",
                data_dir.join("uploads").display().to_string(),
            );
        }
        create_private_dir(&data_dir).map_err(|source| ConfigError::DataDir {
            path: data_dir.clone(),
            source,
        })?;
        if missing(&env, "CHATBOARD_JWT_SECRET") {
            let key = stored_secret(&data_dir)?;
            env.set(
                "CHATBOARD_JWT_SECRET",
                String::from_utf8_lossy(key.as_bytes()),
            );
        }
        let mut config: Self = parse_with(command(), &env, args)?;
        config.data_dir = data_dir;
        Ok(config)
    }
}

/// Creates the data directory (and any missing parent) readable by this user alone: it holds
/// the database (password hashes, webhook secrets), the uploads and, without SMTP, the emails
/// with their invitation links. One that exists already is left as its owner set it.
fn create_private_dir(path: &std::path::Path) -> std::io::Result<()> {
    // Missing parents as any directory is made; the data directory alone is private.
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    match builder.create(path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        other => other,
    }
}

/// The command, with the single node's own defaults in its help.
fn command() -> clap::Command {
    SingleNode::command()
        .mut_arg("database_url", |a| {
            a.required(false)
                .help("The database; default: sqlite://$CHATBOARD_DATA_DIR/chatboard.db")
        })
        .mut_arg("jwt_secret", |a| {
            a.required(false).help(
                "HS256 signing key, at least 32 bytes; default: generated into $CHATBOARD_DATA_DIR/jwt-secret",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_node_keeps_its_generated_key() {
        let dir = tempfile::tempdir().unwrap();
        let env = Env::from_pairs([("CHATBOARD_DATA_DIR", dir.path().to_str().unwrap())]);
        let first = SingleNode::from_env(&env, Vec::<String>::new()).unwrap();
        let second = SingleNode::from_env(&env, Vec::<String>::new()).unwrap();
        assert_eq!(
            first.api.jwt_secret.as_bytes(),
            second.api.jwt_secret.as_bytes()
        );
        assert!(first.api.database.database_url.starts_with("sqlite://"));
        assert_eq!(first.data_dir, dir.path());
    }

    /// The data directory made on first start is this user's alone (it was made with the
    /// umask's mode, commonly readable by every local user).
    #[cfg(unix)]
    #[test]
    fn a_new_data_dir_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let env = Env::from_pairs([("CHATBOARD_DATA_DIR", data.to_str().unwrap())]);
        SingleNode::from_env(&env, Vec::<String>::new()).unwrap();
        let mode = std::fs::metadata(&data).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    }

    #[test]
    fn the_data_dir_flag_wins_over_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let (from_env, from_flag) = (dir.path().join("env"), dir.path().join("flag"));
        let env = Env::from_pairs([("CHATBOARD_DATA_DIR", from_env.to_str().unwrap())]);
        let node = SingleNode::from_env(&env, ["--data-dir", from_flag.to_str().unwrap()]).unwrap();
        assert_eq!(node.data_dir, from_flag);
        assert!(
            node.api.database.database_url.contains("flag"),
            "{}",
            node.api.database.database_url
        );
        assert!(from_flag.join("jwt-secret").exists());
        assert!(!from_env.exists());
    }

    #[test]
    fn a_bad_setting_leaves_no_files_behind() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let env = Env::from_pairs([
            ("CHATBOARD_DATA_DIR", data.to_str().unwrap()),
            ("CHATBOARD_RATE_LIMIT_PER_IP", "ten"),
        ]);
        let refused = SingleNode::from_env(&env, Vec::<String>::new());
        assert!(refused.is_err());
        assert!(
            !data.exists(),
            "the data directory was made for a refused setting"
        );
    }
}
