//! Shared library of the ChatBoard services: the domain model and its events, the API's error
//! codes, the bus and presence, tokens and passwords, configuration groups several services
//! read, health probes and logging.
//!
//! Storage is the `chatboard-store` crate and the chat actions the `chat` crate; every service
//! builds on these, and the single-node `chatboard` binary composes the same services, so no
//! rule lives twice.

pub mod auth;
pub mod bus;
pub mod config;
pub mod error_code;
pub mod events;
pub mod http_server;
pub mod metrics;
pub mod model;
pub mod open_files;
pub mod presence;
pub mod probes;
pub mod shared_stream;
pub mod shutdown;
pub mod telemetry;
pub mod webhook_target;
