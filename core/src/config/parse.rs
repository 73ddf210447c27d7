//! Filling a `clap` parser from an [`Env`].
//!
//! The parsers declare each variable as `#[arg(long, env = "VAR")]`, which gives `--help` its
//! list of variables and defaults. Values are read from the [`Env`] given (not straight from the
//! process), so tests and embedders decide what a configuration sees: each variable set there
//! (and not overridden by its flag on the command line) becomes its `--flag=value`.

use std::collections::HashSet;
use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{Command, CommandFactory, FromArgMatches};

use super::{ConfigError, Env};

/// One variable a configuration reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// Its name, e.g. `CHATBOARD_ADDR`.
    pub name: String,
    /// The flag that sets it on the command line instead, e.g. `addr`.
    pub flag: String,
    /// Its default, when it has one.
    pub default: Option<String>,
}

/// The variables `T` reads, in declaration order.
pub fn variables<T: CommandFactory>() -> Vec<Variable> {
    variables_of(&T::command())
}

/// The variables a command reads, in declaration order (hidden ones left out).
pub fn variables_of(command: &Command) -> Vec<Variable> {
    command
        .get_arguments()
        .filter(|arg| !arg.is_hide_set())
        .filter_map(|arg| {
            let name = arg.get_env()?.to_str()?.to_owned();
            let flag = arg.get_long()?.to_owned();
            let default = match arg.get_default_values() {
                [] => None,
                values => Some(
                    values
                        .iter()
                        .map(|v| v.to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join(","),
                ),
            };
            Some(Variable {
                name,
                flag,
                default,
            })
        })
        .collect()
}

/// Reads a `T` from `env` and the command line `args` (without the program name). Flags on
/// the command line win over variables; `--help` and `--version` come back as
/// [`ConfigError::CommandLine`], whose `exit()` prints them.
pub fn parse<T>(
    env: &Env,
    args: impl IntoIterator<Item = impl Into<OsString>>,
) -> Result<T, ConfigError>
where
    T: CommandFactory + FromArgMatches,
{
    parse_with(T::command(), env, args)
}

/// As [`parse`], with `command` (`T`'s, adjusted: another name, help or requirement).
pub fn parse_with<T: FromArgMatches>(
    full: Command,
    env: &Env,
    args: impl IntoIterator<Item = impl Into<OsString>>,
) -> Result<T, ConfigError> {
    let program = OsString::from(full.get_name());
    let argv = |rest: &[OsString]| -> Vec<OsString> {
        std::iter::once(program.clone())
            .chain(rest.iter().cloned())
            .collect()
    };
    let user: Vec<OsString> = args.into_iter().map(Into::into).collect();
    if asks_for_help(&user) {
        // The full command's help shows each flag's variable and default.
        full.clone().try_get_matches_from(argv(&user))?;
    }
    // Every argument, hidden ones too, takes its variable from `env`.
    let vars: Vec<Variable> = full
        .get_arguments()
        .filter_map(|arg| {
            Some(Variable {
                name: arg.get_env()?.to_str()?.to_owned(),
                flag: arg.get_long()?.to_owned(),
                default: None,
            })
        })
        .collect();
    let stripped: Command = full.mut_args(|arg| arg.env(None::<&'static str>));
    let given = given_on_command_line(&stripped, &argv(&user));
    let mut rest: Vec<OsString> = vars
        .iter()
        .filter(|v| !given.contains(&v.flag))
        .filter_map(|v| {
            env.get(&v.name)
                .map(|value| OsString::from(format!("--{}={}", v.flag, value.trim())))
        })
        .collect();
    rest.extend(user);
    let matches = stripped
        .clone()
        .try_get_matches_from(argv(&rest))
        .map_err(|e| naming_the_variable(e, &stripped, &vars))?;
    T::from_arg_matches(&matches).map_err(|e| naming_the_variable(e, &stripped, &vars))
}

/// Whether the command line asks for help or the version (which need no configuration).
pub fn asks_for_help(args: &[OsString]) -> bool {
    args.iter()
        .take_while(|a| a.to_str() != Some("--"))
        .any(|a| {
            matches!(
                a.to_str(),
                Some("-h" | "--help" | "-V" | "--version" | "help")
            )
        })
}

/// The ids (their long flags) of the arguments the command line itself sets.
fn given_on_command_line(command: &Command, argv: &[OsString]) -> HashSet<String> {
    let Ok(matches) = command
        .clone()
        .ignore_errors(true)
        .try_get_matches_from(argv)
    else {
        return HashSet::new();
    };
    command
        .get_arguments()
        .filter(|arg| matches.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine))
        .filter_map(|arg| arg.get_long().map(str::to_owned))
        .collect()
}

/// A bad or missing value becomes [`ConfigError::Invalid`] or [`ConfigError::Missing`] naming
/// its variable; anything else stays a command-line error.
fn naming_the_variable(e: clap::Error, command: &Command, vars: &[Variable]) -> ConfigError {
    let text = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(s)) => s.first().cloned(),
        _ => None,
    };
    // "--db-max-connections <CHATBOARD_DB_MAX_CONNECTIONS>" -> db-max-connections
    let flag = text(ContextKind::InvalidArg)
        .and_then(|arg| arg.strip_prefix("--").map(str::to_owned))
        .map(|arg| arg.split([' ', '=']).next().unwrap_or_default().to_owned());
    let var = flag.and_then(|f| vars.iter().find(|v| v.flag == f));
    match (e.kind(), var) {
        (ErrorKind::ValueValidation | ErrorKind::InvalidValue, Some(var)) => {
            let reason = match std::error::Error::source(&e) {
                Some(source) => source.to_string(),
                None => match e.get(ContextKind::ValidValue) {
                    Some(ContextValue::Strings(valid)) => {
                        format!("expected one of {}", valid.join(", "))
                    }
                    _ => "not an accepted value".to_owned(),
                },
            };
            let value = text(ContextKind::InvalidValue).unwrap_or_default();
            ConfigError::invalid(&var.name, shown(&var.name, &value), reason)
        }
        (ErrorKind::MissingRequiredArgument, Some(var)) => {
            // The argument's help says what the variable is for in this service.
            let reason = command
                .get_arguments()
                .find(|a| a.get_long() == Some(var.flag.as_str()))
                .and_then(|a| a.get_help())
                .map(|help| help.to_string())
                .unwrap_or_default();
            ConfigError::Missing {
                var: var.name.clone(),
                reason,
            }
        }
        _ => ConfigError::CommandLine(e),
    }
}

/// A value as an error may show it: secrets hidden, passwords in URLs masked.
fn shown(var: &str, value: &str) -> String {
    if var.contains("SECRET") {
        "<hidden>".to_owned()
    } else {
        super::redact_url(value)
    }
}
