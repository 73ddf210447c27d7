//! What starts a reconcile: any change to a resource but the operator's own status writes.
//!
//! A reconcile writes the status when its outcome changed, and that write is a change of the
//! resource like any other. Passed on to the controller, it started the next reconcile at once:
//! a failing resource's first retry came without waiting for its backoff, and every status
//! write cost a reconcile that found nothing to do. A status someone else wrote (a hand edit, a
//! restored copy) still starts one, which puts the operator's own back.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::runtime::reflector::{self, reflector};
use kube::runtime::{predicates, watcher, Controller, Predicate, PredicateConfig, WatchStreamExt};
use kube::Api;
use serde::Serialize;

use crate::context::{forget_gone_of_kind, resource_key, Context};
use crate::reconciler::Reconciled;

/// The status the operator last wrote for each resource (a hash of it), to tell its own
/// writes from others'.
#[derive(Default)]
pub struct OwnStatus(Mutex<HashMap<String, u64>>);

impl OwnStatus {
    /// Notes that `kind` `key`'s status is about to be written as `status` (before the write:
    /// its watch event may come before the write's answer).
    pub fn note<S: Serialize>(&self, kind: &str, key: &str, status: &S) {
        if let Ok(mut own) = self.0.lock() {
            own.insert(format!("{kind}:{key}"), status_hash(Some(status)));
        }
    }

    /// Whether `status` (its hash) is what the operator last wrote for `kind` `key`. The
    /// first status seen of a resource (none, or one an earlier process wrote) is taken as its
    /// own: that sighting starts a reconcile anyway, and otherwise, after a restart, the first
    /// status this process wrote would look like a change made by someone else.
    fn is_own(&self, kind: &str, key: &str, status: u64) -> bool {
        let Ok(mut own) = self.0.lock() else {
            return false;
        };
        *own.entry(format!("{kind}:{key}")).or_insert(status) == status
    }

    /// Forgets the resources of `kind` that `gone` says are gone.
    pub fn forget_gone(&self, kind: &str, gone: &dyn Fn(&str) -> bool) {
        forget_gone_of_kind(&self.0, kind, gone);
    }
}

/// A controller of the resources `api` lists that reconciles each on any change but the
/// operator's own status writes: to the spec (its generation), labels, annotations,
/// finalizers, deletion, or a status written by someone else.
pub fn controller_of<K: Reconciled>(api: Api<K>, ctx: Arc<Context>) -> Controller<K> {
    let (reader, writer) = reflector::store();
    let deleting = |obj: &K| Some(u64::from(obj.meta().deletion_timestamp.is_some()));
    let status_by_others = move |obj: &K| Some(status_by_others(&ctx, obj));
    let changes = predicates::generation
        .combine(predicates::labels)
        .combine(predicates::annotations)
        .combine(predicates::finalizers)
        .combine(deleting)
        .combine(status_by_others);
    // A resource is seen again only when it changes. Forgotten after the default hour of
    // quiet, its next status write would pass as news, so it is kept for a month (a few
    // hashes per resource, of those deleted meanwhile too).
    let kept = PredicateConfig::default().ttl(Duration::from_secs(30 * 24 * 3600));
    let trigger = reflector(writer, watcher(api, watcher::Config::default()))
        .applied_objects()
        .predicate_filter(changes, kept);
    Controller::for_stream(trigger, reader)
}

/// 0 for the status the operator last wrote, else a hash of it: only a status someone else
/// wrote (or removed) then counts as a change.
fn status_by_others<K: Reconciled>(ctx: &Context, obj: &K) -> u64 {
    let status = status_hash(obj.status());
    match resource_key(obj) {
        Ok(key) if ctx.own_status.is_own(K::KIND, &key, status) => 0,
        _ => status,
    }
}

/// A hash of a status as JSON (none hashes as `null`).
fn status_hash<S: Serialize>(status: Option<&S>) -> u64 {
    let json = status
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or_default();
    let mut hasher = DefaultHasher::new();
    json.to_string().hash(&mut hasher);
    hasher.finish()
}
