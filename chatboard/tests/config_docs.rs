//! README.md's configuration table and the services' configurations agree: every variable a
//! service reads is documented, every documented variable is read by some service (or is one of
//! the few read outside the configuration), and each default in the code is the one the
//! table gives.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use chatboard_core::config::{variables, Variable};

/// Variables read outside the services' configurations, by libraries.
const READ_ELSEWHERE: [&str; 2] = ["KUBECONFIG", "RUST_LOG"];

/// The configuration table: variable -> its Default cell.
fn documented() -> BTreeMap<String, String> {
    let readme = std::fs::read_to_string(testing::repo_root().join("README.md")).unwrap();
    let section = readme
        .split("### Configuration")
        .nth(1)
        .expect("a Configuration section")
        .split("\n## ")
        .next()
        .unwrap();
    let mut table = BTreeMap::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split(" | ").collect();
        let (names, default) = (cells[0].trim_start_matches("| "), cells[1]);
        for name in names.split(", ") {
            table.insert(name.trim_matches('`').to_owned(), default.to_owned());
        }
    }
    assert!(table.len() > 30, "the table was found: {table:?}");
    table
}

/// Every variable each service reads (the single node's through its `--help`).
fn read_by_services() -> BTreeMap<&'static str, Vec<Variable>> {
    let help = Command::new(env!("CARGO_BIN_EXE_chatboard"))
        .arg("--help")
        .env_clear()
        .output()
        .unwrap();
    assert!(
        help.status.success(),
        "{}",
        String::from_utf8_lossy(&help.stderr)
    );
    let single_node: Vec<Variable> = String::from_utf8_lossy(&help.stdout)
        .split("[env: ")
        .skip(1)
        .map(|rest| Variable {
            name: rest.split(['=', ']']).next().unwrap_or_default().to_owned(),
            flag: String::new(),
            default: None,
        })
        .collect();
    BTreeMap::from([
        ("api-server", variables::<api_server::config::Config>()),
        ("gateway", variables::<gateway::config::GatewayConfig>()),
        ("worker", variables::<worker::config::WorkerConfig>()),
        ("operator", variables::<operator::config::OperatorConfig>()),
        ("chatboard", single_node),
    ])
}

#[test]
fn every_variable_read_is_documented_and_every_documented_one_is_read() {
    let table = documented();
    let mut read = BTreeSet::new();
    let mut undocumented = Vec::new();
    for (service, vars) in read_by_services() {
        for var in vars {
            if !table.contains_key(&var.name) {
                undocumented.push(format!("{service}: {}", var.name));
            }
            read.insert(var.name);
        }
    }
    assert!(
        undocumented.is_empty(),
        "read but not in README's table: {undocumented:?}"
    );
    let unread: Vec<&String> = table
        .keys()
        .filter(|name| !read.contains(*name) && !READ_ELSEWHERE.contains(&name.as_str()))
        .collect();
    assert!(
        unread.is_empty(),
        "in README's table but read by no service: {unread:?}"
    );
}

#[test]
fn defaults_in_the_code_are_the_documented_ones() {
    let table = documented();
    let mut wrong = Vec::new();
    for (service, vars) in read_by_services() {
        for var in vars {
            let (Some(default), Some(cell)) = (&var.default, table.get(&var.name)) else {
                continue;
            };
            if !cell.contains(&format!("`{default}`")) {
                wrong.push(format!(
                    "{service}: {} defaults to {default:?}, README says {cell:?}",
                    var.name
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
