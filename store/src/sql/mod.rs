//! The SQL implementations of the store.
//!
//! The queries are written once, in portable SQL (`$n` placeholders, `RETURNING`, no engine
//! functions; timestamps are bound from Rust), in the files of this folder, and compiled twice:
//! [`postgres`] and [`sqlite`] each declare them as their own submodules (`#[path]`), next to
//! the types (`Db`, `Pool`, `Tx`), the migrator and the few statements that really differ. So
//! both engines run the same code, type-checked against their own driver, with no runtime
//! dispatch inside a query.

// Compiling the shared files once per engine is the point (see above), not an accident.
#![allow(clippy::duplicate_mod)]

mod rows;
mod word_lookup;

pub mod postgres;
pub mod sqlite;
