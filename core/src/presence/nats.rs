//! Presence across processes: a NATS KV bucket with one key per (user, process).
//!
//! A process puts `<user id>.<process id>` when a user's first connection to it opens, deletes
//! it when the last one closes, and re-puts all of its keys every third of its TTL so they
//! outlive it only while the process is alive: a process that dies without cleaning up drops
//! out of everybody's view one TTL later. Every process watches the bucket and keeps a mirror
//! of the other processes' keys; its own users it knows first-hand.
//!
//! An entry's value is its writer's TTL in milliseconds, and readers keep it that long: during
//! a rolling change of `CHATBOARD_PRESENCE_TTL`, or with processes configured apart, each entry
//! still lives as its writer refreshes it. The bucket keeps entries for the longest TTL any
//! process has started with (a process raises it, never lowers it), so a process that starts
//! later reads every live entry from the bucket's history.
//!
//! Who is offline is only known from a whole view: a process starts answering once it has read
//! the bucket's history, and while it cannot reach NATS it keeps the others' entries (they could
//! not refresh them either) and gives them a whole TTL from its reconnection. Otherwise, after
//! an outage longer than the TTL, everyone connected elsewhere would look offline until their
//! processes refreshed, and the worker would note their messages for digest emails.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use async_trait::async_trait;
use futures::StreamExt;
use rand::distributions::{Alphanumeric, DistString};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::{Presence, PresenceChange, CHANGES_QUEUE};
use crate::bus::{stream_replaced, BusError, StreamReplicas};

/// How presence is kept in NATS.
#[derive(Debug, Clone, Copy)]
pub struct PresenceSettings {
    /// How long a process's entries outlive its last refresh.
    pub ttl: Duration,
    /// The copies of the bucket a NATS cluster keeps.
    pub replicas: StreamReplicas,
}

impl Default for PresenceSettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(60),
            replicas: StreamReplicas::default(),
        }
    }
}

/// The longest wait between two looks for expired entries of other processes.
const SWEEP_PERIOD: Duration = Duration::from_secs(1);

/// How often a process checks that its presence bucket is still there.
const BUCKET_LOOK: Duration = Duration::from_secs(5);

/// Keys refreshed at once.
const REFRESH_CONCURRENCY: usize = 64;

/// The longest a process starting waits for the bucket's history before it answers anyway.
const REPLAY_WAIT: Duration = Duration::from_secs(10);

/// Who is connected where, as this process knows it.
#[derive(Default)]
struct View {
    /// This process's connections per user.
    mine: HashMap<i64, usize>,
    /// Other processes holding a user, with when their entry expires unless written again.
    others: HashMap<i64, HashMap<String, Instant>>,
    /// No entry of `others` expires before this (the sweep skips its scan until then).
    next_expiry: Option<Instant>,
}

impl View {
    fn is_online(&self, user_id: i64) -> bool {
        self.mine.contains_key(&user_id) || self.others.contains_key(&user_id)
    }
}

struct Shared {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    /// When the bucket this process watches was made (a bucket made again is another one).
    made: Mutex<async_nats::datetime::DateTime>,
    /// Tells the watch to start again (on a bucket made again).
    rewatch: tokio::sync::Notify,
    bucket: String,
    kv: kv::Store,
    process: String,
    ttl: Duration,
    replicas: StreamReplicas,
    view: Mutex<View>,
    changes: broadcast::Sender<PresenceChange>,
    /// Whether the bucket's history has been read (the view holds every live entry).
    replayed: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    fn view(&self) -> MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `change` to the view and reports the user's transition, if any.
    fn update(&self, user_id: i64, change: impl FnOnce(&mut View)) {
        let (before, after) = {
            let mut view = self.view();
            let before = view.is_online(user_id);
            change(&mut view);
            (before, view.is_online(user_id))
        };
        if before != after {
            let _ = self.changes.send(PresenceChange {
                user_id,
                online: after,
            });
        }
    }

    fn key(&self, user_id: i64) -> String {
        format!("{user_id}.{}", self.process)
    }

    async fn put(&self, user_id: i64) {
        let lifetime = self.ttl.as_millis().to_string();
        if let Err(e) = self.kv.put(self.key(user_id), lifetime.into()).await {
            tracing::warn!(error = %e, user_id, "presence put failed; the next refresh retries");
        }
    }

    /// Another process's entry changed.
    fn on_entry(&self, entry: kv::Entry) {
        let Some((user, process)) = entry.key.split_once('.') else {
            return;
        };
        let Ok(user_id) = user.parse::<i64>() else {
            return;
        };
        if process == self.process {
            return; // our own: known first-hand
        }
        let process = process.to_owned();
        match entry.operation {
            kv::Operation::Put => {
                // Kept as long as its writer said (entries of releases before that say "1": this
                // process's own TTL), dated by when it was written, so a replayed old one
                // expires on time.
                let lifetime = std::str::from_utf8(&entry.value)
                    .ok()
                    .and_then(|ms| ms.parse::<u64>().ok())
                    .filter(|ms| *ms > 1)
                    .map_or(self.ttl, Duration::from_millis);
                let now_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
                let age_ns = (i128::from(now_ns) - entry.created.unix_timestamp_nanos()).max(0);
                let age = Duration::from_nanos(u64::try_from(age_ns).unwrap_or(u64::MAX));
                let Some(left) = lifetime.checked_sub(age).filter(|left| !left.is_zero()) else {
                    return;
                };
                let expires = Instant::now() + left;
                self.update(user_id, |view| {
                    view.others
                        .entry(user_id)
                        .or_default()
                        .insert(process, expires);
                    view.next_expiry = Some(view.next_expiry.map_or(expires, |e| e.min(expires)));
                });
            }
            kv::Operation::Delete | kv::Operation::Purge => {
                self.update(user_id, |view| remove_other(view, user_id, &process));
            }
        }
    }

    /// Gives every other process's entry at least `ttl` from now: back from an outage, during
    /// which nobody could refresh, their writers get a whole TTL to do it again.
    fn hold_over(&self, ttl: Duration) {
        let until = Instant::now() + ttl;
        let mut view = self.view();
        for processes in view.others.values_mut() {
            for expires in processes.values_mut() {
                *expires = (*expires).max(until);
            }
        }
        if !view.others.is_empty() {
            view.next_expiry = Some(until);
        }
    }

    /// Forgets other processes' entries that were not refreshed in time.
    fn sweep(&self) {
        let now = Instant::now();
        let stale: Vec<(i64, String)> = {
            let mut view = self.view();
            // Entries are refreshed long before they expire: the scan, under the lock every
            // connection takes, runs only once the earliest expiry known may have come.
            if view.next_expiry.is_none_or(|next| next > now) {
                return;
            }
            let mut next = None;
            let mut stale = Vec::new();
            for (user, processes) in &view.others {
                for (process, expires) in processes {
                    if *expires <= now {
                        stale.push((*user, process.clone()));
                    } else {
                        next = Some(next.map_or(*expires, |n: Instant| n.min(*expires)));
                    }
                }
            }
            view.next_expiry = next;
            stale
        };
        for (user_id, process) in stale {
            self.update(user_id, |view| remove_other(view, user_id, &process));
        }
    }
}

fn remove_other(view: &mut View, user_id: i64, process: &str) {
    if let Some(processes) = view.others.get_mut(&user_id) {
        processes.remove(process);
        if processes.is_empty() {
            view.others.remove(&user_id);
        }
    }
}

/// Presence kept in a NATS KV bucket `<PREFIX>_PRESENCE`.
pub struct NatsPresence {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for NatsPresence {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(e.to_string())
}

impl NatsPresence {
    /// Opens (or creates) the bucket and starts mirroring it.
    pub async fn start(
        client: async_nats::Client,
        prefix: &str,
        settings: PresenceSettings,
    ) -> Result<Self, BusError> {
        let jetstream = jetstream::new(client.clone());
        let bucket = format!(
            "{}_PRESENCE",
            prefix.to_uppercase().replace(['.', '-'], "_")
        );
        let made = ensure_bucket(&jetstream, &bucket, settings.ttl, settings.replicas).await?;
        let empty = made.cached_info().state.messages == 0;
        let kv = jetstream
            .get_key_value(&bucket)
            .await
            .map_err(|e| unavailable(format!("presence bucket {bucket}: {e}")))?;
        let shared = Arc::new(Shared {
            client,
            jetstream,
            made: Mutex::new(made.cached_info().created),
            rewatch: tokio::sync::Notify::new(),
            bucket,
            kv,
            process: Alphanumeric.sample_string(&mut rand::thread_rng(), 12),
            ttl: settings.ttl,
            replicas: settings.replicas,
            view: Mutex::new(View::default()),
            changes: broadcast::channel(CHANGES_QUEUE).0,
            replayed: tokio::sync::watch::Sender::new(empty),
        });
        let period = (settings.ttl / 3).max(Duration::from_millis(200));
        let tasks = vec![
            tokio::spawn(watch(shared.clone())),
            tokio::spawn(refresh(shared.clone(), period)),
            // Others' entries may have shorter lives than this process's own.
            tokio::spawn(sweep(shared.clone(), period.min(SWEEP_PERIOD))),
            tokio::spawn(keep_bucket(shared.clone())),
        ];
        // Answering before the history is read would call everyone elsewhere offline.
        let mut replayed = shared.replayed.subscribe();
        if tokio::time::timeout(REPLAY_WAIT, replayed.wait_for(|done| *done))
            .await
            .is_err()
        {
            tracing::warn!(bucket = %shared.bucket, "the presence bucket's history was not read in time; answering from what was");
        }
        Ok(Self { shared, tasks })
    }
}

impl NatsPresence {
    /// Deletes the bucket (tests clean up after themselves with it).
    pub async fn delete_bucket(&self) -> Result<(), BusError> {
        let jetstream = jetstream::new(self.shared.client.clone());
        jetstream
            .delete_key_value(&self.shared.bucket)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

/// Mirrors the bucket, watching again whenever the watch ends (NATS restarted).
async fn watch(shared: Arc<Shared>) {
    loop {
        match shared.kv.watch_with_history(">").await {
            Ok(mut entries) => loop {
                let entry = tokio::select! {
                    entry = entries.next() => entry,
                    () = shared.rewatch.notified() => break,
                };
                match entry {
                    Some(Ok(entry)) => {
                        // The last of the history (and every live entry) is 0 from the latest.
                        let current = entry.delta == 0;
                        shared.on_entry(entry);
                        if current {
                            shared.replayed.send_replace(true);
                        }
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "presence watch failed");
                        break;
                    }
                    None => break,
                }
            },
            Err(e) => tracing::warn!(error = %e, "cannot watch the presence bucket"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The bucket's stream, made if missing (directly, as the KV conventions lay it out: the
/// client's own `create_key_value` first queries account limits in a form that servers before
/// 2.10 do not answer), kept at least `ttl` long and in `replicas` copies.
async fn ensure_bucket(
    jetstream: &jetstream::Context,
    bucket: &str,
    ttl: Duration,
    replicas: StreamReplicas,
) -> Result<jetstream::stream::Stream, BusError> {
    let config = jetstream::stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age: ttl,
        storage: jetstream::stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: jetstream::stream::DiscardPolicy::New,
        num_replicas: replicas.for_new(),
        ..Default::default()
    };
    let mut stream = jetstream.get_or_create_stream(config).await.map_err(|e| {
        unavailable(format!(
            "presence bucket {bucket}: {}",
            replicas.creation_failed(&format!("KV_{bucket}"), e)
        ))
    })?;
    // Made by a process with a shorter TTL: this one's entries must not leave the bucket's
    // history before they expire. (0 keeps them for ever.) Another process may be raising it
    // at the same moment from what it read: the value is read back, and raised again while
    // it is short. A server that refuses the change costs only late starters' view.
    for _ in 0..3 {
        let mut current = stream.cached_info().config.clone();
        if current.max_age.is_zero() || current.max_age >= ttl {
            break;
        }
        current.max_age = ttl;
        if let Err(e) = jetstream.update_stream(current).await {
            tracing::warn!(error = %e, bucket, "could not lengthen the presence bucket's history");
            break;
        }
        match jetstream.get_stream(format!("KV_{bucket}")).await {
            Ok(read_back) => stream = read_back,
            Err(e) => {
                tracing::warn!(error = %e, bucket, "could not read the presence bucket back");
                break;
            }
        }
    }
    replicas
        .settle(jetstream, stream)
        .await
        .map_err(|e| unavailable(format!("presence bucket {bucket}: {e}")))
}

/// Makes the bucket again if it went away under this process (deleted by hand, or a NATS that
/// came back without its storage), puts this process's entries back and watches it anew: the
/// watch does not always notice its stream going (NATS 2.9 tells it nothing).
async fn keep_bucket(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(BUCKET_LOOK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let name = format!("KV_{}", shared.bucket);
        let made = *shared.made.lock().unwrap_or_else(PoisonError::into_inner);
        if !stream_replaced(&shared.jetstream, &name, made).await {
            continue;
        }
        tracing::warn!(bucket = %shared.bucket, "the presence bucket is gone; making it again");
        match ensure_bucket(
            &shared.jetstream,
            &shared.bucket,
            shared.ttl,
            shared.replicas,
        )
        .await
        {
            Ok(stream) => {
                *shared.made.lock().unwrap_or_else(PoisonError::into_inner) =
                    stream.cached_info().created;
                shared.rewatch.notify_one();
                let users: Vec<i64> = shared.view().mine.keys().copied().collect();
                for user_id in users {
                    shared.put(user_id).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "making the presence bucket again failed"),
        }
    }
}

/// Keeps this process's entries alive.
async fn refresh(shared: Arc<Shared>, period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let users: Vec<i64> = shared.view().mine.keys().copied().collect();
        futures::stream::iter(users)
            .for_each_concurrent(REFRESH_CONCURRENCY, |user_id| {
                let shared = shared.clone();
                async move { shared.put(user_id).await }
            })
            .await;
    }
}

/// Drops others' entries that were not kept alive; none while NATS is out of reach (nobody
/// can refresh then), and back, each gets a whole TTL to be refreshed.
async fn sweep(shared: Arc<Shared>, period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut away = false;
    loop {
        tick.tick().await;
        if shared.client.connection_state() != async_nats::connection::State::Connected {
            away = true;
            continue;
        }
        if away {
            away = false;
            shared.hold_over(shared.ttl);
        }
        shared.sweep();
    }
}

#[async_trait]
impl Presence for NatsPresence {
    async fn connected(&self, user_id: i64) {
        let mut first = false;
        self.shared.update(user_id, |view| {
            let count = view.mine.entry(user_id).or_insert(0);
            *count += 1;
            first = *count == 1;
        });
        if first {
            self.shared.put(user_id).await;
        }
    }

    async fn disconnected(&self, user_id: i64) {
        let mut last = false;
        self.shared.update(user_id, |view| {
            if let Some(count) = view.mine.get_mut(&user_id) {
                *count -= 1;
                if *count == 0 {
                    view.mine.remove(&user_id);
                    last = true;
                }
            }
        });
        if last {
            if let Err(e) = self.shared.kv.delete(self.shared.key(user_id)).await {
                tracing::warn!(error = %e, user_id, "presence delete failed; the entry expires");
            }
        }
    }

    fn online(&self, user_ids: &[i64]) -> Vec<i64> {
        let view = self.shared.view();
        user_ids
            .iter()
            .copied()
            .filter(|id| view.is_online(*id))
            .collect()
    }

    fn changes(&self) -> broadcast::Receiver<PresenceChange> {
        self.shared.changes.subscribe()
    }

    async fn withdraw(&self) {
        let users: Vec<i64> = std::mem::take(&mut self.shared.view().mine)
            .into_keys()
            .collect();
        futures::stream::iter(users)
            .for_each_concurrent(REFRESH_CONCURRENCY, |user_id| async move {
                let _ = self.shared.kv.delete(self.shared.key(user_id)).await;
            })
            .await;
    }
}
