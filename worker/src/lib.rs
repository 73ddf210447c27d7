//! Background jobs. So far: the outbox relay, which hands every outbox event to a job queue
//! (NATS JetStream in the scale-out shape) exactly once per event id, surviving crashes and
//! running in several replicas at once. The jobs themselves (webhook deliveries, emails,
//! upload expiry) come next; see the worker issue.

pub mod queue;
pub mod relay;
pub mod service;
