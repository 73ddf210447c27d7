//! The `Ready` condition, written so that an unchanged outcome leaves the status untouched.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// Why a resource is, or is not, Ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// Ready or not.
    pub ready: bool,
    /// CamelCase reason (`Reconciled`, `InvalidSpec`, `OrganizationNotFound`, ...).
    pub reason: &'static str,
    /// What a person should know.
    pub message: String,
}

impl Readiness {
    /// Everything applied.
    pub fn ready(message: impl Into<String>) -> Self {
        Self {
            ready: true,
            reason: "Reconciled",
            message: message.into(),
        }
    }

    /// Not applied, for `reason`.
    pub fn not_ready(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            ready: false,
            reason,
            message: message.into(),
        }
    }
}

/// The conditions with `Ready` set to `readiness`; its transition time moves only when its
/// status flips, as the Kubernetes conventions ask.
pub fn with_ready(
    existing: &[Condition],
    readiness: &Readiness,
    generation: Option<i64>,
) -> Vec<Condition> {
    let status = if readiness.ready { "True" } else { "False" };
    let previous = existing.iter().find(|c| c.type_ == "Ready");
    let last_transition_time = match previous {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Time(Timestamp::now()),
    };
    let mut conditions: Vec<Condition> = existing
        .iter()
        .filter(|c| c.type_ != "Ready")
        .cloned()
        .collect();
    conditions.push(Condition {
        type_: "Ready".into(),
        status: status.into(),
        reason: readiness.reason.into(),
        message: readiness.message.clone(),
        observed_generation: generation,
        last_transition_time,
    });
    conditions
}
