//! What every reconcile shares: the clients, the settings, the metrics, and each resource's
//! failure count for backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat::Chat;
use chatboard_core::auth::hash_token;
use chatboard_store::Store;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};

use crate::metrics::Metrics;
use crate::trigger::OwnStatus;

/// Settings the reconcilers need.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Every resource is reconciled again after this long, correcting drift.
    pub resync: Duration,
    /// How soon a resource waiting for something outside it (a webhook's Organization or
    /// Secret, a target's DNS name) is looked at again, besides the watches.
    pub recheck: Duration,
    /// Allow webhook targets on private addresses.
    pub allow_private_webhooks: bool,
    /// Reconciles of each kind that may run at once (each may hold a database connection).
    pub concurrency: u16,
}

impl Settings {
    /// When a reconciled resource is looked at again: `resync`, give or take a tenth, so that
    /// resources reconciled together at a start do not all come back in the same instant.
    pub fn next_resync(&self) -> Duration {
        self.resync
            .mul_f64(rand::Rng::gen_range(&mut rand::thread_rng(), 0.9..1.1))
    }
}

/// Shared by every reconcile.
pub struct Context {
    /// The Kubernetes API, for a reconcile's calls: each answers within
    /// [`API_CALL_TIMEOUT`] or fails, so a reconcile never holds its resource for good on a
    /// connection that stopped answering.
    pub client: Client,
    /// The Kubernetes API for the controllers' watches, which wait for news as long as there
    /// is none (they have idle timeouts of their own).
    pub watch_client: Client,
    /// The actions that change seats (an Organization's admins), which announce what they
    /// change so open sockets follow.
    pub chat: Chat,
    /// The platform's database (the one `chat` writes to), for what the operator writes alone:
    /// org settings and webhooks.
    pub store: Arc<dyn Store>,
    /// Settings.
    pub settings: Settings,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    recorder: Recorder,
    failures: Mutex<HashMap<String, u32>>,
    /// When each Webhook's `lastDelivery` was last written (see [`Context::delivery_wait`]).
    deliveries_shown: Mutex<HashMap<String, Instant>>,
    /// The status last written for each resource (see [`crate::trigger`]).
    pub own_status: OwnStatus,
}

/// How long one Kubernetes API call of a reconcile may take (see [`bounded_client`]).
pub const API_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A client on `config` whose calls fail when no answer comes within `timeout` (counted from
/// the request, not from when its pooled connection last served one).
pub fn bounded_client(mut config: kube::Config, timeout: Duration) -> kube::Result<Client> {
    config.read_timeout = Some(timeout);
    config.write_timeout = Some(timeout);
    config.reset_reader_on_write = true;
    Client::try_from(config)
}

/// First retry after a failed reconcile; doubled per further failure.
const BACKOFF_BASE: Duration = Duration::from_secs(2);
/// Longest wait between retries.
const BACKOFF_MAX: Duration = Duration::from_secs(300);

impl Context {
    /// A context; Events are signed by `identity` (the pod name). `client` is for calls (see
    /// [`bounded_client`]), `watch_client` for watches.
    pub fn new(
        client: Client,
        watch_client: Client,
        chat: Chat,
        settings: Settings,
        metrics: Arc<Metrics>,
        identity: &str,
    ) -> Self {
        let reporter = Reporter {
            controller: "chatboard-operator".into(),
            instance: Some(identity.to_owned()),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            watch_client,
            store: chat.store().clone(),
            chat,
            settings,
            metrics,
            failures: Mutex::default(),
            deliveries_shown: Mutex::default(),
            own_status: OwnStatus::default(),
        }
    }

    /// Publishes an Event about `obj`; failing to is logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            // Kubernetes' Events count repeats of one (type, reason, action) about an object,
            // for six minutes, into the first, keeping its note: an action of its own per note
            // keeps a different note (another admin invited) from being folded into an older
            // one, while the same note repeated is still counted.
            action: format!("Reconcile-{}", &hash_token(&note)[..8]),
            note: Some(within_note_limit(note)),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason, object = %obj.meta().name.as_deref().unwrap_or(""), "could not publish an Event");
        }
    }

    /// How long to wait before retrying `key` of `kind` after its latest failure: 2 s,
    /// doubling, ≤ 5 min. Counted per kind: an Organization and a Webhook may share a name.
    pub fn backoff(&self, kind: &str, key: &str) -> Duration {
        let Ok(mut failures) = self.failures.lock() else {
            return BACKOFF_MAX;
        };
        let n = failures.entry(format!("{kind}:{key}")).or_insert(0);
        *n = n.saturating_add(1);
        BACKOFF_BASE
            .saturating_mul(1 << (*n - 1).min(16))
            .min(BACKOFF_MAX)
    }

    /// How long the Webhook `key` must wait before its status shows a newer delivery: at most
    /// one such write per `recheck`. A busy webhook has a newer delivery at every reconcile,
    /// and each status write is a request to the API server and an event for everything that
    /// watches Webhooks (the operator's own controller ignores changes to the status alone).
    pub fn delivery_wait(&self, key: &str) -> Option<Duration> {
        let shown = self.deliveries_shown.lock().ok()?;
        let since = shown.get(key)?.elapsed();
        self.settings
            .recheck
            .checked_sub(since)
            .filter(|left| !left.is_zero())
    }

    /// Notes that the Webhook `key`'s status now shows its newest delivery (`false`: forgets
    /// it, the Webhook being gone).
    pub fn delivery_shown(&self, key: &str, shown: bool) {
        if let Ok(mut deliveries) = self.deliveries_shown.lock() {
            if shown {
                deliveries.insert(key.to_owned(), Instant::now());
            } else {
                deliveries.remove(key);
            }
        }
    }

    /// Forgets what is kept about the resources of `kind` that `gone` says are gone: failure
    /// counts, readiness, the status last written, and (Webhooks) when a delivery was last
    /// shown. A resource deleted without its cleanup (its finalizer removed by hand while the
    /// operator was down or its cleanup failing) would otherwise count as not Ready for good.
    pub fn forget_gone(&self, kind: &'static str, gone: &dyn Fn(&str) -> bool) {
        forget_gone_of_kind(&self.failures, kind, gone);
        if kind == <crds::Webhook as crate::reconciler::Reconciled>::KIND {
            if let Ok(mut shown) = self.deliveries_shown.lock() {
                shown.retain(|key, _| !gone(key));
            }
        }
        self.own_status.forget_gone(kind, gone);
        self.metrics.forget_gone(kind, gone);
    }

    /// Forgets the failures of `key` of `kind` after a successful reconcile.
    pub fn succeeded(&self, kind: &str, key: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(&format!("{kind}:{key}"));
        }
    }
}

/// Drops from `map` (keyed `<kind>:<key>`) the entries of `kind` whose key `gone` names.
pub(crate) fn forget_gone_of_kind<V>(
    map: &Mutex<HashMap<String, V>>,
    kind: &str,
    gone: &dyn Fn(&str) -> bool,
) {
    if let Ok(mut map) = map.lock() {
        let prefix = format!("{kind}:");
        map.retain(|entry, _| entry.strip_prefix(&prefix).is_none_or(|key| !gone(key)));
    }
}

/// `<namespace>/<name>` of a resource: its key in the database and in logs.
pub fn resource_key<K: Resource>(obj: &K) -> crate::error::Result<String> {
    let namespace = obj
        .meta()
        .namespace
        .as_deref()
        .ok_or(crate::error::Error::Unnamed("namespace"))?;
    let name = obj
        .meta()
        .name
        .as_deref()
        .ok_or(crate::error::Error::Unnamed("name"))?;
    Ok(format!("{namespace}/{name}"))
}

/// A resource's namespace (they are all namespaced).
pub fn namespace_of<K: ResourceExt>(obj: &K) -> crate::error::Result<String> {
    obj.namespace()
        .ok_or(crate::error::Error::Unnamed("namespace"))
}

/// The most of an Event's note the API server takes, in bytes: a longer one is refused whole.
pub const NOTE_MAX: usize = 1024;

/// `note`, cut to [`NOTE_MAX`] bytes (at a character's edge, ending in "…") if it is longer.
fn within_note_limit(note: String) -> String {
    if note.len() <= NOTE_MAX {
        return note;
    }
    let mut end = NOTE_MAX - '…'.len_utf8();
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &note[..end])
}
