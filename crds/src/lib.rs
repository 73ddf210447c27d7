//! ChatBoard's custom resources (group `chatboard.io`, version `v1alpha1`, namespaced):
//! [`Organization`] and [`Webhook`], as `../shared/spec/CRDS.md` describes them, with the
//! validation the API server can enforce itself (lengths, formats, enums, bounds) in their
//! schemas. [`manifests`] renders the CRDs the Helm chart installs; `crdgen` writes them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What happens to an organization's data when its resource is deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// The organization is archived; its data stays.
    #[default]
    Retain,
    /// The organization and everything in it are purged.
    Delete,
}

/// Limits of one organization; an absent field means the deployment's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Quotas {
    /// Most members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub max_members: Option<u32>,
    /// Most rooms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub max_rooms: Option<u32>,
    /// Largest upload, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_737_418_240_i64))]
    pub upload_max_bytes: Option<i64>,
    /// Bytes of unfinished uploads presigned for the organization at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub upload_pending_bytes: Option<i64>,
    /// Bytes of uploads the organization may hold (unfinished ones included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub upload_stored_bytes: Option<i64>,
    /// Days messages are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 36_500))]
    pub message_retention_days: Option<u32>,
    /// Messages per minute per member (REST posts and WebSocket message frames).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100_000))]
    pub rate_limit_per_minute: Option<u32>,
}

/// An organization (tenant) managed from Kubernetes.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "chatboard.io",
    version = "v1alpha1",
    kind = "Organization",
    plural = "organizations",
    shortname = "org",
    shortname = "orgs",
    category = "chatboard",
    namespaced,
    status = "OrganizationStatus",
    printcolumn = r#"{"name":"Org ID","type":"integer","jsonPath":".status.orgId"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Members","type":"integer","jsonPath":".status.memberCount"}"#,
    printcolumn = r#"{"name":"Suspended","type":"boolean","jsonPath":".spec.suspended"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationSpec {
    /// The organization's name, 1 to 120 characters.
    #[schemars(length(min = 1, max = 120))]
    pub display_name: String,
    /// Admins by email: each not ADMIN yet gets an ADMIN invitation by email.
    #[serde(default)]
    #[schemars(inner(email), length(max = 100))]
    pub admins: Vec<String>,
    /// Limits; absent means the deployment's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quotas: Option<Quotas>,
    /// Members can read but not send; API writes answer 403.
    #[serde(default)]
    pub suspended: bool,
    /// `Retain` (default): deleting the resource archives the org; `Delete`: purges its data.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// What the operator last made of an [`Organization`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationStatus {
    /// The organization's id in ChatBoard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<i64>,
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Members now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_count: Option<i64>,
    /// Standard conditions; `Ready` says whether the spec is applied.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// Event types a webhook may subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum WebhookEvent {
    /// Every type.
    #[serde(rename = "*")]
    All,
    /// A message was posted.
    #[serde(rename = "message.created")]
    MessageCreated,
    /// A message was edited.
    #[serde(rename = "message.updated")]
    MessageUpdated,
    /// A message was deleted.
    #[serde(rename = "message.deleted")]
    MessageDeleted,
    /// A reply moved a thread's counters.
    #[serde(rename = "thread.updated")]
    ThreadUpdated,
    /// A reaction was added.
    #[serde(rename = "reaction.added")]
    ReactionAdded,
    /// A reaction was removed.
    #[serde(rename = "reaction.removed")]
    ReactionRemoved,
    /// A message mentions someone (one per person).
    #[serde(rename = "message.mentioned")]
    MessageMentioned,
    /// A room was created.
    #[serde(rename = "room.created")]
    RoomCreated,
    /// Someone was invited.
    #[serde(rename = "member.invited")]
    MemberInvited,
    /// Someone joined.
    #[serde(rename = "member.joined")]
    MemberJoined,
    /// Someone left or was taken out.
    #[serde(rename = "member.left")]
    MemberLeft,
    /// A member's role changed.
    #[serde(rename = "member.role_changed")]
    MemberRoleChanged,
    /// A test delivery.
    #[serde(rename = "webhook.test")]
    WebhookTest,
}

/// The Organization (same namespace) a webhook belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrganizationRef {
    /// Its `metadata.name`.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A key of a Secret (same namespace).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SecretKeyRef {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key holding the HMAC secret (default `secret`).
    #[serde(default = "default_secret_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

fn default_secret_key() -> String {
    "secret".to_owned()
}

fn default_true() -> bool {
    true
}

/// A webhook of an organization, managed from Kubernetes.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "chatboard.io",
    version = "v1alpha1",
    kind = "Webhook",
    plural = "webhooks",
    shortname = "cbwebhook",
    shortname = "cbwebhooks",
    category = "chatboard",
    namespaced,
    status = "WebhookStatus",
    printcolumn = r#"{"name":"Org","type":"string","jsonPath":".spec.organizationRef.name"}"#,
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".spec.url"}"#,
    printcolumn = r#"{"name":"Active","type":"boolean","jsonPath":".spec.active"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSpec {
    /// The Organization it belongs to.
    pub organization_ref: OrganizationRef,
    /// http(s) target (the operator applies the deployment's SSRF rules too).
    #[schemars(url, length(min = 1, max = 2000), regex(pattern = r"^https?://"))]
    pub url: String,
    /// Event types to deliver, or `["*"]`.
    #[schemars(length(min = 1, max = 20))]
    pub events: Vec<WebhookEvent>,
    /// The HMAC secret; absent: the operator creates a Secret for it and owns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
    /// Deliver events (default true).
    #[serde(default = "default_true")]
    pub active: bool,
    /// Attempts per delivery; absent: the deployment's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 20))]
    pub max_attempts: Option<i32>,
}

/// The outcome of a webhook's newest delivery.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastDelivery {
    /// `pending`, `retrying`, `delivered` or `failed`.
    pub status: String,
    /// The target's answer, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<i32>,
    /// When (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// What the operator last made of a [`Webhook`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookStatus {
    /// The webhook's id in ChatBoard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_id: Option<i64>,
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The newest delivery's outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivery: Option<LastDelivery>,
    /// Standard conditions; `Ready` says whether the spec is applied.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// The status fields both kinds share: the spec generation a status describes and its
/// conditions (the operator writes them the same way for each kind).
pub trait Conditioned {
    /// The conditions, `Ready` among them.
    fn conditions(&self) -> &[Condition];
    /// Sets the generation described and the conditions.
    fn stamp(&mut self, generation: Option<i64>, conditions: Vec<Condition>);
}

/// Implements [`Conditioned`] for statuses with `observed_generation` and `conditions` fields.
macro_rules! conditioned {
    ($($status:ty),*) => {$(
        impl Conditioned for $status {
            fn conditions(&self) -> &[Condition] {
                &self.conditions
            }

            fn stamp(&mut self, generation: Option<i64>, conditions: Vec<Condition>) {
                self.observed_generation = generation;
                self.conditions = conditions;
            }
        }
    )*};
}

conditioned!(OrganizationStatus, WebhookStatus);

/// The chart's CRD files: (file name, contents), generated from the types above.
pub fn manifests() -> Result<Vec<(String, String)>, serde_json::Error> {
    let mut files = Vec::new();
    for crd in [Organization::crd(), Webhook::crd()] {
        let name = crd.metadata.name.clone().unwrap_or_default();
        // JSON is YAML: no YAML library needed, and the file stays exactly reproducible.
        let body = serde_json::to_string_pretty(&crd)?;
        files.push((
            format!("{name}.yaml"),
            format!("# Generated from crds/src/lib.rs by `cargo run -p crds --bin crdgen`; do not edit.\n{body}\n"),
        ));
    }
    Ok(files)
}
