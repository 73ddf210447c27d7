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
use serde_json::Value;

use crate::context::{resource_key, Context};
use crate::reconciler::Reconciled;

/// The status the operator last wrote for each resource, to tell its own writes from others'.
#[derive(Default)]
pub struct OwnStatus(Mutex<HashMap<String, Value>>);

impl OwnStatus {
    /// Notes that `kind` `key`'s status is about to be written as `status` (before the write:
    /// its watch event may come before the write's answer).
    pub fn note(&self, kind: &str, key: &str, status: Value) {
        if let Ok(mut own) = self.0.lock() {
            own.insert(format!("{kind}:{key}"), status);
        }
    }

    /// Whether `status` is what the operator last wrote for `kind` `key`. The first status
    /// seen of a resource (none, or one an earlier process wrote) is taken as its own: that
    /// sighting starts a reconcile anyway, and otherwise, after a restart, the first status
    /// this process wrote would look like a change made by someone else.
    fn is_own(&self, kind: &str, key: &str, status: &Value) -> bool {
        let Ok(mut own) = self.0.lock() else {
            return false;
        };
        own.entry(format!("{kind}:{key}"))
            .or_insert_with(|| status.clone())
            == status
    }

    /// Forgets the resources of `kind` that `gone` says are gone.
    pub fn forget_gone(&self, kind: &str, gone: &dyn Fn(&str) -> bool) {
        if let Ok(mut own) = self.0.lock() {
            let prefix = format!("{kind}:");
            own.retain(|entry, _| entry.strip_prefix(&prefix).is_none_or(|key| !gone(key)));
        }
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
    let status = obj
        .status()
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or_default();
    match resource_key(obj) {
        Ok(key) if ctx.own_status.is_own(K::KIND, &key, &status) => 0,
        _ => {
            let mut hasher = DefaultHasher::new();
            status.to_string().hash(&mut hasher);
            hasher.finish()
        }
    }
}
