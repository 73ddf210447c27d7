//! Background jobs: the outbox relay, which hands every outbox event to a job queue (NATS
//! JetStream in the scale-out shape, the handler itself on a single node) exactly once per
//! event id, surviving crashes and running in several replicas at once; the jobs those events
//! cause; and the webhook dispatcher, which delivers signed requests with retries.

pub mod config;
pub mod delivery;
mod delivery_slots;
pub mod digest;
pub mod jobs;
pub mod mail;
pub mod process;
pub mod queue;
pub mod relay;
pub mod retention;
pub mod runtime;
pub mod service;
pub mod signing;
mod smtp_refusal;
pub mod uploads;
