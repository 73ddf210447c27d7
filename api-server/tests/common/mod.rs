//! The shared test support (the `testing` crate), as the API's suites name it: a real API server
//! on a loopback port, backed by a fresh database of either engine, driven over HTTP.

#![allow(unused_imports)]

pub use testing::http::{Reply, TestApp, TestUser, TEST_SECRET};
pub use testing::{TestDb, TestEngine as Engine};

#[allow(dead_code)] // each suite uses its own share of them
pub mod uploads;
