//! Shared library of the ChatBoard services: configuration, domain types, storage and auth.
//!
//! Every service crate (api-server, and later gateway, worker, operator) builds on these pieces,
//! and the single-node `chatboard` binary composes the same services, so no rule lives twice.

pub mod auth;
pub mod bus;
pub mod config;
pub mod error_code;
pub mod events;
pub mod metrics;
pub mod model;
pub mod presence;
pub mod probes;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod webhook_target;
