//! ChatBoard's Kubernetes operator: it reconciles `Organization` and `Webhook` custom resources
//! (see `crds`) into the tenant configuration the api-server, gateway and worker read from the
//! database, following `../shared/spec/CRDS.md`.
//!
//! Reconciles are level-triggered and idempotent: each makes the database say what the resource
//! says, writes the status only when it changed, and is re-run on every change (but its own
//! status writes), on a periodic resync (correcting drift) and with backoff after a failure.

pub mod config;
pub mod context;
pub mod error;
pub mod leader;
pub mod metrics;
pub mod organization;
pub mod process;
pub mod reconciler;
pub mod service;
pub mod status;
pub mod trigger;
pub mod webhook;
